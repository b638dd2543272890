"""`assistant reindex`: re-embed every stored paper with the current embedder."""

from __future__ import annotations

import click

from ..errors import Interrupted
from .common import CONTEXT, emit_json, progress, settings_of, terminate_as_interrupt


@click.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def reindex(ctx: click.Context, as_json: bool) -> None:
    """Re-embed every stored paper with the current embedder (ASSISTANT_EMBEDDER).

    The new index is built beside the old one and replaces it at the end; an
    interrupted reindex leaves the library as it was.
    """
    from ..embed import make_embedder
    from ..ingest import reindex as run_reindex
    from ..store import Library

    settings = settings_of(ctx)
    terminate_as_interrupt()
    progress_cb, finish = progress("Re-embedding papers", enabled=not as_json)
    try:
        embedder = make_embedder(settings)
        count = run_reindex(
            settings,
            Library.open(settings),
            embedder,
            progress=progress_cb,
            notify=lambda msg: click.echo(msg, err=True),
        )
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted: no paper is lost (the library is the old one until the new "
            "index is complete, and the next command finishes a swap that was under "
            "way); run `assistant reindex` again to re-embed"
        ) from None
    finally:  # the bar goes before any line is printed
        finish()
    if as_json:
        emit_json({"papers": count, "embedder": embedder.name, "dim": embedder.dim})
    else:
        click.echo(f"re-embedded {count} papers with {embedder.name} ({embedder.dim} dims)")
