"""`assistant ask`: one cited answer from the library, saved as a chat session."""

from __future__ import annotations

import contextlib
import sys
from datetime import date

import click

from ..chat import DEFAULT_K, MAX_K
from ..errors import AssistantError, UsageError
from ..safe_text import safe_text, safe_url
from .common import (
    CONTEXT,
    SESSION_ID,
    TEXT,
    emit_json,
    escape,
    filter_options,
    model_settings,
    rich_console,
    settings_of,
)

# A question is a sentence or a paragraph; this bounds what `cat big-file | assistant ask` reads.
MAX_QUESTION_CHARS = 20_000


@click.command(context_settings=CONTEXT)
@click.argument("question", required=False, type=TEXT)
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
    type=SESSION_ID,
    metavar="ID",
    help="Continue this session (see `assistant sessions list`).",
)
@click.option(
    "--k",
    "k",
    default=DEFAULT_K,
    show_default=True,
    type=click.IntRange(1, MAX_K),
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
    question = _question_from(question)
    if continue_ and session_id is not None:
        raise UsageError("--continue and --session exclude each other")
    settings = settings_of(ctx)
    store, session = _ask_session(settings, continue_, session_id)
    with store:
        # Start the bundled server (if it comes to that) first: it loads while chromadb does.
        settings, endpoint = model_settings(ctx, wait=False)
        from ..chat.conversation import Conversation
        from ..chat.service import ChatService, TurnSettings
        from ..llm import StreamInterrupted

        # A one-turn conversation: answered, condensed against the session's earlier
        # questions and stored exactly as the chat does it.
        service = ChatService(settings)
        chat = Conversation(store, service)
        if session is not None:
            chat.open(session.id)
        service.set_model((model if endpoint.how == "configured" else None) or settings.model)
        service.turn = TurnSettings(k, since, until, author, title_kw)
        try:
            service.load()
            service.wait_ready()
            endpoint.wait_ready()
            turn = _begin(chat, question)
            # Streamed unless --no-stream, shown live only on a terminal: a stream cut
            # mid-answer still hands back what arrived, which a whole reply cannot.
            live = not (as_json or no_stream) and sys.stdout.isatty()
            console = rich_console()
            try:
                if live:
                    with streaming_view(console) as on_token:
                        answer = _answer(chat, service, turn, question, on_token, True)
                else:
                    answer = _answer(chat, service, turn, question, None, not no_stream)
            except StreamInterrupted as exc:
                _print_partial(console, question, exc, as_json)
                raise  # its one line goes to stderr from the root group, exit 1
            saved = _commit(chat, turn, answer)
            capped = service.client().capped_replies
        finally:
            service.close()
    if as_json:
        emit_json({**answer.to_dict(), "session_id": saved})
    else:
        _print_answer(console, answer)
    if capped:
        from ..llm import MAX_REPLY_CHARS

        click.echo(
            f"note: the model's reply ran past {MAX_REPLY_CHARS:,} characters; only the "
            "first ones were kept and checked",
            err=True,
        )
    if saved is None:
        ctx.exit(1)


def _begin(chat, question: str):
    """Store the question (a new session is made with it); None, with a warning, when the
    sessions database refuses: the question is still answered, without its history."""
    import sqlite3

    try:
        return chat.begin(question)
    except (AssistantError, sqlite3.Error, OSError) as exc:
        click.echo(
            f"warning: the answer will not be saved to the sessions database: {exc}", err=True
        )
        return None


def _answer(chat, service, turn, question: str, on_token, stream: bool):
    """Answer the turn; a question that fails (or is interrupted) is not left stored."""
    if turn is None:
        return service.answer(question, [], on_token=on_token, stream=stream)
    try:
        return chat.stream(turn, on_token=on_token, stream=stream)
    except BaseException:
        chat.fail(turn)
        raise


def _commit(chat, turn, answer) -> int | None:
    """Store the answer as the chat stores one; the session id, or None (with a warning:
    the answer is still printed) when the sessions database refuses."""
    import sqlite3

    if turn is None:
        return None
    try:
        chat.commit(turn, answer)
        return turn.session_id
    except (AssistantError, sqlite3.Error, OSError) as exc:
        click.echo(f"warning: the answer was not saved to the sessions database: {exc}", err=True)
        return None


class StreamTail:
    """The last lines of a reply still streaming, never taller than the screen.

    The checked answer replaces the streamed words when they end, and what the
    check removed must not stay visible. A live region can only erase rows
    still on the screen: a reply taller than the screen scrolls its first lines
    into the scrollback, out of reach, so only the tail that fits is ever drawn.
    """

    def __init__(self) -> None:
        self.text = ""

    def append(self, piece: str) -> None:
        self.text += piece

    def __rich_console__(self, console, options):
        from rich.text import Text

        from ..safe_text import safe_text

        rows = max(1, min(12, options.size.height - 2, console.height - 2))
        tail = safe_text(self.text[-(rows * options.max_width + 1) :])
        lines = Text(tail, no_wrap=False).wrap(console, options.max_width)
        yield Text("\n").join(lines[-rows:])


@contextlib.contextmanager
def streaming_view(console):
    """A transient live region that shows a streaming reply's last lines: `on_token`
    appends a piece; on leaving, the region is erased whole (see `StreamTail`)."""
    from rich.live import Live

    tail = StreamTail()
    with Live(
        tail,
        console=console,
        transient=True,
        refresh_per_second=12,
        vertical_overflow="crop",
    ):

        def on_token(piece: str) -> None:
            tail.append(piece)  # the live region redraws it (12 times a second)

        yield on_token


def _question_from(question: str | None) -> str:
    """The question from the argument, else from piped stdin (never waits on a terminal)."""
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
    from ..sessions import SessionStore

    store = SessionStore.open(settings.home)
    try:
        if session_id is not None:
            return store, store.get_session(session_id)
        return store, store.latest_session() if continue_ else None
    except BaseException:  # anything, Ctrl-C included, must not leak the open store
        store.close()
        raise


def _print_partial(console, question: str, exc, as_json: bool) -> None:
    """What arrived before a stream broke, kept where the user can read it.

    The live view is transient (the checked answer normally replaces it), so
    the partial text is printed again once it has gone, marked as cut off.
    """
    from ..llm import strip_think

    text = strip_think(exc.partial or "").strip()
    if as_json:
        emit_json(
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
        console.print(safe_text(text), markup=False, highlight=False, soft_wrap=True)
        console.print(
            "[yellow](cut off: the answer above is incomplete and its citations "
            "were not checked)[/yellow]"
        )


def _print_answer(console, answer) -> None:
    """Prose (supported sentences only), then each paper's verbatim evidence, then sources."""
    console.print(safe_text(answer.text), markup=False, highlight=False, soft_wrap=True)
    if answer.abstained:
        return
    if answer.evidence:
        console.print()
        console.print("[b]Evidence[/b]")
        for source, quotes in answer.evidence_by_source():
            console.print(f"[{source.n}] [i]{escape(source.title)}[/i]", soft_wrap=True)
            for quote in quotes:
                console.print(f"    “{escape(quote.text)}”", soft_wrap=True, highlight=False)
    console.print()
    console.print("[b]Sources[/b]")
    for source in answer.cited_sources:
        when = source.published.isoformat() if source.published else "undated"
        url = safe_url(source.url)
        link = f"  {escape(url)}" if url else ""
        console.print(f"[{source.n}] {escape(source.title)} ({when}){link}", soft_wrap=True)
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
