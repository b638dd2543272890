"""Issue 10: the store, ingest, reindex and readers under real faults.

Each test is named after the issue's item it covers. Stores are real Chroma
stores (embedded, or a real `chroma run` server); faults are injected at the
boundary where they really happen (Chroma's collection calls, the client's
rename/delete steps, a killed server process).

Most tests re-embed text the session's sample ingest already embedded with
the real model; `CachedEmbedder` hands those stored vectors back (and asks
the real model for anything new), so a reindex of 264 papers costs store
writes, not minutes of CPU on a shared machine.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from assistant.ingest import bundled_corpus, ingest, reindex
from assistant.readers import read_file
from assistant.store import PAPERS, Library

from .conftest import ROOT, make_settings
from .test_ingest import ONE_FILE, _assert_consistent

# -- helpers ---------------------------------------------------------------------


class CachedEmbedder:
    """The real MiniLM embedder, with the vectors it already made for the sample.

    Every chunk text of the session's sample ingest maps to its stored vector;
    any other text goes to the real model.
    """

    def __init__(self, inner, vectors: dict[str, list[float]]):
        self.inner, self.vectors = inner, vectors
        self.name, self.fits = inner.name, inner.fits
        self.calls = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        missing = [t for t in texts if t not in self.vectors]
        if missing:
            for text, vector in zip(missing, self.inner.embed(missing)):
                self.vectors[text] = list(vector)
        return np.asarray([self.vectors[t] for t in texts], dtype=np.float32)


@pytest.fixture(scope="session")
def sample_vectors(sample_home: Path) -> dict[str, list[float]]:
    library = Library.open(make_settings(sample_home))
    chunks = library.chunks()
    vectors: dict[str, list[float]] = {}
    offset = 0
    while True:
        batch = chunks.get(include=["documents", "embeddings"], limit=500, offset=offset)
        if not batch["ids"]:
            return vectors
        for text, vector in zip(batch["documents"], batch["embeddings"]):
            vectors[text] = list(vector)
        offset += len(batch["ids"])


@pytest.fixture
def cached(embedder, sample_vectors) -> CachedEmbedder:
    return CachedEmbedder(embedder, dict(sample_vectors))


class Interrupting(CachedEmbedder):
    """Ctrl-C on the n-th embedding call."""

    def __init__(self, inner: CachedEmbedder, on_call: int):
        super().__init__(inner.inner, inner.vectors)
        self.on_call = on_call

    def embed(self, texts):
        if self.calls + 1 == self.on_call:
            self.calls += 1
            raise KeyboardInterrupt
        return super().embed(texts)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from assistant.cli import main

    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def assert_one_line(err: str, *needles: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _assert_commit_marker_holds(library: Library) -> None:
    """The store's invariant after a failed write (see store.py): every stored
    paper has all its chunks with its hash; leftover chunks belong to no
    stored paper (search ignores them, the next ingest overwrites them)."""
    papers = {pid: meta for pid, meta, _ in library.iter_papers()}
    per_paper: dict[str, int] = {}
    for _cid, _text, meta in library.iter_chunks():
        stored = papers.get(meta["paper_id"])
        if stored is not None:
            assert meta["content_hash"] == stored["content_hash"]
            per_paper[meta["paper_id"]] = per_paper.get(meta["paper_id"], 0) + 1
    assert all(per_paper.get(pid) == meta["n_chunks"] for pid, meta in papers.items())


# -- item 1: reindex is crash-safe at every step ------------------------------------


class _CollectionProxy:
    def __init__(self, inner, owner: _FaultyClient):
        self._inner, self._owner = inner, owner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def modify(self, **kwargs):
        was = self._inner.name
        result = self._inner.modify(**kwargs)
        if "name" in kwargs or "reindex_complete" in (kwargs.get("metadata") or {}):
            self._owner.step(removed=was if "name" in kwargs else None)
        return result


class _FaultyClient:
    """A real Chroma client that raises KeyboardInterrupt right after the n-th
    structural step of a swap (a delete, a rename, the completion mark), or
    right after the step that takes the name `papers` away."""

    def __init__(self, inner, after_step: int | None = None, after_papers_gone: bool = False):
        self._inner = inner
        self.after_step, self.after_papers_gone = after_step, after_papers_gone
        self.steps = 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def step(self, removed: str | None) -> None:
        self.steps += 1
        if self.steps == self.after_step or (self.after_papers_gone and removed == PAPERS):
            raise KeyboardInterrupt

    def get_collection(self, *args, **kwargs):
        return _CollectionProxy(self._inner.get_collection(*args, **kwargs), self)

    def get_or_create_collection(self, *args, **kwargs):
        return _CollectionProxy(self._inner.get_or_create_collection(*args, **kwargs), self)

    def delete_collection(self, name):
        self._inner.delete_collection(name)
        self.step(removed=name)


def _interrupted_reindex(home: Path, embedder, **fault) -> None:
    settings = make_settings(home)
    library = Library.open(settings)
    library.client = _FaultyClient(library.client, **fault)
    with pytest.raises(KeyboardInterrupt):
        reindex(settings, library, embedder)


def test_item1_reindex_interrupted_between_the_two_steps_of_swap_in_keeps_all_264(
    sample_copy: Path, cached
):
    before = Library.open(make_settings(sample_copy)).counts()
    assert before[0] == 264
    _interrupted_reindex(sample_copy, cached, after_papers_gone=True)
    # What the user sees next, before doing anything: every paper.
    assert Library.open(make_settings(sample_copy)).counts() == before
    # The obvious next step, reindex again, keeps them all too.
    settings = make_settings(sample_copy)
    assert reindex(settings, Library.open(settings), cached) == 264
    library = Library.open(settings)
    assert library.counts() == before
    _assert_consistent(library)


def _data_collections(library: Library) -> list[str]:
    """The store's collections other than the keyword index's change log (lexical/sync.py)."""
    from assistant.lexical.sync import LOG_COLLECTION

    return sorted(c.name for c in library.client.list_collections() if c.name != LOG_COLLECTION)


@pytest.fixture(scope="module")
def one_file_home(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """A library of one sample file (93 papers), for the tests run once per swap step:
    a reindex of the whole sample costs seconds of store writes each time."""
    from .recorded_vectors import SAMPLE_VECTORS, RecordedEmbedder

    home = tmp_path_factory.mktemp("one-file")
    settings = make_settings(home)
    recorded = RecordedEmbedder(embedder, SAMPLE_VECTORS)
    ingest([ONE_FILE], settings, library=Library.open(settings), embedder=recorded)
    assert recorded.misses == 0
    return home


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5, 6, 7])
def test_item1_reindex_interrupted_at_every_swap_step_then_rerun_keeps_all(
    one_file_home: Path, tmp_path: Path, cached, step: int
):
    home = tmp_path / "home"
    shutil.copytree(one_file_home, home)
    before = Library.open(make_settings(home)).counts()
    assert before[0] == 93
    generation = Library.open(make_settings(home)).generation
    _interrupted_reindex(home, cached, after_step=step)
    settings = make_settings(home)
    assert Library.open(settings).counts() == before
    assert reindex(settings, Library.open(settings), cached) == 93
    library = Library.open(settings)
    assert library.counts() == before
    assert _data_collections(library) == ["chunks", "papers"]  # no __next/__old left over
    assert library.generation > generation  # caches keyed on the old generation are dropped
    _assert_consistent(library)


def test_item1_reindex_interrupted_while_embedding_keeps_the_old_library(sample_copy: Path, cached):
    settings = make_settings(sample_copy)
    before = Library.open(settings).counts()
    with pytest.raises(KeyboardInterrupt):
        reindex(settings, Library.open(settings), Interrupting(cached, on_call=3))
    library = Library.open(settings)
    assert library.counts() == before
    # The half-built replacement is dropped: no space is held by a dead reindex.
    assert _data_collections(library) == ["chunks", "papers"]  # no __next/__old left over
    assert reindex(settings, library, cached) == 264
    _assert_consistent(Library.open(settings))


def test_item1_ctrl_c_in_reindex_is_one_line_and_exit_130(
    sample_copy: Path, cached, capsys, monkeypatch
):
    import assistant.embed

    monkeypatch.setattr(
        assistant.embed, "make_embedder", lambda settings: Interrupting(cached, on_call=2)
    )
    rc, _out, err = run_cli(
        [
            "--home",
            str(sample_copy),
            "--embed-model-dir",
            os.environ.get("ASSISTANT_EMBED_MODEL_DIR", ""),
            "reindex",
        ],
        capsys,
    )
    assert rc == 130
    assert_one_line(err, "interrupted", "no paper is lost", "assistant reindex")
    assert Library.open(make_settings(sample_copy)).counts()[0] == 264


# -- item 2: one bad byte costs its line, not the file --------------------------------


def test_item2_a_latin1_line_in_jsonl_costs_only_that_line(tmp_path: Path):
    good = '{"title": "Paper %d", "abstract": "An abstract about attention sinks."}\n'
    data = (
        (good % 1).encode()
        + '{"title": "Caf\u00e9", "abstract": "Latin-1."}\n'.encode("latin-1")
        + (good % 3).encode()
    )
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(data)
    result = read_file(path)
    assert [p.title for p in result.papers] == ["Paper 1", "Paper 3"]
    assert len(result.errors) == 1
    assert result.errors[0].line == 2
    assert "not UTF-8 text (invalid byte 0xe9" in result.errors[0].reason


def test_item2_a_page_cut_inside_a_multibyte_character_keeps_its_papers(tmp_path: Path):
    original = (bundled_corpus() / "004_de09b6e12a2e9100.txt").read_bytes()
    complete = len(read_file(bundled_corpus() / "004_de09b6e12a2e9100.txt").papers)
    tail = (
        "\n\nA Late Paper on Caches\n\nWe study caches in transformer inference and "
        "find that the na\u00efve"
    ).encode()
    path = tmp_path / "cut.txt"
    path.write_bytes(original + tail[: -len(" na\u00efve".encode()) + 4])  # inside "ï"
    result = read_file(path)
    assert result.errors == []
    assert len(result.papers) == complete + 1
    reasons = " | ".join(w.reason for w in result.warnings)
    assert "cut short" in reasons and "looks truncated" in reasons


# -- item 5: the interrupted report tells the truth; concurrent ingests -----------------


def test_item5_interrupted_ingest_reports_only_what_was_stored(tmp_path: Path, cached):
    settings = make_settings(tmp_path / "home")
    library = Library.open(settings)
    report = ingest([ONE_FILE], settings, library=library, embedder=Interrupting(cached, on_call=3))
    stored = library.counts()[0]
    assert report.interrupted and 0 < stored < 93
    assert report.added == stored
    assert report.not_stored == 93 - stored
    assert sum(f.added for f in report.files) == stored
    assert report.to_dict()["not_stored"] == 93 - stored


class _Meeting(CachedEmbedder):
    """Waits at its first call until the other ingest arrives (or cannot arrive:
    with the write lock the other one is queued, and says so by breaking the
    barrier), so that without a lock both diff against the same empty store."""

    def __init__(self, inner: CachedEmbedder, barrier: threading.Barrier):
        super().__init__(inner.inner, inner.vectors)
        self.barrier = barrier

    def embed(self, texts):
        if self.calls == 0:
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                pass  # the other ingest is waiting for the lock: go on alone
        return super().embed(texts)


def test_item5_concurrent_ingests_on_one_home_lose_no_generation_increment(tmp_path: Path, cached):
    alone = make_settings(tmp_path / "alone")
    ingest([ONE_FILE], alone, library=Library.open(alone), embedder=cached)
    expected_generation = Library.open(alone).generation

    settings = make_settings(tmp_path / "home")
    barrier = threading.Barrier(2, timeout=20)
    reports, errors = [], []

    def run(library: Library) -> None:
        try:
            reports.append(
                ingest(
                    [ONE_FILE],
                    settings,
                    library=library,
                    embedder=_Meeting(cached, barrier),
                    # queued behind the lock: the first need not wait out the timeout
                    notify=lambda _message: barrier.abort(),
                )
            )
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    # Two Library objects (two lock handles, as two processes have), opened here
    # because chromadb cannot create two clients for one path at the same instant.
    threads = [threading.Thread(target=run, args=(Library.open(settings),)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted((r.added, r.unchanged) for r in reports) == [(0, 93), (93, 0)]
    library = Library.open(settings)
    assert library.generation == expected_generation
    _assert_consistent(library)


_BUMPER = """
import sys, time
from pathlib import Path
from assistant.settings import Settings
from assistant.store import Library
home = Path(sys.argv[1])
library = Library.open(Settings(home=home))
(home / f"ready-{sys.argv[2]}").touch()
while not (home / "go").exists():  # start together, so the writes really overlap
    time.sleep(0.05)
for _ in range(100):
    library._bump_generation()
"""


def test_item5_two_processes_bumping_the_generation_lose_no_increment(tmp_path: Path, embedder):
    """Two processes bumping one store's generation at once: 2 x 100, all counted."""
    import time

    home = tmp_path / "home"
    settings = make_settings(home)
    Library.open(settings).papers(create_for=(embedder.name, embedder.dim))
    procs = [
        subprocess.Popen([sys.executable, "-c", _BUMPER, str(home), str(i)], cwd=ROOT)
        for i in range(2)
    ]
    while not all((home / f"ready-{i}").exists() for i in range(2)):
        assert all(p.poll() is None for p in procs), "a bumper process died"
        time.sleep(0.05)
    (home / "go").touch()
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert Library.open(settings).generation == 200


# -- item 8: disk full ---------------------------------------------------------------


@pytest.mark.parametrize("fault", ["ENOSPC", "sqlite"])
def test_item8_disk_full_during_ingest_is_one_line_and_the_store_stays_consistent(
    tmp_path: Path, cached, capsys, monkeypatch, fault: str
):
    import chromadb.api.models.Collection as chroma_collection
    from chromadb.errors import InternalError

    import assistant.embed

    real_upsert = chroma_collection.Collection.upsert
    calls = {"n": 0}

    def full_disk_upsert(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 4:  # the first batch stored, then the disk fills
            if fault == "ENOSPC":
                raise OSError(errno.ENOSPC, "No space left on device")
            raise InternalError("Database error: database or disk is full")
        return real_upsert(self, *args, **kwargs)

    monkeypatch.setattr(chroma_collection.Collection, "upsert", full_disk_upsert)
    monkeypatch.setattr(assistant.embed, "make_embedder", lambda settings: cached)
    home = tmp_path / "home"
    rc, _out, err = run_cli(["--home", str(home), "ingest", str(ONE_FILE)], capsys)
    assert rc != 0
    assert_one_line(
        err,
        "Error:",
        "is full",
        "library is consistent",
        "free some disk space",
        "run the same command again",
    )
    monkeypatch.setattr(chroma_collection.Collection, "upsert", real_upsert)
    library = Library.open(make_settings(home))
    stored = library.counts()[0]
    assert f"{stored} of the 93" in err
    _assert_commit_marker_holds(library)
    again = ingest([ONE_FILE], make_settings(home), library=library, embedder=cached)
    assert again.added == 93 - stored and again.total_papers == 93


# -- item 9: the Chroma server dies mid-ingest -----------------------------------------


@pytest.fixture
def chroma_server(tmp_path: Path):
    """A real `chroma run` that the test may stop."""
    import shutil
    import time
    import urllib.request

    from assistant.localserver import free_port

    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = free_port()
    log = open(tmp_path / "chroma.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [chroma, "run", "--path", str(tmp_path / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(
                    "chroma run did not start: " + (tmp_path / "chroma.log").read_text()[-2000:]
                )
            time.sleep(0.3)
    yield url, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    log.close()


class _ServerKiller(CachedEmbedder):
    """Stops the Chroma server on the n-th embedding call (batch n-1 was stored)."""

    def __init__(self, inner: CachedEmbedder, proc: subprocess.Popen, on_call: int):
        super().__init__(inner.inner, inner.vectors)
        self.proc, self.on_call = proc, on_call

    def embed(self, texts):
        if self.calls + 1 == self.on_call:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        return super().embed(texts)


def test_item9_chroma_server_dying_mid_ingest_is_one_line(
    tmp_path: Path, cached, chroma_server, capsys, monkeypatch
):
    import assistant.embed

    url, proc = chroma_server
    monkeypatch.setattr(
        assistant.embed, "make_embedder", lambda settings: _ServerKiller(cached, proc, on_call=3)
    )
    rc, _out, err = run_cli(
        ["--home", str(tmp_path / "home"), "--chroma-url", url, "ingest", str(ONE_FILE)], capsys
    )
    assert proc.poll() is not None  # the server really is gone
    assert rc != 0
    assert_one_line(
        err,
        "Error:",
        "lost the connection to the Chroma server",
        url,
        "library is consistent",
        "start the Chroma server again",
    )


# -- item 11: devices, FIFOs and runaway records ---------------------------------------

_READ_ONE = (
    "import resource, sys\n"
    "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
    "from pathlib import Path\nfrom assistant.readers import read_file\n"
    "r = read_file(Path(sys.argv[1]))\n"
    "print(len(r.papers), '|'.join(e.reason for e in r.errors))\n"
)


def _read_in_a_sandbox(path: Path) -> str:
    """read_file in a child with 1 GiB of address space and a deadline, so the
    old behaviour (read /dev/zero forever, block on a FIFO) fails the test
    instead of taking the machine or the run down."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _READ_ONE, str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading {path} did not return")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_item11_dev_zero_is_refused_without_reading_it():
    out = _read_in_a_sandbox(Path("/dev/zero"))
    assert out.startswith("0 ") and "not a regular file (a device)" in out


def test_item11_a_fifo_is_refused_without_blocking(tmp_path: Path):
    fifo = tmp_path / "papers.jsonl"
    os.mkfifo(fifo)
    out = _read_in_a_sandbox(fifo)
    assert out.startswith("0 ") and "not a regular file (a FIFO)" in out


def test_item11_a_record_over_the_size_cap_is_refused_by_name(tmp_path: Path):
    from assistant.records import RecordTooLarge

    huge = "word " * 60_000  # 300,000 characters in one "abstract"
    path = tmp_path / "big.jsonl"
    path.write_text(
        '{"title": "Fine", "abstract": "A normal abstract."}\n'
        + json.dumps({"title": "Runaway", "abstract": huge})
        + "\n"
        + '{"title": "Also fine", "abstract": "Another normal abstract."}\n'
    )
    result = read_file(path)
    assert [p.title for p in result.papers] == ["Fine", "Also fine"]
    assert len(result.errors) == 1 and isinstance(result.errors[0], RecordTooLarge)
    assert result.errors[0].line == 2 and "record too large" in result.errors[0].reason
    page = tmp_path / "big.txt"
    page.write_text(f"Daily Papers\n\nRunaway Title\n\n{huge.strip()}.\n")
    errors = read_file(page).errors
    assert len(errors) == 1 and isinstance(errors[0], RecordTooLarge)


# -- item 13: truncated abstracts and unparseable dates are said, not hidden --------------


def test_item13_truncated_page_abstract_is_stored_and_reported(tmp_path: Path, cached):
    original = (bundled_corpus() / "004_de09b6e12a2e9100.txt").read_text(encoding="utf-8")
    cut = original[: original.rindex(".") - 40]  # mid-sentence in the last abstract
    path = tmp_path / "page.txt"
    path.write_text(cut, encoding="utf-8")
    settings = make_settings(tmp_path / "home")
    library = Library.open(settings)
    report = ingest([path], settings, library=library, embedder=cached)
    assert not report.failures and report.exit_code == 0
    assert len(report.warnings) == 1 and "looks truncated" in report.warnings[0].reason
    assert report.files[0].warnings == 1
    last = read_file(path).papers[-1]
    stored = library.get_papers([last.paper_id])[last.paper_id]
    assert stored["title"] == last.title  # stored, as the report says
    assert report.to_dict()["warnings"][0]["line"] == last.line


def test_item13_unparseable_date_is_stored_undated_with_a_warning(tmp_path: Path, cached):
    path = tmp_path / "dates.jsonl"
    path.write_text(
        '{"title": "Dated", "abstract": "An abstract.", "published": "2024-03-01"}\n'
        '{"title": "Undatable", "abstract": "An abstract.", "published": "first of March"}\n'
    )
    settings = make_settings(tmp_path / "home")
    library = Library.open(settings)
    report = ingest([path], settings, library=library, embedder=cached)
    assert report.added == 2 and not report.failures and report.exit_code == 0
    assert [(w.line, w.reason) for w in report.warnings] == [
        (2, "unparseable date in field 'published': 'first of March'; stored without a date")
    ]
    stored = {m["title"]: m for _, m, _ in library.iter_papers()}
    assert "published" not in stored["Undatable"] and stored["Dated"]["published"] == 20240301


def test_item13_ingest_command_prints_the_warnings(tmp_path: Path, cached, capsys, monkeypatch):
    import assistant.embed

    monkeypatch.setattr(assistant.embed, "make_embedder", lambda settings: cached)
    path = tmp_path / "dates.jsonl"
    path.write_text('{"title": "Undatable", "abstract": "An abstract.", "date": "soon"}\n')
    rc, out, _err = run_cli(["--home", str(tmp_path / "home"), "ingest", str(path)], capsys)
    assert rc == 0
    assert "warning" in out and "stored without a date" in out


# -- item 14: a broken store is an error, not an empty library ----------------------------


def test_item14_a_broken_store_is_an_error_not_an_empty_library(sample_copy: Path, capsys):
    import sqlite3

    db = sqlite3.connect(sample_copy / "chroma" / "chroma.sqlite3")
    db.execute("ALTER TABLE collections RENAME TO collections_lost")
    db.commit()
    db.close()
    rc, out, err = run_cli(["--home", str(sample_copy), "papers"], capsys)
    assert rc == 1
    assert "0 papers" not in out and "empty" not in out
    assert_one_line(err, "Error:", "cannot be read", str(sample_copy / "chroma"), "damaged")
