"""Chat sessions in SQLite: CRUD, search, schema upgrades, export, and the CLI over them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from assistant.errors import StoreError
from assistant.sessions import (
    DB_NAME,
    DEFAULT_TITLE,
    MIGRATIONS,
    SCHEMA_VERSION,
    SessionNotFound,
    SessionStore,
)

from .conftest import ROOT

ANSWER = {
    "question": "Which method quantizes the projection to INT4?",
    "standalone_question": None,
    "answer": "Q-GaLore quantizes the projection matrices to INT4 [1].",
    "citations": [
        {
            "n": 1,
            "paper_id": "arxiv:2407.08296",
            "title": "Q-GaLore: Quantized GaLore with INT4 Projection",
            "supported": True,
        }
    ],
    "sources": [
        {
            "n": 1,
            "paper_id": "arxiv:2407.08296",
            "title": "Q-GaLore: Quantized GaLore with INT4 Projection",
            "published": "2024-07-11",
            "passage": "We introduce Q-GaLore, which quantizes the projection to INT4.",
            "url": "https://arxiv.org/abs/2407.08296",
            "similarity": 0.71,
        },
        {
            "n": 2,
            "paper_id": "arxiv:0000.00001",
            "title": "An uncited paper",
            "published": None,
            "passage": "...",
            "url": None,
            "similarity": 0.4,
        },
    ],
    "abstained": False,
    "model": "smollm2",
}


class Clock:
    """A clock the test moves by hand, so 'newest first' is not left to luck."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def store(tmp_path: Path):
    with SessionStore.open(tmp_path, clock=Clock()) as s:
        yield s


def fill(store: SessionStore, question: str, answer: dict | None = None) -> int:
    session = store.create_session()
    store.add_message(session.id, "user", question)
    store.add_message(
        session.id, "assistant", (answer or ANSWER)["answer"], answer=answer or ANSWER
    )
    return session.id


def test_create_add_rename_delete(store: SessionStore):
    session = store.create_session(model="smollm2", filters={"since": "2024-01-01", "k": 4})
    assert session.title == DEFAULT_TITLE and session.message_count == 0
    store.add_message(session.id, "user", "Which method quantizes the projection to INT4?")
    reply = store.add_message(session.id, "assistant", ANSWER["answer"], answer=ANSWER)
    got = store.get_session(session.id)
    # The first question names the session; the answer keeps its citations and sources.
    assert got.title == "Which method quantizes the projection to INT4?"
    assert got.message_count == 2 and got.model == "smollm2"
    assert got.filters == {"since": "2024-01-01", "k": 4}
    assert [m.role for m in store.messages(session.id)] == ["user", "assistant"]
    assert reply.answer == ANSWER
    assert [s["n"] for s in reply.cited_sources] == [1]
    assert reply.cited_sources[0]["supported"] is True

    store.rename_session(session.id, "  INT4   projections ")
    assert store.get_session(session.id).title == "INT4 projections"
    store.update_session(session.id, model="other", filters={"k": 8})
    assert store.get_session(session.id).model == "other"
    assert store.get_session(session.id).filters == {"k": 8}

    store.delete_session(session.id)
    with pytest.raises(SessionNotFound):
        store.get_session(session.id)
    assert store.messages(session.id) == []


def test_newest_first_and_paging(store: SessionStore):
    first = fill(store, "first question")
    second = fill(store, "second question")
    assert [s.id for s in store.list_sessions()] == [second, first]
    store.add_message(first, "user", "a follow-up")  # using a session moves it up
    assert [s.id for s in store.list_sessions()] == [first, second]
    assert store.latest_session().id == first

    store.bulk_add(second, [("user", f"q{i}", None) for i in range(120)])
    last = store.messages(second, limit=50)
    assert len(last) == 50 and last[-1].content == "q119" and last[0].content == "q70"
    earlier = store.messages(second, limit=50, before_id=last[0].id)
    assert earlier[-1].content == "q69"
    assert store.count_messages(second, before_id=last[0].id) == 72  # 70 + the first 2


def test_search_by_title_and_content(store: SessionStore):
    galore = fill(store, "Which method quantizes the projection to INT4?")
    meta = fill(
        store,
        "How many sets does MetaShift contain?",
        dict(ANSWER, answer="MetaShift has 12,868 sets of natural images [1]."),
    )
    store.rename_session(meta, "Distribution shift datasets")
    assert [s.id for s in store.search("distribution")] == [meta]  # title only
    assert [s.id for s in store.search("12,868")] == [meta]  # an answer's text
    assert [s.id for s in store.search("int4 QUANTIZES")] == [galore]  # every word, any case
    assert store.search("sea turtles") == []
    assert store.search("50%") == []  # LIKE wildcards are escaped


def test_history_pairs_answered_questions_only(store: SessionStore):
    session = fill(store, "Which method quantizes the projection to INT4?")
    store.add_message(session, "user", "a question whose answer failed")
    store.add_message(session, "digest", "# This week")
    history = store.history(session)
    assert [q for q, _ in history] == ["Which method quantizes the projection to INT4?"]
    assert history[0][1]["citations"][0]["title"].startswith("Q-GaLore")


def test_schema_version_and_v1_upgrade(tmp_path: Path):
    path = tmp_path / DB_NAME
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])  # exactly what a v1 assistant created
    db.execute(
        "INSERT INTO sessions VALUES (1, 'old chat', '2024-01-01T10:00:00+00:00', "
        "'2024-01-01T10:05:00+00:00')"
    )
    db.execute(
        "INSERT INTO messages VALUES (1, 1, 'user', 'What is GaLore?', '2024-01-01T10:00:00+00:00')"
    )
    db.execute(
        "INSERT INTO messages VALUES (2, 1, 'assistant', 'A memory-saving method.', "
        "'2024-01-01T10:05:00+00:00')"
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()

    store = SessionStore(path)
    assert store.version == SCHEMA_VERSION == 2
    old = store.get_session(1)
    assert old.title == "old chat" and old.model is None and old.filters == {}
    messages = store.messages(1)
    assert [m.content for m in messages] == ["What is GaLore?", "A memory-saving method."]
    assert messages[1].status == "done" and messages[1].answer is None
    # The upgraded database takes v2 data, and a v1 answer still counts as history.
    store.add_message(1, "assistant", "with sources", answer=ANSWER)
    assert store.messages(1)[-1].answer == ANSWER
    assert store.history(1) == [("What is GaLore?", {"answer": "A memory-saving method."})]
    store.close()
    with sqlite3.connect(path) as db:
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "messages_by_session" in indexes


def test_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / DB_NAME
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this assistant"):
        SessionStore(path)


def test_export_markdown_has_references(store: SessionStore, tmp_path: Path):
    session = fill(store, "Which method quantizes the projection to INT4?")
    text = store.export_markdown(session)
    assert text.startswith("# Which method quantizes the projection to INT4?")
    assert "## Question" in text and "Q-GaLore quantizes the projection matrices" in text
    assert (
        "- [1] Q-GaLore: Quantized GaLore with INT4 Projection (2024-07-11). "
        "https://arxiv.org/abs/2407.08296 (supported by its passage)"
    ) in text
    assert "## All references" in text
    assert "An uncited paper" not in text  # only what the answer cites
    path = store.write_export(session, tmp_path / "exports")
    assert path.parent == tmp_path / "exports" and path.suffix == ".md"
    assert path.read_text() == text


# -- the command line ------------------------------------------------------------------


def run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ASSISTANT_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sessions_cli_json(tmp_path: Path):
    home = tmp_path / "home"
    with SessionStore.open(home) as store:
        first = fill(store, "Which method quantizes the projection to INT4?")
        second = fill(store, "How many sets does MetaShift contain?")

    proc = run("sessions", "list", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)["sessions"]
    assert [s["id"] for s in listed] == [second, first]
    assert listed[0]["messages"] == 2

    proc = run("sessions", "list", "--search", "metashift", "--json", home=home)
    assert [s["id"] for s in json.loads(proc.stdout)["sessions"]] == [second]

    proc = run("sessions", "show", str(first), "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["session"]["title"].startswith("Which method")
    assert shown["messages"][1]["answer"]["citations"][0]["supported"] is True

    proc = run("sessions", "export", str(first), "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    path = Path(json.loads(proc.stdout)["path"])
    assert path.parent == home / "exports"
    assert "https://arxiv.org/abs/2407.08296" in path.read_text()

    proc = run("sessions", "delete", str(first), "--json", home=home)
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"deleted": [first]}
    proc = run("sessions", "list", "--json", home=home)
    assert [s["id"] for s in json.loads(proc.stdout)["sessions"]] == [second]

    proc = run("sessions", "show", "999", home=home)
    assert proc.returncode == 1
    assert "no session 999" in proc.stderr and "Traceback" not in proc.stderr


def test_sessions_list_and_help_stay_light(tmp_path: Path):
    """Listing sessions must not pay for chromadb, llama_index, openai or textual."""
    code = (
        "import sys\nfrom assistant.cli import main\n"
        "results = [main(['sessions', 'list']), main(['sessions', '--help']),"
        " main(['chat', '--help'])]\n"
        "heavy = [m for m in ('chromadb', 'llama_index', 'openai', 'textual')"
        " if m in sys.modules]\nprint('RESULTS', results, 'HEAVY', heavy)"
    )
    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert "RESULTS [0, 0, 0] HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    assert "No sessions." in proc.stdout and "--session" in proc.stdout


def test_replace_answer_swaps_in_one_step_and_keeps_the_question(store: SessionStore):
    session_id = fill(store, "Which method quantizes the projection to INT4?")
    question, old = store.messages(session_id)
    new = store.replace_answer(session_id, old.id, "GaLore's successor does [1].", answer=ANSWER)
    stored = store.messages(session_id)
    assert [m.id for m in stored] == [question.id, new.id] and new.id != old.id
    assert stored[1].content == "GaLore's successor does [1]." and stored[1].answer == ANSWER
    # The question's earlier history excludes its own answer (what a regenerate condenses on).
    assert store.history(session_id, before_id=question.id) == []
    assert len(store.history(session_id)) == 1
    # Only an answer is ever deleted: a question's id leaves the question in place.
    again = store.replace_answer(session_id, question.id, "Q-GaLore does [1].")
    assert [m.id for m in store.messages(session_id)] == [question.id, new.id, again.id]
    with pytest.raises(SessionNotFound):
        store.replace_answer(999, new.id, "no such session")
