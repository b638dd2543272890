"""Every error that reaches the user, as one line and an exit code, never as a traceback.

All of them derive from `AssistantError`, and each class carries its exit
code, so the CLI maps exceptions to exit codes in one place
(`assistant.cli.common.AssistantGroup.main`): it prints `Error: <message>` (an
`Interrupted` prints its message alone) and returns `exit_code`. Anything that
is not an `AssistantError` is a bug and keeps its traceback.

Exit codes:

====  ======================================================================
code  meaning
====  ======================================================================
0     done
1     some work failed, the rest is done (`AssistantError` and most subclasses:
      the store, the model endpoint, the bundled server, a record, a session)
2     usage error: the command was asked for something it cannot do as given
      (`UsageError`, `NotConfigured`, and click's own usage errors)
130   interrupted (Ctrl-C, SIGTERM for `serve`): one line says what was kept
====  ======================================================================

This module imports nothing, so any module (and `assistant --help`) can use it.
"""

from __future__ import annotations

from typing import Any

# -- the root and the generic kinds --------------------------------------------------------


class AssistantError(Exception):
    """A failure the user can act on. `exit_code` is what the CLI returns."""

    exit_code = 1


class UsageError(AssistantError):
    """The command was asked for something it cannot do as given."""

    exit_code = 2


class Interrupted(AssistantError):
    """Ctrl-C, raised again with what was kept and how to finish (the message is the line)."""

    exit_code = 130


# -- the store -----------------------------------------------------------------------------


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


class SessionNotFound(AssistantError):
    """No session has the id the user gave."""


# -- records read from files ---------------------------------------------------------------


class RecordError(AssistantError):
    """A record (or a whole file) that cannot be read.

    Carries the file and line so the ingest report can say where, and is
    collected rather than raised to the user: the good records still go in.
    """

    def __init__(self, source: str, line: int | None, reason: str):
        super().__init__(f"{source}:{line or 0}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "reason": self.reason}


# Title plus abstract of one paper. arXiv caps abstracts at 1,920 characters and
# the longest in the sample is under 2,500; a record fifty times that is not a
# paper but a broken export (or a file that is not what it claims). Here, beside the
# error that states it, so the readers and the error share one figure.
MAX_RECORD_CHARS = 100_000


class RecordTooLarge(RecordError):
    """One record over the size a paper can have: refused before it is embedded."""

    def __init__(self, source: str, line: int | None, size: int, unit: str = "characters"):
        super().__init__(
            source,
            line,
            f"record too large: {size:,} {unit}, over the limit of {MAX_RECORD_CHARS:,} "
            "characters for one paper",
        )
        self.size = size


# -- the model endpoint and the bundled server ---------------------------------------------


class LLMError(AssistantError):
    """A model call failed in a way the user can act on (one line, no secrets)."""


class EndpointUnreachable(LLMError):
    """Nothing answered at the configured URL."""


class ModelNotFound(LLMError):
    """The endpoint does not serve the requested model (or none was chosen)."""


class AuthenticationRefused(LLMError):
    """The endpoint answered 401/403."""


class ModelTimeout(LLMError):
    """The model took longer than ASSISTANT_TIMEOUT."""


class ConnectionBroken(LLMError):
    """The server accepted the request, then the connection broke before the reply was whole.

    Not `EndpointUnreachable`: the server is running (it answered), so "is the
    server running?" would send the user to the wrong place; a crash or an
    out-of-memory kill in the server is the usual cause.
    """


class StreamInterrupted(LLMError):
    """A streamed answer broke after part of it arrived.

    It is not retried: the caller may already have shown `partial` to the user,
    and a second generation would not continue the first one.
    """

    def __init__(self, message: str, partial: str = "") -> None:
        super().__init__(message)
        self.partial = partial


class ServerError(LLMError):
    """The server refused or failed the request; the message is the server's own."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotConfigured(LLMError):
    """No endpoint is configured. There is deliberately no hosted default."""

    exit_code = 2


class LocalServerError(AssistantError):
    """The bundled server could not be started; the message says why (plus its log tail)."""


class FetchFault(AssistantError):
    """A request of `assistant fetch` that could not be completed; `reason` is the short
    form for the one line. `url` comes already shown without its password
    (`settings.display_url`), so the line can be printed whole."""

    def __init__(self, reason: str, url: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.url = url


class DeliveryError(AssistantError):
    """A digest could not be delivered (e-mail); the message names the server, never the
    password."""
