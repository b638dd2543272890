"""arXiv's two bulk sources: an API (Atom) response and the metadata snapshot.

Users fetch papers from the export API or download Kaggle's
`arxiv-metadata-oai-snapshot.json`; both wrap titles and abstracts across
lines, which `clean` undoes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
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
from assistant.readers.tabular import iter_json_lines
from assistant.records import Paper, RecordError, parse_arxiv_id

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
_ENTRY_START = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?entry(?=[\s/>])")
_NOT_MARKUP = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>", re.S)
_POSITION_SUFFIX = re.compile(r": line \d+, column \d+$")


def _entry_lines(text: str) -> list[int]:
    """Start line of every `<entry>` element, in document order.

    ElementTree keeps no positions, so the text is scanned instead; comments
    and CDATA are blanked first (newlines kept) so that an `<entry` inside
    them is not counted.
    """
    visible = _NOT_MARKUP.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    lines = []
    line, last = 1, 0
    for match in _ENTRY_START.finditer(visible):
        line += visible.count("\n", last, match.start())
        last = match.start()
        lines.append(line)
    return lines


def read_atom(text: str, source: str) -> ReadResult:
    """An arXiv API response: an Atom feed of `<entry>` elements.

    Entity declarations are refused outright: a paper list never needs them,
    and refusing them closes the entity-expansion tricks for good.
    """
    result = ReadResult()
    entity = text.find("<!ENTITY")
    if entity != -1:
        reason = "XML entity declarations are not accepted"
        result.errors.append(RecordError(source, line_of(text, entity), reason))
        return result
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        reason = "broken XML: " + _POSITION_SUFFIX.sub("", str(exc))
        result.errors.append(RecordError(source, exc.position[0], reason))
        return result
    if root.tag != f"{ATOM}feed":
        reason = f"not an Atom feed (root element is {root.tag!r})"
        result.errors.append(RecordError(source, 1, reason))
        return result

    entries = root.findall(f"{ATOM}entry")
    lines = _entry_lines(text)
    for index, entry in enumerate(entries):
        line = lines[index] if index < len(lines) else 1
        outcome = _entry_to_paper(entry, source, line, result.warnings)
        if isinstance(outcome, Paper):
            result.papers.append(outcome)
        else:
            result.errors.append(outcome)
    return result


def _entry_to_paper(
    entry: ET.Element, source: str, line: int, warnings: list[RecordError]
) -> Paper | RecordError:
    entry_id = clean(entry.findtext(f"{ATOM}id"))
    title = clean(entry.findtext(f"{ATOM}title"))
    abstract = clean(entry.findtext(f"{ATOM}summary"))
    if "arxiv.org/api/errors" in entry_id:
        # arXiv reports a bad query as a one-entry feed rather than an HTTP error.
        return RecordError(source, line, f"arXiv API error: {abstract or title}")
    problem = check_title_abstract(title, abstract, source, line)
    if problem:
        return problem

    published = None
    for field_name in ("published", "updated"):
        raw = entry.findtext(f"{ATOM}{field_name}")
        if raw and raw.strip():
            published = parse_date(raw)
            if published is None:
                warnings.append(date_warning(source, line, field_name, raw.strip()))
            break

    url = None
    for link in entry.findall(f"{ATOM}link"):
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            url = link.get("href")
            break
    if url is None and entry_id.startswith("http"):
        url = entry_id

    authors = [
        name
        for name in (clean(a.findtext(f"{ATOM}name")) for a in entry.findall(f"{ATOM}author"))
        if name
    ]
    return Paper(
        title=title,
        abstract=abstract,
        source=source,
        line=line,
        arxiv_id=parse_arxiv_id(entry_id),
        url=url,
        authors=authors,
        author_count=len(authors) or None,
        published=published,
        primary_class=_primary_category(entry),
    )


def _primary_category(entry: ET.Element) -> str | None:
    element = entry.find(f"{ARXIV}primary_category")
    return (clean(element.get("term")) or None) if element is not None else None


def read_snapshot(text: str, source: str) -> ReadResult:
    """Kaggle's arXiv metadata snapshot: one JSON object per line.

    The publication date is the first version's submission stamp, because
    `update_date` moves whenever a paper is revised.
    """
    result = ReadResult()
    for number, record in iter_json_lines(text, source, result):
        outcome = _snapshot_to_paper(record, source, number, result.warnings)
        if isinstance(outcome, Paper):
            result.papers.append(outcome)
        else:
            result.errors.append(outcome)
    return result


def _first_version_created(versions: Any) -> Any:
    if not isinstance(versions, list):
        return None
    stamps = [v for v in versions if isinstance(v, dict) and v.get("created")]
    for stamp in stamps:
        if stamp.get("version") == "v1":
            return stamp["created"]
    return stamps[0]["created"] if stamps else None


def _snapshot_authors(record: dict[str, Any]) -> list[str]:
    """Prefer `authors_parsed`: the flat string mixes in affiliations and LaTeX."""
    parsed = record.get("authors_parsed")
    if isinstance(parsed, list) and parsed:
        names = []
        for parts in parsed:
            if isinstance(parts, list) and parts:
                last, first, suffix = (list(parts) + ["", "", ""])[:3]
                name = clean(f"{first} {last} {suffix}")
                if name:
                    names.append(name)
        if names:
            return names
    return split_authors(record.get("authors"))


def _snapshot_to_paper(
    record: dict[str, Any], source: str, line: int, warnings: list[RecordError]
) -> Paper | RecordError:
    title = clean(record.get("title"))
    abstract = clean(record.get("abstract"))
    problem = check_title_abstract(title, abstract, source, line)
    if problem:
        return problem

    published = None
    created = _first_version_created(record.get("versions"))
    if created is not None:
        published = parse_date(str(created))
        if published is None:
            warnings.append(date_warning(source, line, "versions.created", created))
    elif record.get("update_date"):
        published = parse_date(str(record["update_date"]))
        if published is None:
            warnings.append(date_warning(source, line, "update_date", record["update_date"]))

    raw_id = clean(record.get("id")) or None
    authors = _snapshot_authors(record)
    return Paper(
        title=title,
        abstract=abstract,
        source=source,
        line=line,
        arxiv_id=parse_arxiv_id(raw_id),
        url=f"https://arxiv.org/abs/{raw_id}" if raw_id else None,
        authors=authors,
        author_count=len(authors) or None,
        published=published,
        # The snapshot lists the primary category first ("cs.CL cs.LG").
        primary_class=(clean(record.get("categories")).split() or [None])[0],
    )
