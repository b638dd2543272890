"""Settings: command-line flags, then the environment, then a `.env` file.

One frozen object built once per command and passed down explicitly, so no
library code reads `os.environ` behind the caller's back (the hidden-default
trap that sends LlamaIndex and friends to a hosted model).

A `.env` in the working folder is found implicitly, so it may belong to an
untrusted checkout: when it names `OPENAI_BASE_URL` and the key comes from the
environment, the key is withheld (with a warning) rather than sent to a host
that file chose. `--env-file FILE` is an explicit choice and is trusted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

APP_NAME = "paper-assistant"

# setting name -> (environment variable, default, description for `doctor`/.env.example)
ENV_VARS: dict[str, tuple[str, str | None]] = {
    "base_url": ("OPENAI_BASE_URL", None),
    "api_key": ("OPENAI_API_KEY", None),
    "model": ("ASSISTANT_MODEL", None),
    "home": ("ASSISTANT_HOME", None),
    "embed_model_dir": ("ASSISTANT_EMBED_MODEL_DIR", None),
    "chroma_url": ("ASSISTANT_CHROMA_URL", None),
    "embedder": ("ASSISTANT_EMBEDDER", "minilm"),
    "embed_model": ("ASSISTANT_EMBED_MODEL", None),
    "context_window": ("ASSISTANT_CONTEXT_WINDOW", "8192"),
    "timeout": ("ASSISTANT_TIMEOUT", "60"),
    "local_model": ("ASSISTANT_LOCAL_MODEL", "auto"),
    "local_threads": ("ASSISTANT_LOCAL_THREADS", None),
    # `assistant fetch` / `assistant follow` (see README "Following the field").
    "hf_url": ("ASSISTANT_HF_URL", "https://huggingface.co"),
    "arxiv_url": ("ASSISTANT_ARXIV_URL", "https://export.arxiv.org"),
    "arxiv_delay": ("ASSISTANT_ARXIV_DELAY", "3"),
    "arxiv_page_size": ("ASSISTANT_ARXIV_PAGE_SIZE", "200"),
    "fetch_timeout": ("ASSISTANT_FETCH_TIMEOUT", "30"),
    "fetch_max_wait": ("ASSISTANT_FETCH_MAX_WAIT", "60"),
    "smtp_url": ("ASSISTANT_SMTP_URL", None),
    "smtp_from": ("ASSISTANT_SMTP_FROM", None),
    "follow_sources": ("ASSISTANT_FOLLOW_SOURCES", "hf,arxiv"),
    "follow_categories": ("ASSISTANT_FOLLOW_CATEGORIES", "cs.CL,cs.LG"),
    "follow_day": ("ASSISTANT_FOLLOW_DAY", "mon"),
    "follow_out": ("ASSISTANT_FOLLOW_OUT", None),
    "follow_to": ("ASSISTANT_FOLLOW_TO", None),
    "follow_catchup": ("ASSISTANT_FOLLOW_CATCHUP", "4"),
}
LOCAL_MODEL_CHOICES = ("auto", "off")
# Fields that describe where settings came from, not settings themselves.
_META_FIELDS = frozenset({"origins", "warnings"})

SECRET_FIELDS = frozenset({"api_key"})
# Settings that are URLs: shown without any user:password part (`display_url`).
URL_FIELDS = frozenset({"base_url", "chroma_url"})
# A prompt needs room for the question, at least one source and the answer; past a
# million tokens the number is a typo, not a model.
CONTEXT_WINDOW_RANGE = (1024, 1_048_576)
MAX_TIMEOUT_S = 86_400.0
# URLs that may carry a password (smtp://user:pass@host): shown without it.
URL_SECRET_FIELDS = frozenset({"smtp_url"})


def default_home() -> Path:
    """The platform's per-user data folder (platformdirs is tiny and import-cheap)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class Settings:
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never shown
    model: str | None = None
    home: Path = Path(".")
    embed_model_dir: Path | None = None
    chroma_url: str | None = None
    embedder: str = "minilm"
    embed_model: str | None = None
    context_window: int = 8192
    timeout: float = 60.0
    # "auto": start the bundled SmolLM2 when no OPENAI_BASE_URL is set; "off": never.
    local_model: str = "auto"
    # Threads the bundled llama.cpp server generates with (None: one per physical core);
    # fewer leaves cores to other work (several processes each with a server, e.g. tests).
    local_threads: int | None = None
    # Following the field: fetch sources, delivery (README "Following the field").
    hf_url: str = "https://huggingface.co"
    arxiv_url: str = "https://export.arxiv.org"
    arxiv_delay: float = 3.0  # seconds between arXiv requests, as arXiv asks
    arxiv_page_size: int = 200
    fetch_timeout: float = 30.0
    fetch_max_wait: float = 60.0  # longest Retry-After waited for before giving up
    smtp_url: str | None = field(default=None, repr=False)  # may hold a password
    smtp_from: str | None = None
    follow_sources: str = "hf,arxiv"
    follow_categories: str = "cs.CL,cs.LG"
    follow_day: str = "mon"
    follow_out: Path | None = None
    follow_to: str | None = None
    follow_catchup: int = 4
    # The .env file that was read (None: none existed), and where each set value came from
    # ("flag", "environment" or ".env"): `doctor` shows both.
    env_file: Path | None = None
    origins: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def load(cls, env_file: Path | None = None, **flags: Any) -> Settings:
        """Resolve every setting: a flag that is not None wins, then the
        environment, then `.env` (in the working directory unless given)."""
        dotenv_path = env_file if env_file is not None else Path.cwd() / ".env"
        dotenv = _read_dotenv(dotenv_path)
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for name, (var, default) in ENV_VARS.items():
            value, origin = flags.get(name), "flag"
            if value is None:
                value, origin = os.environ.get(var), "environment"
            if not value:
                value, origin = dotenv.get(var), ".env"
            if not value:
                value, origin = default, "default"
            values[name] = value
            origins[name] = origin
        warnings: list[str] = []
        if (
            env_file is None
            and origins["base_url"] == ".env"
            and origins["api_key"] == "environment"
        ):
            values["api_key"] = None
            warnings.append(
                f"OPENAI_API_KEY from the environment is not sent to "
                f"OPENAI_BASE_URL={display_url(str(values['base_url']))} from "
                f"{dotenv_path.resolve()}: a .env in "
                "the working folder may not redirect your key. Set OPENAI_BASE_URL in the "
                "environment (or --base-url), or pass --env-file to trust that file."
            )
        local_model = str(values["local_model"]).lower()
        if local_model not in LOCAL_MODEL_CHOICES:
            from .errors import UsageError

            raise UsageError(
                f"ASSISTANT_LOCAL_MODEL: expected auto or off, got {values['local_model']!r}"
            )
        for name in URL_FIELDS:
            if values[name]:
                check_url(ENV_VARS[name][0], str(values[name]), name == "chroma_url")
        return cls(
            base_url=(values["base_url"] or None) and values["base_url"].rstrip("/"),
            api_key=values["api_key"] or None,
            model=values["model"] or None,
            home=Path(values["home"]).expanduser() if values["home"] else default_home(),
            embed_model_dir=(
                Path(values["embed_model_dir"]).expanduser() if values["embed_model_dir"] else None
            ),
            chroma_url=values["chroma_url"] or None,
            embedder=str(values["embedder"]).lower(),
            embed_model=values["embed_model"] or None,
            context_window=_bounded_int(
                "ASSISTANT_CONTEXT_WINDOW", values["context_window"], *CONTEXT_WINDOW_RANGE
            ),
            timeout=_seconds("ASSISTANT_TIMEOUT", values["timeout"]),
            local_model=local_model,
            local_threads=(
                _bounded_int("ASSISTANT_LOCAL_THREADS", values["local_threads"], 1, 1024)
                if values["local_threads"]
                else None
            ),
            hf_url=str(values["hf_url"]).rstrip("/"),
            arxiv_url=str(values["arxiv_url"]).rstrip("/"),
            arxiv_delay=_as_float("ASSISTANT_ARXIV_DELAY", values["arxiv_delay"]),
            arxiv_page_size=_as_int("ASSISTANT_ARXIV_PAGE_SIZE", values["arxiv_page_size"]),
            fetch_timeout=_as_float("ASSISTANT_FETCH_TIMEOUT", values["fetch_timeout"]),
            fetch_max_wait=_as_float("ASSISTANT_FETCH_MAX_WAIT", values["fetch_max_wait"]),
            smtp_url=values["smtp_url"] or None,
            smtp_from=values["smtp_from"] or None,
            follow_sources=str(values["follow_sources"]),
            follow_categories=str(values["follow_categories"]),
            follow_day=str(values["follow_day"]).lower(),
            follow_out=Path(values["follow_out"]).expanduser() if values["follow_out"] else None,
            follow_to=values["follow_to"] or None,
            follow_catchup=_as_int("ASSISTANT_FOLLOW_CATCHUP", values["follow_catchup"]),
            env_file=dotenv_path.resolve() if dotenv_path.is_file() else None,
            origins=tuple(origins.items()),
            warnings=tuple(warnings),
        )

    def origin(self, name: str) -> str:
        """Where setting `name` came from: flag, environment, .env or default."""
        return dict(self.origins).get(name, "default")

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def secrets(self) -> list[str]:
        """What must never be printed: the API key and any password inside a URL setting."""
        from urllib.parse import urlsplit

        found = [self.api_key] if self.api_key else []
        for name in sorted(URL_FIELDS | URL_SECRET_FIELDS):
            url = getattr(self, name)
            if not url:
                continue
            try:
                password = urlsplit(url if "//" in url else f"http://{url}").password
            except ValueError:
                password = None
            if password:
                found.append(password)
        return [s for s in found if len(s) >= 4]

    def redact(self, text: str) -> str:
        """`text` with every secret of these settings replaced by ****."""
        for secret in self.secrets():
            text = text.replace(secret, "****")
        return text

    def masked(self) -> dict[str, str]:
        """Every setting as text for display; secrets show only that they are set."""
        shown: dict[str, str] = {}
        for f in fields(self):
            if f.name in _META_FIELDS:
                continue
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                shown[f.name] = mask_secret(value)
            elif (f.name in URL_FIELDS or f.name in URL_SECRET_FIELDS) and value:
                shown[f.name] = display_url(str(value))
            else:
                shown[f.name] = "" if value is None else str(value)
        return shown


def mask_secret(value: str | None) -> str:
    if not value:
        return "(not set)"
    return "set (" + "*" * 4 + value[-2:] + ")" if len(value) > 12 else "set (****)"


def display_url(url: str) -> str:
    """The URL without any user:password part: the one form of an endpoint that messages,
    the chat's status bar and the evaluation's run settings show (a key never leaks)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not parseable: drop whatever stands before an "@" all the same
        import re

        return re.sub(r"//[^/?#]*@", "//", url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if port:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def check_url(var: str, url: str, scheme_optional: bool = False) -> None:
    """Refuse, as one line, a URL no client could use (`http://127.0.0.1:abc/v1`,
    `http://[::1`): found when settings are read, not as a traceback deep in a client.
    The line shows the URL without its password."""
    from urllib.parse import urlsplit

    from .errors import UsageError

    candidate = url if "//" in url or not scheme_optional else f"http://{url}"
    shown = display_url(candidate)
    try:
        parts = urlsplit(candidate)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise UsageError(f"{var}: not a valid URL ({exc}): {shown}") from None
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"{var}: expected an http:// or https:// URL, got {shown}")
    if not parts.hostname:
        raise UsageError(f"{var}: the URL names no host: {shown}")
    if any(c.isspace() or not c.isprintable() for c in candidate):
        raise UsageError(f"{var}: the URL holds spaces or control characters")


def _bounded_int(var: str, value: Any, low: int, high: int) -> int:
    number = _as_int(var, value)
    if not low <= number <= high:
        from .errors import UsageError

        raise UsageError(f"{var}: expected a whole number from {low:,} to {high:,}, got {number}")
    return number


def _seconds(var: str, value: Any) -> float:
    import math

    number = _as_float(var, value)
    if not math.isfinite(number) or not 0 < number <= MAX_TIMEOUT_S:
        from .errors import UsageError

        raise UsageError(
            f"{var}: expected a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}, "
            f"got {value!r}"
        )
    return number


def _as_int(var: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        from .errors import UsageError

        raise UsageError(f"{var}: expected a whole number, got {value!r}") from None


def _as_float(var: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        from .errors import UsageError

        raise UsageError(f"{var}: expected a number of seconds, got {value!r}") from None
