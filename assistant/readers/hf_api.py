"""The Hugging Face daily-papers API response (`/api/daily_papers`).

It is one JSON array, so a plain `json.loads` would lose every record's line
and drop the whole file over one bad element; the array is walked element by
element with `raw_decode` instead.
"""

from __future__ import annotations

import json
from typing import Any

from assistant.readers._common import (
    ReadResult,
    check_title_abstract,
    clean,
    date_warning,
    line_of,
    parse_date,
    split_authors,
)
from assistant.records import Paper, RecordError, parse_arxiv_id

_WHITESPACE = " \t\r\n"


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


class _LineCounter:
    """Line of an offset, counting forward from the last query: offsets only grow here."""

    def __init__(self, text: str):
        self.text = text
        self.offset = 0
        self.line = 1

    def __call__(self, offset: int) -> int:
        if offset < self.offset:
            return line_of(self.text, offset)
        self.line += self.text.count("\n", self.offset, offset)
        self.offset = offset
        return self.line


def read_hf_api(text: str, source: str) -> ReadResult:
    """Read each array element as one paper, keeping the line it starts on.

    Elements read before a syntax error are kept; the error itself ends the
    walk, because there is no reliable place to resume inside broken JSON.
    """
    result = ReadResult()
    decoder = json.JSONDecoder()
    line_at = _LineCounter(text)
    pos = _skip_space(text, 0)
    if not text.startswith("[", pos):
        result.errors.append(RecordError(source, line_at(pos), "not a JSON array"))
        return result
    pos = _skip_space(text, pos + 1)
    if text.startswith("]", pos):
        return result
    while True:
        line = line_at(pos)
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON: {exc.msg}"
            result.errors.append(RecordError(source, line_at(exc.pos), reason))
            return result
        outcome = _entry_to_paper(value, source, line, result.warnings)
        if isinstance(outcome, Paper):
            result.papers.append(outcome)
        else:
            result.errors.append(outcome)
        pos = _skip_space(text, pos)
        if text.startswith(",", pos):
            pos = _skip_space(text, pos + 1)
            continue
        if text.startswith("]", pos):
            rest = _skip_space(text, pos + 1)
            if rest < len(text):
                reason = "invalid JSON: extra data after the array"
                result.errors.append(RecordError(source, line_at(rest), reason))
            return result
        reason = "invalid JSON: expected ',' or ']' between entries"
        result.errors.append(RecordError(source, line_at(pos), reason))
        return result


def _entry_to_paper(
    entry: Any, source: str, line: int, warnings: list[RecordError]
) -> Paper | RecordError:
    if not isinstance(entry, dict):
        return RecordError(source, line, f"not a JSON object (got {type(entry).__name__})")
    paper = entry.get("paper")
    if not isinstance(paper, dict):
        return RecordError(source, line, "entry has no 'paper' object")
    title = clean(paper.get("title") or entry.get("title"))
    abstract = clean(paper.get("summary") or entry.get("summary"))
    problem = check_title_abstract(title, abstract, source, line)
    if problem:
        return problem

    published = None
    for holder, field_name in ((paper, "publishedAt"), (entry, "publishedAt")):
        raw = holder.get(field_name)
        if raw:
            published = parse_date(str(raw))
            if published is None:
                warnings.append(date_warning(source, line, field_name, raw))
            break

    upvotes = paper.get("upvotes")
    if not isinstance(upvotes, int) or isinstance(upvotes, bool):
        upvotes = None

    paper_id = clean(paper.get("id")) or None
    authors = split_authors(paper.get("authors"))
    organisation = _organisation(paper.get("organization") or entry.get("organization"))
    return Paper(
        title=title,
        abstract=abstract,
        source=source,
        line=line,
        arxiv_id=parse_arxiv_id(paper_id),
        url=f"https://huggingface.co/papers/{paper_id}" if paper_id else None,
        authors=authors,
        author_count=len(authors) or None,
        organisation=organisation,
        published=published,
        upvotes=upvotes,
    )


def _organisation(value: Any) -> str | None:
    """Format as the web page does ("naver-ai NAVER AI Lab") so both sources agree."""
    if not isinstance(value, dict):
        return None
    return clean(f"{value.get('name') or ''} {value.get('fullname') or ''}") or None
