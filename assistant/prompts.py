"""Prompts live in files (`prompts/*.md`), never in code.

An installed wheel carries them as `assistant/prompts/`; a source checkout
reads the top-level `prompts/` folder. Placeholders are `{{name}}` and are
filled by plain replacement, so braces or `$` inside abstracts are inert.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).parent / "prompts"
_CHECKOUT = Path(__file__).parent.parent / "prompts"


def prompts_dir() -> Path:
    return _PACKAGE if _PACKAGE.is_dir() else _CHECKOUT


@cache
def load(name: str) -> str:
    path = prompts_dir() / f"{name}.md"
    return path.read_text(encoding="utf-8").strip()


def render(name: str, **values: str) -> str:
    """Fill a prompt's `{{name}}` placeholders; the values themselves are never re-scanned."""
    text = load(name)
    parts = text.split("{{")
    out = [parts[0]]
    for part in parts[1:]:
        key, sep, rest = part.partition("}}")
        if sep and key in values:
            out.append(str(values[key]) + rest)
        else:
            out.append("{{" + part)
    return "".join(out)
