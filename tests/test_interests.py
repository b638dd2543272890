"""ASSISTANT_HOME/interests.toml ranks a digest's papers ("For you"), each pick with
its reason; without the file the most upvoted and most central papers stand in;
`assistant export bibtex` writes the digest's papers from stored metadata.

The papers are a small JSONL ingested with the real embedder; the digest runs
against the fake endpoint, since the model's words are not what is tested."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from assistant.digest import build_digest
from assistant.errors import UsageError
from assistant.interests import add_liked, load_interests
from assistant.llm import ModelClient
from assistant.store import Library

from .cli_runner import run_assistant
from .conftest import embed_model_dir, make_settings
from .fakeserver import FakeServer

PAPERS = [
    (
        "2511.00001",
        "Compressing the KV Cache of Long-Context Transformers",
        ["Ada Lovelace"],
        "The KV cache grows with context length. We quantise the KV cache to 2 bits and keep "
        "accuracy within 0.5 points on LongBench.",
    ),
    (
        "2511.00002",
        "Speculative Decoding with Draft Trees",
        ["Alan Turing"],
        "Autoregressive decoding is slow. We propose draft trees for speculative decoding, "
        "reaching a 2.8x speed-up on 7B models.",
    ),
    (
        "2511.00003",
        "Segmenting Tumours in Medical MRI Scans",
        ["Grace Hopper"],
        "Medical image segmentation needs labels. We train a KV cache free segmenter on MRI scans "
        "with 91.2% Dice.",
    ),
    (
        "2511.00004",
        "Graph Neural Networks for Molecule Property Prediction",
        ["Grace Hopper"],
        "Molecular property prediction benefits from structure. We design an equivariant graph "
        "network that lowers error by 12% on QM9.",
    ),
    (
        "2511.00005",
        "Compressing the Key-Value Memory of Long-Context Transformers by Token Eviction",
        ["Edsger Dijkstra"],
        "The key-value memory of long-context transformers grows with context length. We evict "
        "tokens from the key-value memory by attention score and keep accuracy within 1 point "
        "on LongBench at 60% less memory.",
    ),
    (
        "2511.00006",
        "Reward Models for Robot Grasping",
        ["Barbara Liskov"],
        "Grasping policies need dense rewards. We learn a reward model from 40 hours of "
        "teleoperation and raise grasp success to 87%.",
    ),
]


def _home(tmp_path: Path, embedder) -> Path:
    from assistant.ingest import ingest

    data = tmp_path / "week.jsonl"
    with data.open("w") as out:
        for i, (pid, title, authors, abstract) in enumerate(PAPERS):
            row = {
                "id": pid,
                "title": title,
                "authors": authors,
                "summary": abstract,
                "published": f"2025-11-{17 + i % 5}",
                # As daily-arXiv listings store them: several in any order, or one.
                "categories": ["cs.CL"] if i == 1 else ["cs.LG", "cs.CL"],
            }
            out.write(json.dumps(row) + "\n")
    home = tmp_path / "home"
    settings = make_settings(home)
    report = ingest([data], settings, library=Library.open(settings), embedder=embedder)
    assert report.total_papers == len(PAPERS) and not report.failures
    return home


def _digest(home: Path, embedder):
    with FakeServer(models=["smollm2"]) as server:
        settings = make_settings(home, base_url=server.url, model="smollm2")
        return build_digest(
            settings,
            Library.open(settings),
            embedder,
            ModelClient(settings),
            date(2025, 11, 17),
            date(2025, 11, 23),
        )


def test_interests_put_the_matching_papers_first_each_with_its_reason(tmp_path, embedder):
    home = _home(tmp_path, embedder)
    (home / "interests.toml").write_text(
        'keywords = ["kv cache", "speculative decoding"]\n'
        'authors = ["Barbara Liskov"]\n'
        'liked = ["2511.00001"]\n'
        'exclude = ["medical"]\n'
    )
    digest = _digest(home, embedder)
    assert digest.for_you_basis == "interests"
    picks = {p.paper.paper_id: p.reasons for p in digest.for_you}
    order = [p.paper.paper_id for p in digest.for_you]
    assert "2511.00001" not in picks  # the liked paper itself is not picked again
    assert "2511.00003" not in picks  # mentions "medical": excluded, though it says "KV cache"
    assert "2511.00004" not in picks  # matches nothing
    assert "matches 'speculative decoding'" in picks["2511.00002"]
    assert "by Barbara Liskov" in picks["2511.00006"]
    assert any(r.startswith("close to 'Compressing the KV Cache") for r in picks["2511.00005"])
    assert set(order[:3]) == {"2511.00002", "2511.00005", "2511.00006"}
    assert all(p.reasons for p in digest.for_you)
    from assistant.digest import render_markdown

    markdown = render_markdown(digest)
    section = markdown.split("## For you")[1].split("\n## ")[0]
    assert "matches 'speculative decoding'" in section and "by Barbara Liskov" in section


def test_without_interests_the_most_central_papers_stand_in(tmp_path, embedder):
    digest = _digest(_home(tmp_path, embedder), embedder)
    assert digest.for_you_basis == "no interests"
    assert digest.for_you and all(
        any("most central" in r or "upvoted" in r for r in p.reasons) for p in digest.for_you
    )


def test_a_bad_interests_file_is_one_clear_line_and_liking_keeps_the_rest(tmp_path: Path):
    (tmp_path / "interests.toml").write_text('keywords = ["a"]\nauthors = 3\n')
    with pytest.raises(UsageError, match=r"interests.toml, line 2: field 'authors'"):
        load_interests(tmp_path)
    (tmp_path / "interests.toml").write_text('# mine\nkeywords = ["kv cache"]\n')
    assert add_liked(tmp_path, "2511.00001") and not add_liked(tmp_path, "2511.00001")
    assert add_liked(tmp_path, "2511.00002")
    text = (tmp_path / "interests.toml").read_text()
    assert text.startswith("# mine\nkeywords")
    found = load_interests(tmp_path)
    assert found.keywords == ["kv cache"] and found.liked == ["2511.00001", "2511.00002"]


def test_export_bibtex_from_a_digest_uses_stored_metadata(tmp_path, embedder):
    from assistant.digest.render import digest_json

    home = _home(tmp_path, embedder)
    digest_file = tmp_path / "d.json"
    digest_file.write_text(json.dumps(digest_json(_digest(home, embedder))))
    env = {**os.environ, "ASSISTANT_HOME": str(home)}
    if embed_model_dir():
        env["ASSISTANT_EMBED_MODEL_DIR"] = str(embed_model_dir())
    proc = run_assistant(["export", "bibtex", "--digest", str(digest_file)], env=env)
    assert proc.returncode == 0, proc.stderr
    bib = proc.stdout
    assert bib.count("@misc{") == len(PAPERS)
    assert "eprint = {2511.00002}" in bib and "archivePrefix = {arXiv}" in bib
    assert "author = {Alan Turing}" in bib and "year = {2025}" in bib
    assert "@misc{turing2025speculative," in bib
    # The one listed category is the primary class; of two in arbitrary order, neither.
    assert bib.count("primaryClass = {cs.CL}") == 1
    bad = run_assistant(["export", "bibtex"], env=env)
    assert bad.returncode == 2 and "exactly one of" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_chat_like_command_adds_the_paper_to_the_liked_list(tmp_path: Path):
    """`/like` in the chat writes interests.toml, which the digest's For you then reads."""
    from assistant.chat.service import ChatService, Command

    home = tmp_path / "home"
    home.mkdir()
    (home / "interests.toml").write_text('keywords = ["kv cache"]\n', encoding="utf-8")
    service = ChatService(make_settings(home))
    said = service.run_setting(Command("like", "https://arxiv.org/abs/2511.16624v2"))
    assert "2511.16624 added to the liked list" in said
    assert "already" in service.run_setting(Command("like", "2511.16624"))
    interests = load_interests(home)
    assert interests.liked == ["2511.16624"] and interests.keywords == ["kv cache"]
    with pytest.raises(UsageError, match="arXiv id"):
        service.run_setting(Command("like", "not-an-id"))
