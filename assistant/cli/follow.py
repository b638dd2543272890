"""`assistant follow`: fetch, ingest, digest each finished week, deliver (for cron or a timer)."""

from __future__ import annotations

import click

from ..errors import Interrupted
from .common import CONTEXT, DATE, emit_json, model_settings, rich_console, settings_of
from .fetch import day_progress, sigterm_as_interrupt


@click.command(context_settings=CONTEXT)
@click.option("--no-fetch", is_flag=True, help="Digest and deliver from what is already stored.")
@click.option("--today", type=DATE, hidden=True, help="Run as if on this day (tests, replays).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def follow(ctx: click.Context, no_fetch: bool, today, as_json: bool) -> None:
    """Fetch the days that matter, then write and deliver the digest of each finished week.

    Safe to run twice (nothing is written or sent twice) and safe to run late
    (missed weeks each get their digest). Output: ASSISTANT_FOLLOW_OUT (default
    ASSISTANT_HOME/follow) with WEEK.md, WEEK.html and feed.xml; e-mail when
    ASSISTANT_SMTP_URL and ASSISTANT_FOLLOW_TO are set. Cron and systemd examples
    in the README.
    """
    from ..follow import run_follow
    from ..llm import ModelClient

    settings = settings_of(ctx)

    def make_client():
        model_cfg, endpoint = model_settings(ctx)
        return ModelClient(model_cfg, model=model_cfg.model)

    update, stop = day_progress(not as_json)
    notify = (lambda msg: click.echo(msg, err=True)) if not as_json else None
    try:
        with sigterm_as_interrupt():
            report = run_follow(
                settings,
                today=today,
                make_client=make_client,
                progress=update,
                notify=notify,
                fetch=not no_fetch,
            )
    finally:
        stop()
    if as_json:
        emit_json(report.to_dict())
    else:
        console = rich_console()
        for line in report.lines():
            console.print(line, soft_wrap=True, markup=False)
    if report.exit_code == 130 and not as_json:
        raise Interrupted("interrupted (see the lines above)")
    ctx.exit(report.exit_code)
