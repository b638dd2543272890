"""One chat's conversation: the current session and the life of each turn.

A turn is begun (its question stored, the session created with it when the
chat was a draft), streamed (the model call, in a worker thread), then
committed (the answer stored), cancelled (Esc: what was written is kept, or
nothing is stored when nothing was written) or failed (the question is
forgotten, and a session made for it is deleted again). A regenerate is a
turn that answers a stored question again: its old answer stays stored until
the new one replaces it in one transaction, so a regenerate that fails or is
cancelled leaves the session as it was.

No Textual here: the chat app calls these methods and only draws what they
return, and the tests drive a whole turn against a real `SessionStore` and a
model endpoint without a terminal. Every read and write of the sessions file
that the chat makes goes through this class.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..answer import Answer
from ..errors import UsageError
from ..followup import Turn
from ..sessions import Message, Session, SessionStore
from ..sessions.export import source_line, write_export

if TYPE_CHECKING:
    from .service import ChatService


@dataclass
class PendingTurn:
    """A question being answered: what the model is given and what to store after.

    `replacing` is the stored answer a regenerate replaces (None for a new
    question); `fresh_session` says the session was created for this question,
    so it is deleted again when the question fails and leaves it empty.
    """

    session_id: int
    question: str
    user: Message
    history: list[Turn] = field(default_factory=list)
    replacing: Message | None = None
    fresh_session: bool = False

    @property
    def regenerating(self) -> bool:
        return self.replacing is not None


class Conversation:
    """The current session of one chat and every store operation the chat needs.

    `service` answers questions and holds the conversation's settings (model,
    filters, k); this class decides what is stored when. It owns `store` when
    `own_store` is true (closed by `close`).
    """

    def __init__(self, store: SessionStore, service: ChatService, *, own_store: bool = False):
        self.store = store
        self.service = service
        self.session_id: int | None = None
        self._own_store = own_store

    def close(self) -> None:
        if self._own_store:
            self.store.close()

    # -- sessions ------------------------------------------------------------------------

    def first_session(self, session_id: int | None = None, *, new: bool = False) -> Session | None:
        """The session a chat opens with: `session_id`, else the latest unless `new`;
        None (start a draft) when there is none. `open` makes it current."""
        if session_id is not None:
            return self.store.get_session(session_id)
        return None if new else self.store.latest_session()

    def draft(self) -> None:
        """An empty conversation: its session is stored with its first message."""
        self.session_id = None

    def open(self, session_id: int) -> Session:
        """Make a stored session current, with its model and filters."""
        session = self.store.get_session(session_id)
        self.session_id = session.id
        self.service.apply_session(session)
        return session

    def get_session(self, session_id: int) -> Session:
        return self.store.get_session(session_id)

    def sessions(self, search: str | None = None) -> list[Session]:
        """The sidebar's sessions, newest first (those matching `search` when given)."""
        return self.store.list_sessions(search=search or None)

    def recent(self, limit: int) -> list[Message]:
        """The current session's last `limit` messages, in order."""
        if self.session_id is None:
            return []
        return self.store.messages(self.session_id, limit=limit)

    def earlier(self, before_id: int, limit: int) -> list[Message]:
        """The `limit` messages just before message `before_id`."""
        if self.session_id is None:
            return []
        return self.store.messages(self.session_id, limit=limit, before_id=before_id)

    def count_before(self, before_id: int | None) -> int:
        """How many of the current session's messages precede `before_id` (not yet shown)."""
        if self.session_id is None or before_id is None:
            return 0
        return self.store.count_messages(self.session_id, before_id=before_id)

    def rename(self, session_id: int, title: str) -> Session:
        return self.store.rename_session(session_id, title)

    def delete(self, session_id: int) -> bool:
        """Delete a session; True when it was the current one (the chat is a draft now)."""
        self.store.delete_session(session_id)
        if session_id == self.session_id:
            self.session_id = None
            return True
        return False

    def save_settings(self) -> None:
        """Store the service's model and filters on the current session (after a /k, /model)."""
        if self.session_id is not None:
            self.store.update_session(
                self.session_id, model=self.service.model, filters=self.service.filters_dict()
            )

    def export(self, folder: Path) -> Path:
        """Write the current session as Markdown under `folder`; UsageError when it is empty."""
        if self.session_id is None or not self.store.count_messages(self.session_id):
            raise UsageError("nothing to export yet: ask a question first")
        return write_export(self.store, self.session_id, folder)

    def add_digest(self, text: str) -> Message:
        """Store a /digest in the conversation (a draft becomes a session)."""
        return self.store.add_message(self._ensure_session(), "digest", text)

    def _ensure_session(self) -> int:
        if self.session_id is None:
            session = self.store.create_session(
                model=self.service.model, filters=self.service.filters_dict()
            )
            self.session_id = session.id
        return self.session_id

    def history(self, session_id: int | None, before_id: int | None = None) -> list[Turn]:
        """The session's last answered questions (as many as a follow-up is condensed
        against, not the whole history) as `Turn`s, rebuilt from the store (only those
        before message `before_id` when it is given)."""
        if session_id is None:
            return []
        return [
            Turn(question, answer)
            for question, answer in self.store.history(
                session_id, before_id=before_id, last=self.service.turn.history
            )
        ]

    # -- a turn --------------------------------------------------------------------------

    def begin(self, question: str) -> PendingTurn:
        """Store a new question (creating the session of a draft) and return its turn."""
        fresh = self.session_id is None
        session_id = self._ensure_session()
        history = self.history(session_id)
        user = self.store.add_message(session_id, "user", question)
        return PendingTurn(session_id, question, user, history, fresh_session=fresh)

    def regenerate(self) -> PendingTurn | None:
        """A turn that answers the last question again; None when the last message is
        not an answer to a question. Nothing is deleted here (see `commit`)."""
        if self.session_id is None:
            return None
        last = self.store.messages(self.session_id, limit=2)
        if len(last) < 2 or last[0].role != "user" or last[1].role != "assistant":
            return None
        user, old = last
        history = self.history(self.session_id, before_id=user.id)
        return PendingTurn(self.session_id, user.content, user, history, replacing=old)

    def stream(
        self,
        turn: PendingTurn,
        on_token: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        on_ready: Callable[[], None] | None = None,
        stream: bool = True,
    ) -> Answer:
        """Answer the turn's question (blocks: a worker thread's job). Raises what the
        model or the library raised; `fail` then tidies the store."""
        return self.service.answer(
            turn.question,
            turn.history,
            on_token=on_token,
            cancel=cancel,
            on_ready=on_ready,
            stream=stream,
        )

    def commit(self, turn: PendingTurn, answer: Answer) -> Message:
        """Store a finished answer: appended, or in place of the one a regenerate replaces."""
        return self._store_answer(turn, answer.full_text(), answer, "done")

    def cancel(self, turn: PendingTurn, answer: Answer, streamed: str) -> Message | None:
        """Esc during the turn; returns the stored (cancelled) answer, or None.

        A cancelled regenerate stores nothing: the previous answer stays. A new
        question keeps what was written so far, marked cancelled; when nothing
        was written, the question is forgotten as a failed one is.
        """
        if turn.regenerating:
            return None
        text = streamed.strip() if answer.abstained else answer.full_text()
        if not text:
            self.fail(turn)
            return None
        return self._store_answer(turn, text, answer, "cancelled")

    def fail(self, turn: PendingTurn) -> None:
        """The turn could not be answered. A new question is deleted (a retry will not
        store it twice), and so is a session made for it that is left empty; a
        regenerate leaves the question and its old answer stored."""
        if turn.regenerating:
            return
        self.store.delete_message(turn.user.id)
        if turn.fresh_session and not self.store.count_messages(turn.session_id):
            self.store.delete_session(turn.session_id)
            if self.session_id == turn.session_id:
                self.session_id = None

    def _store_answer(self, turn: PendingTurn, text: str, answer: Answer, status: str) -> Message:
        if status == "cancelled":
            answer = dataclasses.replace(answer, text=text)
        if turn.replacing is None:
            return self.store.add_message(
                turn.session_id, "assistant", text, answer=answer, status=status
            )
        return self.store.replace_answer(
            turn.session_id, turn.replacing.id, text, answer=answer, status=status
        )


def copy_text(message: Message) -> str:
    """An answer as it is copied: its text, then its references as the export writes them."""
    text = message.content.strip()
    answer = message.answer
    refs = answer.cited_sources if answer else []
    if not answer or not refs:
        return text
    lines = [text, "", "References:", ""]
    lines += [f"- {source_line(s, answer.supported(s))}" for s in refs]
    return "\n".join(lines)
