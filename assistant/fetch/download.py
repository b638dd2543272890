"""One GET with the faults a daily fetch meets, each turned into one `FetchFault`.

Both sources are plain HTTP GETs, so httpx does the work; what is ours is the
policy: a 429 or 503 with a `Retry-After` short enough to wait for is waited
for and asked again (a few times), anything longer or any other failure ends
the fetch with a fault that names what happened in words a user can act on
(offline, a name that does not resolve, a timeout, the server's status), and
never with the URL's user or password.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..errors import FetchFault
from ..settings import display_url

RETRY_STATUSES = (429, 503)
# Retries of one request after a 429/503 before the fetch stops.
MAX_RETRIES = 3
USER_AGENT = "paper-assistant (https://github.com/; weekly digest of new papers)"


@dataclass
class Response:
    status: int
    body: bytes
    url: str


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


def _describe(exc: Exception) -> str:
    """A transport error in words: what the user checks first."""
    import httpx

    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time (timeout)"
    if isinstance(exc, httpx.ConnectError):
        if any(
            marker in lowered
            for marker in (
                "name or service",
                "nodename",
                "temporary failure in name",
                "getaddrinfo",
            )
        ):
            return "the server's name does not resolve (DNS failure; offline?)"
        if "refused" in lowered:
            return "connection refused (server down or offline)"
        if "network is unreachable" in lowered:
            return "network unreachable (offline?)"
        return f"cannot connect ({text})"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return "the connection broke before the response was whole"
    return text


def get(
    client: Any,
    url: str,
    params: dict[str, Any],
    *,
    max_wait: float,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[str], None] | None = None,
) -> Response:
    """GET `url`; wait out a short 429/503 `Retry-After`, raise `FetchFault` for the rest."""
    import httpx

    for attempt in range(MAX_RETRIES + 1):
        try:
            resp = client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise FetchFault(_describe(exc), display_url(url)) from None
        if resp.status_code in RETRY_STATUSES:
            wait = retry_after(resp.headers.get("retry-after"))
            shown = f"{resp.status_code}" + (f", Retry-After {wait:.0f} s" if wait else "")
            if wait is None:
                wait = 2.0**attempt  # no header: a short back-off
            if attempt == MAX_RETRIES or wait > max_wait:
                raise FetchFault(f"the server answered {shown} (busy; try later)", display_url(url))
            if on_wait:
                on_wait(f"server busy ({shown}); waiting {wait:.0f} s")
            sleep(wait)
            continue
        if resp.status_code >= 400:
            raise FetchFault(f"the server answered {resp.status_code}", display_url(url))
        return Response(resp.status_code, resp.content, str(resp.url))
    raise AssertionError("unreachable")  # pragma: no cover


def make_client(timeout: float) -> Any:
    """An httpx client with our user agent; `timeout` bounds connect and every read."""
    import httpx

    return httpx.Client(
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
    )


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
