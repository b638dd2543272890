"""Chat sessions kept in SQLite (`ASSISTANT_HOME/sessions.db`): the service layer.

The terminal chat and `assistant sessions ...` both go through `SessionStore`,
so no widget or command holds SQL. Each answer is stored as the JSON of
`Answer.to_dict()` beside its text: citations and sources survive a restart
exactly as they were shown, and a resumed session rebuilds its follow-up
history from them.

Only `sqlite3` and the standard library are imported here on purpose:
listing sessions must not pay for chromadb, openai or textual.

The schema carries its version in `PRAGMA user_version` and upgrades itself
through `MIGRATIONS`, one script per version, each applied in its own
transaction, so an old `sessions.db` is upgraded in place the first time a
newer assistant opens it.

Search is full-text (SQLite FTS5 over every message and title, kept in step
by triggers, ranked by bm25, with snippets); where this Python's sqlite lacks
FTS5 it falls back to substring matching (see `_sync_search_index`).

A damaged file (not a database, or a corrupt page) surfaces from any method
as `SessionsDamaged`, one line naming the file; `repair()` moves it aside
under a timestamped name and starts a fresh one holding every row sqlite can
still read from it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from .errors import SessionNotFound, SessionsDamaged, StoreError
from .safe_text import safe_line, safe_markdown, safe_text, safe_url

DB_NAME = "sessions.db"
DEFAULT_TITLE = "New chat"
TITLE_MAX = 60

# MIGRATIONS[i] upgrades a database at version i to version i + 1.
MIGRATIONS: list[str] = [
    # v0 -> v1: sessions and their plain-text messages.
    """
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        created TEXT NOT NULL
    );
    """,
    # v1 -> v2: the model and filters of a session; each answer's citations and
    # sources (Answer.to_dict() as JSON) and whether it finished or was cancelled.
    """
    ALTER TABLE sessions ADD COLUMN model TEXT;
    ALTER TABLE sessions ADD COLUMN filters TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE messages ADD COLUMN answer TEXT;
    ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'done';
    CREATE INDEX messages_by_session ON messages(session_id, id);
    CREATE INDEX sessions_by_updated ON sessions(updated, id);
    """,
    # v2 -> v3: full-text search. The FTS5 index itself depends on how sqlite was
    # built, so this only records that it is still to be built; `_sync_search_index`
    # builds it (backfilling every stored message and title) where FTS5 exists.
    """
    CREATE TABLE search_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO search_state VALUES ('fts', 'stale');
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

ROLES = ("user", "assistant", "digest")
STATUSES = ("done", "cancelled")

# The full-text index (built by `_sync_search_index`, not by a migration script,
# because FTS5 is an optional part of sqlite). External-content tables: the text
# lives once, in `messages` and `sessions`; the triggers keep the index in step
# with every write, whichever method (or another terminal's assistant) makes it.
# prefix='1 2 3' keeps as-you-type prefix queries (and their snippets) cheap from the
# first letter: without it a snippet for "t"* merges every term starting with t.
_FTS_TOKENIZE = "tokenize='unicode61 remove_diacritics 2', prefix='1 2 3'"
_FTS_TABLES = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    content, content='messages', content_rowid='id', {_FTS_TOKENIZE});
CREATE VIRTUAL TABLE IF NOT EXISTS titles_fts USING fts5(
    title, content='sessions', content_rowid='id', {_FTS_TOKENIZE});
"""
_FTS_TRIGGERS = {
    "messages_fts_insert": """AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END""",
    "messages_fts_delete": """AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
        VALUES ('delete', old.id, old.content); END""",
    "messages_fts_update": """AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
        VALUES ('delete', old.id, old.content);
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END""",
    "titles_fts_insert": """AFTER INSERT ON sessions BEGIN
        INSERT INTO titles_fts(rowid, title) VALUES (new.id, new.title); END""",
    "titles_fts_delete": """AFTER DELETE ON sessions BEGIN
        INSERT INTO titles_fts(titles_fts, rowid, title)
        VALUES ('delete', old.id, old.title); END""",
    "titles_fts_update": """AFTER UPDATE OF title ON sessions BEGIN
        INSERT INTO titles_fts(titles_fts, rowid, title) VALUES ('delete', old.id, old.title);
        INSERT INTO titles_fts(rowid, title) VALUES (new.id, new.title); END""",
}
# What a snippet puts around each matched term: control characters no one types,
# so a widget can style them (`highlight_parts`) and nothing in a message is mistaken
# for one. `Session.to_dict` writes them as « and » for JSON readers.
MARK = ("\x02", "\x03")
SNIPPET_TOKENS = 10  # words around the match in a session list's snippet
SNIPPET_SESSIONS = 30  # a search's best sessions that get one (see `_search_sessions`)
NO_FTS_NOTICE = (
    "this Python's sqlite has no FTS5: session search falls back to plain substring "
    "matching (slower, unranked, no snippets)"
)


@functools.cache
def fts5_available() -> bool:
    """Whether this process's sqlite was built with FTS5 (most are; some distros' are not)."""
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    except sqlite3.Error:
        return False
    return True


def fts_query(text: str) -> str | None:
    """The user's search text as an FTS5 query that cannot be a syntax error.

    Each whitespace-separated word becomes a quoted string with a prefix star
    (`"galore"*`), so what the user typed is only ever text: `OR`, `NEAR(`, `-x`,
    `*` and stray quotes are matched as words, not read as operators, and a word
    still being typed matches as a prefix. Words are ANDed (every one must occur
    in the same message or title). A word like `Q-GaLore` or `12,868` becomes a
    phrase of its tokens. None when nothing searchable is left.
    """
    terms = [
        '"' + word.replace('"', '""') + '"*'
        for word in text.split()
        if any(ch.isalnum() for ch in word)
    ]
    return " ".join(terms) or None


def highlight_parts(snippet: str) -> list[tuple[str, bool]]:
    """A snippet split into (text, is_a_match) runs, for a widget to style; each run is
    made inert (`safe_line`) once the marks, themselves controls, are split off."""
    parts: list[tuple[str, bool]] = []
    for i, piece in enumerate(re.split("[\x02\x03]", snippet)):
        if piece:
            parts.append((safe_line(piece), i % 2 == 1))
    return parts


@dataclass
class SearchHit:
    """One message (or session title, `message_id` None) matching a search."""

    session_id: int
    message_id: int | None
    role: str  # a message's role, or "title"
    snippet: str  # the matched terms between MARK[0] and MARK[1]
    rank: float  # FTS5 bm25: lower is better (0.0 for the LIKE fallback)
    session_title: str
    created: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "message_id": self.message_id,
            "role": self.role,
            "snippet": _readable_marks(self.snippet),
            "rank": self.rank,
            "session_title": self.session_title,
            "created": self.created,
        }


def _readable_marks(snippet: str) -> str:
    return snippet.replace(MARK[0], "«").replace(MARK[1], "»")


# sqlite's primary result codes for "this file is damaged": SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGE_CODES = (11, 26)
F = TypeVar("F", bound=Callable[..., Any])


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether sqlite says the file itself is corrupt (not busy, full or read-only)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def damaged(path: Path, exc: BaseException | str) -> SessionsDamaged:
    """The one line every command prints for a corrupt sessions file."""
    return SessionsDamaged(
        f"the sessions database {path} is damaged ({exc}); run `assistant sessions repair` "
        "to move it aside and start a fresh one (what can still be read is copied over)"
    )


def _guarded(method: F) -> F:
    """Turn sqlite's errors from `method` into one-line errors naming the file.

    Corruption becomes `SessionsDamaged`; operational failures (locked, disk
    full, read-only) a `StoreError`. Misuse of the API (ProgrammingError,
    InterfaceError, IntegrityError) is a bug and keeps its traceback.
    """

    @functools.wraps(method)
    def wrapper(self: SessionStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise damaged(self.path, exc) from None
            if isinstance(exc, sqlite3.OperationalError):
                raise StoreError(
                    f"the sessions database {self.path} failed: {exc} "
                    "(nothing already stored was changed)"
                ) from None
            raise

    return wrapper  # type: ignore[return-value]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Session:
    """One conversation: its title, model, filters (since/until/k) and times."""

    id: int
    title: str
    created: str
    updated: str
    model: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    message_count: int = 0
    # Set by a search: the best match in the session, its terms between MARK[0] and MARK[1].
    snippet: str | None = None

    def to_dict(self) -> dict[str, Any]:
        found = {
            "id": self.id,
            "title": self.title,
            "created": self.created,
            "updated": self.updated,
            "model": self.model,
            "filters": self.filters,
            "messages": self.message_count,
        }
        if self.snippet is not None:
            found["snippet"] = _readable_marks(self.snippet)
        return found


def cited_sources(answer: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The sources a stored answer (`Answer.to_dict`) cites, in source order, each with its
    `supported` verdict added: what the export's references and the chat's sources panel
    list (`Answer.cited_sources` is the same rule on a live answer)."""
    answer = answer or {}
    supported = {c.get("n"): bool(c.get("supported")) for c in answer.get("citations") or []}
    return [
        dict(s, supported=supported[s.get("n")])
        for s in answer.get("sources") or []
        if s.get("n") in supported
    ]


@dataclass
class Message:
    """One message. `answer` is the stored `Answer.to_dict()` of an assistant reply."""

    id: int
    session_id: int
    role: str
    content: str
    created: str
    answer: dict[str, Any] | None = None
    status: str = "done"

    @property
    def citations(self) -> list[dict[str, Any]]:
        return list((self.answer or {}).get("citations") or [])

    @property
    def sources(self) -> list[dict[str, Any]]:
        return list((self.answer or {}).get("sources") or [])

    @property
    def evidence(self) -> list[dict[str, Any]]:
        """The verbatim quotes the answer rests on (`n` names their source)."""
        return list((self.answer or {}).get("evidence") or [])

    @property
    def cited_sources(self) -> list[dict[str, Any]]:
        """The sources the answer cites, each with its `supported` verdict added."""
        return cited_sources(self.answer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "role": self.role,
            "content": self.content,
            "created": self.created,
            "status": self.status,
            "answer": self.answer,
        }


def _like(word: str) -> str:
    return "%" + re.sub(r"([\\%_])", r"\\\1", word) + "%"


def _substring_snippet(
    content: str, words: list[str], mark: tuple[str, str], room: int = 60
) -> str:
    """A snippet for the LIKE fallback: the text around the first word found, words marked."""
    text = " ".join(content.split())
    lower = text.lower()
    at = min((i for i in (lower.find(w.lower()) for w in words) if i >= 0), default=0)
    start, end = max(0, at - room // 2), min(len(text), at + room)
    piece = text[start:end]
    pattern = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    piece = re.sub(f"({pattern})", lambda m: mark[0] + m.group(1) + mark[1], piece, flags=re.I)
    return ("…" if start else "") + piece + ("…" if end < len(text) else "")


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
        self.fts = fts5_available() if fts is None else bool(fts and fts5_available())
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

    @_guarded
    def _setup(self) -> None:
        self._db.execute("PRAGMA foreign_keys = ON")
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            pass  # a read-only or network filesystem: the default journal still works
        self.migrate()
        self._sync_search_index()

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
    @_guarded
    def version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @_guarded
    def migrate(self) -> int:
        """Bring the schema to SCHEMA_VERSION; returns the version found before."""
        with self._lock:
            found = self.version
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {found}, newer than this assistant "
                    f"knows ({SCHEMA_VERSION}); upgrade paper-assistant"
                )
            for version in range(found, SCHEMA_VERSION):
                script = MIGRATIONS[version]
                try:
                    self._db.executescript(
                        f"BEGIN;\n{script}\nPRAGMA user_version = {version + 1};\nCOMMIT;"
                    )
                except sqlite3.Error as exc:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    if is_damage(exc):
                        raise damaged(self.path, exc) from None
                    raise StoreError(
                        f"cannot upgrade {self.path} from schema version {version} to "
                        f"{version + 1}: {exc}"
                    ) from None
            return found

    def _sync_search_index(self) -> None:
        """Make the full-text index match what this sqlite can do.

        With FTS5, an index marked stale (just upgraded to v3, or last written
        by a sqlite without FTS5) is rebuilt from every stored message and
        title, and the triggers that keep it in step are (re)created, all in
        one transaction. Without FTS5 the triggers are dropped (they could not
        run, so every write would fail) and the index is marked stale, so the
        next assistant that has FTS5 rebuilds it rather than trusting it.
        """
        with self._lock:
            state = self._db.execute("SELECT value FROM search_state WHERE key = 'fts'").fetchone()
            names = list(_FTS_TRIGGERS)
            triggers = {
                r[0]
                for r in self._db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name IN "
                    f"({','.join('?' * len(names))})",
                    names,
                )
            }
            if self.fts:
                if state is not None and state[0] == "ok" and triggers == set(_FTS_TRIGGERS):
                    return
                script = "BEGIN;\n" + _FTS_TABLES
                script += "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');\n"
                script += "INSERT INTO titles_fts(titles_fts) VALUES ('rebuild');\n"
                for name, body in _FTS_TRIGGERS.items():
                    script += f"DROP TRIGGER IF EXISTS {name};\nCREATE TRIGGER {name} {body};\n"
            elif triggers:
                script = "BEGIN;\n" + "".join(f"DROP TRIGGER IF EXISTS {t};\n" for t in triggers)
            else:
                return
            state_now = "ok" if self.fts else "stale"
            script += f"INSERT OR REPLACE INTO search_state VALUES ('fts', '{state_now}');\nCOMMIT;"
            try:
                self._db.executescript(script)
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if is_damage(exc):
                    raise damaged(self.path, exc) from None
                if not self.fts:
                    raise StoreError(
                        f"cannot remove the search triggers from {self.path}: {exc}"
                    ) from None
                # Search degrades to LIKE; storing and reading sessions still work.
                self.fts = False
                self.search_notice = f"the session search index could not be built ({exc}): " + (
                    "search falls back to plain substring matching"
                )

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

    def _session(self, row: sqlite3.Row) -> Session:
        try:
            filters = json.loads(row["filters"] or "{}")
        except ValueError:
            filters = {}
        return Session(
            id=row["id"],
            title=row["title"],
            created=row["created"],
            updated=row["updated"],
            model=row["model"],
            filters=filters,
            message_count=row["n"],
        )

    _SELECT_SESSIONS = (
        "SELECT s.*, (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) AS n "
        "FROM sessions s"
    )

    @_guarded
    def create_session(
        self,
        title: str = DEFAULT_TITLE,
        model: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> Session:
        now = self._now()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO sessions (title, created, updated, model, filters) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    safe_line(title).strip() or DEFAULT_TITLE,
                    now,
                    now,
                    model,
                    json.dumps(filters or {}),
                ),
            )
            return self.get_session(int(cur.lastrowid))

    @_guarded
    def get_session(self, session_id: int) -> Session:
        with self._lock:
            row = self._db.execute(
                self._SELECT_SESSIONS + " WHERE s.id = ?", (int(session_id),)
            ).fetchone()
        if row is None:
            raise SessionNotFound(f"no session {session_id}: `assistant sessions list` shows them")
        return self._session(row)

    @_guarded
    def list_sessions(self, search: str | None = None, limit: int | None = None) -> list[Session]:
        """Sessions, most recently used first.

        With `search`, only sessions whose title or one message holds every
        word of it (each word also as the start of a longer one, any case),
        best match first (FTS5's bm25 of the session's best message or title),
        the best `SNIPPET_SESSIONS` each with a `snippet` of that match.
        Without FTS5, the LIKE fallback keeps sessions holding every word
        anywhere, newest first, no snippet.
        """
        if search and search.strip() and self.fts:
            return self._search_sessions(search, limit)
        where, params = [], []
        for word in (search or "").split():
            where.append(
                "(s.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m "
                "WHERE m.session_id = s.id AND m.content LIKE ? ESCAPE '\\'))"
            )
            params += [_like(word), _like(word)]
        sql = self._SELECT_SESSIONS
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY s.updated DESC, s.id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            return [self._session(r) for r in self._db.execute(sql, params)]

    def _search_sessions(self, search: str, limit: int | None) -> list[Session]:
        query = fts_query(search)
        if query is None:  # only punctuation: nothing can match a word
            return []
        # Each session's best hit: SQLite takes the bare `mid` from the row with MIN(r).
        sql = (
            "WITH hits(sid, mid, r) AS ("
            " SELECT m.session_id, m.id, messages_fts.rank FROM messages_fts"
            " JOIN messages m ON m.id = messages_fts.rowid WHERE messages_fts MATCH :q"
            " UNION ALL"
            " SELECT titles_fts.rowid, NULL, titles_fts.rank FROM titles_fts"
            " WHERE titles_fts MATCH :q),"
            " best AS (SELECT sid, mid, MIN(r) AS r FROM hits GROUP BY sid)"
            " SELECT s.*, (SELECT COUNT(*) FROM messages c WHERE c.session_id = s.id) AS n,"
            " best.mid AS hit_id FROM best JOIN sessions s ON s.id = best.sid"
            " ORDER BY best.r, s.updated DESC, s.id DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = list(self._db.execute(sql, {"q": query}))
            found = [self._session(r) for r in rows]
            # snippet() costs a look-up in the term's whole doclist per row (up to a
            # millisecond for a word in most messages), so only the best sessions,
            # those a sidebar shows first, get one.
            for row, session in zip(rows[:SNIPPET_SESSIONS], found):
                table = "titles_fts" if row["hit_id"] is None else "messages_fts"
                rowid = session.id if row["hit_id"] is None else row["hit_id"]
                got = self._db.execute(
                    f"SELECT snippet({table}, 0, ?, ?, '…', {SNIPPET_TOKENS}) "  # noqa: S608
                    f"FROM {table} WHERE {table} MATCH ? AND rowid = ?",
                    [*MARK, query, rowid],
                ).fetchone()
                if got is not None:
                    session.snippet = " ".join(got[0].split())
        return found

    @_guarded
    def search_messages(
        self, text: str, *, limit: int = 50, tokens: int = 16, mark: tuple[str, str] = MARK
    ) -> list[SearchHit]:
        """The messages and session titles matching `text`, best first, each with a snippet.

        The matched terms are wrapped in `mark` (`highlight_parts` splits the
        default ones for styling); `tokens` is the snippet's length in words.
        Without FTS5 the LIKE fallback finds the same words, newest first,
        rank 0, with a snippet cut around the first word found.
        """
        if not self.fts:
            return self._like_hits(text, limit, mark)
        query = fts_query(text)
        if query is None:
            return []
        tokens = max(1, min(int(tokens), 64))  # FTS5's own bound on a snippet
        sql = (
            "SELECT * FROM ("
            " SELECT m.session_id, m.id AS message_id, m.role, m.created, s.title, f.snip,"
            " f.r FROM (SELECT rowid, rank AS r,"
            f" snippet(messages_fts, 0, :a, :b, '…', {tokens}) AS snip FROM messages_fts"
            " WHERE messages_fts MATCH :q ORDER BY rank LIMIT :n) f"
            " JOIN messages m ON m.id = f.rowid JOIN sessions s ON s.id = m.session_id"
            " UNION ALL"
            " SELECT s.id, NULL, 'title', s.created, s.title, f.snip, f.r FROM ("
            f" SELECT rowid, rank AS r, snippet(titles_fts, 0, :a, :b, '…', {tokens}) AS snip"
            " FROM titles_fts WHERE titles_fts MATCH :q ORDER BY rank LIMIT :n) f"
            " JOIN sessions s ON s.id = f.rowid"
            ") ORDER BY r, created DESC LIMIT :n"
        )
        params = {"a": mark[0], "b": mark[1], "q": query, "n": int(limit)}
        with self._lock:
            rows = list(self._db.execute(sql, params))
        return [
            SearchHit(
                session_id=r["session_id"],
                message_id=r["message_id"],
                role=r["role"],
                snippet=" ".join(r["snip"].split()),
                rank=float(r["r"]),
                session_title=r["title"],
                created=r["created"],
            )
            for r in rows
        ]

    def _like_hits(self, text: str, limit: int, mark: tuple[str, str]) -> list[SearchHit]:
        """`search_messages` without FTS5: every word as a substring, newest first."""
        words = text.split()
        if not words:
            return []
        where = " AND ".join("m.content LIKE ? ESCAPE '\\'" for _ in words)
        sql = (
            "SELECT m.id, m.session_id, m.role, m.created, m.content, s.title FROM messages m "
            f"JOIN sessions s ON s.id = m.session_id WHERE {where} "  # noqa: S608
            "ORDER BY m.id DESC LIMIT ?"
        )
        with self._lock:
            rows = list(self._db.execute(sql, [*map(_like, words), int(limit)]))
        return [
            SearchHit(
                session_id=r["session_id"],
                message_id=r["id"],
                role=r["role"],
                snippet=_substring_snippet(r["content"], words, mark),
                rank=0.0,
                session_title=r["title"],
                created=r["created"],
            )
            for r in rows
        ]

    def search(self, text: str) -> list[Session]:
        """Sessions whose title or content matches `text` (see `list_sessions`)."""
        return self.list_sessions(search=text)

    def latest_session(self) -> Session | None:
        found = self.list_sessions(limit=1)
        return found[0] if found else None

    @_guarded
    def rename_session(self, session_id: int, title: str) -> Session:
        title = " ".join(title.split())[:200]
        if not title:
            from .errors import UsageError

            raise UsageError("a session title cannot be empty")
        self.get_session(session_id)
        with self._lock:
            self._db.execute("UPDATE sessions SET title = ? WHERE id = ?", (title, int(session_id)))
        return self.get_session(session_id)

    @_guarded
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

    @_guarded
    def delete_session(self, session_id: int) -> None:
        self.get_session(session_id)
        with self._transaction() as db:
            db.execute("DELETE FROM messages WHERE session_id = ?", (int(session_id),))
            db.execute("DELETE FROM sessions WHERE id = ?", (int(session_id),))

    # -- messages ------------------------------------------------------------------------

    def _message(self, row: sqlite3.Row) -> Message:
        answer = None
        if row["answer"]:
            try:
                answer = json.loads(row["answer"])
            except ValueError:
                answer = None
        return Message(
            id=row["id"],
            session_id=row["session_id"],
            role=row["role"],
            content=row["content"],
            created=row["created"],
            answer=answer,
            status=row["status"] or "done",
        )

    @_guarded
    def add_message(
        self,
        session_id: int,
        role: str,
        content: str,
        *,
        answer: dict[str, Any] | None = None,
        status: str = "done",
    ) -> Message:
        """Append a message; the session's first question becomes its title."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        session = self.get_session(session_id)
        now = self._now()
        # A model's reply may hold a lone surrogate (JSON can say "\ud800"), which SQLite
        # cannot encode, and controls a terminal obeys: stored inert (see `safe_text`).
        content = safe_text(content)
        title = session.title
        if role == "user" and session.title == DEFAULT_TITLE:
            title = _title_from(content)
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO messages (session_id, role, content, created, answer, status) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    int(session_id),
                    role,
                    content,
                    now,
                    json.dumps(answer, default=str) if answer is not None else None,
                    status,
                ),
            )
            db.execute(
                "UPDATE sessions SET updated = ?, title = ? WHERE id = ?",
                (now, title, int(session_id)),
            )
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM messages WHERE id = ?", (cur.lastrowid,)
            ).fetchone()
        return self._message(row)

    @_guarded
    def replace_answer(
        self,
        session_id: int,
        old_answer_id: int,
        content: str,
        *,
        answer: dict[str, Any] | None = None,
        status: str = "done",
    ) -> Message:
        """Store a regenerated answer in place of `old_answer_id`, in one transaction.

        The new answer is inserted and the old one deleted together, so a
        regenerate that fails (or a crash in between) leaves the old answer as
        it was; the question it answers is kept as it is. Only an answer of
        this session is deleted; one already gone (deleted from another
        terminal) leaves just the new answer stored.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        session_id = self.get_session(session_id).id
        now = self._now()
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO messages (session_id, role, content, created, answer, status) "
                "VALUES (?, 'assistant', ?, ?, ?, ?)",
                (
                    session_id,
                    content,
                    now,
                    json.dumps(answer, default=str) if answer is not None else None,
                    status,
                ),
            )
            db.execute(
                "DELETE FROM messages WHERE id = ? AND session_id = ? AND role = 'assistant'",
                (int(old_answer_id), session_id),
            )
            db.execute("UPDATE sessions SET updated = ? WHERE id = ?", (now, session_id))
        with self._lock:
            new = self._db.execute(
                "SELECT * FROM messages WHERE id = ?", (cur.lastrowid,)
            ).fetchone()
        return self._message(new)

    @_guarded
    def check(self) -> None:
        """Raise `SessionsDamaged` unless sqlite's quick check finds the file sound.

        Queries touch only the pages they need, so a damaged page can hide until
        a chat is half-way through; the chat runs this once before it opens.
        """
        with self._lock:
            rows = [r[0] for r in self._db.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            raise damaged(self.path, "; ".join(str(r) for r in rows[:3]))

    @_guarded
    def delete_message(self, message_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE id = ?", (int(message_id),))

    @_guarded
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
                return [self._message(r) for r in self._db.execute(sql, params)]
        sql += f" ORDER BY id DESC LIMIT {int(limit)}"
        with self._lock:
            rows = list(self._db.execute(sql, params))
        return [self._message(r) for r in reversed(rows)]

    @_guarded
    def count_messages(self, session_id: int, before_id: int | None = None) -> int:
        sql, params = "SELECT COUNT(*) FROM messages WHERE session_id = ?", [int(session_id)]
        if before_id is not None:
            sql += " AND id < ?"
            params.append(int(before_id))
        with self._lock:
            return int(self._db.execute(sql, params).fetchone()[0])

    @_guarded
    def history(
        self, session_id: int, before_id: int | None = None, *, last: int | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """(question, stored answer) for each answered question, oldest first.

        The chat turns these back into `answer.Turn`s so a resumed session's
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

    @_guarded
    def bulk_add(self, session_id: int, rows: Iterable[tuple[str, str, dict | None]]) -> int:
        """Insert many (role, content, answer) messages at once (benchmarks, imports)."""
        now = self._now()
        with self._transaction() as db:
            cur = db.executemany(
                "INSERT INTO messages (session_id, role, content, created, answer, status) "
                "VALUES (?, ?, ?, ?, ?, 'done')",
                [
                    (
                        int(session_id),
                        role,
                        content,
                        now,
                        json.dumps(answer, default=str) if answer is not None else None,
                    )
                    for role, content, answer in rows
                ],
            )
            db.execute("UPDATE sessions SET updated = ? WHERE id = ?", (now, int(session_id)))
        return cur.rowcount

    @_guarded
    def _restore(
        self, sessions: list[dict[str, Any]], messages: list[dict[str, Any]]
    ) -> tuple[int, int]:
        """Insert rows salvaged from a damaged file, keeping their ids (for `repair`).

        Rows come from any schema version, so every column but the key is
        optional. Messages whose session row was lost get a session named after
        it, so no readable message is dropped. Returns (sessions, messages) stored.
        """
        now = self._now()
        kept_sessions = 0
        known: set[int] = set()
        with self._transaction() as db:
            for row in sessions:
                try:
                    session_id = int(row["id"])
                except (KeyError, TypeError, ValueError):
                    continue
                filters = row.get("filters")
                db.execute(
                    "INSERT OR IGNORE INTO sessions (id, title, created, updated, model, filters)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        session_id,
                        str(row.get("title") or DEFAULT_TITLE),
                        str(row.get("created") or now),
                        str(row.get("updated") or now),
                        row.get("model"),
                        filters if isinstance(filters, str) else "{}",
                    ),
                )
                known.add(session_id)
                kept_sessions += 1
            kept_messages = 0
            for row in messages:
                try:
                    message_id, session_id = int(row["id"]), int(row["session_id"])
                except (KeyError, TypeError, ValueError):
                    continue
                role, content = row.get("role"), row.get("content")
                if role not in ROLES or not isinstance(content, str):
                    continue
                created = str(row.get("created") or now)
                if session_id not in known:
                    db.execute(
                        "INSERT OR IGNORE INTO sessions (id, title, created, updated) "
                        "VALUES (?, ?, ?, ?)",
                        (session_id, f"Recovered session {session_id}", created, created),
                    )
                    known.add(session_id)
                    kept_sessions += 1
                status = row.get("status") if row.get("status") in STATUSES else "done"
                answer = row.get("answer")
                db.execute(
                    "INSERT OR IGNORE INTO messages (id, session_id, role, content, created, "
                    "answer, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        message_id,
                        session_id,
                        role,
                        content,
                        created,
                        answer if isinstance(answer, str) else None,
                        status,
                    ),
                )
                db.execute(
                    "UPDATE sessions SET updated = max(updated, ?) WHERE id = ?",
                    (created, session_id),
                )
                kept_messages += 1
        return kept_sessions, kept_messages

    # -- export --------------------------------------------------------------------------

    @_guarded
    def export_markdown(self, session_id: int) -> str:
        session = self.get_session(session_id)
        return render_markdown(session, self.messages(session_id))

    @_guarded
    def write_export(self, session_id: int, folder: Path) -> Path:
        """Write the session as Markdown under `folder` (made if missing); returns the path."""
        session = self.get_session(session_id)
        text = render_markdown(session, self.messages(session_id))
        slug = re.sub(r"[^a-z0-9]+", "-", session.title.lower()).strip("-")[:40] or "chat"
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"session-{session.id}-{slug}.md"
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"cannot write the export to {folder}: {exc.strerror}") from None
        return path


def _pairs(messages: list[Message]) -> list[tuple[str, dict[str, Any]]]:
    """Each answer with the question just before it (unanswered questions, digests skipped)."""
    pairs: list[tuple[str, dict[str, Any]]] = []
    pending: str | None = None
    for message in messages:
        if message.role == "user":
            pending = message.content
        elif message.role == "assistant" and pending is not None:
            pairs.append((pending, message.answer or {"answer": message.content}))
            pending = None
    return pairs


def _title_from(question: str) -> str:
    title = " ".join(question.split())
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1].rstrip() + "…"


def describe_filters(filters: dict[str, Any]) -> str:
    """`since 2024-01-01, until 2024-06-30, k=4` (the parts that are set)."""
    parts = [f"{key} {filters[key]}" for key in ("since", "until") if filters.get(key)]
    if filters.get("k"):
        parts.append(f"k={filters['k']}")
    return ", ".join(parts)


def source_line(source: dict[str, Any]) -> str:
    """One reference: `[n] Title (date). url, supported by its passage`."""
    when = safe_line(str(source.get("published") or "undated"))
    line = f"[{source.get('n')}] {safe_markdown(safe_line(str(source.get('title', ''))))} ({when})."
    url = safe_url(source.get("url"))
    if url:
        line += f" {url}"
    if "supported" in source:
        line += (
            " (supported by its passage)"
            if source["supported"]
            else " (not supported by its passage)"
        )
    return line


def render_markdown(session: Session, messages: list[Message]) -> str:
    """The session as Markdown: each question, each answer with its numbered
    references, and at the end every paper the session cited."""
    # Everything here came from a paper, a model or a user: made inert (`safe_markdown`)
    # for the terminal (`sessions show`) and for whatever renders the file.
    lines = [f"# {safe_markdown(safe_line(session.title))}", ""]
    meta = [
        f"- session: {session.id}",
        f"- started: {session.created}",
        f"- last used: {session.updated}",
    ]
    if session.model:
        meta.append(f"- model: {safe_markdown(safe_line(session.model))}")
    if describe_filters(session.filters):
        meta.append(f"- filters: {safe_markdown(safe_line(describe_filters(session.filters)))}")
    lines += meta + [""]
    cited: dict[str, dict[str, Any]] = {}
    for message in messages:
        if message.role == "user":
            lines += ["## Question", "", safe_markdown(message.content.strip()), ""]
            continue
        heading = "## Digest" if message.role == "digest" else "## Answer"
        lines += [heading, "", safe_markdown(message.content.strip()), ""]
        if message.status == "cancelled":
            lines += ["*(cancelled before the model finished)*", ""]
        refs = message.cited_sources
        # The chat stores an answer's evidence in its text; `ask` stores the prose alone,
        # so there the quotes go under the paper they come from.
        quotes = [] if "**Evidence**" in message.content else message.evidence
        if refs:
            lines += ["References:", ""]
            for source in refs:
                lines.append(f"- {source_line(source)}")
                lines += [
                    f"    - “{safe_markdown(' '.join(str(q.get('text', '')).split()))}”"
                    for q in quotes
                    if q.get("n") == source.get("n")
                ]
            lines.append("")
        for source in refs:
            cited.setdefault(str(source.get("paper_id")), source)
    if cited:
        lines += ["## All references", ""]
        for i, source in enumerate(cited.values(), start=1):
            when = safe_line(str(source.get("published") or "undated"))
            url = safe_url(source.get("url"))
            url = f" {url}" if url else ""
            title = safe_markdown(safe_line(str(source.get("title", ""))))
            lines.append(f"{i}. {title} ({when}).{url}")
        lines.append("")
    return "\n".join(lines)


# -- repair --------------------------------------------------------------------------------

_SIDE_FILES = ("-wal", "-shm")  # a WAL belongs to its database: they move together


@dataclass
class RepairReport:
    """What `repair` found and did."""

    path: Path
    damaged: bool
    problem: str | None = None
    moved_to: Path | None = None
    sessions: int = 0
    messages: int = 0
    complete: bool = True  # False when some rows could not be read (they stay in moved_to)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "damaged": self.damaged,
            "problem": self.problem,
            "moved_to": str(self.moved_to) if self.moved_to else None,
            "recovered_sessions": self.sessions,
            "recovered_messages": self.messages,
            "complete": self.complete,
        }


def diagnose(path: Path) -> str | None:
    """None when `path` is a sound sessions file (or absent), else what sqlite says is wrong.

    Read-only, so checking never changes the file (nor checkpoints its WAL).
    """
    if not path.exists():
        return None
    try:
        db = _open_read_only(path)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the sessions database {path}: {exc}") from None
    try:
        rows = [str(r[0]) for r in db.execute("PRAGMA integrity_check(20)")]
        db.execute("SELECT COUNT(*) FROM sessions").fetchone()
        db.execute("SELECT COUNT(*) FROM messages").fetchone()
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return str(exc)
        if "no such table" in str(exc):
            return None  # an empty or older file: opening it creates the tables
        raise StoreError(f"cannot check the sessions database {path}: {exc}") from None
    finally:
        db.close()
    return None if rows == ["ok"] else "; ".join(rows[:3])


def repair(home: Path, clock: Callable[[], datetime] | None = None) -> RepairReport:
    """Move a damaged `sessions.db` aside and start a fresh one with what is still readable.

    The fresh file is built beside the damaged one first and renamed into place
    last, so an interrupted repair leaves the damaged file where it was; the
    damaged file is only ever renamed, never changed, so nothing in it is lost.
    """
    path = Path(home) / DB_NAME
    problem = diagnose(path)
    if problem is None:
        return RepairReport(path, damaged=False)
    stamp = (clock or utc_now)().astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{DB_NAME}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{DB_NAME}.damaged-{stamp}-{n}")
    building = path.with_name(f"{DB_NAME}.repairing")
    for stale in [building, *(Path(f"{building}{s}") for s in _SIDE_FILES)]:
        stale.unlink(missing_ok=True)
    sessions, messages, complete = _salvage(path)
    report = RepairReport(path, damaged=True, problem=problem, moved_to=aside, complete=complete)
    try:
        with SessionStore(building, clock=clock) as fresh:
            report.sessions, report.messages = fresh._restore(sessions, messages)
        for suffix in ("", *_SIDE_FILES):
            old = Path(f"{path}{suffix}")
            if old.exists():
                os.replace(old, f"{aside}{suffix}")
        os.replace(building, path)
    except OSError as exc:
        raise StoreError(
            f"cannot repair {path}: {exc.strerror or exc} "
            f"({'moved to ' + str(aside) if aside.exists() else 'left as it was'})"
        ) from None
    return report


def _open_read_only(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


def _salvage(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """Every row of `sessions` and `messages` that sqlite can still read from `path`."""
    try:
        db = _open_read_only(path)
    except sqlite3.Error:
        return [], [], False
    try:
        sessions, whole_s = _readable_rows(db, "sessions")
        messages, whole_m = _readable_rows(db, "messages")
    finally:
        db.close()
    return sessions, messages, whole_s and whole_m


def _readable_rows(db: sqlite3.Connection, table: str) -> tuple[list[dict[str, Any]], bool]:
    """Rows in rowid order, stepping over the rowid ranges whose pages cannot be read.

    A scan that hits a corrupt page fails; a new scan that starts past that
    page's rows reaches the next good page through the table's interior pages.
    Where the next readable start lies is found by doubling, then bisecting.
    """
    rows: list[dict[str, Any]] = []
    complete, after = True, 0
    while True:
        try:
            cursor = db.execute(
                f"SELECT rowid AS _rowid_, * FROM {table} "  # noqa: S608
                "WHERE rowid > ? ORDER BY rowid",
                (after,),
            )
            for row in cursor:
                rows.append(dict(row))
                after = int(row["_rowid_"])
            return rows, complete
        except sqlite3.DatabaseError:
            complete = False
            resume = _next_readable(db, table, after)
            if resume is None:
                return rows, complete
            after = resume


def _next_readable(db: sqlite3.Connection, table: str, after: int) -> int | None:
    """The smallest `s > after` from which a scan of `table` can start, or None."""

    def readable(start: int) -> bool:
        try:
            db.execute(
                f"SELECT rowid FROM {table} WHERE rowid > ? "  # noqa: S608
                "ORDER BY rowid LIMIT 1",
                (start,),
            ).fetchall()
            return True
        except sqlite3.DatabaseError:
            return False

    step = 1
    while not readable(after + step):
        step *= 2
        if step > 2**62:
            return None
    low, high = after + step // 2, after + step  # low unreadable (or == after), high readable
    while high - low > 1:
        mid = (low + high) // 2
        if readable(mid):
            high = mid
        else:
            low = mid
    return high
