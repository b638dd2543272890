"""The bundled model, `assistant serve`, `doctor` and `ask` as a CLI user runs them.

The tests marked "real model" start llama.cpp's server with SmolLM2 through the
commands themselves (no OPENAI_BASE_URL), so they are slow: there are few of them,
and each checks several things. Every one also checks that no llama.cpp server
is left behind: a server is recognised as ours by its command line and the
unique ASSISTANT_HOME it inherited.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.doctor import CHECK_NAMES

from .cli_runner import run_assistant
from .conftest import embed_model_dir


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ASSISTANT_MODEL", "ASSISTANT_LOCAL_MODEL")
    }
    env["ASSISTANT_HOME"] = str(home)
    env["ASSISTANT_CONTEXT_WINDOW"] = "4096"
    if embed_model_dir():
        env["ASSISTANT_EMBED_MODEL_DIR"] = str(embed_model_dir())
    env.update(extra)
    return env


def _run(
    *args: str, home: Path, cwd: Path, stdin: str | None = None, **extra: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        cwd=cwd,
        env=_env(home, **extra),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=600,
    )


def _servers_of(home: Path) -> list[int]:
    """Live llama.cpp server processes started on behalf of `home` (by any command)."""
    marker = f"ASSISTANT_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if b"llama_cpp.server" not in cmdline:
                continue
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


# -- no model server needed ---------------------------------------------------------------


def test_doctor_with_nothing_configured_prints_every_check_and_fails(tmp_path: Path):
    home = tmp_path / "home"
    # In this process (tests/cli_runner.py): with the bundled model off nothing is started.
    env = _env(home, ASSISTANT_LOCAL_MODEL="off")
    proc = run_assistant(["doctor", "--json"], env=env, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["configured"] is False
    assert [c["name"] for c in report["checks"]] == list(CHECK_NAMES)
    rows = {c["name"]: c for c in report["checks"]}
    assert "OPENAI_BASE_URL" in rows["endpoint"]["detail"] and not rows["endpoint"]["ok"]
    assert "OPENAI_BASE_URL" in rows["endpoint"]["fix"]
    assert rows["embedder"]["ok"], rows["embedder"]  # later checks still ran
    assert not rows["store"]["ok"] and "assistant ingest" in rows["store"]["fix"]
    assert all(c["fix"] for c in report["checks"] if not c["ok"])

    proc = run_assistant(["doctor"], env=env, cwd=tmp_path)
    assert proc.returncode == 1
    for name in CHECK_NAMES:
        assert name in proc.stdout
    assert "Nothing is configured" in proc.stdout


def test_dotenv_base_url_does_not_get_the_environment_key(tmp_path: Path):
    """A .env in the working folder names a host: the environment's key is not sent there."""
    from assistant.localserver import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    (tmp_path / ".env").write_text(f"OPENAI_BASE_URL={url}\n")
    proc = run_assistant(
        ["doctor", "--json"],
        env=_env(tmp_path / "home", OPENAI_API_KEY="sk-secret-from-the-environment-1234"),
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "sk-secret" not in proc.stdout + proc.stderr
    assert "warning: OPENAI_API_KEY from the environment is not sent" in proc.stderr
    settings_row = json.loads(proc.stdout)["checks"][0]
    assert settings_row["name"] == "settings" and not settings_row["ok"]
    assert str((tmp_path / ".env").resolve()) in settings_row["detail"]
    assert "api_key=(not set)" in settings_row["detail"]
    assert "--env-file" in settings_row["fix"]


def test_no_endpoint_and_no_local_extra_names_both_ways_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    import contextlib

    from assistant import localserver
    from assistant.llm import NotConfigured
    from assistant.settings import Settings

    monkeypatch.setattr(localserver, "missing_parts", lambda: ["llama_cpp"])
    with contextlib.ExitStack() as stack, pytest.raises(NotConfigured) as caught:
        localserver.resolve_endpoint(Settings(home=tmp_path), stack)
    assert "OPENAI_BASE_URL" in str(caught.value) and ".[local]" in str(caught.value)


def test_stale_serve_state_is_ignored_and_removed(tmp_path: Path):
    from assistant.localserver import free_port, running_serve, state_path

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state_path(tmp_path).write_text(
        json.dumps({"url": f"http://127.0.0.1:{free_port()}/v1", "pid": dead.pid})
    )
    assert running_serve(tmp_path) is None
    assert not state_path(tmp_path).exists()
    # Alive but not serving (a pid reused by another program): ignored, file kept.
    state_path(tmp_path).write_text(
        json.dumps({"url": f"http://127.0.0.1:{free_port()}/v1", "pid": os.getpid()})
    )
    assert running_serve(tmp_path) is None
    state_path(tmp_path).write_text("{not json")
    assert running_serve(tmp_path) is None


# -- real model: the bundled SmolLM2 through llama.cpp's server -----------------------------


README_QUESTION = "How does GaLore reduce memory when training LLMs?"  # the README's


def test_bundled_ask_from_stdin(sample_copy: Path, tmp_path: Path):
    """The README's main job: no endpoint set, a piped question, a cited answer, stored
    as the session `-c` and `assistant chat` continue (`-c` is tested against `serve`
    below: each start of the bundled server costs seconds)."""
    from assistant.sessions import SessionStore

    proc = _run("ask", "--json", home=sample_copy, cwd=tmp_path, stdin=README_QUESTION + "\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bundled SmolLM2-135M" in proc.stderr and "OPENAI_BASE_URL" in proc.stderr
    first = json.loads(proc.stdout)
    assert not first["abstained"] and first["citations"], first
    assert any("GaLore" in s["title"] for s in first["sources"])
    assert _servers_of(sample_copy) == []
    with SessionStore.open(sample_copy) as store:
        messages = store.messages(first["session_id"])
        assert [m.role for m in messages] == ["user", "assistant"]
        assert messages[0].content == README_QUESTION
        assert messages[1].answer and messages[1].answer.citations
        assert store.latest_session().id == first["session_id"]  # what `-c` and `chat` open


def _seed_galore_session(home: Path) -> int:
    """A stored turn, as the bundled `ask` above leaves one."""
    from assistant.answer import Answer
    from assistant.sessions import SessionStore

    title = "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection"
    answer = Answer.from_dict(
        {
            "question": README_QUESTION,
            "answer": "GaLore projects gradients into a low-rank subspace, which cuts the "
            "memory of optimizer states [1].",
            "citations": [{"n": 1, "paper_id": "galore", "title": title, "supported": True}],
            "sources": [{"n": 1, "paper_id": "galore", "title": title, "passage": ""}],
        }
    )
    with SessionStore.open(home) as store:
        session = store.create_session(model="smollm2", filters={"k": 4})
        store.add_message(session.id, "user", README_QUESTION)
        store.add_message(session.id, "assistant", answer.text, answer=answer)
        return session.id


def test_failed_and_interrupted_ask_leave_no_server(sample_copy: Path, tmp_path: Path):
    # Fails after the bundled server was started (it starts before the embedder loads).
    proc = _run(
        "ask",
        "What is GaLore?",
        home=sample_copy,
        cwd=tmp_path,
        ASSISTANT_EMBED_MODEL_DIR=str(tmp_path / "no-model"),
    )
    assert proc.returncode == 2, proc.stderr
    assert "using the bundled" in proc.stderr and "no-model" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _servers_of(sample_copy) == []

    # Ctrl-C while the server is up.
    # As from a terminal: a runner started in the background (nohup, `&` in a script)
    # passes SIGINT down ignored, and Python then never raises KeyboardInterrupt.
    ask = subprocess.Popen(
        [sys.executable, "-m", "assistant", "ask", "What is GaLore?"],
        cwd=tmp_path,
        env=_env(sample_copy),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not _servers_of(sample_copy):
            assert ask.poll() is None and time.monotonic() < deadline, ask.communicate()
            time.sleep(0.1)
        time.sleep(1.0)  # let it get into the model load, not only the fork
        ask.send_signal(signal.SIGINT)
        _, err = ask.communicate(timeout=120)
    finally:
        if ask.poll() is None:
            ask.kill()
    # 130, or death by SIGINT when the signal lands inside an import, before the command's
    # handler can turn it into 130: a shell reports both as 130.
    assert ask.returncode in (130, -signal.SIGINT), err
    assert "Traceback" not in err
    assert _servers_of(sample_copy) == []


def test_doctor_passes_with_the_bundled_model_and_ask_and_doctor_use_a_running_serve(
    sample_copy: Path, tmp_path: Path
):
    from assistant.sessions import SessionStore

    proc = _run("doctor", "--json", home=sample_copy, cwd=tmp_path)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report
    assert [c["name"] for c in report["checks"]] == list(CHECK_NAMES)
    assert all(c["ok"] for c in report["checks"])
    assert "bundled SmolLM2" in report["checks"][1]["detail"]
    assert _servers_of(sample_copy) == []

    serve = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve"],
        cwd=tmp_path,
        env={**_env(sample_copy), "ASSISTANT_LOCAL_THREADS": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = serve.stdout.readline().strip()  # printed once the server answers
        assert url.startswith("http://127.0.0.1:"), serve.stderr.read() if not url else url
        (served,) = _servers_of(sample_copy)
        # ASSISTANT_LOCAL_THREADS reaches llama.cpp: one thread generating and one
        # reading prompts (whose default is every logical CPU), as asked.
        argv = Path(f"/proc/{served}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"--n_threads") + 1] == b"1"
        assert argv[argv.index(b"--n_threads_batch") + 1] == b"1"
        proc = _run("doctor", "--json", home=sample_copy, cwd=tmp_path)
        report = json.loads(proc.stdout)
        assert proc.returncode == 0, report
        assert f"`assistant serve` at {url}" in report["checks"][1]["detail"]
        assert _servers_of(sample_copy) == [served]  # shared: no second server was started

        # `ask -c` continues the latest session, on the running server too.
        session_id = _seed_galore_session(sample_copy)
        follow_up = "How much memory does it save?"
        proc = _run("ask", "-c", follow_up, "--json", home=sample_copy, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        answered = json.loads(proc.stdout)
        assert answered["session_id"] == session_id
        # SmolLM2 rewrote "it" from the stored turn, and the rewrite found the paper.
        assert "galore" in answered["standalone_question"].lower(), answered
        assert any("GaLore" in s["title"] for s in answered["sources"]), answered["sources"]
        assert _servers_of(sample_copy) == [served]
        serve.send_signal(signal.SIGINT)
        serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 130
    assert not (sample_copy / "serve.json").exists()
    assert _servers_of(sample_copy) == []
    with SessionStore.open(sample_copy) as store:
        messages = store.messages(session_id)
        assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
        assert messages[2].content == follow_up and messages[3].answer is not None
