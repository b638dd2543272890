"""The product's keyword index (numpy segments, `assistant/lexical/`) against SQLite FTS5.

Issue 21 asks whether SQLite FTS5 (bm25() with column weights, incremental, on
disk, nothing loaded at start) should replace the index of our own. Both are
built over the same papers, one document per paper (title and abstract):

* `segments`: `KeywordIndex` as the product builds it (BM25F, title x3),
  saved to disk and loaded back as a new process does;
* `fts5-ours`: FTS5 over the same tokens (our tokenizer's stemmed words
  without stop words, space-joined), ranked by `bm25(fts, 3.0, 1.0)`: the same
  words, FTS5's ranking (per-column BM25, weighted sum);
* `fts5-pruned`: the `fts5-ours` database, each query without its words that
  are in more than 5% of the papers (at least its rarest word kept), read from
  an `fts5vocab` table: the usual remedy for bm25() scoring every paper that
  holds a common word;
* `fts5-porter`: FTS5 on the raw text with its own `porter unicode61`
  tokenizer (no Python tokenising at ingest), the same weights.

The library: the bundled sample (264 papers) and the real arXiv week in
tests/data/arxiv-week-2025 (about 2,000 papers), then synthetic papers that
recombine their sentences under perturbed titles (search_bench.py's generator,
without vectors) until it holds `--chunks` chunks (default 100,000, about 44k
papers). Keyword only: nothing is embedded.

Printed: quality of the keyword ranking alone (no dense side, no name
matches) on eval/name_queries.jsonl (hit@1, MRR@10), eval/questions.jsonl and
eval/questions-2025w47.jsonl (answerable questions: recall@10, MRR@10); query
latency over all those queries (the retriever asks for 80 candidates), p50 and
p95 of `--repeat` passes; a fresh process's load and first query, with its
resident memory it gained (over the same interpreter before loading), median
of `--fresh` runs (the files are in the page cache: they were just written); the build,
an incremental add of `--add` papers, and the size on disk.

Run from the repository root (no model needed):

    .venv/bin/python bench/keyword_bench.py                  # ~6-10 min on 2 cores
    .venv/bin/python bench/keyword_bench.py --chunks 10000   # ~1 min
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, load_line, machine_line, median, percentile, print_table, temp_home
from search_bench import read_real, synth_paper

CANDIDATES = 80  # what Retriever.search asks the keyword side for at k <= 10
WEEK = REPO / "tests" / "data" / "arxiv-week-2025"
EVAL = REPO / "eval"
PORTER = "porter unicode61 remove_diacritics 2"
# Our tokens: only figures ("12,868", "2.8") hold '.' or ','; keep them one token.
OURS = "unicode61 remove_diacritics 0 tokenchars '.,'"
PRUNE = 0.05  # fts5-pruned: query words in more than 5% of the papers are left out


# -- the library ------------------------------------------------------------------


def build_papers(target_chunks: int, seed: int) -> tuple[list[tuple[str, dict, str]], int]:
    """(id, metadata, abstract) of the real papers, then synthetic ones up to the target."""
    import numpy as np

    from assistant.ingest import paper_metadata

    real = read_real() + read_real(sorted(p for p in WEEK.iterdir() if p.is_dir()))
    now = time.time()
    papers, chunks = [], 0
    for rp in real:
        meta = paper_metadata(rp.merged, "none", now)
        meta["n_chunks"] = len(rp.bodies)
        papers.append((rp.merged.paper.paper_id, meta, rp.merged.paper.abstract))
        chunks += len(rp.bodies)
    rng = np.random.default_rng(seed)
    n = 0
    while chunks < target_chunks:
        pid, meta, abstract, texts, _ = synth_paper(rng, real, n, "none", now)
        papers.append((pid, meta, abstract))
        chunks += len(texts)
        n += 1
    return papers, chunks


def eval_sets(papers: list[tuple[str, dict, str]]) -> dict[str, list[tuple[str, set[str]]]]:
    """Query -> expected paper ids, per set (answerable questions only)."""
    by_title: dict[str, str] = {}
    for pid, meta, _ in papers:
        by_title.setdefault(meta["title"], pid)

    def read(name: str) -> list[dict]:
        lines = (EVAL / name).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    sets = {
        "names": [(r["query"], {by_title[r["expected_title"]]}) for r in read("name_queries.jsonl")]
    }
    for label, name in (("questions", "questions.jsonl"), ("week", "questions-2025w47.jsonl")):
        sets[label] = [
            (r["question"], {by_title[t] for t in r["expected_titles"]})
            for r in read(name)
            if r["answerable"]
        ]
    return sets


# -- the FTS5 side ----------------------------------------------------------------


class Fts5Index:
    """One FTS5 table of (title, body) per paper; rowid -> paper id in a plain table."""

    def __init__(self, path: Path, own_tokens: bool, prune: float | None = None):
        self.path = path
        self.own_tokens = own_tokens
        self.prune = prune  # drop query words in more than this share of papers
        self.db = sqlite3.connect(path)
        self._n: int | None = None

    def create(self) -> None:
        tokenizer = OURS if self.own_tokens else PORTER
        self.db.executescript(
            f"""
            CREATE TABLE papers(id INTEGER PRIMARY KEY, pid TEXT UNIQUE NOT NULL);
            CREATE VIRTUAL TABLE fts USING fts5(title, body, tokenize="{tokenizer}");
            INSERT INTO fts(fts, rank) VALUES('rank', 'bm25(3.0, 1.0)');
            CREATE VIRTUAL TABLE vocab USING fts5vocab(fts, 'row');
            """
        )

    def _fields(self, meta: dict, abstract: str) -> tuple[str, str]:
        from assistant.lexical.terms import tokenize

        title = str(meta.get("title", ""))
        if not self.own_tokens:
            return title, abstract
        return " ".join(tokenize(title)), " ".join(tokenize(abstract))

    def apply(self, papers: list[tuple[str, dict, str]]) -> None:
        """Insert or replace papers, one transaction (what an ingest batch would do)."""
        with self.db:
            for pid, meta, abstract in papers:
                old = self.db.execute("SELECT id FROM papers WHERE pid = ?", (pid,)).fetchone()
                if old is not None:
                    self.db.execute("DELETE FROM fts WHERE rowid = ?", old)
                    self.db.execute("DELETE FROM papers WHERE id = ?", old)
                rowid = self.db.execute("INSERT INTO papers(pid) VALUES (?)", (pid,)).lastrowid
                self.db.execute(
                    "INSERT INTO fts(rowid, title, body) VALUES (?, ?, ?)",
                    (rowid, *self._fields(meta, abstract)),
                )

    def match(self, query: str) -> str | None:
        from assistant.lexical.terms import QUERY_STOPWORDS, TOKEN_RE, tokenize

        if self.own_tokens:
            words = tokenize(query, QUERY_STOPWORDS)
        else:
            words = [w for w in TOKEN_RE.findall(query.lower()) if w not in QUERY_STOPWORDS]
        words = list(dict.fromkeys(w.replace('"', "") for w in words))
        if self.prune is not None and len(words) > 1:
            words = self._rare(words)
        return " OR ".join(f'"{w}"' for w in words) or None

    def _rare(self, words: list[str]) -> list[str]:
        """The words in at most `prune` of the papers (at least the rarest one): a word in
        most papers adds little to a ranking but makes bm25() score every paper holding it."""
        if self._n is None:
            self._n = self.db.execute("SELECT count(*) FROM papers").fetchone()[0]
        marks = ",".join("?" * len(words))
        df = dict(self.db.execute(f"SELECT term, doc FROM vocab WHERE term IN ({marks})", words))
        kept = [w for w in words if df.get(w, 0) <= self.prune * self._n]
        return kept or [min(words, key=lambda w: df.get(w, 0))]

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        expr = self.match(query)
        if expr is None:
            return []
        rows = self.db.execute(
            "SELECT fts.rowid, rank FROM fts WHERE fts MATCH ? ORDER BY rank LIMIT ?", (expr, n)
        ).fetchall()
        if not rows:
            return []
        ids = dict(
            self.db.execute(
                f"SELECT id, pid FROM papers WHERE id IN ({','.join('?' * len(rows))})",
                [r[0] for r in rows],
            ).fetchall()
        )
        return [(ids[rowid], -score) for rowid, score in rows]


# -- measuring ----------------------------------------------------------------------


def quality(search, sets) -> dict[str, dict[str, float]]:
    out = {}
    for label, queries in sets.items():
        hit1 = rr = recall = 0.0
        for query, expected in queries:
            got = [pid for pid, _ in search(query, 10)]
            hit1 += bool(got) and got[0] in expected
            rank = next((i for i, pid in enumerate(got, 1) if pid in expected), None)
            rr += 1.0 / rank if rank else 0.0
            recall += len(expected & set(got)) / len(expected)
        n = len(queries)
        out[label] = {"n": n, "hit@1": hit1 / n, "mrr@10": rr / n, "recall@10": recall / n}
    return out


def latencies(search, queries: list[str], repeat: int) -> list[float]:
    search(queries[0], CANDIDATES)  # warm-up
    times = []
    for _ in range(repeat):
        for q in queries:
            start = time.perf_counter()
            search(q, CANDIDATES)
            times.append((time.perf_counter() - start) * 1000)
    return times


FRESH = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy, sqlite3
sys.path.insert(0, "bench")
from assistant.lexical.index import KeywordIndex
from assistant.lexical.terms import tokenize
from keyword_bench import PRUNE, Fts5Index
tokenize("warm the stemmer")
def rss():  # resident now (KiB): the peak would be the imports' at a small size
    line = next(x for x in open("/proc/self/status") if x.startswith("VmRSS:"))
    return int(line.split()[1])
base = rss()
kind, where, query, second = sys.argv[1:5]
t1 = time.perf_counter()
if kind == "segments":
    index = KeywordIndex(__import__("pathlib").Path(where))
    assert index.sync_from_disk()
    search = index.search
else:
    index = Fts5Index(__import__("pathlib").Path(where), own_tokens=kind != "fts5-porter",
                      prune=PRUNE if kind == "fts5-pruned" else None)
    search = index.search
t2 = time.perf_counter()
hits = search(query, 80)
t3 = time.perf_counter()
search(second, 80)
t4 = time.perf_counter()
print(json.dumps({"load": t2 - t1, "first": t3 - t2, "second": t4 - t3,
                  "rss_mib": (rss() - base) / 1024, "hits": len(hits)}))
"""


def fresh(kind: str, where: Path, queries: tuple[str, str], runs: int) -> dict[str, float]:
    results = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", FRESH, kind, str(where), *queries],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(out.stdout))
    return {k: median([r[k] for r in results]) for k in ("load", "first", "second", "rss_mib")}


def folder_mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="library size in chunks")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the queries")
    parser.add_argument("--fresh", type=int, default=3, help="fresh-process runs per index")
    parser.add_argument("--add", type=int, default=1000, help="papers added incrementally")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--keep-home", action="store_true")
    args = parser.parse_args()

    from assistant.lexical.index import KeywordIndex

    print(machine_line(), flush=True)
    started = time.perf_counter()
    papers, chunks = build_papers(args.chunks, args.seed)
    extra, _ = build_papers(0, args.seed + 1)  # only the real papers: new versions to add
    print(f"library: {len(papers)} papers, {chunks} chunks ({time.perf_counter() - started:.0f} s)")
    sets = eval_sets(papers)
    queries = [q for qs in sets.values() for q, _ in qs]
    # New versions of `--add` papers (changed abstracts): an ingest's incremental write.
    added = [(pid, meta, abstract + " Revised.") for pid, meta, abstract in extra[: args.add]]

    rows_quality, rows_speed, rows_build = [], [], []
    with temp_home(keep=args.keep_home) as home:
        for kind in ("segments", "fts5-ours", "fts5-pruned", "fts5-porter"):
            where = home / kind
            t0 = time.perf_counter()
            if kind == "fts5-pruned":  # the fts5-ours database, queried without common words
                index = Fts5Index(home / "fts5-ours.db", own_tokens=True, prune=PRUNE)
                where, search = index.path, index.search
            elif kind == "segments":
                index = KeywordIndex(where)
                index.apply(papers, ())
                index.save()
                search = index.search
            else:
                index = Fts5Index(where.with_suffix(".db"), own_tokens=kind == "fts5-ours")
                index.create()
                index.apply(papers)
                where = index.path
                search = index.search
            t_build = time.perf_counter() - t0
            t0 = time.perf_counter()
            if kind == "segments":
                index.apply(added, ())
                index.save()
            elif kind != "fts5-pruned":
                index.apply(added)
            t_add = time.perf_counter() - t0
            if kind != "fts5-pruned":
                print(f"{kind}: built in {t_build:.1f} s, {args.add} papers added in {t_add:.2f} s")
                rows_build.append(
                    [kind, f"{t_build:.1f}", f"{t_add:.2f}", f"{folder_mib(where):.1f}"]
                )
            q = quality(search, sets)
            times = latencies(search, queries, args.repeat)
            f = fresh(kind, where, (sets["questions"][0][0], sets["names"][0][0]), args.fresh)
            rows_quality.append(
                [kind]
                + [f"{q['names'][m]:.3f}" for m in ("hit@1", "mrr@10")]
                + [f"{q[s][m]:.3f}" for s in ("questions", "week") for m in ("recall@10", "mrr@10")]
            )
            rows_speed.append(
                [
                    kind,
                    f"{median(times):.1f}",
                    f"{percentile(times, 95):.1f}",
                    f"{max(times):.1f}",
                    f"{f['load'] * 1000:.0f}",
                    f"{f['first'] * 1000:.1f}",
                    f"{f['second'] * 1000:.1f}",
                    f"{f['rss_mib']:.0f}",
                ]
            )
            del index, search
        n = {label: len(qs) for label, qs in sets.items()}
        print_table(
            f"Quality of the keyword ranking alone ({len(papers)} papers, {chunks} chunks)",
            [
                "index",
                f"names hit@1 (n={n['names']})",
                "names MRR@10",
                f"questions R@10 (n={n['questions']})",
                "questions MRR@10",
                f"week R@10 (n={n['week']})",
                "week MRR@10",
            ],
            rows_quality,
        )
        print_table(
            f"Latency: {len(queries)} queries x {args.repeat}, top {CANDIDATES} (ms); "
            f"fresh process, median of {args.fresh}",
            [
                "index",
                "p50",
                "p95",
                "max",
                "fresh: load",
                "first query",
                "second",
                "RSS MiB",
            ],
            rows_speed,
        )
        print_table(
            "Build and size",
            ["index", "build s", f"add {args.add} s", "on disk MiB"],
            rows_build,
        )
    print(load_line())


if __name__ == "__main__":
    main()
