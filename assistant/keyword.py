"""The keyword side of search: BM25F over paper titles and abstracts, kept current at ingest.

Why an index of our own. Local Chroma has no keyword ranking, `bm25s` cannot
add or delete documents (every ingest meant a full rebuild: 28.7 s at 100k
chunks, paid by the next query), and SQLite FTS5, which can, ranks an OR query
of common terms by calling `bm25()` on every matching row: 300-600 ms for a
typical question over 44k papers on this machine. This index is numpy arrays
in immutable *segments*: an ingest adds one small segment for the papers it
changed and marks their old versions deleted, so its cost follows what changed,
not the library's size; segments are merged when there are too many.

One document per paper (title and abstract, BM25F with the title weighted
TITLE_WEIGHT times a body term), so a paper's evidence is counted once, from
all its text, and a query that is a paper's name ranks that paper above papers
that only mention the name. Beside it, `names` maps the name a title starts
with ("GaLore" in "GaLore: Memory-Efficient ...") to its papers.

The index also holds every paper's stored metadata (the retriever's paper
table), so a new process needs no pass over the store.

Consistency with the store (local or a Chroma server shared by clients):
the manifest records the store's papers-collection id and write generation it
reflects. `update`, called by ingest and reindex after writing, appends an
entry to a change log kept in the store itself (collection `keyword_log`:
"generations g0..g1 touched these ids") and brings this client's index up to
date. A client whose index is behind replays the log entries that cover the
gap (fetching only those papers); when the log does not cover it (an ingest
that was killed, a log pruned) it compares every stored paper's metadata with
its own and re-indexes only what differs; when the store is another one
(reindexed), it rebuilds. The last two say so on stderr.

Files under ASSISTANT_HOME/cache/keyword-<hash of the library location>/:
`manifest.json`, `vocab.txt` (one term per line, append-only: the manifest
says how many lines count), `seg-<id>.npz` (postings and lengths) and
`seg-<id>.json` (paper ids and metadata), `lock` (held while updating).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .settings import Settings
    from .store import Library

INDEX_VERSION = 1  # bump when tokenisation or the file layout changes: old indexes are rebuilt
TITLE_WEIGHT = 3.0  # a title term counts as this many body terms (BM25F)
K1 = 1.2
B = 0.75
MAX_SEGMENTS = 8  # more than this and update() merges them into one
LOG_COLLECTION = "keyword_log"
LOG_KEEP = 200  # log entries kept in the store; a client further behind compares metadata
LOG_MAX_IDS = 5000  # an entry naming more ids than this says "compare metadata" instead
FETCH_BATCH = 500

# Figures such as "12,868" or "2.8" stay one token: abstracts quote them and
# users search for them; a plain \w+ pattern would split them into "12", "868".
TOKEN_RE = re.compile(r"(?u)\d+(?:[.,]\d+)+|\b\w\w+\b")
NAME_WORD_RE = re.compile(r"[^\W_]+")
# Words that carry no topic, in abstracts or in questions about them.
STOPWORDS = frozenset(
    """
a an and are as at be been being but by can could did do does doing for from had has have how
if in into is it its no not of on or our over such than that the their then there these they
this those to was we were what when where which while who whom why will with would you your
i me my us about also via using use used based show shows propose proposes present presents
""".split()
)
# Words of a request, not of its topic ("Summarize GaLore.", "Tell me about X").
QUERY_STOPWORDS = STOPWORDS | frozenset(
    """
summarize summarise summary explain describe tell give list paper papers library main idea
""".split()
)
MAX_NAME_WORDS = 6
NAME_RARE_SHARE = 0.01  # a name whose rarest word is in at most this share of papers is distinctive
NAME_RARE_MIN = 10  # ... or in at most this many


def notice(message: str) -> None:
    """Where the index says that it is catching up or rebuilding (stderr; replaceable)."""
    print(message, file=sys.stderr, flush=True)


_STEMMER = None


def stem(words: list[str]) -> list[str]:
    global _STEMMER
    if _STEMMER is None:
        import Stemmer

        _STEMMER = Stemmer.Stemmer("english")
    return _STEMMER.stemWords(words)


def tokenize(text: str, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """Lower-cased, stemmed word tokens without stop words (figures kept whole)."""
    return stem([w for w in TOKEN_RE.findall(text.lower()) if w not in stopwords])


def normalise_name(text: str) -> str:
    """Letters and digits only, single-spaced: "Q-GaLore" -> "q galore"."""
    return " ".join(NAME_WORD_RE.findall(text.casefold()))


def title_name(title: str) -> str | None:
    """The name a title starts with ("GaLore" in "GaLore: Memory-Efficient ..."), normalised."""
    head, sep, _ = title.partition(":")
    if not sep:
        return None
    name = normalise_name(head)
    return name if name and len(name.split()) <= MAX_NAME_WORDS else None


# -- segments --------------------------------------------------------------------


@dataclass
class Segment:
    """Immutable postings of some papers; `live` is the only part that changes."""

    name: str
    pids: list[str]
    metas: list[dict[str, Any]]
    terms: np.ndarray  # int32, sorted: the posting list of term t is terms == t
    docs: np.ndarray  # int32, index into pids
    tf_title: np.ndarray  # uint16
    tf_body: np.ndarray  # uint16
    title_len: np.ndarray  # int32
    body_len: np.ndarray  # int32
    live: np.ndarray  # bool

    def __post_init__(self) -> None:
        import numpy as np

        self.tf = TITLE_WEIGHT * self.tf_title.astype(np.float32) + self.tf_body
        self.dl = TITLE_WEIGHT * self.title_len.astype(np.float32) + self.body_len
        # Per-document facts the index needs as arrays (filters, counts) and names:
        # computed once per segment, so a change costs only the new segment's loop.
        self.published = np.fromiter(
            (int(m.get("published") or 0) for m in self.metas),
            dtype=np.int64,
            count=len(self.metas),
        )
        self.n_chunks = np.fromiter(
            (int(m.get("n_chunks") or 0) for m in self.metas), dtype=np.int64, count=len(self.metas)
        )
        self.named = [
            (i, name)
            for i, m in enumerate(self.metas)
            if (name := title_name(str(m.get("title", ""))))
        ]

    @classmethod
    def build(
        cls,
        name: str,
        papers: list[tuple[str, dict[str, Any], str]],
        vocab: dict[str, int],
        vocab_list: list[str],
    ) -> Segment:
        """Tokenise (id, metadata, abstract) triples; new terms are appended to the vocabulary."""
        import numpy as np

        terms: list[int] = []
        docs: list[int] = []
        tf_t: list[int] = []
        tf_b: list[int] = []
        tlen, blen = [], []
        for d, (_pid, meta, abstract) in enumerate(papers):
            title_tokens = tokenize(str(meta.get("title", "")))
            body_tokens = tokenize(abstract or "")
            tlen.append(len(title_tokens))
            blen.append(len(body_tokens))
            counts: dict[int, list[int]] = {}
            for field_no, tokens in ((0, title_tokens), (1, body_tokens)):
                for tok in tokens:
                    tid = vocab.get(tok)
                    if tid is None:
                        tid = vocab[tok] = len(vocab_list)
                        vocab_list.append(tok)
                    counts.setdefault(tid, [0, 0])[field_no] += 1
            for tid, (a, b) in counts.items():
                terms.append(tid)
                docs.append(d)
                tf_t.append(min(a, 65535))
                tf_b.append(min(b, 65535))
        t = np.asarray(terms, dtype=np.int32)
        order = np.argsort(t, kind="stable")
        return cls(
            name=name,
            pids=[p for p, _, _ in papers],
            metas=[m for _, m, _ in papers],
            terms=t[order],
            docs=np.asarray(docs, dtype=np.int32)[order],
            tf_title=np.asarray(tf_t, dtype=np.uint16)[order],
            tf_body=np.asarray(tf_b, dtype=np.uint16)[order],
            title_len=np.asarray(tlen, dtype=np.int32),
            body_len=np.asarray(blen, dtype=np.int32),
            live=np.ones(len(papers), dtype=bool),
        )

    @classmethod
    def merge(cls, name: str, parts: list[Segment]) -> Segment:
        """The live documents of `parts` as one segment (no re-tokenising)."""
        import numpy as np

        pids, metas = [], []
        arrays: dict[str, list[np.ndarray]] = {
            k: [] for k in ("terms", "docs", "tf_title", "tf_body")
        }
        tlen, blen = [], []
        base = 0
        for seg in parts:
            keep = np.flatnonzero(seg.live)
            renumber = np.full(len(seg.pids), -1, dtype=np.int64)
            renumber[keep] = np.arange(len(keep)) + base
            sel = seg.live[seg.docs]
            arrays["terms"].append(seg.terms[sel])
            arrays["docs"].append(renumber[seg.docs[sel]].astype(np.int32))
            arrays["tf_title"].append(seg.tf_title[sel])
            arrays["tf_body"].append(seg.tf_body[sel])
            tlen.append(seg.title_len[keep])
            blen.append(seg.body_len[keep])
            pids.extend(seg.pids[i] for i in keep)
            metas.extend(seg.metas[i] for i in keep)
            base += len(keep)
        cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in arrays.items()}
        order = np.argsort(cat["terms"], kind="stable")
        return cls(
            name=name,
            pids=pids,
            metas=metas,
            terms=cat["terms"][order].astype(np.int32),
            docs=cat["docs"][order].astype(np.int32),
            tf_title=cat["tf_title"][order].astype(np.uint16),
            tf_body=cat["tf_body"][order].astype(np.uint16),
            title_len=np.concatenate(tlen).astype(np.int32) if tlen else np.zeros(0, "i4"),
            body_len=np.concatenate(blen).astype(np.int32) if blen else np.zeros(0, "i4"),
            live=np.ones(len(pids), dtype=bool),
        )

    def save(self, folder: Path) -> None:
        import numpy as np

        tmp = folder / f"{self.name}.tmp.npz"
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                terms=self.terms,
                docs=self.docs,
                tf_title=self.tf_title,
                tf_body=self.tf_body,
                title_len=self.title_len,
                body_len=self.body_len,
            )
        tmp.replace(folder / f"{self.name}.npz")
        tmp_json = folder / f"{self.name}.tmp.json"
        tmp_json.write_text(json.dumps({"pids": self.pids, "metas": self.metas}), encoding="utf-8")
        tmp_json.replace(folder / f"{self.name}.json")

    @classmethod
    def load(cls, folder: Path, name: str) -> Segment:
        import numpy as np

        with np.load(folder / f"{name}.npz") as z:
            arrays = {k: z[k] for k in z.files}
        data = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        return cls(
            name=name,
            pids=data["pids"],
            metas=data["metas"],
            live=np.ones(len(data["pids"]), dtype=bool),
            **arrays,
        )


# -- the index ---------------------------------------------------------------------


class KeywordIndex:
    """BM25F over the live documents of every segment, plus the paper table and names."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder
        self.store_id: str | None = None
        self.generation: int | None = None
        self.vocab: dict[str, int] = {}
        self.vocab_list: list[str] = []
        self.segments: list[Segment] = []
        self.vocab_id = uuid.uuid4().hex[:12]
        self._finish()

    # -- derived state, recomputed after every change ------------------------------
    def _finish(self) -> None:
        """Global statistics and lookups over the live documents."""
        import numpy as np

        self.offsets: list[int] = []
        base = 0
        for seg in self.segments:
            self.offsets.append(base)
            base += len(seg.pids)
        self.n_docs = base
        self.live = (
            np.concatenate([s.live for s in self.segments])
            if self.segments
            else np.zeros(0, dtype=bool)
        )
        self.n_live = int(self.live.sum())
        df = np.zeros(len(self.vocab_list), dtype=np.float64)
        total_dl = 0.0
        for seg in self.segments:
            alive = seg.live[seg.docs]
            df += np.bincount(seg.terms[alive], minlength=len(self.vocab_list))[: len(df)]
            total_dl += float(seg.dl[seg.live].sum())
        self.df = df
        self.avgdl = total_dl / self.n_live if self.n_live else 1.0
        self.idf = np.log1p((self.n_live - df + 0.5) / (df + 0.5)).astype(np.float32)
        self.pid_at: list[str] = [pid for seg in self.segments for pid in seg.pids]
        self.published = (
            np.concatenate([s.published for s in self.segments])
            if self.segments
            else np.zeros(0, dtype=np.int64)
        )
        self.n_chunks = int(sum(int(s.n_chunks[s.live].sum()) for s in self.segments))
        doc_of: dict[str, int] = {}
        papers: dict[str, dict[str, Any]] = {}
        names: dict[str, list[str]] = {}
        for seg, off in zip(self.segments, self.offsets):
            if seg.live.all():
                doc_of.update(zip(seg.pids, range(off, off + len(seg.pids))))
                papers.update(zip(seg.pids, seg.metas))
            else:
                for i in np.flatnonzero(seg.live):
                    doc_of[seg.pids[i]] = off + int(i)
                    papers[seg.pids[i]] = seg.metas[i]
            for i, name in seg.named:
                if seg.live[i]:
                    names.setdefault(name, []).append(seg.pids[i])
        self.doc_of, self.papers, self.names = doc_of, papers, names

    # -- changes -----------------------------------------------------------------
    def apply(self, papers: list[tuple[str, dict[str, Any], str]], deleted: Iterable[str]) -> None:
        """Index new versions of `papers` and forget `deleted` (in memory)."""
        import bisect

        gone = set(deleted) | {pid for pid, _, _ in papers}
        for pid in gone:
            d = self.doc_of.get(pid)
            if d is not None:
                s = bisect.bisect_right(self.offsets, d) - 1
                self.segments[s].live[d - self.offsets[s]] = False
        self.segments = [s for s in self.segments if s.live.any()]
        if papers:
            self.segments.append(
                Segment.build(f"seg-{uuid.uuid4().hex[:12]}", papers, self.vocab, self.vocab_list)
            )
        if len(self.segments) > MAX_SEGMENTS:
            self.segments = [Segment.merge(f"seg-{uuid.uuid4().hex[:12]}", self.segments)]
        self._finish()

    def clear(self) -> None:
        """Forget everything (before a rebuild): a new vocabulary, no segments."""
        self.segments, self.vocab, self.vocab_list = [], {}, []
        self.vocab_id = uuid.uuid4().hex[:12]
        self.store_id = self.generation = None
        self._finish()

    # -- persistence ----------------------------------------------------------------
    def save(self) -> None:
        """Write new segments, the vocabulary's new lines, then the manifest (atomically).

        The vocabulary file is named by `vocab_id` (new at every rebuild) and only
        grows, so a reader holding an older manifest reads the lines it expects.
        """
        if self.folder is None:
            return
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        for seg in self.segments:
            if not (folder / f"{seg.name}.json").is_file():
                seg.save(folder)
        vocab_path = folder / f"vocab-{self.vocab_id}.txt"
        have = _count_lines(vocab_path) if vocab_path.is_file() else 0
        if len(self.vocab_list) > have:
            with open(vocab_path, "a", encoding="utf-8") as fh:
                fh.write("".join(t + "\n" for t in self.vocab_list[have:]))
                fh.flush()
                os.fsync(fh.fileno())
        manifest = {
            "version": INDEX_VERSION,
            "title_weight": TITLE_WEIGHT,
            "store_id": self.store_id,
            "generation": self.generation,
            "vocab_id": self.vocab_id,
            "vocab_size": len(self.vocab_list),
            "segments": [
                {"name": s.name, "deleted": [int(i) for i in (~s.live).nonzero()[0]]}
                for s in self.segments
            ],
        }
        tmp = folder / f"manifest.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(manifest), encoding="utf-8")
        tmp.replace(folder / "manifest.json")
        keep = {s.name for s in self.segments} | {f"vocab-{self.vocab_id}"}
        for path in list(folder.glob("seg-*")) + list(folder.glob("vocab-*")):
            if path.name.split(".")[0] not in keep:
                path.unlink(missing_ok=True)

    def sync_from_disk(self) -> bool:
        """Adopt the manifest on disk (another process may have updated it); False if unusable."""
        if self.folder is None:
            return False
        try:
            manifest = json.loads((self.folder / "manifest.json").read_text(encoding="utf-8"))
            if (
                manifest.get("version") != INDEX_VERSION
                or manifest.get("title_weight") != TITLE_WEIGHT
            ):
                return False
            loaded = {s.name: s for s in self.segments}
            if manifest["vocab_id"] != self.vocab_id:
                loaded = {}  # segments of another vocabulary
            same = manifest["vocab_id"] == self.vocab_id
            have = len(self.vocab_list) if same else 0
            new_terms: list[str] = []
            if have > manifest["vocab_size"]:
                have, same, loaded = 0, False, {}  # ahead of the disk (unsaved): reload
            if have < manifest["vocab_size"]:
                new_terms = _read_vocab(
                    self.folder / f"vocab-{manifest['vocab_id']}.txt",
                    manifest["vocab_size"],
                    skip=have,
                )
                if have + len(new_terms) != manifest["vocab_size"]:
                    return False
            segments = []
            for entry in manifest["segments"]:
                seg = loaded.get(entry["name"]) or Segment.load(self.folder, entry["name"])
                seg.live[:] = True
                seg.live[entry["deleted"]] = False
                segments.append(seg)
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return False
        if not same:
            self.vocab_list, self.vocab = [], {}
        for term in new_terms:  # the vocabulary only grows: add its new lines
            self.vocab[term] = len(self.vocab_list)
            self.vocab_list.append(term)
        self.vocab_id = manifest["vocab_id"]
        self.segments = segments
        self.store_id = manifest["store_id"]
        self.generation = manifest["generation"]
        self._finish()
        return True

    # -- search -------------------------------------------------------------------
    def term_ids(self, query: str, stopwords: frozenset[str] = QUERY_STOPWORDS) -> list[int]:
        ids = []
        for tok in tokenize(query, stopwords):
            tid = self.vocab.get(tok)
            if tid is not None and tid < len(self.df) and self.df[tid] > 0 and tid not in ids:
                ids.append(tid)
        return ids

    def scores(self, term_ids: list[int]) -> np.ndarray:
        """BM25F score of every document (dead ones 0), indexed like `pid_at`."""
        import numpy as np

        total = np.zeros(self.n_docs, dtype=np.float32)
        for tid in term_ids:
            idf = self.idf[tid]
            # Keys of the array's own dtype: Python ints would make numpy convert the
            # whole posting array to int64 on every call (18 ms at 6M postings).
            keys = np.asarray((tid, tid + 1), dtype=np.int32)
            for seg, off in zip(self.segments, self.offsets):
                lo, hi = np.searchsorted(seg.terms, keys)
                if lo == hi:
                    continue
                docs = seg.docs[lo:hi]
                tf = seg.tf[lo:hi]
                norm = K1 * (1.0 - B + B * seg.dl[docs] / self.avgdl)
                total[docs + off] += idf * tf * (K1 + 1.0) / (tf + norm)
        total *= self.live
        return total

    def search(self, query: str, n: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The best `n` papers for `query` as (paper id, score), score > 0 only."""
        import numpy as np

        terms = self.term_ids(query)
        if not terms or not self.n_live:
            return []
        scores = self.scores(terms)
        if mask is not None:
            scores *= mask
        n = min(n, int(np.count_nonzero(scores)))
        if n <= 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.pid_at[int(d)], float(scores[d])) for d in top]

    def name_matches(self, query: str) -> list[str]:
        """Papers whose name (the title before its colon) the query says, longest names first.

        A name counts when it is distinctive (its rarest word is in few papers) or
        when it is most of what the query asks about ("What is GaLore?").
        """
        words = normalise_name(query).split()
        found: list[tuple[int, int, str]] = []
        for size in range(min(MAX_NAME_WORDS, len(words)), 0, -1):
            for start in range(len(words) - size + 1):
                name = " ".join(words[start : start + size])
                if name in self.names:
                    found.append((start, start + size, name))
        if not found:
            return []
        topic = max(1, len(tokenize(query, QUERY_STOPWORDS)))
        rare_df = max(NAME_RARE_MIN, NAME_RARE_SHARE * self.n_live)
        kept: list[tuple[int, int, str]] = []
        for start, end, name in found:  # longest first: drop names inside a longer match
            if any(s <= start and end <= e for s, e, _ in kept):
                continue
            name_terms = [self.vocab.get(t) for t in tokenize(name, frozenset())]
            dfs = [self.df[t] for t in name_terms if t is not None and t < len(self.df)]
            rare = bool(dfs) and min(dfs) <= rare_df
            covers = len(tokenize(name, QUERY_STOPWORDS)) * 2 >= topic
            if rare or covers:
                kept.append((start, end, name))
        return [pid for _, _, name in kept for pid in self.names[name]]


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def _read_vocab(path: Path, n: int, skip: int = 0) -> list[str]:
    """Lines skip..n-1 of the vocabulary file (later lines belong to a newer manifest)."""
    from itertools import islice

    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in islice(fh, skip, n)]


# -- keeping it current with the store -------------------------------------------------


def index_folder(library: Library, settings: Settings) -> Path:
    import hashlib

    where = hashlib.sha1(library.location.encode()).hexdigest()[:10]
    return Path(settings.home) / "cache" / f"keyword-{where}"


@contextmanager
def _locked(folder: Path):
    """One updater at a time per index folder (a no-op where flock is unavailable)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / "lock", "a+")
    except OSError:
        yield
        return
    try:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass
        yield
    finally:
        fh.close()


def store_state(library: Library) -> tuple[str | None, int]:
    """(papers collection id, write generation); (None, 0) for an empty store."""
    papers = library._existing("papers")
    if papers is None:
        return None, 0
    return str(papers.id), int((papers.metadata or {}).get("generation", 0))


def _log(library: Library, create: bool = False):
    try:
        if create:
            return library.client.get_or_create_collection(LOG_COLLECTION, embedding_function=None)
        return library.client.get_collection(LOG_COLLECTION, embedding_function=None)
    except Exception:  # the change log is an optimisation: without it clients compare metadata
        return None


def _fetch(library: Library, ids: list[str]) -> list[tuple[str, dict[str, Any], str]]:
    """The stored (id, metadata, abstract) of those of `ids` that exist."""
    papers = library.papers()
    out = []
    if papers is None:
        return out
    for start in range(0, len(ids), FETCH_BATCH):
        got = papers.get(ids=ids[start : start + FETCH_BATCH], include=["metadatas", "documents"])
        out.extend(
            (pid, dict(meta or {}), doc or "")
            for pid, meta, doc in zip(got["ids"], got["metadatas"], got["documents"])
        )
    return out


def _rebuild(
    index: KeywordIndex, library: Library, store_id: str | None, why: str, quiet: bool = False
) -> None:
    started = time.perf_counter()
    n = 0 if quiet else library.counts()[0]
    if n:
        notice(f"keyword index: rebuilding from {n} stored papers ({why})")
    index.clear()
    batch: list[tuple[str, dict[str, Any], str]] = []
    for pid, meta, extra in library.iter_papers(("metadatas", "documents")):
        batch.append((pid, meta, extra.get("document") or ""))
    index.apply(batch, ())
    index.store_id = store_id
    if n:
        notice(f"keyword index: rebuilt in {time.perf_counter() - started:.1f} s")


def _replay_log(
    index: KeywordIndex,
    library: Library,
    store_id: str,
    generation: int,
    applied: tuple[int, int] | None = None,
    skip: str | None = None,
) -> bool:
    """Apply the logged changes that cover (index.generation, generation]; False if they do not.

    `applied`: a span of generations whose changes are already in the index (the
    caller's own write), `skip` its log entry.
    """
    log = _log(library)
    if index.generation is None:
        return False
    spans: list[tuple[int, int, str | None]] = []
    if log is not None:
        got = log.get(
            where={"$and": [{"store": store_id}, {"to": {"$gt": index.generation}}]},
            include=["metadatas"],
        )
        spans = [
            (int(m["from"]), int(m["to"]), m.get("ids"))
            for eid, m in zip(got["ids"], got["metadatas"])
            if m and eid != skip
        ]
    if applied is not None:
        spans.append((applied[0], applied[1], "[]"))
    reached = index.generation
    ids: set[str] = set()
    for start, end, logged in sorted(spans):
        if start > reached:
            return False  # a gap: some write was not logged
        if not logged:
            return False  # too many ids to log: compare instead
        reached = max(reached, end)
        ids.update(json.loads(logged))
    if reached < generation:
        return False
    if ids:
        found = _fetch(library, sorted(ids))
        index.apply(found, ids - {pid for pid, _, _ in found})
    return True


def _compare(index: KeywordIndex, library: Library) -> int:
    """Re-index every paper whose stored metadata differs from the index's; returns how many."""
    stored = {pid: meta for pid, meta, _ in library.iter_papers()}
    changed = [pid for pid, meta in stored.items() if index.papers.get(pid) != meta]
    deleted = [pid for pid in index.papers if pid not in stored]
    if changed or deleted:
        index.apply(_fetch(library, changed), deleted)
    return len(changed) + len(deleted)


def catch_up(index: KeywordIndex, library: Library, quiet: bool = False) -> None:
    """Bring `index` to the store's current state, as cheaply as the store allows."""
    store_id, generation = store_state(library)
    if index.store_id == store_id and index.generation == generation:
        return
    if index.folder is not None:
        with _locked(index.folder):
            index.sync_from_disk()  # another process may have done the work
            store_id, generation = store_state(library)
            if index.store_id == store_id and index.generation == generation:
                return
            _bring_current(index, library, store_id, generation, quiet)
            try:
                index.save()
            except OSError:
                pass  # a read-only home still searches; it catches up again next time
    else:
        _bring_current(index, library, store_id, generation, quiet)


def _bring_current(
    index: KeywordIndex,
    library: Library,
    store_id: str | None,
    generation: int,
    quiet: bool = False,
) -> None:
    if store_id is None:
        index.clear()
    elif index.store_id != store_id or not index.segments and index.generation is None:
        _rebuild(
            index,
            library,
            store_id,
            "first use" if index.store_id is None else "the library was re-indexed",
            quiet,
        )
    elif not _replay_log(index, library, store_id, generation):
        started = time.perf_counter()
        notice(
            f"keyword index: behind the library (generation {index.generation} < "
            f"{generation}) and the change log does not name every change; "
            "comparing every stored paper"
        )
        n = _compare(index, library)
        notice(f"keyword index: {n} papers re-indexed in {time.perf_counter() - started:.1f} s")
    index.store_id, index.generation = store_id, generation


def load(library: Library, settings: Settings, index: KeywordIndex | None = None) -> KeywordIndex:
    """The keyword index of `library`, current with the store (reusing `index`'s loaded parts)."""
    if index is None:
        index = KeywordIndex(index_folder(library, settings))
        index.sync_from_disk()
    catch_up(index, library)
    return index


def update(
    library: Library,
    settings: Settings,
    changed_ids: Iterable[str] | None,
    deleted_ids: Iterable[str] = (),
    since_generation: int | None = None,
) -> None:
    """Record what a write changed and bring this client's index up to date.

    Ingest and reindex call this after writing. `changed_ids` are papers written
    (added, re-embedded or relabelled), `deleted_ids` papers removed,
    `since_generation` the store's generation before the writes began; with
    `changed_ids=None` (reindex) the index is rebuilt from the store. Whatever
    the store holds for those ids is what gets indexed, so an interrupted write
    is indexed as far as it went.
    """
    store_id, generation = store_state(library)
    ids = sorted(set(changed_ids or ()) | set(deleted_ids))
    entry_id = None
    if (
        store_id is not None
        and changed_ids is not None
        and since_generation is not None
        and (ids or generation != since_generation)
    ):
        log = _log(library, create=True)
        if log is not None:
            try:
                entry_id = uuid.uuid4().hex
                log.add(
                    ids=[entry_id],
                    embeddings=[[1.0]],
                    metadatas=[
                        {
                            "store": store_id,
                            "from": int(since_generation),
                            "to": generation,
                            "ids": json.dumps(ids) if len(ids) <= LOG_MAX_IDS else "",
                            "at": time.time(),
                        }
                    ],
                )
                _prune_log(log)
            except Exception:  # noqa: BLE001 - see the comment on the next line
                pass  # the log is an optimisation: clients fall back to comparing metadata
    folder = index_folder(library, settings)
    index = KeywordIndex(folder)
    with _locked(folder):
        index.sync_from_disk()
        store_id, generation = store_state(library)
        if changed_ids is None:
            _rebuild(index, library, store_id, "after reindex", quiet=True)
        elif (
            store_id is not None
            and index.store_id == store_id
            and since_generation is not None
            and index.generation == since_generation
        ):
            # Current when these writes began: index what they wrote, then what others
            # logged meanwhile (a compare only if something is not logged).
            found = _fetch(library, ids)
            index.apply(found, set(ids) - {pid for pid, _, _ in found})
            if not _replay_log(
                index,
                library,
                store_id,
                generation,
                applied=(since_generation, generation),
                skip=entry_id,
            ):
                _bring_current(index, library, store_id, generation)
        elif index.store_id != store_id or index.generation != generation:
            _bring_current(
                index, library, store_id, generation, quiet=not since_generation
            )  # an empty store: the first build
        index.store_id, index.generation = store_id, generation
        try:
            index.save()
        except OSError:
            pass  # a read-only home still searches; it catches up again next time


def _prune_log(log) -> None:
    if log.count() <= LOG_KEEP:
        return
    got = log.get(include=["metadatas"])
    order = sorted(zip(got["ids"], got["metadatas"]), key=lambda x: float(x[1].get("at", 0)))
    log.delete(ids=[i for i, _ in order[: len(order) - LOG_KEEP]])


def filter_mask(
    index: KeywordIndex,
    admits: Callable[[dict[str, Any]], bool],
    since: int | None,
    until: int | None,
    slow: bool,
) -> np.ndarray:
    """Which documents a filter admits: dates compare numpy arrays; title/author words
    (`slow`) need each paper's metadata."""
    import numpy as np

    mask = index.live.copy()
    if since is not None:
        mask &= index.published >= since
    if until is not None:
        mask &= (index.published <= until) & (index.published > 0)
    if slow:
        for d in np.flatnonzero(mask):
            if not admits(index.papers[index.pid_at[d]]):
                mask[d] = False
    return mask
