"""Settings: command-line flags, then the environment, then a `.env` file.

One frozen object built once per command and passed down explicitly, so no
library code reads `os.environ` behind the caller's back (the hidden-default
trap that sends LlamaIndex and friends to a hosted model).
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
}

SECRET_FIELDS = frozenset({"api_key"})


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

    @classmethod
    def load(cls, env_file: Path | None = None, **flags: Any) -> Settings:
        """Resolve every setting: a flag that is not None wins, then the
        environment, then `.env` (in the working directory unless given)."""
        dotenv = _read_dotenv(env_file if env_file is not None else Path.cwd() / ".env")
        values: dict[str, Any] = {}
        for name, (var, default) in ENV_VARS.items():
            value = flags.get(name)
            if value is None:
                value = os.environ.get(var) or dotenv.get(var) or default
            values[name] = value
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
            context_window=_as_int("ASSISTANT_CONTEXT_WINDOW", values["context_window"]),
            timeout=_as_float("ASSISTANT_TIMEOUT", values["timeout"]),
        )

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def masked(self) -> dict[str, str]:
        """Every setting as text for display; secrets show only that they are set."""
        shown: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                shown[f.name] = mask_secret(value)
            else:
                shown[f.name] = "" if value is None else str(value)
        return shown


def mask_secret(value: str | None) -> str:
    if not value:
        return "(not set)"
    return "set (" + "*" * 4 + value[-2:] + ")" if len(value) > 12 else "set (****)"


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


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
