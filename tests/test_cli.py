"""The command line as a user runs it: exit codes, JSON, bad input, start-up imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .cli_runner import run_assistant
from .conftest import ROOT, embed_model_dir


def run(*args: str, home: Path, check_rc: int | None = None, **kw) -> subprocess.CompletedProcess:
    """`assistant ARGS` in this process (tests/cli_runner.py); the tests of `python -m
    assistant` itself and of start-up imports run real subprocesses below."""
    env = {**os.environ, "ASSISTANT_HOME": str(home), **kw.pop("env_extra", {})}
    if embed_model_dir():
        env["ASSISTANT_EMBED_MODEL_DIR"] = str(embed_model_dir())
    proc = run_assistant(args, env=env, cwd=kw.pop("cwd", ROOT), **kw)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout
    message = proc.stderr.strip()
    assert message and len(message.splitlines()) == 1, message
    for needle in needles:
        assert needle in message, message


def test_help_is_fast_to_import(tmp_path: Path):
    """`--help` must not import llama-index or chromadb (start-up is part of the product)."""
    code = (
        "import sys; from assistant.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('chromadb', 'llama_index', 'openai', 'onnxruntime', 'textual')"
        " if m in sys.modules]\nprint('HEAVY', heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    assert "ingest" in proc.stdout and "search" in proc.stdout


@pytest.mark.parametrize("command", ["ingest", "search", "papers", "ask", "doctor"])
def test_every_command_has_help(command: str, tmp_path: Path):
    proc = run(command, "--help", home=tmp_path, check_rc=0)
    assert "--json" in proc.stdout


LIGHT_PROBE = (
    "import sys, contextlib, io; from assistant.cli import main\n"
    "out = io.StringIO()\n"
    "with contextlib.redirect_stdout(out):\n    rc = main(sys.argv[1:])\n"
    "heavy = [m for m in ('chromadb', 'llama_index', 'onnxruntime', 'textual')"
    " if m in sys.modules]\nprint('RC', rc, 'HEAVY', heavy, 'OUT', len(out.getvalue()))"
)


@pytest.mark.parametrize(
    "args",
    [
        ["sessions", "list"],
        *(
            [*command.split(), "--help"]
            for command in (
                "ingest",
                "search",
                "papers",
                "ask",
                "digest",
                "doctor",
                "serve",
                "reindex",
                "chat",
                "sessions",
                "sessions list",
                "sessions repair",
                "eval",
                "eval run",
                "eval compare",
                "eval digest",
            )
        ),
    ],
    ids=" ".join,
)
def test_help_and_session_listing_stay_light(args: list[str], tmp_path: Path):
    """Every `--help`, and listing sessions, imports neither chromadb nor llama-index
    (nor the embedder's onnxruntime or Textual): start-up is part of the product."""
    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", LIGHT_PROBE, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "RC 0 HEAVY [] OUT" in proc.stdout, proc.stdout + proc.stderr
    assert "OUT 0" not in proc.stdout  # it printed its help (or "No sessions.")


def test_python_m_assistant_and_the_root_group_map_errors_alike(tmp_path: Path):
    """`python -m assistant`, `assistant.cli.main` and calling the group itself (a console
    script pointing at `assistant.cli:cli`) give the same exit code and one line."""
    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path)}
    via_m = subprocess.run(
        [sys.executable, "-m", "assistant", "search", "x", "--k", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    via_group = subprocess.run(
        [
            sys.executable,
            "-c",
            "from assistant.cli import cli\n"
            "cli(['search', 'x', '--k', '0'], prog_name='assistant')",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert via_m.returncode == via_group.returncode == 2
    assert via_m.stderr == via_group.stderr and "--k" in via_m.stderr


def _group_raising(exc: BaseException):
    """A root group like `assistant`'s whose one command raises `exc`."""
    import click

    from assistant.cli.common import CONTEXT, AssistantGroup

    @click.group(cls=AssistantGroup, context_settings=CONTEXT)
    def root() -> None:
        pass

    @root.command()
    def boom() -> None:
        raise exc

    return root


@pytest.mark.parametrize(
    "make,code,line",
    [
        (lambda e: e.UsageError("--k wants a number"), 2, "Error: --k wants a number"),
        (lambda e: e.NotConfigured("no endpoint"), 2, "Error: no endpoint"),
        (lambda e: e.EndpointUnreachable("nothing at :9"), 1, "Error: nothing at :9"),
        (lambda e: e.SessionNotFound("no session 7"), 1, "Error: no session 7"),
        (lambda e: e.RecordError("a.jsonl", 3, "not JSON"), 1, "Error: a.jsonl:3: not JSON"),
        (lambda e: e.StoreFull("disk full"), 1, "Error: disk full"),
        (lambda e: e.Interrupted("interrupted: 3 stored"), 130, "interrupted: 3 stored"),
        (lambda e: KeyboardInterrupt(), 130, "interrupted"),
    ],
    ids=[
        "usage",
        "not-configured",
        "unreachable",
        "no-session",
        "record",
        "full",
        "kept",
        "ctrl-c",
    ],
)
def test_exceptions_map_to_exit_codes_in_one_place(make, code: int, line: str, capsys):
    from assistant import errors

    rc = _group_raising(make(errors)).main(["boom"], prog_name="assistant", standalone_mode=False)
    err = capsys.readouterr().err
    assert rc == code
    assert [ln for ln in err.splitlines() if ln.strip()] == [line]


def test_every_error_class_lives_in_errors_with_an_exit_code():
    """One error tree: outside errors.py no module defines a public exception class, and
    every class in errors.py is an AssistantError whose exit code is in the README's table."""
    import ast
    import inspect

    from assistant import errors

    tree = {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, BaseException)
    }
    assert all(issubclass(cls, errors.AssistantError) for cls in tree.values()), tree
    assert {cls.exit_code for cls in tree.values()} == {1, 2, 130}
    assert errors.UsageError.exit_code == errors.NotConfigured.exit_code == 2
    exception_names = {"Exception", "BaseException", *tree}
    strays = []
    for path in (ROOT / "assistant").rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & exception_names:
                    strays.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not strays, strays
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code in (1, 2, 130):
        assert f"| {code} |" in readme


def test_ingest_search_papers_json(sample_home: Path, tmp_path: Path):
    home = tmp_path / "home"
    shutil.copytree(sample_home / "chroma", home / "chroma")
    proc = run("ingest", "--json", home=home, check_rc=0)
    report = json.loads(proc.stdout)
    assert {k: report[k] for k in ("added", "updated", "unchanged", "total_papers")} == {
        "added": 0,
        "updated": 0,
        "unchanged": 264,
        "total_papers": 264,
    }
    assert report["failed"] == []
    assert all(isinstance(report[k], int) for k in ("added", "updated", "unchanged"))

    proc = run(
        "search", "low-resource machine translation", "--k", "3", "--json", home=home, check_rc=0
    )
    results = json.loads(proc.stdout)["results"]
    assert len(results) == 3
    for r in results:
        assert {"paper_id", "title", "published", "score", "passage"} <= set(r)
    assert results[0]["score"] >= results[1]["score"] >= results[2]["score"]

    proc = run(
        "search",
        "language models",
        "--since",
        "2024-01-01",
        "--until",
        "2024-12-31",
        "--json",
        home=home,
        check_rc=0,
    )
    dates = [r["published"] for r in json.loads(proc.stdout)["results"]]
    assert dates and all("2024-01-01" <= d <= "2024-12-31" for d in dates)

    proc = run("papers", "--json", home=home, check_rc=0)
    summary = json.loads(proc.stdout)
    assert summary["papers"] == 264 and summary["chunks"] > 264
    assert len(summary["sources"]) == 5

    proc = run("search", "diffusion guidance", home=home, check_rc=0)
    assert "Dynamic Classifier-Free" in proc.stdout


def test_partial_failure_exits_1_and_keeps_the_good_records(tmp_path: Path):
    data = tmp_path / "mixed.jsonl"
    data.write_text(
        '{"title": "Sparse Mixtures of Tiny Experts", "abstract": "We route tokens to tiny '
        'experts and cut inference cost by 40% on three benchmarks."}\n'
        '{"title": "Broken", "abstract": \n'
        '{"title": "No Abstract Here", "abstract": ""}\n'
        '{"title": "Bad Date", "abstract": "Some text about models.", "published": "31/31/2024"}\n'
    )
    proc = run("ingest", str(data), "--json", home=tmp_path / "home", check_rc=1)
    report = json.loads(proc.stdout)
    # An unparseable date costs the date, not the paper (issue 10 item 13).
    assert report["added"] == 2 and report["total_papers"] == 2
    failed = {f["line"]: f for f in report["failed"]}
    assert set(failed) == {2, 3}
    assert all(f["source"] == str(data) for f in failed.values())
    assert "JSON" in failed[2]["reason"]
    assert "abstract" in failed[3]["reason"]
    assert [w["line"] for w in report["warnings"]] == [4]
    assert "31/31/2024" in report["warnings"][0]["reason"]

    proc = run("ingest", str(data), home=tmp_path / "home", check_rc=1)
    assert f"{data}:2" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"title,abstract\nGood,\xff\xfe bad bytes\n", "UTF-8"),
        (b"name,summary\nA paper,An abstract\n", "title"),
    ],
)
def test_bad_files_are_reported_with_file_and_reason(tmp_path: Path, content: bytes, needle: str):
    bad = tmp_path / "input.csv"
    bad.write_bytes(content)
    proc = run("ingest", str(bad), "--json", home=tmp_path / "home", check_rc=1)
    report = json.loads(proc.stdout)
    assert report["added"] == 0
    assert len(report["failed"]) == 1
    assert report["failed"][0]["source"] == str(bad)
    assert needle.lower() in report["failed"][0]["reason"].lower()


def test_missing_path_is_a_usage_error(tmp_path: Path):
    proc = run("ingest", str(tmp_path / "nope.jsonl"), home=tmp_path / "home", check_rc=2)
    assert_one_line_error(proc, "nope.jsonl")


def test_bad_date_option_is_a_usage_error(tmp_path: Path):
    proc = run("search", "x", "--since", "yesterday", home=tmp_path / "home", check_rc=2)
    assert "yesterday" in proc.stderr and "Traceback" not in proc.stderr


def test_search_on_an_empty_library_says_what_to_do(tmp_path: Path):
    proc = run("search", "memory", home=tmp_path / "home", check_rc=0)
    assert "Traceback" not in proc.stderr
    assert "library is empty" in proc.stdout and "assistant ingest" in proc.stdout
    proc = run("search", "memory", "--json", home=tmp_path / "home", check_rc=0)
    assert json.loads(proc.stdout)["results"] == []


def test_unusable_store_is_a_one_line_error(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "chroma").write_text("a file where the store folder should be")
    proc = run("papers", home=home)
    assert proc.returncode == 1
    assert_one_line_error(proc, str(home / "chroma"))


def test_missing_embedding_model_is_a_one_line_error(tmp_path: Path):
    env = {
        **os.environ,
        "ASSISTANT_HOME": str(tmp_path / "home"),
        "ASSISTANT_EMBED_MODEL_DIR": str(tmp_path / "no-model"),
    }
    proc = run_assistant(["search", "x"], env=env)
    assert proc.returncode == 2
    assert_one_line_error(proc, "ASSISTANT_EMBED_MODEL_DIR", "no-model")


def test_settings_precedence_flag_env_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from assistant.settings import Settings

    env_file = tmp_path / ".env"
    env_file.write_text(
        "ASSISTANT_MODEL=from-dotenv\nOPENAI_BASE_URL=http://dotenv/v1\n"
        "ASSISTANT_HOME=/from/dotenv\n"
    )
    monkeypatch.setenv("ASSISTANT_MODEL", "from-env")
    monkeypatch.delenv("ASSISTANT_HOME", raising=False)
    settings = Settings.load(env_file=env_file, model=None, home=None)
    assert settings.model == "from-env"
    assert settings.base_url == "http://dotenv/v1"
    assert settings.home == Path("/from/dotenv")
    assert Settings.load(env_file=env_file, model="from-flag").model == "from-flag"


def test_dotenv_in_the_working_folder_cannot_redirect_the_environment_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from assistant.settings import Settings

    (tmp_path / ".env").write_text("OPENAI_BASE_URL=http://attacker.example/v1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-environment-key-123456")
    found = Settings.load()
    assert found.base_url == "http://attacker.example/v1"
    assert found.api_key is None  # withheld, not sent to the .env's host
    assert found.env_file == (tmp_path / ".env").resolve()
    assert found.origin("base_url") == ".env" and found.origin("api_key") == "environment"
    assert len(found.warnings) == 1 and "not sent" in found.warnings[0]
    assert "sk-environment" not in found.warnings[0]

    # Named explicitly, the same file is trusted; a URL from the environment always is.
    assert Settings.load(env_file=tmp_path / ".env").api_key == "sk-environment-key-123456"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    assert Settings.load().api_key == "sk-environment-key-123456"
    assert Settings.load().warnings == ()

    # Key and URL from the same .env: that file's own key goes to its own URL.
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    (tmp_path / ".env").write_text("OPENAI_BASE_URL=http://h/v1\nOPENAI_API_KEY=dotenv-key\n")
    assert Settings.load().api_key == "dotenv-key" and Settings.load().warnings == ()


def test_ask_question_usage_errors(tmp_path: Path):
    proc = run("ask", home=tmp_path, input="  \n")
    assert proc.returncode == 2
    assert_one_line_error(proc, "stdin")
    proc = run("ask", "-c", "--session", "3", "a follow-up", home=tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc, "--continue", "--session")
    proc = run("ask", "--session", "99", "What is GaLore?", home=tmp_path)
    assert proc.returncode == 1
    assert_one_line_error(proc, "no session 99")


def test_bad_local_model_setting_is_a_usage_error(tmp_path: Path):
    proc = run("doctor", home=tmp_path, env_extra={"ASSISTANT_LOCAL_MODEL": "maybe"})
    assert proc.returncode == 2
    assert_one_line_error(proc, "ASSISTANT_LOCAL_MODEL", "maybe")
