"""`assistant doctor`: every check a user needs before asking why nothing works."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import AssistantError

if TYPE_CHECKING:
    from .settings import Settings


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def run_checks(settings: Settings) -> list[Check]:
    """Settings, endpoint, models, a chat round trip, embedder, store — in that order.

    Every check runs even when an earlier one failed, except those that
    cannot (no chat without a reachable endpoint), so one run shows everything.
    """
    from .llm import ModelClient

    checks: list[Check] = []
    shown = settings.masked()
    checks.append(Check("settings", True, ", ".join(
        f"{k}={v}" for k, v in shown.items() if k in
        ("base_url", "api_key", "model", "home", "chroma_url", "embedder", "context_window"))))

    client = ModelClient(settings, model=settings.model)
    models: list[str] = []
    if not settings.base_url:
        checks.append(Check("endpoint", False, "OPENAI_BASE_URL is not set"))
    else:
        try:
            models = client.list_models()
            checks.append(Check("endpoint", True, f"{settings.base_url} answers"))
            checks.append(Check("models", bool(models),
                                ", ".join(models[:8]) or "the server lists no models"))
        except AssistantError as exc:
            checks.append(Check("endpoint", False, str(exc)))
    if any(c.name == "endpoint" and c.ok for c in checks):
        try:
            started = time.perf_counter()
            result = client.chat([{"role": "user", "content": "Reply with the word: ready"}],
                                 max_tokens=8)
            took = time.perf_counter() - started
            checks.append(Check("chat", bool(result.text.strip()),
                                f"{result.model}: {result.text.strip()[:40]!r} in {took:.2f} s"))
        except AssistantError as exc:
            checks.append(Check("chat", False, str(exc)))

    try:
        from .embed import make_embedder

        started = time.perf_counter()
        embedder = make_embedder(settings)
        vector = embedder.embed(["doctor"])
        checks.append(Check("embedder", vector.shape[1] == embedder.dim,
                            f"{embedder.name}, {embedder.dim} dims, "
                            f"loaded in {time.perf_counter() - started:.2f} s"))
    except AssistantError as exc:
        checks.append(Check("embedder", False, str(exc)))

    try:
        from .store import Library, store_size_bytes

        library = Library.open(settings)
        n_papers, n_chunks = library.counts()
        size = store_size_bytes(settings)
        where = f"{library.location}" + (f", {size / 1e6:.1f} MB" if size is not None else "")
        checks.append(Check("store", True, f"{n_papers} papers, {n_chunks} chunks in {where}"))
        info = library.embedder_info
        if info and any(c.name == "embedder" and c.ok for c in checks):
            try:
                library.check_embedder(embedder.name, embedder.dim)
                checks.append(Check("index", True, f"built with {info[0]}"))
            except AssistantError as exc:
                checks.append(Check("index", False, str(exc)))
    except AssistantError as exc:
        checks.append(Check("store", False, str(exc)))
    return checks
