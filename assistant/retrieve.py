"""Hybrid search: Chroma's dense neighbours fused with BM25 by reciprocal rank fusion.

Local Chroma has no keyword ranking, and dense retrieval alone misses exact
terms (model names, numbers), so BM25 (the maintained `bm25s` library) ranks
the same chunks by keywords and the two rankings are fused with RRF, which
needs no score calibration between them. Results are grouped so each paper
appears once, with its best chunk as the passage.

The BM25 index is built from the stored chunks and saved under
`ASSISTANT_HOME/cache`, keyed by the library's write generation, so a new
process loads it instead of rebuilding it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .store import date_to_int, decode_list, int_to_date

if TYPE_CHECKING:
    import numpy as np

    from .embed import Embedder
    from .settings import Settings
    from .store import Library

RRF_K = 60
KEYWORD_INDEX_VERSION = 2  # bump when tokenisation changes: cached indexes are rebuilt
CANDIDATES_PER_RESULT = 8
MIN_CANDIDATES = 60


@dataclass(frozen=True)
class Filters:
    since: date | None = None
    until: date | None = None
    author: str | None = None
    title: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.since or self.until or self.author or self.title)

    def where(self) -> dict[str, Any] | None:
        """The date part as a Chroma `where` (dates are YYYYMMDD integers)."""
        clauses: list[dict[str, Any]] = []
        if self.since:
            clauses.append({"published": {"$gte": date_to_int(self.since)}})
        if self.until:
            clauses.append({"published": {"$lte": date_to_int(self.until)}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def admits(self, paper: dict[str, Any]) -> bool:
        published = paper.get("published")
        if self.since and (not published or published < date_to_int(self.since)):
            return False
        if self.until and (not published or published > date_to_int(self.until)):
            return False
        if self.title and not _all_words_in(self.title, paper.get("title", "")):
            return False
        if self.author:
            people = " ".join(decode_list(paper.get("authors"))) + " " + str(
                paper.get("organisation") or ""
            )
            if not _all_words_in(self.author, people):
                return False
        return True


def _all_words_in(needle: str, haystack: str) -> bool:
    hay = haystack.casefold()
    return all(word in hay for word in needle.casefold().split())


@dataclass
class Hit:
    """One paper in a result list, with the chunk that matched best."""

    rank: int
    paper_id: str
    title: str
    published: date | None
    score: float
    passage: str
    chunk: int
    similarity: float | None = None
    bm25_rank: int | None = None
    dense_rank: int | None = None
    arxiv_id: str | None = None
    url: str | None = None
    paper: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "paper_id": self.paper_id,
            "title": self.title,
            "published": self.published.isoformat() if self.published else None,
            "score": round(self.score, 6),
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "passage": self.passage,
            "chunk": self.chunk,
            "arxiv_id": self.arxiv_id,
            "url": self.url,
        }


# Figures such as "12,868" or "2.8" stay one token: abstracts quote them and
# users search for them; the default pattern would split them into "12", "868".
TOKEN_PATTERN = r"(?u)\d+(?:[.,]\d+)+|\b\w\w+\b"


ALLOWED_CACHE_SIZE = 32  # distinct filters whose admitted papers are kept per generation


class KeywordIndex:
    """BM25 over chunk texts, with the chunk ids in index order."""

    def __init__(self, retriever: Any, chunk_ids: list[str], paper_ids: list[str]):
        self.retriever = retriever
        self.chunk_ids = chunk_ids
        self.paper_ids = paper_ids

    @staticmethod
    def _stemmer():
        import Stemmer

        return Stemmer.Stemmer("english")

    @classmethod
    def build(cls, chunks: list[tuple[str, str, dict[str, Any]]]) -> KeywordIndex:
        import bm25s

        if not chunks:  # an empty library: bm25s cannot index an empty corpus
            return cls(None, [], [])
        texts = [text for _, text, _ in chunks]
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=cls._stemmer(),
                                token_pattern=TOKEN_PATTERN, show_progress=False)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(retriever, [cid for cid, _, _ in chunks],
                   [str(meta["paper_id"]) for _, _, meta in chunks])

    def save(self, folder: Path) -> None:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.retriever.save(str(tmp))
        (tmp / "chunk_ids.json").write_text(json.dumps([self.chunk_ids, self.paper_ids]))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex:
        import bm25s

        retriever = bm25s.BM25.load(str(folder), mmap=False)
        chunk_ids, paper_ids = json.loads((folder / "chunk_ids.json").read_text())
        return cls(retriever, chunk_ids, paper_ids)

    def search(self, query: str, n: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        import bm25s

        if not self.chunk_ids:
            return []
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=self._stemmer(),
                                token_pattern=TOKEN_PATTERN, show_progress=False)
        if not tokens.vocab:
            return []
        n = min(n, len(self.chunk_ids))
        docs, scores = self.retriever.retrieve(
            tokens, k=n, show_progress=False, weight_mask=mask, n_threads=1
        )
        return [
            (self.chunk_ids[int(d)], float(s))
            for d, s in zip(docs[0], scores[0])
            if s > 0
        ]


class Retriever:
    """Search over one library with one embedder; keeps its caches warm between queries."""

    def __init__(self, library: Library, embedder: Embedder, settings: Settings):
        self.library = library
        self.embedder = embedder
        self.settings = settings
        self._generation: int | None = None
        self._keyword: KeywordIndex | None = None
        self._papers: dict[str, dict[str, Any]] = {}
        self._n_chunks = 0
        self._allowed: dict[Filters, set[str]] = {}  # per generation: a chat reuses its filters

    # -- caches -------------------------------------------------------------
    def _cache_dir(self) -> Path:
        import hashlib

        where = hashlib.sha1(self.library.location.encode()).hexdigest()[:10]
        return self.settings.home / "cache" / f"bm25-{where}"

    def refresh(self) -> None:
        """Reload the paper table and keyword index if the library changed."""
        generation = self.library.generation
        if generation == self._generation:
            return
        self.library.check_embedder(self.embedder.name, self.embedder.dim)
        folder = self._cache_dir() / f"gen-{generation}-v{KEYWORD_INDEX_VERSION}"
        keyword = None
        papers = None
        if (folder / "chunk_ids.json").is_file():
            try:
                keyword = KeywordIndex.load(folder)
                papers = json.loads((folder / "papers.json").read_text(encoding="utf-8"))
            except Exception:  # a cache from another bm25s version: rebuild it
                keyword = papers = None
        if papers is None:
            papers = {pid: meta for pid, meta, _ in self.library.iter_papers()}
        self._papers = papers
        if keyword is None:
            chunks = [c for c in self.library.iter_chunks() if self._current(c[2])]
            keyword = KeywordIndex.build(chunks)
            if keyword.chunk_ids:  # nothing worth caching for an empty library
                self._save_cache(folder, keyword, papers)
        self._n_chunks = len(keyword.chunk_ids)
        self._allowed = {}
        self._keyword = keyword
        self._generation = generation

    def _save_cache(self, folder: Path, keyword: KeywordIndex,
                    papers: dict[str, dict[str, Any]]) -> None:
        try:
            shutil.rmtree(self._cache_dir(), ignore_errors=True)
            folder.parent.mkdir(parents=True, exist_ok=True)
            keyword.save(folder)
            (folder / "papers.json").write_text(json.dumps(papers), encoding="utf-8")
        except OSError:
            pass  # a read-only home still searches, just without the cache

    def _current(self, chunk_meta: dict[str, Any]) -> bool:
        """A chunk counts only if its paper record carries the same text hash."""
        paper = self._papers.get(str(chunk_meta.get("paper_id")))
        return bool(paper) and paper.get("content_hash") == chunk_meta.get("content_hash")

    @property
    def papers(self) -> dict[str, dict[str, Any]]:
        self.refresh()
        return self._papers

    # -- search -------------------------------------------------------------
    def search(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        import numpy as np

        filters = filters or Filters()
        self.refresh()
        chunks = self.library.chunks()
        if chunks is None or not self._papers:
            return []
        allowed: set[str] | None = None
        if not filters.empty:
            allowed = self._allowed.get(filters)
            if allowed is None:
                allowed = {pid for pid, meta in self._papers.items() if filters.admits(meta)}
                if len(self._allowed) >= ALLOWED_CACHE_SIZE:
                    self._allowed.clear()
                self._allowed[filters] = allowed
            if not allowed:
                return []
        n = max(MIN_CANDIDATES, k * CANDIDATES_PER_RESULT)

        query_vector = self.embedder.embed([query])[0]
        found: dict[str, dict[str, Any]] = {}
        dense_rank: dict[str, int] = {}

        def dense(where: dict | None, width: int) -> None:
            result = chunks.query(
                query_embeddings=[query_vector.tolist()],
                n_results=min(width, max(1, self._n_chunks)), where=where,
                include=["documents", "metadatas", "distances"],
            )
            for cid, doc, meta, dist in zip(result["ids"][0], result["documents"][0],
                                            result["metadatas"][0], result["distances"][0]):
                if cid in found or not self._current(meta) or (
                        allowed is not None and meta["paper_id"] not in allowed):
                    continue
                dense_rank[cid] = len(dense_rank) + 1
                found[cid] = {"doc": doc, "meta": meta, "similarity": 1.0 - float(dist)}

        # A filtered HNSW query is slow on a large store; an unfiltered, wider one
        # post-filtered usually finds enough, and the filtered query is the fallback.
        dense(None, n if allowed is None else n * 4)
        if allowed is not None and len({f["meta"]["paper_id"] for f in found.values()}) < k:
            where = filters.where()
            if len(allowed) <= 2000 and (filters.author or filters.title):
                where = {"paper_id": {"$in": sorted(allowed)}}
            dense(where, n)

        mask = None
        keyword = self._keyword
        if allowed is not None and keyword is not None:
            mask = np.fromiter((pid in allowed for pid in keyword.paper_ids), dtype=np.float32,
                               count=len(keyword.paper_ids))
        keyword_rank: dict[str, int] = {}
        for cid, _score in (keyword.search(query, n, mask) if keyword else []):
            keyword_rank[cid] = len(keyword_rank) + 1

        fused: dict[str, float] = {}
        for ranks in (dense_rank, keyword_rank):
            for cid, rank in ranks.items():
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank)

        best: dict[str, str] = {}
        for cid in sorted(fused, key=fused.__getitem__, reverse=True):
            pid = cid.rsplit("#", 1)[0]
            if pid in self._papers and pid not in best:
                best[pid] = cid
            if len(best) >= k:
                break

        missing = [cid for cid in best.values() if cid not in found]
        if missing:
            got = chunks.get(ids=missing, include=["documents", "metadatas", "embeddings"])
            for cid, doc, meta, emb in zip(got["ids"], got["documents"], got["metadatas"],
                                           got["embeddings"]):
                sim = float(np.dot(np.asarray(emb, dtype=np.float32), query_vector))
                found[cid] = {"doc": doc, "meta": meta, "similarity": sim}

        hits: list[Hit] = []
        for pid, cid in best.items():
            if cid not in found:
                continue
            paper = self._papers[pid]
            text = found[cid]["doc"]
            title = str(paper.get("title", ""))
            passage = text[len(title):].lstrip() if text.startswith(title) else text
            hits.append(Hit(
                rank=len(hits) + 1,
                paper_id=pid,
                title=title,
                published=int_to_date(paper.get("published")),
                score=fused[cid],
                passage=passage,
                chunk=int(found[cid]["meta"].get("chunk", 0)),
                similarity=found[cid]["similarity"],
                bm25_rank=keyword_rank.get(cid),
                dense_rank=dense_rank.get(cid),
                arxiv_id=paper.get("arxiv_id"),
                url=paper.get("url"),
                paper=paper,
            ))
        return hits


def open_retriever(settings: Settings) -> Retriever:
    from .embed import make_embedder
    from .store import Library

    return Retriever(Library.open(settings), make_embedder(settings), settings)
