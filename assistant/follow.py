"""`assistant follow`: fetch -> ingest -> the digest of each finished week -> deliver.

Made for cron or a systemd timer: it is safe to run twice (each week's steps
are recorded in `<out>/state.json` as they finish, so a rerun writes no second
digest, feed entry or e-mail) and safe to run late (every finished week since
the last one delivered gets its own digest, at most ASSISTANT_FOLLOW_CATCHUP).
A week is due once its Sunday is over and the ASSISTANT_FOLLOW_DAY weekday
after it has come. A fetch that did not complete stops the run before any
digest: a digest of a week with missing days would be wrong, and the next run
catches up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .fetch.days import week_name

if TYPE_CHECKING:
    from .fetch import FetchReport
    from .settings import Settings

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def out_folder(settings: Settings) -> Path:
    return settings.follow_out or settings.home / "follow"


def load_state(out: Path) -> dict[str, Any]:
    try:
        data = json.loads((out / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"weeks": {}}
    return data if isinstance(data.get("weeks"), dict) else {"weeks": {}}


def save_state(out: Path, state: dict[str, Any]) -> None:
    from .fetch.inbox import write_atomic

    write_atomic(out / "state.json", json.dumps(state, indent=2, sort_keys=True).encode("utf-8"))


def due_weeks(settings: Settings, today: date, state: dict[str, Any]) -> list[date]:
    """Mondays of the finished weeks still to deliver, oldest first."""
    day = settings.follow_day[:3].lower()
    if day not in WEEKDAYS:
        raise UsageError(f"ASSISTANT_FOLLOW_DAY {settings.follow_day!r}: expected mon … sun")
    offset = WEEKDAYS.index(day)
    this_monday = today - timedelta(days=today.weekday())
    latest = this_monday - timedelta(days=7)  # the last finished week
    if today < this_monday + timedelta(days=offset):
        latest -= timedelta(days=7)  # its delivery day has not come yet
    done = {w for w, s in state["weeks"].items() if s.get("done")}
    if state["weeks"]:  # missed weeks since the last one recorded, at most FOLLOW_CATCHUP
        from .fetch.days import week_days

        last = max(week_days(w)[0] for w in state["weeks"])
        first = max(
            last + timedelta(days=7),
            latest - timedelta(days=7 * (max(1, settings.follow_catchup) - 1)),
        )
    else:
        first = latest  # a new follower gets the last week, not a backlog
    from .fetch.days import week_days

    # a week begun but not finished (the e-mail failed, say) is taken up again
    weeks = sorted(
        week_days(w)[0] for w in state["weeks"] if week_days(w)[0] < first and w not in done
    )
    monday = first
    while monday <= latest:
        if week_name(monday) not in done:
            weeks.append(monday)
        monday += timedelta(days=7)
    return weeks


@dataclass
class WeekOutcome:
    week: str
    papers: int = 0
    written: list[str] = field(default_factory=list)
    feed: bool = False
    mailed: bool = False
    empty: bool = False
    skipped: bool = False  # delivered by an earlier run

    def line(self) -> str:
        if self.skipped:
            return f"{self.week}: already delivered"
        if self.empty:
            return f"{self.week}: no papers in the library for that week; nothing to deliver"
        parts = [f"{self.week}: digest of {self.papers} papers -> {', '.join(self.written)}"]
        parts.append("feed entry added" if self.feed else "feed unchanged")
        if self.mailed:
            parts.append("e-mailed")
        return "; ".join(parts)


@dataclass
class FollowReport:
    fetches: list[FetchReport] = field(default_factory=list)
    weeks: list[WeekOutcome] = field(default_factory=list)
    stopped: str | None = None

    @property
    def exit_code(self) -> int:
        codes = [f.exit_code for f in self.fetches]
        if any(c == 130 for c in codes):
            return 130
        return 1 if self.stopped or any(codes) else 0

    def lines(self) -> list[str]:
        out = [f.line() for f in self.fetches]
        out += [w.line() for w in self.weeks]
        if self.stopped:
            out.append(self.stopped)
        if not self.weeks and not self.stopped:
            out.append("no finished week is due; nothing to deliver")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "fetch": [f.to_dict() for f in self.fetches],
            "weeks": [vars(w) for w in self.weeks],
            "stopped": self.stopped,
            "lines": self.lines(),
        }


def run_follow(
    settings: Settings,
    *,
    today: date | None = None,
    library: Any = None,
    embedder: Any = None,
    make_client: Callable[[], Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
    fetch: bool = True,
) -> FollowReport:
    """One scheduled run: fetch the days that matter, then build and deliver each due week."""
    from .fetch import run_fetch

    today = today or date.today()
    out = out_folder(settings)
    state = load_state(out)
    report = FollowReport()
    weeks = due_weeks(settings, today, state)
    if library is None:
        from .store import Library

        library = Library.open(settings)
    if embedder is None:
        from .embed import make_embedder

        embedder = make_embedder(settings)
    if fetch:
        start = min([*weeks, today - timedelta(days=7)])
        days = [start + timedelta(days=i) for i in range((today - start).days)]
        sources = [s.strip() for s in settings.follow_sources.split(",") if s.strip()]
        categories = [c.strip() for c in settings.follow_categories.split(",") if c.strip()]
        for source in sources:
            fetched = run_fetch(
                settings,
                source,
                days,
                categories if source == "arxiv" else None,
                today=today,
                library=library,
                embedder=embedder,
                progress=progress,
                notify=notify,
            )
            report.fetches.append(fetched)
            if not fetched.complete:
                report.stopped = (
                    "follow: stopped before the digests because the fetch did not complete; "
                    "run it again to catch up"
                )
                return report
    for monday in weeks:
        report.weeks.append(
            _deliver_week(settings, out, state, monday, library, embedder, make_client)
        )
    return report


def _deliver_week(settings, out, state, monday, library, embedder, make_client) -> WeekOutcome:
    from .deliver import FeedEntry, build_feed, send_digest, write_week
    from .digest import build_digest, render_html, render_markdown
    from .fetch.inbox import write_atomic

    name = week_name(monday)
    record = state["weeks"].setdefault(name, {})
    outcome = WeekOutcome(name)
    if record.get("done"):
        outcome.skipped = True
        return outcome
    digest = None
    if not record.get("digest"):
        client = make_client() if make_client else None
        digest = build_digest(settings, library, embedder, client, monday, monday + timedelta(6))
        if not digest.themes:
            record.update({"digest": "empty", "done": True})
            save_state(out, state)
            outcome.empty = True
            return outcome
        markdown, html = render_markdown(digest), render_html(digest)
        md_path, html_path = write_week(out, name, markdown, html)
        record.update(
            {
                "digest": True,
                "papers": len(digest.papers),
                "themes": len(digest.named),
                "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )
        save_state(out, state)
        outcome.written = [str(md_path), str(html_path)]
    elif record.get("digest") == "empty":
        outcome.empty = True
        return outcome
    outcome.papers = int(record.get("papers", 0))
    if not record.get("feed"):
        record["feed"] = True
        entries = [
            FeedEntry(
                week=w,
                title=f"Paper digest {w}: {r.get('papers', 0)} papers, {r.get('themes', 0)} themes",
                summary=f"The papers of {w}, grouped by theme and compared.",
                html_file=f"{w}.html",
                updated=datetime.fromisoformat(r["updated"]),
                content_html=(out / f"{w}.html").read_text(encoding="utf-8")
                if (out / f"{w}.html").is_file()
                else "",
            )
            for w, r in sorted(state["weeks"].items())
            if r.get("feed") and r.get("updated")
        ]
        write_atomic(out / "feed.xml", build_feed(out, entries).encode("utf-8"))
        save_state(out, state)
        outcome.feed = True
    recipients = [r.strip() for r in (settings.follow_to or "").split(",") if r.strip()]
    if settings.smtp_url and recipients and not record.get("mailed"):
        text = (out / f"{name}.md").read_text(encoding="utf-8")
        html = (out / f"{name}.html").read_text(encoding="utf-8")
        subject = f"Paper digest {name}: {outcome.papers} papers"
        record["message_id"] = send_digest(
            settings.smtp_url, settings.smtp_from, recipients, subject, text, html
        )
        record["mailed"] = True
        save_state(out, state)
        outcome.mailed = True
    record["done"] = True
    save_state(out, state)
    return outcome
