"""Chat sessions kept in SQLite (`ASSISTANT_HOME/sessions.db`): the service layer.

- `store`: `SessionStore`, every read and write (the chat and `assistant sessions`).
- `records`: the `Session`, `Message` and `SearchHit` it hands out.
- `schema`: the tables, their upgrades (`PRAGMA user_version`) and the FTS5 index.
- `search`: full-text search, and its substring fallback where sqlite lacks FTS5.
- `guard`: sqlite's errors as one line naming the file.
- `export`: a session as Markdown (`sessions show|export`, the chat's /export).
- `repair`: a damaged file moved aside and its readable rows salvaged.

Only `sqlite3` and the standard library are imported here on purpose:
listing sessions must not pay for chromadb, openai or textual.
"""

from __future__ import annotations

from .records import Message, Session
from .store import DB_NAME, SessionStore

__all__ = ["DB_NAME", "Message", "Session", "SessionStore"]
