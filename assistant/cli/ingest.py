"""`assistant ingest`: add papers from files or folders to the library."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import Interrupted
from .common import (
    CONTEXT,
    emit_json,
    escape,
    progress,
    rich_console,
    settings_of,
    short_path,
    terminate_as_interrupt,
)


@click.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["hf-page", "jsonl", "csv", "arxiv-atom", "arxiv-snapshot", "hf-api"]),
    help="Read every file as this format instead of detecting it.",
)
@click.option(
    "--page-year",
    type=click.IntRange(1, 9999),
    help="Year of the Daily Papers pages (default: the latest "
    "year that puts the page date on or before today).",
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="OURS=THEIRS",
    help="JSONL/CSV: read our field from another column, e.g. --field abstract=summary "
    "(repeatable; ours: title, abstract, authors, published, arxiv_id, url, upvotes).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def ingest(
    ctx: click.Context,
    paths: tuple[Path, ...],
    fmt: str | None,
    page_year: int | None,
    fields: tuple[str, ...],
    as_json: bool,
) -> None:
    """Add papers from PATHS (files or folders) to the library.

    With no PATHS, ingests the bundled sample corpus. Unchanged papers are
    skipped, changed abstracts replace the old chunks. Exit 1 when some
    records failed (the good ones are stored).
    """
    from ..ingest import ingest as run_ingest

    settings = settings_of(ctx)
    field_map = parse_fields(fields)
    terminate_as_interrupt()
    progress_cb, finish = progress("Embedding papers", enabled=not as_json)
    try:
        report = run_ingest(
            list(paths),
            settings,
            fmt=fmt,
            page_year=page_year,
            progress=progress_cb,
            notify=lambda msg: click.echo(msg, err=True),
            field_map=field_map,
        )
    except KeyboardInterrupt:  # outside the writes (reading, loading the embedder, indexing)
        raise Interrupted(
            "interrupted: every paper in the library is stored whole (a paper is written "
            "with all its chunks or not at all); run the same command again to finish"
        ) from None
    finally:
        finish()
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_ingest(report)
    if report.interrupted:
        raise Interrupted(
            f"interrupted: {report.added + report.updated} papers were stored, "
            f"{report.not_stored} not yet; what was written is consistent; run the "
            "same command again to finish"
        )
    ctx.exit(report.exit_code)


def parse_fields(pairs: tuple[str, ...]) -> dict[str, str]:
    """`--field abstract=summary` -> {"abstract": "summary"}; a malformed pair is a usage error."""
    from ..errors import UsageError

    mapping: dict[str, str] = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise UsageError(f"--field {pair!r}: expected OURS=THEIRS, e.g. abstract=summary")
        mapping[ours.strip().lower()] = theirs.strip().lower()
    return mapping


def _print_ingest(report) -> None:
    from rich.table import Table

    console = rich_console()
    table = Table(title="Ingest", title_justify="left")
    for col in ("file", "read", "added", "updated", "unchanged", "duplicate", "failed"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for f in report.files:
        table.add_row(
            short_path(f.source),
            str(f.read),
            str(f.added),
            str(f.updated),
            str(f.unchanged),
            str(f.duplicates),
            str(f.failed),
        )
    table.add_row(
        "[b]papers[/b]",
        "",
        str(report.added),
        str(report.updated),
        str(report.unchanged),
        "",
        str(len(report.failures)),
    )
    console.print(table)
    console.print(
        f"library: {report.total_papers} papers, {report.total_chunks} chunks "
        f"({report.seconds:.1f} s)"
    )
    for failure in report.failures:
        where = f"{failure.source}:{failure.line}" if failure.line else failure.source
        console.print(
            f"[red]failed[/red] {escape(where)}: {escape(failure.reason)}", soft_wrap=True
        )
    for warning in report.warnings:
        where = f"{warning.source}:{warning.line}" if warning.line else warning.source
        console.print(
            f"[yellow]warning[/yellow] {escape(where)}: {escape(warning.reason)}", soft_wrap=True
        )
