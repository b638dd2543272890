"""The chat's widgets: messages, the streaming reply, the session list, sources, status.

Finished messages are `Static`s holding Rich Markdown, not Textual `Markdown`
widgets: with many messages mounted, appending one costs a fraction of the
time (see the field notes). Only the reply being written is a `Markdown`
widget, fed through `Markdown.get_stream`, and it is swapped for a `Static`
when the reply is done.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.markdown import Markdown as RichMarkdown
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message as TextualMessage
from textual.widgets import Label, Markdown, OptionList, Static
from textual.widgets.option_list import Option

from ..safe_text import safe_line, safe_text
from ..sessions.records import Message, Session
from ..sessions.search import highlight_parts

if TYPE_CHECKING:
    from ..answer import Answer, Source

ROLE_LABELS = {
    "user": "You",
    "assistant": "Assistant",
    "digest": "Digest",
    "error": "Error",
    "notice": "Note",
}


def citation_line(answer: Answer | None) -> Text | None:
    """`[1] Title ✓  [2] Title ?` under an answer: its numbered citations."""
    if answer is None or not answer.citations:
        return None
    line = Text()
    for c in answer.citations:
        if line:
            line.append("\n")
        mark = ("✓", "green") if c.supported else ("?", "yellow")
        line.append(f"[{c.n}] ", style="bold")
        line.append(safe_line(c.title))
        line.append(f" {mark[0]}", style=mark[1])
    return line


def short_time(iso: str) -> str:
    """`23 Nov 11:55` in local time, from a stored (UTC) ISO time."""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%d %b %H:%M")
    except ValueError:
        return iso[:16]


class MessageView(Static, can_focus=False):
    """One finished message (or a notice) drawn once as Rich Markdown."""

    class Selected(TextualMessage):
        """An answer was clicked: the sources panel should show its sources."""

        def __init__(self, view: MessageView) -> None:
            super().__init__()
            self.view = view

    def __init__(
        self,
        role: str,
        content: str,
        *,
        message: Message | None = None,
        answer: Answer | None = None,
        status: str = "done",
        model: str | None = None,
    ) -> None:
        self.role = role
        self.body = content
        self.message = message
        self.answer = answer if answer is not None else (message.answer if message else None)
        self.status = status
        self.model = model or (self.answer.model if self.answer else None)
        # No DOM id from the message id: SQLite may hand a deleted message's id out again.
        super().__init__(self._renderable(), classes=f"message -{role}")
        if status == "cancelled":
            self.add_class("-cancelled")

    @property
    def message_id(self) -> int | None:
        return self.message.id if self.message else None

    def detach(self) -> None:
        """The stored message was deleted (its question failed): keep only the view."""
        self.message = None

    def header_text(self) -> Text:
        """`Assistant · smollm2 · cancelled`: who wrote it, and how it ended."""
        header = Text(ROLE_LABELS.get(self.role, self.role.title()), style="bold")
        if self.role == "assistant" and self.model:
            header.append(f" · {safe_line(self.model)}", style="dim")
        if self.status == "cancelled":
            header.append(" · cancelled (Esc)", style="yellow")
        return header

    def _renderable(self) -> RenderableType:
        parts: list[RenderableType] = [self.header_text()]
        if self.role == "user":
            parts.append(Text(safe_text(self.body)))
        else:
            parts.append(RichMarkdown(safe_text(self.body) or "…"))
        cites = citation_line(self.answer)
        if cites is not None:
            parts.append(cites)
        return Group(*parts)

    def on_click(self) -> None:
        if self.answer is not None:
            self.post_message(self.Selected(self))


class StreamingMessage(Vertical):
    """The reply being written: a `Markdown` widget fed through a stream."""

    def __init__(self, model: str | None) -> None:
        super().__init__(classes="message -assistant -streaming")
        self.model = model
        self.text = ""
        self._stream: Any = None

    def compose(self) -> ComposeResult:
        label = "Assistant" + (f" · {safe_line(self.model)}" if self.model else "")
        yield Label(Text(label), classes="header")
        yield Label("searching the library…", classes="waiting")
        yield Markdown("", classes="body")

    def set_waiting(self, text: str) -> None:
        waiting = self.query_one(".waiting", Label)
        waiting.update(Text(safe_text(text)))
        waiting.display = True

    async def append(self, piece: str) -> None:
        """Add one streamed piece (called from the worker through call_from_thread)."""
        if not piece:
            return
        if self._stream is None:
            self.query_one(".waiting", Label).display = False
            self._stream = Markdown.get_stream(self.query_one(Markdown))
        piece = safe_text(piece)
        self.text += piece
        await self._stream.write(piece)

    async def finish(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None


class MessageLog(VerticalScroll, can_focus=True):
    """The scrolling list of messages (`layout: stream` in the stylesheet)."""

    BINDINGS = [
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "scroll_end", "Bottom", show=False),
    ]


def snippet_text(snippet: str, room: int, lines: int = 2) -> Text:
    """A search snippet in at most `lines` rows of `room` cells, starting just before
    its first match so the match is in view; matched words bold."""
    parts = highlight_parts(" ".join(snippet.split()))
    first = next((i for i, (_, hit) in enumerate(parts) if hit), 0)
    before = sum(len(t) for t, _ in parts[:first])
    skip = max(0, before - room // 3)
    text = Text("…" if skip else "", style="italic")
    for piece, hit in parts:
        cut = min(skip, len(piece))
        skip -= cut
        if piece[cut:]:
            text.append(piece[cut:], style="bold" if hit else "dim")
    text.truncate(room * lines - 1, overflow="ellipsis")
    return text


class SessionList(OptionList):
    """The sessions, newest first; delete and rename act on the highlighted one."""

    BINDINGS = [
        Binding("delete", "delete_session", "Delete the session", id="delete-session"),
        Binding("f2", "rename_session", "Rename the session", id="rename-session"),
    ]

    class Action(TextualMessage):
        def __init__(self, action: str, session_id: int | None) -> None:
            super().__init__()
            self.action = action
            self.session_id = session_id

    def show(
        self,
        sessions: list[Session],
        current: int | None,
        snippets: dict[int, str] | None = None,
    ) -> None:
        """Replace the list; the current session is highlighted (or, while the
        list has focus, the one the user had highlighted).

        A search result's sessions carry a `snippet` of their best match (from
        `SessionStore.list_sessions(search=...)`; `snippets`, by session id,
        overrides it): it shows under the title, matched words in bold.
        """
        keep = self.highlighted_session()
        options = []
        room = max(10, (self.size.width or 26) - 3)
        for s in sessions:
            prompt = Text(safe_line(s.title))
            prompt.truncate(room, overflow="ellipsis")
            snippet = (snippets or {}).get(s.id, s.snippet)
            if snippet:
                prompt.append("\n")
                prompt.append_text(snippet_text(snippet, room))
            prompt.append(f"\n{short_time(s.updated)} · {s.message_count} msgs", style="dim")
            options.append(Option(prompt, id=f"session-{s.id}"))
        self.set_options(options)
        ids = [s.id for s in sessions]
        # While the user works in the list, the highlight stays where they put it.
        for wanted in (keep, current) if self.has_focus else (current,):
            if wanted in ids:
                self.highlighted = ids.index(wanted)
                break

    def highlighted_session(self) -> int | None:
        if self.highlighted is None:
            return None
        option = self.get_option_at_index(self.highlighted)
        return int(option.id.removeprefix("session-")) if option.id else None

    def action_delete_session(self) -> None:
        self.post_message(self.Action("delete", self.highlighted_session()))

    def action_rename_session(self) -> None:
        self.post_message(self.Action("rename", self.highlighted_session()))


class SourcesPanel(Vertical):
    """The selected answer's cited papers: title, date, its evidence quotes (else the passage)."""

    def compose(self) -> ComposeResult:
        yield Label("Sources", classes="title")
        yield Static("Ask a question; its cited papers show here.", classes="hint")
        yield OptionList(id="sources")

    def show(self, answer: Answer | None) -> None:
        hint = self.query_one(".hint", Static)
        options = self.query_one("#sources", OptionList)
        cited = answer.cited_sources if answer else []
        items = [self._item(answer, s) for s in cited] if answer else []
        options.set_options(items)
        if items:
            options.highlighted = 0
        self._papers = {f"paper-{s.n}": s for s in cited}
        if cited:
            hint.update("Enter or click: the whole abstract")
        elif answer is not None and answer.abstained:
            hint.update("No answer, so no sources.")
        elif answer is not None:
            hint.update("This answer cites no source.")
        else:
            hint.update("Ask a question; its cited papers show here.")

    @staticmethod
    def _item(answer: Answer, s: Source) -> Option:
        """One cited paper: number, title, date, verdict, and its quotes (else its passage)."""
        item = Text()
        item.append(f"[{s.n}] ", style="bold")
        item.append(safe_line(s.title), style="bold")
        item.append(f"\n{s.published.isoformat() if s.published else 'undated'} · ")
        if answer.supported(s):
            item.append("✓ supported", style="green")
        else:
            item.append("? not supported by its passage", style="yellow")
        quotes = answer.quotes(s)
        if quotes:  # the verbatim sentences this answer rests on
            for quote in quotes:
                item.append(f"\n“{safe_text(quote.text)}”")
            item.append("\n")
        else:
            passage = " ".join(safe_text(s.passage).split())
            if len(passage) > 220:
                passage = passage[:219].rstrip() + "…"
            item.append(f"\n{passage}\n", style="dim")
        return Option(item, id=f"paper-{s.n}")

    def source_for(self, option_id: str | None) -> Source | None:
        return getattr(self, "_papers", {}).get(option_id or "")


class StatusBar(Static):
    """Endpoint, model, library size and the current filters, on one line."""
