"""Which days a fetch covers: `--date`, `--week 2026-W07`, `--since/--until`."""

from __future__ import annotations

import re
from datetime import date, timedelta

from ..errors import UsageError

_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.I)


def week_days(text: str) -> tuple[date, date]:
    """Monday and Sunday of an ISO week written `2026-W07`."""
    match = _WEEK.match(text.strip())
    if not match:
        raise UsageError(f"--week {text!r}: expected an ISO week such as 2026-W07")
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise UsageError(f"--week {text!r}: no such ISO week") from None
    return monday, monday + timedelta(days=6)


def week_name(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def span(start: date, end: date) -> list[date]:
    if end < start:
        raise UsageError(f"--since {start} is after --until {end}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def resolve_days(
    on: date | None, week: str | None, since: date | None, until: date | None, today: date
) -> list[date]:
    """The days asked for; with nothing given, yesterday (the last finished day)."""
    given = sum(x is not None for x in (on, week)) + (since is not None or until is not None)
    if given > 1:
        raise UsageError("give one of --date, --week or --since/--until")
    if on is not None:
        return [on]
    if week is not None:
        return span(*week_days(week))
    if since is not None or until is not None:
        start = since or (until or today) - timedelta(days=6)
        return span(start, until or today - timedelta(days=1))
    return [today - timedelta(days=1)]
