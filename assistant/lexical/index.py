"""The keyword index: BM25F over paper titles and abstracts, in immutable segments.

Why an index of our own. Local Chroma has no keyword ranking, `bm25s` cannot
add or delete documents (every ingest meant a full rebuild: 28.7 s at 100k
chunks, paid by the next query), and SQLite FTS5, which can, ranks an OR query
of common terms by calling `bm25()` on every matching row: p95 273 ms against
3.3 ms here at 100k chunks, with the same quality (bench/keyword_bench.py).
FTS5 loads nothing at start where this index takes 0.6 s and 211 MiB; a query
pays the p95 every time, a process the load once. This index is numpy arrays
in immutable *segments*: an ingest adds one small segment for the papers it changed and
marks their old versions deleted, so its cost follows what changed, not the
library's size; segments are merged when there are too many.

One document per paper (title and abstract, BM25F with the title weighted
TITLE_WEIGHT times a body term), so a paper's evidence is counted once, from
all its text, and a query that is a paper's name ranks that paper above papers
that only mention the name. Beside it, `names` maps the name a title starts
with ("GaLore" in "GaLore: Memory-Efficient ...") to its papers.

The index also holds every paper's stored metadata (the retriever's paper
table), so a new process needs no pass over the store. Keeping it current
with the store is `sync.py`'s job.

Files in the index's folder: `manifest.json`, `vocab-<id>.txt` (one term per
line, append-only: the manifest says how many lines count), `seg-<id>.npz`
(postings and lengths) and `seg-<id>.json` (paper ids and metadata).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .terms import MAX_NAME_WORDS, QUERY_STOPWORDS, normalise_name, title_name, tokenize

if TYPE_CHECKING:
    import numpy as np

INDEX_VERSION = 1  # bump when tokenisation or the file layout changes: old indexes are rebuilt
TITLE_WEIGHT = 3.0  # a title term counts as this many body terms (BM25F)
K1 = 1.2
B = 0.75
MAX_SEGMENTS = 8  # more than this and update() merges them into one
NAME_RARE_SHARE = 0.01  # a name whose rarest word is in at most this share of papers is distinctive
NAME_RARE_MIN = 10  # ... or in at most this many


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
