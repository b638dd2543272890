"""The terminal chat: sessions on the left, the conversation, sources on the right.

Start-up does nothing slow before the first frame: the library (chromadb,
the embedder, the keyword index) opens in a thread worker after mount, and
the input has focus at once. A question sent before loading finishes waits
for it inside its worker. Every model call runs in a thread worker (the
client is synchronous) and streams into a `Markdown` widget; any failure is
written into the conversation with what to do, the question goes back into
the input, and the app keeps running.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, OptionList, Static

from ..chat.conversation import Conversation, PendingTurn, copy_text
from ..chat.service import COMMANDS, ChatService, Command, display_url, parse_command
from ..errors import AssistantError, UsageError
from ..safe_text import safe_line
from ..sessions import Message, SessionStore
from .keymap import load_keymap
from .screens import AbstractScreen, ConfirmScreen, HelpScreen, RenameScreen, binding_rows
from .widgets import (
    MessageLog,
    MessageView,
    SessionList,
    SourcesPanel,
    StatusBar,
    StreamingMessage,
)

if TYPE_CHECKING:
    from ..answer import Answer
    from ..settings import Settings

RECENT_MESSAGES = 50  # mounted when a session opens
EARLIER_PAGE = 50  # mounted per "load earlier"
DOCTOR_HINT = "Run `assistant doctor` to check the endpoint, the model and the library."
WELCOME = (
    "Ask a question about the papers in the library. Follow-up questions use the "
    "conversation. /help lists the commands, F1 the keys."
)


class ChatApp(App[None]):
    """`assistant chat`.

    `clock` fixes the time (snapshot tests): times written to the store come
    from it and the input cursor stops blinking, so two runs draw the same
    screen. `store` lets a caller share one `SessionStore`. What is stored
    when is `self.chat`'s (a `conversation.Conversation`) business: the app
    calls it and draws what it returns.
    """

    CSS_PATH = "app.tcss"
    TITLE = "assistant chat"
    AUTO_FOCUS = "#prompt"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+n", "new_session", "New session", id="new-session"),
        Binding(
            "escape", "cancel_reply", "Cancel the reply (keeps what was written)", id="cancel-reply"
        ),
        Binding("ctrl+r", "regenerate", "Regenerate the last answer", id="regenerate"),
        Binding(
            "ctrl+y", "copy_answer", "Copy the last answer with its references", id="copy-answer"
        ),
        Binding("ctrl+l", "focus_input", "Focus the input", id="focus-input"),
        Binding("ctrl+s", "focus_sessions", "Focus the sessions", id="focus-sessions"),
        Binding("ctrl+o", "focus_sources", "Focus the sources", id="focus-sources"),
        Binding(
            "ctrl+up", "select_answer(-1)", "Show an earlier answer's sources", id="previous-answer"
        ),
        Binding("ctrl+down", "select_answer(1)", "Show a later answer's sources", id="next-answer"),
        Binding("ctrl+g", "load_earlier", "Load earlier messages", id="load-earlier"),
        Binding("f1", "help", "Keys and commands", id="help"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        session_id: int | None = None,
        new: bool = False,
        clock: Callable[[], datetime] | None = None,
        store: SessionStore | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.frozen = clock is not None
        self.service = ChatService(settings, clock)
        self.chat = Conversation(
            store or SessionStore.open(settings.home, clock=clock),
            self.service,
            own_store=store is None,
        )
        self._initial_session = session_id
        self._start_new = new
        self._cancel: threading.Event | None = None
        self._stream: StreamingMessage | None = None
        self._oldest_id: int | None = None
        self._selected: MessageView | None = None
        self.user_keys: dict[str, str] = {}
        # An AssistantError nothing in the app handled (a damaged sessions file): the app
        # exits with its exit code and `assistant chat` prints it as one line.
        self.fatal_error: AssistantError | None = None

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="sidebar"):
                yield Label("Sessions", classes="title")
                yield Input(placeholder="search sessions", id="session-search")
                yield SessionList(id="sessions")
            with Vertical(id="center"):
                yield MessageLog(id="conversation")
                yield Input(placeholder="Ask about the papers, or /help", id="prompt")
            yield SourcesPanel(id="sources-panel")
        yield StatusBar(id="status")

    @classmethod
    def all_bindings(cls) -> list[Binding]:
        """Every binding a user can remap (each has an id), the app's and the session list's."""
        return [
            b for b in list(cls.BINDINGS) + list(SessionList.BINDINGS) if isinstance(b, Binding)
        ]

    async def on_mount(self) -> None:
        keymap = load_keymap(self.settings.home, {b.id: b.key for b in self.all_bindings() if b.id})
        self.user_keys = keymap.keys  # binding id -> keys, from ASSISTANT_HOME/keys.toml
        self.set_keymap(keymap.keys)
        if self.frozen:
            for field in self.query(Input):
                field.cursor_blink = False
        self.watch(self.query_one(MessageLog), "scroll_y", self._scrolled, init=False)
        session = self.chat.first_session(self._initial_session, new=self._start_new)
        if session is not None:
            await self.open_session(session.id)
        else:
            await self.start_draft()
        for problem in keymap.problems:
            await self.notice(f"**Key map:** {problem}", kind="error")
        self.update_status()
        # After the first frame: importing chromadb in a thread still holds the GIL
        # for long stretches, and would delay the frame that makes the input usable.
        self.call_after_refresh(
            self.run_worker, self._load_library, thread=True, group="load", name="load library"
        )

    def _load_library(self) -> None:
        self.service.load()
        self._from_thread(self._library_loaded)

    async def _library_loaded(self) -> None:
        self.update_status()
        if self.service.load_error is not None:
            await self.notice(
                f"**Cannot open the library:** {self.service.load_error}\n\n{DOCTOR_HINT}",
                kind="error",
            )

    def _from_thread(self, callback: Callable[..., Any], *args: Any) -> None:
        """call_from_thread that does nothing once the app has exited."""
        try:
            self.call_from_thread(callback, *args)
        except RuntimeError:
            pass

    def _handle_exception(self, error: Exception) -> None:
        """End the app cleanly on an `AssistantError` nothing else handled.

        Textual funnels every unhandled error (handlers, mount, failed workers)
        through this one method, which it does not document. Such an error is a
        state the user must act on (a damaged sessions file), so the app exits
        with the error's exit code and the command prints its one line; any
        other error is a bug and keeps Textual's traceback and exit code 1.
        """
        from textual.worker import WorkerFailed

        cause = error.error if isinstance(error, WorkerFailed) else error
        if isinstance(cause, AssistantError) and self.fatal_error is None:
            self.fatal_error = cause
            self.exit(return_code=cause.exit_code or 1)
            return
        super()._handle_exception(error)

    async def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
        self.service.close()
        self.chat.close()

    # -- status and sidebar --------------------------------------------------------------

    @property
    def session_id(self) -> int | None:
        """The session on screen (None: a draft, stored with its first message)."""
        return self.chat.session_id

    @property
    def replying(self) -> bool:
        """A reply is being written (its worker has not handed it back yet)."""
        return self._stream is not None

    def status_text(self) -> str:
        service = self.service
        if not service.ready.is_set():
            library = "loading library…"
        elif service.load_error is not None:
            library = "library unavailable"
        else:
            library = f"{service.library_size} papers"
        parts = [
            display_url(self.settings.base_url),
            f"model {service.model or '(server default)'}",
            library,
            service.describe_filters(),
            "F1 help",
        ]
        return " · ".join(p for p in parts if p)

    def update_status(self) -> None:
        self.query_one(StatusBar).update(
            Text(safe_line(self.status_text()), no_wrap=True, overflow="ellipsis")
        )

    def refresh_sessions(self) -> None:
        search = self.query_one("#session-search", Input).value
        self.query_one(SessionList).show(self.chat.sessions(search), self.session_id)

    # -- sessions ------------------------------------------------------------------------

    async def start_draft(self) -> None:
        """An empty conversation; the session is stored with its first message."""
        self.chat.draft()
        self._oldest_id = None
        conversation = self.query_one(MessageLog)
        await conversation.remove_children()
        await conversation.mount(MessageView("notice", WELCOME))
        self._select(None)
        self.refresh_sessions()
        self.update_status()

    async def open_session(self, session_id: int) -> None:
        """Show a stored session as it was: its last messages, filters and model."""
        self.chat.open(session_id)
        messages = self.chat.recent(RECENT_MESSAGES)
        self._oldest_id = messages[0].id if messages else None
        conversation = self.query_one(MessageLog)
        await conversation.remove_children()
        views = [self._view(m) for m in messages]
        if self._earlier_count():
            views.insert(0, self._earlier_marker())
        if not messages:
            views.append(MessageView("notice", WELCOME))
        await conversation.mount_all(views)
        conversation.scroll_end(animate=False, immediate=True)
        conversation.anchor()
        answers = [v for v in views if isinstance(v, MessageView) and v.answer is not None]
        self._select(answers[-1] if answers else None)
        self.refresh_sessions()
        self.update_status()

    def _view(self, message: Message) -> MessageView:
        return MessageView(message.role, message.content, message=message, status=message.status)

    def _views_of(self, message_id: int) -> list[MessageView]:
        return [v for v in self.query(MessageView) if v.message_id == message_id]

    def _detach(self, message_id: int) -> None:
        """A stored message was deleted (a failed question) but its view stays on screen."""
        for view in self._views_of(message_id):
            view.detach()

    def _earlier_count(self) -> int:
        return self.chat.count_before(self._oldest_id)

    def _earlier_marker(self) -> Static:
        n = self._earlier_count()
        return Static(
            f"↑ {n} earlier message{'s' if n != 1 else ''}: scroll up or press ctrl+g",
            id="earlier",
            classes="earlier",
        )

    def _scrolled(self, old: float, new: float) -> None:
        if new <= 0 < old and self._earlier_count():
            self.run_worker(self.action_load_earlier(), group="earlier", exclusive=True)

    async def action_load_earlier(self) -> None:
        """Mount the previous page of messages above the ones shown."""
        if self.session_id is None or self._oldest_id is None:
            return
        earlier = self.chat.earlier(self._oldest_id, EARLIER_PAGE)
        if not earlier:
            return
        conversation = self.query_one(MessageLog)
        for marker in conversation.query("#earlier"):
            await marker.remove()
        before_height = conversation.virtual_size.height
        self._oldest_id = earlier[0].id
        views: list[Static] = [self._view(m) for m in earlier]
        if self._earlier_count():
            views.insert(0, self._earlier_marker())
        await conversation.mount_all(views, before=0)

        def keep_place() -> None:
            grown = conversation.virtual_size.height - before_height
            conversation.scroll_to(y=conversation.scroll_y + grown, animate=False)

        conversation.release_anchor()
        self.call_after_refresh(keep_place)

    def _select(self, view: MessageView | None) -> None:
        """Show `view`'s sources in the panel (None clears it)."""
        if self._selected is not None:
            self._selected.remove_class("-selected")
        self._selected = view
        if view is not None:
            view.add_class("-selected")
        self.query_one(SourcesPanel).show(view.answer if view else None)

    @on(MessageView.Selected)
    def _message_clicked(self, event: MessageView.Selected) -> None:
        self._select(event.view)

    @on(OptionList.OptionSelected, "#sessions")
    async def _session_chosen(self, event: OptionList.OptionSelected) -> None:
        if not event.option.id:
            return
        if self.replying:
            self.notify("A reply is being written: Esc cancels it.", severity="warning")
            return
        await self.open_session(int(event.option.id.removeprefix("session-")))
        self.query_one("#prompt", Input).focus()

    @on(Input.Changed, "#session-search")
    def _search_changed(self) -> None:
        self.refresh_sessions()

    @on(Input.Submitted, "#session-search")
    def _search_submitted(self) -> None:
        self.query_one(SessionList).focus()

    @on(SessionList.Action)
    def _session_action(self, event: SessionList.Action) -> None:
        session_id = event.session_id
        if session_id is None:
            return
        session = self.chat.get_session(session_id)
        if event.action == "rename":

            def renamed(title: str | None) -> None:
                if title:
                    self.chat.rename(session_id, title)
                    self.refresh_sessions()

            self.push_screen(RenameScreen(session.title), renamed)
        elif event.action == "delete":
            if self.replying and session_id == self.session_id:
                self.notify("A reply is being written: Esc cancels it.", severity="warning")
                return

            async def confirmed(yes: bool | None) -> None:
                if not yes:
                    return
                if self.chat.delete(session_id):
                    await self.start_draft()
                else:
                    self.refresh_sessions()

            self.push_screen(ConfirmScreen(f"Delete the session “{session.title}”?"), confirmed)

    # -- sources -------------------------------------------------------------------------

    @on(OptionList.OptionSelected, "#sources")
    def _source_chosen(self, event: OptionList.OptionSelected) -> None:
        source = self.query_one(SourcesPanel).source_for(event.option.id)
        if source is None:
            return
        self.push_screen(AbstractScreen(source, partial(self.service.abstract, source.paper_id)))

    # -- the conversation ----------------------------------------------------------------

    async def notice(self, text: str, kind: str = "notice") -> MessageView:
        """A message that is shown but not stored (errors, command results)."""
        view = MessageView(kind, text)
        conversation = self.query_one(MessageLog)
        await conversation.mount(view)
        conversation.anchor()
        return view

    @on(Input.Submitted, "#prompt")
    async def _prompt_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        command = parse_command(text)
        if self.replying and (command is None or command.name in ("digest",)):
            self.notify(
                "A reply is being written: wait for it, or Esc cancels it.", severity="warning"
            )
            return
        event.input.value = ""
        if command is not None:
            await self.run_command(command)
        else:
            await self.ask(text)

    async def ask(self, question: str) -> None:
        """Store the question, then answer it in a thread worker, streaming."""
        await self._run_turn(self.chat.begin(question))

    async def _run_turn(self, turn: PendingTurn) -> None:
        """Draw the turn's reply as it streams from a thread worker.

        A regenerate's old answer stays on screen, dimmed, until the new one is
        stored in its place.
        """
        conversation = self.query_one(MessageLog)
        for welcome in [v for v in conversation.query(MessageView) if v.body == WELCOME]:
            await welcome.remove()
        stream = StreamingMessage(self.service.model)
        if turn.replacing is None:
            await conversation.mount_all([self._view(turn.user), stream])
        else:
            old_views = self._views_of(turn.replacing.id)
            for view in old_views:
                view.add_class("-replaced")
            await conversation.mount(stream, after=old_views[-1] if old_views else None)
        conversation.anchor()
        if not self.service.ready.is_set():
            stream.set_waiting("loading the library… (the question waits for it)")
        cancel = threading.Event()
        self._cancel, self._stream = cancel, stream
        self.refresh_sessions()
        self.run_worker(
            partial(self._answer_in_thread, turn, stream, cancel),
            thread=True,
            exclusive=True,
            group="answer",
            name="answer",
        )

    def _answer_in_thread(
        self, turn: PendingTurn, stream: StreamingMessage, cancel: threading.Event
    ) -> None:
        def on_token(piece: str) -> None:
            self._from_thread(stream.append, piece)

        def on_ready() -> None:
            self._from_thread(stream.set_waiting, "searching the library…")

        try:
            answer = self.chat.stream(turn, on_token=on_token, cancel=cancel, on_ready=on_ready)
        except Exception as exc:  # noqa: BLE001 - any failure, bug or not, is shown in the chat
            # and the app keeps running; a bug's class and text are shown and logged.
            self._from_thread(self._reply_failed, turn, stream, exc)
            return
        self._from_thread(self._reply_done, turn, stream, answer, cancel.is_set())

    async def _end_stream(self, stream: StreamingMessage) -> str:
        await stream.finish()
        self._stream, self._cancel = None, None
        return stream.text

    async def _reply_done(
        self, turn: PendingTurn, stream: StreamingMessage, answer: Answer, cancelled: bool
    ) -> None:
        streamed = await self._end_stream(stream)
        if cancelled:
            message = self.chat.cancel(turn, answer, streamed)
            if message is None:
                await stream.remove()
                if turn.regenerating:
                    # Esc during a regenerate means "never mind": the stored answer stays.
                    self._keep_old(turn)
                    await self.notice("Regenerate cancelled: the previous answer is kept.")
                    return
                self._detach(turn.user.id)
                await self._put_back(turn.question)
                await self.notice(
                    "Cancelled before the model wrote anything. Your question is back in the input."
                )
                self.refresh_sessions()
                return
        else:
            message = self.chat.commit(turn, answer)
        view = self._view(message)
        conversation = self.query_one(MessageLog)
        await conversation.mount(view, after=stream)
        await stream.remove()
        if turn.replacing is not None:
            for old in self._views_of(turn.replacing.id):
                await old.remove()
        self._select(view)
        self.refresh_sessions()
        self.update_status()

    def _keep_old(self, turn: PendingTurn) -> None:
        """A regenerate did not replace the answer: show the old one as before."""
        if turn.replacing is not None:
            for view in self._views_of(turn.replacing.id):
                view.remove_class("-replaced")

    async def _reply_failed(
        self, turn: PendingTurn, stream: StreamingMessage, exc: Exception
    ) -> None:
        from ..llm import StreamInterrupted

        streamed = await self._end_stream(stream)
        await stream.remove()
        self.chat.fail(turn)
        if turn.regenerating:
            self._keep_old(turn)
        else:
            self._detach(turn.user.id)
        if isinstance(exc, AssistantError):
            what = str(exc)
        else:
            self.log.error(f"unexpected error while answering: {exc!r}")
            what = f"unexpected error ({type(exc).__name__}: {exc})"
        hint = "" if "doctor" in what else f" {DOCTOR_HINT}"
        partial_text = exc.partial if isinstance(exc, StreamInterrupted) else ""
        partial_text = (partial_text or streamed).strip()
        verb = "regenerate" if turn.regenerating else "answer"
        body = f"**Could not {verb}:** {what}{hint}"
        if partial_text:
            quoted = "\n".join("> " + line for line in partial_text.splitlines())
            body += f"\n\nThe reply was cut off after:\n\n{quoted}"
        if turn.regenerating:
            body += "\n\nThe previous answer is kept: ctrl+r tries again."
            await self.notice(body, kind="error")
        else:
            body += "\n\nYour question is back in the input: press Enter to try again."
            await self.notice(body, kind="error")
            await self._put_back(turn.question)
        self.refresh_sessions()

    async def _put_back(self, question: str) -> None:
        prompt = self.query_one("#prompt", Input)
        if not prompt.value:
            prompt.value = question
            prompt.cursor_position = len(question)
        prompt.focus()

    # -- commands ------------------------------------------------------------------------

    async def run_command(self, command: Command) -> None:
        if command.name == "help":
            self.action_help()
        elif command.name == "export":
            await self._export()
        elif command.name == "digest":
            await self._digest()
        else:
            try:
                said = self.service.run_setting(command)
            except AssistantError as exc:
                await self.notice(f"**/{command.name}:** {exc}", kind="error")
                return
            self.chat.save_settings()
            self.update_status()
            await self.notice(said)

    async def _export(self) -> None:
        try:
            path = self.chat.export(self.settings.home / "exports")
        except UsageError:
            await self.notice("Nothing to export yet: ask a question first.")
            return
        except AssistantError as exc:
            await self.notice(f"**Export failed:** {exc}", kind="error")
            return
        await self.notice(f"Exported the session to `{path}`")

    async def _digest(self) -> None:
        view = await self.notice("Writing this week's digest…")
        self.run_worker(
            partial(self._digest_in_thread, view), thread=True, group="digest", exclusive=True
        )

    def _digest_in_thread(self, placeholder: MessageView) -> None:
        try:
            text = self.service.digest()
        except Exception as exc:  # noqa: BLE001 - broad on purpose: a failed /digest (bug or
            # endpoint) is reported in the conversation and the chat goes on.
            self._from_thread(self._digest_done, placeholder, None, exc)
            return
        self._from_thread(self._digest_done, placeholder, text, None)

    async def _digest_done(
        self, placeholder: MessageView, text: str | None, exc: Exception | None
    ) -> None:
        await placeholder.remove()
        if exc is not None or not text:
            detail = str(exc) if exc is not None else "the digest came back empty"
            hint = "" if "available" in detail or "doctor" in detail else f" {DOCTOR_HINT}"
            await self.notice(f"**/digest:** {detail}{hint}", kind="error")
            return
        message = self.chat.add_digest(text)
        conversation = self.query_one(MessageLog)
        await conversation.mount(self._view(message))
        conversation.anchor()
        self.refresh_sessions()

    # -- key actions ---------------------------------------------------------------------

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        keys = binding_rows(self.all_bindings(), self.user_keys)
        self.push_screen(HelpScreen(keys, COMMANDS))

    def action_cancel_reply(self) -> None:
        """Stop the reply; the worker hands back what was written so far."""
        if self._cancel is not None and self._stream is not None:
            self._cancel.set()
            self._stream.set_waiting("cancelling…")
        else:
            self.query_one("#prompt", Input).focus()

    async def action_new_session(self) -> None:
        if self.replying:
            self.notify("A reply is being written: Esc cancels it.", severity="warning")
            return
        await self.start_draft()
        self.query_one("#prompt", Input).focus()

    async def action_regenerate(self) -> None:
        """Ask the last question again; its answer is replaced once the new one is stored.

        Nothing is deleted first: a regenerate that fails or is cancelled
        leaves the question and its answer stored and shown as they were.
        """
        if self.replying:
            return
        turn = self.chat.regenerate()
        if turn is None:
            self.notify("Nothing to regenerate: the last message is not an answer.")
            return
        await self._run_turn(turn)

    def action_select_answer(self, step: int) -> None:
        """Move the sources panel to the answer before (-1) or after (+1) the selected one,
        the keyboard's way of doing what a click on an answer does."""
        answers = [v for v in self.query(MessageView) if v.answer is not None]
        if not answers:
            self.notify("No answer to show sources for yet.")
            return
        if self._selected in answers:
            index = answers.index(self._selected) + step
        else:
            index = len(answers) - 1
        index = max(0, min(index, len(answers) - 1))
        self._select(answers[index])
        answers[index].scroll_visible(animate=False)

    def action_copy_answer(self) -> None:
        """Copy the last answer with its references (OSC 52: works over ssh and in tmux)."""
        answers = [v for v in self.query(MessageView) if v.role == "assistant"]
        if not answers:
            self.notify("No answer to copy yet.")
            return
        last = answers[-1]
        self.copy_to_clipboard(copy_text(last.message) if last.message else last.body)
        self.notify("Copied the last answer and its references.")

    def action_focus_input(self) -> None:
        self.query_one("#prompt", Input).focus()

    def action_focus_sessions(self) -> None:
        self.query_one(SessionList).focus()

    def action_focus_sources(self) -> None:
        self.query_one("#sources", OptionList).focus()
