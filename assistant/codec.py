"""JSON for the dataclasses that are stored and printed: one encoder, one decoder.

An answer is printed by `ask --json`, stored with each chat turn and read
back when a session resumes or is exported; a hand-written `to_dict` and
`from_dict` per class drift apart (a field added to one and not the other
reads back as its default without a word). Here the dataclass fields are the
schema: `encode` walks them, `decode` rebuilds the class from its type
hints, and the few differences from a plain dump are said in each field's
metadata (`rounded`, `renamed`, `SKIP`) beside the field itself.

Decoding is tolerant, because it reads what older versions stored: a key
that is missing takes the field's default (or an empty value of its type), a
key it does not know is ignored, and a date it cannot read is None.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from datetime import date, datetime
from functools import cache
from typing import Any, TypeVar, Union

__all__ = ["SKIP", "decode", "encode", "renamed", "rounded"]

T = TypeVar("T")

SKIP = {"skip": True}  # kept in memory only (a whole abstract, a timing used for another)


def rounded(digits: int) -> dict[str, int]:
    """A float written with `digits` decimals: scores and timings, not their noise."""
    return {"round": digits}


def renamed(key: str) -> dict[str, str]:
    """The field's JSON key when it differs from its name (kept for stored records)."""
    return {"key": key}


def encode(value: Any) -> Any:
    """`value` as JSON-ready data: dataclasses as dicts (plus the properties a class names
    in `JSON_DERIVED`), dates as ISO text, lists and dicts walked."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            if f.metadata.get("skip"):
                continue
            item = getattr(value, f.name)
            digits = f.metadata.get("round")
            if digits is not None and item is not None:
                item = round(float(item), digits)
            out[f.metadata.get("key", f.name)] = encode(item)
        for name in getattr(value, "JSON_DERIVED", ()):
            out[name] = encode(getattr(value, name))
        return out
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


def decode(cls: type[T], data: Any) -> T:
    """An instance of dataclass `cls` from what `encode` wrote (or an older version did)."""
    if not isinstance(data, dict):
        data = {}
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.metadata.get("skip") or not f.init:
            continue
        key = f.metadata.get("key", f.name)
        has_default = (
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        )
        if key in data and data[key] is not None:
            kwargs[f.name] = _value(hints[f.name], data[key])
        elif not has_default:
            kwargs[f.name] = _empty(hints[f.name])
    return cls(**kwargs)


@cache
def _hints(cls: type) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, vars(module) if module else None)


def _value(hint: Any, raw: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _value(inner[0], raw) if len(inner) == 1 else raw
    if origin in (list, tuple) and isinstance(raw, (list, tuple)):
        item = args[0] if args else Any
        values = [_value(item, v) for v in raw]
        return tuple(values) if origin is tuple else values
    if origin is dict or hint is dict:
        return dict(raw) if isinstance(raw, dict) else {}
    if dataclasses.is_dataclass(hint):
        return decode(hint, raw)
    if hint is date:
        try:
            return date.fromisoformat(str(raw)[:10])
        except ValueError:
            return None
    if hint in (int, float, str, bool):
        try:
            return hint(raw)
        except (TypeError, ValueError):
            return hint()
    return raw


def _empty(hint: Any) -> Any:
    """What a required field reads as when an older record lacks it."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return None
    if origin in (list, tuple):
        return origin()
    if hint in (int, float, str, bool):
        return hint()
    if dataclasses.is_dataclass(hint):
        return decode(hint, {})
    return None
