"""The sessions file's schema: its versions, their upgrades, and the full-text index.

The schema carries its version in `PRAGMA user_version` and upgrades itself
through `MIGRATIONS`, one script per version, each applied in its own
transaction, so an old `sessions.db` is upgraded in place the first time a
newer assistant opens it.

The FTS5 index is built by `sync_search_index`, not by a migration script,
because FTS5 is an optional part of sqlite: where this Python's sqlite lacks
it, search falls back to substring matching (see `search.py`).
"""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path

from ..errors import StoreError
from .guard import damaged, is_damage

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
    # built, so this only records that it is still to be built; `sync_search_index`
    # builds it (backfilling every stored message and title) where FTS5 exists.
    """
    CREATE TABLE search_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO search_state VALUES ('fts', 'stale');
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

ROLES = ("user", "assistant", "digest")
STATUSES = ("done", "cancelled")

# External-content tables: the text lives once, in `messages` and `sessions`; the
# triggers keep the index in step with every write, whichever method (or another
# terminal's assistant) makes it. prefix='1 2 3' keeps as-you-type prefix queries
# (and their snippets) cheap from the first letter: without it a snippet for "t"*
# merges every term starting with t.
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


@functools.cache
def fts5_available() -> bool:
    """Whether this process's sqlite was built with FTS5 (most are; some distros' are not)."""
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    except sqlite3.Error:
        return False
    return True


def version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, path: Path) -> int:
    """Bring the schema of `db` (the file `path`) to SCHEMA_VERSION; returns the version
    found before. Each step commits alone, so a failed one leaves the file at the last."""
    found = version(db)
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {found}, newer than this assistant "
            f"knows ({SCHEMA_VERSION}); upgrade paper-assistant"
        )
    for step in range(found, SCHEMA_VERSION):
        try:
            db.executescript(
                f"BEGIN;\n{MIGRATIONS[step]}\nPRAGMA user_version = {step + 1};\nCOMMIT;"
            )
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if is_damage(exc):
                raise damaged(path, exc) from None
            raise StoreError(
                f"cannot upgrade {path} from schema version {step} to {step + 1}: {exc}"
            ) from None
    return found


def sync_search_index(db: sqlite3.Connection, path: Path, fts: bool) -> str | None:
    """Make the full-text index match what this sqlite can do (`fts`: it has FTS5).

    With FTS5, an index marked stale (just upgraded to v3, or last written
    by a sqlite without FTS5) is rebuilt from every stored message and
    title, and the triggers that keep it in step are (re)created, all in
    one transaction. Without FTS5 the triggers are dropped (they could not
    run, so every write would fail) and the index is marked stale, so the
    next assistant that has FTS5 rebuilds it rather than trusting it.

    Returns None, or (when the index could not be built) the line saying
    search falls back to substring matching: storing and reading still work.
    """
    state = db.execute("SELECT value FROM search_state WHERE key = 'fts'").fetchone()
    names = list(_FTS_TRIGGERS)
    triggers = {
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name IN "
            f"({','.join('?' * len(names))})",
            names,
        )
    }
    if fts:
        if state is not None and state[0] == "ok" and triggers == set(_FTS_TRIGGERS):
            return None
        script = "BEGIN;\n" + _FTS_TABLES
        script += "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');\n"
        script += "INSERT INTO titles_fts(titles_fts) VALUES ('rebuild');\n"
        for name, body in _FTS_TRIGGERS.items():
            script += f"DROP TRIGGER IF EXISTS {name};\nCREATE TRIGGER {name} {body};\n"
    elif triggers:
        script = "BEGIN;\n" + "".join(f"DROP TRIGGER IF EXISTS {t};\n" for t in triggers)
    else:
        return None
    state_now = "ok" if fts else "stale"
    script += f"INSERT OR REPLACE INTO search_state VALUES ('fts', '{state_now}');\nCOMMIT;"
    try:
        db.executescript(script)
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if is_damage(exc):
            raise damaged(path, exc) from None
        if not fts:
            raise StoreError(f"cannot remove the search triggers from {path}: {exc}") from None
        return (
            f"the session search index could not be built ({exc}): "
            "search falls back to plain substring matching"
        )
    return None
