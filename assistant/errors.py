"""Errors that reach the user as one line, never as a traceback.

The CLI catches `AssistantError` and prints its message; everything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class AssistantError(Exception):
    """A failure the user can act on. `exit_code` is what the CLI returns."""

    exit_code = 1


class UsageError(AssistantError):
    """The command was asked for something it cannot do as given."""

    exit_code = 2


class StoreError(AssistantError):
    """The store cannot be opened, written or queried as configured."""


class EmbedderMismatch(StoreError):
    """The library was indexed with another embedding model."""


class SessionsDamaged(StoreError):
    """The chat sessions file is corrupt (not a database, or a damaged page).

    Raised instead of sqlite's own error so that every command says the same
    thing: which file, and that `assistant sessions repair` moves it aside.
    """


class StoreFull(StoreError):
    """The disk holding the store filled up during a write."""

    remedy = "free some disk space"


class StoreUnavailable(StoreError):
    """The Chroma server stopped answering (it died, or the network went)."""

    remedy = "start the Chroma server again"


class StoreDamaged(StoreError):
    """The store opened but cannot be read: never shown as an empty library."""
