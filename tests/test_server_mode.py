"""The library on a real Chroma server (`chroma run`), as users run it past one machine."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from assistant.ingest import bundled_corpus, ingest
from assistant.localserver import free_port
from assistant.retrieve import Retriever
from assistant.store import Library

from .conftest import make_settings


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory):
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = open(data / "server.log", "w")
    proc = subprocess.Popen(
        [chroma, "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
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
                log_text = (data / "server.log").read_text()[-2000:]
                pytest.fail("chroma run did not start: " + log_text)
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_ingest_and_search_through_a_chroma_server(chroma_url: str, tmp_path: Path, embedder):
    settings = make_settings(tmp_path / "home", chroma_url=chroma_url)
    library = Library.open(settings)
    assert library.location == chroma_url
    one_file = bundled_corpus() / "004_de09b6e12a2e9100.txt"
    report = ingest([one_file], settings, library=library, embedder=embedder)
    assert report.added == report.total_papers > 30
    assert not (tmp_path / "home" / "chroma").exists()  # nothing embedded locally

    again = ingest([one_file], settings, library=Library.open(settings), embedder=embedder)
    assert (again.added, again.updated) == (0, 0)

    retriever = Retriever(Library.open(settings), embedder, settings)
    hits = retriever.search("personality traits of language models", k=3)
    assert hits and "Personality" in hits[0].title
