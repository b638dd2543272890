"""`assistant digest`: a window's papers grouped by theme, written to a file."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import click

from ..errors import UsageError
from .common import CONTEXT, DATE, emit_json, model_settings, rich_console, settings_of


@click.command(context_settings=CONTEXT)
@click.option("--week", help="An ISO week, e.g. 2025-W45.")
@click.option("--since", type=DATE, help="First day of the window.")
@click.option("--until", type=DATE, help="Last day of the window (default: today).")
@click.option(
    "--by",
    type=click.Choice(["published", "added"]),
    default="published",
    show_default=True,
    help="Date that places a paper in the window (undated papers count by when they were added).",
)
@click.option("--topic", help="Only papers relevant to this topic.")
@click.option(
    "--max-papers",
    type=click.IntRange(1, 100000),
    help="At most this many papers (most upvoted first).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "json"]),
    default="md",
    show_default=True,
    help="File format to write.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Output file (default: a dated file in ASSISTANT_HOME/digests/).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--model", help="Chat model name [env: ASSISTANT_MODEL].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def digest(
    ctx: click.Context,
    week: str | None,
    since: date | None,
    until: date | None,
    by: str,
    topic: str | None,
    max_papers: int | None,
    fmt: str,
    out: Path | None,
    force: bool,
    model: str | None,
    as_json: bool,
) -> None:
    """Write a digest of a window's papers (default: the last 7 days), grouped by theme.

    Each theme is named from its papers' key phrases and gets a comparison table
    copied from the abstracts (problem, approach, key result) and a few model
    sentences comparing the papers, each shown only if the abstracts it cites
    support it. Papers far from every theme are listed as "Other papers". An
    empty window says so and writes nothing. Cron example in the README.
    """
    from ..digest import (
        build_digest,
        default_output,
        digest_json,
        empty_message,
        render_html,
        render_markdown,
        resolve_window,
    )
    from ..embed import make_embedder
    from ..llm import ModelClient
    from ..store import Library

    settings = settings_of(ctx)
    window = resolve_window(week, since, until)
    if out is not None and out.exists() and not force:  # before any model call, not after
        raise UsageError(f"{out} exists; use --force to overwrite it or --out for another file")
    settings, endpoint = model_settings(ctx, wait=False)  # loads while the library opens
    library = Library.open(settings)
    embedder = make_embedder(settings)
    endpoint.wait_ready()
    client = ModelClient(
        settings, model=(model if endpoint.how == "configured" else None) or settings.model
    )
    result = build_digest(
        settings, library, embedder, client, *window, by=by, topic=topic, max_papers=max_papers
    )
    if not result.themes:
        if as_json:
            emit_json({**digest_json(result), "written": None, "message": empty_message(result)})
        else:
            click.echo(empty_message(result))
        return
    target = out or default_output(settings, result, fmt)
    if target.exists() and not force:
        raise UsageError(f"{target} exists; use --force to overwrite it or --out for another file")
    if fmt == "md":
        content = render_markdown(result)
    elif fmt == "html":
        content = render_html(result)
    else:
        content = json.dumps(digest_json(result), ensure_ascii=False, indent=2)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    if as_json:
        emit_json({**digest_json(result), "written": str(target)})
        return
    others = sum(len(t.papers) for t in result.themes if t.other)
    written = [s for t in result.themes for s in t.prose]
    shown = sum(1 for s in written if not s.reason)
    rich_console().print(
        f"wrote {target}: {len(result.papers)} papers in {len(result.named)} themes"
        + (f" ({len(result.areas)} areas)" if result.areas else "")
        + (f" and {others} other papers" if others else "")
        + f"; {shown} of {len(written)} model sentences passed the support check "
        f"({result.model_calls} model calls)",
        soft_wrap=True,
        markup=False,
    )
