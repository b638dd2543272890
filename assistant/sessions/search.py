"""Searching the sessions file: ranked full text where sqlite has FTS5, substrings where not.

Full text is SQLite FTS5 over every message and title (kept in step by the
triggers in `schema.py`), ranked by bm25, with snippets; where this Python's
sqlite lacks FTS5, every word is matched as a substring (LIKE), newest first.
The functions here take the store's connection; `SessionStore` calls them
under its lock and turns sqlite's errors into one line.
"""

from __future__ import annotations

import re
import sqlite3

from ..safe_text import safe_line
from .records import MARK, SELECT_SESSIONS, SearchHit, Session

SNIPPET_TOKENS = 10  # words around the match in a session list's snippet
SNIPPET_SESSIONS = 30  # a search's best sessions that get one (see `_ranked_sessions`)
NO_FTS_NOTICE = (
    "this Python's sqlite has no FTS5: session search falls back to plain substring "
    "matching (slower, unranked, no snippets)"
)


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


def find_sessions(
    db: sqlite3.Connection, search: str | None, limit: int | None, *, fts: bool
) -> list[Session]:
    """See `SessionStore.list_sessions`."""
    if search and search.strip() and fts:
        return _ranked_sessions(db, search, limit)
    where, params = [], []
    for word in (search or "").split():
        where.append(
            "(s.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m "
            "WHERE m.session_id = s.id AND m.content LIKE ? ESCAPE '\\'))"
        )
        params += [_like(word), _like(word)]
    sql = SELECT_SESSIONS
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY s.updated DESC, s.id DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [Session.from_row(r) for r in db.execute(sql, params)]


def _ranked_sessions(db: sqlite3.Connection, search: str, limit: int | None) -> list[Session]:
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
    rows = list(db.execute(sql, {"q": query}))
    found = [Session.from_row(r) for r in rows]
    # snippet() costs a look-up in the term's whole doclist per row (up to a
    # millisecond for a word in most messages), so only the best sessions,
    # those a sidebar shows first, get one.
    for row, session in zip(rows[:SNIPPET_SESSIONS], found):
        table = "titles_fts" if row["hit_id"] is None else "messages_fts"
        rowid = session.id if row["hit_id"] is None else row["hit_id"]
        got = db.execute(
            f"SELECT snippet({table}, 0, ?, ?, '…', {SNIPPET_TOKENS}) "  # noqa: S608
            f"FROM {table} WHERE {table} MATCH ? AND rowid = ?",
            [*MARK, query, rowid],
        ).fetchone()
        if got is not None:
            session.snippet = " ".join(got[0].split())
    return found


def find_messages(
    db: sqlite3.Connection,
    text: str,
    *,
    limit: int,
    tokens: int,
    mark: tuple[str, str],
    fts: bool,
) -> list[SearchHit]:
    """See `SessionStore.search_messages`."""
    if not fts:
        return _like_hits(db, text, limit, mark)
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
        for r in db.execute(sql, params)
    ]


def _like_hits(
    db: sqlite3.Connection, text: str, limit: int, mark: tuple[str, str]
) -> list[SearchHit]:
    """`find_messages` without FTS5: every word as a substring, newest first."""
    words = text.split()
    if not words:
        return []
    where = " AND ".join("m.content LIKE ? ESCAPE '\\'" for _ in words)
    sql = (
        "SELECT m.id, m.session_id, m.role, m.created, m.content, s.title FROM messages m "
        f"JOIN sessions s ON s.id = m.session_id WHERE {where} "  # noqa: S608
        "ORDER BY m.id DESC LIMIT ?"
    )
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
        for r in db.execute(sql, [*map(_like, words), int(limit)])
    ]
