"""Weekly digests against the real local model (SmolLM2 through llama.cpp's server)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from assistant.digest import build_digest, cluster, parse_week, resolve_window
from assistant.errors import UsageError
from assistant.ingest import ingest
from assistant.llm import ModelClient
from assistant.store import Library
from assistant.tokens import count_message_tokens

from .conftest import ROOT, embed_model_dir, make_settings


@pytest.fixture(scope="module")
def digest_home(sample_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("digest-home")
    shutil.copytree(sample_home / "chroma", home / "chroma")
    return home


def _cli(home: Path, server: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ASSISTANT_HOME": str(home), "OPENAI_BASE_URL": server,
           "ASSISTANT_MODEL": "smollm2", "ASSISTANT_CONTEXT_WINDOW": "4096",
           "ASSISTANT_TIMEOUT": "300"}
    if embed_model_dir():
        env["ASSISTANT_EMBED_MODEL_DIR"] = str(embed_model_dir())
    return subprocess.run([sys.executable, "-m", "assistant", "digest", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=1800)


def test_digest_of_2024_groups_every_paper_once_and_cites_only_the_window(
    digest_home: Path, llama_server: str
):
    out = digest_home / "d2024.json"
    proc = _cli(digest_home, llama_server, "--since", "2024-01-01", "--until", "2024-12-31",
                "--format", "json", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert data["written"] == str(out)
    assert json.loads(out.read_text())["themes"] == data["themes"]

    window = {p["paper_id"] for p in data["papers"]}
    assert len(window) == len(data["papers"]) > 10
    assert all("2024-01-01" <= p["published"] <= "2024-12-31" for p in data["papers"])
    grouped = [pid for theme in data["themes"] for pid in theme["paper_ids"]]
    assert sorted(grouped) == sorted(window)  # every paper in exactly one theme
    assert len(data["themes"]) >= 2
    for theme in data["themes"]:
        assert theme["name"].strip()
        assert set(theme["citations"]) <= set(theme["paper_ids"]) <= window

    markdown = data["markdown"]
    for theme in data["themes"]:
        assert theme["name"] in markdown
        assert theme["text"] in markdown
    # The numbered references are exactly the window's papers, and every citation resolves.
    refs = re.findall(r"^(\d+)\. (.+) \(", markdown.split("## References")[1], re.MULTILINE)
    assert [title for _, title in refs] == [p["title"] for p in data["papers"]]
    for number in re.findall(r"\[(\d+)\??\]", " ".join(t["text"] for t in data["themes"])):
        assert 1 <= int(number) <= len(refs)


def test_empty_window_says_so_and_writes_nothing(digest_home: Path, llama_server: str):
    proc = _cli(digest_home, llama_server, "--week", "2031-W02")
    assert proc.returncode == 0, proc.stderr
    assert "No papers in this window (2031-01-06 to 2031-01-12" in proc.stdout
    assert "264 papers" in proc.stdout
    assert not (digest_home / "digests").exists()


def test_topic_and_no_overwrite(digest_home: Path, llama_server: str):
    out = digest_home / "topic.md"
    args = ("--since", "2024-01-01", "--until", "2024-12-31", "--topic", "scaling laws",
            "--out", str(out), "--json")
    proc = _cli(digest_home, llama_server, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert 0 < len(data["papers"]) < 29  # fewer than the whole 2024 window
    assert any("Scaling" in p["title"] for p in data["papers"])
    first = out.read_text()
    assert first.startswith("# Paper digest: 2024-01-01 to 2024-12-31 — scaling laws")

    again = _cli(digest_home, llama_server, *args)
    assert again.returncode == 2
    assert "--force" in again.stderr and "Traceback" not in again.stderr
    assert out.read_text() == first


class RecordingClient:
    """The real model client, with every prompt's size written down."""

    def __init__(self, inner: ModelClient):
        self.inner = inner
        self.sizes: list[int] = []

    def chat(self, messages, *, max_tokens=None, **kw):
        self.sizes.append(count_message_tokens(messages) + (max_tokens or 0))
        return self.inner.chat(messages, max_tokens=max_tokens, **kw)


def test_500_papers_fit_a_small_context_window(tmp_path: Path, embedder, llama_server: str,
                                               sample_home: Path):
    rng = random.Random(7)
    sentences = []
    for _pid, _meta, extra in Library.open(make_settings(sample_home)).iter_papers(
            ("metadatas", "documents")):
        sentences.extend(s.strip() + "." for s in extra["document"].split(". ") if len(s) > 40)
    lines = []
    for i in range(500):
        abstract = rng.choice(sentences)  # one sentence: the test is about budgets, not prose
        lines.append(json.dumps({"title": f"Synthetic study {i}",
                                 "abstract": abstract, "published": f"2030-03-0{1 + i % 7}"}))
    data = tmp_path / "synthetic.jsonl"
    data.write_text("\n".join(lines) + "\n")
    window = 1536
    settings = make_settings(tmp_path / "home", base_url=llama_server, model="smollm2",
                             context_window=window, timeout=300.0)
    library = Library.open(settings)
    report = ingest([data], settings, library=library, embedder=embedder)
    assert report.total_papers == 500
    client = RecordingClient(ModelClient(settings))
    digest = build_digest(settings, library, embedder, client, date(2030, 3, 1),
                          date(2030, 3, 7), section_tokens=24)
    assert len(digest.papers) == 500
    assert sum(len(t.papers) for t in digest.themes) == 500
    assert client.sizes and max(client.sizes) <= window
    # Calls grow with themes and batches: far fewer than one per paper.
    assert len(client.sizes) == digest.model_calls < 500 // 2
    assert digest.max_prompt_tokens + 24 <= window


def test_windows_and_clustering_rules():
    assert parse_week("2025-W45") == (date(2025, 11, 3), date(2025, 11, 9))
    assert resolve_window(None, None, date(2025, 1, 7)) == (date(2025, 1, 1), date(2025, 1, 7))
    with pytest.raises(UsageError):
        parse_week("2025-45")
    with pytest.raises(UsageError):
        resolve_window("2025-W45", date(2025, 1, 1), None)
    import numpy as np

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    points = np.concatenate([c + 0.05 * rng.normal(size=(6, 16)) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels = cluster(points)
    assert len(set(labels)) == 3  # chosen from the data
    assert labels == sorted(labels)  # groups of six, in order
