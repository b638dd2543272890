"""The paper library in Chroma: one collection of chunks, one of papers.

Layout
- `chunks`: id `<paper_id>#<n>`, the chunk text (title first), its embedding,
  metadata `paper_id`, `title`, `published` (YYYYMMDD integer, because Chroma
  compares numbers only), `chunk`, `content_hash`.
- `papers`: one record per paper, the abstract as document, the mean of its
  chunk vectors as embedding (digests cluster on it), every field of the paper
  as metadata, and `content_hash`.

Writes for a batch go chunks first, stale chunks deleted second, paper
records last. A paper record is therefore the commit marker: an interrupted
ingest leaves at most chunks whose `content_hash` no paper record carries;
search ignores those and the next ingest overwrites them (ids are
deterministic, so nothing is duplicated).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .errors import EmbedderMismatch, StoreError

if TYPE_CHECKING:
    import numpy as np

    from .settings import Settings

CHUNKS = "chunks"
PAPERS = "papers"
WRITE_BATCH = 256  # well under Chroma's SQLite and HTTP request limits
READ_BATCH = 2000


def date_to_int(value: date | None) -> int | None:
    return value.year * 10000 + value.month * 100 + value.day if value else None


def int_to_date(value: int | None) -> date | None:
    if not value:
        return None
    return date(value // 10000, value // 100 % 100, value % 100)


@dataclass
class PaperWrite:
    """Everything written for one paper: its record, chunks and their vectors."""

    paper_id: str
    metadata: dict[str, Any]
    abstract: str
    chunks: list[str]
    vectors: np.ndarray


def _chroma_settings():
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def connect(settings: Settings):
    """A Chroma client: a server when ASSISTANT_CHROMA_URL is set, else embedded."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb

    if settings.chroma_url:
        url = urlparse(settings.chroma_url if "//" in settings.chroma_url
                       else f"http://{settings.chroma_url}")
        if not url.hostname:
            raise StoreError(f"ASSISTANT_CHROMA_URL={settings.chroma_url!r} is not a URL")
        try:
            return chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=_chroma_settings(),
            )
        except Exception as exc:
            raise StoreError(
                f"cannot reach the Chroma server at {settings.chroma_url}: {exc}"
            ) from None
    path = settings.home / "chroma"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the store directory {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StoreError(f"the store directory {path} is not writable")
    try:
        return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
    except Exception as exc:
        raise StoreError(f"cannot open the store at {path}: {exc}") from None


class Library:
    """The stored papers and chunks, and the embedder they were built with."""

    def __init__(self, client: Any, location: str, suffix: str = ""):
        self.client = client
        self.location = location
        self.suffix = suffix  # "__next" while `reindex` builds a replacement
        self._chunks = None
        self._papers = None

    @classmethod
    def open(cls, settings: Settings) -> Library:
        location = settings.chroma_url or str(settings.home / "chroma")
        return cls(connect(settings), location)

    # -- collections -------------------------------------------------------
    def _existing(self, name: str):
        try:
            return self.client.get_collection(name + self.suffix, embedding_function=None)
        except Exception:
            return None

    def _collection(self, name: str, create_for: tuple[str, int] | None):
        collection = self._existing(name)
        if collection is None and create_for is not None:
            embedder, dim = create_for
            collection = self.client.get_or_create_collection(
                name + self.suffix,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"embedder": embedder, "dim": dim, "generation": 0},
            )
        return collection

    @property
    def exists(self) -> bool:
        return self._existing(PAPERS) is not None

    @property
    def embedder_info(self) -> tuple[str, int] | None:
        papers = self._existing(PAPERS)
        if papers is None:
            return None
        meta = papers.metadata or {}
        return str(meta.get("embedder")), int(meta.get("dim") or 0)

    def check_embedder(self, name: str, dim: int) -> None:
        """Refuse to mix vectors of two embedding models in one library."""
        info = self.embedder_info
        if info is not None and info != (name, dim):
            raise EmbedderMismatch(
                f"the library at {self.location} was indexed with {info[0]} ({info[1]} dims) "
                f"but the current embedder is {name} ({dim} dims); set ASSISTANT_EMBEDDER back, "
                "or run `assistant reindex` to re-embed every stored paper with the current one"
            )

    def papers(self, create_for: tuple[str, int] | None = None):
        if self._papers is None:
            self._papers = self._collection(PAPERS, create_for)
        return self._papers

    def chunks(self, create_for: tuple[str, int] | None = None):
        if self._chunks is None:
            self._chunks = self._collection(CHUNKS, create_for)
        return self._chunks

    @property
    def generation(self) -> int:
        """Bumped after every write; caches built from the store key on it."""
        papers = self._existing(PAPERS)
        return int((papers.metadata or {}).get("generation", 0)) if papers else 0

    def _bump_generation(self) -> None:
        papers = self.papers()
        meta = dict(papers.metadata or {})
        meta["generation"] = int(meta.get("generation", 0)) + 1
        papers.modify(metadata=meta)

    # -- reading -----------------------------------------------------------
    def get_papers(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored paper metadata by id (missing ids are absent)."""
        papers = self.papers()
        if papers is None:
            return {}
        found: dict[str, dict[str, Any]] = {}
        ids = list(ids)
        for start in range(0, len(ids), READ_BATCH):
            batch = papers.get(ids=ids[start:start + READ_BATCH], include=["metadatas"])
            for pid, meta in zip(batch["ids"], batch["metadatas"]):
                found[pid] = dict(meta or {})
        return found

    def find_by_title_keys(self, keys: Iterable[str]) -> dict[str, str]:
        """title_key -> stored paper id, to unify a paper seen with and without its arXiv id."""
        papers = self.papers()
        if papers is None:
            return {}
        keys = list(keys)
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            batch = papers.get(
                where={"title_key": {"$in": keys[start:start + 500]}}, include=["metadatas"]
            )
            for pid, meta in zip(batch["ids"], batch["metadatas"]):
                found.setdefault(str(meta["title_key"]), pid)
        return found

    def iter_papers(
        self, include: tuple[str, ...] = ("metadatas",), where: dict | None = None
    ) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Every stored paper as (id, metadata, extra) where extra holds the
        requested documents/embeddings."""
        papers = self.papers()
        if papers is None:
            return
        offset = 0
        while True:
            batch = papers.get(
                include=list(include), limit=READ_BATCH, offset=offset, where=where
            )
            if not batch["ids"]:
                return
            for i, pid in enumerate(batch["ids"]):
                extra = {}
                if "documents" in include:
                    extra["document"] = batch["documents"][i]
                if "embeddings" in include:
                    extra["embedding"] = batch["embeddings"][i]
                yield pid, dict(batch["metadatas"][i] or {}), extra
            offset += len(batch["ids"])

    def iter_chunks(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        chunks = self.chunks()
        if chunks is None:
            return
        offset = 0
        while True:
            batch = chunks.get(
                include=["documents", "metadatas"], limit=READ_BATCH, offset=offset
            )
            if not batch["ids"]:
                return
            yield from zip(batch["ids"], batch["documents"], batch["metadatas"])
            offset += len(batch["ids"])

    def counts(self) -> tuple[int, int]:
        papers, chunks = self._existing(PAPERS), self._existing(CHUNKS)
        return (papers.count() if papers else 0, chunks.count() if chunks else 0)

    # -- writing -----------------------------------------------------------
    def write(self, writes: list[PaperWrite], embedder: tuple[str, int],
              replaces: dict[str, str] | None = None) -> None:
        """Store a batch of papers (see the module docstring for the order).

        `replaces` maps new paper id -> an old id the paper was stored under
        (its title hash, before its arXiv id was known); the old one is removed.
        """
        if not writes:
            return
        chunks = self.chunks(create_for=embedder)
        papers = self.papers(create_for=embedder)
        ids, docs, metas, vectors = [], [], [], []
        for w in writes:
            for n, text in enumerate(w.chunks):
                ids.append(f"{w.paper_id}#{n}")
                docs.append(text)
                meta = {
                    "paper_id": w.paper_id,
                    "title": w.metadata["title"],
                    "chunk": n,
                    "content_hash": w.metadata["content_hash"],
                }
                if w.metadata.get("published"):
                    meta["published"] = w.metadata["published"]
                metas.append(meta)
            vectors.extend(w.vectors.tolist())
        for start in range(0, len(ids), WRITE_BATCH):
            end = start + WRITE_BATCH
            chunks.upsert(ids=ids[start:end], documents=docs[start:end],
                          metadatas=metas[start:end], embeddings=vectors[start:end])
        # Every chunk of these papers that carries none of the new hashes is stale
        # (a hash covers the title, so no paper can carry another's). One call.
        chunks.delete(where={"$and": [
            {"paper_id": {"$in": [w.paper_id for w in writes]}},
            {"content_hash": {"$nin": [w.metadata["content_hash"] for w in writes]}},
        ]})
        old_ids = [old for new, old in (replaces or {}).items() if old != new]
        if old_ids:
            chunks.delete(where={"paper_id": {"$in": old_ids}})
        import numpy as np

        means = []
        for w in writes:
            mean = w.vectors.mean(axis=0)
            norm = float(np.linalg.norm(mean)) or 1.0
            means.append((mean / norm).tolist())
        for start in range(0, len(writes), WRITE_BATCH):
            batch = writes[start:start + WRITE_BATCH]
            papers.upsert(
                ids=[w.paper_id for w in batch],
                documents=[w.abstract for w in batch],
                metadatas=[w.metadata for w in batch],
                embeddings=means[start:start + WRITE_BATCH],
            )
        if old_ids:
            papers.delete(ids=old_ids)
        self._bump_generation()


    def replacement(self) -> Library:
        """An empty library beside this one, to be swapped in by `swap_in`."""
        for name in (CHUNKS, PAPERS):
            try:
                self.client.delete_collection(name + "__next")
            except Exception:
                pass  # nothing left over from an interrupted reindex
        return Library(self.client, self.location, suffix="__next")

    def swap_in(self, replacement: Library) -> None:
        """Replace this library's collections with the replacement's."""
        for name in (PAPERS, CHUNKS):
            try:
                self.client.delete_collection(name)
            except Exception:
                pass
            self.client.get_collection(name + replacement.suffix,
                                       embedding_function=None).modify(name=name)
        self._chunks = self._papers = None

    def update_metadata(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Rewrite paper records whose text (and so vectors) did not change."""
        if not records:
            return
        papers, chunks = self.papers(), self.chunks()
        for start in range(0, len(records), WRITE_BATCH):
            batch = records[start:start + WRITE_BATCH]
            chunk_ids, chunk_metas = [], []
            for pid, meta in batch:
                for n in range(int(meta.get("n_chunks", 0))):
                    chunk_ids.append(f"{pid}#{n}")
                    chunk_meta = {"paper_id": pid, "title": meta["title"], "chunk": n,
                                  "content_hash": meta["content_hash"]}
                    if meta.get("published"):
                        chunk_meta["published"] = meta["published"]
                    chunk_metas.append(chunk_meta)
            if chunk_ids:
                chunks.update(ids=chunk_ids, metadatas=chunk_metas)
            papers.update(ids=[pid for pid, _ in batch], metadatas=[m for _, m in batch])
        self._bump_generation()


def encode_list(values: list[str]) -> str:
    """Chroma metadata holds scalars only; lists travel as JSON text."""
    return json.dumps(values, ensure_ascii=False)


def decode_list(value: Any) -> list[str]:
    if not value:
        return []
    try:
        decoded = json.loads(value)
    except (TypeError, ValueError):
        return [str(value)]
    return [str(v) for v in decoded] if isinstance(decoded, list) else [str(decoded)]


def store_size_bytes(settings: Settings) -> int | None:
    if settings.chroma_url:
        return None
    root = Path(settings.home) / "chroma"
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0
