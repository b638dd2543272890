"""Shared fixtures: the real embedding model, a real Chroma store, the sample corpus.

The embedder is chromadb's all-MiniLM-L6-v2 read from ASSISTANT_EMBED_MODEL_DIR
(or, beside a checkout, ../shared/models/), libraries are real persistent Chroma
stores in temporary folders, and `llama_server` is llama.cpp's server on SmolLM2.
The one stand-in is `fake_llm` (tests/fakeserver.py), for tests where the
model's words are not what is tested: prompt budgets, files, plumbing, faults.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.settings import Settings

from .fakeserver import FakeServer

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODEL = ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker may run a llama.cpp server (its own, or one a CLI
    test starts) at the same time as the others: the cores are shared out between them,
    as llama.cpp's threads spin while they wait and slow each other down when oversubscribed."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        return
    from assistant.localserver import physical_cores

    share = max(1, physical_cores() // workers)
    if not os.environ.get("ASSISTANT_LOCAL_THREADS"):
        os.environ["ASSISTANT_LOCAL_THREADS"] = str(share)
    _share_onnxruntime_threads(share)


def _share_onnxruntime_threads(threads: int) -> None:
    """The embedder's ONNX sessions (chromadb builds them with onnxruntime's default, a
    thread per core) in this worker, and the CLI commands it runs in-process, use its
    share of the cores: two embedders at onnxruntime's default embed less in all than at
    one thread each (`bench/threads_bench.py --embedder`: 6.7 against 8.8 abstracts/s on
    2 cores, under load)."""
    import onnxruntime

    default = onnxruntime.SessionOptions

    class SharedCores(default):  # chromadb calls onnxruntime.SessionOptions() by name
        def __init__(self) -> None:
            super().__init__()
            self.intra_op_num_threads = threads
            self.inter_op_num_threads = 1

    onnxruntime.SessionOptions = SharedCores


# The modules that take longest (`pytest --durations=0`, summed per module), longest
# first: they are collected first, so pytest-xdist hands them out first and no worker
# is left running one of them alone at the end of the run.
SLOWEST_MODULES = (
    "test_digest.py",
    "test_local.py",
    "test_faults_store.py",
    "test_answer.py",
    "test_tui.py",
    "test_safety.py",
    "test_fetch.py",
    "test_digest_week.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: in-module order


def embed_model_dir() -> Path | None:
    """The offline copy of the model when there is one; else chromadb downloads it."""
    configured = os.environ.get("ASSISTANT_EMBED_MODEL_DIR")
    if configured:
        return Path(configured)
    return SHARED_MODEL if (SHARED_MODEL / "onnx" / "model.onnx").is_file() else None


@pytest.fixture(autouse=True)
def _no_hosted_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any code path that silently reached for a hosted default must fail."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ASSISTANT_MODEL", raising=False)


def make_settings(home: Path, **changes) -> Settings:
    return Settings(home=home, embed_model_dir=embed_model_dir(), **changes)


@pytest.fixture(scope="session")
def embedder():
    from assistant.embed import MiniLMEmbedder

    return MiniLMEmbedder(embed_model_dir())


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """A home with the bundled sample ingested once for the whole session (per worker).

    Read-only for tests; tests that write use `sample_copy`. Its vectors are the real
    model's, read from a recording (tests/recorded_vectors.py); what it lacks is embedded.
    """
    from assistant.ingest import ingest
    from assistant.store import Library

    from .recorded_vectors import SAMPLE_VECTORS, RecordedEmbedder

    home = tmp_path_factory.mktemp("sample-home")
    settings = make_settings(home)
    recorded = RecordedEmbedder(embedder, SAMPLE_VECTORS)
    report = ingest([], settings, library=Library.open(settings), embedder=recorded)
    assert report.total_papers == 264 and not report.failures
    assert recorded.misses == 0, "re-record: python -m tests.recorded_vectors"
    return home


@pytest.fixture
def recorded(embedder):
    """The real embedder answering from the recording of its vectors for every chunk of
    the bundled sample (tests/recorded_vectors.py): an ingest of sample files costs
    store writes, not the model's CPU; any other text goes to the model."""
    from .recorded_vectors import SAMPLE_VECTORS, RecordedEmbedder

    return RecordedEmbedder(embedder, SAMPLE_VECTORS)


@pytest.fixture
def replayed(embedder):
    """As `recorded`, for the papers of the recorded HF and arXiv responses that
    tests/replay.py serves to `fetch` and `follow`."""
    from .recorded_vectors import REPLAY_VECTORS, RecordedEmbedder

    return RecordedEmbedder(embedder, REPLAY_VECTORS)


@pytest.fixture
def sample_copy(sample_home: Path, tmp_path: Path) -> Path:
    """A private copy of the ingested sample that a test may change."""
    home = tmp_path / "home"
    shutil.copytree(sample_home / "chroma", home / "chroma")
    return home


@pytest.fixture(scope="session")
def sample_retriever(sample_home: Path, embedder):
    from assistant.retrieve import Retriever
    from assistant.store import Library

    settings = make_settings(sample_home)
    return Retriever(Library.open(settings), embedder, settings)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """llama.cpp's OpenAI-compatible server with SmolLM2-135M on a free loopback port.

    Fails (never skips) when llama-cpp-python[server] or the model is missing.
    """
    from assistant.localserver import LocalServerError, llama_server

    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    try:
        threads = int(os.environ.get("ASSISTANT_LOCAL_THREADS") or 0) or None
        with llama_server(
            n_ctx=4096, log_path=log_path, start_timeout=120, n_threads=threads
        ) as url:
            yield url
    except LocalServerError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def model_settings(sample_home: Path, llama_server: str) -> Settings:
    return make_settings(
        sample_home, base_url=llama_server, model="smollm2", context_window=4096, timeout=120.0
    )


@pytest.fixture
def fake_llm() -> Iterator[FakeServer]:
    """The scripted fake endpoint, serving a model named "smollm2" (as `llama_server` does).

    Unscripted chat requests get the fixed reply "(unscripted)" and embedding
    requests hash-seeded vectors; every request is recorded, so a test asserts
    on what was sent (sizes, counts) rather than on what a model wrote.
    """
    with FakeServer(models=["smollm2"]) as server:
        yield server
