"""Ingest into a real Chroma store with the real embedder: identity, idempotence,
updates, interruption and chunk coverage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from assistant.chunking import chunk_texts, split_abstract
from assistant.embed import MINILM_MAX_WORDPIECES
from assistant.errors import EmbedderMismatch
from assistant.ingest import bundled_corpus, expand_paths, ingest, merge_records
from assistant.readers import read_file
from assistant.store import Library

from .conftest import ROOT, make_settings


def _library(home: Path) -> Library:
    return Library.open(make_settings(home))


def _all_chunks(library: Library) -> list[tuple[str, str, dict]]:
    return list(library.iter_chunks())


def _sample_papers():
    papers = []
    for path in expand_paths([bundled_corpus()]):
        papers.extend(read_file(path).papers)
    return merge_records(papers)


def test_bundled_corpus_is_a_byte_for_byte_copy_of_the_shared_one():
    shared = ROOT.parent / "shared" / "corpus" / "hf-daily-papers"
    if not shared.is_dir():
        pytest.fail(f"{shared} is missing: CI runs with ../shared beside the checkout")
    ours = sorted(p.name for p in bundled_corpus().iterdir())
    assert ours == sorted(p.name for p in shared.iterdir())
    for name in ours:
        assert (bundled_corpus() / name).read_bytes() == (shared / name).read_bytes()


def test_sample_ingest_stores_264_distinct_papers(sample_home: Path):
    library = _library(sample_home)
    n_papers, n_chunks = library.counts()
    assert n_papers == 264
    chunks = _all_chunks(library)
    assert len(chunks) == n_chunks
    # Every chunk belongs to a stored paper and carries its current text hash.
    papers = dict((pid, meta) for pid, meta, _ in library.iter_papers())
    for cid, _text, meta in chunks:
        assert cid.startswith(meta["paper_id"] + "#")
        assert papers[meta["paper_id"]]["content_hash"] == meta["content_hash"]
    per_paper = Counter(meta["paper_id"] for _, _, meta in chunks)
    assert all(per_paper[pid] == meta["n_chunks"] for pid, meta in papers.items())


def test_second_run_writes_nothing(sample_copy: Path, embedder):
    settings = make_settings(sample_copy)
    library = Library.open(settings)
    generation = library.generation
    report = ingest([], settings, library=library, embedder=embedder)
    assert (report.added, report.updated, report.unchanged) == (0, 0, 264)
    assert report.total_papers == 264
    assert library.generation == generation  # not a single write happened


def test_same_paper_in_two_files_is_one_paper(sample_home: Path):
    library = _library(sample_home)
    merged = _sample_papers()
    multi = [m for m in merged.values() if len({s.source for s in m.sightings}) > 1]
    assert multi, "the sample has papers that appear in several files"
    stored = library.get_papers([m.paper.paper_id for m in multi])
    assert len(stored) == len(multi)
    for m in multi:
        sources = json.loads(stored[m.paper.paper_id]["sources"])
        assert len({s.rsplit(":", 1)[0] for s in sources}) > 1


def test_metadata_quirks_survive_into_the_store(sample_home: Path):
    library = _library(sample_home)
    by_title = {meta["title"]: meta for _, meta, _ in library.iter_papers()}
    elaswave = by_title["ElasWave: An Elastic-Native System for Scalable Hybrid-Parallel Training"]
    assert elaswave["author_count"] == 19
    assert elaswave["year_inferred"] is True
    assert elaswave["published"] % 10000 == 1001  # Oct 1, year inferred
    adamp = next(m for t, m in by_title.items() if t.startswith("AdamP"))
    assert adamp["organisation"] == "naver-ai NAVER AI Lab"
    assert "author_count" not in adamp


def test_every_abstract_is_covered_by_chunks_that_fit_the_model(embedder):
    for m in _sample_papers().values():
        p = m.paper
        bodies = split_abstract(p.title, p.abstract, embedder.fits)
        texts = chunk_texts(p.title, bodies)
        assert all(t.startswith(p.title + "\n\n") for t in texts)
        assert all(embedder.count_wordpieces(t) <= MINILM_MAX_WORDPIECES for t in texts)
        # Every word of the abstract appears, in order, across the chunks.
        words = p.abstract.split()
        joined = " ".join(bodies).split()
        position = 0
        for word in words:
            position = joined.index(word, position) + 1 if word in joined[position:] else -1
            assert position > 0, f"{p.title!r}: {word!r} is in no chunk"
        assert words[-1] in bodies[-1]


def test_changed_abstract_replaces_the_old_chunks(sample_copy: Path, embedder, tmp_path: Path):
    settings = make_settings(sample_copy)
    library = Library.open(settings)
    target = next(m.paper for m in _sample_papers().values() if m.paper.published)
    old_n = library.get_papers([target.paper_id])[target.paper_id]["n_chunks"]
    changed = tmp_path / "changed.jsonl"
    new_abstract = "A much shorter abstract about sparse attention for protein folding."
    changed.write_text(json.dumps({"title": target.title, "abstract": new_abstract}) + "\n")
    report = ingest([changed], settings, library=library, embedder=embedder)
    assert (report.added, report.updated) == (0, 1)
    chunks = [c for c in library.iter_chunks() if c[2]["paper_id"] == target.paper_id]
    assert len(chunks) == 1 < old_n
    assert new_abstract in chunks[0][1]
    assert library.counts()[0] == 264
    # Metadata the new file does not carry is kept from the earlier sighting.
    stored = library.get_papers([target.paper_id])[target.paper_id]
    assert stored["published"] == int(target.published.strftime("%Y%m%d"))
    again = ingest([changed], settings, library=library, embedder=embedder)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1)


def test_arxiv_id_learnt_later_merges_with_the_title_only_paper(
    sample_copy: Path, embedder, tmp_path: Path
):
    settings = make_settings(sample_copy)
    library = Library.open(settings)
    target = next(iter(_sample_papers().values())).paper
    assert target.arxiv_id is None
    export = tmp_path / "export.jsonl"
    export.write_text(
        json.dumps({"title": target.title, "abstract": target.abstract, "arxiv_id": "2401.00001"})
        + "\n"
    )
    report = ingest([export], settings, library=library, embedder=embedder)
    assert report.total_papers == 264  # the same paper, now under its arXiv id
    assert report.updated == 1
    assert library.get_papers([target.title_id]) == {}
    stored = library.get_papers(["2401.00001"])["2401.00001"]
    assert stored["title"] == target.title
    assert not [c for c in library.iter_chunks() if c[2]["paper_id"] == target.title_id]
    # The page without the id still maps to the same paper afterwards.
    again = ingest([], settings, library=library, embedder=embedder)
    assert again.total_papers == 264 and again.added == 0


class _InterruptingEmbedder:
    """An embedder interrupted (Ctrl-C) on its n-th call."""

    def __init__(self, inner, interrupt_on: int):
        self.inner, self.calls, self.interrupt_on = inner, 0, interrupt_on
        self.name, self.fits = inner.name, inner.fits

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts):
        self.calls += 1
        if self.calls == self.interrupt_on:
            raise KeyboardInterrupt
        return self.inner.embed(texts)


# 93 papers: three embedding batches, so an interruption can fall between writes.
ONE_FILE = bundled_corpus() / "001_6bca746acf7cc91f.txt"


def test_ctrl_c_leaves_a_consistent_store_and_the_next_run_completes(tmp_path: Path, recorded):
    settings = make_settings(tmp_path / "home")
    library = Library.open(settings)
    first = ingest(
        [ONE_FILE],
        settings,
        library=library,
        embedder=_InterruptingEmbedder(recorded, interrupt_on=3),
    )
    assert first.interrupted and first.exit_code == 1
    stored_papers, _ = library.counts()
    assert 0 < stored_papers < 93
    second = ingest([ONE_FILE], settings, library=library, embedder=recorded)
    assert second.added == 93 - stored_papers and not second.interrupted
    assert second.total_papers == 93
    _assert_consistent(library)
    assert recorded.misses == 0  # every vector came from the recording


KILLER = """
import os, signal, sys
from pathlib import Path
from assistant.embed import MiniLMEmbedder
from assistant.ingest import ingest
from assistant.settings import Settings
from tests.recorded_vectors import SAMPLE_VECTORS, RecordedEmbedder
real = MiniLMEmbedder(Path(sys.argv[2]) if sys.argv[2] else None)
inner = RecordedEmbedder(real, SAMPLE_VECTORS)
calls = 0
class Killer:
    name, dim, fits = inner.name, inner.dim, inner.fits
    def embed(self, texts):
        global calls
        calls += 1
        if calls == 3:  # batch 2 is being written in the store thread right now
            os.kill(os.getpid(), signal.SIGKILL)
        return inner.embed(texts)
settings = Settings(home=Path(sys.argv[1]), embed_model_dir=real._model_dir)
ingest([Path(sys.argv[3])], settings, embedder=Killer())
"""


def test_kill_during_ingest_then_resume_without_duplicates(tmp_path: Path, recorded):
    home = tmp_path / "home"
    from .conftest import embed_model_dir

    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(home), str(embed_model_dir() or ""), str(ONE_FILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    settings = make_settings(home)
    library = Library.open(settings)
    stored_before = library.counts()[0]
    assert stored_before < 93
    report = ingest([ONE_FILE], settings, library=library, embedder=recorded)
    assert report.added == 93 - stored_before
    assert report.total_papers == 93
    _assert_consistent(library)
    assert recorded.misses == 0


def _assert_consistent(library: Library) -> None:
    papers = {pid: meta for pid, meta, _ in library.iter_papers()}
    chunks = _all_chunks(library)
    ids = [cid for cid, _, _ in chunks]
    assert len(ids) == len(set(ids))
    per_paper = Counter(meta["paper_id"] for _, _, meta in chunks)
    assert set(per_paper) == set(papers)
    for pid, meta in papers.items():
        assert per_paper[pid] == meta["n_chunks"]


def test_querying_with_another_embedder_is_refused(sample_home: Path):
    library = _library(sample_home)
    with pytest.raises(EmbedderMismatch, match="reindex"):
        library.check_embedder("endpoint:nomic-embed-text", 768)


def test_unwritable_store_directory_is_a_clear_error(tmp_path: Path):
    if os.geteuid() == 0:
        # root ignores permission bits: make the store path a file instead.
        home = tmp_path / "home"
        home.mkdir()
        (home / "chroma").write_text("not a folder")
    else:
        home = tmp_path / "ro"
        home.mkdir()
        home.chmod(0o500)
    from assistant.errors import StoreError

    with pytest.raises(StoreError, match=str(home / "chroma")):
        Library.open(make_settings(home))


class _RenamedEmbedder:
    """The real model under another name: what switching embedders looks like to the store."""

    name = "all-MiniLM-L6-v2-renamed"

    def __init__(self, inner):
        self.inner, self.fits = inner, inner.fits

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts):
        return self.inner.embed(texts)


def test_reindex_switches_the_library_to_another_embedder(tmp_path: Path, recorded):
    from assistant.ingest import reindex
    from assistant.retrieve import Retriever

    settings = make_settings(tmp_path / "home")
    library = Library.open(settings)
    one_file = bundled_corpus() / "004_de09b6e12a2e9100.txt"
    ingest([one_file], settings, library=library, embedder=recorded)
    before = library.counts()
    other = _RenamedEmbedder(recorded)
    with pytest.raises(EmbedderMismatch):
        Retriever(library, other, settings).search("personality of language models")
    assert reindex(settings, library, other) == before[0]
    library = Library.open(settings)
    assert library.counts() == before
    assert library.embedder_info == (other.name, other.dim)
    hits = Retriever(library, other, settings).search("personality of language models", k=3)
    assert "Personality" in hits[0].title
    _assert_consistent(library)
