"""The model client: every language-model call goes through here.

Only the OpenAI-compatible chat API is used, so one code path serves OpenAI,
Ollama, llama.cpp's server, vLLM and LM Studio. What this module adds over the
bare SDK is the behaviour a command-line user needs from a flaky local server:
one-line errors that say what to fix, bounded waits, retries that do not
multiply the user's timeout, and a streamed answer that is never silently
replayed after part of it was shown.

`openai` (and `httpx`, `tiktoken`) are imported inside functions so that
importing this module, and so `assistant --help`, stays cheap.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import (
    AuthenticationRefused,
    ConnectionBroken,
    EndpointUnreachable,
    LLMError,
    ModelNotFound,
    ModelTimeout,
    NotConfigured,
    ServerError,
    StreamInterrupted,
)
from .llm_transport import (
    chain_cause,
    dropped_how,
    model_listed,
    policy_http_client,
    retry_after,
    server_answered,
    server_message,
    transport_reason,
)
from .settings import Settings
from .settings import display_url as _display_url
from .tokens import count_message_tokens, count_tokens

if TYPE_CHECKING:
    import openai

T = TypeVar("T")

# How often a cancellable non-streamed call looks at its cancel event (an Esc feels instant).
CANCEL_POLL_S = 0.05

_THINK_BLOCK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)
_MODEL_MISSING = re.compile(
    r"model.*(not found|does not exist|doesn't exist|not exist|unknown|no such|not available)"
    r"|(unknown|invalid|no such) model",
    re.IGNORECASE | re.DOTALL,
)


@dataclass
class ChatResult:
    """One finished (or cancelled) chat call, with what it cost."""

    text: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    first_token_s: float | None
    total_s: float
    finish_reason: str | None
    # True when the token counts are our tiktoken estimate, not the server's usage report.
    usage_estimated: bool = False
    # True when the reply ran past MAX_REPLY_CHARS and only its beginning was kept.
    capped: bool = False


# The longest reply kept: an answer or a digest paragraph is a few thousand characters;
# a server that sends megabytes (a loop, a hostile endpoint) must not fill memory, the
# citation checks and sessions.db. What fits is kept and the reply is marked `capped`.
MAX_REPLY_CHARS = 100_000


class _EarlyBreak(Exception):
    """A stream broke before its first token; safe to ask once more.

    The SDK retries only until the response headers arrive; a stream that breaks
    after them (a server restarting, a proxy dropping an idle connection) is ours
    to handle. Before any token nothing was shown, so one more request cannot
    duplicate output; after a token it could, so `StreamInterrupted` keeps the
    partial instead. Once only: a second early break is reported, not looped on.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ModelClient:
    """A chat (and embeddings) client for one OpenAI-compatible endpoint.

    Retries are the SDK's own (`max_retries`: backoff with jitter, Retry-After,
    which statuses to retry); `llm_transport.policy_http_client` only narrows them to the
    product's policy. Everything that leaves this class is an `LLMError` with a
    one-line message that names the URL and never the API key.
    """

    def __init__(
        self, settings: Settings, model: str | None = None, *, max_retries: int = 3
    ) -> None:
        if not settings.base_url:
            raise NotConfigured(
                "no model endpoint configured: set OPENAI_BASE_URL "
                "(e.g. http://127.0.0.1:11434/v1 for Ollama)"
            )
        self.base_url: str = settings.base_url.rstrip("/")
        self.timeout: float = float(settings.timeout)
        self.max_retries: int = max(0, int(max_retries))
        self._api_key: str | None = settings.api_key
        self._display_url = _display_url(self.base_url)
        # How many replies were cut at MAX_REPLY_CHARS: the commands say so.
        self.capped_replies = 0
        self._requested_model: str | None = model or settings.model
        self._model: str | None = None
        self._sdk_client: openai.OpenAI | None = None
        self._models: list[str] | None = None  # server's list; None = not listed / unlistable
        self._models_listed = False
        self._verified: set[str] = set()
        self._stream_usage_ok = True  # False once the server rejected stream_options
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        model = self._model or self._requested_model
        return (
            f"ModelClient(base_url={self._display_url!r}, model={model!r}, "
            f"timeout={self.timeout:g}, max_retries={self.max_retries})"
        )

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections (a long-lived TUI would otherwise keep them open)."""
        with self._lock:
            if self._sdk_client is not None:
                self._sdk_client.close()
                self._sdk_client = None

    # -- model selection ---------------------------------------------------------------

    @property
    def model(self) -> str:
        """The model name sent with each request.

        Resolved on first use so that constructing a client never touches the
        network; a server that serves a single model needs no configuration.
        """
        if self._model is None:
            if self._requested_model:
                self._model = self._requested_model
            else:
                available = self._available_models()
                if available and len(available) == 1:
                    self._model = available[0]
                elif available:
                    raise self._fail(
                        ModelNotFound,
                        f"no model chosen and the endpoint at {self._display_url} has several: "
                        f"{', '.join(available)}; set ASSISTANT_MODEL or pass --model",
                    )
                else:
                    raise self._fail(
                        ModelNotFound,
                        f"no model chosen and the endpoint at {self._display_url} lists none; "
                        "set ASSISTANT_MODEL or pass --model",
                    )
        return self._model

    def list_models(self) -> list[str]:
        """Ask the server which models it serves (always a fresh request, for `doctor`)."""
        sdk = self._sdk()
        page = self._request(lambda: sdk.models.list())
        names: list[str] = []
        for item in getattr(page, "data", None) or []:
            name = getattr(item, "id", None)
            if isinstance(name, str) and name not in names:
                names.append(name)
        with self._lock:
            self._models, self._models_listed = names, True
        return names

    def _available_models(self) -> list[str] | None:
        """The server's models, listed once per client; None when the server cannot list them.

        Unreachable endpoints and refused keys still raise: they would fail the
        chat call anyway, and failing here gives the clearer message.
        """
        with self._lock:
            if self._models_listed:
                return self._models
            try:
                return self.list_models()
            except ServerError:
                # No /models (404), or a server that errs on it: skip the check, not the chat.
                self._models, self._models_listed = None, True
                return None

    def _check_model(self, model: str) -> None:
        """Refuse an unknown model before the first chat call with it.

        llama.cpp's server answers any model name with whatever it has loaded,
        so without this check a typo in ASSISTANT_MODEL is silently ignored.
        """
        if model in self._verified:
            return
        available = self._available_models()
        if available and not model_listed(model, available):
            raise self._fail(ModelNotFound, self._not_found_message(model, available))
        self._verified.add(model)

    def _not_found_message(self, model: str, available: list[str]) -> str:
        listed = ", ".join(available) if available else "(no models)"
        return (
            f"model '{model}' not found at {self._display_url}; the server has: {listed} "
            "(set ASSISTANT_MODEL or pass --model)"
        )

    # -- chat ----------------------------------------------------------------------------

    def chat(
        self,
        messages: list[dict],
        *,
        stream: bool = False,
        on_token: Callable[[str], None] | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        cancel: threading.Event | None = None,
    ) -> ChatResult:
        """Send one chat request and return the whole answer.

        With `stream=True`, `on_token` sees each piece as it arrives (raw, so a
        `<think>` block shows while the model reasons); without streaming it is
        called once with the final text, so callers can treat both alike.
        `cancel` is checked between streamed chunks: setting it ends the call
        early with what arrived and finish_reason "cancelled". Without
        streaming there are no chunks to check between, so the request runs in
        a helper thread and setting `cancel` returns at once with no text (the
        abandoned request ends by itself within ASSISTANT_TIMEOUT).
        """
        model = self.model
        self._check_model(model)
        params: dict[str, Any] = {"model": model, "messages": messages, "temperature": temperature}
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        if stop:
            params["stop"] = stop
        start = time.monotonic()
        if cancel is not None and cancel.is_set():
            return ChatResult("", model, None, None, None, 0.0, "cancelled")
        if not stream:
            if cancel is None:
                return self._chat_whole(params, messages, start, on_token)
            return self._cancellable(
                lambda: self._chat_whole(params, messages, start, None),
                cancel,
                model,
                start,
                on_token,
            )
        try:
            return self._chat_stream(params, messages, start, on_token, cancel)
        except _EarlyBreak:
            # Nothing was shown yet, so asking again cannot duplicate output; once only.
            pass
        try:
            return self._chat_stream(params, messages, start, on_token, cancel)
        except _EarlyBreak as exc:
            raise self._fail(
                StreamInterrupted,
                f"the connection to the model at {self._display_url} broke before the answer "
                f"started, twice: {exc.reason}",
                partial="",
            ) from None

    def _cancellable(
        self,
        call: Callable[[], ChatResult],
        cancel: threading.Event,
        model: str,
        start: float,
        on_token: Callable[[str], None] | None,
    ) -> ChatResult:
        """Run a blocking (non-streamed) call so that `cancel` can cut the wait short.

        An Esc in the chat must not wait out a hung server: the call runs in a
        daemon thread and this thread waits for it or for `cancel`, whichever
        comes first. The call's own errors are re-raised here unchanged.
        """
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = call()
            except BaseException as exc:  # noqa: BLE001 - broad on purpose: whatever the call
                # raised (an LLMError or a bug) is re-raised unchanged in the caller's thread.
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=run, name="model-call", daemon=True).start()
        while not done.wait(CANCEL_POLL_S):
            if cancel.is_set():
                return ChatResult(
                    "", model, None, None, None, time.monotonic() - start, "cancelled"
                )
        if "error" in box:
            raise box["error"]
        result: ChatResult = box["result"]
        if on_token is not None and result.text:
            on_token(result.text)
        return result

    def _chat_whole(
        self,
        params: dict[str, Any],
        messages: list[dict],
        start: float,
        on_token: Callable[[str], None] | None,
    ) -> ChatResult:
        sdk = self._sdk()
        try:
            response = self._request(
                lambda: sdk.chat.completions.create(**params), model=params["model"]
            )
        except json.JSONDecodeError as exc:
            # The SDK decodes a JSON content type without catching the decode error.
            raise self._fail(
                ServerError,
                f"the model endpoint at {self._display_url} answered, but its reply is not "
                f"valid JSON ({exc}); is OPENAI_BASE_URL an OpenAI-compatible server?",
            ) from None
        if not hasattr(response, "choices"):
            # Any other content type comes back as the body's text, unparsed.
            body = " ".join(str(response).split())[:120]
            raise self._fail(
                ServerError,
                f"the model endpoint at {self._display_url} answered with something that is "
                f"not a chat completion: {body!r}; is OPENAI_BASE_URL an OpenAI-compatible "
                "server?",
            )
        total = time.monotonic() - start
        choice = response.choices[0] if response.choices else None
        raw = (choice.message.content or "") if choice is not None else ""
        capped = len(raw) > MAX_REPLY_CHARS
        if capped:
            raw = raw[:MAX_REPLY_CHARS]
            self.capped_replies += 1
        text = strip_think(raw)
        if on_token is not None and text:
            on_token(text)
        prompt_tokens, completion_tokens, estimated = _usage(response.usage, messages, raw)
        return ChatResult(
            text=text,
            model=response.model or params["model"],
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            first_token_s=total,
            total_s=total,
            finish_reason="length" if capped else (choice.finish_reason if choice else None),
            usage_estimated=estimated,
            capped=capped,
        )

    def _open_stream(self, params: dict[str, Any]) -> Any:
        """Start a streamed completion, asking for usage where the server allows it.

        Token counts in a stream come only with `stream_options.include_usage`,
        which older servers reject with a 400; such a server is asked again
        without it (remembered for this client) rather than failing the answer,
        and the counts are then our tiktoken estimate.
        """
        import openai

        sdk = self._sdk()
        if self._stream_usage_ok:
            kwargs = {**params, "stream": True, "stream_options": {"include_usage": True}}
            try:
                return sdk.chat.completions.create(**kwargs)
            except openai.BadRequestError as exc:
                text = (server_message(exc) + " " + str(exc)).lower()
                if "stream_options" not in text and "include_usage" not in text:
                    raise self._translate(exc, params["model"]) from exc
                # Older servers reject the option outright; remember and ask without it.
                self._stream_usage_ok = False
            except openai.APIError as exc:
                raise self._translate(exc, params["model"]) from chain_cause(exc)
        kwargs = {**params, "stream": True}
        return self._request(lambda: sdk.chat.completions.create(**kwargs), model=params["model"])

    def _chat_stream(
        self,
        params: dict[str, Any],
        messages: list[dict],
        start: float,
        on_token: Callable[[str], None] | None,
        cancel: threading.Event | None,
    ) -> ChatResult:
        import httpx
        import openai

        stream = self._open_stream(params)
        pieces: list[str] = []
        first_token_s: float | None = None
        finish_reason: str | None = None
        usage: Any = None
        served_model: str | None = None
        kept = 0
        capped = False
        try:
            for chunk in stream:
                served_model = getattr(chunk, "model", None) or served_model
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                for choice in chunk.choices or []:
                    if choice.index not in (0, None):
                        continue
                    piece = getattr(choice.delta, "content", None) if choice.delta else None
                    if piece and kept + len(piece) > MAX_REPLY_CHARS:
                        piece = piece[: MAX_REPLY_CHARS - kept]
                        capped = True
                    if piece:
                        if first_token_s is None:
                            first_token_s = time.monotonic() - start
                        pieces.append(piece)
                        kept += len(piece)
                        if on_token is not None:
                            on_token(piece)
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
                if capped:
                    finish_reason = "length"
                    self.capped_replies += 1
                    break
                if cancel is not None and cancel.is_set():
                    finish_reason = "cancelled"
                    break
        except httpx.TimeoutException:
            if not pieces:
                raise self._fail(ModelTimeout, self._timeout_message()) from None
            raise self._fail(
                StreamInterrupted,
                f"the model at {self._display_url} stopped sending for {self.timeout:g} s "
                "mid-answer (ASSISTANT_TIMEOUT); the partial answer is kept",
                partial="".join(pieces),
            ) from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            reason = transport_reason(exc)
            if not pieces:
                raise _EarlyBreak(reason) from None
            if isinstance(exc, httpx.RemoteProtocolError):
                what = f"the model server at {self._display_url} closed the connection mid-answer"
            else:
                what = (
                    f"the connection to the model at {self._display_url} broke mid-answer "
                    f"({reason})"
                )
            raise self._fail(
                StreamInterrupted,
                f"{what}; the partial answer is kept (not checked for citations)",
                partial="".join(pieces),
            ) from None
        except (openai.APIError, ValueError) as exc:
            # An error event inside the stream, or a chunk that is not JSON.
            detail = server_message(exc) if isinstance(exc, openai.APIError) else str(exc)
            if not pieces:
                raise self._fail(
                    ServerError,
                    f"the model endpoint at {self._display_url} reported an error: {detail}",
                ) from None
            raise self._fail(
                StreamInterrupted,
                f"the model at {self._display_url} reported an error mid-answer: {detail}",
                partial="".join(pieces),
            ) from None
        finally:
            stream.close()
        total = time.monotonic() - start
        raw = "".join(pieces)
        prompt_tokens, completion_tokens, estimated = _usage(usage, messages, raw)
        return ChatResult(
            text=strip_think(raw),
            model=served_model or params["model"],
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            first_token_s=first_token_s,
            total_s=total,
            finish_reason=finish_reason,
            usage_estimated=estimated,
            capped=capped,
        )

    # -- embeddings ------------------------------------------------------------------------

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One `/v1/embeddings` request for `texts`, vectors in input order.

        It goes through the same model check, retry policy and error translation
        as a chat call, so an embedding endpoint that is down, slow or refuses the
        key fails with the same one-line, key-free message.
        """
        model = self.model
        self._check_model(model)
        sdk = self._sdk()
        response = self._request(
            lambda: sdk.embeddings.create(model=model, input=texts), model=model
        )
        data = getattr(response, "data", None)
        if not isinstance(data, list) or len(data) != len(texts):
            got = f"{len(data)} vectors" if isinstance(data, list) else "no vectors"
            raise self._fail(
                ServerError,
                f"the embedding endpoint at {self._display_url} returned {got} "
                f"for {len(texts)} texts",
            )
        return [item.embedding for item in sorted(data, key=lambda item: item.index)]

    # -- transport: SDK client, retries, error translation -------------------------------

    def _sdk(self) -> openai.OpenAI:
        with self._lock:
            if self._sdk_client is None:
                import openai

                self._sdk_client = openai.OpenAI(
                    base_url=self.base_url,
                    api_key=self._api_key or "not-needed",
                    http_client=policy_http_client(self.timeout),
                    max_retries=self.max_retries,
                )
            return self._sdk_client

    def _request(self, call: Callable[[], T], *, model: str | None = None) -> T:
        """Run one SDK call (the SDK retries it); any failure leaves as an LLMError."""
        import openai

        try:
            return call()
        except openai.APIError as exc:
            raise self._translate(exc, model) from chain_cause(exc)

    def _translate(self, exc: openai.APIError, model: str | None) -> LLMError:
        """Turn an SDK exception into the one-line error the user should see."""
        import httpx
        import openai

        url = self._display_url
        if isinstance(exc, openai.APITimeoutError):
            if isinstance(exc.__cause__, httpx.ConnectTimeout):
                return self._fail(EndpointUnreachable, self._unreachable("connection timed out"))
            return self._fail(ModelTimeout, self._timeout_message())
        if isinstance(exc, openai.APIConnectionError):
            if server_answered(exc):
                return self._fail(ConnectionBroken, self._broken(exc))
            return self._fail(EndpointUnreachable, self._unreachable(transport_reason(exc)))
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = server_message(exc)
            if status in (401, 403):
                if not self._api_key:
                    message = f"the endpoint at {url} wants an API key: set OPENAI_API_KEY"
                else:
                    message = f"the endpoint at {url} refused the API key (OPENAI_API_KEY)"
                return self._fail(AuthenticationRefused, f"{message}: {status} {detail}")
            if model and (status == 404 or (status == 400 and _MODEL_MISSING.search(detail))):
                return self._missing_model(model, status, detail)
            if status == 404:
                return self._fail(
                    ServerError,
                    f"the endpoint at {url} answered 404 ({detail}); "
                    "is OPENAI_BASE_URL right? it usually ends in /v1",
                    status=status,
                )
            if status == 429:
                wait = retry_after(exc.response.headers)
                asks = f" and asks to wait {wait:g} s" if wait is not None else ""
                return self._fail(
                    ServerError,
                    f"the endpoint at {url} is rate-limiting requests (429){asks}: {detail}",
                    status=status,
                )
            return self._fail(
                ServerError, f"the model endpoint at {url} answered {status}: {detail}", status
            )
        return self._fail(
            ServerError, f"the model endpoint at {url} reported an error: {server_message(exc)}"
        )

    def _missing_model(self, model: str, status: int, detail: str) -> LLMError:
        """A 404 (or a 400 about the model): list what the server has to say which."""
        try:
            available: list[str] | None = self.list_models()
        except LLMError:
            available = None
        if available is None and status == 404:
            return self._fail(
                ServerError,
                f"the endpoint at {self._display_url} answered 404 ({detail}) and cannot list "
                "its models; is OPENAI_BASE_URL right? it usually ends in /v1",
                status=status,
            )
        if available is None or model_listed(model, available):
            return self._fail(
                ServerError,
                f"the model endpoint at {self._display_url} answered {status}: {detail}",
                status=status,
            )
        return self._fail(ModelNotFound, self._not_found_message(model, available))

    def _timeout_message(self) -> str:
        return (
            f"the model at {self._display_url} did not answer within {self.timeout:g} s "
            "(ASSISTANT_TIMEOUT)"
        )

    def _unreachable(self, reason: str) -> str:
        return (
            f"cannot reach the model endpoint at {self._display_url}: {reason} "
            "(is the server running? `assistant doctor` checks)"
        )

    def _broken(self, exc: BaseException) -> str:
        """What a server that accepted the request and then dropped it did, in words."""
        tries = self.max_retries + 1
        return (
            f"the model server at {self._display_url} accepted the request but "
            f"{dropped_how(exc)} (tried {tries} time{'s' if tries != 1 else ''}); it is running "
            "but failing: check its log (a crash or running out of memory is the usual cause)"
        )

    def _fail(self, cls: type[LLMError], message: str, *args: Any, **kwargs: Any) -> Any:
        """Build an error whose message is one line and cannot leak the API key.

        Servers echo keys back ("Incorrect API key provided: sk-..."), so every
        message is scrubbed here rather than trusting each call site.
        """
        text = " ".join(message.split())
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "****")
        if len(text) > 500:
            text = text[:497] + "..."
        return cls(text, *args, **kwargs)


# -- helpers -------------------------------------------------------------------------------


def strip_think(text: str) -> str:
    """Drop a leading reasoning block so answers and citations see only the answer.

    Some chat templates open `<think>` in the prompt, so the output holds only
    the closing tag; an unclosed block (cut by max_tokens) is left as it is,
    since removing it would leave nothing.
    """
    stripped = _THINK_BLOCK.sub("", text, count=1)
    if stripped != text:
        return stripped
    head, sep, tail = text.partition("</think>")
    if sep and "<think>" not in head:
        return tail.lstrip()
    return text


def _usage(
    usage: Any, messages: list[dict], completion: str
) -> tuple[int | None, int | None, bool]:
    """Token counts from the server when it reported them, else our estimate."""
    prompt = getattr(usage, "prompt_tokens", None) if usage is not None else None
    completion_n = getattr(usage, "completion_tokens", None) if usage is not None else None
    if prompt is not None and completion_n is not None:
        return prompt, completion_n, False
    estimated = False
    if prompt is None:
        prompt, estimated = count_message_tokens(messages), True
    if completion_n is None:
        completion_n, estimated = count_tokens(completion), True
    return prompt, completion_n, estimated
