"""The command line: a thin layer over the library API.

Heavy libraries (chromadb, llama-index, the embedding model) are imported
inside the commands that need them, so `--help` and listing commands start
fast. Exit codes: 0 success, 1 some work failed (the rest is done), 2 usage
error, 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from .errors import AssistantError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class DateParam(click.ParamType):
    """YYYY-MM-DD, YYYY-MM (first day) or YYYY (1 January)."""

    name = "DATE"

    def convert(self, value: Any, param: Any, ctx: Any) -> date:
        if isinstance(value, date):
            return value
        text = str(value).strip()
        for fmt in ("%Y-%m-%d", "%Y-%m", "%Y"):
            try:
                return datetime.strptime(text, fmt).date()
            except ValueError:
                continue
        self.fail(f"{text!r} is not a date (use YYYY-MM-DD)", param, ctx)


DATE = DateParam()


def _settings(ctx: click.Context):
    from .settings import Settings

    obj = ctx.find_root().obj
    if "settings" not in obj:
        obj["settings"] = Settings.load(**obj["flags"])
    return obj["settings"]


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


@click.group(context_settings=CONTEXT)
@click.option("--home", type=click.Path(path_type=Path), help="Where the store and everything "
              "else lives [env: ASSISTANT_HOME].")
@click.option("--chroma-url", help="Use a Chroma server instead of the embedded store "
              "[env: ASSISTANT_CHROMA_URL].")
@click.option("--embed-model-dir", type=click.Path(path_type=Path),
              help="Local copy of the embedding model, a folder holding onnx/ "
              "[env: ASSISTANT_EMBED_MODEL_DIR].")
@click.option("--base-url", help="OpenAI-compatible endpoint [env: OPENAI_BASE_URL].")
@click.option("--env-file", type=click.Path(path_type=Path), help="Read settings from this "
              "file instead of ./.env.")
@click.version_option(package_name="paper-assistant")
@click.pass_context
def cli(ctx: click.Context, home, chroma_url, embed_model_dir, base_url, env_file) -> None:
    """A research-paper assistant: ingest ML paper abstracts, search them, ask cited questions.

    Settings come from these flags, then the environment, then a .env file.
    Start with `assistant ingest` (the bundled sample papers) and `assistant search QUERY`.
    """
    ctx.ensure_object(dict)
    ctx.obj["flags"] = {
        "home": home,
        "chroma_url": chroma_url,
        "embed_model_dir": embed_model_dir,
        "base_url": base_url,
        "env_file": env_file,
    }


# -- ingest ---------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(
    ["hf-page", "jsonl", "csv", "arxiv-atom", "arxiv-snapshot", "hf-api"]),
    help="Read every file as this format instead of detecting it.")
@click.option("--page-year", type=int, help="Year of the Daily Papers pages (default: the latest "
              "year that puts the page date on or before today).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...], fmt: str | None, page_year: int | None,
           as_json: bool) -> None:
    """Add papers from PATHS (files or folders) to the library.

    With no PATHS, ingests the bundled sample corpus. Unchanged papers are
    skipped, changed abstracts replace the old chunks. Exit 1 when some
    records failed (the good ones are stored).
    """
    from .ingest import ingest as run_ingest

    settings = _settings(ctx)
    progress_cb, finish = _progress("Embedding papers", enabled=not as_json)
    try:
        report = run_ingest(list(paths), settings, fmt=fmt, page_year=page_year,
                            progress=progress_cb)
    finally:
        finish()
    if as_json:
        _emit_json(report.to_dict())
    else:
        _print_ingest(report)
    if report.interrupted:
        click.echo("interrupted: what was written is consistent; run the same command again "
                   "to finish", err=True)
        ctx.exit(130)
    ctx.exit(report.exit_code)


def _progress(label: str, enabled: bool):
    """A rich progress bar on stderr, only when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=_console(stderr=True), transient=True)
    task = bar.add_task(label, total=None)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar.stop


def _print_ingest(report) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title="Ingest", title_justify="left")
    for col in ("file", "read", "added", "updated", "unchanged", "duplicate", "failed"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for f in report.files:
        table.add_row(_short(f.source), str(f.read), str(f.added), str(f.updated),
                      str(f.unchanged), str(f.duplicates), str(f.failed))
    table.add_row("[b]papers[/b]", "", str(report.added), str(report.updated),
                  str(report.unchanged), "", str(len(report.failures)))
    console.print(table)
    console.print(f"library: {report.total_papers} papers, {report.total_chunks} chunks "
                  f"({report.seconds:.1f} s)")
    for failure in report.failures:
        where = f"{failure.source}:{failure.line}" if failure.line else failure.source
        console.print(f"[red]failed[/red] {where}: {failure.reason}", soft_wrap=True)


def _short(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        parts = Path(path).parts
        return str(Path(*parts[-2:])) if len(parts) > 2 else path


# -- search ---------------------------------------------------------------------


def filter_options(func):
    func = click.option("--title", "title_kw",
                        help="Only papers whose title has these words.")(func)
    func = click.option("--author", help="Only papers whose authors/organisation have these "
                        "words.")(func)
    func = click.option("--until", type=DATE, help="Published on or before this date.")(func)
    func = click.option("--since", type=DATE, help="Published on or after this date.")(func)
    return func


@cli.command(context_settings=CONTEXT)
@click.argument("query")
@click.option("--k", "k", default=10, show_default=True, type=click.IntRange(1, 200),
              help="How many papers.")
@filter_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def search(ctx: click.Context, query: str, k: int, since: date | None, until: date | None,
           author: str | None, title_kw: str | None, as_json: bool) -> None:
    """Find papers about QUERY (dense + keyword search, no language model)."""
    from .retrieve import Filters, open_retriever

    retriever = open_retriever(_settings(ctx))
    hits = retriever.search(query, k=k, filters=Filters(since, until, author, title_kw))
    if as_json:
        _emit_json({"query": query, "results": [h.to_dict() for h in hits]})
        return
    if not hits:
        click.echo("No papers found." + ("" if retriever.papers else
                                          " The library is empty: run `assistant ingest`."))
        return
    from rich.table import Table

    table = Table(show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("title", ratio=2)
    table.add_column("date")
    table.add_column("score", justify="right")
    table.add_column("passage", ratio=3)
    for h in hits:
        table.add_row(str(h.rank), h.title, h.published.isoformat() if h.published else "",
                      f"{h.score:.4f}", _clip(h.passage, 240))
    _console().print(table)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


# -- papers ---------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def papers(ctx: click.Context, as_json: bool) -> None:
    """What is in the library: counts, date range, sources."""
    from .library import summarise

    summary = summarise(_settings(ctx))
    if as_json:
        _emit_json(summary)
        return
    from rich.table import Table

    console = _console()
    console.print(f"[b]{summary['papers']}[/b] papers, {summary['chunks']} chunks "
                  f"in {summary['location']}")
    if summary["papers"]:
        console.print(f"published {summary['earliest'] or '?'} … {summary['latest'] or '?'}; "
                      f"{summary['undated']} without a date, "
                      f"{summary['year_inferred']} with an inferred year")
        console.print(f"embedder: {summary['embedder']}")
        table = Table(title="sources", title_justify="left")
        table.add_column("file")
        table.add_column("papers", justify="right")
        for source, count in summary["sources"].items():
            table.add_row(_short(source), str(count))
        console.print(table)
    else:
        console.print("The library is empty: run `assistant ingest`.")


# -- ask ------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.argument("question")
@click.option("--k", "k", default=4, show_default=True, type=click.IntRange(1, 50),
              help="How many papers to give the model.")
@filter_options
@click.option("--model", help="Chat model name [env: ASSISTANT_MODEL].")
@click.option("--no-stream", is_flag=True, help="Print the answer when it is complete.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def ask(ctx: click.Context, question: str, k: int, since: date | None, until: date | None,
        author: str | None, title_kw: str | None, model: str | None, no_stream: bool,
        as_json: bool) -> None:
    """Answer QUESTION from the library, citing papers by title.

    Says so plainly when the library has nothing on it. Citations marked [n?]
    were not supported by the passage they point at.
    """
    from .answer import ask as run_ask
    from .llm import ModelClient
    from .retrieve import Filters, open_retriever

    settings = _settings(ctx)
    retriever = open_retriever(settings)
    client = ModelClient(settings, model=model or settings.model)
    live = not (as_json or no_stream) and sys.stdout.isatty()
    console = _console()
    answer = None
    if live:
        from rich.live import Live
        from rich.text import Text

        shown = Text()
        # The model's words stream in; the checked answer replaces them at the end.
        with Live(shown, console=console, transient=True, refresh_per_second=12) as view:
            def on_token(piece: str) -> None:
                shown.append(piece)
                view.update(shown)

            answer = run_ask(question, retriever, client, k=k,
                             filters=Filters(since, until, author, title_kw),
                             context_window=settings.context_window, on_token=on_token)
    else:
        answer = run_ask(question, retriever, client, k=k,
                         filters=Filters(since, until, author, title_kw),
                         context_window=settings.context_window, stream=False)
    if as_json:
        _emit_json(answer.to_dict())
        return
    _print_answer(console, answer)


def _print_answer(console, answer) -> None:
    console.print(answer.text, markup=False, highlight=False, soft_wrap=True)
    if answer.abstained:
        return
    console.print()
    console.print("[b]Sources[/b]")
    supported = {c.n: c.supported for c in answer.citations}
    for source in answer.cited_sources:
        when = source.published.isoformat() if source.published else "undated"
        link = f"  {source.url}" if source.url else ""
        mark = "" if supported.get(source.n) else "  [yellow](not supported by its passage)[/]"
        console.print(f"[{source.n}] {_escape(source.title)} ({when}){link}{mark}",
                      soft_wrap=True)
    if not answer.citations:
        console.print("[dim](the answer cites no source)[/dim]")
    notes = []
    if answer.dropped_citations:
        notes.append(f"{answer.dropped_citations} citation(s) to sources that were not given "
                     "were removed")
    if answer.unknown_numbers:
        notes.append("figures found in no source: " + ", ".join(answer.unknown_numbers))
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}", soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


# -- doctor ----------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.option("--model", help="Chat model name [env: ASSISTANT_MODEL].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def doctor(ctx: click.Context, model: str | None, as_json: bool) -> None:
    """Check settings, endpoint, model, embedder and store; exit 0 only if all pass."""
    from .doctor import run_checks

    settings = _settings(ctx)
    if model:
        settings = settings.with_(model=model)
    checks = run_checks(settings)
    ok = all(c.ok for c in checks)
    if as_json:
        _emit_json({"ok": ok, "checks": [c.to_dict() for c in checks]})
    else:
        from rich.table import Table

        table = Table(title="assistant doctor", title_justify="left")
        table.add_column("check")
        table.add_column("verdict")
        table.add_column("detail")
        for c in checks:
            table.add_row(c.name, "[green]ok[/green]" if c.ok else "[red]FAIL[/red]",
                          _escape(c.detail))
        _console().print(table)
    ctx.exit(0 if ok else 1)


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def reindex(ctx: click.Context, as_json: bool) -> None:
    """Re-embed every stored paper with the current embedder (ASSISTANT_EMBEDDER).

    The new index is built beside the old one and replaces it at the end; an
    interrupted reindex leaves the library as it was.
    """
    from .embed import make_embedder
    from .ingest import reindex as run_reindex
    from .store import Library

    settings = _settings(ctx)
    embedder = make_embedder(settings)
    progress_cb, finish = _progress("Re-embedding papers", enabled=not as_json)
    try:
        count = run_reindex(settings, Library.open(settings), embedder, progress=progress_cb)
    finally:
        finish()
    if as_json:
        _emit_json({"papers": count, "embedder": embedder.name, "dim": embedder.dim})
    else:
        click.echo(f"re-embedded {count} papers with {embedder.name} ({embedder.dim} dims)")


# -- digest ---------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.option("--week", help="An ISO week, e.g. 2025-W45.")
@click.option("--since", type=DATE, help="First day of the window.")
@click.option("--until", type=DATE, help="Last day of the window (default: today).")
@click.option("--by", type=click.Choice(["published", "added"]), default="published",
              show_default=True, help="Date that places a paper in the window (undated papers "
              "count by when they were added).")
@click.option("--topic", help="Only papers relevant to this topic.")
@click.option("--max-papers", type=click.IntRange(1, 100000), help="At most this many papers "
              "(most upvoted first).")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md",
              show_default=True, help="File format to write.")
@click.option("--out", type=click.Path(path_type=Path), help="Output file (default: a dated "
              "file in ASSISTANT_HOME/digests/).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--model", help="Chat model name [env: ASSISTANT_MODEL].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def digest(ctx: click.Context, week: str | None, since: date | None, until: date | None, by: str,
           topic: str | None, max_papers: int | None, fmt: str, out: Path | None, force: bool,
           model: str | None, as_json: bool) -> None:
    """Write a digest of a window's papers (default: the last 7 days), grouped by theme.

    Each theme is named from its papers' key phrases and gets a comparison table
    copied from the abstracts (problem, approach, key result) and a few model
    sentences comparing the papers, each shown only if the abstracts it cites
    support it. Papers far from every theme are listed as "Other papers". An
    empty window says so and writes nothing. Cron example in the README.
    """
    from .digest import build_digest, default_output, render_html, resolve_window
    from .embed import make_embedder
    from .llm import ModelClient
    from .store import Library

    settings = _settings(ctx)
    window = resolve_window(week, since, until)
    library = Library.open(settings)
    client = ModelClient(settings, model=model or settings.model)
    result = build_digest(settings, library, make_embedder(settings), client, *window, by=by,
                          topic=topic, max_papers=max_papers)
    if not result.themes:
        from .digest import empty_message

        if as_json:
            _emit_json({**result.to_dict(), "written": None, "message": empty_message(result)})
        else:
            click.echo(empty_message(result))
        return
    target = out or default_output(settings, result, fmt)
    if target.exists() and not force:
        from .errors import UsageError

        raise UsageError(f"{target} exists; use --force to overwrite it or --out for another "
                         "file")
    markdown = result.markdown
    if fmt == "md":
        content = markdown
    elif fmt == "html":
        content = render_html(result)
    else:
        content = json.dumps(result.to_dict(), ensure_ascii=False, indent=2)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    if as_json:
        _emit_json({**result.to_dict(), "written": str(target)})
        return
    others = sum(len(t.papers) for t in result.themes if t.other)
    written = [s for t in result.themes for s in t.prose]
    shown = sum(1 for s in written if not s.reason)
    _console().print(f"wrote {target}: {len(result.papers)} papers in {len(result.named)} themes"
                     + (f" and {others} other papers" if others else "")
                     + f"; {shown} of {len(written)} model sentences passed the support check "
                     f"({result.model_calls} model calls)", soft_wrap=True, markup=False)


# -- commands defined beside the features they drive (imported lazily inside) ------
# Each module below keeps its heavy imports inside its command functions.
# (one `cli.add_command(...)` line per command, added by the module's author)
from .tui.commands import chat, sessions  # noqa: E402

cli.add_command(chat)
cli.add_command(sessions)
from .evaluation.commands import eval_group  # noqa: E402

cli.add_command(eval_group, name="eval")


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors for the user's mistakes, no tracebacks."""
    try:
        result = cli.main(args=argv, prog_name="assistant", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except AssistantError as exc:
        click.echo(f"Error: {exc}", err=True)
        return exc.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
