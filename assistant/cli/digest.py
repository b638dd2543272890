"""`assistant digest`: a window's papers grouped by theme, written to a file."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import click

from ..errors import AssistantError, Interrupted, UsageError
from ..safe_text import safe_line, safe_text
from .common import (
    CONTEXT,
    DATE,
    TEXT,
    emit_json,
    model_settings,
    rich_console,
    settings_of,
    terminate_as_interrupt,
)


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
@click.option("--topic", type=TEXT, help="Only papers relevant to this topic.")
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
    from ..retrieve import DATE_RANGE

    try:
        window = resolve_window(week, since, until)
    except (OverflowError, ValueError):
        window = None
    if window is None or not all(DATE_RANGE[0] <= day <= DATE_RANGE[1] for day in window):
        raise UsageError(
            f"the digest window must lie between {DATE_RANGE[0].isoformat()} and "
            f"{DATE_RANGE[1].isoformat()}"
        )
    if out is not None:  # before any model call, not after
        check_output(out, force)
    terminate_as_interrupt()
    try:
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
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted: no digest was written and the library is unchanged; run the same "
            "command again to write it"
        ) from None
    if not result.themes:
        if as_json:
            emit_json({**digest_json(result), "written": None, "message": empty_message(result)})
        else:
            click.echo(empty_message(result))
        return
    target = out or default_output(settings, result, fmt)
    check_output(target, force)
    if fmt == "md":
        content = render_markdown(result)
    elif fmt == "html":
        content = render_html(result)
    else:
        content = json.dumps(digest_json(result), ensure_ascii=False, indent=2)
    write_output(target, safe_text(content))
    if as_json:
        emit_json({**digest_json(result), "written": str(target)})
        return
    others = sum(len(t.papers) for t in result.themes if t.other)
    written = [s for t in result.themes for s in t.prose]
    shown = sum(1 for s in written if not s.reason)
    rich_console().print(
        f"wrote {safe_line(str(target))}: {len(result.papers)} papers in {len(result.named)} themes"
        + (f" ({len(result.areas)} areas)" if result.areas else "")
        + (f" and {others} other papers" if others else "")
        + f"; {shown} of {len(written)} model sentences passed the support check "
        f"({result.model_calls} model calls)",
        soft_wrap=True,
        markup=False,
    )


def check_output(target: Path, force: bool) -> None:
    """Refuse, before any model call, a file the digest could not be written to: one that
    exists (without --force), a folder, a device or pipe (/dev/full), or one under a
    folder that is missing and cannot be made, or is not writable."""
    import os

    shown = safe_line(str(target))
    if target.is_dir():
        raise UsageError(f"--out {shown} is a folder; give a file name")
    if target.exists():
        if not target.is_file():
            raise UsageError(f"--out {shown} is not a regular file")
        if not force:
            raise UsageError(
                f"{shown} exists; use --force to overwrite it or --out for another file"
            )
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--out {shown}: {safe_line(str(parent))} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {shown}: the folder {safe_line(str(parent))} is not writable")


def write_output(target: Path, content: str) -> None:
    """Write the digest whole (a temporary file beside it, then renamed): a failed write
    (disk full) leaves no half file and ends as one line, not a traceback."""
    import os
    import tempfile

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            umask = os.umask(0o022)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would have made it
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise AssistantError(
            f"cannot write the digest to {safe_line(str(target))}: {exc.strerror or exc}"
        ) from None
