"""`assistant chat` and `assistant sessions list|show|export|delete|repair`.

Imported at start-up (`assistant --help`), so nothing heavy at module level:
`sessions` needs only `assistant.sessions` (sqlite3), and Textual loads only
inside `chat`.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from ..safe_text import safe_line
from .common import (
    CONTEXT,
    SESSION_ID,
    TEXT,
    echo_safe,
    emit_json,
    model_settings,
    settings_of,
)


def _store(settings):
    from ..sessions import SessionStore

    return SessionStore.open(settings.home)


@click.command(context_settings=CONTEXT)
@click.option(
    "--session",
    "session_id",
    type=SESSION_ID,
    metavar="ID",
    help="Resume this session (see `assistant sessions list`).",
)
@click.option("--new", "new", is_flag=True, help="Start a new session.")
@click.option("--model", help="Chat model name [env: ASSISTANT_MODEL].")
@click.pass_context
def chat(ctx: click.Context, session_id: int | None, new: bool, model: str | None) -> None:
    """Chat with the library in the terminal: sessions, streamed cited answers, sources.

    Without --session or --new, the most recent session is resumed. F1 in the
    chat lists the keys; /help the commands (/since, /until, /k, /model,
    /digest, /export).
    """
    if session_id is not None and new:
        raise UsageError("--session and --new exclude each other")
    settings = model_settings(ctx)[0]
    if model:
        settings = settings.with_(model=model)
    with _store(settings) as store:
        # A damaged file fails here as one line, not as a crash half-way through the chat.
        store.check()
        if session_id is not None:
            store.get_session(session_id)  # a wrong id fails here, before the screen opens
    from ..tui.app import ChatApp

    app = ChatApp(settings, session_id=session_id, new=new)
    app.run()
    if app.fatal_error is not None:
        raise app.fatal_error  # one line from the root group, with the error's exit code
    if app.return_code:
        ctx.exit(app.return_code)  # the app crashed (Textual printed why): never exit 0


@click.group(context_settings=CONTEXT)
def sessions() -> None:
    """List, show, export, delete or repair chat sessions (ASSISTANT_HOME/sessions.db)."""


@sessions.command("list", context_settings=CONTEXT)
@click.option(
    "--search",
    metavar="TEXT",
    type=TEXT,
    help="Only sessions whose title or one message holds every word of TEXT (or words "
    "starting with it), best match first, each with its matching passage.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def list_sessions(ctx: click.Context, search: str | None, as_json: bool) -> None:
    """Sessions, most recently used first."""
    with _store(settings_of(ctx)) as store:
        found = store.list_sessions(search=search)
        if search and store.search_notice:
            click.echo(store.search_notice, err=True)
    if as_json:
        emit_json({"sessions": [s.to_dict() for s in found]})
        return
    if not found:
        echo_safe("No sessions." if not search else f"No session matches {search!r}.")
        return
    click.echo(f"{'id':>4}  {'last used':16}  {'msgs':>4}  title")
    for s in found:
        echo_safe(
            f"{s.id:>4}  {s.updated[:16].replace('T', ' '):16}  {s.message_count:>4}  "
            + safe_line(s.title)
        )
        if s.snippet:  # a search's best match, its words in bold on a terminal
            from ..sessions.search import highlight_parts

            parts = highlight_parts(s.snippet)
            click.echo(" " * 30 + "".join(click.style(t, bold=True) if h else t for t, h in parts))


@sessions.command("show", context_settings=CONTEXT)
@click.argument("session_id", type=SESSION_ID, metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def show_session(ctx: click.Context, session_id: int, as_json: bool) -> None:
    """Print session ID as Markdown (with --json: every message, citations and sources)."""
    from ..sessions.export import render_markdown

    with _store(settings_of(ctx)) as store:
        session = store.get_session(session_id)
        messages = store.messages(session_id)
    text = render_markdown(session, messages)
    if as_json:
        emit_json({"session": session.to_dict(), "messages": [m.to_dict() for m in messages]})
    else:
        echo_safe(text)


@sessions.command("export", context_settings=CONTEXT)
@click.argument("session_id", type=SESSION_ID, metavar="ID")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write here instead of ASSISTANT_HOME/exports/.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing --output file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def export_session(
    ctx: click.Context, session_id: int, output: Path | None, force: bool, as_json: bool
) -> None:
    """Write session ID as Markdown with its references; prints the file's path."""
    settings = settings_of(ctx)
    if output is not None and output.is_dir():
        raise UsageError(f"{safe_line(str(output))} is a folder; give a file name")
    if output is not None and output.exists() and not force:
        raise UsageError(
            f"{safe_line(str(output))} exists; use --force to overwrite it or -o for another file"
        )
    from ..sessions.export import export_markdown, write_export

    with _store(settings) as store:
        if output is None:
            path = write_export(store, session_id, settings.home / "exports")
        else:
            text = export_markdown(store, session_id)
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
                output.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write {safe_line(str(output))}: {exc.strerror}") from None
            path = output
    if as_json:
        emit_json({"session": session_id, "path": str(path)})
    else:
        echo_safe(str(path))


@sessions.command("delete", context_settings=CONTEXT)
@click.argument("session_ids", type=SESSION_ID, nargs=-1, required=True, metavar="ID...")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def delete_session(ctx: click.Context, session_ids: tuple[int, ...], as_json: bool) -> None:
    """Delete the sessions (and their messages) with these ids."""
    with _store(settings_of(ctx)) as store:
        for session_id in session_ids:
            store.get_session(session_id)  # all exist, or nothing is deleted
        for session_id in session_ids:
            store.delete_session(session_id)
    if as_json:
        emit_json({"deleted": list(session_ids)})
    else:
        click.echo(f"deleted {len(session_ids)} session(s)")


@sessions.command("repair", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def repair_sessions(ctx: click.Context, as_json: bool) -> None:
    """Move a damaged sessions.db aside and start a fresh one with what can still be read.

    The damaged file is renamed (sessions.db.damaged-TIMESTAMP beside it), never
    changed. A sound file is left alone. Close any running chat first.
    """
    from ..sessions.repair import repair

    report = repair(settings_of(ctx).home)
    if as_json:
        emit_json(report.to_dict())
        return
    if not report.damaged:
        what = "is not damaged" if report.path.exists() else "does not exist yet"
        click.echo(f"{report.path} {what}: nothing to repair")
        return
    click.echo(f"{report.path} was damaged ({report.problem})")
    click.echo(f"moved it to {report.moved_to}")
    click.echo(
        f"started a fresh {report.path.name} with {report.sessions} session(s) and "
        f"{report.messages} message(s) recovered from it"
    )
    if not report.complete:
        click.echo(f"some rows could not be read; whatever is left of them is in {report.moved_to}")
