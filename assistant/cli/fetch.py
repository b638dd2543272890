"""`assistant fetch hf|arxiv`: each day's papers into ASSISTANT_HOME/inbox, then the library."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date

import click

from ..errors import Interrupted
from .common import (
    CONTEXT,
    DATE,
    emit_json,
    progress,
    rich_console,
    settings_of,
    terminate_as_interrupt,
)


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM (cron's kill, systemd's stop) ends a fetch as Ctrl-C does: cleanly, with its line."""
    terminate_as_interrupt()
    yield


def day_progress(enabled: bool):
    """The shared bar, relabelled per source and day: (update(label, done, total), stop)."""
    update, stop = progress("fetching", enabled)
    if update is None:
        return None, stop
    return (lambda label, done, total: update(done, total, label)), stop


def window_options(func):
    func = click.option("--until", type=DATE, help="Last day (default: yesterday).")(func)
    func = click.option("--since", type=DATE, help="First day.")(func)
    func = click.option("--week", help="An ISO week, e.g. 2026-W07.")(func)
    func = click.option("--date", "on", type=DATE, help="One day.")(func)
    return func


def run_and_report(ctx, source, categories, on, week, since, until, refresh, as_json) -> None:
    from ..fetch import run_fetch
    from ..fetch.days import resolve_days

    settings = settings_of(ctx)
    today = date.today()
    days = resolve_days(on, week, since, until, today)
    update, stop = day_progress(not as_json)
    notify = (lambda msg: click.echo(msg, err=True)) if not as_json else None
    try:
        with sigterm_as_interrupt():
            report = run_fetch(
                settings,
                source,
                days,
                categories,
                refresh=refresh,
                today=today,
                progress=update,
                notify=notify,
            )
    finally:
        stop()
    if as_json:
        emit_json(report.to_dict())
    else:
        console = rich_console()
        console.print(report.line(), soft_wrap=True, markup=False)
        if report.ingest:
            for failure in report.ingest.failures:
                where = f"{failure.source}:{failure.line}" if failure.line else failure.source
                console.print(f"failed {where}: {failure.reason}", soft_wrap=True, markup=False)
    if report.interrupted and not as_json:
        raise Interrupted("interrupted (see the line above)")
    ctx.exit(report.exit_code)


@click.group(context_settings=CONTEXT)
def fetch() -> None:
    """Fetch each day's papers into ASSISTANT_HOME/inbox and ingest them.

    Every response is kept verbatim (inbox/hf/DAY.json, inbox/arxiv/CATEGORY/DAY.xml);
    a finished day already there is not asked for again unless --refresh, and
    `assistant ingest ASSISTANT_HOME/inbox` rebuilds the library from it offline.
    """


@fetch.command(context_settings=CONTEXT)
@window_options
@click.option("--refresh", is_flag=True, help="Ask again for days already in the inbox.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def hf(ctx, on, week, since, until, refresh, as_json) -> None:
    """Hugging Face Daily Papers (ASSISTANT_HF_URL/api/daily_papers), one request per day."""
    run_and_report(ctx, "hf", None, on, week, since, until, refresh, as_json)


@fetch.command(context_settings=CONTEXT)
@click.option(
    "--category",
    "categories",
    required=True,
    help="arXiv categories, comma-separated (e.g. cs.CL,cs.LG).",
)
@window_options
@click.option("--refresh", is_flag=True, help="Ask again for days already in the inbox.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def arxiv(ctx, categories, on, week, since, until, refresh, as_json) -> None:
    """arXiv's API (ASSISTANT_ARXIV_URL/api/query): each category's submissions per day,
    paged, one request every ASSISTANT_ARXIV_DELAY seconds (3, as arXiv asks)."""
    names = [c.strip() for c in categories.split(",") if c.strip()]
    run_and_report(ctx, "arxiv", names, on, week, since, until, refresh, as_json)
