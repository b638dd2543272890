"""Chat sessions in SQLite: CRUD, search, schema upgrades, export, and the CLI over them."""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rich.text import Text

from assistant.answer import Answer
from assistant.errors import SessionNotFound, StoreError
from assistant.followup import CONDENSE_TURNS
from assistant.sessions import DB_NAME, SessionStore
from assistant.sessions import schema as schema_module
from assistant.sessions.export import export_markdown, write_export
from assistant.sessions.records import MARK
from assistant.sessions.schema import MIGRATIONS, SCHEMA_VERSION
from assistant.sessions.search import NO_FTS_NOTICE, SNIPPET_SESSIONS, fts_query, highlight_parts
from assistant.sessions.store import DEFAULT_TITLE

from .cli_runner import run_assistant
from .conftest import ROOT

ANSWER_DATA = {
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
ANSWER = Answer.from_dict(ANSWER_DATA)


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


def fill(store: SessionStore, question: str, answer: Answer = ANSWER) -> int:
    session = store.create_session()
    store.add_message(session.id, "user", question)
    store.add_message(session.id, "assistant", answer.text, answer=answer)
    return session.id


def test_create_add_rename_delete(store: SessionStore):
    session = store.create_session(model="smollm2", filters={"since": "2024-01-01", "k": 4})
    assert session.title == DEFAULT_TITLE and session.message_count == 0
    store.add_message(session.id, "user", "Which method quantizes the projection to INT4?")
    reply = store.add_message(session.id, "assistant", ANSWER.text, answer=ANSWER)
    got = store.get_session(session.id)
    # The first question names the session; the answer keeps its citations and sources.
    assert got.title == "Which method quantizes the projection to INT4?"
    assert got.message_count == 2 and got.model == "smollm2"
    assert got.filters == {"since": "2024-01-01", "k": 4}
    assert [m.role for m in store.messages(session.id)] == ["user", "assistant"]
    assert reply.answer == ANSWER
    assert [s.n for s in reply.answer.cited_sources] == [1]
    assert reply.answer.supported(reply.answer.cited_sources[0]) is True
    # What is stored reads back whole: the same JSON `ask --json` prints.
    assert json.loads(json.dumps(reply.answer.to_dict())) == ANSWER.to_dict()

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
        replace(ANSWER, text="MetaShift has 12,868 sets of natural images [1]."),
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
    assert history[0][1].citations[0].title.startswith("Q-GaLore")


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
    assert store.version == SCHEMA_VERSION == 3
    old = store.get_session(1)
    assert old.title == "old chat" and old.model is None and old.filters == {}
    messages = store.messages(1)
    assert [m.content for m in messages] == ["What is GaLore?", "A memory-saving method."]
    assert messages[1].status == "done" and messages[1].answer is None
    # v3 built the full-text index from what was already stored: old messages and titles.
    assert [h.message_id for h in store.search_messages("memory saving")] == [2]
    assert [s.id for s in store.search("galore")] == [1]
    assert [h.role for h in store.search_messages("old chat")] == ["title"]
    # The upgraded database takes v2 data, and a v1 answer still counts as history.
    store.add_message(1, "assistant", "with sources", answer=ANSWER)
    assert store.messages(1)[-1].answer == ANSWER
    assert store.history(1) == [
        ("What is GaLore?", Answer.from_dict({"answer": "A memory-saving method."}))
    ]
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
    text = export_markdown(store, session)
    assert text.startswith("# Which method quantizes the projection to INT4?")
    assert "## Question" in text and "Q-GaLore quantizes the projection matrices" in text
    assert (
        "- [1] Q-GaLore: Quantized GaLore with INT4 Projection (2024-07-11). "
        "https://arxiv.org/abs/2407.08296 (supported by its passage)"
    ) in text
    assert "## All references" in text
    assert "An uncited paper" not in text  # only what the answer cites
    path = write_export(store, session, tmp_path / "exports")
    assert path.parent == tmp_path / "exports" and path.suffix == ".md"
    assert path.read_text() == text


# -- the command line ------------------------------------------------------------------


def run(*args: str, home: Path) -> subprocess.CompletedProcess:
    return run_assistant(args, env={**os.environ, "ASSISTANT_HOME": str(home)})


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
    found = json.loads(proc.stdout)["sessions"]
    assert [s["id"] for s in found] == [second] and "«MetaShift»" in found[0]["snippet"]
    proc = run("sessions", "list", "--search", 'int4 "', home=home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2].strip() == (
        "Which method quantizes the projection to INT4?"
    )  # the snippet line, under the session's row (no markers: not a terminal)

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


# -- full-text search ------------------------------------------------------------------

FILLER = (
    "Large language models are trained on web text with careful data filtering, "
    "then evaluated on many downstream benchmarks across several languages and tasks. "
)


def fts_sound(store: SessionStore) -> None:
    """FTS5's own check that the index holds exactly what `messages` and `sessions` hold."""
    with sqlite3.connect(store.path) as db:
        db.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")
        db.execute("INSERT INTO titles_fts(titles_fts, rank) VALUES ('integrity-check', 1)")
    db.close()


def unrelated(store: SessionStore, n: int) -> None:
    """Sessions that do not mention the term, so bm25's idf counts for something."""
    for i in range(n):
        session = store.create_session(title=f"Unrelated chat {i}")
        store.bulk_add(session.id, [("user", f"Question {i} about tokenizers", None)])


def test_search_ranks_by_bm25_term_frequency_and_length(store: SessionStore):
    unrelated(store, 20)
    once_long = store.create_session(title="Memory chat")
    store.add_message(once_long.id, "user", "GaLore once, then " + FILLER * 6)
    twice_short = store.create_session(title="Another chat")
    store.add_message(twice_short.id, "user", "GaLore and GaLore again")
    # bm25 scores a term more in a message that holds it more often and is shorter.
    assert [s.id for s in store.search("galore")] == [twice_short.id, once_long.id]
    hits = store.search_messages("galore")
    assert [h.session_id for h in hits] == [twice_short.id, once_long.id]
    assert hits[0].rank < hits[1].rank < 0  # FTS5's bm25: lower is better
    # A session ranks by its best message: a long one elsewhere in it does not pull it down.
    store.add_message(twice_short.id, "assistant", "GaLore " + FILLER * 8)
    assert [s.id for s in store.search("galore")] == [twice_short.id, once_long.id]


def test_search_snippets_mark_the_matched_words(store: SessionStore):
    unrelated(store, 5)
    session = fill(store, "Which method quantizes the projection to INT4?")
    found = store.search("quant proj")  # prefixes, as the user types them
    assert [s.id for s in found] == [session]
    snippet = found[0].snippet
    assert snippet is not None and MARK[0] + "quantizes" + MARK[1] in snippet
    assert [t for t, hit in highlight_parts(snippet) if hit] in (
        ["quantizes", "projection"],
        ["Quantizes", "projection"],
    )
    assert "«quantizes»" in found[0].to_dict()["snippet"]
    assert "snippet" not in store.list_sessions()[0].to_dict()  # only a search has one
    hits = store.search_messages("int4", mark=("<b>", "</b>"))
    assert {h.role for h in hits} == {"user", "assistant", "title"}
    answer = next(h for h in hits if h.role == "assistant")
    assert "<b>INT4</b>" in answer.snippet and answer.session_title.startswith("Which method")
    assert answer.to_dict()["message_id"] == store.messages(session)[1].id


@pytest.mark.parametrize(
    "text", ['GaLore "', "a OR", "-x", "*", "NEAR(", "", '"', "AND", "galore*", "(", "x:y", "^"]
)
def test_search_text_is_never_an_fts5_syntax_error(store: SessionStore, text: str):
    galore = fill(store, "What is GaLore? x y")
    other = fill(store, "Something else entirely", replace(ANSWER, text="Nothing relevant."))
    found = [s.id for s in store.list_sessions(search=text)]
    hits = store.search_messages(text)
    if text.strip() == "":
        assert found == [other, galore] and hits == []  # no search: every session
    elif text in ('GaLore "', "galore*", "-x", "x:y"):
        assert found == [galore] and hits
    elif not any(ch.isalnum() for ch in text):
        assert found == [] and hits == []  # punctuation alone matches nothing
    else:
        assert isinstance(found, list)  # `a OR`, `NEAR(`, `AND`: words, not operators


def test_fts_query_quotes_every_word():
    assert fts_query('GaLore "') == '"GaLore"*'
    assert fts_query("a OR -x") == '"a"* "OR"* "-x"*'
    assert fts_query('say "hi" NEAR(') == '"say"* """hi"""* "NEAR("*'
    assert fts_query("* ( ^") is None and fts_query("") is None


def test_index_follows_every_write(store: SessionStore):
    unrelated(store, 3)
    session = fill(store, "Which method quantizes the projection to INT4?")
    question, old = store.messages(session)
    assert {h.message_id for h in store.search_messages("matrices")} == {old.id}

    new = store.replace_answer(session, old.id, "Rewritten: a low-rank zebra projection.")
    assert store.search_messages("matrices") == []
    assert [h.message_id for h in store.search_messages("zebra")] == [new.id]

    store.delete_message(new.id)
    assert store.search_messages("zebra") == []

    store.rename_session(session, "Quantized optimisers")
    assert [h.role for h in store.search_messages("optimisers")] == ["title"]
    assert [h.role for h in store.search_messages("which method")] == ["user"]  # title gone

    store.bulk_add(session, [("user", "bulk added walrus", None)])
    assert [s.id for s in store.search("walrus")] == [session]
    fts_sound(store)

    store.delete_session(session)
    assert store.search("walrus") == [] and store.search_messages("optimisers") == []
    assert store.search_messages("quantizes") == []
    fts_sound(store)


def test_search_without_fts5_falls_back_to_like(tmp_path: Path, monkeypatch):
    with SessionStore.open(tmp_path) as fts_store:
        kept = fill(fts_store, "What is GaLore?")
    monkeypatch.setattr(schema_module, "fts5_available", lambda: False)
    with SessionStore.open(tmp_path) as store:
        assert not store.fts and store.search_notice == NO_FTS_NOTICE
        # Writes still work with the triggers gone, and search is the old substring match.
        added = fill(
            store,
            "How does a zebra-crossing detector work?",
            replace(ANSWER, text="It finds stripes."),
        )
        assert [s.id for s in store.search("zebra")] == [added]
        assert [s.id for s in store.search("alor")] == [kept]  # a substring, not a prefix
        assert store.search("galore") and store.search("galore")[0].snippet is None
        hits = store.search_messages("zebra")
        assert [h.role for h in hits] == ["user"] and MARK[0] + "zebra" + MARK[1] in hits[0].snippet
        assert store.search_messages("NEAR( *") == []
    monkeypatch.undo()
    # The next assistant with FTS5 rebuilds the index: what was written meanwhile is found.
    with SessionStore.open(tmp_path) as store:
        assert store.fts and store.search_notice is None
        assert [s.id for s in store.search("zebra")] == [added]
        fts_sound(store)
    with SessionStore.open(tmp_path, fts=False) as forced:
        assert not forced.fts and forced.search_notice == NO_FTS_NOTICE


def tokens_of(text: str) -> set[str]:
    return set(re.findall(r"[^\W_]+", text.lower()))


def test_search_over_10k_messages_finds_exactly_the_matching_sessions(tmp_path: Path):
    rng = random.Random(13)
    vocabulary = [
        *"gradient projection memory quantization adapter attention retrieval benchmark".split(),
        *"distillation sparsity tokenizer diffusion alignment reward agent vision".split(),
    ]
    store = SessionStore.open(tmp_path)
    store._db.execute("PRAGMA synchronous = OFF")  # 1,000 commits without waiting on the disk
    words_by_session: dict[int, list[set[str]]] = {}
    for i in range(500):
        session = store.create_session(title=f"Chat {i}")
        rows = []
        for j in range(20):
            words = rng.sample(vocabulary, 4)
            if (i * 20 + j) % 997 == 0:
                words.append("galorefied")  # rare: 11 messages
            rows.append(("user" if j % 2 == 0 else "assistant", " ".join(words) + ".", None))
        store.bulk_add(session.id, rows)
        words_by_session[session.id] = [tokens_of(content) for _, content, _ in rows]
    assert sum(s.message_count for s in store.list_sessions()) == 10_000

    def expected(*prefixes: str) -> set[int]:
        """Sessions with one message holding a word starting with each prefix."""
        return {
            sid
            for sid, messages in words_by_session.items()
            if any(all(any(w.startswith(p) for w in m) for p in prefixes) for m in messages)
        }

    for query, prefixes in [
        ("galorefied", ("galorefied",)),
        ("GALORE", ("galore",)),
        ("distill reward", ("distill", "reward")),
        ("vision tokenizer sparsity", ("vision", "tokenizer", "sparsity")),
        ("attention", ("attention",)),
    ]:
        found = store.search(query)
        assert {s.id for s in found} == expected(*prefixes), query
        assert len(found) == len({s.id for s in found})  # each session once
        shown = found[:SNIPPET_SESSIONS]  # the best ones get a snippet, the rest none
        assert all(s.snippet and MARK[0] in s.snippet for s in shown)
        assert all(s.snippet is None for s in found[SNIPPET_SESSIONS:])
    rare = store.search_messages("galorefied", limit=100)
    assert len(rare) == 11 and all(h.role in ("user", "assistant") for h in rare)
    assert store.search("zzz") == []
    fts_sound(store)
    store.close()


# -- history: the last turns only ------------------------------------------------------


def test_history_last_reads_only_the_tail(store: SessionStore, monkeypatch):
    session = store.create_session()
    rows = []
    for i in range(50):
        rows += [
            ("user", f"question {i}", None),
            ("assistant", f"answer {i}", Answer.from_dict({"answer": str(i)})),
        ]
        if i % 7 == 0:  # noise history skips: a digest, an unanswered question
            rows += [("digest", "# a digest", None), ("user", f"unanswered {i}", None)]
    store.bulk_add(session.id, rows)
    full = store.history(session.id)
    assert len(full) == 50

    read: list[int] = []
    statements: list[str] = []
    real = SessionStore.messages

    def counting(self, *args, **kwargs):
        got = real(self, *args, **kwargs)
        read.append(len(got))
        return got

    monkeypatch.setattr(SessionStore, "messages", counting)
    store._db.set_trace_callback(statements.append)
    tail = store.history(session.id, last=CONDENSE_TURNS)
    store._db.set_trace_callback(None)
    assert tail == full[-CONDENSE_TURNS:]
    assert sum(read) <= 2 * CONDENSE_TURNS + 4  # one page from the end, not 115 rows
    selects = [s for s in statements if "FROM messages" in s and s.lstrip().startswith("SELECT")]
    assert selects and all("ORDER BY id DESC LIMIT" in s for s in selects)

    # Before a message (a regenerate), and more turns than one page holds.
    ids = [m.id for m in real(store, session.id) if m.content == "question 40"]
    assert store.history(session.id, before_id=ids[0], last=3) == full[37:40]
    assert store.history(session.id, last=20) == full[-20:]
    assert store.history(session.id, last=500) == full
    assert store.history(session.id, last=0) == []


def test_condense_uses_no_more_turns_than_the_store_loads():
    """`CONDENSE_TURNS` is what `condense` reads: it quotes the last that many turns."""
    import inspect

    from assistant import followup

    source = inspect.getsource(followup.condense)
    assert "history[-CONDENSE_TURNS:]" in source and "history[-1]" in source


# -- export ----------------------------------------------------------------------------


def test_export_puts_each_answers_sources_and_quotes_under_it(store: SessionStore):
    first = Answer.from_dict(
        dict(
            ANSWER_DATA,
            evidence=[
                {
                    "n": 1,
                    "paper_id": "arxiv:2407.08296",
                    "text": "We introduce Q-GaLore, which quantizes the projection to INT4.",
                }
            ],
        )
    )
    second = Answer.from_dict(
        {
            "answer": "MetaShift has 12,868 sets [1].",
            "citations": [
                {"n": 1, "paper_id": "arxiv:2202.06523", "title": "MetaShift", "supported": True}
            ],
            "sources": [
                {
                    "n": 1,
                    "paper_id": "arxiv:2202.06523",
                    "title": "MetaShift",
                    "published": "2022-02-14",
                    "url": "https://arxiv.org/abs/2202.06523",
                }
            ],
        }
    )
    session = store.create_session()
    store.add_message(session.id, "user", "Which method quantizes the projection to INT4?")
    store.add_message(session.id, "assistant", first.text, answer=first)
    store.add_message(session.id, "user", "How many sets does MetaShift have?")
    store.add_message(session.id, "assistant", second.text, answer=second)
    text = export_markdown(store, session.id)
    answers = text.split("## Answer")[1:]
    assert len(answers) == 2
    one, two = answers[0].split("## Question")[0], answers[1].split("## All references")[0]
    assert "https://arxiv.org/abs/2407.08296" in one and "(2024-07-11)" in one
    assert "    - “We introduce Q-GaLore, which quantizes the projection to INT4.”" in one
    assert "MetaShift" not in one and "2407.08296" not in two
    assert "[1] MetaShift (2022-02-14). https://arxiv.org/abs/2202.06523" in two
    # An answer stored with its evidence in its text (as the chat does) is not quoted twice.
    store.add_message(session.id, "user", "Again?")
    store.add_message(session.id, "assistant", first.full_text(), answer=first)
    last = export_markdown(store, session.id).split("## Answer")[3].split("## All references")[0]
    assert last.count("We introduce Q-GaLore") == 1


def test_session_list_shows_a_search_snippet_under_the_title(store: SessionStore):
    """The chat's sidebar, given a search result, shows each session's best match."""
    import asyncio

    from textual.app import App

    from assistant.tui.widgets import SessionList

    unrelated(store, 3)
    session = fill(store, "Which method quantizes the projection to INT4?")
    found = store.list_sessions(search="matrices")
    plain = store.list_sessions()

    class Sidebar(App):
        def compose(self):
            yield SessionList()

    async def scenario() -> tuple[Text, Text]:
        app = Sidebar()
        async with app.run_test(size=(40, 20)) as pilot:
            widget = app.query_one(SessionList)
            widget.show(found, current=session)
            await pilot.pause()
            searched = widget.get_option_at_index(0).prompt
            widget.show(plain, current=session)
            await pilot.pause()
            return searched, widget.get_option_at_index(0).prompt

    searched, listed = asyncio.run(scenario())
    lines = searched.plain.split("\n")
    assert lines[0].startswith("Which method") and "matrices" in lines[1]
    start = searched.plain.index("matrices")
    assert any(s.start == start and "bold" in str(s.style) for s in searched.spans)
    assert len(listed.plain.split("\n")) == 2  # no search, no snippet line


def test_a_regenerated_answer_is_stored_inert_like_any_other(store: SessionStore):
    session_id = fill(store, "What is GaLore?")
    old = store.messages(session_id)[-1]
    new = store.replace_answer(session_id, old.id, "GaLore \x1b[2J\x1b[31mred \ud800 [1].")
    # Before, a regenerate stored the model's escapes raw (and a lone surrogate failed).
    assert "\x1b" not in new.content and "\ud800" not in new.content
    assert "␛[2J" in new.content
    assert store.messages(session_id)[-1].content == new.content
