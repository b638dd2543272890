"""Nothing from a paper reaches the terminal raw, nothing leaks, no traceback (issue 20).

One test per fault of the issue's list (the item number is in each test's name
and comment), each written to fail on the code before the fix. The library,
the embedder and the sessions file are real; the model is the scripted fake
server (tests/fakeserver.py): what is tested is what the commands do with its
words, not the words.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import unicodedata
from pathlib import Path

import pytest

from assistant.safe_text import safe_line, safe_markdown, safe_text, safe_url
from assistant.settings import Settings

from .cli_runner import run_assistant
from .conftest import ROOT, embed_model_dir, make_settings
from .fakeserver import FakeServer

# A title that clears the screen and writes "rm -rf ~" into the clipboard (OSC 52).
ESC_TITLE = "Clear \x1b[2J screen \x1b]52;c;cm0gLXJmIH4=\x07 attention transformers"
HOSTILE_ABSTRACT = (
    "We study attention in transformers \u202eshown backwards\u202c with a C1 \x9b31m "
    "control in the text. Attention heads specialise."
)
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe_chars(text: str) -> list[str]:
    """Every character in `text` a terminal or an encoder would act on."""
    return [
        c
        for c in text
        if (unicodedata.category(c) == "Cc" and c not in "\n\t")
        or unicodedata.category(c) == "Cs"
        or c in BIDI
    ]


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ASSISTANT_MODEL")
    }
    env["ASSISTANT_HOME"] = str(home)
    if embed_model_dir():
        env["ASSISTANT_EMBED_MODEL_DIR"] = str(embed_model_dir())
    env.update(extra)
    return env


def cli(
    *args: str | bytes, home: Path, process: bool = False, **extra: str
) -> subprocess.CompletedProcess:
    """`assistant ARGS` as a user runs it, output as text (bad bytes replaced): in this
    process (tests/cli_runner.py) unless `process`, for a command that must not be able
    to start anything here if it fails to refuse."""
    if not process:
        return run_assistant(args, env=env_for(home, **extra))
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        cwd=ROOT,
        env=env_for(home, **extra),
        capture_output=True,
        timeout=300,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def model_env(server: FakeServer) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": server.url,
        "ASSISTANT_MODEL": "smollm2",
        "ASSISTANT_TIMEOUT": "10",
        "ASSISTANT_CONTEXT_WINDOW": "4096",
    }


def one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """Check the shape of a one-line failure and return its error line (the last stderr line)."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    # click's usage errors come with their usage lines; the error is the last one
    assert lines, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    return lines[-1]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


HOSTILE_RECORDS = [
    {
        "title": ESC_TITLE,
        "abstract": HOSTILE_ABSTRACT,
        "url": "javascript:alert(1)",
        "published": "2025-01-02",
        "authors": ["Mallory \x1b[31mRed"],
    },
    {
        "title": "Second paper <script>alert(1)</script> on attention](javascript:x)",
        "abstract": "Attention for graphs <img src=x onerror=alert(1)>. Heads attend to nodes.",
        "url": "https://arxiv.org/abs/2501.00001) [x](javascript:alert(2)",
        "published": "2025-01-03",
    },
    {
        "title": "A plain paper about attention heads",
        "abstract": "Attention heads in transformers can be pruned without loss of accuracy.",
        "published": "2025-01-04",
        "url": "https://arxiv.org/abs/2501.00002",
    },
]


@pytest.fixture(scope="module")
def hostile_home(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """A library whose papers carry escapes, bidi overrides, surrogates and HTML."""
    from assistant.ingest import ingest
    from assistant.store import Library

    home = tmp_path_factory.mktemp("hostile-home")
    data = write_jsonl(home.parent / "hostile.jsonl", HOSTILE_RECORDS)
    settings = make_settings(home)
    report = ingest([data], settings, library=Library.open(settings), embedder=embedder)
    assert report.total_papers == 3, report.to_dict()
    return home


@pytest.fixture(scope="module")
def plain_home(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """A small library of ordinary papers (for the faults that are not about text)."""
    from assistant.ingest import ingest
    from assistant.store import Library

    home = tmp_path_factory.mktemp("plain-home")
    records = [
        {
            "title": f"Pruning attention heads, study {i}",
            "abstract": f"Attention heads in transformers can be pruned ({i}). Accuracy holds.",
            "published": f"2025-01-0{i + 2}",
        }
        for i in range(3)
    ]
    data = write_jsonl(home.parent / "plain.jsonl", records)
    settings = make_settings(home)
    report = ingest([data], settings, library=Library.open(settings), embedder=embedder)
    assert report.total_papers == 3, report.to_dict()
    return home


# -- the text-safety function itself -------------------------------------------------------


def test_safe_text_makes_every_control_visible_and_keeps_newline_and_tab():
    everything = "".join(chr(c) for c in range(0xA0)) + "".join(BIDI) + "\ud800\udce9"
    out = safe_text(everything)
    assert unsafe_chars(out) == []
    assert "\n" in out and "\t" in out
    assert "␛" in out  # ESC shown by name, not dropped silently
    assert "\\xe9" in out  # a file name's undecodable byte reads as itself
    assert safe_text("plain text [1]") == "plain text [1]"
    assert "\n" not in safe_line("a\nb") and unsafe_chars(safe_line("a\x1bb")) == []
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("https://x.org/a) [y](javascript:z") is None
    assert safe_url("https://arxiv.org/abs/2501.00001") == "https://arxiv.org/abs/2501.00001"
    md = safe_markdown("<script>x</script> [1](javascript:y)\n[1]: javascript:z")
    assert "<script" not in md and "](" not in md and "]:" not in md


# -- item 1: escape sequences from paper text reach the terminal ---------------------------


def test_item1_paper_escapes_never_reach_the_terminal(hostile_home: Path, tmp_path: Path):
    home = tmp_path / "home"
    import shutil

    shutil.copytree(hostile_home, home)
    outputs = []
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "more\x1b[2J.jsonl", [dict(HOSTILE_RECORDS[0], title="Another one")])
    proc = cli("ingest", str(folder), home=home)
    outputs.append(proc)
    assert proc.returncode == 0, proc.stderr
    for args in (["search", "attention transformers"], ["papers"], ["search", "x", "--json"]):
        outputs.append(cli(*args, home=home))
    with FakeServer(models=["smollm2"]) as server:
        reply = (
            "Attention heads specialise [1]. \x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J "
            "Heads attend to nodes [2]."
        )
        server.add_reply(reply)
        asked = cli(
            "ask", "How do attention heads work?", "--no-stream", home=home, **model_env(server)
        )
        outputs.append(asked)
        server.add_stream([reply[:30], reply[30:]])
        outputs.append(cli("ask", "What do heads do?", home=home, **model_env(server)))
    assert asked.returncode == 0, asked.stderr
    outputs.append(cli("sessions", "list", home=home))
    outputs.append(cli("sessions", "show", "1", home=home))
    export = tmp_path / "export.md"
    outputs.append(cli("sessions", "export", "1", "-o", str(export), home=home))
    for proc in outputs:
        assert "Traceback" not in proc.stderr, proc.stderr
        assert unsafe_chars(proc.stdout + proc.stderr) == [], (proc.args, proc.stdout)
    assert unsafe_chars(export.read_text(encoding="utf-8")) == []
    assert "␛" in outputs[1].stdout  # the title is there, its ESC shown, not obeyed


def test_item1_chat_widgets_show_escapes_inert():
    from rich.console import Console

    from assistant.answer import Answer
    from assistant.tui.widgets import MessageView, citation_line, snippet_text

    answer = Answer.from_dict({"citations": [{"n": 1, "title": ESC_TITLE, "supported": True}]})
    assert unsafe_chars(citation_line(answer).plain) == []
    assert unsafe_chars(snippet_text(ESC_TITLE + " [attention]", 40).plain) == []
    view = MessageView("assistant", "Heads [1]. " + ESC_TITLE, answer=answer)
    console = Console(record=True, width=100, force_terminal=False)
    console.print(view._renderable())
    assert unsafe_chars(console.export_text()) == []


# -- item 2: removed model text stays on the screen ----------------------------------------


def read_pty(master: int, into: list[bytes]) -> None:
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        into.append(data)


def test_item2_text_the_review_removes_is_not_left_on_a_real_terminal(
    plain_home: Path, tmp_path: Path
):
    """A 61-line reply whose 60 unsupported lines the review removes, streamed into a
    24-row terminal: replayed through a terminal emulator (pyte), neither the screen
    nor its scrollback shows any of the removed lines. A live region can erase only
    rows still on the screen, so the streamed view must never be taller than it."""
    import shutil

    import pyte

    home = tmp_path / "home"
    shutil.copytree(plain_home, home)
    removed = [f"Rambling line {i:02d} says zebra{i:02d} things." for i in range(60)]
    pieces = [line + "\n" for line in removed] + ["Attention heads can be pruned [1]."]
    with FakeServer(models=["smollm2"]) as server:
        server.add_stream(pieces, delay_s=0.01)
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "ask", "Can attention heads be pruned?"],
            cwd=ROOT,
            env={**env_for(home, **model_env(server)), "TERM": "xterm"},
            stdout=slave,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        chunks: list[bytes] = []
        reader = threading.Thread(target=read_pty, args=(master, chunks))
        reader.start()
        stderr = proc.stderr.read().decode()
        proc.wait(timeout=300)
        reader.join(timeout=30)
        os.close(master)
    assert proc.returncode == 0, stderr
    screen = pyte.HistoryScreen(80, 24, history=10000)
    stream = pyte.ByteStream(screen)
    stream.feed(b"".join(chunks).replace(b"\n", b"\r\n"))
    seen = [
        "".join(line[x].data for x in range(80)) for line in screen.history.top
    ] + screen.display
    shown = "\n".join(seen)
    assert "not shown" in shown or "were not supported" in shown, shown
    leftovers = [i for i in range(len(removed)) if f"zebra{i:02d}" in shown]
    assert leftovers == [], shown


# -- item 3: sessions export writes unsafe Markdown and overwrites files -------------------


def test_item3_export_is_inert_markdown_and_does_not_overwrite(tmp_path: Path):
    from assistant.answer import Answer
    from assistant.sessions import SessionStore

    home = tmp_path / "home"
    source = {
        "n": 1,
        "paper_id": "2501.00001",
        "title": "Evil <script>alert(1)</script> ](javascript:alert(2))",
        "url": "javascript:alert(3)",
        "published": "2025-01-02",
        "supported": True,
    }
    answer = Answer.from_dict(
        {
            "answer": "It works [1].",
            "citations": [{**source}],
            "sources": [source],
            "evidence": [{"n": 1, "text": "<img src=x onerror=alert(4)>"}],
        }
    )
    with SessionStore.open(home) as store:
        session = store.create_session()
        store.add_message(session.id, "user", "What <b>is</b> it?")
        store.add_message(
            session.id, "assistant", "It works [1]. <script>x()</script>", answer=answer
        )
    out = tmp_path / "existing.md"
    out.write_text("keep me")
    refused = cli("sessions", "export", str(session.id), "-o", str(out), home=home)
    one_line_error(refused, 2, "exists", "--force")
    assert out.read_text() == "keep me"
    done = cli("sessions", "export", str(session.id), "-o", str(out), "--force", home=home)
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    for bad in ("<script", "<img", "<b>", "javascript:alert(3)", "]("):
        assert bad not in text, text  # the title's "](javascript:" is text, its link broken
    assert "It works [1]." in text


# -- item 4: passwords inside URLs are printed ---------------------------------------------


def test_item4_passwords_in_urls_never_printed(tmp_path: Path):
    with FakeServer(models=["smollm2"]) as server:
        port = server.url.split(":")[2].split("/")[0]
        base = f"http://u:sk-SECRETPASS@127.0.0.1:{port}/v1"
        doctor = cli(
            "doctor",
            "--json",
            home=tmp_path / "home",
            OPENAI_BASE_URL=base,
            ASSISTANT_MODEL="smollm2",
            ASSISTANT_CHROMA_URL="http://admin:CHROMASECRET@127.0.0.1:1",
        )
    papers = cli(
        "papers",
        home=tmp_path / "home",
        ASSISTANT_CHROMA_URL="http://admin:CHROMASECRET@127.0.0.1:1",
    )
    for proc in (doctor, papers):
        assert "Traceback" not in proc.stderr, proc.stderr
        both = proc.stdout + proc.stderr
        assert "SECRETPASS" not in both and "CHROMASECRET" not in both, both
    assert "127.0.0.1" in doctor.stdout  # the URL is shown, without its password
    assert papers.returncode == 1


# -- item 5: a stale serve.json gets the API key and the question --------------------------


def test_item5_a_stranger_on_the_recorded_port_is_sent_nothing(tmp_path: Path):
    from assistant.localserver import running_serve, state_path

    with FakeServer(models=["smollm2"]) as stranger:
        for state in (
            {"url": stranger.url, "pid": os.getpid()},  # the old format: no token
            {"url": stranger.url, "pid": os.getpid(), "token": "bundled-abc"},
        ):
            state_path(tmp_path).write_text(json.dumps(state))
            assert running_serve(tmp_path) is None
        auth = [r.headers.get("Authorization") for r in stranger.requests]
        assert not any(auth), auth  # not the token, let alone a user's key
        proc = cli(
            "ask",
            "What is attention?",
            "--no-stream",
            home=tmp_path,
            OPENAI_API_KEY="sk-test-USERKEY",
            ASSISTANT_LOCAL_MODEL="off",
        )
        assert stranger.chat_requests == []
        assert not any(r.headers.get("Authorization") for r in stranger.requests)
    assert proc.returncode == 2, proc.stderr  # no endpoint: the stranger is not one
    assert "USERKEY" not in proc.stdout + proc.stderr


def test_item5_the_bundled_server_never_gets_the_users_key(tmp_path: Path, monkeypatch):
    import contextlib

    from assistant import localserver

    monkeypatch.setattr(
        localserver, "running_serve", lambda home: localserver.Served("http://h:1/v1", "tok")
    )
    settings = Settings(home=tmp_path, api_key="sk-USERKEY")
    with contextlib.ExitStack() as stack:
        resolved, endpoint = localserver.resolve_endpoint(settings, stack)
    assert endpoint.how == "serve" and resolved.api_key == "tok"
    started: list[list[str]] = []
    monkeypatch.setattr(localserver, "running_serve", lambda home: None)
    monkeypatch.setattr(localserver, "missing_parts", lambda: [])
    monkeypatch.setattr(localserver, "smollm2_path", lambda: tmp_path / "m.gguf")
    monkeypatch.setattr(
        localserver.subprocess, "Popen", lambda args, **kw: started.append(args) or None
    )
    with contextlib.ExitStack() as stack:
        resolved, endpoint = localserver.resolve_endpoint(settings, stack, wait=False)
        endpoint.server.proc = None  # nothing was started: nothing to stop
    assert resolved.api_key and resolved.api_key != "sk-USERKEY"
    assert started and started[0][started[0].index("--api_key") + 1] == resolved.api_key


# -- item 6: two `serve` started together both run -----------------------------------------


def test_item6_a_second_serve_refuses_while_the_first_holds_the_home(tmp_path: Path):
    from assistant.localserver import serve_lock

    with serve_lock(tmp_path) as mine:
        assert mine
        with serve_lock(tmp_path) as second:
            assert not second  # flock is per open file: refused in-process too
        proc = cli("serve", home=tmp_path, process=True)
    one_line_error(proc, 2, "already runs")
    with serve_lock(tmp_path) as again:
        assert again  # released with its holder


# -- item 7: text that is not valid Unicode ------------------------------------------------


def test_item7_lone_surrogates_and_undecodable_names_are_ingested_whole(tmp_path: Path):
    home = tmp_path / "home"
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "surrogate.jsonl").write_text(
        '{"title": "Lone \\ud800 surrogate paper", "abstract": "An abstract \\udce9 here.",'
        ' "published": "2025-01-02"}\n',
        encoding="utf-8",
    )
    name = os.fsdecode(b"caf\xe9.jsonl")
    write_jsonl(
        folder / name,
        [
            {
                "title": "Cafe paper on attention",
                "abstract": "Attention in cafes.",
                "published": "2025-01-03",
            }
        ],
    )
    proc = cli("ingest", str(folder), home=home)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert unsafe_chars(proc.stdout + proc.stderr) == []
    summary = json.loads(cli("papers", "--json", home=home).stdout)
    assert summary["papers"] == 2 and summary["chunks"] >= 2, summary
    hits = json.loads(cli("search", "attention in cafes", "--json", home=home).stdout)
    assert any("Cafe" in h["title"] for h in hits["results"]), hits


@pytest.mark.parametrize(
    "args",
    [
        [b"search", b"caf\xe9"],
        [b"ask", b"caf\xe9?"],
        [b"sessions", b"list", b"--search", b"caf\xe9"],
        [b"search", b"x", b"--author", b"\xff"],
    ],
)
def test_item7_non_utf8_arguments_are_one_line(args: list[bytes], tmp_path: Path):
    proc = cli(*args, home=tmp_path)
    line = one_line_error(proc, 2, "UTF-8")
    assert line.startswith("Error:") and "UTF-8" in line, proc.stderr


# -- item 8: digest --out checked before any model call ------------------------------------


@pytest.mark.parametrize("where", ["dev-full", "folder", "under-a-file", "existing"])
def test_item8_digest_out_is_checked_before_any_model_call(where: str, tmp_path: Path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    existing = tmp_path / "old.md"
    existing.write_text("keep")
    out, extra = {
        "dev-full": ("/dev/full", ["--force"]),
        "folder": (str(tmp_path), ["--force"]),
        "under-a-file": (str(blocker / "sub" / "d.md"), []),
        "existing": (str(existing), []),
    }[where]
    with FakeServer(models=["smollm2"]) as server:
        proc = cli(
            "digest",
            "--week",
            "2025-W02",
            "--out",
            out,
            *extra,
            home=tmp_path / "h",
            **model_env(server),
        )
        assert server.chat_requests == [] and server.model_requests == []
    one_line_error(proc, 2, "--out" if where != "existing" else "exists")
    assert existing.read_text() == "keep"


# -- item 9: URLs validated when settings are read -----------------------------------------


@pytest.mark.parametrize(
    "var,value",
    [
        ("OPENAI_BASE_URL", "http://127.0.0.1:abc/v1"),
        ("ASSISTANT_CHROMA_URL", "http://[::1"),
        ("OPENAI_BASE_URL", "ftp://u:pw-SECRET@host/v1"),
    ],
)
def test_item9_bad_urls_are_one_line_at_start(var: str, value: str, tmp_path: Path):
    proc = cli("papers", home=tmp_path, **{var: value})
    one_line_error(proc, 2, var)
    assert "pw-SECRET" not in proc.stderr


# -- item 10: dates that overflow ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "0001-01-01", "--until", "0001-01-07"],
        ["--until", "9999-12-31"],
        ["--week", "9999-W52"],
    ],
)
def test_item10_digest_dates_out_of_range_are_one_line(args: list[str], tmp_path: Path):
    with FakeServer(models=["smollm2"]) as server:
        proc = cli("digest", *args, home=tmp_path, **model_env(server))
    one_line_error(proc, 2)
    assert "OverflowError" not in proc.stderr


# -- item 11: eval set parsing -------------------------------------------------------------


GOOD_Q = {
    "id": "q1",
    "question": "What is attention?",
    "expected_titles": ["A"],
    "answer_contains": [["attention"]],
    "answerable": True,
    "kind": "single",
}


@pytest.mark.parametrize(
    "line,field",
    [
        (json.dumps({**GOOD_Q, "question": None}).encode(), "question"),
        (json.dumps({**GOOD_Q, "id": ["a", "b"]}).encode(), "id"),
        (json.dumps({**GOOD_Q, "expected_titles": None}).encode(), "expected_titles"),
        (json.dumps(GOOD_Q).encode()[:-2] + b' \xff"}', "UTF-8"),
    ],
)
def test_item11_eval_set_errors_name_file_line_and_field(line: bytes, field: str, tmp_path: Path):
    qset = tmp_path / "set.jsonl"
    qset.write_bytes(json.dumps({**GOOD_Q, "id": "q0"}).encode() + b"\n" + line + b"\n")
    proc = cli("eval", "run", "--retrieval-only", "--set", str(qset), home=tmp_path / "h")
    line = one_line_error(proc, 2, f"{qset}:2", field)
    assert f"{qset}:2" in line and field in line, proc.stderr


# -- item 12: session ids past SQLite's integers -------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["sessions", "show", "99999999999999999999"],
        ["sessions", "delete", "99999999999999999999"],
        ["sessions", "export", "99999999999999999999"],
        ["ask", "--session", "99999999999999999999", "What?"],
    ],
)
def test_item12_huge_session_ids_are_one_line(args: list[str], tmp_path: Path):
    proc = cli(*args, home=tmp_path)
    one_line_error(proc, 2)
    assert "OverflowError" not in proc.stderr


# -- item 13: invalid numbers in settings --------------------------------------------------


@pytest.mark.parametrize(
    "var,value",
    [
        ("ASSISTANT_CONTEXT_WINDOW", "-5"),
        ("ASSISTANT_CONTEXT_WINDOW", "0"),
        ("ASSISTANT_TIMEOUT", "-1"),
        ("ASSISTANT_TIMEOUT", "0"),
        ("ASSISTANT_TIMEOUT", "nan"),
        ("ASSISTANT_TIMEOUT", "inf"),
        ("ASSISTANT_LOCAL_THREADS", "0"),
        ("ASSISTANT_LOCAL_THREADS", "two"),
    ],
)
def test_item13_invalid_numbers_in_settings_are_refused(
    var: str, value: str, tmp_path: Path, monkeypatch
):
    from assistant.errors import UsageError

    monkeypatch.setenv(var, value)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=var):
        Settings.load(home=tmp_path)
    proc = cli("sessions", "list", home=tmp_path, **{var: value})
    one_line_error(proc, 2, var)


# -- item 14: a 20 MB reply is stored whole ------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_item14_a_huge_reply_is_capped_and_says_so(stream: bool):
    from assistant.llm import MAX_REPLY_CHARS, ModelClient

    huge = "word " * (MAX_REPLY_CHARS // 2)  # two and a half times the cap
    with FakeServer(models=["smollm2"]) as server:
        if stream:
            server.add_stream([huge[i : i + 4096] for i in range(0, len(huge), 4096)])
        else:
            server.add_reply(huge)
        client = ModelClient(
            Settings(base_url=server.url, model="smollm2", timeout=10.0), max_retries=0
        )
        result = client.chat([{"role": "user", "content": "hi"}], stream=stream)
    assert len(result.text) <= MAX_REPLY_CHARS
    assert result.text and huge.startswith(result.text.rstrip())
    assert result.capped and result.finish_reason == "length"
    assert client.capped_replies == 1


# -- item 15: SIGTERM ends ingest, reindex and digest silently -----------------------------


def _terminate_when(proc: subprocess.Popen, ready: threading.Event, timeout: float = 240) -> str:
    """SIGTERM `proc` once `ready` is set; its stderr."""
    assert ready.wait(timeout), "the command never got to the point to interrupt"
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    return err


def _watch_stderr(proc: subprocess.Popen, needle: str, ready: threading.Event, into: list[str]):
    def run() -> None:
        for line in proc.stderr:
            into.append(line)
            if needle in line:
                ready.set()

    threading.Thread(target=run, daemon=True).start()


@pytest.mark.parametrize("command", ["ingest", "reindex"])
def test_item15_sigterm_during_ingest_or_reindex_says_what_was_kept(
    command: str, plain_home: Path, tmp_path: Path
):
    import shutil

    from assistant.store import Library

    home = tmp_path / "home"
    shutil.copytree(plain_home, home)
    data = write_jsonl(
        tmp_path / "more.jsonl",
        [{"title": "New one", "abstract": "Attention heads again.", "published": "2025-01-05"}],
    )
    library = Library.open(make_settings(home))
    args = ["ingest", str(data)] if command == "ingest" else ["reindex"]
    with library.write_lock():  # the command waits for it, and says so: a known moment
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", *args],
            cwd=ROOT,
            env=env_for(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready, lines = threading.Event(), []
        _watch_stderr(proc, "waiting for another", ready, lines)
        assert ready.wait(240), "".join(lines)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    err = "".join(lines)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "again" in err and "Traceback" not in err, err
    assert json.loads(cli("papers", "--json", home=home).stdout)["papers"] == 3


def test_item15_sigterm_during_digest_says_nothing_was_written(plain_home: Path, tmp_path: Path):
    with FakeServer(models=["smollm2"]) as server:
        for _ in range(20):
            server.add_hang(60)
        out = tmp_path / "d.md"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "assistant",
                "digest",
                "--since",
                "2025-01-01",
                "--until",
                "2025-01-07",
                "--out",
                str(out),
            ],
            cwd=ROOT,
            env=env_for(plain_home, **model_env(server)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 240
        while not server.chat_requests and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert server.chat_requests, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "no digest was written" in err and "Traceback" not in err
    assert not out.exists()


# -- done-when: no key, in any command's output --------------------------------------------


def test_no_command_prints_the_api_key_or_a_url_password(hostile_home: Path, tmp_path: Path):
    """OPENAI_API_KEY and a password inside OPENAI_BASE_URL / ASSISTANT_CHROMA_URL: grep
    every command's output (and the files they write) for them."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(hostile_home, home)
    key, url_pw = "sk-LEAKCHECK-0123456789", "urlpass-LEAKCHECK"
    data = write_jsonl(tmp_path / "more.jsonl", [dict(HOSTILE_RECORDS[2], title="Key test")])
    outputs: list[str] = []
    with FakeServer(models=["smollm2"]) as server:
        port = server.url.split(":")[2].split("/")[0]
        env = {
            **model_env(server),
            "OPENAI_API_KEY": key,
            "OPENAI_BASE_URL": f"http://user:{url_pw}@127.0.0.1:{port}/v1",
        }
        commands = [
            ["doctor"],
            ["doctor", "--json"],
            ["ingest", str(data)],
            ["search", "attention"],
            ["papers", "--json"],
            ["ask", "What is attention?", "--no-stream"],
            ["ask", "What is attention?", "--json"],
            ["ask", "What is attention?", "--model", "no-such-model"],
            ["sessions", "list"],
            ["sessions", "show", "1"],
            ["sessions", "export", "1", "-o", str(tmp_path / "s.md")],
            [
                "digest",
                "--since",
                "2025-01-01",
                "--until",
                "2025-01-07",
                "--out",
                str(tmp_path / "d.md"),
            ],
            ["eval", "run", "--limit", "1", "--out", str(tmp_path / "run")],
            ["reindex"],
        ]
        for args in commands:
            proc = cli(*args, home=home, **env)
            assert "Traceback" not in proc.stderr, (args, proc.stderr)
            outputs.append(proc.stdout + proc.stderr)
        server.add_error(401, f"bad key {key} for http://user:{url_pw}@host")
        proc = cli("ask", "What?", "--no-stream", home=home, **env)
        outputs.append(proc.stdout + proc.stderr)
    for chroma in (f"http://admin:{url_pw}@127.0.0.1:1", f"http://admin:{url_pw}@[::1"):
        proc = cli("papers", home=home, OPENAI_API_KEY=key, ASSISTANT_CHROMA_URL=chroma)
        outputs.append(proc.stdout + proc.stderr)
    written = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for text in outputs + written:
        assert "LEAKCHECK" not in text, text[-2000:]
