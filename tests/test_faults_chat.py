"""Faults of the chat, the sessions file and `ask` that users hit (issue 10, items 3, 4, 10, 15).

Each test reproduces one fault the way a user meets it and asserts that
nothing stored is lost and the message names what really happened. The fake
server stands in for the model only where a real one cannot fail on cue (a
500 on one call, a connection closed after a few tokens, a hang); the
library, the embedder and the sessions file are the real ones.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
from textual.widgets import Input

from assistant.answer import Answer
from assistant.chat.service import ChatService
from assistant.cli import main
from assistant.errors import SessionsDamaged
from assistant.followup import Turn, condense
from assistant.llm import ModelClient, ModelTimeout
from assistant.sessions import DB_NAME, SessionStore
from assistant.sessions.repair import repair, restorable_rows
from assistant.settings import Settings
from assistant.tui.app import ChatApp

from .cli_runner import run_assistant
from .conftest import ROOT, make_settings
from .fakeserver import FakeServer
from .test_tui import (
    METASHIFT_ANSWER,
    QUESTION,
    SIZE,
    paste_and_send,
    run,
    seed,
    views,
    wait_for,
)

FOLLOW_UP = "How was it built?"
CUT_PIECES = ["MetaShift holds ", "12,868 sets of natural images ", "never sent"]
PARTIAL = "MetaShift holds 12,868 sets of natural images"


def fake_settings(home: Path, server: FakeServer, **changes) -> Settings:
    values = {
        "base_url": server.url,
        "model": "smollm2",
        "context_window": 4096,
        "timeout": 10.0,
        **changes,
    }
    return make_settings(home, **values)


def cli_env(home: Path, server: FakeServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY",)}
    env.update(
        ASSISTANT_HOME=str(home),
        OPENAI_BASE_URL=server.url,
        ASSISTANT_MODEL="smollm2",
        ASSISTANT_TIMEOUT="10",
        ASSISTANT_CONTEXT_WINDOW="4096",
    )
    model_dir = make_settings(home).embed_model_dir
    if model_dir is not None:
        env["ASSISTANT_EMBED_MODEL_DIR"] = str(model_dir)
    return env


# -- item 3: regenerate replaces the old turn only once the new answer is stored -------------


def test_regenerate_that_fails_keeps_the_old_question_and_answer(sample_copy: Path):
    session_id = seed(sample_copy)
    with FakeServer(models=["smollm2"]) as server:
        server.add_error(500, "regenerate exploded", headers={"x-should-retry": "false"})
        settings = fake_settings(sample_copy, server)

        async def scenario() -> None:
            app = ChatApp(settings, session_id=session_id)
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("ctrl+r")
                await wait_for(pilot, lambda: not app.replying, "the failed regenerate", 120)
                await app.workers.wait_for_complete()
                await pilot.pause()
                error = views(app, "error")[-1].body
                assert "regenerate exploded" in error and "previous answer is kept" in error
                assert [v.body for v in views(app, "user")] == [QUESTION]
                answers = views(app, "assistant")
                assert [v.body for v in answers] == [METASHIFT_ANSWER.text]
                assert not answers[0].has_class("-replaced")
                assert app.session_id == session_id and app.is_running

        run(scenario())
        assert len(server.chat_requests) == 1  # the regenerate did reach the model
    with SessionStore.open(sample_copy) as store:
        stored = store.messages(session_id)
    assert [(m.role, m.content) for m in stored] == [
        ("user", QUESTION),
        ("assistant", METASHIFT_ANSWER.text),
    ]
    assert stored[1].answer == METASHIFT_ANSWER


def test_regenerate_replaces_the_answer_once_the_new_one_is_stored(sample_copy: Path):
    session_id = seed(sample_copy)
    with SessionStore.open(sample_copy) as store:
        question_id, old_answer_id = (m.id for m in store.messages(session_id))
    new_text = "MetaShift is a collection of 12,868 sets of natural images [1]."
    with FakeServer(models=["smollm2"]) as server:
        server.add_stream([new_text[:20], new_text[20:]])
        settings = fake_settings(sample_copy, server)

        async def scenario() -> None:
            app = ChatApp(settings, session_id=session_id)
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("ctrl+r")
                await wait_for(pilot, lambda: not app.replying, "the regenerated answer", 120)
                await app.workers.wait_for_complete()
                await pilot.pause()
                assert views(app, "error") == []
                answers = views(app, "assistant")
                assert len(answers) == 1 and "12,868 sets" in answers[0].body
                assert answers[0].message_id != old_answer_id

        run(scenario())
    with SessionStore.open(sample_copy) as store:
        stored = store.messages(session_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[0].id == question_id and stored[0].content == QUESTION
    assert stored[1].id != old_answer_id and "12,868 sets" in stored[1].content


def test_regenerate_cancelled_keeps_the_old_answer(sample_copy: Path):
    session_id = seed(sample_copy)
    with FakeServer(models=["smollm2"]) as server:
        server.add_stream([f"word{i} " for i in range(200)], delay_s=0.2)
        settings = fake_settings(sample_copy, server)

        async def scenario() -> None:
            app = ChatApp(settings, session_id=session_id)
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("ctrl+r")
                await wait_for(
                    pilot,
                    lambda: app._stream is not None and app._stream.text.strip(),
                    "the first regenerated words",
                    120,
                )
                await pilot.press("escape")
                await wait_for(pilot, lambda: not app.replying, "the cancelled regenerate", 120)
                await app.workers.wait_for_complete()
                await pilot.pause()
                assert "previous answer is kept" in views(app)[-1].body
                answers = views(app, "assistant")
                assert [v.body for v in answers] == [METASHIFT_ANSWER.text]

        run(scenario())
    with SessionStore.open(sample_copy) as store:
        stored = store.messages(session_id)
    assert [(m.role, m.content, m.status) for m in stored] == [
        ("user", QUESTION, "done"),
        ("assistant", METASHIFT_ANSWER.text, "done"),
    ]


# -- item 4: a stream cut mid-answer keeps what arrived and says what happened ---------------


def read_pty(master: int, into: list[bytes]) -> None:
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return
        if not data:
            return
        into.append(data)


def test_ask_stream_cut_leaves_the_partial_answer_on_the_terminal(sample_copy: Path):
    with FakeServer(models=["smollm2"]) as server:
        server.add_stream(CUT_PIECES, cut_after=2)
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "ask", QUESTION],
            cwd=ROOT,
            env={**cli_env(sample_copy, server), "TERM": "xterm"},
            stdout=slave,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        chunks: list[bytes] = []
        reader = threading.Thread(target=read_pty, args=(master, chunks))
        reader.start()
        stderr = proc.stderr.read().decode()
        proc.wait(timeout=120)
        reader.join(timeout=30)
        os.close(master)
    screen = b"".join(chunks).decode()
    # The live view erases its lines when it stops; what comes after the last erase
    # is what stays on the screen.
    remains = screen.rsplit("\x1b[2K", 1)[-1]
    assert PARTIAL in remains, screen
    assert "cut off" in remains
    assert proc.returncode == 1
    assert "closed the connection mid-answer" in stderr
    assert "is the server running" not in stderr and "Traceback" not in stderr


def test_ask_json_stream_cut_returns_the_partial_marked_partial(sample_copy: Path):
    with FakeServer(models=["smollm2"]) as server:
        server.add_stream(CUT_PIECES, cut_after=2)
        proc = run_assistant(["ask", QUESTION, "--json"], env=cli_env(sample_copy, server))
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["partial"] is True and data["answer"] == PARTIAL
    assert "closed the connection mid-answer" in data["error"]
    assert "closed the connection mid-answer" in proc.stderr and "Traceback" not in proc.stderr


def test_ask_no_stream_reply_cut_says_the_server_answered_then_broke(sample_copy: Path):
    with FakeServer(models=["smollm2"]) as server:
        for _ in range(4):  # the first try and three retries: nothing was shown yet
            server.add_cut_reply("MetaShift holds 12,868 sets [1].", keep_bytes=30)
        proc = run_assistant(["ask", QUESTION, "--no-stream"], env=cli_env(sample_copy, server))
        assert len(server.chat_requests) == 4
    assert proc.returncode == 1
    assert "accepted the request but closed the connection before the whole reply" in proc.stderr
    assert "cannot reach" not in proc.stderr and "is the server running" not in proc.stderr
    errors = [
        line for line in proc.stderr.strip().splitlines() if not line.startswith("keyword index:")
    ]  # the index's own progress notes
    assert "Traceback" not in proc.stderr and len(errors) == 1, proc.stderr


# -- item 10: a damaged sessions.db is named, repaired, and never crashes the chat -----------


def fill_sessions(home: Path, sessions: int = 12, per_session: int = 6) -> list[int]:
    """Enough sessions and messages to fill several database pages."""
    ids = []
    with SessionStore.open(home) as store:
        for i in range(sessions):
            session = store.create_session()
            ids.append(session.id)
            for j in range(per_session // 2):
                store.add_message(session.id, "user", f"question {i}.{j} " + "q" * 300)
                store.add_message(
                    session.id,
                    "assistant",
                    f"answer {i}.{j} " + "a" * 300,
                    answer=Answer.from_dict({"answer": f"answer {i}.{j}"}),
                )
    return ids


def overwrite_table_root(db: Path, table: str) -> None:
    """Overwrite one page (the root of `table`) with bytes that are no b-tree page."""
    with sqlite3.connect(db) as con:
        page = con.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    data = bytearray(db.read_bytes())
    data[(page - 1) * size : page * size] = b"\xff" * size
    db.write_bytes(bytes(data))


def table_leaves(data: bytes, size: int, page: int) -> list[int]:
    """The leaf pages of the table b-tree rooted at `page`, in key order (sqlite's file format:
    an interior page, type 0x05, holds a child page number at the start of each cell and a
    right-most child at byte 8; a leaf's type is 0x0D)."""
    body = data[(page - 1) * size : page * size]
    if body[0] == 0x0D:
        return [page]
    cells = int.from_bytes(body[3:5], "big")
    offsets = [int.from_bytes(body[12 + 2 * i : 14 + 2 * i], "big") for i in range(cells)]
    children = [int.from_bytes(body[o : o + 4], "big") for o in offsets]
    children.append(int.from_bytes(body[8:12], "big"))
    return [leaf for child in children for leaf in table_leaves(data, size, child)]


def damage(home: Path, how: str) -> Path:
    db = home / DB_NAME
    if how == "garbage":
        db.write_bytes(b"this is not a database, just bytes " * 300)
    else:
        overwrite_table_root(db, "sessions")
    return db


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return run_assistant(args, env={**os.environ, "ASSISTANT_HOME": str(home)})


@pytest.mark.parametrize("how", ["garbage", "page"])
def test_damaged_sessions_file_is_one_line_from_list_show_and_chat(
    tmp_path: Path, how: str, capsys
):
    home = tmp_path / "home"
    ids = fill_sessions(home)
    db = damage(home, how)
    before = db.read_bytes()
    for args in (["sessions", "list"], ["sessions", "show", str(ids[0])]):
        proc = run_cli(*args, home=home)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert str(db) in lines[0] and "damaged" in lines[0]
        assert "assistant sessions repair" in lines[0]
    # The chat checks the file before its screen opens (no terminal is needed to fail).
    assert main(["--home", str(home), "chat", "--new"]) == 1
    err = capsys.readouterr().err
    assert str(db) in err and "damaged" in err and "sessions repair" in err
    assert db.read_bytes() == before  # reporting the damage changed nothing


def test_sessions_repair_moves_the_damaged_file_aside_and_keeps_what_is_readable(tmp_path: Path):
    home = tmp_path / "home"
    fill_sessions(home, sessions=12, per_session=6)
    db = damage(home, "page")  # the sessions table's page: every message is still readable
    damaged_bytes = db.read_bytes()
    proc = run_cli("sessions", "repair", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    aside = Path(report["moved_to"])
    assert (
        report["damaged"] and aside.parent == home and aside.name.startswith(f"{DB_NAME}.damaged-")
    )
    assert aside.read_bytes() == damaged_bytes  # moved, never changed
    assert report["recovered_messages"] == 12 * 6
    # The session rows were on the damaged page: each comes back under its old id.
    with SessionStore.open(home) as store:
        sessions = store.list_sessions()
        assert len(sessions) == 12 and all(s.message_count == 6 for s in sessions)
        first = store.messages(min(s.id for s in sessions))
        assert first[0].content.startswith("question 0.0") and first[1].answer == Answer.from_dict(
            {"answer": "answer 0.0"}
        )
    proc = run_cli("sessions", "list", home=home)
    assert proc.returncode == 0 and "Recovered session" in proc.stdout

    # Garbage: nothing to salvage, but the file is kept and a fresh one works.
    db.write_bytes(b"\x00garbage" * 1000)
    proc = run_cli("sessions", "repair", home=home)
    assert proc.returncode == 0, proc.stderr
    assert "moved it to" in proc.stdout and "0 session(s)" in proc.stdout
    moved = [p for p in home.glob(f"{DB_NAME}.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(moved) == 2
    assert run_cli("sessions", "list", home=home).stdout.strip() == "No sessions."


def test_sessions_repair_leaves_a_sound_file_alone(tmp_path: Path):
    home = tmp_path / "home"
    fill_sessions(home, sessions=2)
    before = (home / DB_NAME).read_bytes()
    report = repair(home)
    assert not report.damaged and report.moved_to is None
    assert (home / DB_NAME).read_bytes() == before
    assert list(home.glob(f"{DB_NAME}.damaged-*")) == []


def test_repair_salvages_rows_past_a_damaged_messages_page(tmp_path: Path):
    home = tmp_path / "home"
    fill_sessions(home, sessions=30, per_session=10)  # messages span many leaf pages
    db = home / DB_NAME
    with sqlite3.connect(db) as con:
        size = con.execute("PRAGMA page_size").fetchone()[0]
        messages_root = con.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'messages'"
        ).fetchone()[0]
    con.close()
    data = bytearray(db.read_bytes())
    # The messages table's leaf pages (the search index's tables have leaves too).
    # Damage the fourth: its rows are lost, the others stay readable.
    leaves = table_leaves(data, size, messages_root)
    assert len(leaves) > 5
    leaf = leaves[3]
    data[(leaf - 1) * size : leaf * size] = b"\xff" * size
    db.write_bytes(bytes(data))
    report = repair(home)
    assert report.damaged and not report.complete
    assert 0 < 300 - report.messages < 30  # one page of rows lost, the rest kept
    assert report.sessions == 30


def test_salvaged_rows_keep_their_ids_and_a_lost_session_is_named_after_its_id(tmp_path: Path):
    """What `repair` stores of the rows it read: ids kept, unusable and repeated rows
    dropped, a session row that was lost recreated for its messages, and each session's
    last use moved up to its newest message."""
    day = "2026-01-0{}T00:00:00+00:00".format
    sessions = [
        {"id": 3, "title": "Kept", "created": day(1), "updated": day(1), "filters": '{"k": 4}'},
        {"id": 3, "title": "a second row with the same id"},
        {"id": "not a number", "title": "no usable key"},
    ]
    messages = [
        {"id": 10, "session_id": 3, "role": "user", "content": "Why?", "created": day(2)},
        {"id": 10, "session_id": 3, "role": "user", "content": "repeated id", "created": day(2)},
        {
            "id": 11,
            "session_id": 7,
            "role": "assistant",
            "content": "Because.",
            "created": day(3),
            "answer": '{"answer": "Because."}',
            "status": "cancelled",
        },
        {"id": 12, "session_id": 7, "role": "system", "content": "no such role"},
        {"id": 13, "session_id": 7, "role": "user", "content": None},
    ]
    kept_sessions, kept_messages = restorable_rows(sessions, messages, now=day(9))
    with SessionStore(tmp_path / DB_NAME) as store:
        store.restore(kept_sessions, kept_messages)
        kept, lost = store.get_session(3), store.get_session(7)
        assert (kept.title, kept.filters, kept.updated) == ("Kept", {"k": 4}, day(2))
        assert (lost.title, lost.created, lost.updated) == ("Recovered session 7", day(3), day(3))
        assert [(m.id, m.content) for m in store.messages(3)] == [(10, "Why?")]
        [answer] = store.messages(7)
        assert (answer.id, answer.status, answer.answer) == (
            11,
            "cancelled",
            Answer.from_dict({"answer": "Because."}),
        )
        assert [s.id for s in store.list_sessions()] == [7, 3]


def test_damage_found_mid_chat_ends_the_app_with_its_one_line(sample_copy: Path, monkeypatch):
    session_id = seed(sample_copy)
    settings = make_settings(
        sample_copy,
        base_url="http://127.0.0.1:9/v1",
        model="smollm2",
        context_window=4096,
        timeout=10.0,
    )

    def malformed() -> str:
        raise sqlite3.DatabaseError("database disk image is malformed")

    async def scenario() -> ChatApp:
        app = ChatApp(settings, session_id=session_id)
        async with app.run_test(size=SIZE):
            monkeypatch.setattr(app.chat.store, "_now", malformed)  # the next write finds damage
            prompt = app.query_one("#prompt", Input)
            prompt.value = QUESTION
            await prompt.action_submit()
            # The app ends itself: wait for that without the pilot (it waits on a screen).
            for _ in range(600):
                if app.return_code is not None:
                    break
                await asyncio.sleep(0.05)
        return app

    app = asyncio.run(scenario())
    assert isinstance(app.fatal_error, SessionsDamaged)
    assert "sessions repair" in str(app.fatal_error)
    assert app.return_code == 1


def test_chat_that_crashes_never_exits_0(tmp_path: Path, monkeypatch):
    async def crash(self) -> None:
        raise RuntimeError("injected crash while mounting")

    headless_run = ChatApp.run
    monkeypatch.setattr(ChatApp, "on_mount", crash)
    monkeypatch.setattr(ChatApp, "run", lambda self, **kw: headless_run(self, headless=True))
    home = tmp_path / "home"
    assert main(["--home", str(home), "--base-url", "http://127.0.0.1:9/v1", "chat", "--new"]) == 1


# -- item 15: the follow-up rewrite honours Esc and does not wait a timeout out twice --------


def test_condense_stops_at_once_when_cancelled_during_a_hang():
    history = [Turn("Which papers reduce memory when training LLMs?")]
    with FakeServer(models=["fake-model"]) as server:
        server.add_hang(600)
        client = ModelClient(Settings(base_url=server.url, model="fake-model", timeout=600))
        cancel = threading.Event()
        result: dict[str, str] = {}
        worker = threading.Thread(
            target=lambda: result.update(q=condense(history, FOLLOW_UP, client, cancel=cancel))
        )
        worker.start()
        deadline = time.monotonic() + 60
        while not server.chat_requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.chat_requests, "the rewrite never reached the model"
        cancel.set()
        worker.join(timeout=30)  # the server hangs for 600 s and the client waits as long
        assert not worker.is_alive()
    assert result["q"] == f"{FOLLOW_UP} (following: {history[0].question})"


def test_escape_while_a_follow_up_is_rewritten_stops_it(sample_copy: Path):
    session_id = seed(sample_copy)
    with FakeServer(models=["smollm2"]) as server:
        server.add_hang(600)  # the rewrite of the follow-up never gets an answer
        settings = fake_settings(sample_copy, server, timeout=600.0)

        async def scenario() -> None:
            app = ChatApp(settings, session_id=session_id)
            async with app.run_test(size=SIZE) as pilot:
                await paste_and_send(pilot, FOLLOW_UP)
                await wait_for(pilot, lambda: bool(server.chat_requests), "the rewrite", 120)
                await pilot.press("escape")
                # The client would wait 600 s for the hung rewrite; Esc ends it now.
                await wait_for(pilot, lambda: not app.replying, "the cancelled question", 60)
                await app.workers.wait_for_complete()
                await pilot.pause()
                assert "Cancelled before the model wrote anything" in views(app)[-1].body
                assert app.query_one("#prompt", Input).value == FOLLOW_UP

        run(scenario())
        assert len(server.chat_requests) == 1  # the answer call saw the same Esc
    with SessionStore.open(sample_copy) as store:
        assert [m.role for m in store.messages(session_id)] == ["user", "assistant"]


def test_follow_up_timeout_is_reported_once_not_waited_out_twice(tmp_path: Path, sample_retriever):
    with FakeServer(models=["fake-model"]) as server:
        server.add_hang(600).add_hang(600)
        settings = make_settings(
            tmp_path, base_url=server.url, model="fake-model", context_window=4096, timeout=1.0
        )
        service = ChatService(settings)
        service.retriever = sample_retriever
        service.ready.set()
        history = [Turn(QUESTION, METASHIFT_ANSWER)]
        with pytest.raises(ModelTimeout):
            service.answer(FOLLOW_UP, history)
        service.close()
        assert len(server.chat_requests) == 1  # the rewrite's timeout ends the question


def test_condense_falls_back_on_endpoint_errors_and_lets_bugs_through():
    history = [Turn("Which papers reduce memory when training LLMs?")]
    with FakeServer(models=["fake-model"]) as server:
        server.add_error(400, "context too long")
        client = ModelClient(Settings(base_url=server.url, model="fake-model", timeout=10))
        assert condense(history, FOLLOW_UP, client) == (
            f"{FOLLOW_UP} (following: {history[0].question})"
        )

    class BuggyClient:
        def chat(self, *args, **kwargs):
            raise TypeError("chat() got an unexpected keyword argument")

    with pytest.raises(TypeError):
        condense(history, FOLLOW_UP, BuggyClient())  # type: ignore[arg-type]
