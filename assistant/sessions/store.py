"""`SessionStore`: every read and write of chat sessions (`ASSISTANT_HOME/sessions.db`).

The terminal chat and `assistant sessions ...` both go through it, so no
widget or command holds SQL. Each answer is stored as the JSON of
`Answer.to_dict()` beside its text: citations and sources survive a restart
exactly as they were shown, and a resumed session rebuilds its follow-up
history from them.

Every message, whether asked, regenerated, imported or salvaged by `repair`,
is written by the one INSERT below (`_INSERT_MESSAGE`), as is every session.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import SessionNotFound, StoreError, UsageError
from ..safe_text import safe_line, safe_text
from . import schema
from .guard import damaged, guarded
from .records import MARK, SELECT_SESSIONS, Message, SearchHit, Session, utc_now
from .schema import ROLES, STATUSES
from .search import NO_FTS_NOTICE, find_messages, find_sessions

if TYPE_CHECKING:
    from ..answer import Answer

DB_NAME = "sessions.db"
DEFAULT_TITLE = "New chat"
TITLE_MAX = 60


class SessionRow(NamedTuple):
    """A `sessions` row as `_INSERT_SESSION` writes it (id None: the next free one)."""

    id: int | None
    title: str
    created: str
    updated: str
    model: str | None = None
    filters: str = "{}"  # JSON


class MessageRow(NamedTuple):
    """A `messages` row as `_INSERT_MESSAGE` writes it (id None: the next free one)."""

    id: int | None
    session_id: int
    role: str
    content: str
    created: str
    answer: str | None = None  # Answer.to_dict() as JSON
    status: str = "done"


_INSERT_SESSION = (
    "INSERT INTO sessions (id, title, created, updated, model, filters) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_MESSAGE = (
    "INSERT INTO messages (id, session_id, role, content, created, answer, status) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _answer_json(answer: Answer | None) -> str | None:
    return json.dumps(answer.to_dict()) if answer is not None else None


def _title_from(question: str) -> str:
    title = " ".join(question.split())
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1].rstrip() + "…"


def _pairs(messages: list[Message]) -> list[tuple[str, Answer]]:
    """Each answer with the question just before it (unanswered questions, digests skipped;
    a reply stored without its answer reads as an answer of its text alone)."""
    from ..answer import Answer

    pairs: list[tuple[str, Answer]] = []
    pending: str | None = None
    for message in messages:
        if message.role == "user":
            pending = message.content
        elif message.role == "assistant" and pending is not None:
            pairs.append((pending, message.answer or Answer.from_dict({"answer": message.content})))
            pending = None
    return pairs


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")


class SessionStore:
    """Every read and write of chat sessions.

    One connection, shared by the UI thread and worker threads behind a lock
    (SQLite connections are not thread-safe by default). WAL mode lets a
    `sessions list` in another terminal read while a chat writes.
    """

    def __init__(
        self,
        path: Path,
        clock: Callable[[], datetime] | None = None,
        *,
        fts: bool | None = None,
    ) -> None:
        """`fts` None uses FTS5 where this sqlite has it; False forces the LIKE fallback."""
        self.path = Path(path)
        self.clock = clock or utc_now
        self._lock = threading.RLock()
        available = schema.fts5_available()
        self.fts = available if fts is None else bool(fts and available)
        # Set when search runs without FTS5: one line for the UI or CLI to show once.
        self.search_notice: str | None = None if self.fts else NO_FTS_NOTICE
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the sessions database {self.path}: {exc}") from None
        self._db.row_factory = sqlite3.Row
        try:
            self._setup()
        except BaseException:  # whatever failed, do not leak the connection; re-raised
            self._db.close()
            raise

    @guarded
    def _setup(self) -> None:
        self._db.execute("PRAGMA foreign_keys = ON")
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            pass  # a read-only or network filesystem: the default journal still works
        self.migrate()
        with self._lock:
            failure = schema.sync_search_index(self._db, self.path, self.fts)
        if failure is not None:  # search degrades to LIKE; storing and reading still work
            self.fts, self.search_notice = False, failure

    @classmethod
    def open(
        cls, home: Path, clock: Callable[[], datetime] | None = None, *, fts: bool | None = None
    ) -> SessionStore:
        """The store under ASSISTANT_HOME."""
        return cls(Path(home) / DB_NAME, clock=clock, fts=fts)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------------

    @property
    @guarded
    def version(self) -> int:
        with self._lock:
            return schema.version(self._db)

    @guarded
    def migrate(self) -> int:
        """Bring the schema to SCHEMA_VERSION; returns the version found before."""
        with self._lock:
            return schema.migrate(self._db, self.path)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Several statements that land together or not at all."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:  # anything, Ctrl-C included, undoes the writes; re-raised
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- sessions ------------------------------------------------------------------------

    def _now(self) -> str:
        return self.clock().isoformat(timespec="seconds")

    @guarded
    def create_session(
        self,
        title: str = DEFAULT_TITLE,
        model: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> Session:
        now = self._now()
        title = safe_line(title).strip() or DEFAULT_TITLE
        row = SessionRow(None, title, now, now, model, json.dumps(filters or {}))
        with self._lock:
            cur = self._db.execute(_INSERT_SESSION, row)
            return self.get_session(int(cur.lastrowid))

    @guarded
    def get_session(self, session_id: int) -> Session:
        with self._lock:
            row = self._db.execute(
                SELECT_SESSIONS + " WHERE s.id = ?", (int(session_id),)
            ).fetchone()
        if row is None:
            raise SessionNotFound(f"no session {session_id}: `assistant sessions list` shows them")
        return Session.from_row(row)

    @guarded
    def list_sessions(self, search: str | None = None, limit: int | None = None) -> list[Session]:
        """Sessions, most recently used first.

        With `search`, only sessions whose title or one message holds every
        word of it (each word also as the start of a longer one, any case),
        best match first (FTS5's bm25 of the session's best message or title),
        the best `search.SNIPPET_SESSIONS` each with a `snippet` of that match.
        Without FTS5, the LIKE fallback keeps sessions holding every word
        anywhere, newest first, no snippet.
        """
        with self._lock:
            return find_sessions(self._db, search, limit, fts=self.fts)

    @guarded
    def search_messages(
        self, text: str, *, limit: int = 50, tokens: int = 16, mark: tuple[str, str] = MARK
    ) -> list[SearchHit]:
        """The messages and session titles matching `text`, best first, each with a snippet.

        The matched terms are wrapped in `mark` (`search.highlight_parts` splits
        the default ones for styling); `tokens` is the snippet's length in words.
        Without FTS5 the LIKE fallback finds the same words, newest first,
        rank 0, with a snippet cut around the first word found.
        """
        with self._lock:
            return find_messages(
                self._db, text, limit=limit, tokens=tokens, mark=mark, fts=self.fts
            )

    def search(self, text: str) -> list[Session]:
        """Sessions whose title or content matches `text` (see `list_sessions`)."""
        return self.list_sessions(search=text)

    def latest_session(self) -> Session | None:
        found = self.list_sessions(limit=1)
        return found[0] if found else None

    @guarded
    def rename_session(self, session_id: int, title: str) -> Session:
        title = " ".join(title.split())[:200]
        if not title:
            raise UsageError("a session title cannot be empty")
        self.get_session(session_id)
        with self._lock:
            self._db.execute("UPDATE sessions SET title = ? WHERE id = ?", (title, int(session_id)))
        return self.get_session(session_id)

    @guarded
    def update_session(
        self, session_id: int, *, model: str | None = None, filters: dict[str, Any] | None = None
    ) -> Session:
        """Record the session's model and filters (what `/model`, `/since`... changed)."""
        self.get_session(session_id)
        with self._lock:
            if model is not None:
                self._db.execute(
                    "UPDATE sessions SET model = ? WHERE id = ?", (model, int(session_id))
                )
            if filters is not None:
                self._db.execute(
                    "UPDATE sessions SET filters = ? WHERE id = ?",
                    (json.dumps(filters, default=str), int(session_id)),
                )
        return self.get_session(session_id)

    @guarded
    def delete_session(self, session_id: int) -> None:
        self.get_session(session_id)
        with self._transaction() as db:
            db.execute("DELETE FROM messages WHERE session_id = ?", (int(session_id),))
            db.execute("DELETE FROM sessions WHERE id = ?", (int(session_id),))

    # -- messages ------------------------------------------------------------------------

    def _read_message(self, message_id: int) -> Message:
        with self._lock:
            row = self._db.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return Message.from_row(row)

    @guarded
    def add_message(
        self,
        session_id: int,
        role: str,
        content: str,
        *,
        answer: Answer | None = None,
        status: str = "done",
    ) -> Message:
        """Append a message; the session's first question becomes its title."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        _check_status(status)
        session = self.get_session(session_id)
        now = self._now()
        # A model's reply may hold a lone surrogate (JSON can say "\ud800"), which SQLite
        # cannot encode, and controls a terminal obeys: stored inert (see `safe_text`).
        content = safe_text(content)
        title = session.title
        if role == "user" and session.title == DEFAULT_TITLE:
            title = _title_from(content)
        row = MessageRow(None, session.id, role, content, now, _answer_json(answer), status)
        with self._transaction() as db:
            message_id = db.execute(_INSERT_MESSAGE, row).lastrowid
            db.execute(
                "UPDATE sessions SET updated = ?, title = ? WHERE id = ?", (now, title, session.id)
            )
        return self._read_message(int(message_id))

    @guarded
    def replace_answer(
        self,
        session_id: int,
        old_answer_id: int,
        content: str,
        *,
        answer: Answer | None = None,
        status: str = "done",
    ) -> Message:
        """Store a regenerated answer in place of `old_answer_id`, in one transaction.

        The new answer is inserted and the old one deleted together, so a
        regenerate that fails (or a crash in between) leaves the old answer as
        it was; the question it answers is kept as it is. Only an answer of
        this session is deleted; one already gone (deleted from another
        terminal) leaves just the new answer stored.
        """
        _check_status(status)
        session_id = self.get_session(session_id).id
        now = self._now()
        content = safe_text(content)  # as `add_message` stores it: inert, encodable
        row = MessageRow(None, session_id, "assistant", content, now, _answer_json(answer), status)
        with self._transaction() as db:
            message_id = db.execute(_INSERT_MESSAGE, row).lastrowid
            db.execute(
                "DELETE FROM messages WHERE id = ? AND session_id = ? AND role = 'assistant'",
                (int(old_answer_id), session_id),
            )
            db.execute("UPDATE sessions SET updated = ? WHERE id = ?", (now, session_id))
        return self._read_message(int(message_id))

    @guarded
    def check(self) -> None:
        """Raise `SessionsDamaged` unless sqlite's quick check finds the file sound.

        Queries touch only the pages they need, so a damaged page can hide until
        a chat is half-way through; the chat runs this once before it opens.
        """
        with self._lock:
            rows = [r[0] for r in self._db.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            raise damaged(self.path, "; ".join(str(r) for r in rows[:3]))

    @guarded
    def delete_message(self, message_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE id = ?", (int(message_id),))

    @guarded
    def messages(
        self, session_id: int, *, limit: int | None = None, before_id: int | None = None
    ) -> list[Message]:
        """Messages in order; with `limit`, only the last `limit` (before `before_id`)."""
        sql, params = "SELECT * FROM messages WHERE session_id = ?", [int(session_id)]
        if before_id is not None:
            sql += " AND id < ?"
            params.append(int(before_id))
        if limit is None:
            sql += " ORDER BY id"
            with self._lock:
                return [Message.from_row(r) for r in self._db.execute(sql, params)]
        sql += f" ORDER BY id DESC LIMIT {int(limit)}"
        with self._lock:
            rows = list(self._db.execute(sql, params))
        return [Message.from_row(r) for r in reversed(rows)]

    @guarded
    def count_messages(self, session_id: int, before_id: int | None = None) -> int:
        sql, params = "SELECT COUNT(*) FROM messages WHERE session_id = ?", [int(session_id)]
        if before_id is not None:
            sql += " AND id < ?"
            params.append(int(before_id))
        with self._lock:
            return int(self._db.execute(sql, params).fetchone()[0])

    @guarded
    def history(
        self, session_id: int, before_id: int | None = None, *, last: int | None = None
    ) -> list[tuple[str, Answer]]:
        """(question, stored answer) for each answered question, oldest first.

        The chat turns these back into `followup.Turn`s so a resumed session's
        follow-ups are condensed against what was really said. `before_id`
        stops before that message (a regenerated question's own old answer is
        not its history). `last` keeps only the last `last` turns, read from
        the end of the session a page at a time, so a question in a long
        session does not load every message (`answer.CONDENSE_TURNS` is what
        a follow-up uses).
        """
        if last is None:
            return _pairs(self.messages(session_id, before_id=before_id))
        if last <= 0:
            return []
        # Pairs formed after the window's first question are the ones the whole
        # session would give; so a window holding `last` pairs has the right tail.
        page = 2 * last + 4
        window: list[Message] = []
        cursor = before_id
        while True:
            got = self.messages(session_id, limit=page, before_id=cursor)
            window = got + window
            pairs = _pairs(window)
            if len(pairs) >= last or len(got) < page:
                return pairs[-last:]
            cursor = got[0].id

    @guarded
    def bulk_add(self, session_id: int, rows: Iterable[tuple[str, str, Answer | None]]) -> int:
        """Insert many (role, content, answer) messages at once (benchmarks, imports)."""
        now = self._now()
        stored = [
            MessageRow(None, int(session_id), role, content, now, _answer_json(answer))
            for role, content, answer in rows
        ]
        with self._transaction() as db:
            cur = db.executemany(_INSERT_MESSAGE, stored)
            db.execute("UPDATE sessions SET updated = ? WHERE id = ?", (now, int(session_id)))
        return cur.rowcount

    @guarded
    def restore(self, sessions: list[SessionRow], messages: list[MessageRow]) -> None:
        """Store rows salvaged from a damaged file with their own ids, in one transaction
        (`repair.repair` builds them). Every message's session must be among `sessions`;
        a session's `updated` is moved up to its newest restored message."""
        with self._transaction() as db:
            db.executemany(_INSERT_SESSION, sessions)
            db.executemany(_INSERT_MESSAGE, messages)
            db.execute(
                "UPDATE sessions SET updated = max(updated, coalesce((SELECT max(m.created) "
                "FROM messages m WHERE m.session_id = sessions.id), updated))"
            )
