"""The arXiv API (`{ASSISTANT_ARXIV_URL}/api/query`, Atom): one category's submissions of one day.

feedparser over httpx rather than the `arxiv` package: `arxiv.Client` fetches
with requests and hands back parsed `Result` objects, so the response itself
(which the inbox keeps verbatim for offline rebuilds) is gone; its retries
swallow a 429/503 and its `Retry-After`, so a fault could not be told in one
line; and its paging stops silently on arXiv's empty pages. feedparser is what
that package uses underneath; here it only checks each page (a whole Atom
feed, not an error entry) and reads `totalResults` and the entry ids with
their versions. arXiv asks for one request every 3 s: `Pacer` keeps to that
across every request of a run (ASSISTANT_ARXIV_DELAY; tests set 0).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ..errors import FetchFault
from ..settings import display_url
from .download import get
from .inbox import arxiv_files, arxiv_folder, arxiv_partial, write_atomic

# Entries per request, and the most one day of one category may bring (arXiv serves
# at most 2,000 per request; a busy cs.LG day has about 400).
PAGE_SIZE = 200
MAX_PER_DAY = 2000
_ENTRY_ID = re.compile(r"abs/(.+?)v(\d+)$")
_CATEGORY = re.compile(r"^[a-z\-]+(\.[A-Za-z\-]+)?$")


def check_category(name: str) -> str:
    """`cs.CL`, `math.ST`, `hep-th`: refused before any request when it is not of that form."""
    from ..errors import UsageError

    name = name.strip()
    if not _CATEGORY.match(name):
        raise UsageError(f"--category {name!r}: expected an arXiv category such as cs.CL")
    return name


class Pacer:
    """At most one request per `delay` seconds, across all of a run's arXiv requests."""

    def __init__(self, delay: float, sleep: Callable[[float], None] = time.sleep):
        self.delay = delay
        self.sleep = sleep
        self.last: float | None = None

    def wait(self) -> None:
        if self.last is not None and self.delay > 0:
            remaining = self.delay - (time.monotonic() - self.last)
            if remaining > 0:
                self.sleep(remaining)
        self.last = time.monotonic()


@dataclass
class Page:
    entries: int
    total: int
    versions: dict[str, int] = field(default_factory=dict)


def check_page(body: bytes, url: str) -> Page:
    """A whole Atom feed from arXiv: its entry count, `totalResults` and entry versions."""
    import feedparser

    parsed = feedparser.parse(body)
    if parsed.bozo or not str(parsed.get("version", "")).startswith("atom"):
        raise FetchFault(
            "a malformed response (not a whole Atom feed: cut short?)", display_url(url)
        )
    for entry in parsed.entries:
        if "/api/errors" in entry.get("id", ""):
            summary = " ".join(entry.get("summary", "").split())
            raise FetchFault(f"arXiv refused the query: {summary}", display_url(url))
    try:
        total = int(parsed.feed.get("opensearch_totalresults", len(parsed.entries)))
    except (TypeError, ValueError):
        total = len(parsed.entries)
    versions: dict[str, int] = {}
    for entry in parsed.entries:
        match = _ENTRY_ID.search(entry.get("id", ""))
        if match:
            versions[match.group(1)] = int(match.group(2))
    return Page(len(parsed.entries), total, versions)


def day_query(category: str, day: date) -> str:
    stamp = day.strftime("%Y%m%d")
    return f"cat:{category} AND submittedDate:[{stamp}0000 TO {stamp}2359]"


def fetch_day(
    client: Any,
    base_url: str,
    home: Path,
    category: str,
    day: date,
    pacer: Pacer,
    *,
    page_size: int = PAGE_SIZE,
    max_per_day: int = MAX_PER_DAY,
    **http: Any,
) -> tuple[list[Path], int, dict[str, int], int]:
    """Fetch one category's day, page after page: (files, entries, versions, requests).

    Pages wait in a hidden folder until the day is whole, then move into place
    (the first page last); an interrupted day resumes from the pages it has.
    """
    url = f"{base_url.rstrip('/')}/api/query"
    partial = arxiv_partial(home, category, day)
    bodies: list[bytes] = []
    entries = 0
    versions: dict[str, int] = {}
    requests = 0
    start = 0
    while True:
        kept = partial / f"p{len(bodies) + 1:03d}.xml"
        asked = min(page_size, max_per_day - start)
        if kept.is_file():
            body = kept.read_bytes()
            page = check_page(body, url)
        else:
            params = {
                "search_query": day_query(category, day),
                "sortBy": "submittedDate",
                "sortOrder": "ascending",
                "start": start,
                "max_results": asked,
            }
            pacer.wait()
            requests += 1
            body = get(client, url, params, **http).body
            page = check_page(body, url)
            write_atomic(kept, body)
        bodies.append(body)
        entries += page.entries
        versions.update(page.versions)
        start += page.entries
        # A short page is the last one; so is reaching totalResults or the day's cap.
        if page.entries < asked or start >= page.total or start >= max_per_day:
            break
    folder = arxiv_folder(home, category)
    if len(bodies) == 1:
        targets = [folder / f"{day.isoformat()}.xml"]
    else:
        targets = [folder / f"{day.isoformat()}.page{i}.xml" for i in range(1, len(bodies) + 1)]
    for target, body in reversed(list(zip(targets, bodies))):
        write_atomic(target, body)
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.parent.rmdir()  # the .partial folder, once empty
    except OSError:
        pass
    return targets, entries, versions, requests


def stored(home: Path, category: str, day: date) -> list[Path]:
    return arxiv_files(home, category, day)
