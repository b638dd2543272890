"""`assistant fetch`: each day's papers from Hugging Face and arXiv into the inbox, then the
library.

One module per source (`hf`, `arxiv`), one for the request policy (`download`), one
for the inbox layout (`inbox`), one for the days asked for (`days`); this
module runs them: day after day, each response kept verbatim, then one ingest
of every file the days asked for have, so a paper is stored once whichever
source or day brought it (identity is the arXiv id). A fault or an interrupt
stops the fetch where it is: what was fetched is kept and ingested, and the
report says in one line what was and was not fetched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FetchFault, UsageError

if TYPE_CHECKING:
    from ..ingest import IngestReport
    from ..settings import Settings

SOURCES = ("hf", "arxiv")
# A day is final (kept, never asked for again) once this many days have passed: HF adds
# papers through its day; arXiv announces a day's submissions one to three days later.
SETTLE_DAYS = {"hf": 1, "arxiv": 3}

__all__ = ["SOURCES", "DayResult", "FetchFault", "FetchReport", "run_fetch"]


@dataclass
class DayResult:
    source: str
    day: date
    category: str | None
    status: str  # fetched | cached | failed | not_fetched | future
    papers: int = 0
    files: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        where = f"{self.source} {self.category}" if self.category else self.source
        return f"{where} {self.day.isoformat()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "day": self.day.isoformat(),
            "category": self.category,
            "status": self.status,
            "papers": self.papers,
            "files": self.files,
        }


@dataclass
class FetchReport:
    source: str
    results: list[DayResult] = field(default_factory=list)
    requests: int = 0
    fault: str | None = None
    interrupted: bool = False
    newer_versions: list[tuple[str, int, int]] = field(default_factory=list)
    ingest: IngestReport | None = None

    def _with(self, *statuses: str) -> list[DayResult]:
        return [r for r in self.results if r.status in statuses]

    @property
    def complete(self) -> bool:
        return self.fault is None and not self.interrupted

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.fault or (self.ingest and self.ingest.exit_code):
            return 1
        return 0

    def stored_line(self) -> str:
        if self.ingest is None:
            if self.interrupted:
                line = "the fetched files wait in the inbox; the next run ingests them"
            else:
                line = "nothing to ingest"
        else:
            ing = self.ingest
            parts = [f"{ing.added} added", f"{ing.updated} updated", f"{ing.unchanged} unchanged"]
            line = f"library: {', '.join(parts)} ({ing.total_papers} papers in all)"
        if self.newer_versions:
            shown = ", ".join(f"{pid} v{old}→v{new}" for pid, old, new in self.newer_versions[:5])
            more = len(self.newer_versions) - 5
            line += f"; newer arXiv versions: {shown}" + (f" and {more} more" if more > 0 else "")
        return line

    def line(self) -> str:
        """The one line: what was fetched, what was not (and why), that the library is whole."""
        fetched = self._with("fetched")
        cached = self._with("cached")
        missing = self._with("failed", "not_fetched")
        future = self._with("future")
        papers = sum(r.papers for r in fetched)

        def unit(n: int) -> str:
            word = "day" if self.source == "hf" else "category-day"
            return f"{n} {word}" + ("" if n == 1 else "s")

        head = f"fetch {self.source}: fetched {unit(len(fetched))} ({papers} papers listed)"
        if cached:
            head += f", {len(cached)} already in the inbox (no request)"
        if future:
            head += f", {len(future)} not over yet (skipped)"
        if self.complete:
            return f"{head}; {self.stored_line()}"
        why = "interrupted" if self.interrupted else self.fault
        first = missing[0].label if missing else "-"
        return (
            f"{head}; NOT fetched: {unit(len(missing))} from {first} on ({why}); "
            f"what was fetched is kept and the library is consistent ({self.stored_line()}); "
            "run the same command again to fetch the rest"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "complete": self.complete,
            "fault": self.fault,
            "interrupted": self.interrupted,
            "requests": self.requests,
            "fetched": len(self._with("fetched")),
            "cached": len(self._with("cached")),
            "not_fetched": len(self._with("failed", "not_fetched")),
            "days": [r.to_dict() for r in self.results],
            "newer_versions": [
                {"arxiv_id": pid, "old": old, "new": new} for pid, old, new in self.newer_versions
            ],
            "ingest": self.ingest.to_dict() if self.ingest else None,
            "message": self.line(),
        }


def _stored(source: str, home: Path, category: str | None, day: date) -> list[Path]:
    from .inbox import arxiv_files, hf_file

    if source == "hf":
        path = hf_file(home, day)
        return [path] if path.is_file() else []
    assert category is not None
    return arxiv_files(home, category, day)


def run_fetch(
    settings: Settings,
    source: str,
    days: list[date],
    categories: list[str] | None = None,
    *,
    refresh: bool = False,
    today: date | None = None,
    ingest: bool = True,
    library: Any = None,
    embedder: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchReport:
    """Fetch `days` of `source` (arXiv: of each of `categories`) into the inbox, then ingest.

    Never raises for a network fault or Ctrl-C: the report says what happened
    (`fault`, `interrupted`) and what was kept. `progress(label, done, total)`
    is called as each day finishes.
    """
    from . import arxiv as arxiv_source
    from . import hf as hf_source
    from .download import make_client
    from .inbox import load_versions, save_versions

    if source not in SOURCES:
        raise UsageError(f"unknown source {source!r} (expected one of: {', '.join(SOURCES)})")
    if source == "arxiv":
        if not categories:
            raise UsageError("fetch arxiv needs --category (e.g. cs.CL,cs.LG)")
        categories = [arxiv_source.check_category(c) for c in categories]
    units = [(c, d) for c in (categories if source == "arxiv" else [None]) for d in days]
    today = today or date.today()
    final_before = today - timedelta(days=SETTLE_DAYS[source] - 1)
    report = FetchReport(source)
    home = settings.home
    http = {"max_wait": settings.fetch_max_wait, "sleep": sleep, "on_wait": notify}
    pacer = arxiv_source.Pacer(settings.arxiv_delay, sleep)
    versions = load_versions(home) if source == "arxiv" else {}
    client = None
    report.results = [DayResult(source, d, c, "not_fetched") for c, d in units]
    try:
        for index, result in enumerate(report.results):
            category, day = result.category, result.day
            if day >= today:
                result.status = "future"
                continue
            have = _stored(source, home, category, day)
            if have and not refresh and day < final_before:
                result.status = "cached"
                result.files = [str(p) for p in have]
            else:
                if client is None:
                    client = make_client(settings.fetch_timeout)
                try:
                    if source == "hf":
                        report.requests += 1
                        path, n = hf_source.fetch_day(client, settings.hf_url, home, day, **http)
                        files = [path]
                    else:
                        files, n, seen, asked = arxiv_source.fetch_day(
                            client,
                            settings.arxiv_url,
                            home,
                            category,
                            day,
                            pacer,
                            page_size=settings.arxiv_page_size,
                            **http,
                        )
                        report.requests += asked
                        for pid, version in seen.items():
                            old = versions.get(pid)
                            if old is not None and version > old:
                                report.newer_versions.append((pid, old, version))
                            if old is None or version > old:
                                versions[pid] = version
                except FetchFault as exc:
                    result.status = "failed"
                    report.fault = f"{exc.reason} at {exc.url}" if exc.url else exc.reason
                    break
                result.status, result.papers = "fetched", n
                result.files = [str(p) for p in files]
            if progress:
                progress(result.label, index + 1, len(units))
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        if client is not None:
            client.close()
        if source == "arxiv" and versions:
            save_versions(home, versions)
    if ingest and not report.interrupted:  # after Ctrl-C, stop: the next run ingests them
        files = [Path(f) for r in report.results for f in r.files]
        if files:
            embedding = (
                (lambda done, total: progress("embedding papers", done, total))
                if progress
                else None
            )
            report.ingest = _ingest(files, settings, library, embedder, notify, embedding)
            if report.ingest.interrupted:
                report.interrupted = True
    return report


def _ingest(files, settings, library, embedder, notify, progress) -> IngestReport:
    from ..ingest import ingest as run_ingest

    return run_ingest(
        files, settings, library=library, embedder=embedder, notify=notify, progress=progress
    )
