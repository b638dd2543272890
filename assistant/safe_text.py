"""Text from a paper, a model or a file name, made safe to print or store.

Paper titles, abstracts, file names and model replies are data, and a terminal
obeys some data: an ESC starts a command (clear the screen, write the
clipboard through OSC 52), a bidi override reorders what the reader sees,
and a lone surrogate cannot even be encoded (a UnicodeEncodeError the moment it
is written). `safe_text` turns every such character into something visible
and inert: C0 controls into their Unicode "control pictures" (ESC shows as
"␛"), C1 controls and unpaired surrogates into U+FFFD (a surrogate that stands
for one undecodable byte of a file name, as Python decodes them, into
"\\xNN"), and bidi embeddings/overrides/isolates are dropped. Newline and tab
stay; a carriage return becomes a newline (a lone CR rewrites the line it is
on). Applied when records are read (ingest) and again wherever such text is
rendered, so a library stored before this existed is safe too.

This module imports only `re`: the CLI's start-up and every renderer use it.
"""

from __future__ import annotations

import re

# Bidi embeddings, overrides and isolates: they reorder the text around them.
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f" + _BIDI + "\ud800-\udfff]")
_SINGLE_LINE_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f" + _BIDI + "\ud800-\udfff]")


def _table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0x20):
        table[code] = chr(0x2400 + code)  # ␀ … ␟: the control's name, shown
    table[0x0A] = "\n"
    table[0x09] = "\t"
    table[0x0D] = "\n"
    table[0x7F] = "\u2421"  # ␡
    for code in range(0x80, 0xA0):
        table[code] = "\ufffd"
    for ch in _BIDI:
        table[ord(ch)] = ""
    for code in range(0xD800, 0xE000):
        table[code] = "\ufffd"
    for byte in range(0x80, 0x100):  # os.fsdecode's surrogateescape: one raw byte each
        table[0xDC00 + byte] = f"\\x{byte:02x}"
    return table


_TABLE = _table()
_SINGLE_LINE_TABLE = {**_TABLE, 0x0A: "\u2424", 0x09: " ", 0x0D: "\u2424"}


def safe_text(text: str) -> str:
    """`text` with nothing a terminal or an encoder would act on; newline and tab kept."""
    if not isinstance(text, str):
        text = str(text)
    if not _UNSAFE.search(text):
        return text
    return text.replace("\r\n", "\n").translate(_TABLE)


def safe_line(text: str) -> str:
    """`safe_text` for one line (a file name, a table cell): newlines shown as "␤"."""
    if not isinstance(text, str):
        text = str(text)
    if not _SINGLE_LINE_UNSAFE.search(text):
        return text
    return text.replace("\r\n", "\n").translate(_SINGLE_LINE_TABLE)


def is_safe(text: str) -> bool:
    """True when `safe_text` would leave `text` as it is (what the tests assert of output)."""
    return not _UNSAFE.search(text)


def safe_url(url: str | None) -> str | None:
    """An http(s) link as a reader may follow it, else None.

    A record's `url` ends up as a link in exported Markdown and the digest: a
    `javascript:` URL, or one whose spaces, brackets or quotes break out of
    the link syntax, is not a paper's page.
    """
    if not url:
        return None
    url = url.strip()
    if not re.match(r"(?i)^https?://[^\s/]", url) or re.search(r"[\s<>\"'()\[\]`\\]", url):
        return None
    if not url.isprintable():
        return None
    return url


def safe_markdown(text: str) -> str:
    """`safe_text` for Markdown a renderer will turn into HTML: raw HTML (`<script>`,
    `<img onerror=…>`) is shown as text, and no link can be made from it (`](…)` and
    a `[n]: url` definition are broken), while `[n]` markers read as they are."""
    text = safe_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("](", "]\\(").replace("]:", "]\\:")
