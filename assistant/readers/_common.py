"""Pieces every reader shares: the result type, text clean-up, dates, authors.

Kept in one place so that all formats agree on what a "missing abstract" or an
"unparseable date" is, and the ingest report reads the same whatever the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from assistant.errors import MAX_RECORD_CHARS, RecordError, RecordTooLarge
from assistant.records import Paper

_AUTHOR_SPLIT = re.compile(r"\s*(?:,|;|\s+and\s+)\s*")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$")
_MAX_SHOWN = 60


@dataclass
class ReadResult:
    """What one file yielded.

    A record is either in `papers` or reported in `errors`, never both, so the
    ingest report's counts add up to what the file held. `warnings` are about
    papers that were kept (stored undated, an abstract that looks cut short):
    the user should know, but losing the paper would be worse.
    """

    papers: list[Paper] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    warnings: list[RecordError] = field(default_factory=list)


def clean(value: Any) -> str:
    """Collapse runs of whitespace: arXiv exports wrap titles and abstracts mid-sentence."""
    if value is None:
        return ""
    return " ".join(str(value).split())


def shorten(text: str) -> str:
    """Quote a value inside an error reason without flooding the report."""
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 1] + "…"
    return repr(text)


def line_of(text: str, offset: int) -> int:
    """1-based line of a character offset; lines are counted on '\\n' like editors do."""
    return text.count("\n", 0, offset) + 1


def parse_date(value: str) -> date | None:
    """Read the date forms the supported sources use; None means "not a date".

    ISO dates and timestamps (arXiv, Hugging Face, most CSV exports), RFC 2822
    (the arXiv snapshot's version stamps) and "Jun 30, 2022" (web pages).
    """
    text = value.strip()
    match = _ISO_DATE.match(text)
    if match:
        try:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            return None
    for pattern in ("%b %d, %Y", "%B %d, %Y", "%d %b %Y", "%d %B %Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            pass
    try:
        return parsedate_to_datetime(text).date()
    except (TypeError, ValueError, IndexError):
        return None


def split_authors(value: Any) -> list[str]:
    """Accept authors as a list (of names or {"name": ...}) or as one string.

    Strings come as "A. One, B. Two and C. Three" or with semicolons, so all
    three separators split.
    """
    if value is None:
        return []
    if isinstance(value, list):
        names = []
        for item in value:
            name = item.get("name") if isinstance(item, dict) else item
            name = clean(name)
            if name:
                names.append(name)
        return names
    return [name for name in (clean(p) for p in _AUTHOR_SPLIT.split(str(value))) if name]


def check_title_abstract(title: str, abstract: str, source: str, line: int) -> RecordError | None:
    """The two fields without which a record is not worth ingesting, and the
    size cap that keeps one runaway record from exhausting memory downstream."""
    if not title:
        return RecordError(source, line, "no title")
    if not abstract:
        return RecordError(source, line, f"no abstract for {shorten(title)}")
    size = len(title) + len(abstract)
    if size > MAX_RECORD_CHARS:
        return RecordTooLarge(source, line, size)
    return None


def date_error(source: str, line: int, field_name: str, value: Any) -> RecordError:
    """Name the field and the value so the user can find and fix it in the file."""
    return RecordError(
        source, line, f"unparseable date in field {field_name!r}: {shorten(str(value))}"
    )


def date_warning(source: str, line: int, field_name: str, value: Any) -> RecordError:
    """An unparseable date costs the date, not the paper: it is stored undated."""
    problem = date_error(source, line, field_name, value)
    return RecordError(source, line, f"{problem.reason}; stored without a date")
