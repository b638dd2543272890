"""Hugging Face "Daily Papers" pages saved as plain text (the sample corpus).

The text has no field names: a paper is a title line, an abstract line and an
optional three-line block (authors or organisation, `·`, date), told apart by
position and shape. Dates mostly lack a year, which is worked out from the
page's own date; see the corpus README for the layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from assistant.readers._common import (
    MAX_RECORD_CHARS,
    ReadResult,
    clean,
    date_error,
    date_warning,
    shorten,
)
from assistant.records import Paper, RecordError, RecordTooLarge

CHROME = frozenset(
    line.casefold()
    for line in (
        "new",
        "Get trending papers in your email inbox!",
        "Subscribe",
        "Daily Papers",
        "byAK and the research community",
    )
)
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("Jan", "January"),
            ("Feb", "February"),
            ("Mar", "March"),
            ("Apr", "April"),
            ("May",),
            ("Jun", "June"),
            ("Jul", "July"),
            ("Aug", "August"),
            ("Sep", "Sept", "September"),
            ("Oct", "October"),
            ("Nov", "November"),
            ("Dec", "December"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + ")"
# "Oct 1", "Jun 30, 2022", "Jun 3 2" (2 upvotes), "Mar 13, 2024 1".
DATE_LINE = re.compile(rf"^{_MONTH}\.? (\d{{1,2}})(?:, (\d{{4}}))?(?: (\d+))?$")
_AUTHOR_COUNT = re.compile(r"^(?:•\s*)?(\d+) authors?$")
_SEPARATOR = "·"
# Titles on these pages run to ~150 characters and abstracts to well over 1000;
# the thresholds leave a wide margin both ways so real pages never trip them.
_TITLE_MAX = 300
_META_MAX = 80
_YEARS_BACK = 8  # enough to reach a leap year from any year
# How a complete abstract ends: a sentence mark or closing bracket/quote, or a
# link (many end "Code: https://github.com/..."). Anything else at the very end
# of the file means the page was cut mid-abstract.
_COMPLETE_END = re.compile(r"""(?:[.!?)\]}"'”’»]|\S*/\S*|\w\.[A-Za-z]{1,4})$""")
_ELLIPSIS = ("…", "...")


@dataclass
class _Line:
    number: int
    text: str


def is_page_date(line: str) -> bool:
    """The page's own date: a month and day, with no upvote count."""
    match = DATE_LINE.match(line.strip())
    return bool(match) and match.group(4) is None


def looks_like_page(head: str) -> bool:
    """Chrome first, or (chrome trimmed off by the user) the page date first."""
    for raw in head.split("\n"):
        line = raw.strip()
        if line:
            return line.casefold() in CHROME or is_page_date(line)
    return False


def _latest_on_or_before(month: int, day: int, limit: date) -> date | None:
    """The most recent month/day not after `limit`; walks back over Feb 29."""
    for year in range(limit.year, limit.year - _YEARS_BACK, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= limit:
            return candidate
    return None


def _looks_like_title(text: str) -> bool:
    return len(text) <= _TITLE_MAX and not text.endswith(".")


def _looks_like_abstract(text: str) -> bool:
    return len(text) > _TITLE_MAX and text.count(". ") >= 1


def _is_meta(text: str) -> bool:
    """An author count or an organisation name: short, and not a sentence."""
    return bool(_AUTHOR_COUNT.match(text)) or (len(text) <= _META_MAX and not text.endswith("."))


class _PageParser:
    def __init__(
        self, text: str, source: str, page_year: int | None, today: date, cut_short: bool = False
    ):
        self.cut_short = cut_short
        self.source = source
        self.page_year = page_year
        self.today = today
        self.result = ReadResult()
        self.items = [
            _Line(number, raw.strip())
            for number, raw in enumerate(text.split("\n"), start=1)
            if raw.strip()
        ]
        self.reference: date | None = None
        self.abstract_index = -1  # index in `items` of the last abstract read

    def error(self, line: int | None, reason: str) -> None:
        self.result.errors.append(RecordError(self.source, line, reason))

    def text_at(self, index: int) -> str | None:
        return self.items[index].text if index < len(self.items) else None

    def block_length(self, index: int) -> int:
        """Lines in a metadata block starting at `index` (0 if none).

        The block is at most one short line, then `·`, then the date; the short
        line is only taken as metadata when the `·` follows it. One line, not
        more, so that a following title is never swallowed as metadata.
        """
        for meta_lines in range(2):
            sep = self.text_at(index + meta_lines)
            if sep is None:
                return 0
            if sep == _SEPARATOR:
                end = index + meta_lines + 2
                return min(end, len(self.items)) - index
            if not _is_meta(sep):
                return 0
        return 0

    def parse(self) -> ReadResult:
        index = self.read_header()
        last_abstract: int | None = None
        while index < len(self.items):
            before = len(self.result.papers)
            index = self.read_paper(index)
            if len(self.result.papers) > before:
                last_abstract = self.abstract_index
        self.flag_truncated(last_abstract)
        return self.result

    def flag_truncated(self, last_abstract: int | None) -> None:
        """Say which stored abstracts look cut short.

        The site itself clips with an ellipsis; a saved page cut off mid-file
        ends in an abstract (the last line) that stops mid-sentence.
        """
        papers = self.result.papers
        for paper in papers:
            if paper.abstract.endswith(_ELLIPSIS):
                self.result.warnings.append(
                    RecordError(
                        self.source,
                        paper.line,
                        f"abstract of {shorten(paper.title)} ends in an ellipsis: it looks "
                        "truncated; stored as it is",
                    )
                )
        if not papers or last_abstract != len(self.items) - 1:
            return
        paper = papers[-1]
        if paper.abstract.endswith(_ELLIPSIS):
            return
        if self.cut_short or not _COMPLETE_END.search(paper.abstract):
            self.result.warnings.append(
                RecordError(
                    self.source,
                    paper.line,
                    f"abstract of {shorten(paper.title)} stops mid-sentence at the end of the "
                    "file: the page looks truncated; stored as it is",
                )
            )

    def read_header(self) -> int:
        index = 0
        while index < len(self.items) and self.items[index].text.casefold() in CHROME:
            index += 1
        limit = date(self.page_year, 12, 31) if self.page_year else self.today
        if index < len(self.items) and is_page_date(self.items[index].text):
            self.reference = self.page_date(self.items[index], limit)
            index += 1
        if self.reference is None:
            self.reference = limit
        return index

    def page_date(self, item: _Line, limit: date) -> date | None:
        match = DATE_LINE.match(item.text)
        assert match is not None
        month, day = _MONTHS[match.group(1)], int(match.group(2))
        if match.group(3):
            year = int(match.group(3))
        elif self.page_year:
            year = self.page_year
        else:
            found = _latest_on_or_before(month, day, limit)
            if found is None:
                self.result.errors.append(
                    date_error(self.source, item.number, "page date", item.text)
                )
            return found
        try:
            return date(year, month, day)
        except ValueError:
            self.error(item.number, f"page date {item.text!r} does not exist in {year}")
            return None

    def read_paper(self, index: int) -> int:
        title = self.items[index]
        if title.text == _SEPARATOR or _AUTHOR_COUNT.match(title.text):
            self.error(title.number, "metadata block with no paper before it")
            return index + max(self.block_length(index), 1)
        index += 1
        if not _looks_like_title(title.text) and _looks_like_abstract(title.text):
            self.error(title.number, f"no title for the abstract {shorten(title.text)}")
            return index + self.block_length(index)

        candidate = self.text_at(index)
        following = self.text_at(index + 1)
        missing = (
            candidate is None
            or self.block_length(index) > 0
            or (
                _looks_like_title(candidate)
                and following is not None
                and _looks_like_abstract(following)
            )
        )
        if missing:
            self.error(title.number, f"no abstract for {shorten(title.text)}")
            return index + self.block_length(index)
        abstract = self.items[index]
        self.abstract_index = index
        index += 1
        if len(title.text) + len(abstract.text) > MAX_RECORD_CHARS:
            self.result.errors.append(
                RecordTooLarge(self.source, title.number, len(title.text) + len(abstract.text))
            )
            return index + self.block_length(index)

        block = self.block_length(index)
        paper_or_error = self.make_paper(title, abstract, self.items[index : index + block])
        if isinstance(paper_or_error, Paper):
            self.result.papers.append(paper_or_error)
        else:
            self.result.errors.append(paper_or_error)
        return index + block

    def undated(self, paper: Paper, date_line: _Line) -> Paper:
        """An unparseable date costs the date, not the paper."""
        paper.published = None
        self.result.warnings.append(
            date_warning(self.source, date_line.number, "date", date_line.text)
        )
        return paper

    def make_paper(self, title: _Line, abstract: _Line, block: list[_Line]) -> Paper | RecordError:
        paper = Paper(
            title=clean(title.text),
            abstract=clean(abstract.text),
            source=self.source,
            line=title.number,
        )
        if not block:
            return paper
        for meta in block[:-2]:
            count = _AUTHOR_COUNT.match(meta.text)
            if count:
                paper.author_count = int(count.group(1))
            else:
                paper.organisation = clean(meta.text)
        if block[-1].text == _SEPARATOR:
            self.result.warnings.append(
                RecordError(self.source, title.number, "no date after '·'; stored without a date")
            )
            return paper
        date_line = block[-1]
        match = DATE_LINE.match(date_line.text)
        if not match:
            return self.undated(paper, date_line)
        month, day = _MONTHS[match.group(1)], int(match.group(2))
        if match.group(3):
            try:
                paper.published = date(int(match.group(3)), month, day)
            except ValueError:
                return self.undated(paper, date_line)
        else:
            assert self.reference is not None
            paper.published = _latest_on_or_before(month, day, self.reference)
            if paper.published is None:
                return self.undated(paper, date_line)
            paper.year_inferred = True
        if match.group(4):
            paper.upvotes = int(match.group(4))
        return paper


def read_hf_page(
    text: str,
    source: str,
    *,
    page_year: int | None = None,
    today: date | None = None,
    cut_short: bool = False,
) -> ReadResult:
    """Read a saved Daily Papers page.

    Year-less dates are placed in the latest year that does not put them after
    the page's date; the page's date in turn is placed no later than `today`
    unless `page_year` says which year the page is from. Such papers are
    marked `year_inferred`, because the year is a guess the user may correct.
    `cut_short` says the file's bytes ended mid-character, so its last
    abstract is certainly truncated.
    """
    return _PageParser(text, source, page_year, today or date.today(), cut_short).parse()
