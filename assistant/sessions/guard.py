"""sqlite's errors as the one-line errors every command prints for the sessions file.

A corrupt file (not a database, or a damaged page) becomes `SessionsDamaged`,
naming the file and `assistant sessions repair`; a locked, full or read-only
file a `StoreError`. Kept apart from the store because the schema upgrades and
`repair` tell damage from other failures by the same rule.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import SessionsDamaged, StoreError

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


def guarded(method: F) -> F:
    """Turn sqlite's errors from a store's `method` into one-line errors naming its file.

    Corruption becomes `SessionsDamaged`; operational failures (locked, disk
    full, read-only) a `StoreError`. Misuse of the API (ProgrammingError,
    InterfaceError, IntegrityError) is a bug and keeps its traceback.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
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
