"""Turn a file of paper abstracts, in any supported format, into `Paper` records.

Reading never stops at the first problem: a user ingesting a folder wants the
good papers in and a list of what to fix, so every problem becomes a
`RecordError` with its file and line, and only the caller decides what to do
with them.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

from assistant.readers._common import ReadResult
from assistant.readers.arxiv import read_atom, read_snapshot
from assistant.readers.hf_api import read_hf_api
from assistant.readers.hf_page import looks_like_page, read_hf_page
from assistant.readers.tabular import read_csv, read_jsonl
from assistant.records import RecordError

__all__ = ["FORMATS", "ReadResult", "detect_format", "read_file"]

FORMATS = ("hf-page", "jsonl", "csv", "arxiv-atom", "arxiv-snapshot", "hf-api")

_BINARY_PROBE = 8192
_HEAD_CHARS = 65536
_BOM = b"\xef\xbb\xbf"
_SNAPSHOT_MARKERS = ("versions", "update_date", "authors_parsed")


def _first_line(head: str) -> str:
    for line in head.split("\n"):
        if line.strip():
            return line.strip()
    return ""


def detect_format(path: Path, head: str) -> str:
    """Name the format of a file from its name and its first characters.

    Content is trusted over the extension, because exports are often saved as
    `.txt` or `.json` whatever they hold. Raises RecordError when nothing fits,
    so that the caller can report it like any other problem with the file.
    """
    text = head.lstrip("\ufeff").lstrip()
    first = _first_line(text)
    if text.startswith("<"):
        if "<feed" in text or "<entry" in text or "http://www.w3.org/2005/Atom" in text:
            return "arxiv-atom"
        raise RecordError(str(path), 1, "XML, but not an Atom feed")
    if text.startswith("["):
        try:
            value, _ = json.JSONDecoder().raw_decode(text[1:].lstrip())
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("paper"), dict):
            return "hf-api"
        if value is None and '"paper"' in text[:_HEAD_CHARS]:
            return "hf-api"  # first element longer than the head we were given
        raise RecordError(str(path), 1, "JSON array, but not a Hugging Face daily-papers list")
    if first.startswith("{"):
        try:
            record = json.loads(first)
        except json.JSONDecodeError:
            record = None
        if (
            isinstance(record, dict)
            and "abstract" in record
            and "id" in record
            and any(marker in record for marker in _SNAPSHOT_MARKERS)
        ):
            return "arxiv-snapshot"
        return "jsonl"
    if path.suffix.lower() == ".csv":
        return "csv"
    if looks_like_page(text):
        return "hf-page"
    try:
        header = next(csv.reader([first]))
    except (csv.Error, StopIteration):
        header = []
    if "title" in (cell.strip().lower() for cell in header):
        return "csv"
    raise RecordError(str(path), None, "cannot tell the file format; name it explicitly")


def _decode(data: bytes, source: str) -> str | RecordError:
    """Bytes to text, refusing what is not UTF-8 text and saying where it broke."""
    if b"\x00" in data[:_BINARY_PROBE]:
        return RecordError(source, None, "binary file, not text")
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return RecordError(source, line, f"not UTF-8 text (invalid byte at line {line})")


def read_file(
    path: Path,
    fmt: str | None = None,
    *,
    page_year: int | None = None,
    today: date | None = None,
) -> ReadResult:
    """Read one file into papers and errors; never raises for what the file holds.

    `fmt` (one of FORMATS) skips detection for files whose content is ambiguous.
    `page_year` and `today` only matter for Hugging Face pages, whose dates
    have no year (see `hf_page.read_hf_page`).
    """
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = f"cannot read file: {exc.strerror or exc}"
        return ReadResult([], [RecordError(source, None, reason)])
    text = _decode(data, source)
    if isinstance(text, RecordError):
        return ReadResult([], [text])
    if not text.strip():
        return ReadResult([], [RecordError(source, None, "empty file")])

    if fmt is None:
        try:
            fmt = detect_format(Path(path), text[:_HEAD_CHARS])
        except RecordError as exc:
            return ReadResult([], [exc])
    if fmt == "hf-page":
        return read_hf_page(text, source, page_year=page_year, today=today)
    if fmt == "jsonl":
        return read_jsonl(text, source)
    if fmt == "csv":
        return read_csv(text, source)
    if fmt == "arxiv-atom":
        return read_atom(text, source)
    if fmt == "arxiv-snapshot":
        return read_snapshot(text, source)
    if fmt == "hf-api":
        return read_hf_api(text, source)
    reason = f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})"
    return ReadResult([], [RecordError(source, None, reason)])
