"""The terminal chat, driven by real key presses: what the user sees.

One test asks the real llama.cpp server (SmolLM2) and checks the answer's
citations and sources in the app; the others are about the app's flows
(cancel, regenerate, resume, commands, keys), not the model's words, and use
the fake server (tests/fakeserver.py) with the real library and embedder.
What is stored when is tested without Textual in test_conversation.py.
Each app runs on a private home holding a copy of the sample library; the
questions are typed without clicking anything first, so the input must have
focus when the app starts. Snapshot tests draw fixed screens (frozen clock, a
fixed terminal size, an endpoint on a port where nothing listens).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input, OptionList

from assistant.answer import Answer
from assistant.localserver import free_port
from assistant.sessions import SessionStore
from assistant.settings import Settings
from assistant.tui.app import ChatApp
from assistant.tui.screens import AbstractScreen, ConfirmScreen, HelpScreen, RenameScreen
from assistant.tui.widgets import MessageView, SessionList

from .conftest import make_settings
from .fakeserver import FakeServer

SIZE = (100, 30)
QUESTION = "How many sets of natural images does the MetaShift collection contain?"
FOLLOW_UP = "How was it built?"
DEAD_ENDPOINT = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
FROZEN = datetime(2025, 3, 3, 9, 30, tzinfo=timezone.utc)
REPLY_TIMEOUT = 420  # SmolLM2 on a busy 2-core machine can take minutes per answer

METASHIFT_ANSWER = Answer.from_dict(
    {
        "question": QUESTION,
        "standalone_question": None,
        "answer": "The MetaShift collection contains 12,868 sets of natural images [1].",
        "citations": [
            {
                "n": 1,
                "paper_id": "metashift",
                "title": "MetaShift: A Dataset of Datasets for Evaluating Contextual "
                "Distribution Shifts and Training Conflicts",
                "supported": True,
            }
        ],
        "sources": [
            {
                "n": 1,
                "paper_id": "metashift",
                "title": "MetaShift: A Dataset of Datasets for Evaluating Contextual "
                "Distribution Shifts and Training Conflicts",
                "published": "2022-02-14",
                "passage": "We present MetaShift, a collection of 12,868 sets of natural "
                "images across 410 classes.",
                "url": None,
                "similarity": 0.74,
            }
        ],
        "abstained": False,
        "model": "smollm2",
    }
)


def run(coro) -> None:
    asyncio.run(coro)


async def wait_for(
    pilot: Pilot, condition: Callable[[], bool], what: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.1)


async def type_and_send(pilot: Pilot, text: str) -> None:
    """Key by key, as typed (each key costs the pilot a redraw of the whole screen)."""
    await pilot.press(*text)
    await pilot.press("enter")


async def paste_and_send(pilot: Pilot, text: str) -> None:
    """All at once, as a terminal delivers a paste to the focused widget."""
    pilot.app.focused.post_message(events.Paste(text))
    await pilot.pause()
    await pilot.press("enter")


async def ask(pilot: Pilot, app: ChatApp, question: str, typed: bool = False) -> None:
    """Send a question (pasted, or `typed` key by key), wait until its reply (or error)
    is in the conversation."""
    await (type_and_send if typed else paste_and_send)(pilot, question)
    await wait_for(pilot, lambda: not app.replying, "the reply", REPLY_TIMEOUT)
    await app.workers.wait_for_complete()
    await pilot.pause()


def plain(widget) -> str:
    """What a Static shows, as plain text (rendered at the chat's width)."""
    content = widget.content
    if isinstance(content, str):
        return content
    if isinstance(content, Text):
        return content.plain
    console = Console(width=SIZE[0], file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(content)
    return capture.get()


def views(app: ChatApp, role: str | None = None) -> list[MessageView]:
    return [v for v in app.query(MessageView) if role is None or v.role == role]


def source_prompts(app: ChatApp) -> list[str]:
    sources = app.query_one("#sources", OptionList)
    return [str(sources.get_option_at_index(i).prompt) for i in range(sources.option_count)]


@pytest.fixture
def chat_settings(model_settings: Settings, sample_copy: Path) -> Settings:
    """The real server and model, on a private home with the sample library."""
    return model_settings.with_(home=sample_copy)


@pytest.fixture
def offline_settings(sample_copy: Path) -> Settings:
    return make_settings(
        sample_copy, base_url=DEAD_ENDPOINT, model="smollm2", context_window=4096, timeout=10.0
    )


def seed(home: Path, clock: Callable[[], datetime] | None = None, extra: int = 0) -> int:
    """A stored session with one cited answer (and `extra` filler messages before it)."""
    with SessionStore.open(home, clock=clock) as store:
        session = store.create_session(model="smollm2", filters={"k": 4})
        if extra:
            store.bulk_add(
                session.id,
                [
                    ("user" if i % 2 == 0 else "assistant", f"message {i}", None)
                    for i in range(extra)
                ],
            )
        store.add_message(session.id, "user", QUESTION)
        store.add_message(session.id, "assistant", METASHIFT_ANSWER.text, answer=METASHIFT_ANSWER)
        return session.id


# -- against the real model ---------------------------------------------------------------


def test_typed_question_is_answered_with_sources(chat_settings: Settings):
    async def scenario() -> None:
        app = ChatApp(chat_settings, new=True)
        async with app.run_test(size=SIZE) as pilot:
            assert app.focused is app.query_one("#prompt")  # typing works without a click
            await ask(pilot, app, QUESTION, typed=True)
            user, answer = views(app, "user"), views(app, "assistant")
            assert [v.body for v in user] == [QUESTION]
            assert len(answer) == 1 and answer[0].status == "done"
            citations = answer[0].answer.citations
            assert citations, answer[0].answer
            for c in citations:
                assert f"[{c.n}" in answer[0].body
            # The sources panel shows each cited paper with its date and verdict.
            prompts = source_prompts(app)
            assert len(prompts) == len(citations)
            assert "MetaShift" in prompts[0]
            assert "supported" in prompts[0]
            # Selecting a source opens its whole abstract, read from the library.
            await pilot.press("ctrl+o", "enter")
            assert isinstance(app.screen, AbstractScreen)
            body = app.screen.query_one("#abstract-text")
            await wait_for(pilot, lambda: "loading" not in plain(body), "the abstract")
            assert "12,868" in plain(body)
            await pilot.press("escape")
            assert not isinstance(app.screen, AbstractScreen)
            with SessionStore.open(chat_settings.home) as store:
                assert [m.role for m in store.messages(app.session_id)] == ["user", "assistant"]

    run(scenario())


# -- the app's flows, with the fake server standing in for the model -----------------------


@pytest.fixture
def server():
    with FakeServer(models=["smollm2"]) as fake:
        yield fake


@pytest.fixture
def fake_settings(sample_copy: Path, server: FakeServer) -> Settings:
    return make_settings(
        sample_copy, base_url=server.url, model="smollm2", context_window=4096, timeout=10.0
    )


def test_resumed_session_takes_a_follow_up_and_keys_move_between_answers(
    fake_settings: Settings, server: FakeServer
):
    session_id = seed(fake_settings.home)
    server.add_reply("How was the MetaShift collection built?")  # the follow-up's rewrite
    server.add_stream(["MetaShift was built ", "from Visual Genome [1]."])

    async def scenario() -> None:
        app = ChatApp(fake_settings)  # no --new: the latest session comes back
        async with app.run_test(size=SIZE) as pilot:
            assert app.session_id == session_id
            assert [v.body for v in views(app, "user")] == [QUESTION]
            assert "MetaShift" in source_prompts(app)[0]
            assert app.query_one(SessionList).highlighted_session() == session_id
            await ask(pilot, app, FOLLOW_UP)
            replies = views(app, "assistant")
            assert len(replies) == 2, [v.body for v in views(app)]
            data = replies[-1].answer
            assert data.question == FOLLOW_UP
            assert data.standalone_question == "How was the MetaShift collection built?"
            # The keyboard moves the sources panel between answers, as a click does.
            latest = source_prompts(app)
            assert replies[1].has_class("-selected")
            await pilot.press("ctrl+up")
            assert replies[0].has_class("-selected") and not replies[1].has_class("-selected")
            assert "12,868" in source_prompts(app)[0]
            await pilot.press("ctrl+up")  # already the first answer: stays there
            assert replies[0].has_class("-selected")
            await pilot.press("ctrl+down")
            assert replies[1].has_class("-selected") and source_prompts(app) == latest

    run(scenario())


def test_escape_cancels_keeping_the_partial_answer_then_regenerate(
    fake_settings: Settings, server: FakeServer
):
    first = ["MetaShift holds ", "12,868 sets of natural images [1]. "]
    server.add_stream(first + [f"word{i} " for i in range(200)], delay_s=0.1)
    server.add_stream(["MetaShift is a collection of ", "12,868 sets of natural images [1]."])

    async def scenario() -> None:
        app = ChatApp(fake_settings, new=True)
        async with app.run_test(size=SIZE) as pilot:
            await paste_and_send(pilot, QUESTION)
            await wait_for(
                pilot,
                lambda: app._stream is not None and "word0 " in app._stream.text,
                "the first streamed words",
            )
            await pilot.press("escape")
            await wait_for(pilot, lambda: not app.replying, "the cancelled reply")
            await app.workers.wait_for_complete()
            replies = views(app, "assistant")
            assert len(replies) == 1
            assert replies[0].status == "cancelled" and "12,868 sets" in replies[0].body
            assert "word199" not in replies[0].body
            assert "cancelled" in replies[0].header_text().plain
            # ctrl+r asks the last question again and replaces the cancelled answer.
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: not app.replying, "the regenerated reply")
            await app.workers.wait_for_complete()
            await pilot.pause()
            replies = views(app, "assistant")
            assert len(replies) == 1 and replies[0].status == "done"
            assert "12,868 sets" in replies[0].body
            assert [v.body for v in views(app, "user")] == [QUESTION]
            # ctrl+y copies the answer with the papers it cites.
            await pilot.press("ctrl+y")
            assert app.clipboard.startswith(replies[0].body.strip())
            assert "References:" in app.clipboard and "MetaShift" in app.clipboard
            cited = replies[0].answer.citations
            assert cited and all(f"[{c.n}] {c.title}" in app.clipboard for c in cited)

    run(scenario())


def test_unknown_model_and_slash_commands(fake_settings: Settings, server: FakeServer):
    server.add_stream(["MetaShift is a collection of ", "12,868 sets of natural images [1]."])

    async def scenario() -> None:
        app = ChatApp(fake_settings, new=True)
        async with app.run_test(size=SIZE) as pilot:
            status = app.query_one("#status")
            await paste_and_send(pilot, "/since 2024-01-01")
            await paste_and_send(pilot, "/k 6")
            await wait_for(pilot, lambda: app.service.ready.is_set(), "the library")
            await pilot.pause()
            assert "since 2024-01-01" in plain(status)
            assert "k=6" in plain(status) and "264 papers" in plain(status)
            await paste_and_send(pilot, "/k 0")
            assert "/k wants a whole number" in views(app, "error")[-1].body
            await paste_and_send(pilot, "/export")
            assert "Nothing to export yet" in views(app)[-1].body
            await paste_and_send(pilot, "/help")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await paste_and_send(pilot, "/since off")
            assert "since" not in plain(status)

            await paste_and_send(pilot, "/model no-such-model")
            await ask(pilot, app, QUESTION)
            error = views(app, "error")[-1].body
            assert "model 'no-such-model' not found" in error and "smollm2" in error
            assert app.query_one("#prompt", Input).value == QUESTION
            assert app.is_running and app.session_id is None  # nothing half-done stored

            # The question goes through once the model is right; then the session exports.
            app.query_one("#prompt", Input).value = ""
            await paste_and_send(pilot, "/model smollm2")
            await ask(pilot, app, QUESTION)
            assert len(views(app, "assistant")) == 1
            with SessionStore.open(fake_settings.home) as store:
                session = store.get_session(app.session_id)
                assert session.model == "smollm2" and session.filters["k"] == 6
            await paste_and_send(pilot, "/export")
            shown = views(app)[-1].body
            assert "Exported the session to" in shown
            exported = list((fake_settings.home / "exports").glob("session-*.md"))
            assert len(exported) == 1 and str(exported[0]) in shown
            assert "## All references" in exported[0].read_text()

            await paste_and_send(pilot, "/digest")
            await app.workers.wait_for_complete()
            await pilot.pause()
            last = views(app)[-1]
            # Either the digest (possibly saying the week is empty) or why there is none.
            assert last.role == "digest" or (last.role == "error" and "/digest" in last.body)

    run(scenario())


# -- failure and keys, without a model -----------------------------------------------------


def test_endpoint_down_shows_what_to_do_and_puts_the_question_back(sample_copy: Path):
    settings = make_settings(
        sample_copy,
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        model="smollm2",
        context_window=4096,
        timeout=10.0,
    )

    async def scenario() -> None:
        app = ChatApp(settings, new=True)
        async with app.run_test(size=SIZE) as pilot:
            await ask(pilot, app, QUESTION)
            errors = views(app, "error")
            assert len(errors) == 1
            assert "cannot reach the model endpoint" in errors[0].body
            assert "assistant doctor" in errors[0].body
            assert app.query_one("#prompt", Input).value == QUESTION
            assert app.focused is app.query_one("#prompt")
            assert app.is_running and not app.replying
            # Nothing half-done was stored: the retry will not duplicate the question,
            # and the session made for this first question is not left behind empty.
            assert app.session_id is None
            with SessionStore.open(settings.home) as store:
                assert store.list_sessions() == []

    run(scenario())


def test_reply_cut_off_keeps_what_arrived_and_the_question(sample_copy: Path):
    """A stream that breaks mid-answer (a crashed server: only the fake can do it on cue)."""
    with FakeServer(models=["fake-model"]) as server:
        server.add_stream(["The collection has ", "12,868 sets"], cut_after=2)
        settings = make_settings(
            sample_copy, base_url=server.url, model="fake-model", context_window=4096, timeout=10.0
        )

        async def scenario() -> None:
            app = ChatApp(settings, new=True)
            async with app.run_test(size=SIZE) as pilot:
                await ask(pilot, app, QUESTION)
                error = views(app, "error")[-1].body
                assert "cut off after" in error and "12,868 sets" in error
                assert "assistant doctor" in error
                assert app.query_one("#prompt", Input).value == QUESTION
                assert views(app, "assistant") == [] and app.is_running
                assert len(server.chat_requests) == 1  # shown text is never replayed

        run(scenario())


def test_keys_help_rename_delete_search(offline_settings: Settings):
    session_id = seed(offline_settings.home)
    with SessionStore.open(offline_settings.home) as store:
        other = store.create_session(title="Sea turtles")
        store.add_message(other.id, "user", "Are there papers on satellite tags?")

    async def scenario() -> None:
        app = ChatApp(offline_settings, session_id=session_id)
        async with app.run_test(size=SIZE) as pilot:
            assert app.session_id == session_id
            # Every binding has an id and is listed in the help screen.
            await pilot.press("f1")
            assert isinstance(app.screen, HelpScreen)
            shown = " ".join(plain(w) for w in app.screen.query("Static"))
            for binding in list(ChatApp.BINDINGS) + list(SessionList.BINDINGS):
                assert binding.id, binding
                assert binding.id in shown and binding.description in shown
            assert "/since DATE" in shown and "/export" in shown
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)

            await pilot.press("ctrl+y")  # the answer, then the papers it cites
            assert app.clipboard == (
                f"{METASHIFT_ANSWER.text}\n\nReferences:\n\n"
                "- [1] MetaShift: A Dataset of Datasets for Evaluating Contextual "
                "Distribution Shifts and Training Conflicts (2022-02-14). "
                "(supported by its passage)"
            )

            sidebar = app.query_one(SessionList)
            assert sidebar.option_count == 2
            search = app.query_one("#session-search", Input)
            search.value = "satellite"  # content, not title
            await pilot.pause()
            assert sidebar.option_count == 1 and "Sea turtles" in str(
                sidebar.get_option_at_index(0).prompt
            )
            search.value = ""
            await pilot.pause()

            await pilot.press("ctrl+s")
            assert app.focused is sidebar
            sidebar.highlighted = [
                i
                for i in range(sidebar.option_count)
                if sidebar.get_option_at_index(i).id == f"session-{other.id}"
            ][0]
            await pilot.press("f2")
            assert isinstance(app.screen, RenameScreen)
            await pilot.press("ctrl+u", *"Turtles", "enter")
            await pilot.pause()
            assert not isinstance(app.screen, RenameScreen)
            with SessionStore.open(offline_settings.home) as store:
                assert store.get_session(other.id).title == "Turtles"
            await pilot.press("delete")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await pilot.pause()
            with SessionStore.open(offline_settings.home) as store:
                assert [s.id for s in store.list_sessions()] == [session_id]
            assert sidebar.option_count == 1

            # Choosing the session from the list opens it; ctrl+n starts a new one.
            await pilot.press("enter")
            assert app.session_id == session_id
            await pilot.press("ctrl+n")
            assert app.session_id is None and views(app, "assistant") == []
            assert app.focused is app.query_one("#prompt")

    run(scenario())


def help_rows(app: ChatApp) -> dict[str, str]:
    """binding id -> the keys the help screen shows for it."""
    rows = {}
    for line in " ".join(plain(w) for w in app.screen.query("Static")).splitlines():
        parts = line.split()
        if len(parts) >= 3 and any(b.id == parts[-1] for b in ChatApp.all_bindings()):
            rows[parts[-1]] = parts[0]
    return rows


def test_key_remapped_in_the_file_takes_effect_and_is_on_the_help_screen(
    offline_settings: Settings,
):
    session_id = seed(offline_settings.home)
    (offline_settings.home / "keys.toml").write_text(
        '[keys]\nnew-session = "ctrl+t"\nrename-session = "f6"\n', encoding="utf-8"
    )

    async def scenario() -> None:
        app = ChatApp(offline_settings, session_id=session_id)
        async with app.run_test(size=SIZE) as pilot:
            assert views(app, "error") == []  # a sound file: no notice
            await pilot.press("ctrl+n")  # the old key does nothing now
            await pilot.pause()
            assert app.session_id == session_id and len(views(app, "assistant")) == 1
            await pilot.press("ctrl+t")
            await pilot.pause()
            assert app.session_id is None and views(app, "assistant") == []
            # A binding of the session list is remapped too.
            await pilot.press("ctrl+s")
            sidebar = app.query_one(SessionList)
            sidebar.highlighted = 0
            await pilot.press("f2")
            assert not isinstance(app.screen, RenameScreen)
            await pilot.press("f6")
            assert isinstance(app.screen, RenameScreen)
            await pilot.press("escape")
            await pilot.press("f1")
            assert isinstance(app.screen, HelpScreen)
            rows = help_rows(app)
            assert rows["new-session"] == "ctrl+t" and rows["rename-session"] == "f6"
            assert rows["regenerate"] == "ctrl+r"  # the others keep their keys

    run(scenario())


def test_mistakes_in_the_key_file_are_one_line_each_and_the_rest_applies(
    offline_settings: Settings,
):
    keys = offline_settings.home / "keys.toml"
    keys.parent.mkdir(parents=True, exist_ok=True)
    keys.write_text(
        '[keys]\nnew-sesion = "ctrl+t"\nregenerate = "ctrl+nope"\nhelp = 5\nfocus-input = "f5"\n',
        encoding="utf-8",
    )

    async def scenario(expect: list[str]) -> ChatApp:
        app = ChatApp(offline_settings, new=True)
        async with app.run_test(size=SIZE) as pilot:
            errors = [v.body for v in views(app, "error")]
            assert len(errors) == len(expect), errors
            for body, words in zip(errors, expect):
                assert str(keys) in body and words in body and "\n" not in body
                assert "Traceback" not in body
            assert app.is_running
            if expect[0] != "not valid TOML":
                await pilot.press("ctrl+s")
                assert app.focused is app.query_one(SessionList)
                await pilot.press("f5")  # the sound line still applies
                assert app.focused is app.query_one("#prompt")
        return app

    run(
        scenario(
            [
                "line 2: unknown binding id 'new-sesion'",
                "line 3: regenerate: 'ctrl+nope' is not a key",
                "line 4: help wants a key in quotes",
            ]
        )
    )
    keys.write_text('[keys]\nnew-session = "ctrl+t\n', encoding="utf-8")
    run(scenario(["not valid TOML"]))


def test_a_remapped_key_that_another_binding_holds_is_named(tmp_path: Path):
    from assistant.tui.keymap import load_keymap

    defaults = {b.id: b.key for b in ChatApp.all_bindings() if b.id}
    (tmp_path / "keys.toml").write_text('[keys]\nnew-session = "ctrl+r"\n', encoding="utf-8")
    keymap = load_keymap(tmp_path, defaults)
    assert keymap.keys == {"new-session": "ctrl+r"}
    assert keymap.problems == [
        f"{tmp_path / 'keys.toml'}, line 2: new-session: ctrl+r is also regenerate's key; "
        "give regenerate another key in the file"
    ]
    (tmp_path / "keys.toml").write_text(
        '[keys]\nnew-session = "ctrl+r"\nregenerate = "f5"\n', encoding="utf-8"
    )
    assert load_keymap(tmp_path, defaults).problems == []  # a swap is no clash


def test_long_session_mounts_recent_messages_and_loads_earlier(offline_settings: Settings):
    session_id = seed(offline_settings.home, extra=118)  # 120 messages in all

    async def scenario() -> None:
        app = ChatApp(offline_settings, session_id=session_id)
        async with app.run_test(size=SIZE) as pilot:
            assert len(views(app)) == 50
            assert views(app)[-1].body == METASHIFT_ANSWER.text
            assert "70 earlier messages" in plain(app.query_one("#earlier"))
            await pilot.press("ctrl+g")
            await pilot.pause()
            assert len(views(app)) == 100
            # Scrolling to the top loads the rest.
            conversation = app.query_one("#conversation")
            conversation.scroll_home(animate=False)
            await wait_for(pilot, lambda: len(views(app)) == 120, "the earliest messages", 10)
            assert views(app)[0].body == "message 0"
            assert not app.query("#earlier")

    run(scenario())


# -- snapshots ----------------------------------------------------------------------------


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch):
    """Times on screen are local: pin the zone so snapshots draw the same anywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def frozen_app(settings: Settings, **kwargs) -> ChatApp:
    return ChatApp(settings, clock=lambda: FROZEN, **kwargs)


async def library_loaded(pilot: Pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.service.ready.is_set(), "the library")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_snapshot_main_screen(snap_compare, offline_settings: Settings, utc):
    seed(offline_settings.home, clock=lambda: FROZEN)
    app = frozen_app(offline_settings)
    assert snap_compare(app, terminal_size=SIZE, run_before=library_loaded)


def test_snapshot_help_screen(snap_compare, offline_settings: Settings, utc):
    app = frozen_app(offline_settings, new=True)
    assert snap_compare(app, terminal_size=SIZE, press=["f1"], run_before=library_loaded)


def test_snapshot_endpoint_down(snap_compare, offline_settings: Settings, utc):
    async def ask_offline(pilot: Pilot) -> None:
        await library_loaded(pilot)
        await paste_and_send(pilot, QUESTION)
        await wait_for(pilot, lambda: not pilot.app.replying, "the error", 120)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    app = frozen_app(offline_settings, new=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=ask_offline)
