"""Generated hostile papers through every command that shows them (issue 20, done-when 2).

Titles and abstracts with every C0/C1 control, DEL, lone surrogates, bidi
overrides, Markdown/HTML punctuation and 10,000-character strings go through
ingest -> search -> ask -> digest (Markdown and HTML) -> sessions show/export,
run in-process as the CLI runs them. Asserted of every output and every written
file: no control character but newline and tab, no surrogate, no bidi override,
and no exception (a traceback) from any command.

Kept fast: three papers per example, four generated examples and one fixed
one, the session's embedder (patched in for the one the CLI would load), and
the fake model server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assistant.cli import main

from .conftest import embed_model_dir
from .fakeserver import FakeServer
from .test_safety import BIDI, unsafe_chars

HOSTILE = (
    [chr(c) for c in range(0x20)]
    + ["\x7f"]
    + [chr(c) for c in range(0x80, 0xA0)]
    + sorted(BIDI)
    + ["\ud800", "\udbff", "\udc00", "\udce9", "\udfff"]
)
EVERY_CONTROL = "".join(HOSTILE)
PLAIN = list("attention heads transformer ") + list("[]()<>*_`|#&;:/\\\"'!-=")

piece = st.text(alphabet=st.one_of(st.sampled_from(HOSTILE), st.sampled_from(PLAIN)), max_size=80)
long_piece = piece.map(lambda s: ((s or "x\x1b") * 10_000)[:10_000])
field = st.one_of(piece, piece, long_piece)


def _records(titles: list[str], abstracts: list[str]) -> list[dict]:
    return [
        {
            "title": f"Paper {i} {title}",
            "abstract": (
                "Attention heads in transformers can be pruned without losing accuracy "
                f"({i}). {abstract} More on pruning attention heads."
            ),
            "published": f"2025-01-0{i + 2}",
            "url": "https://arxiv.org/abs/2501.0000" + str(i),
            "authors": [f"Author {title[:20]}"],
        }
        for i, (title, abstract) in enumerate(zip(titles, abstracts))
    ]


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, embedder, tmp_path: Path):
    """The CLI in-process, with the session's embedder instead of a fresh load."""
    import assistant.embed

    monkeypatch.setattr(assistant.embed, "make_embedder", lambda settings: embedder)
    if embed_model_dir():
        monkeypatch.setenv("ASSISTANT_EMBED_MODEL_DIR", str(embed_model_dir()))
    monkeypatch.chdir(tmp_path)
    return monkeypatch


COUNTER = iter(range(10**6))


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    titles=st.lists(field, min_size=3, max_size=3),
    # A 10,000-character abstract is a hundred chunks to embed: the fixed example has one.
    abstracts=st.lists(piece, min_size=3, max_size=3),
    reply=piece,
)
@example(
    titles=[EVERY_CONTROL, (EVERY_CONTROL * 200)[:10_000], "\u202eevil\u202c"],
    abstracts=[(EVERY_CONTROL * 200)[:10_000], EVERY_CONTROL, "<script>x</script>"],
    reply=EVERY_CONTROL,
)
def test_hostile_papers_through_every_command_leave_no_control_characters(
    titles: list[str],
    abstracts: list[str],
    reply: str,
    cli_env: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    work = tmp_path / f"ex{next(COUNTER)}"
    work.mkdir()
    data = work / "papers.jsonl"
    data.write_text(
        "".join(json.dumps(r) + "\n" for r in _records(titles, abstracts)), encoding="utf-8"
    )
    outputs: list[str] = []
    with FakeServer(models=["smollm2"]) as server:
        for _ in range(12):
            server.add_reply(f"Attention heads matter [1]. {reply} They prune [2].")
        cli_env.setenv("ASSISTANT_HOME", str(work / "home"))
        cli_env.setenv("OPENAI_BASE_URL", server.url)
        cli_env.setenv("ASSISTANT_MODEL", "smollm2")
        cli_env.setenv("ASSISTANT_TIMEOUT", "10")
        cli_env.setenv("ASSISTANT_CONTEXT_WINDOW", "4096")
        window = ["--since", "2025-01-01", "--until", "2025-01-07", "--force"]
        runs = [
            ["ingest", str(data)],
            ["search", "attention heads"],
            ["search", "attention heads", "--json"],
            ["papers"],
            ["ask", "Can attention heads in transformers be pruned?", "--no-stream"],
            ["ask", "Can attention heads in transformers be pruned?", "--json"],
            ["digest", *window, "--out", str(work / "d.md")],
            ["digest", *window, "--format", "html", "--out", str(work / "d.html")],
            ["sessions", "list"],
            ["sessions", "show", "1"],
            ["sessions", "export", "1", "-o", str(work / "s.md"), "--force"],
        ]
        for args in runs:
            code = main(args)  # an exception here is the traceback a user would see
            captured = capsys.readouterr()
            outputs.append(captured.out + captured.err)
            assert code in (0, 1), (args, code, captured.err[-2000:])
    assert "\nfailed " not in outputs[0]  # no record refused: every field was made safe
    assert server.chat_requests, "the model was never asked: nothing of its reply was shown"
    written = [p.read_text(encoding="utf-8") for p in work.glob("*.*") if p.suffix != ".jsonl"]
    assert {p.name for p in work.glob("s.md")} == {"s.md"}
    for text in outputs + written:
        assert unsafe_chars(text) == [], repr(text[:3000])
        assert "Traceback" not in text
