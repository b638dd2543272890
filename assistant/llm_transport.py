"""The HTTP side of the model client: the SDK's retries narrowed to the product's
policy, and how to read what went wrong from an SDK or httpx error.

Kept apart from `llm.py` so the client reads as what it does (choose a model,
chat, stream, embed, word errors) and this as how the wire behaves. Nothing
here words a user-facing message; `ModelClient` does that.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Iterable
from typing import Any

# Server-directed waits (Retry-After) longer than this are not sat out (the SDK would
# wait up to two minutes): a CLI user is better served by an error that says how long.
RETRY_AFTER_CAP_S = 30.0
# Connecting to a local server should be quick; a long connect wait hides "wrong host".
CONNECT_TIMEOUT_CAP_S = 10.0


def policy_http_client(timeout: float) -> Any:
    """An httpx client for the SDK that makes three failures final (never retried).

    The SDK retries timeouts, refused connections and any 408/409/429/5xx, and
    sits out a Retry-After of up to two minutes. For a command-line user:

    - a timeout is not retried: ASSISTANT_TIMEOUT is the bound on one call, and
      retrying would multiply it;
    - a refused or unresolvable connection is not retried: nothing is running
      there, and backing off only delays saying so;
    - a Retry-After beyond RETRY_AFTER_CAP_S is not sat out: the error says how
      long the server asks to wait instead.

    The first two are raised from `send` as the SDK's own errors, which its retry
    loop passes through untouched (openai >= 2.31); the third is marked with the
    `x-should-retry: false` header the SDK obeys. Everything else (backoff,
    jitter, which statuses to retry, a dropped connection) is the SDK's.
    """
    import httpx
    import openai

    class PolicyHttpClient(openai.DefaultHttpxClient):
        def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            try:
                response = super().send(request, **kwargs)
            except httpx.TimeoutException as exc:
                raise openai.APITimeoutError(request=request) from exc
            except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
                raise openai.APIConnectionError(request=request) from exc
            wait = retry_after(response.headers)
            if wait is not None and wait > RETRY_AFTER_CAP_S:
                response.headers["x-should-retry"] = "false"
            return response

    # A read timeout bounds each wait for bytes, so a stream that sends headers
    # and then stalls times out too, not just a silent server.
    return PolicyHttpClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_CAP_S))
    )


def chain_cause(exc: BaseException) -> BaseException | None:
    """The cause to chain, or None where the SDK's text may carry the key (a 401 body)."""
    status = getattr(exc, "status_code", None)
    return None if status in (401, 403) else exc


def retry_after(headers: Any) -> float | None:
    """Seconds the server asks us to wait, read as the SDK reads them (retry-after-ms,
    then retry-after in seconds or as an HTTP date), so the cap judges the SDK's wait."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            parsed = email.utils.parsedate_tz(value) if scale == 1.0 else None
            if parsed is None:
                continue
            seconds = email.utils.mktime_tz(parsed) - time.time()
        return max(0.0, seconds) if math.isfinite(seconds) else None
    return None


def server_message(exc: Any) -> str:
    """The server's own error text, without the SDK's "Error code: ..." wrapping."""
    body = getattr(exc, "body", None)
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        message = message or body.get("message") or body.get("detail")
    elif isinstance(body, str):
        message = body
    if not message:
        response = getattr(exc, "response", None)
        try:
            message = response.text if response is not None else None
        except Exception:  # noqa: BLE001 - broad on purpose: this only words an error, and a
            # failed response's body can be unreadable in several ways (a stream never
            # read, closed, undecodable); the class name below is then the message.
            message = None
    if not message:
        message = getattr(exc, "message", None) or exc.__class__.__name__
    text = " ".join(str(message).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def transport_cause(exc: BaseException) -> BaseException:
    """The httpx error under the SDK's wrapping (or `exc` itself when there is none)."""
    import httpx

    cause: BaseException = exc
    while not isinstance(cause, httpx.TransportError) and cause.__cause__ is not None:
        cause = cause.__cause__
    return cause


def server_answered(exc: BaseException) -> bool:
    """Whether a connection error came after the server accepted the connection.

    Connect errors (refused, unknown host, no route) and a bad URL mean nothing
    answered; a remote protocol error or a read/write error means a server was
    there and dropped us.
    """
    import httpx

    cause = transport_cause(exc)
    if isinstance(
        cause,
        (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol, httpx.ProxyError),
    ):
        return False
    return isinstance(cause, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError))


def transport_reason(exc: BaseException) -> str:
    """A few words on why a connection failed, from the httpx error under the SDK's."""
    import httpx

    cause = transport_cause(exc)
    text = str(cause)
    low = text.lower()
    if "refused" in low:
        return "connection refused"
    if any(s in low for s in ("name or service not known", "nodename nor servname", "getaddrinfo")):
        return "host name not found"
    if isinstance(cause, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(cause, httpx.RemoteProtocolError):
        return "the server closed the connection"
    if isinstance(cause, httpx.ConnectError):
        return f"cannot connect ({text or cause.__class__.__name__})"
    return f"{cause.__class__.__name__}: {text}" if text else cause.__class__.__name__


def dropped_how(exc: BaseException) -> str:
    """How a server that accepted a request dropped it, in words for a one-line error."""
    import httpx

    cause = transport_cause(exc)
    text = str(cause).lower()
    if isinstance(cause, httpx.RemoteProtocolError) and "without sending a response" in text:
        return "closed the connection without answering"
    if isinstance(cause, httpx.RemoteProtocolError):
        return "closed the connection before the whole reply arrived"
    return f"broke the connection mid-reply ({transport_reason(exc)})"


def model_listed(model: str, available: Iterable[str]) -> bool:
    """Ollama lists `llama3.2:latest` but accepts `llama3.2`; treat them as one."""
    names = set(available)
    if model in names:
        return True
    if ":" not in model and f"{model}:latest" in names:
        return True
    return model.endswith(":latest") and model[: -len(":latest")] in names
