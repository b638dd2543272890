"""Responsiveness of the terminal chat (`assistant chat`), headless.

Measures, printing medians (and min..max) over `--runs`:

  * interactive: wall time from launching a fresh `python` process that
    imports and starts the chat to the first frame drawn with the input
    focused (Textual's Ready event), and to the moment a key pressed at that
    frame has reached the input and been drawn (the library is loading in a
    thread meanwhile, so this shows whether typing lags). The library
    (chromadb, the embedder) loads in a worker after the first frame; the time
    until it is loaded is printed for reference.
  * a session of `--messages` (default 500) stored messages, generated in
    sessions.db (questions, and Markdown answers with citations and sources):
      - open: switch to the session (mount the last 50 messages) until the
        next frame;
      - load earlier: mount one more page of 50 above, until the next frame;
      - scroll: one `pageup` key press in the conversation, until the next
        frame, with the last 50 mounted and with all of them mounted.

Run from the repository root:

    .venv/bin/python bench/tui_bench.py
    .venv/bin/python bench/tui_bench.py --runs 10 --messages 1000 --home PATH

With `--home PATH`, the library of that ASSISTANT_HOME is opened in place
(its `chroma` folder is linked into the temporary home; the generated session
goes into the temporary home's sessions.db). Without it the temporary home
has an empty library, which still pays for importing chromadb and loading the
embedder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    REPO,
    add_common_args,
    child_env,
    load_line,
    machine_line,
    median,
    print_table,
    spread,
    temp_home,
)

SIZE = (120, 40)

# The child process: start the chat and note (1) the first frame (Textual's Ready
# event), (2) when a key pressed at that moment has reached the input and been
# drawn, and (3) when the library finished loading in its worker; print as JSON.
# Nothing waits for the process to go idle (Pilot.pause does, and the library
# loading in its thread keeps the CPU busy for a second or more).
CHILD = r"""
import json, time
from pathlib import Path
import assistant.tui.app as chat
from assistant.settings import Settings

marks = {}

class Timed(chat.ChatApp):
    CSS_PATH = str(Path(chat.__file__).parent / chat.ChatApp.CSS_PATH)

    def on_ready(self) -> None:
        marks["first_frame"] = time.time()
        prompt = self.query_one("#prompt")
        marks["focused"] = self.focused is prompt
        self.simulate_key("x")
        self.set_interval(0.002, self._poll)

    def _poll(self) -> None:
        prompt = self.query_one("#prompt")
        if "typed" not in marks and prompt.value == "x":
            marks["typed"] = time.time()
            self.call_after_refresh(lambda: marks.setdefault("typed_drawn", time.time()))
        if "library" not in marks and self.service.ready.is_set():
            marks["library"] = time.time()
            error = self.service.load_error
            marks["library_error"] = repr(error) if error else None
        if "typed_drawn" in marks and "library" in marks:
            self.exit()

settings = Settings.load(base_url="http://127.0.0.1:9/v1", model="bench")
Timed(settings, new=True).run(headless=True, size=(WIDTH, HEIGHT))
print("MARKS " + json.dumps(marks))
""".replace("WIDTH", str(SIZE[0])).replace("HEIGHT", str(SIZE[1]))


LAUNCH_ROWS = [
    ("first_frame", "launch -> first frame, input focused"),
    ("typed_drawn", "launch -> a key pressed then is drawn"),
    ("library", "launch -> library loaded (background)"),
]


def time_interactive(env: dict[str, str], runs: int) -> dict[str, list[float]]:
    """Seconds from launching the process to each mark, per run."""
    times: dict[str, list[float]] = {"first_frame": [], "typed_drawn": [], "library": []}
    for i in range(runs + 1):  # the first run warms the OS file cache and is not counted
        start = time.time()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        line = next((x for x in proc.stdout.splitlines() if x.startswith("MARKS ")), None)
        if line is None:
            sys.exit("the chat did not start:\n" + proc.stdout[-2000:] + proc.stderr[-2000:])
        marks = json.loads(line[6:])
        if not marks.get("focused"):
            sys.exit("the input did not have focus on the first frame")
        if marks.get("library_error"):
            print(f"note: the library did not load: {marks['library_error']}")
        if i:
            for name in times:
                times[name].append(marks[name] - start)
    return times


ANSWER_TEXT = (
    "The paper proposes **{name}**, which {verb} the optimiser state to save memory [1]. "
    "Compared with the baseline it reports:\n\n"
    "- 40% less memory during pre-training [1]\n"
    "- comparable perplexity on C4 [2?]\n\n"
    "A related approach quantizes the projection matrices to `INT4` [2]."
)


def fake_answer(i: int) -> tuple[str, dict]:
    name = f"Method-{i}"
    text = ANSWER_TEXT.format(name=name, verb="projects" if i % 2 else "compresses")
    sources = [
        {
            "n": n,
            "paper_id": f"paper-{i}-{n}",
            "title": f"{name}: Paper {n}",
            "published": "2024-07-11",
            "passage": "A passage about memory-efficient training of large language models. " * 4,
            "url": None,
            "similarity": 0.6,
        }
        for n in (1, 2, 3)
    ]
    citations = [
        {"n": 1, "paper_id": f"paper-{i}-1", "title": f"{name}: Paper 1", "supported": True},
        {"n": 2, "paper_id": f"paper-{i}-2", "title": f"{name}: Paper 2", "supported": False},
    ]
    return text, {
        "question": f"question {i}",
        "answer": text,
        "citations": citations,
        "sources": sources,
        "abstained": False,
        "model": "bench",
    }


def make_session(home: Path, messages: int) -> int:
    from assistant.answer import Answer
    from assistant.sessions import SessionStore

    rows = []
    for i in range(messages):
        if i % 2 == 0:
            rows.append(
                (
                    "user",
                    f"Question {i}: how does method {i} reduce memory when "
                    "training large language models?",
                    None,
                )
            )
        else:
            text, data = fake_answer(i)
            rows.append(("assistant", text, Answer.from_dict(data)))
    with SessionStore.open(home) as store:
        session = store.create_session(title=f"{messages} messages")
        store.bulk_add(session.id, rows)
        return session.id


async def scroll(pilot, app, into: list[float], presses: int = 10) -> None:
    """Time `pageup` key presses in the conversation, from its bottom."""
    conversation = app.query_one("#conversation")
    conversation.focus()
    conversation.scroll_end(animate=False)
    await pilot.pause()
    for _ in range(presses):
        start = time.perf_counter()
        await pilot.press("pageup")
        await pilot.pause()
        into.append(time.perf_counter() - start)


async def time_session(home: Path, session_id: int, runs: int) -> dict[str, list[float]]:
    from assistant.settings import Settings
    from assistant.tui.app import ChatApp

    settings = Settings.load(home=home, base_url="http://127.0.0.1:9/v1", model="bench")
    app = ChatApp(settings, new=True)
    app.animation_level = "none"  # time the redraw, not a smooth-scroll animation
    results: dict[str, list[float]] = {"open": [], "earlier": [], "scroll50": [], "scroll": []}
    async with app.run_test(size=SIZE) as pilot:
        while not app.service.ready.is_set():  # keep the library load out of the timings
            await asyncio.sleep(0.05)
        await pilot.pause()
        for i in range(runs + 1):
            start = time.perf_counter()
            await app.open_session(session_id)
            await pilot.pause()
            if i:
                results["open"].append(time.perf_counter() - start)
            if i == runs:
                await scroll(pilot, app, results["scroll50"])
            while app._earlier_count():
                start = time.perf_counter()
                await app.action_load_earlier()
                await pilot.pause()
                if i:
                    results["earlier"].append(time.perf_counter() - start)
            if i == runs:
                await scroll(pilot, app, results["scroll"])
            await app.start_draft()
            await pilot.pause()
        mounted = len(app.query("MessageView"))
    assert mounted == 1, mounted  # the draft's welcome note: the session was unmounted
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--runs", type=int, default=5, help="timed repeats (default 5)")
    parser.add_argument(
        "--messages", type=int, default=500, help="messages in the generated session (default 500)"
    )
    parser.add_argument("--home", type=Path, help="an ASSISTANT_HOME whose library to load")
    args = parser.parse_args()

    print(machine_line())
    print(load_line())
    with temp_home(keep=args.keep_home, prefix="assistant-tui-bench-") as tmp:
        home = tmp
        if args.home:
            home = tmp / "home"
            home.mkdir()
            os.symlink(Path(args.home).expanduser().resolve() / "chroma", home / "chroma")
        env = child_env(home, args.model_dir)
        launch = time_interactive(env, args.runs)
        session_id = make_session(home, args.messages)
        os.environ.update({k: v for k, v in env.items() if k.startswith("ASSISTANT_")})
        session = asyncio.run(time_session(home, session_id, args.runs))

    print_table(
        f"assistant chat, headless {SIZE[0]}x{SIZE[1]}, {args.runs} runs (seconds)",
        ["measure", "median", "min..max", "n"],
        [
            *[
                [
                    label,
                    f"{median(launch[name]):.3f}",
                    spread(launch[name], "{:.3f}"),
                    len(launch[name]),
                ]
                for name, label in LAUNCH_ROWS
            ],
            [
                f"open a {args.messages}-message session (last 50)",
                f"{median(session['open']):.3f}",
                spread(session["open"], "{:.3f}"),
                len(session["open"]),
            ],
            [
                "load 50 earlier messages",
                f"{median(session['earlier']):.3f}",
                spread(session["earlier"], "{:.3f}"),
                len(session["earlier"]),
            ],
            [
                "pageup with 50 mounted",
                f"{median(session['scroll50']):.3f}",
                spread(session["scroll50"], "{:.3f}"),
                len(session["scroll50"]),
            ],
            [
                f"pageup with {args.messages} mounted",
                f"{median(session['scroll']):.3f}",
                spread(session["scroll"], "{:.3f}"),
                len(session["scroll"]),
            ],
        ],
    )
    print(load_line())


if __name__ == "__main__":
    main()
