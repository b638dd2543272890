"""What the sessions store hands out: sessions, messages and search hits.

Plain dataclasses built from sqlite rows, so the chat, the CLI and the
export read them without SQL. An assistant message's stored answer reads
back as the `Answer` that was stored (`Answer.from_dict`): one shape, live
or resumed, for the widgets, the export and the follow-up history.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..answer import Answer

# What a snippet puts around each matched term: control characters no one types,
# so a widget can style them (`search.highlight_parts`) and nothing in a message is
# mistaken for one. `to_dict` writes them as « and » for JSON readers.
MARK = ("\x02", "\x03")


# The query whose rows `Session.from_row` reads: a session with its message count.
SELECT_SESSIONS = (
    "SELECT s.*, (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) AS n FROM sessions s"
)


def readable_marks(snippet: str) -> str:
    return snippet.replace(MARK[0], "«").replace(MARK[1], "»")


def utc_now() -> datetime:
    """The clock every stored time comes from unless a test gives another."""
    return datetime.now(timezone.utc)


def describe_filters(filters: dict[str, Any]) -> str:
    """`since 2024-01-01, until 2024-06-30, author Hinton, k=4` (the parts that are set)."""
    keys = ("since", "until", "author", "title")
    parts = [f"{key} {filters[key]}" for key in keys if filters.get(key)]
    if filters.get("k"):
        parts.append(f"k={filters['k']}")
    return ", ".join(parts)


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
            "snippet": readable_marks(self.snippet),
            "rank": self.rank,
            "session_title": self.session_title,
            "created": self.created,
        }


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

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Session:
        """A `sessions` row with its message count `n`; unreadable filters read as none."""
        try:
            filters = json.loads(row["filters"] or "{}")
        except ValueError:
            filters = {}
        return cls(
            id=row["id"],
            title=row["title"],
            created=row["created"],
            updated=row["updated"],
            model=row["model"],
            filters=filters,
            message_count=row["n"],
        )

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
            found["snippet"] = readable_marks(self.snippet)
        return found


@dataclass
class Message:
    """One message; `answer` is an assistant reply's stored `Answer`, read back."""

    id: int
    session_id: int
    role: str
    content: str
    created: str
    answer: Answer | None = None
    status: str = "done"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Message:
        """A `messages` row; an answer whose JSON cannot be read is stored as none.

        `answer` (and the checking code it pulls in) is imported only for a row that
        has one: listing sessions reads no message."""
        answer = None
        if row["answer"]:
            try:
                data = json.loads(row["answer"])
            except ValueError:
                data = None
            if isinstance(data, dict):
                from ..answer import Answer

                answer = Answer.from_dict(data)
        return cls(
            id=row["id"],
            session_id=row["session_id"],
            role=row["role"],
            content=row["content"],
            created=row["created"],
            answer=answer,
            status=row["status"] or "done",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "role": self.role,
            "content": self.content,
            "created": self.created,
            "status": self.status,
            "answer": self.answer.to_dict() if self.answer else None,
        }
