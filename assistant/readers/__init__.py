"""Turn a file of paper abstracts, in any supported format, into `Paper` records.

Reading never stops at the first problem: a user ingesting a folder wants the
good papers in and a list of what to fix, so every problem becomes a
`RecordError` with its file and line, and only the caller decides what to do
with them.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from dataclasses import dataclass, field
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


@dataclass
class _Decoded:
    """A file's text, with what could not be decoded kept out of it.

    `bad_lines` maps a 1-based line to why it is not UTF-8; those lines are
    decoded with U+FFFD in place of the bad bytes so that the layout (and so
    every other record's line number) is kept, and the records they belong to
    are dropped afterwards. `cut_short` says the file ends inside a character.
    """

    text: str
    bad_lines: dict[int, str] = field(default_factory=dict)
    cut_short: bool = False


def _decode(data: bytes, source: str) -> _Decoded | RecordError:
    """Bytes to text line by line: a bad byte costs its line, not the file."""
    if b"\x00" in data[:_BINARY_PROBE]:
        return RecordError(source, None, "binary file, not text")
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        return _Decoded(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    decoded = _Decoded("")
    lines = data.split(b"\n")
    texts = []
    for number, raw in enumerate(lines, start=1):
        try:
            texts.append(raw.decode("utf-8"))
            continue
        except UnicodeDecodeError as exc:
            if number == len(lines) and exc.end == len(raw) and "end of data" in exc.reason:
                # The file stops inside a multi-byte character: it was cut short.
                decoded.cut_short = True
                texts.append(raw[: exc.start].decode("utf-8", errors="replace"))
                continue
            decoded.bad_lines[number] = (
                f"not UTF-8 text (invalid byte 0x{raw[exc.start]:02x} at column "
                f"{len(raw[: exc.start].decode('utf-8', errors='replace')) + 1})"
            )
            texts.append(raw.decode("utf-8", errors="replace"))
    decoded.text = "\n".join(texts)
    return decoded


def _drop_damaged(result: ReadResult, bad_lines: dict[int, str], source: str) -> None:
    """Move every paper that spans a line that was not UTF-8 into the errors.

    Records in every format follow each other through the file, so a paper
    spans from its own line to the line before the next record (paper or
    error) starts. A bad line outside any stored paper gets its own error,
    unless an error already stands at that line.
    """
    if not bad_lines:
        return
    starts = sorted({p.line for p in result.papers} | {e.line for e in result.errors if e.line})
    kept = []
    claimed: set[int] = set()
    dropped: list[tuple[int, int]] = []
    for paper in result.papers:
        later = [s for s in starts if s > paper.line]
        end = later[0] - 1 if later else max(bad_lines)
        bad = [n for n in bad_lines if paper.line <= n <= end]
        if bad:
            claimed.update(bad)
            dropped.append((paper.line, end))
            result.errors.append(
                RecordError(
                    source,
                    bad[0],
                    f"{bad_lines[bad[0]]}; the paper at line {paper.line} was skipped",
                )
            )
        else:
            kept.append(paper)
    result.papers = kept
    by_line = {e.line: e for e in result.errors if e.line}
    for number, reason in bad_lines.items():
        if number in claimed:
            continue
        if number in by_line:  # the bad byte is why that record failed: say so
            by_line[number].reason = f"{reason}; line skipped"
            continue
        result.errors.append(RecordError(source, number, f"{reason}; line skipped"))
    result.errors.sort(key=lambda e: e.line or 0)
    # A warning about a paper that is no longer kept would only confuse.
    result.warnings = [
        w for w in result.warnings if not any(a <= (w.line or 0) <= b for a, b in dropped)
    ]


def _open_regular(path: Path, source: str) -> bytes | RecordError:
    """Read a regular file; refuse devices, FIFOs and sockets without opening them.

    `/dev/zero` would be read until memory runs out and a FIFO blocks until a
    writer appears, so the type is checked with stat() first.
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        return RecordError(source, None, f"cannot read file: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(info.st_mode)
            else "a device"
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
            else "a socket"
            if stat.S_ISSOCK(info.st_mode)
            else "not a file"
        )
        return RecordError(
            source,
            None,
            f"not a regular file ({kind}); only files and folders of files can be ingested",
        )
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        return RecordError(source, None, f"cannot read file: {exc.strerror or exc}")


def read_file(
    path: Path,
    fmt: str | None = None,
    *,
    page_year: int | None = None,
    today: date | None = None,
    field_map: dict[str, str] | None = None,
) -> ReadResult:
    """Read one file into papers and errors; never raises for what the file holds.

    `fmt` (one of FORMATS) skips detection for files whose content is ambiguous.
    `page_year` and `today` only matter for Hugging Face pages, whose dates
    have no year (see `hf_page.read_hf_page`).
    """
    source = str(path)
    data = _open_regular(Path(path), source)
    if isinstance(data, RecordError):
        return ReadResult([], [data])
    decoded = _decode(data, source)
    if isinstance(decoded, RecordError):
        return ReadResult([], [decoded])
    text = decoded.text
    if not text.strip():
        return ReadResult([], [RecordError(source, None, "empty file")])

    if fmt is None:
        try:
            fmt = detect_format(Path(path), text[:_HEAD_CHARS])
        except RecordError as exc:
            return ReadResult([], [exc])
    result = _parse(fmt, text, source, page_year, today, decoded.cut_short, field_map)
    _drop_damaged(result, decoded.bad_lines, source)
    if decoded.cut_short:
        result.warnings.append(
            RecordError(
                source,
                text.count("\n") + 1,
                "the file ends inside a UTF-8 character: it was cut short",
            )
        )
    return result


def _parse(
    fmt: str,
    text: str,
    source: str,
    page_year: int | None,
    today: date | None,
    cut_short: bool,
    field_map: dict[str, str] | None = None,
) -> ReadResult:
    if fmt == "hf-page":
        return read_hf_page(text, source, page_year=page_year, today=today, cut_short=cut_short)
    if fmt == "jsonl":
        return read_jsonl(text, source, field_map)
    if fmt == "csv":
        return read_csv(text, source, field_map)
    if fmt == "arxiv-atom":
        return read_atom(text, source)
    if fmt == "arxiv-snapshot":
        return read_snapshot(text, source)
    if fmt == "hf-api":
        return read_hf_api(text, source)
    reason = f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})"
    return ReadResult([], [RecordError(source, None, reason)])
