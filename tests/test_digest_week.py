"""A real week (tests/data/arxiv-week-2025: 1,027 papers in 2025-W47 and 981 the week before,
from the same two tools) as a digest: the map (areas, themes, "Other papers"), the names,
the trends and the length. The model's words are not what is tested here, so the digest runs
against the fake endpoint (tests/fakeserver.py); the folder is ingested once for the module
with the real MiniLM's vectors: the structure depends on real embeddings, so no subset or fake
vectors stand in. They are read from a recording of the real model
(tests/data/arxiv-week-2025.minilm-f16.npz, `python -m tests.recorded_vectors`), checked
against the model on a sample every run, because computing them takes four minutes here."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from assistant.digest import build_digest, render_html, render_markdown
from assistant.digest.naming import _inside
from assistant.digest.score import score_digest
from assistant.digest.table import TABLE_ROWS
from assistant.llm import ModelClient
from assistant.store import Library

from .conftest import ROOT, make_settings
from .fakeserver import FakeServer
from .recorded_vectors import RecordedEmbedder, text_key

WEEK = ROOT / "tests" / "data" / "arxiv-week-2025"


@pytest.fixture(scope="module")
def recorded(embedder) -> RecordedEmbedder:
    return RecordedEmbedder(embedder)


@pytest.fixture(scope="module")
def week_home(tmp_path_factory: pytest.TempPathFactory, recorded: RecordedEmbedder) -> Path:
    from assistant.ingest import ingest

    home = tmp_path_factory.mktemp("week-home")
    settings = make_settings(home)
    report = ingest(
        [WEEK],  # the folder as a user ingests it (its README is skipped)
        settings,
        library=Library.open(settings),
        embedder=recorded,
    )
    assert not report.failures
    return home


def test_the_recorded_vectors_are_the_real_models_for_every_chunk(
    week_home: Path, recorded: RecordedEmbedder, embedder
):
    """Every chunk the ingest embedded was in the recording (re-record after a chunking
    change), and a sample of them is what the real model computes now."""
    import numpy as np

    assert recorded.misses == 0, "re-record: python -m tests.recorded_vectors"
    library = Library.open(make_settings(week_home))
    chunks = library.chunks().get(limit=24, include=["documents", "embeddings"])
    texts = chunks["documents"]
    assert len(texts) == 24 and all(text_key(t) in recorded.index for t in texts)
    now = embedder.embed(texts)
    stored = np.asarray(chunks["embeddings"], dtype=np.float32)
    assert np.min(np.sum(now * stored, axis=1)) > 0.999


@pytest.fixture(scope="module")
def week_digest(week_home: Path, embedder):
    with FakeServer(models=["smollm2"]) as server:
        settings = make_settings(week_home, base_url=server.url, model="smollm2")
        digest = build_digest(
            settings,
            Library.open(settings),
            embedder,
            ModelClient(settings),
            date(2025, 11, 17),
            date(2025, 11, 23),
        )
        calls = len(server.chat_requests)
    return digest, calls


def test_a_real_week_reads_as_a_map_of_areas_and_themes(week_digest):
    digest, calls = week_digest
    papers = digest.papers
    assert len(papers) >= 1000  # 1,027 listed; one pair merges by title
    others = sum(len(t.papers) for t in digest.themes if t.other)
    assert others <= 0.15 * len(papers)  # the bar: at most 15% under "Other papers"
    named = digest.named
    assert 12 <= len(named) <= 30 and 3 <= len(digest.areas) <= 7
    assert [t for a in digest.areas for t in a.themes] == named  # every theme in one area
    placed = [p.paper_id for t in digest.themes for p in t.papers]
    assert sorted(placed) == sorted({p.paper_id for p in papers})  # each paper once
    # Model calls grow with themes, not papers: one prose call per theme.
    assert calls == digest.model_calls == len(named)

    names = [t.name for t in named] + [a.name for a in digest.areas]
    for i, a in enumerate(names):
        assert 2 <= len(a.split()) <= 5, a
        for b in names[i + 1 :]:
            assert not _inside(a.lower(), b.lower()) and not _inside(b.lower(), a.lower()), (a, b)
        assert a.lower() not in {"large language", "llms and language", "large language models"}


def test_trends_assign_the_previous_week_by_the_same_rule_and_add_up(week_digest):
    from assistant.digest.themes import assign

    digest, _ = week_digest
    assert digest.previous_total == 981  # the 981 distinct papers of the W46 listings
    counted = sum(t.previous for t in digest.named)
    assert counted + digest.previous_other == digest.previous_total
    # The rule is the one that placed this week's papers: applied to them, it
    # puts each back in its own theme.
    for theme in digest.named:
        for paper in theme.papers[:5]:
            assert assign(digest.themes, paper.vector) is theme
    for theme in digest.named:
        if theme.status == "grew":
            assert len(theme.papers) > theme.previous
        if theme.status == "shrank":
            assert len(theme.papers) < theme.previous


def test_the_week_reads_overview_first_tables_of_six_and_one_line_per_other_paper(week_digest):
    digest, _ = week_digest
    markdown = render_markdown(digest)
    head = markdown.split("\n## ", 3)
    assert head[1].startswith("Overview")  # the overview comes first...
    overview = head[1]
    assert len(overview.splitlines()) <= 40  # ...and fits a screen
    for area in digest.areas:
        assert area.name in re.sub(r"\\(.)", r"\1", overview)
    assert "Top papers:" in overview
    for theme in digest.named:
        assert len(theme.rows) <= TABLE_ROWS
    themes_part = markdown.split("\n## Trends")[1]  # "For you" repeats some papers above it
    numbers = [int(n) for n in re.findall(r"^(?:\| |- )\[(\d+)\]", themes_part, re.MULTILINE)]
    assert sorted(numbers) == list(range(1, len(digest.papers) + 1))  # every paper findable
    assert len(markdown) < 400_000

    page = render_html(digest)
    assert page.count("<details") == len(digest.themes)
    assert '<nav id="contents">' in page and page.index("<nav") < page.index("<details")
    for n in range(1, len(digest.papers) + 1):
        assert f'id="ref-{n}"' in page


def test_eval_digest_scores_the_week(week_digest, week_home: Path):
    from assistant.digest.render import digest_json

    digest, _ = week_digest
    settings = make_settings(week_home)
    scores = score_digest(digest_json(digest), Library.open(settings))
    assert scores["rows_once"] and scores["names_distinct"] and scores["trends_add_up"]
    assert scores["other_share"] <= 0.15 and scores["other_share_ok"]
    assert scores["areas"] == len(digest.areas)


def test_for_you_without_interests_falls_back_to_the_most_central(week_digest):
    digest, _ = week_digest
    assert digest.for_you_basis == "no interests"
    assert digest.for_you and all(p.reasons for p in digest.for_you)
    assert any("most central" in r for p in digest.for_you for r in p.reasons)


def test_fake_server_is_what_wrote_the_prose(week_digest):
    digest, _ = week_digest
    # "(unscripted)" is no sentence the support check keeps.
    assert all(not t.kept for t in digest.named)


__all__ = ["FakeServer"]
