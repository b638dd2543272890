"""`assistant sessions repair`: a damaged sessions file moved aside, a fresh one built
from every row sqlite can still read in it.

A damaged file (not a database, or a corrupt page) surfaces from any store
method as `SessionsDamaged`, one line naming the file. `repair` renames it
under a timestamped name, never changing it, and salvages its rows page by
page: a scan that hits a corrupt page resumes past it, so one bad page loses
only the rows on it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .guard import is_damage
from .records import utc_now
from .schema import ROLES, STATUSES
from .store import DB_NAME, DEFAULT_TITLE, MessageRow, SessionRow, SessionStore

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
    now = (clock or utc_now)()
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{DB_NAME}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{DB_NAME}.damaged-{stamp}-{n}")
    building = path.with_name(f"{DB_NAME}.repairing")
    for stale in [building, *(Path(f"{building}{s}") for s in _SIDE_FILES)]:
        stale.unlink(missing_ok=True)
    sessions, messages, complete = _salvage(path)
    kept_sessions, kept_messages = restorable_rows(
        sessions, messages, now.isoformat(timespec="seconds")
    )
    report = RepairReport(
        path,
        damaged=True,
        problem=problem,
        moved_to=aside,
        sessions=len(kept_sessions),
        messages=len(kept_messages),
        complete=complete,
    )
    try:
        with SessionStore(building, clock=clock) as fresh:
            fresh.restore(kept_sessions, kept_messages)
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


def restorable_rows(
    sessions: list[dict[str, Any]], messages: list[dict[str, Any]], now: str
) -> tuple[list[SessionRow], list[MessageRow]]:
    """Salvaged rows as the store writes them, keeping their ids.

    Rows come from any schema version, so every column but the key is
    optional; a row without a usable key, role or text is dropped, and so is
    a second row with an id already kept. Messages whose session row was lost
    get a session named after it, so no readable message is dropped.
    """
    kept: dict[int, SessionRow] = {}
    for row in sessions:
        try:
            session_id = int(row["id"])
        except (KeyError, TypeError, ValueError):
            continue
        filters = row.get("filters")
        kept.setdefault(
            session_id,
            SessionRow(
                session_id,
                str(row.get("title") or DEFAULT_TITLE),
                str(row.get("created") or now),
                str(row.get("updated") or now),
                row.get("model"),
                filters if isinstance(filters, str) else "{}",
            ),
        )
    stored: dict[int, MessageRow] = {}
    for row in messages:
        try:
            message_id, session_id = int(row["id"]), int(row["session_id"])
        except (KeyError, TypeError, ValueError):
            continue
        role, content = row.get("role"), row.get("content")
        if role not in ROLES or not isinstance(content, str) or message_id in stored:
            continue
        created = str(row.get("created") or now)
        if session_id not in kept:
            title = f"Recovered session {session_id}"
            kept[session_id] = SessionRow(session_id, title, created, created)
        answer = row.get("answer")
        stored[message_id] = MessageRow(
            message_id,
            session_id,
            role,
            content,
            created,
            answer if isinstance(answer, str) else None,
            row.get("status") if row.get("status") in STATUSES else "done",
        )
    return list(kept.values()), list(stored.values())


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
