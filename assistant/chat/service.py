"""What the chat does that is not drawing: library, model, history, settings commands.

Kept free of Textual so the model wiring is a plain function that a test (or
another front end) can call, and so no widget holds SQL or model calls (the
lesson from elia and oterm). Methods that touch the network or the store on
disk run in the app's thread workers; `ready` lets a question typed before
the library finished loading wait for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..answer import Answer, ask
from ..errors import AssistantError, StoreError, UsageError
from ..followup import CONDENSE_TURNS, Turn, condense
from ..retrieve import parse_filter_date
from ..sessions.records import Session, describe_filters, utc_now
from ..settings import display_url as settings_display_url
from . import DEFAULT_K, MAX_K

if TYPE_CHECKING:
    from ..llm import ModelClient
    from ..retrieve import Filters, Retriever
    from ..settings import Settings

DIGEST_DAYS = 7
CHAT_DIGEST_MAX_PAPERS = 12


@dataclass(frozen=True)
class TurnSettings:
    """Everything a turn is answered with besides the question and the model: how many
    papers, which ones (the filters) and how many earlier turns a follow-up is read
    against. One object, so `ask` and the chat answer, store and resume alike."""

    k: int = DEFAULT_K
    since: date | None = None
    until: date | None = None
    author: str | None = None
    title: str | None = None
    history: int = CONDENSE_TURNS

    @property
    def filters(self) -> Filters:
        from ..retrieve import Filters

        return Filters(self.since, self.until, self.author, self.title)

    def to_dict(self) -> dict[str, Any]:
        """What a session stores (its filters column): since/until as ISO text and k
        always, as sessions stored before; author and title when set."""
        data: dict[str, Any] = {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "k": self.k,
        }
        data.update({key: v for key in ("author", "title") if (v := getattr(self, key))})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TurnSettings:
        data = data or {}
        k = str(data.get("k") or "")
        return cls(
            k=int(k) if k.isdigit() else DEFAULT_K,
            since=_maybe_date(data.get("since")),
            until=_maybe_date(data.get("until")),
            author=data.get("author") or None,
            title=data.get("title") or None,
        )


@dataclass
class Command:
    """A parsed `/name argument` line."""

    name: str
    arg: str


COMMANDS: dict[str, str] = {
    "/since DATE": "only papers published on or after DATE (YYYY-MM-DD); `/since off` clears",
    "/until DATE": "only papers published on or before DATE; `/until off` clears",
    "/k N": "give the model the N best papers (1-50)",
    "/model NAME": "ask another model on the same endpoint",
    "/digest": "this week's digest (its 12 most upvoted papers) into the conversation",
    "/export": "write the session as Markdown under ASSISTANT_HOME/exports",
    "/like ARXIV_ID": "add a paper to the liked list that the digest's For you ranks by",
    "/help": "keys and commands",
}


def parse_command(text: str) -> Command | None:
    """`/k 6` -> Command("k", "6"); None for anything that is not a command."""
    text = text.strip()
    if not text.startswith("/") or len(text) < 2:
        return None
    name, _, arg = text[1:].partition(" ")
    return Command(name.lower(), arg.strip())


def display_url(url: str | None) -> str:
    """The endpoint for the status bar, without any user:password part."""
    return settings_display_url(url) if url else "no endpoint (set OPENAI_BASE_URL)"


class ChatService:
    """The library, the model and the conversation's settings, for one app (one process).

    What is stored when is `conversation.Conversation`'s business; this class
    holds no sessions file. `clock` dates the /digest week (snapshot tests fix it).
    """

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.clock = clock or utc_now
        self.retriever: Retriever | None = None
        self.library_size: int | None = None
        self.load_error: BaseException | None = None
        self.ready = threading.Event()
        self.model: str | None = settings.model
        self.turn = TurnSettings()
        self._client: ModelClient | None = None
        self._lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------

    def load(self) -> None:
        """Open the library (chromadb, the embedder, the keyword index): seconds, so a worker.

        A failure is kept, not raised: the chat still starts, shows it, and
        every question then reports it instead of hanging.
        """
        try:
            from ..retrieve import open_retriever

            retriever = open_retriever(self.settings)
            self.library_size = len(retriever.papers)
            self.retriever = retriever
        except BaseException as exc:  # noqa: BLE001 - broad on purpose: this runs in a worker
            # thread, where an escaping error would end the app or vanish; kept instead, shown
            # in the chat, and re-raised to every question by wait_ready().
            self.load_error = exc
            if isinstance(exc, KeyboardInterrupt):
                raise  # Ctrl-C in `ask`, which loads in its main thread
        finally:
            self.ready.set()

    def wait_ready(self, timeout: float | None = None) -> Retriever:
        """The retriever, once loaded (waits); raises what loading raised."""
        if not self.ready.wait(timeout):
            raise StoreError("the library is still loading")
        if self.load_error is not None:
            if isinstance(self.load_error, AssistantError):
                raise self.load_error
            raise StoreError(f"cannot open the library: {self.load_error}")
        assert self.retriever is not None
        return self.retriever

    def client(self) -> ModelClient:
        """The model client, made on first use (a missing OPENAI_BASE_URL is reported then)."""
        with self._lock:
            if self._client is None:
                from ..llm import ModelClient

                self._client = ModelClient(self.settings, model=self.model)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- settings of the conversation ----------------------------------------------------

    # The chat's /k, /since and /until change one field of `turn` at a time.
    @property
    def k(self) -> int:
        return self.turn.k

    @k.setter
    def k(self, value: int) -> None:
        self.turn = replace(self.turn, k=value)

    @property
    def since(self) -> date | None:
        return self.turn.since

    @since.setter
    def since(self, value: date | None) -> None:
        self.turn = replace(self.turn, since=value)

    @property
    def until(self) -> date | None:
        return self.turn.until

    @until.setter
    def until(self, value: date | None) -> None:
        self.turn = replace(self.turn, until=value)

    @property
    def filters(self) -> Filters:
        return self.turn.filters

    def filters_dict(self) -> dict[str, Any]:
        """What a session stores: since/until as ISO dates, k, and author/title when set."""
        return self.turn.to_dict()

    def describe_filters(self) -> str:
        return describe_filters(self.filters_dict())

    def apply_session(self, session: Session | None) -> None:
        """Take a resumed session's model and filters (a new one keeps the current ones)."""
        if session is None:
            return
        self.turn = TurnSettings.from_dict(session.filters)
        if session.model and session.model != self.model:
            self.set_model(session.model)

    def set_model(self, name: str) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None
            self.model = name

    def run_setting(self, command: Command) -> str:
        """Apply `/since`, `/until`, `/k` or `/model`; returns what changed, in words.

        Raises UsageError for a bad argument (shown in the conversation).
        """
        name, arg = command.name, command.arg
        if name in ("since", "until"):
            value = None if arg.lower() in ("", "off", "none", "clear") else parse_filter_date(arg)
            setattr(self, name, value)
            if self.since and self.until and self.since > self.until:
                raise UsageError(f"since {self.since} is after until {self.until}")
            return (
                f"{name} {value.isoformat()}" if value else f"{name} cleared"
            ) + f"; filters: {self.describe_filters()}"
        if name == "k":
            try:
                k = int(arg)
            except ValueError:
                raise UsageError(
                    f"/k wants a whole number from 1 to {MAX_K}, not {arg!r}"
                ) from None
            if not 1 <= k <= MAX_K:
                raise UsageError(f"/k wants a whole number from 1 to {MAX_K}, not {k}")
            self.k = k
            return f"k={k}: the model gets the {k} best papers"
        if name == "like":
            return self.like(arg)
        if name == "model":
            if not arg:
                raise UsageError("/model wants a model name, e.g. /model llama3.2")
            self.set_model(arg)
            return f"model {arg} (checked with the next question)"
        raise UsageError(f"unknown command /{name}: /help lists them")

    def like(self, arg: str) -> str:
        """`/like 2511.12345` (an id or an arXiv URL): the digest's For you section ranks the
        week by closeness to liked papers, so liking one from the chat is how a user teaches it."""
        from ..interests import add_liked, interests_path
        from ..records import parse_arxiv_id

        arxiv_id = parse_arxiv_id(arg)
        if arxiv_id is None:
            raise UsageError(f"/like wants an arXiv id such as 2511.12345, not {arg!r}")
        added = add_liked(self.settings.home, arxiv_id)
        where = interests_path(self.settings.home)
        return f"{arxiv_id} {'added to' if added else 'is already in'} the liked list in {where}"

    # -- answering -----------------------------------------------------------------------

    def answer(
        self,
        question: str,
        history: list[Turn],
        on_token: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        on_ready: Callable[[], None] | None = None,
        stream: bool = True,
    ) -> Answer:
        """Condense a follow-up against `history`, then retrieve, stream and check.

        Blocks (a thread worker's job): waits for the library, then the model.
        `cancel` stops the follow-up rewrite as well as the answer.
        """
        retriever = self.wait_ready()
        if on_ready is not None:
            on_ready()
        client = self.client()
        standalone = condense(history, question, client, cancel=cancel) if history else question
        return ask(
            question,
            retriever,
            client,
            k=self.turn.k,
            filters=self.turn.filters,
            context_window=self.settings.context_window,
            on_token=on_token,
            stream=stream,
            cancel=cancel,
            standalone_question=standalone if standalone != question else None,
        )

    def abstract(self, paper_id: str) -> dict[str, Any]:
        """A paper's stored record: title, date, url and its whole abstract."""
        retriever = self.wait_ready()
        paper = retriever.library.paper(paper_id)
        if paper is None:
            raise StoreError(f"paper {paper_id} is no longer in the library")
        return paper

    def digest(self) -> str:
        """This week's digest as Markdown, kept short enough to read in a chat: the
        week's most upvoted papers (`assistant digest` writes the whole week)."""
        from ..digest import digest_markdown

        retriever = self.wait_ready()
        until = self.clock().date()
        since = until - timedelta(days=DIGEST_DAYS - 1)
        return digest_markdown(
            self.settings, retriever, self.client(), since, until, max_papers=CHAT_DIGEST_MAX_PAPERS
        )


def _maybe_date(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None
