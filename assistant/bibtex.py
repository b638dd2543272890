"""BibTeX entries from stored paper metadata, no network.

An arXiv paper becomes an `@misc` entry the way arXiv's own export writes it
(`eprint`, `archivePrefix = {arXiv}`, `primaryClass` when the library knows
it, `url`); a paper without an arXiv id becomes `@misc` with its URL, if any.
Keys are `<first author's surname><year><first title word>`, made unique.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .store import decode_list, int_to_date

_SMALL = {"a", "an", "the", "of", "on", "in", "for", "and", "to", "with", "via", "from", "by"}


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def escape(text: str) -> str:
    """Text safe inside a BibTeX brace value (specials escaped, braces balanced)."""
    text = " ".join(str(text).split())
    text = re.sub(r"([&%$#_])", r"\\\1", text)
    text = text.replace("{", "").replace("}", "")
    return text


def cite_key(meta: dict[str, Any], taken: set[str]) -> str:
    authors = decode_list(meta.get("authors"))
    surname = re.sub(r"[^a-z]", "", _ascii(authors[0].split()[-1]).lower()) if authors else ""
    day = int_to_date(meta.get("published"))
    year = str(day.year) if day else ""
    words = [w for w in re.findall(r"[A-Za-z]+", _ascii(str(meta.get("title", "")))) if w]
    first = next((w.lower() for w in words if w.lower() not in _SMALL), "paper")
    base = (surname or "anon") + year + first
    key, n = base, 1
    while key in taken:
        key = f"{base}{chr(ord('a') + n)}" if n < 26 else f"{base}{n}"
        n += 1
    taken.add(key)
    return key


def entry(meta: dict[str, Any], taken: set[str]) -> str:
    """One `@misc{...}` entry for a stored paper's metadata (`Library.get_papers`)."""
    fields: list[tuple[str, str]] = [("title", "{" + escape(meta.get("title", "")) + "}")]
    authors = decode_list(meta.get("authors"))
    if authors:
        fields.append(("author", " and ".join(escape(a) for a in authors)))
    day = int_to_date(meta.get("published"))
    if day:
        fields += [("year", str(day.year)), ("month", day.strftime("%b").lower())]
    arxiv = meta.get("arxiv_id")
    if arxiv:
        fields += [("eprint", str(arxiv)), ("archivePrefix", "arXiv")]
        primary = meta.get("primary_class") or (decode_list(meta.get("categories")) or [None])[0]
        if primary:
            fields.append(("primaryClass", escape(primary)))
    url = meta.get("url") or (f"https://arxiv.org/abs/{arxiv}" if arxiv else None)
    if url:
        fields.append(("url", escape(url).replace("\\_", "_").replace("\\%", "%")))
    # A month is BibTeX's own macro (`month = nov`), never a braced string.
    body = ",\n".join(
        f"  {name} = {value}" if name == "month" else f"  {name} = {{{value}}}"
        for name, value in fields
    )
    return f"@misc{{{cite_key(meta, taken)},\n{body}\n}}\n"


def bibliography(metas: list[dict[str, Any]]) -> str:
    """Entries for these papers, in the order given, keys unique across them."""
    taken: set[str] = set()
    return "\n".join(entry(m, taken) for m in metas)
