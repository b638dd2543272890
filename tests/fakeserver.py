"""A scriptable fake OpenAI-compatible server for fault tests.

It exists only for failures a real server cannot be made to produce on cue:
a 500 followed by success, a 429 with Retry-After, a hang, a stream cut after
two chunks, a whole reply cut after its first bytes, a body that is not JSON.
Everything that a real server can show (answers, model lists) is tested
against a real one elsewhere.

Each test queues one action per expected `/v1/chat/completions` request (or,
with `route="embeddings"`, per `/v1/embeddings` request); the server records
every request it sees (with its arrival time) so tests can assert on retries,
their spacing and batch sizes. Unscripted embedding requests get deterministic
vectors: the same text always gets the same unit vector (seeded by its hash),
so an embedder pointed here is reproducible without a model.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Action = Callable[["_Handler"], None]
ROUTES = {"chat": "/chat/completions", "embeddings": "/embeddings"}
EMBED_DIM = 384


def fake_vector(text: str, dim: int = EMBED_DIM) -> list[float]:
    """The unit vector the fake server embeds `text` as: seeded by its SHA-256."""
    rng = random.Random(hashlib.sha256(text.encode("utf-8")).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class FakeServer:
    """A fake endpoint on 127.0.0.1 (a free port), served from a background thread.

    Use as a context manager; `url` is the base URL a client is given (ends in /v1).
    `models=None` makes `/v1/models` answer 404, like servers that lack it.
    `embed_dim` is the length of the vectors `/v1/embeddings` answers with.
    """

    def __init__(
        self, models: Iterable[str] | None = ("fake-model",), *, embed_dim: int = EMBED_DIM
    ) -> None:
        self.models: list[str] | None = list(models) if models is not None else None
        self.embed_dim = embed_dim
        self.requests: list[Recorded] = []
        self._actions: dict[str, deque[Action]] = {route: deque() for route in ROUTES}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> FakeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True  # a hanging handler must not block shutdown
        httpd.fake = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()  # wakes hangs and stalls
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # -- what the server saw ----------------------------------------------------------------

    @property
    def chat_requests(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/embeddings")]

    @property
    def model_requests(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/models")]

    # -- scripting: each add_* queues the answer to one chat (or embeddings) request ---------

    def add(self, action: Action, route: str = "chat") -> FakeServer:
        with self._lock:
            self._actions[route].append(action)
        return self

    def add_reply(
        self,
        text: str,
        *,
        usage: dict[str, int] | None = None,
        finish_reason: str = "stop",
        model: str | None = None,
    ) -> FakeServer:
        """A normal non-streamed completion."""
        return self.add(_reply_action(text, usage, finish_reason, model))

    def add_error(
        self,
        status: int,
        message: str = "fake error",
        *,
        headers: dict[str, str] | None = None,
        route: str = "chat",
    ) -> FakeServer:
        """An error in OpenAI's shape: {"error": {"message": ...}}."""

        def act(h: _Handler) -> None:
            h.send_json(status, {"error": {"message": message, "type": "fake"}}, headers)

        return self.add(act, route)

    def add_hang(self, seconds: float, *, route: str = "chat") -> FakeServer:
        """Accept the request and answer nothing for `seconds` (then drop it)."""

        def act(h: _Handler) -> None:
            self.stopping.wait(seconds)
            h.drop()

        return self.add(act, route)

    def add_cut_reply(
        self, text: str = "", *, keep_bytes: int = 20, route: str = "chat"
    ) -> FakeServer:
        """A reply (a completion of `text`, or the vectors) whose body stops after
        `keep_bytes` bytes.

        The headers promise the whole body (Content-Length), then the socket
        closes: the server answered, and the connection broke mid-reply.
        """

        def act(h: _Handler) -> None:
            if route == "embeddings":
                obj = _embeddings(h.body, self.embed_dim)
            else:
                obj = _completion(text, None, "stop", h.requested_model())
            body = json.dumps(obj).encode()
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[:keep_bytes])
            h.drop()

        return self.add(act, route)

    def add_close(self, *, route: str = "chat") -> FakeServer:
        """Read the request, then close the connection without sending a response."""
        return self.add(lambda h: h.drop(), route)

    def add_raw(
        self,
        body: bytes,
        *,
        content_type: str = "application/json",
        status: int = 200,
        route: str = "chat",
    ) -> FakeServer:
        """An answer with exactly this body (e.g. one that is not JSON at all)."""

        def act(h: _Handler) -> None:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()

        return self.add(act, route)

    def add_stream(
        self,
        pieces: Iterable[str],
        *,
        usage: dict[str, int] | None = None,
        finish_reason: str = "stop",
        cut_after: int | None = None,
        stall_after: int | None = None,
        stall_s: float = 0.0,
        delay_s: float = 0.0,
    ) -> FakeServer:
        """A streamed completion as SSE over chunked transfer encoding.

        `cut_after=n` closes the socket after n content chunks, without the
        terminating chunk, as a crashed server or a dropped proxy would.
        `stall_after=n` stops sending for `stall_s` after n chunks. The usage
        chunk is sent only when the request asked for it (stream_options).
        """
        pieces = list(pieces)

        def act(h: _Handler) -> None:
            model = h.requested_model()
            h.start_sse()
            for i, piece in enumerate(pieces):
                if cut_after is not None and i == cut_after:
                    h.drop()
                    return
                if stall_after is not None and i == stall_after:
                    self.stopping.wait(stall_s)
                if delay_s:
                    time.sleep(delay_s)
                delta: dict[str, Any] = {"content": piece}
                if i == 0:
                    delta["role"] = "assistant"
                h.send_event(_chunk(model, [{"index": 0, "delta": delta, "finish_reason": None}]))
            if cut_after is not None and cut_after >= len(pieces):
                h.drop()
                return
            if stall_after is not None and stall_after >= len(pieces):
                self.stopping.wait(stall_s)
            h.send_event(_chunk(model, [{"index": 0, "delta": {}, "finish_reason": finish_reason}]))
            wants_usage = (h.body or {}).get("stream_options", {}).get("include_usage")
            if usage is not None and wants_usage:
                chunk = _chunk(model, [])
                chunk["usage"] = {**usage, "total_tokens": sum(usage.values())}
                h.send_event(chunk)
            h.send_raw_event("[DONE]")
            h.end_chunks()

        return self.add(act)

    def _next_action(self, route: str) -> Action:
        with self._lock:
            if self._actions[route]:
                return self._actions[route].popleft()
        # Unscripted requests get a plain answer; tests assert on request counts.
        if route == "embeddings":
            return lambda h: h.send_json(200, _embeddings(h.body, self.embed_dim))
        return _reply_action("(unscripted)", None, "stop", None)

    def _record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)


def _completion(
    text: str, usage: dict[str, int] | None, finish_reason: str, model: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
    }
    if usage is not None:
        body["usage"] = {**usage, "total_tokens": sum(usage.values())}
    return body


def _embeddings(body: Any, dim: int) -> dict[str, Any]:
    """An embeddings reply for the request's `input`, base64 float32 when it asks so
    (the SDK does by default), else lists of floats."""
    body = body if isinstance(body, dict) else {}
    texts = body.get("input", [])
    texts = [texts] if isinstance(texts, str) else list(texts)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(texts):
        vector = fake_vector(str(text), dim)
        if as_base64:
            packed = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": packed})
        else:
            data.append({"object": "embedding", "index": i, "embedding": vector})
    usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
    return {
        "object": "list",
        "model": body.get("model", "fake-model"),
        "data": data,
        "usage": usage,
    }


def _reply_action(
    text: str, usage: dict[str, int] | None, finish_reason: str, model: str | None
) -> Action:
    def act(h: _Handler) -> None:
        h.send_json(200, _completion(text, usage, finish_reason, model or h.requested_model()))

    return act


def _chunk(model: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": choices,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked streams, so a cut body is detectable
    server: Any
    body: Any = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the client gave up (timeout tests); nothing to report

    @property
    def fake(self) -> FakeServer:
        return self.server.fake

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _record(self) -> None:
        self.fake._record(
            Recorded(
                self.command, self.path, self.body, {k.lower(): v for k, v in self.headers.items()}
            )
        )

    def do_GET(self) -> None:
        self.body = None
        self._record()
        if self.path.rstrip("/").endswith("/models"):
            if self.fake.models is None:
                self.send_json(404, {"error": {"message": "Not Found"}})
                return
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                for m in self.fake.models
            ]
            self.send_json(200, {"object": "list", "data": data})
            return
        self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        self.body = self._read_body()
        self._record()
        path = self.path.rstrip("/")
        for route, suffix in ROUTES.items():
            if path.endswith(suffix):
                self.fake._next_action(route)(self)
                return
        self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    # -- writing helpers used by actions ------------------------------------------------------

    def requested_model(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("model"), str):
            return self.body["model"]
        return "fake-model"

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def send_event(self, obj: Any) -> None:
        self.send_raw_event(json.dumps(obj))

    def send_raw_event(self, data: str) -> None:
        self._write_chunk(f"data: {data}\n\n".encode())

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def drop(self) -> None:
        """Close the socket mid-response, with no terminating chunk."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
