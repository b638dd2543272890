"""JSON Lines and CSV: the formats users export from their own tools.

Both carry one paper per record under loosely agreed column names, so one
mapping step serves both; header names are matched without regard to case
because spreadsheets capitalise them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import PurePath
from typing import Any

from assistant.readers._common import (
    MAX_RECORD_CHARS,
    ReadResult,
    check_title_abstract,
    clean,
    date_error,
    date_warning,
    parse_date,
    shorten,
    split_authors,
)
from assistant.records import Paper, RecordError, RecordTooLarge, parse_arxiv_id

_ALIASES = {
    # arXiv's own names ("summary", as in its API and in daily-arXiv listings) beside ours.
    "abstract": ("abstract", "summary"),
    "arxiv_id": ("arxiv_id", "arxiv", "id"),
    "published": ("published", "date", "published_at", "publishedat"),
    "organisation": ("organisation", "organization"),
}


# Daily-listing tools store one file per day, named by the day, with no date in the records.
_FILE_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")


def file_date(source: str) -> date | None:
    """The day in a file's name (`2025-11-17.jsonl`), the listing's date when records have none."""
    match = _FILE_DATE.search(PurePath(source).name)
    if not match:
        return None
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


_CATEGORY = re.compile(r"^[a-z\-]+(\.[A-Za-z\-]+)?$")


def only_category(categories: Any) -> str | None:
    """The primary category when a record lists exactly one.

    Daily-arXiv listings store `categories` in arbitrary order, so of several
    none can be called primary; a Kaggle snapshot lists the primary first
    (its reader says so itself).
    """
    if isinstance(categories, str):
        categories = categories.replace(",", " ").split()
    if not isinstance(categories, list):
        return None
    names = [str(c).strip() for c in categories if str(c).strip()]
    return names[0] if len(names) == 1 and _CATEGORY.match(names[0]) else None


def _get(record: dict[str, Any], *names: str) -> Any:
    """First non-empty value among the names: CSV gives "" for absent cells."""
    for name in names:
        value = record.get(name)
        if value not in (None, "", []):
            return value
    return None


def record_to_paper(
    record: dict[str, Any],
    source: str,
    line: int,
    warnings: list[RecordError] | None = None,
    default_date: date | None = None,
    field_map: dict[str, str] | None = None,
) -> Paper | RecordError:
    """Map one JSONL object or CSV row onto a Paper, or say what is wrong with it.

    Keys are lower-cased first so "Title" and "title" both work. An
    unparseable date is added to `warnings` and the paper kept undated.
    `default_date` (the day a listing file is named for) dates a record that
    carries no date of its own.
    """
    fields = {str(key).strip().lower(): value for key, value in record.items()}
    for ours, theirs in (field_map or {}).items():  # `--field abstract=summary`
        if theirs in fields:
            fields[ours] = fields[theirs]
    title = clean(_get(fields, "title"))
    abstract = clean(_get(fields, *_ALIASES["abstract"]))
    problem = check_title_abstract(title, abstract, source, line)
    if problem:
        return problem

    raw_id = _get(fields, *_ALIASES["arxiv_id"])
    url = _get(fields, "url")
    url = clean(url) if url is not None else None
    arxiv_id = parse_arxiv_id(str(raw_id)) if raw_id is not None else None
    if arxiv_id is None and url:
        arxiv_id = parse_arxiv_id(url)

    published = None
    for name in _ALIASES["published"]:
        raw_date = _get(fields, name)
        if raw_date is not None:
            published = parse_date(str(raw_date))
            if published is None:
                if warnings is None:  # a caller that takes no warnings gets the old error
                    return date_error(source, line, name, raw_date)
                warnings.append(date_warning(source, line, name, raw_date))
            break
    else:
        published = default_date

    upvotes = None
    raw_upvotes = _get(fields, "upvotes")
    if raw_upvotes is not None:
        try:
            upvotes = int(str(raw_upvotes).strip())
        except ValueError:
            reason = f"upvotes is not a number: {shorten(str(raw_upvotes))}"
            return RecordError(source, line, reason)

    authors = split_authors(_get(fields, "authors"))
    organisation = _get(fields, *_ALIASES["organisation"])
    primary = clean(_get(fields, "primary_class", "primary_category")) or only_category(
        _get(fields, "categories")
    )
    return Paper(
        title=title,
        abstract=abstract,
        source=source,
        line=line,
        arxiv_id=arxiv_id,
        url=url or None,
        authors=authors,
        author_count=len(authors) or None,
        organisation=clean(organisation) or None,
        published=published,
        upvotes=upvotes,
        primary_class=primary,
    )


def iter_json_lines(
    text: str, source: str, result: ReadResult
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line, object) for each JSON object line; report the rest in `result`.

    Shared with the arXiv snapshot, which is JSON Lines with its own fields.
    """
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        if len(raw) > MAX_RECORD_CHARS * 2:  # JSON syntax and other fields on top
            result.errors.append(RecordTooLarge(source, number, len(raw)))
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON: {exc.msg} (column {exc.colno})"
            result.errors.append(RecordError(source, number, reason))
            continue
        if not isinstance(value, dict):
            kind = type(value).__name__
            result.errors.append(RecordError(source, number, f"not a JSON object (got {kind})"))
            continue
        yield number, value


def read_jsonl(text: str, source: str, field_map: dict[str, str] | None = None) -> ReadResult:
    """One JSON object per line; a bad line costs only that line."""
    result = ReadResult()
    listing_day = file_date(source)
    names: set[str] = set()
    for number, record in iter_json_lines(text, source, result):
        names.update(str(key).strip().lower() for key in record)
        outcome = record_to_paper(record, source, number, result.warnings, listing_day, field_map)
        _collect(result, outcome)
    collapse_same_failure(result, source, names)
    return result


_MISSING = (
    ("no abstract", "abstract", "'abstract' or 'summary'"),
    ("no title", "title", "'title'"),
)


def collapse_same_failure(result: ReadResult, source: str, names: set[str]) -> None:
    """Every record failed for want of the same field: one line for the file, not one per record.

    The line names the file, the missing field and the fields the records do
    have, so the user sees at once which `--field ours=theirs` would map it.
    """
    if result.papers or len(result.errors) < 2:
        return
    for prefix, ours, expected in _MISSING:
        if all(e.reason.startswith(prefix) for e in result.errors):
            have = ", ".join(sorted(names)) or "none"
            reason = (
                f"all {len(result.errors)} records lack the {ours}: no {expected} field "
                f"(the records have: {have}); map one with --field {ours}=NAME"
            )
            result.errors = [RecordError(source, None, reason)]
            return


def read_csv(text: str, source: str, field_map: dict[str, str] | None = None) -> ReadResult:
    """A CSV with a header row naming at least `title` and `abstract`.

    Quoted cells may span lines, so the record's line is taken from the csv
    reader's own line count (the line after the previous record ended), not
    from the row index. The reader is strict so that a stray or unclosed quote
    is reported against its record instead of silently swallowing the rest.
    """
    result = ReadResult()
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    header_line = 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.errors.append(RecordError(source, start, f"broken CSV: {exc}"))
            if reader.line_num < start:
                break  # the reader made no progress; nothing more can be read
            continue
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().lstrip("\ufeff").lower() for cell in row]
            header_line = start
            if "abstract" not in header and "summary" in header:
                header = ["abstract" if name == "summary" else name for name in header]
            for ours, theirs in (field_map or {}).items():
                if ours not in header and theirs in header:
                    header = [ours if name == theirs else name for name in header]
            for needed in ("title", "abstract"):
                if needed not in header:
                    result.errors.append(
                        RecordError(source, header_line, f"CSV header has no {needed!r} column")
                    )
                    return result
            continue
        record: dict[str, Any] = {}
        for name, cell in zip(header, row, strict=False):  # short rows: missing cells
            record.setdefault(name, cell)
        _collect(result, record_to_paper(record, source, start, result.warnings, file_date(source)))
    if header is None:
        result.errors.append(RecordError(source, None, "CSV has no header row"))
    return result


def _collect(result: ReadResult, outcome: Paper | RecordError) -> None:
    if isinstance(outcome, Paper):
        result.papers.append(outcome)
    else:
        result.errors.append(outcome)
