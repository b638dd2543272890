"""The user's key map: `ASSISTANT_HOME/keys.toml` remaps bindings by their id.

    [keys]
    new-session = "ctrl+t"
    regenerate = "ctrl+r,f5"     # several keys: comma-separated

The ids are the ones the help screen (F1) lists. A mistake in the file (a
TOML error, an unknown id, a key Textual has no name for) never stops the
chat: each is one line naming the file, the line and what is wrong, shown in
the conversation, and the rest of the file still applies. Read with the
standard library's `tomllib` (Python 3.11+); on 3.10 with `tomli` when it is
installed, else the file is reported as unreadable there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEYS_FILE = "keys.toml"
MODIFIERS = frozenset({"ctrl", "shift", "alt", "meta", "super", "hyper"})


@dataclass
class KeyMap:
    """Binding id -> key string (Textual's form), and what was wrong in the file."""

    keys: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _toml_loads(text: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(text)


def _known_key_names() -> set[str]:
    """Key names Textual can bind, without modifiers (`f5`, `up`, `delete`, `enter` ...)."""
    from textual.keys import KEY_ALIASES, Keys

    names = {k.value.rpartition("+")[2] for k in Keys}
    names |= {alias.rpartition("+")[2] for aliases in KEY_ALIASES.values() for alias in aliases}
    names |= set(KEY_ALIASES) | {"space", "enter", "minus", "plus", "comma"}
    return names


def key_problem(keys: str) -> str | None:
    """Why `keys` (e.g. "ctrl+t" or "ctrl+t,f5") is not a key Textual can bind; None if it is."""
    from textual.keys import key_to_character

    if not keys.strip():
        return "the key is empty"
    known = _known_key_names()
    for key in (k.strip() for k in keys.split(",")):
        *mods, name = key.split("+")
        bad_mods = [m for m in mods if m not in MODIFIERS]
        if not name or bad_mods:
            return f"{key!r} is not a key (modifiers are {', '.join(sorted(MODIFIERS))})"
        if len(name) == 1 or name in known or key_to_character(name) is not None:
            continue
        return f"{key!r} is not a key Textual knows (e.g. ctrl+t, f5, alt+up, question_mark)"
    return None


def _line_of(text: str, binding_id: str) -> int | None:
    pattern = re.compile(rf"^\s*[\"']?{re.escape(binding_id)}[\"']?\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def load_keymap(home: Path, defaults: dict[str, str]) -> KeyMap:
    """Read `home/keys.toml` (no file: no remapping). Never raises for the file's content.

    `defaults` maps each binding id to its default key(s); a remapped key that
    another binding still has is reported (Textual takes it from that binding).
    """
    path = Path(home) / KEYS_FILE
    result = KeyMap()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return result
    except (OSError, UnicodeDecodeError) as exc:
        result.problems.append(f"{path}: cannot read it ({exc}); the default keys apply")
        return result
    try:
        data = _toml_loads(text)
    except ModuleNotFoundError:
        result.problems.append(
            f"{path}: reading it needs Python 3.11+ or the tomli package; the default keys apply"
        )
        return result
    except ValueError as exc:  # tomllib.TOMLDecodeError; its text names the line and column
        result.problems.append(f"{path}: not valid TOML: {exc}; the default keys apply")
        return result
    known = set(defaults)
    for name in data:
        if name != "keys":
            result.problems.append(f"{path}: unknown section [{name}] (only [keys] is read)")
    table = data.get("keys", {})
    if not isinstance(table, dict):
        result.problems.append(f'{path}: `keys` must be a [keys] table of id = "key" lines')
        return result
    for binding_id, keys in table.items():
        where = f"{path}, line {_line_of(text, binding_id) or '?'}"
        if binding_id not in known:
            result.problems.append(
                f"{where}: unknown binding id {binding_id!r} (F1 lists the ids: "
                f"{', '.join(sorted(known))})"
            )
            continue
        if not isinstance(keys, str):
            result.problems.append(
                f'{where}: {binding_id} wants a key in quotes, like "ctrl+t", not {keys!r}'
            )
            continue
        problem = key_problem(keys)
        if problem is not None:
            result.problems.append(f"{where}: {binding_id}: {problem}")
            continue
        result.keys[binding_id] = ",".join(k.strip() for k in keys.split(","))
    _report_clashes(result, defaults, path, text)
    return result


def _report_clashes(result: KeyMap, defaults: dict[str, str], path: Path, text: str) -> None:
    final = {bid: set(_split(result.keys.get(bid) or keys)) for bid, keys in defaults.items()}
    for binding_id, keys in result.keys.items():
        for key in _split(keys):
            others = sorted(o for o, held in final.items() if o != binding_id and key in held)
            for other in others:
                result.problems.append(
                    f"{path}, line {_line_of(text, binding_id) or '?'}: {binding_id}: {key} is "
                    f"also {other}'s key; give {other} another key in the file"
                )


def _split(keys: str) -> list[str]:
    return [k.strip() for k in keys.split(",") if k.strip()]
