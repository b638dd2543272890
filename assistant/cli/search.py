"""`assistant search` and `assistant papers`: the library without a model."""

from __future__ import annotations

from datetime import date

import click

from .common import (
    CONTEXT,
    TEXT,
    clip,
    emit_json,
    escape,
    filter_options,
    rich_console,
    settings_of,
    short_path,
)


@click.command(context_settings=CONTEXT)
@click.argument("query", type=TEXT)
@click.option(
    "--k", "k", default=10, show_default=True, type=click.IntRange(1, 200), help="How many papers."
)
@filter_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def search(
    ctx: click.Context,
    query: str,
    k: int,
    since: date | None,
    until: date | None,
    author: str | None,
    title_kw: str | None,
    as_json: bool,
) -> None:
    """Find papers about QUERY (dense + keyword search, no language model)."""
    from ..retrieve import Filters, open_retriever

    retriever = open_retriever(settings_of(ctx))
    hits = retriever.search(query, k=k, filters=Filters(since, until, author, title_kw))
    if as_json:
        emit_json({"query": query, "results": [h.to_dict() for h in hits]})
        return
    if not hits:
        click.echo(
            "No papers found."
            + ("" if retriever.papers else " The library is empty: run `assistant ingest`.")
        )
        return
    from rich.table import Table

    from ..retrieve import weak_threshold

    # Similarity is the best passage's cosine to the query: unlike the fused RRF
    # score (kept in --json) it says how well a paper matches, on the scale `ask`
    # abstains on, so a query the library knows nothing about looks weak.
    table = Table(show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("title, date", ratio=2)  # the date under the title leaves room for both
    table.add_column("similarity", justify="right")
    table.add_column("passage", ratio=3)
    for h in hits:
        sim = "" if h.similarity is None else f"{h.similarity:.2f}"
        if h.weak:
            sim = f"[dim]{sim}\nweak[/dim]"
        elif h.name_match:
            sim = f"{sim}\nname"
        title = escape(h.title) + (f"\n[dim]{h.published.isoformat()}[/dim]" if h.published else "")
        table.add_row(str(h.rank), title, sim, escape(clip(h.passage, 240)))
    console = rich_console()
    console.print(table)
    notes = []
    if any(h.weak for h in hits):
        notes.append(
            f"weak: best passage similarity below {weak_threshold():.2f}, where `ask` "
            "says the library has nothing on a question"
        )
    if any(h.name_match for h in hits):
        notes.append("name: the query names this paper (never weak)")
    if notes:
        console.print("; ".join(notes))


@click.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def papers(ctx: click.Context, as_json: bool) -> None:
    """What is in the library: counts, date range, sources."""
    from ..library import summarise

    summary = summarise(settings_of(ctx))
    if as_json:
        emit_json(summary)
        return
    from rich.table import Table

    console = rich_console()
    console.print(
        f"[b]{summary['papers']}[/b] papers, {summary['chunks']} chunks in {summary['location']}"
    )
    if summary["papers"]:
        console.print(
            f"published {summary['earliest'] or '?'} … {summary['latest'] or '?'}; "
            f"{summary['undated']} without a date, "
            f"{summary['year_inferred']} with an inferred year"
        )
        console.print(f"embedder: {summary['embedder']}")
        table = Table(title="sources", title_justify="left")
        table.add_column("file")
        table.add_column("papers", justify="right")
        for source, count in summary["sources"].items():
            table.add_row(short_path(source), str(count))
        console.print(table)
    else:
        console.print("The library is empty: run `assistant ingest`.")
