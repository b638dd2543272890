"""The keyword index: incremental updates equal a rebuild, ingest keeps it current, and a
client whose index is behind the store catches up (by the store's change log, else by
comparing metadata, else by rebuilding) and says so when it cannot use the log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assistant.ingest import ingest
from assistant.lexical import index as keyword_index
from assistant.lexical import sync, terms
from assistant.lexical.index import KeywordIndex, Segment
from assistant.retrieve import Retriever
from assistant.store import Library

from .conftest import make_settings
from .test_server_mode import chroma_url  # noqa: F401 - the real `chroma run` fixture


def _paper(pid: str, title: str, abstract: str, published: int | None = None):
    meta = {"title": title, "content_hash": f"h-{pid}-{len(abstract)}", "n_chunks": 1}
    if published:
        meta["published"] = published
    return pid, meta, abstract


CORPUS = [
    _paper(
        "p1",
        "GaLore: Memory-Efficient Training",
        "We project gradients to a low-rank subspace and cut optimizer memory by 65.5%.",
        20240301,
    ),
    _paper(
        "p2",
        "Q-GaLore: Quantized GaLore",
        "GaLore, quantised to INT4, with GaLore projections; GaLore again.",
        20240701,
    ),
    _paper(
        "p3",
        "Zeolite Screening",
        "Graph networks screen zeolite catalysts 12-fold faster.",
        20250101,
    ),
    _paper(
        "p4",
        "Sophia: A Second-order Optimizer",
        "A clipped Hessian estimate doubles the speed of language model pre-training over Adam.",
        20230501,
    ),
]


def _all_scores(index: KeywordIndex, query: str) -> dict[str, float]:
    return dict(index.search(query, 100))


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the index says on stderr, collected instead of printed."""
    said: list[str] = []
    monkeypatch.setattr(sync, "notice", said.append)
    return said


def test_incremental_changes_score_exactly_like_a_rebuild(tmp_path: Path):
    grown = KeywordIndex(tmp_path / "grown")
    for paper in CORPUS:  # one segment per paper
        grown.apply([paper], ())
    changed = _paper("p3", "Catalyst Screening", "Graph networks screen catalysts quickly.")
    grown.apply([changed], ["p4"])  # a new version of p3, p4 deleted
    extras = [
        _paper(f"x{i}", f"Extra {i}", f"filler words number {i}")
        for i in range(keyword_index.MAX_SEGMENTS + 1)
    ]
    for paper in extras:  # more segments than MAX_SEGMENTS: they are merged
        grown.apply([paper], ())
    assert len(grown.segments) < len(extras)
    grown.apply([], [pid for pid, _, _ in extras])

    fresh = KeywordIndex(None)
    fresh.apply([CORPUS[0], CORPUS[1], changed], ())
    for query in ("GaLore", "zeolite catalysts", "optimizer memory 65.5%", "Hessian Adam"):
        a, b = _all_scores(grown, query), _all_scores(fresh, query)
        assert a.keys() == b.keys(), query
        assert all(abs(a[k] - b[k]) < 1e-4 for k in a), (query, a, b)
    assert (
        "p4" not in grown.papers
        and grown.papers["p3"]["content_hash"] == changed[1]["content_hash"]
    )
    assert _all_scores(grown, "zeolite") == {}  # the old text of p3 is gone

    grown.store_id, grown.generation = "store", 7
    grown.save()
    loaded = KeywordIndex(tmp_path / "grown")
    assert loaded.sync_from_disk() and loaded.generation == 7
    assert _all_scores(loaded, "GaLore") == pytest.approx(_all_scores(grown, "GaLore"))


def test_title_terms_weigh_more_than_body_terms():
    index = KeywordIndex(None)
    index.apply(
        [
            _paper("t", "Speculative Decoding", "We study inference of large models."),
            _paper("b", "Faster Inference", "Speculative decoding of large models."),
        ],
        (),
    )
    assert [pid for pid, _ in index.search("speculative decoding", 2)] == ["t", "b"]


def test_names_match_whole_words_longest_first():
    index = KeywordIndex(None)
    index.apply(CORPUS, ())
    assert index.name_matches("What is GaLore?") == ["p1"]
    assert index.name_matches("Summarize Q-GaLore.") == ["p2"]  # not GaLore inside it
    assert index.name_matches("galores of memory") == []
    assert terms.title_name("No Colon Here") is None
    assert terms.title_name("A Title That Is Far Too Long To Be A Name: Really") is None


def test_segment_build_counts_title_and_body_separately():
    seg = Segment.build("s", [CORPUS[1]], {}, vocab_list := [])
    tid = vocab_list.index(terms.tokenize("GaLore")[0])
    i = int(np.flatnonzero(seg.terms == tid)[0])
    assert (int(seg.tf_title[i]), int(seg.tf_body[i])) == (2, 3)


def _jsonl(path: Path, *papers: tuple[str, str, str]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"title": t, "abstract": a, "published": d}) + "\n" for t, a, d in papers
        )
    )
    return path


def test_ingest_adds_a_segment_and_a_new_process_needs_no_rebuild(
    sample_copy, embedder, tmp_path, quiet
):
    settings = make_settings(sample_copy)
    retriever = Retriever(Library.open(settings), embedder, settings)
    assert retriever.search("zeolite catalysts", k=3)[0].title != "Zeolite Catalysts Screened"
    assert quiet and "rebuilding" in quiet[0]  # the copied store had no index: said so
    folder = sync.index_folder(retriever.library, settings)
    before = {p.name for p in folder.glob("seg-*.npz")}
    quiet.clear()

    new = _jsonl(
        tmp_path / "new.jsonl",
        ("Zeolite Catalysts Screened", "Graph networks screen zeolite catalysts.", "2031-02-03"),
    )
    ingest([new], settings, library=retriever.library, embedder=embedder)
    after = {p.name for p in folder.glob("seg-*.npz")}
    assert before < after and len(after - before) == 1  # one new segment, the old one kept
    assert quiet == []  # no rebuild, no comparison: the ingest brought it up to date

    fresh = Retriever(Library.open(settings), embedder, settings)
    hits = fresh.search("zeolite catalysts", k=3)
    assert hits[0].title == "Zeolite Catalysts Screened"
    assert quiet == []
    assert retriever.search("zeolite catalysts", k=3)[0].title == "Zeolite Catalysts Screened"


def test_a_write_that_bypassed_the_index_is_found_by_comparing(sample_copy, embedder, quiet):
    """A store written without `sync.update` (a killed ingest, an old client): the next
    search compares metadata, re-indexes only what differs, and says so."""
    from assistant.store import PaperWrite

    settings = make_settings(sample_copy)
    library = Library.open(settings)
    retriever = Retriever(library, embedder, settings)
    retriever.refresh()
    quiet.clear()
    meta = {
        "title": "Bypass Paper on Perovskite Solar Cells",
        "content_hash": "x",
        "n_chunks": 1,
        "title_key": "bypass",
    }
    text = meta["title"] + "\n\nPerovskite solar cells degrade under humidity."
    library.write(
        [
            PaperWrite(
                "title:bypass",
                meta,
                "Perovskite solar cells degrade under humidity.",
                [text],
                embedder.embed([text]),
            )
        ],
        (embedder.name, embedder.dim),
    )
    hits = retriever.search("perovskite humidity", k=3)
    assert hits[0].paper_id == "title:bypass"
    assert any("comparing every stored paper" in m for m in quiet), quiet
    assert any("1 papers re-indexed" in m for m in quiet), quiet


def _two_clients(tmp_path, embedder, quiet, **server):
    """Client A ingests twice; client B, with its own cache, searches between and after.

    Returns what B saw after A's second ingest: its hits, the notes it printed, and its
    index generation beside the store's.
    """
    settings_a = make_settings(tmp_path / "a", **server)
    library_a = Library.open(settings_a)
    ingest(
        [
            _jsonl(
                tmp_path / "1.jsonl",
                ("Alpha Paper on Kelp Farming", "Kelp farming at scale.", "2030-01-01"),
            )
        ],
        settings_a,
        library=library_a,
        embedder=embedder,
    )
    settings_b = make_settings(tmp_path / "b", **server)  # another cache, the same store
    library_b = (
        Library.open(settings_b) if server else Library(library_a.client, library_a.location)
    )
    reader = Retriever(library_b, embedder, settings_b)
    assert reader.search("kelp farming", k=1)[0].title == "Alpha Paper on Kelp Farming"
    quiet.clear()
    ingest(
        [
            _jsonl(
                tmp_path / "2.jsonl",
                (
                    "Beta Paper on Coral Bleaching",
                    "Coral bleaching under heat waves.",
                    "2030-02-01",
                ),
            )
        ],
        settings_a,
        library=library_a,
        embedder=embedder,
    )
    assert quiet == []
    hits = [h.title for h in reader.search("coral bleaching", k=2)]
    return hits, list(quiet), reader._keyword.generation, library_a.generation


def test_a_second_client_catches_up_from_the_change_log(tmp_path, embedder, quiet):
    """Two clients of one store with separate caches (as two machines on a Chroma server):
    the one that did not ingest replays the logged ids, no comparison, no rebuild."""
    hits, notes, generation, store_generation = _two_clients(tmp_path, embedder, quiet)
    assert hits[0] == "Beta Paper on Coral Bleaching"
    assert notes == []  # replayed from the log: nothing to say
    assert generation == store_generation


def test_clients_of_a_chroma_server_stay_consistent(
    chroma_url,  # noqa: F811
    tmp_path,
    embedder,  # noqa: F811
    quiet,
):
    hits, notes, generation, store_generation = _two_clients(
        tmp_path, embedder, quiet, chroma_url=chroma_url
    )
    assert hits[0] == "Beta Paper on Coral Bleaching"
    assert notes == []
    assert generation == store_generation
    assert not (tmp_path / "b" / "chroma").exists()  # the server holds the store, not B


def test_filtered_search_uses_the_index_dates(sample_retriever):
    from datetime import date

    from assistant.retrieve import Filters

    papers = sample_retriever.papers  # brings the index up to date
    mask = sample_retriever._mask(Filters(since=date(2024, 6, 1)))
    index = sample_retriever._keyword
    admitted = {index.pid_at[d] for d in np.flatnonzero(mask)}
    expected = {pid for pid, meta in papers.items() if (meta.get("published") or 0) >= 20240601}
    assert admitted == expected and admitted


def test_the_library_reads_given_ids_in_batches_and_keeps_side_collections_unsuffixed(
    sample_copy, monkeypatch
):
    """What the sync reads through `Library` alone: the stored papers among some ids (in
    batches, missing ids skipped) and its change log, which a reindex's replacement shares."""
    from assistant import store

    library = Library.open(make_settings(sample_copy))
    every = sorted(pid for pid, _, _ in library.iter_papers())
    monkeypatch.setattr(store, "READ_BATCH", 7)
    wanted = every[::3] + ["no-such-paper"]
    got = list(library.iter_papers(("metadatas", "documents"), ids=wanted))
    assert sorted(pid for pid, _, _ in got) == every[::3]
    assert all(meta.get("title") and extra["document"] for _, meta, extra in got)
    assert library.get_papers(["no-such-paper"]) == {}
    assert library.paper(every[0])["abstract"]
    assert library.state() == (str(library.papers().id), library.generation)

    assert library.side_collection("side_test") is None
    made = library.side_collection("side_test", create=True)
    assert library.replacement().side_collection("side_test").id == made.id
