"""Modal screens: key help, a paper's whole abstract, rename and delete prompts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from ..safe_text import safe_line, safe_text, safe_url

if TYPE_CHECKING:
    from ..answer import Source


def binding_rows(
    bindings: list[Binding], keymap: dict[str, str] | None = None
) -> list[tuple[str, str, str]]:
    """(keys, what it does, binding id) for each binding that has an id; a key the
    user's key map (keys.toml) gives a binding replaces its default."""
    keymap = keymap or {}
    rows = []
    for b in bindings:
        if not b.id:
            continue
        keys = keymap.get(b.id) or b.key_display or b.key
        rows.append((keys.replace(",", ", "), b.description, b.id))
    return rows


class HelpScreen(ModalScreen[None]):
    """Every key binding with its id (to remap it), and the slash commands."""

    AUTO_FOCUS = "#help-body"
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", show=False)]

    def __init__(self, keys: list[tuple[str, str, str]], commands: dict[str, str]) -> None:
        super().__init__(id="help")
        self.keys = keys
        self.commands = commands

    def compose(self) -> ComposeResult:
        keys = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
        keys.add_column("key")
        keys.add_column("action")
        keys.add_column("binding id", style="dim")
        for key, description, binding_id in self.keys:
            keys.add_row(key, description, binding_id)
        commands = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
        commands.add_column("command")
        commands.add_column("what it does")
        for command, description in self.commands.items():
            commands.add_row(command, description)
        with VerticalScroll(id="help-body"):
            yield Label("Keys", classes="title")
            yield Static(keys)
            yield Label("Commands (type them in the input)", classes="title")
            yield Static(commands)
            yield Static(
                Text(
                    "Remap a key by its id in ASSISTANT_HOME/keys.toml, e.g. "
                    '[keys] new-session = "ctrl+t"',
                    style="dim",
                )
            )
            yield Static(Text("Esc closes this help.", style="dim"))


class AbstractScreen(ModalScreen[None]):
    """A cited paper's whole abstract, loaded in a thread by `fetch` (the library's
    `abstract(paper_id)`): the screen opens at once and fills in when it arrives."""

    AUTO_FOCUS = "#abstract-body"
    BINDINGS = [Binding("escape,q", "dismiss", "Close", show=False)]

    def __init__(self, source: Source, fetch: Callable[[], dict[str, Any]] | None = None) -> None:
        super().__init__(id="abstract")
        self.source = source
        self._fetch = fetch

    def on_mount(self) -> None:
        if self._fetch is not None:
            self.run_worker(self._load, thread=True, group="abstract", exclusive=True)

    def _load(self) -> None:
        assert self._fetch is not None
        try:
            text = self._fetch().get("abstract") or "(no abstract stored)"
        except Exception as exc:  # noqa: BLE001 - broad on purpose: a worker's error would end
            # the app over a side panel; the screen says what failed instead.
            text = f"Cannot load the abstract: {exc}"
        try:
            self.app.call_from_thread(self.show_abstract, text)
        except RuntimeError:
            pass  # the app has exited meanwhile

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="abstract-body"):
            yield Label(Text(safe_line(self.source.title)), classes="title")
            published = self.source.published
            when = published.isoformat() if published else "undated"
            url = safe_url(self.source.url) or ""
            yield Static(Text(safe_line(f"{when}  {url}".strip()), style="dim"), classes="meta")
            yield Static("loading the abstract…", id="abstract-text")
            yield Static(Text("Esc closes.", style="dim"))

    def show_abstract(self, text: str) -> None:
        if not self.is_attached:
            return  # closed before the abstract arrived
        self.query_one("#abstract-text", Static).update(Text(safe_text(text)))


class RenameScreen(ModalScreen[str | None]):
    """Ask for a session's new title; Esc keeps the old one."""

    AUTO_FOCUS = "#rename-input"
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str) -> None:
        super().__init__(id="rename")
        self.old_title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Rename the session (Enter saves, Esc cancels)")
            yield Input(self.old_title, id="rename-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question (y or Enter: yes; n or Esc: no)."""

    AUTO_FOCUS = ""  # nothing to focus: the screen's own keys answer
    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes", show=False),
        Binding("n,escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(id="confirm")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question)
            yield Label("y / n", classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
