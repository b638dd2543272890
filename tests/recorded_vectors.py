"""The real MiniLM's vectors for a fixture's chunks, recorded once and read back.

Embedding the real week (2,008 papers) takes minutes on two cores, and every
digest-week test needs those vectors, not the act of computing them (ingest
has its own tests). `record` runs a real ingest with the real embedder and
keeps each chunk's vector (float16, keyed by the SHA-1 of its text) in a file
beside the fixture; `RecordedEmbedder` answers from that file and hands any
text it does not hold to the real model, counting them (`misses`), so a change
of chunking makes the suite slower, never wrong. `test_digest_week` checks
a sample of the recording against the real model on every run.

The bundled sample is recorded the same way (`SAMPLE_VECTORS`): each test worker
ingests it once; so are the papers of the recorded responses `fetch` is tested
against (`REPLAY_VECTORS`) and the digest budget test's 500 synthetic papers
(`SYNTHETIC_VECTORS`). Re-record them all after changing how abstracts are chunked:

    python -m tests.recorded_vectors
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WEEK = ROOT / "tests" / "data" / "arxiv-week-2025"
WEEK_VECTORS = ROOT / "tests" / "data" / "arxiv-week-2025.minilm-f16.npz"
# The bundled sample (264 papers): ingested by every test worker's `sample_home`.
SAMPLE_VECTORS = ROOT / "tests" / "data" / "sample.minilm-f16.npz"
# The recorded Hugging Face and arXiv responses that tests/replay.py serves to `fetch`.
REPLAYS = ROOT / "tests" / "data" / "recorded"
REPLAY_VECTORS = ROOT / "tests" / "data" / "recorded.minilm-f16.npz"
# 500 one-sentence papers made from the sample's sentences (`write_synthetic`), for the
# digest's prompt-budget test.
SYNTHETIC_VECTORS = ROOT / "tests" / "data" / "synthetic-500.minilm-f16.npz"


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()


class _Beside:
    """What every wrapper here passes to the real model: its name, size and tokenizer
    (chunking asks `fits`), so a wrapped ingest chunks exactly as a real one."""

    def __init__(self, real) -> None:
        self.real = real
        self.name = real.name

    @property
    def dim(self) -> int:
        return self.real.dim

    def fits(self, text: str) -> bool:
        return self.real.fits(text)

    def count_wordpieces(self, text: str) -> int:
        return self.real.count_wordpieces(text)


class RecordedEmbedder(_Beside):
    """Looks texts up in a recording; embeds what it lacks with the real model."""

    def __init__(self, real, path: Path = WEEK_VECTORS) -> None:
        super().__init__(real)
        data = np.load(path)
        self.vectors = data["vectors"].astype(np.float32)
        self.vectors /= np.linalg.norm(self.vectors, axis=1, keepdims=True)
        # Read as raw rows: a numpy bytes item drops trailing NULs, and one digest in
        # 256 ends in one.
        rows = data["keys"].view(np.uint8).reshape(-1, 20)
        self.index = {row.tobytes(): i for i, row in enumerate(rows)}
        self.misses = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing = []
        for i, text in enumerate(texts):
            row = self.index.get(text_key(text))
            if row is None:
                missing.append(i)
            else:
                out[i] = self.vectors[row]
        if missing:
            self.misses += len(missing)
            out[missing] = self.real.embed([texts[i] for i in missing])
        return out


class _Recording(_Beside):
    """The real embedder, keeping what it embeds."""

    def __init__(self, real) -> None:
        super().__init__(real)
        self.seen: dict[bytes, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self.real.embed(texts)
        for text, vector in zip(texts, vectors, strict=True):
            self.seen[text_key(text)] = vector
        return vectors


def record(paths: list[Path], out: Path) -> int:
    """Ingest `paths` (none: the bundled sample) with the real embedder and write every
    chunk's vector to `out`."""
    from assistant.embed import MiniLMEmbedder
    from assistant.ingest import ingest
    from assistant.store import Library

    from .conftest import make_settings

    recording = _Recording(MiniLMEmbedder(_model_dir()))
    with tempfile.TemporaryDirectory() as home:
        settings = make_settings(Path(home))
        report = ingest(paths, settings, library=Library.open(settings), embedder=recording)
        assert not report.failures, report.failures
    keys = np.frombuffer(b"".join(recording.seen), dtype="S20")
    vectors = np.stack(list(recording.seen.values())).astype(np.float16)
    np.savez_compressed(out, keys=keys, vectors=vectors)
    return len(keys)


def _model_dir():
    from .conftest import embed_model_dir

    return embed_model_dir()


def write_synthetic(path: Path, papers: int = 500) -> Path:
    """`papers` one-sentence papers dated 2030-03-01..07, each sentence drawn (seeded)
    from the bundled sample's abstracts: a week the size of a busy one, for tests about
    prompt budgets rather than prose."""
    import json
    import random

    from assistant.ingest import bundled_corpus
    from assistant.readers import read_file

    sentences = [
        s.strip() + "."
        for file in sorted(bundled_corpus().iterdir())
        for paper in read_file(file).papers
        for s in paper.abstract.split(". ")
        if len(s) > 40
    ]
    rng = random.Random(7)
    lines = [
        json.dumps(
            {
                "title": f"Synthetic study {i}",
                "abstract": rng.choice(sentences),
                "published": f"2030-03-0{1 + i % 7}",
            }
        )
        for i in range(papers)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _replay_files() -> list[Path]:
    """The recorded responses that hold papers (not the one holding arXiv's error reply)."""
    from assistant.readers import read_file

    files = sorted(p for p in REPLAYS.rglob("*") if p.suffix in (".json", ".xml"))
    return [p for p in files if not read_file(p).errors]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        synthetic = write_synthetic(Path(folder) / "synthetic.jsonl")
        for paths, out in (
            ([], SAMPLE_VECTORS),
            ([WEEK], WEEK_VECTORS),
            (_replay_files(), REPLAY_VECTORS),
            ([synthetic], SYNTHETIC_VECTORS),
        ):
            n = record(paths, out)
            print(f"{n} chunk vectors written to {out.relative_to(ROOT)}", file=sys.stderr)
