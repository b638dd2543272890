"""Hybrid search ranked per paper: dense neighbours, BM25F and paper names, fused by RRF.

Dense retrieval alone misses exact terms (model names, numbers), and local
Chroma has no keyword ranking, so three rankings of *papers* are fused with
reciprocal rank fusion (which needs no score calibration between them):

* dense: papers in the order of their best chunk's cosine similarity;
* keyword: BM25F over each paper's title and abstract, the title weighted
  above the body (`lexical/index.py`), so a paper counts its evidence once, from
  all its text, instead of each chunk competing on its own;
* names: papers whose name (the title before its colon, "GaLore" in
  "GaLore: Memory-Efficient ...") the query says.

Fusing chunks first and grouping by paper afterwards let a paper whose name
is spread over several chunks lose to papers that mention the name once.

Each hit's passage is the paper's chunk that best matches the query (its
cosine similarity plus a share for the query's rare words it holds), and
`similarity` is the best cosine among the paper's chunks: the figure `ask`
abstains on, shown by `search` so a weak match looks weak.

The keyword index and the paper table are kept current by ingest
(`lexical.sync.update`); a retriever only checks the store's write generation
per query and catches up if another client wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from .store import date_to_int, decode_list, int_to_date

if TYPE_CHECKING:
    import numpy as np

    from .embed import Embedder
    from .lexical.index import KeywordIndex
    from .settings import Settings
    from .store import Library

RRF_K = 60
NAME_WEIGHT = 2.0  # a query that says a paper's name wants it: twice a dense or keyword vote
CANDIDATES_PER_RESULT = 8
MIN_CANDIDATES = 60
# The candidate pool is the same for every k up to `search`'s default, so `ask` (k=4)
# ranks its sources exactly as `search` (k=10) ranks its first four papers.
SEARCH_K = 10
FILTERED_WIDTH = 4  # a filtered search's dense query is at most this many times wider
PASSAGE_KEYWORD_SHARE = 0.25  # weight of the query's rare words when choosing a passage
ALLOWED_CACHE_SIZE = 32  # distinct filters whose admitted papers are kept per generation


# What a date filter or a digest window may name (see `parse_filter_date`).
DATE_RANGE = (date(1000, 1, 1), date(8999, 12, 31))


def parse_filter_date(text: str) -> date:
    """YYYY-MM-DD, YYYY-MM (its first day) or YYYY (1 January): what `--since`/`--until`
    and the chat's `/since`/`/until` accept, so both read a date the same way."""
    from datetime import datetime

    from .errors import UsageError

    for fmt in ("%Y-%m-%d", "%Y-%m", "%Y"):
        try:
            parsed = datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
        if not DATE_RANGE[0] <= parsed <= DATE_RANGE[1]:
            # Windows and their neighbours are computed by adding days: year 1 or 9999
            # would overflow Python's dates (OverflowError) instead of finding nothing.
            raise UsageError(
                f"{text.strip()!r} is out of range: use a date from "
                f"{DATE_RANGE[0].isoformat()} to {DATE_RANGE[1].isoformat()}"
            )
        return parsed
    raise UsageError(f"{text.strip()!r} is not a date (use YYYY-MM-DD)")


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
            people = (
                " ".join(decode_list(paper.get("authors")))
                + " "
                + str(paper.get("organisation") or "")
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
    weak: bool = False  # best cosine below answer.ABSTAIN_SIMILARITY, and not named by the query
    name_match: bool = False  # the query says this paper's name

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "paper_id": self.paper_id,
            "title": self.title,
            "published": self.published.isoformat() if self.published else None,
            "score": round(self.score, 6),
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "weak": self.weak,
            "dense_rank": self.dense_rank,
            "bm25_rank": self.bm25_rank,
            "name_match": self.name_match,
            "passage": self.passage,
            "chunk": self.chunk,
            "arxiv_id": self.arxiv_id,
            "url": self.url,
        }


def weak_threshold() -> float:
    """The cosine below which a match is weak: `ask`'s abstention cut, one source of truth."""
    from .evidence import ABSTAIN_SIMILARITY

    return ABSTAIN_SIMILARITY


class Retriever:
    """Search over one library with one embedder; keeps its caches warm between queries."""

    def __init__(self, library: Library, embedder: Embedder, settings: Settings):
        self.library = library
        self.embedder = embedder
        self.settings = settings
        self._generation: tuple[str | None, int | None] | None = None
        self._keyword: KeywordIndex | None = None
        self._papers: dict[str, dict[str, Any]] = {}
        self._n_chunks = 0
        self._masks: dict[Filters, np.ndarray] = {}  # per generation: a chat reuses its filters

    def refresh(self) -> None:
        """Bring the paper table and keyword index up to the store's write generation."""
        from .lexical import sync

        # One store call per query: the papers collection's id (a reindex replaces it)
        # and write generation (every write bumps it).
        state = self.library.state()
        if state == self._generation and self._keyword is not None:
            return
        self.library.check_embedder(self.embedder.name, self.embedder.dim)
        self._keyword = sync.load(self.library, self.settings, self._keyword)
        self._papers = self._keyword.papers
        self._n_chunks = self._keyword.n_chunks
        self._masks = {}
        self._generation = (self._keyword.store_id, self._keyword.generation)

    @property
    def papers(self) -> dict[str, dict[str, Any]]:
        self.refresh()
        return self._papers

    def _mask(self, filters: Filters) -> np.ndarray:
        """Documents of the keyword index that `filters` admits (cached per generation)."""
        from .lexical.index import filter_mask
        from .store import date_to_int

        mask = self._masks.get(filters)
        if mask is None:
            mask = filter_mask(
                self._keyword,
                filters.admits,
                date_to_int(filters.since),
                date_to_int(filters.until),
                bool(filters.title or filters.author),
            )
            if len(self._masks) >= ALLOWED_CACHE_SIZE:
                self._masks.clear()
            self._masks[filters] = mask
        return mask

    # -- search -------------------------------------------------------------
    def search(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        import numpy as np

        filters = filters or Filters()
        self.refresh()
        chunks = self.library.chunks()
        index = self._keyword
        if chunks is None or not self._papers or index is None:
            return []
        mask = None if filters.empty else self._mask(filters)
        if mask is not None and not mask.any():
            return []
        doc_of = index.doc_of

        def admitted(pid: str) -> bool:
            d = doc_of.get(pid)
            return d is not None and (mask is None or bool(mask[d]))

        n = max(MIN_CANDIDATES, max(k, SEARCH_K) * CANDIDATES_PER_RESULT)
        query_vector = self.embedder.embed([query])[0]

        # Dense: papers in the order of their best chunk. Only ids and distances come
        # back (chunk ids are "<paper_id>#<n>"); the chosen papers' chunks are read below.
        dense_rank: dict[str, int] = {}

        def dense(where: dict | None, width: int) -> None:
            result = chunks.query(
                query_embeddings=[query_vector.tolist()],
                n_results=min(width, max(1, self._n_chunks)),
                where=where,
                include=["distances"],
            )
            for cid in result["ids"][0]:
                pid = cid.rsplit("#", 1)[0]
                if pid not in dense_rank and admitted(pid):
                    dense_rank[pid] = len(dense_rank) + 1

        # A filtered HNSW query is slow on a large store; an unfiltered, wider one
        # post-filtered usually finds enough, and the filtered query is the fallback.
        if mask is None:
            dense(None, n)
        else:  # wide enough to hold about n admitted chunks, at most FILTERED_WIDTH times n
            share = max(float(mask.sum()) / max(1, index.n_live), 1.0 / FILTERED_WIDTH)
            dense(None, int(n / share))
        if mask is not None and len(dense_rank) < k:
            if int(mask.sum()) <= 2000 and (filters.author or filters.title):
                admitted_ids = [index.pid_at[d] for d in np.flatnonzero(mask)]
                where = {"paper_id": {"$in": admitted_ids}}
            else:
                where = filters.where()
            if where is not None:
                dense(where, n)

        keyword_rank: dict[str, int] = {}
        for pid, _score in index.search(query, n, mask):
            keyword_rank[pid] = len(keyword_rank) + 1
        named = [pid for pid in index.name_matches(query) if admitted(pid)]
        name_rank = {
            pid: i
            for i, pid in enumerate(
                dict.fromkeys(
                    sorted(
                        named, key=lambda p: (dense_rank.get(p, n + 1), keyword_rank.get(p, n + 1))
                    )
                ),
                start=1,
            )
        }

        fused: dict[str, float] = {}
        for ranks, weight in ((dense_rank, 1.0), (keyword_rank, 1.0), (name_rank, NAME_WEIGHT)):
            for pid, rank in ranks.items():
                fused[pid] = fused.get(pid, 0.0) + weight / (RRF_K + rank)
        order = sorted(fused, key=lambda p: (-fused[p], dense_rank.get(p, n + 1)))
        top = [pid for pid in order if pid in self._papers][: k + 2]  # spares for stale papers

        passages = self._passages(chunks, top, query, query_vector)
        threshold = weak_threshold()
        hits: list[Hit] = []
        for pid in top:
            if pid not in passages or len(hits) >= k:
                continue
            chunk_no, text, similarity = passages[pid]
            paper = self._papers[pid]
            title = str(paper.get("title", ""))
            passage = text[len(title) :].lstrip() if text.startswith(title) else text
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    paper_id=pid,
                    title=title,
                    published=int_to_date(paper.get("published")),
                    score=fused[pid],
                    passage=passage,
                    chunk=chunk_no,
                    similarity=similarity,
                    bm25_rank=keyword_rank.get(pid),
                    dense_rank=dense_rank.get(pid),
                    arxiv_id=paper.get("arxiv_id"),
                    url=paper.get("url"),
                    paper=paper,
                    weak=similarity < threshold and pid not in name_rank,
                    name_match=pid in name_rank,
                )
            )
        return hits

    def _passages(
        self, chunks: Any, pids: list[str], query: str, query_vector: np.ndarray
    ) -> dict[str, tuple[int, str, float]]:
        """Per paper: (chunk number, text, best cosine) of its current chunks.

        The passage is the chunk with the highest cosine plus PASSAGE_KEYWORD_SHARE
        times the share of the query's word weight (idf) it holds, so a figure or
        name the user typed picks the chunk that says it; the similarity reported
        is the paper's best cosine, whichever chunk holds it.
        """
        import numpy as np

        from .lexical.terms import TOKEN_RE as KEYWORD_WORDS
        from .text import stem

        ids = [
            f"{pid}#{i}"
            for pid in pids
            for i in range(max(1, int(self._papers[pid].get("n_chunks") or 1)))
        ]
        if not ids:
            return {}
        got = chunks.get(ids=ids, include=["documents", "metadatas", "embeddings"])
        index = self._keyword
        query_terms = {index.vocab_list[t]: float(index.idf[t]) for t in index.term_ids(query)}
        total_idf = sum(query_terms.values()) or 1.0
        best: dict[str, tuple[float, int, str]] = {}
        best_sim: dict[str, float] = {}
        for doc, meta, emb in zip(got["documents"], got["metadatas"], got["embeddings"]):
            pid = str(meta.get("paper_id"))
            paper = self._papers.get(pid)
            if not paper or paper.get("content_hash") != meta.get("content_hash"):
                continue  # a chunk of an interrupted rewrite: its paper record is older
            sim = float(np.dot(np.asarray(emb, dtype=np.float32), query_vector))
            value = sim
            if query_terms and int(paper.get("n_chunks") or 1) > 1:  # else there is no choice
                words = set(KEYWORD_WORDS.findall((doc or "").lower()))
                held = sum(query_terms.get(t, 0.0) for t in set(stem(list(words))))
                value += PASSAGE_KEYWORD_SHARE * held / total_idf
            if pid not in best or value > best[pid][0]:
                best[pid] = (value, int(meta.get("chunk", 0)), doc or "")
            best_sim[pid] = max(best_sim.get(pid, -1.0), sim)
        return {pid: (chunk_no, text, best_sim[pid]) for pid, (_, chunk_no, text) in best.items()}


def open_retriever(settings: Settings) -> Retriever:
    from .embed import make_embedder
    from .store import Library

    return Retriever(Library.open(settings), make_embedder(settings), settings)
