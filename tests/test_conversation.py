"""A chat turn's life without a terminal: begin, stream, commit, cancel, regenerate, fail.

`Conversation` decides what the sessions file holds after each turn; these
tests drive it against a real `SessionStore` (in tmp_path), the real sample
library and embedder, and the fake server standing in for the model only
where a real one cannot fail or be cut on cue. Nothing here imports Textual.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from assistant.answer import Answer
from assistant.chat.conversation import Conversation, PendingTurn, copy_text
from assistant.chat.service import ChatService
from assistant.errors import AssistantError, UsageError
from assistant.sessions import SessionStore

from .conftest import ROOT, make_settings
from .fakeserver import FakeServer

QUESTION = "How many sets of natural images does the MetaShift collection contain?"
ANSWER = "MetaShift is a collection of 12,868 sets of natural images [1]."
OLD = Answer.from_dict(
    {
        "question": QUESTION,
        "answer": "The MetaShift collection contains 12,868 sets [1].",
        "citations": [{"n": 1, "paper_id": "metashift", "title": "MetaShift", "supported": True}],
        "sources": [
            {
                "n": 1,
                "paper_id": "metashift",
                "title": "MetaShift",
                "published": "2022-02-14",
                "passage": "12,868 sets of natural images",
                "url": "https://arxiv.org/abs/2202.06523",
            },
            {"n": 2, "paper_id": "other", "title": "Not cited", "published": None, "passage": ""},
        ],
        "abstained": False,
    }
)


@pytest.fixture
def server():
    with FakeServer(models=["smollm2"]) as fake:
        yield fake


@pytest.fixture
def chat(tmp_path: Path, server: FakeServer, sample_retriever):
    """A conversation on a fresh sessions file, its library already loaded."""
    settings = make_settings(
        tmp_path, base_url=server.url, model="smollm2", context_window=4096, timeout=10.0
    )
    service = ChatService(settings)
    service.retriever, service.library_size = sample_retriever, len(sample_retriever.papers)
    service.ready.set()
    conversation = Conversation(SessionStore.open(tmp_path), service, own_store=True)
    yield conversation
    service.close()
    conversation.close()


def seeded(chat: Conversation) -> tuple[int, int]:
    """A stored question and its answer in a session the chat has open: (question, answer) ids."""
    session = chat.store.create_session(model="smollm2", filters={"k": 4})
    user = chat.store.add_message(session.id, "user", QUESTION)
    old = chat.store.add_message(session.id, "assistant", OLD.text, answer=OLD)
    chat.open(session.id)
    return user.id, old.id


def stored(chat: Conversation) -> list[tuple[str, str, str]]:
    assert chat.session_id is not None
    return [(m.role, m.content, m.status) for m in chat.store.messages(chat.session_id)]


def test_the_conversation_and_the_chat_service_load_without_textual():
    probe = (
        "import sys, assistant.chat.conversation, assistant.chat.service; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_first_question_creates_the_session_and_commit_stores_the_answer(chat, server):
    server.add_stream([ANSWER[:20], ANSWER[20:]])
    assert chat.session_id is None  # a draft: nothing stored yet
    turn = chat.begin(QUESTION)
    assert chat.session_id == turn.session_id and turn.fresh_session
    assert stored(chat) == [("user", QUESTION, "done")]  # the question is stored first
    pieces: list[str] = []
    answer = chat.stream(turn, on_token=pieces.append)
    assert "".join(pieces).startswith("MetaShift is a collection")
    message = chat.commit(turn, answer)
    assert stored(chat) == [("user", QUESTION, "done"), ("assistant", message.content, "done")]
    assert "12,868 sets" in message.content and message.answer.citations
    session = chat.get_session(turn.session_id)
    assert QUESTION.startswith(session.title.rstrip("…")) and session.model == "smollm2"
    assert session.filters["k"] == 4
    # The next question is condensed against the stored turn, in the same session.
    server.add_reply("How was MetaShift built?").add_stream(["It was built from Visual Genome."])
    follow = chat.begin("How was it built?")
    assert not follow.fresh_session and [t.question for t in follow.history] == [QUESTION]
    chat.commit(follow, chat.stream(follow))
    assert [r for r, _, _ in stored(chat)] == ["user", "assistant", "user", "assistant"]
    assert "MetaShift" in server.chat_requests[-2].body["messages"][-1]["content"]


def test_cancel_keeps_what_was_written_marked_cancelled(chat, server):
    pieces = ["MetaShift is a collection of ", "12,868 sets of natural images [1]. "]
    server.add_stream(pieces + [f"word{i} " for i in range(100)], delay_s=0.05)
    cancel = threading.Event()
    turn = chat.begin(QUESTION)
    written: list[str] = []

    def on_token(piece: str) -> None:
        written.append(piece)
        if len(written) == 2:
            cancel.set()  # Esc after the first sentence

    answer = chat.stream(turn, on_token=on_token, cancel=cancel)
    message = chat.cancel(turn, answer, "".join(written))
    assert message is not None and message.status == "cancelled"
    assert "12,868 sets of natural images" in message.content
    assert "word" not in message.content  # nothing after the Esc
    assert stored(chat) == [("user", QUESTION, "done"), ("assistant", message.content, "cancelled")]
    assert message.answer.text == message.content


def test_cancel_before_any_word_forgets_the_question_and_its_empty_session(chat, server):
    server.add_stream(["", "never ", "shown"], delay_s=0.2)  # a first chunk with no words
    cancel = threading.Event()
    turn = chat.begin(QUESTION)
    answer = chat.stream(turn, cancel=cancel, on_ready=cancel.set)  # Esc before any word
    assert chat.cancel(turn, answer, "") is None
    assert chat.session_id is None and chat.sessions() == []  # no empty session left behind
    assert chat.store.messages(turn.session_id) == []


def test_failed_first_question_leaves_no_session(chat, server):
    server.add_error(500, "the model exploded", headers={"x-should-retry": "false"})
    turn = chat.begin(QUESTION)
    with pytest.raises(AssistantError, match="the model exploded"):
        chat.stream(turn)
    chat.fail(turn)
    assert chat.session_id is None and chat.sessions() == []
    assert chat.store.messages(turn.session_id) == []


def test_failed_question_in_a_session_keeps_the_session_and_its_turns(chat, server):
    seeded(chat)
    server.add_reply("How was MetaShift built?")
    server.add_error(500, "the model exploded", headers={"x-should-retry": "false"})
    turn = chat.begin("How was it built?")
    assert not turn.fresh_session
    with pytest.raises(AssistantError):
        chat.stream(turn)
    chat.fail(turn)
    assert stored(chat) == [("user", QUESTION, "done"), ("assistant", OLD.text, "done")]
    assert len(chat.sessions()) == 1


def test_regenerate_keeps_the_old_answer_until_the_new_one_is_stored(chat, server):
    question_id, old_id = seeded(chat)
    server.add_stream([ANSWER[:20], ANSWER[20:]])
    turn = chat.regenerate()
    assert isinstance(turn, PendingTurn) and turn.regenerating
    assert turn.user.id == question_id and turn.replacing.id == old_id
    assert turn.history == []  # the question's own old answer is not its history
    seen_while_streaming: list[list[int]] = []

    def on_token(piece: str) -> None:
        seen_while_streaming.append([m.id for m in chat.store.messages(turn.session_id)])

    answer = chat.stream(turn, on_token=on_token)
    assert seen_while_streaming and all(
        ids == [question_id, old_id] for ids in seen_while_streaming
    )
    new = chat.commit(turn, answer)
    messages = chat.store.messages(turn.session_id)
    assert [m.id for m in messages] == [question_id, new.id] and new.id != old_id
    assert "12,868 sets" in messages[1].content and messages[0].content == QUESTION


def test_regenerate_that_fails_or_is_cancelled_changes_nothing(chat, server):
    seeded(chat)
    before = stored(chat)
    server.add_error(500, "regenerate exploded", headers={"x-should-retry": "false"})
    turn = chat.regenerate()
    with pytest.raises(AssistantError, match="regenerate exploded"):
        chat.stream(turn)
    chat.fail(turn)
    assert stored(chat) == before

    server.add_stream([f"word{i} " for i in range(100)], delay_s=0.05)
    cancel = threading.Event()
    turn = chat.regenerate()
    answer = chat.stream(turn, on_token=lambda piece: cancel.set(), cancel=cancel)
    assert chat.cancel(turn, answer, "word0 ") is None  # Esc on a regenerate: never mind
    assert stored(chat) == before
    assert chat.store.messages(chat.session_id)[1].answer == OLD


def test_nothing_to_regenerate_unless_the_last_message_is_an_answer(chat):
    assert chat.regenerate() is None  # a draft
    session = chat.store.create_session()
    chat.open(session.id)
    assert chat.regenerate() is None  # empty
    chat.store.add_message(session.id, "user", QUESTION)
    assert chat.regenerate() is None  # a question without its answer
    chat.store.add_message(session.id, "digest", "This week ...")
    assert chat.regenerate() is None


def test_session_operations(chat, tmp_path: Path):
    with pytest.raises(UsageError, match="nothing to export"):
        chat.export(tmp_path / "exports")
    digest = chat.add_digest("## This week\n\nTwo papers.")
    assert chat.session_id == digest.session_id  # a draft becomes a session
    question_id, _ = seeded(chat)
    assert chat.count_before(question_id) == 0
    assert [m.content for m in chat.recent(1)] == [OLD.text]
    assert [m.id for m in chat.earlier(question_id + 1, 5)] == [question_id]
    chat.service.k = 7
    chat.save_settings()
    assert chat.get_session(chat.session_id).filters["k"] == 7
    path = chat.export(tmp_path / "exports")
    assert "## All references" in path.read_text() and "MetaShift" in path.read_text()
    chat.rename(chat.session_id, "Datasets")
    assert [s.title for s in chat.sessions("Datasets")] == ["Datasets"]
    other = digest.session_id
    assert chat.delete(other) is False and chat.session_id is not None
    assert chat.delete(chat.session_id) is True and chat.session_id is None
    assert chat.sessions() == []


def test_copied_answer_carries_its_cited_references(chat):
    seeded(chat)
    answer = chat.recent(1)[0]
    text = copy_text(answer)
    assert text.startswith(OLD.text)
    assert "References:" in text
    assert "[1] MetaShift (2022-02-14). https://arxiv.org/abs/2202.06523" in text
    assert "Not cited" not in text  # only the sources the answer cites


def test_abstract_comes_through_the_library(chat, sample_retriever):
    paper_id, meta = next(iter(sample_retriever.papers.items()))
    record = chat.service.abstract(paper_id)
    assert record["title"] == meta["title"] and len(record["abstract"]) > 100
    with pytest.raises(AssistantError, match="no longer in the library"):
        chat.service.abstract("no-such-paper")
