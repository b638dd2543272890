"""Search latency at about 1k, 10k and 100k chunks, and what an ingest costs the next query.

The library is the bundled sample (264 papers, ~600 chunks, real vectors)
grown with synthetic papers until it holds each requested number of chunks:

* texts: each synthetic paper recombines sentences of the matching chunks of
  2-3 real papers (chunk j of the new paper takes a run of sentences from
  chunk j of each parent), under a perturbed title ("Revisiting ...", a word
  of another title appended, ...) and a unique id `synth:NNNNNNN`; it has as
  many chunks as its first parent, so chunk lengths stay realistic. Chunks are
  built directly (title + body, as `chunk_texts` does), not via the chunker.
* vectors: NOT embedded (100k texts would take hours on 2 cores). The real
  sample chunks are embedded once; a synthetic chunk's vector is a random
  convex combination (Dirichlet weights) of its parents' chunk vectors plus
  small Gaussian noise, re-normalised.
* everything goes through `Library.write` (paper records with metadata from
  `paper_metadata`, chunk records, vectors), then `sync.update` with the
  new ids, as ingest does (timed: "index update").

Per size: a new `Retriever`'s first `refresh()` (loads the keyword index and
paper table from ASSISTANT_HOME/cache; it must not rebuild), then `--queries`
realistic ML questions after one warm-up query (p50/p95 in ms, split into
query embedding, the Chroma dense query, BM25F, the chunk read, the rest), then
`--filtered` queries with a date filter, each with the filter cache emptied
first, so every one pays the filter's first use.

After the largest size, `--new-papers` (default 1,000) synthetic papers are
ingested the same way and the first query after it is timed twice: in the
process that was already searching (a chat left open while cron ingests),
and in a fresh process (as the first `ask` of the day), split into imports,
opening the library, loading the embedder, and the first and second search.

The library grows in place: the 1k library is extended to 10k, then 100k, so
the total build is what the largest size needs. Building 100k chunks takes
several minutes on 2 cores; progress is printed. Memory: the keyword index's
arrays, the cache and Chroma folders on disk, and the process's peak RSS.

Run from the repository root:

    ASSISTANT_EMBED_MODEL_DIR=/path/to/all-MiniLM-L6-v2 .venv/bin/python bench/search_bench.py
    .venv/bin/python bench/search_bench.py --sizes 1000,10000 --queries 30

A temporary ASSISTANT_HOME is created and removed; the real one is never used.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from _common import (
    add_common_args,
    check_model_dir,
    exported_home,
    load_line,
    machine_line,
    median,
    percentile,
    print_table,
    temp_home,
    timed,
)

QUERIES = [
    "How can large language models be made to reason step by step?",
    "diffusion models for text-to-video generation",
    "reducing hallucinations in retrieval-augmented generation",
    "efficient fine-tuning of LLMs with low-rank adapters",
    "What is direct preference optimization and how does it compare to RLHF?",
    "mixture of experts routing and load balancing",
    "long context extension for transformers beyond the training length",
    "speculative decoding to speed up LLM inference",
    "quantization of large language models to 4 bits",
    "vision-language models for visual question answering",
    "3D scene reconstruction with Gaussian splatting",
    "text-to-image diffusion with personalised subjects",
    "benchmarks for evaluating code generation models",
    "agents that use tools and APIs to solve tasks",
    "multilingual machine translation for low-resource languages",
    "instruction tuning datasets and data quality",
    "state space models like Mamba as an alternative to attention",
    "KV cache compression for long sequences",
    "mathematical reasoning benchmarks such as GSM8K and MATH",
    "self-supervised learning of speech representations",
    "text-to-speech synthesis with zero-shot voice cloning",
    "robot manipulation policies learned from demonstrations",
    "jailbreak attacks and safety alignment of chatbots",
    "watermarking machine-generated text",
    "scaling laws for neural language models",
    "knowledge distillation from a large teacher to a small student model",
    "video understanding with multimodal large language models",
    "image editing guided by natural language instructions",
    "contrastive pre-training of image and text encoders (CLIP)",
    "parameter-efficient transfer learning for vision transformers",
    "reward models and reinforcement learning from human feedback",
    "synthetic data generation for training LLMs",
    "in-context learning: why does it work?",
    "chain-of-thought prompting for multi-step problems",
    "retrieval of scientific papers with dense embeddings",
    "open-vocabulary object detection and segmentation",
    "3D generation from a single image",
    "human motion generation from text descriptions",
    "music generation with language models",
    "evaluation of LLMs as judges",
    "federated learning with privacy guarantees",
    "graph neural networks for molecule property prediction",
    "protein structure prediction with deep learning",
    "weather forecasting with machine learning models",
    "autonomous driving perception from camera images",
    "sparse attention mechanisms for efficient transformers",
    "continual learning without catastrophic forgetting",
    "uncertainty estimation and calibration of language models",
    "compressing vision transformers by token pruning",
    "How do you align a multimodal model with human preferences?",
    "GPT-4V evaluation on visual reasoning tasks",
    "LoRA rank and learning rate ablations",
]

TITLE_PREFIXES = [
    "Towards",
    "Revisiting",
    "Rethinking",
    "On",
    "Scaling",
    "Efficient",
    "Learning",
    "Understanding",
    "Beyond",
    "Improving",
]
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
NOISE_NORM = 0.05  # expected norm of the noise added to a unit-length mixed vector


@dataclass
class RealPaper:
    merged: object  # assistant.ingest.Merged
    bodies: list[list[str]]  # per chunk: its sentences
    vectors: object  # np.ndarray, one row per chunk
    authors: list[str]


class Timers:
    """Wall time per named step, collected by wrappers around package calls."""

    def __init__(self):
        self.times: dict[str, list[float]] = defaultdict(list)

    def reset(self) -> None:
        self.times.clear()

    def total(self, name: str) -> float:
        return sum(self.times.get(name, []))

    def wrap(self, name: str, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.times[name].append(time.perf_counter() - start)

        return wrapper


TIMERS = Timers()


class TimedEmbedder:
    """Passes through to the real embedder, timing `embed`."""

    def __init__(self, inner):
        self._inner = inner
        self.name = inner.name

    @property
    def dim(self) -> int:
        return self._inner.dim

    def embed(self, texts):
        return TIMERS.wrap("embed", self._inner.embed)(texts)

    def __getattr__(self, item):
        return getattr(self._inner, item)


class TimedCollection:
    """Passes through to a Chroma collection, timing query/get/count."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, item):
        attr = getattr(self._inner, item)
        if item in ("query", "get", "count"):
            return TIMERS.wrap(f"chroma.{item}", attr)
        return attr


def install_timers():
    """Time the retriever's building blocks without touching the package's files."""
    from assistant import retrieve
    from assistant.lexical import index, sync
    from assistant.store import Library

    kw = index.KeywordIndex
    kw.search = TIMERS.wrap("bm25.search", kw.search)
    sync.catch_up = TIMERS.wrap("index.catch_up", sync.catch_up)
    sync._rebuild = TIMERS.wrap("index.rebuild", sync._rebuild)
    sync._compare = TIMERS.wrap("index.compare", sync._compare)
    index.Segment.load = classmethod(TIMERS.wrap("index.load", index.Segment.load.__func__))
    retrieve.Retriever._passages = TIMERS.wrap("passages", retrieve.Retriever._passages)

    class TimedLibrary(Library):
        def chunks(self, create_for=None):
            inner = super().chunks(create_for)
            return None if inner is None else TimedCollection(inner)

    class TimedRetriever(retrieve.Retriever):
        def refresh(self):
            return TIMERS.wrap("refresh", super().refresh)()

    return TimedLibrary, TimedRetriever


# -- the synthetic library ------------------------------------------------------


def read_real(paths: list[Path] | None = None, fits=None) -> list[RealPaper]:
    """The papers of `paths` (default: the bundled sample), merged as ingest merges them and
    split into chunks of sentences; no vectors."""
    from assistant.chunking import split_abstract
    from assistant.ingest import bundled_corpus, expand_paths, merge_records
    from assistant.readers import read_file

    papers = []
    for path in expand_paths(paths or [bundled_corpus()]):
        papers.extend(read_file(path).papers)
    out = []
    for m in merge_records(papers).values():
        bodies = split_abstract(m.paper.title, m.paper.abstract, fits)
        out.append(RealPaper(m, [split_sentences(b) for b in bodies], None, list(m.paper.authors)))
    return out


def load_real(embedder) -> list[RealPaper]:
    """The bundled sample with its chunks embedded once."""
    import numpy as np

    real = read_real(fits=embedder.fits)
    texts = [f"{rp.merged.paper.title}\n\n{' '.join(b)}" for rp in real for b in rp.bodies]
    t, vectors = timed(embedder.embed, texts)
    print(f"embedded the {len(texts)} real sample chunks once: {t:.1f} s", flush=True)
    offset = 0
    for rp in real:
        rp.vectors = np.asarray(vectors[offset : offset + len(rp.bodies)])
        offset += len(rp.bodies)
    return real


def split_sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text.strip()) if s]


def perturb_title(rng, title: str, other: str) -> str:
    words = title.split()
    kind = rng.integers(4)
    if kind == 0:
        return f"{TITLE_PREFIXES[rng.integers(len(TITLE_PREFIXES))]} {title}"
    if kind == 1:
        tail = " ".join(other.split()[: int(rng.integers(2, 5))]).rstrip(":,")
        return f"{title.split(':')[0]}: {tail}"
    if kind == 2 and len(words) > 3:
        i = int(rng.integers(1, len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)
    return f"{title} ({TITLE_PREFIXES[rng.integers(len(TITLE_PREFIXES))]})"


def synth_paper(rng, real: list[RealPaper], index: int, embedder_name: str, now: float):
    """One synthetic paper: (id, metadata, abstract, chunk texts, vectors); the vectors are
    None when the real papers have none (a keyword-only library)."""
    import numpy as np

    from assistant.ingest import Merged, paper_metadata
    from assistant.records import Paper

    parents = [real[i] for i in rng.choice(len(real), size=int(rng.integers(2, 4)), replace=False)]
    base = parents[0]
    title = perturb_title(rng, base.merged.paper.title, parents[1].merged.paper.title)
    bodies, vectors = [], []
    for j in range(len(base.bodies)):
        weights = rng.dirichlet(np.ones(len(parents)))
        sentences = []
        mix = None if base.vectors is None else np.zeros(base.vectors.shape[1], dtype=np.float64)
        for w, parent in zip(weights, parents):
            c = j % len(parent.bodies)
            src = parent.bodies[c]
            take = max(1, round(w * len(src)))
            start = int(rng.integers(0, len(src) - take + 1))
            sentences.extend(src[start : start + take])
            if mix is not None:
                mix += w * parent.vectors[c]
        if mix is not None:
            mix += rng.normal(0.0, NOISE_NORM / np.sqrt(mix.size), size=mix.size)
            vectors.append(mix / np.linalg.norm(mix))
        bodies.append(" ".join(sentences))
    authors = list(dict.fromkeys(a for p in parents for a in p.authors[:3]))
    published = date(2023, 1, 1) + timedelta(days=int(rng.integers(0, 900)))
    paper = Paper(
        title=title,
        abstract=" ".join(bodies),
        source="synthetic",
        line=index,
        authors=authors,
        published=published,
    )
    meta = paper_metadata(Merged(paper=paper, sightings=[paper]), embedder_name, now)
    texts = [f"{title}\n\n{b}" for b in bodies]
    meta["n_chunks"] = len(texts)
    return (
        f"synth:{index:07d}",
        meta,
        paper.abstract,
        texts,
        None if base.vectors is None else np.asarray(vectors, dtype=np.float32),
    )


def write_real(library, real: list[RealPaper], embedder) -> None:
    from assistant.ingest import paper_metadata
    from assistant.store import PaperWrite

    now = time.time()
    writes = []
    for rp in real:
        p = rp.merged.paper
        meta = paper_metadata(rp.merged, embedder.name, now)
        meta["n_chunks"] = len(rp.bodies)
        texts = [f"{p.title}\n\n{' '.join(b)}" for b in rp.bodies]
        writes.append(PaperWrite(p.paper_id, meta, p.abstract, texts, rp.vectors))
    for start in range(0, len(writes), 32):
        library.write(writes[start : start + 32], (embedder.name, embedder.dim))


def grow(
    library, real, embedder, rng, state: dict, target: int, batch_papers: int, settings
) -> tuple[float, float]:
    """Add synthetic papers until the library holds `target` chunks, then bring the keyword
    index up to date as ingest does; returns (seconds writing, seconds updating the index)."""
    from assistant.lexical import sync
    from assistant.store import PaperWrite

    started = time.perf_counter()
    since = library.generation
    key = (embedder.name, embedder.dim)
    last_print = started
    gen_s = write_s = 0.0
    new_ids: list[str] = []
    while state["chunks"] < target:
        now = time.time()
        t0 = time.perf_counter()
        writes = []
        while state["chunks"] < target and len(writes) < batch_papers:
            pid, meta, abstract, texts, vecs = synth_paper(
                rng, real, state["next"], embedder.name, now
            )
            state["next"] += 1
            state["chunks"] += len(texts)
            writes.append(PaperWrite(pid, meta, abstract, texts, vecs))
            new_ids.append(pid)
        t1 = time.perf_counter()
        library.write(writes, key)
        t2 = time.perf_counter()
        gen_s += t1 - t0
        write_s += t2 - t1
        state["papers"] += len(writes)
        if t2 - last_print > 15 or state["chunks"] >= target:
            last_print = t2
            el = t2 - started
            print(
                f"  ... {state['chunks']} chunks / {state['papers']} papers, {el:.0f} s "
                f"(generate {gen_s:.0f} s, Library.write {write_s:.0f} s, last batch "
                f"{(t2 - t1) / max(1, sum(len(w.chunks) for w in writes)) * 1000:.2f} "
                "ms/chunk)",
                flush=True,
            )
    t_written = time.perf_counter() - started
    t_update, _ = timed(sync.update, library, settings, new_ids, (), since)
    return t_written, t_update


# -- measuring ------------------------------------------------------------------


def measure(TimedLibrary, TimedRetriever, settings, embedder, queries, k, n_filtered):
    """Load time of a new retriever's caches and per-query latencies."""
    from assistant.retrieve import Filters

    result: dict[str, object] = {}
    TIMERS.reset()
    lib = TimedLibrary.open(settings)
    retriever = TimedRetriever(lib, embedder, settings)
    t_load, _ = timed(retriever.refresh)
    result["load"] = t_load
    result["load_parts"] = {
        name: TIMERS.total(name) for name in ("index.load", "index.rebuild", "index.compare")
    }
    if TIMERS.total("index.rebuild") or TIMERS.total("index.compare"):
        print("  WARNING: the new Retriever rebuilt or compared instead of loading the index")

    retriever.search("warm-up: transformers for language modelling", k=k)

    def run(qs, filters_for):
        rows = []
        for i, q in enumerate(qs):
            filters = filters_for(i)
            if filters is not None:
                retriever._masks.clear()  # every filtered query pays the filter's first use
            TIMERS.reset()
            t, hits = timed(retriever.search, q, k, filters)
            rows.append(
                {
                    "total": t,
                    "embed": TIMERS.total("embed"),
                    "dense": TIMERS.total("chroma.query"),
                    "bm25": TIMERS.total("bm25.search"),
                    "passages": TIMERS.total("passages"),
                    "refresh": TIMERS.total("refresh"),
                    "hits": len(hits),
                }
            )
        return rows

    result["plain"] = run(queries, lambda i: None)
    starts = [date(2024, 1, 1), date(2023, 7, 1), date(2024, 6, 1), date(2022, 1, 1)]
    result["filtered"] = (
        run(queries[:n_filtered], lambda i: Filters(since=starts[i % 4])) if n_filtered else []
    )
    result["retriever"] = retriever
    return result


FRESH_PROCESS = r"""
import json, sys, time
t0 = time.perf_counter()
from assistant.settings import Settings
from assistant.retrieve import Retriever
from assistant.store import Library
from assistant.embed import MiniLMEmbedder
import chromadb  # noqa: F401
t1 = time.perf_counter()
settings = Settings.load()
library = Library.open(settings)
t2 = time.perf_counter()
embedder = MiniLMEmbedder(settings.embed_model_dir)
embedder.embed(["load the model"])
t3 = time.perf_counter()
retriever = Retriever(library, embedder, settings)
retriever.refresh()
t4 = time.perf_counter()
first = retriever.search(sys.argv[1], k=10)
t5 = time.perf_counter()
retriever.search(sys.argv[2], k=10)
t6 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "open library": t2 - t1, "load embedder": t3 - t2,
                  "refresh (index load)": t4 - t3, "first search": t5 - t4,
                  "second search": t6 - t5, "hits": len(first)}))
"""


def after_ingest(retriever, writer, real, inner, rng, state, settings, n_new, queries, k):
    """Ingest `n_new` papers into the library, then the first query after it (see docstring)."""
    import json
    import subprocess
    import sys

    from _common import REPO, child_env

    from assistant.lexical import sync
    from assistant.store import PaperWrite

    since = writer.generation
    now = time.time()
    papers = [synth_paper(rng, real, state["next"] + i, inner.name, now) for i in range(n_new)]
    state["next"] += n_new
    writes = [
        PaperWrite(pid, meta, abstract, texts, vecs) for pid, meta, abstract, texts, vecs in papers
    ]
    t_write = 0.0
    for start in range(0, len(writes), 32):  # ingest's batch size
        t, _ = timed(writer.write, writes[start : start + 32], (inner.name, inner.dim))
        t_write += t
    t_update, _ = timed(sync.update, writer, settings, [w.paper_id for w in writes], (), since)
    TIMERS.reset()
    t_warm, hits = timed(retriever.search, queries[0], k)
    warm = {
        "first search": t_warm,
        "of which refresh": TIMERS.total("refresh"),
        "segment loads": TIMERS.total("index.load"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, queries[1], queries[2]],
        cwd=REPO,
        env={**child_env(settings.home, settings.embed_model_dir), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode:
        print(proc.stderr[-2000:])
        fresh = {}
    else:
        fresh = json.loads(proc.stdout.strip().splitlines()[-1])
        if proc.stderr.strip():
            print("  fresh process said on stderr: " + proc.stderr.strip()[-300:])
    return {
        "new papers": n_new,
        "new chunks": sum(len(w.chunks) for w in writes),
        "write s": t_write,
        "index update s": t_update,
        "warm": warm,
        "fresh": fresh,
    }


def memory_figures(retriever, home: Path) -> dict[str, float]:
    import resource

    index = retriever._keyword
    arrays = sum(
        a.nbytes
        for seg in index.segments
        for a in (seg.terms, seg.docs, seg.tf_title, seg.tf_body, seg.tf, seg.dl, seg.live)
    )

    def folder_mb(path: Path) -> float:
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20

    return {
        "index arrays MiB": arrays / 2**20,
        "keyword cache on disk MiB": folder_mb(home / "cache"),
        "chroma on disk MiB": folder_mb(home / "chroma"),
        "peak RSS MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def summarise(rows: list[dict]) -> list[str]:
    def ms(values, q):
        return f"{percentile(values, q) * 1000:.1f}"

    total = [r["total"] for r in rows]
    parts = ("embed", "dense", "bm25", "passages", "refresh")
    rest = [r["total"] - sum(r[p] for p in parts) for r in rows]
    return [
        ms(total, 50),
        ms(total, 95),
        *(ms([r[p] for r in rows], 50) for p in parts),
        ms(rest, 50),
        f"{median([r['hits'] for r in rows]):.0f}",
    ]


@contextmanager
def bench_home(home: Path | None, keep: bool) -> Iterator[Path]:
    """`--home` (lasting, exported for child processes) or a temporary home."""
    if home is None:
        with temp_home(keep=keep) as temp:
            yield temp
        return
    home.mkdir(parents=True, exist_ok=True)
    with exported_home(home.resolve()) as lasting:
        yield lasting


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring (or bench/README.md) for how the library is built.",
    )
    add_common_args(parser)
    parser.add_argument(
        "--sizes",
        default="1000,10000,100000",
        help="library sizes in chunks, comma-separated, ascending [default: 1000,10000,100000]",
    )
    parser.add_argument(
        "--queries",
        type=int,
        default=len(QUERIES),
        help=f"how many of the built-in queries to time [default: {len(QUERIES)}]",
    )
    parser.add_argument(
        "--filtered",
        type=int,
        default=10,
        help="how many queries to time again with a since filter [default: 10]",
    )
    parser.add_argument("--k", type=int, default=10, help="results per query [default: 10]")
    parser.add_argument(
        "--write-batch",
        type=int,
        default=256,
        help="synthetic papers per Library.write call [default: 256]",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed [default: 0]")
    parser.add_argument(
        "--home",
        type=Path,
        help="a lasting ASSISTANT_HOME for the library: kept at the end, and a later run with "
        "the same folder starts from what it holds (growing 100k chunks takes ~10 min) "
        "[default: a temporary folder, removed]",
    )
    parser.add_argument(
        "--new-papers",
        type=int,
        default=1000,
        help="papers ingested after the largest size before timing the first "
        "query after an ingest (0: skip) [default: 1000]",
    )
    args = parser.parse_args()
    model_dir = check_model_dir(args.model_dir)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    queries = QUERIES[: args.queries]

    import numpy as np

    from assistant.embed import MiniLMEmbedder
    from assistant.settings import Settings
    from assistant.store import Library

    print(machine_line())
    print(
        "synthetic library: sample papers + recombined-sentence variants; synthetic vectors = "
        "random convex combinations of 2-3 real chunk vectors + noise "
        f"(norm ~{NOISE_NORM}), re-normalised; BM25 indexes the synthetic texts for real"
    )
    TimedLibrary, TimedRetriever = install_timers()
    inner = MiniLMEmbedder(model_dir)
    inner.embed(["warm-up"])
    embedder = TimedEmbedder(inner)
    rng = np.random.default_rng(args.seed)

    results = []
    with bench_home(args.home, args.keep_home) as home:
        settings = Settings(home=Path(home), embed_model_dir=model_dir)
        real = load_real(inner)
        writer = Library.open(settings)
        from assistant.lexical import sync

        n_papers, n_chunks = writer.counts()
        if n_papers:  # --home with a library grown by an earlier run: carry on from it
            state = {"papers": n_papers, "chunks": n_chunks, "next": n_papers - len(real)}
            print(f"reusing {home}: {n_papers} papers, {n_chunks} chunks", flush=True)
        else:
            t_real, _ = timed(write_real, writer, real, inner)
            sync.update(writer, settings, [r.merged.paper.paper_id for r in real], (), 0)
            state = {"papers": len(real), "chunks": sum(len(r.bodies) for r in real), "next": 0}
            print(
                f"wrote the sample ({state['papers']} papers, {state['chunks']} chunks) "
                f"in {t_real:.1f} s",
                flush=True,
            )
        res = None
        for size in sizes:
            print(f"\n== {size} chunks ==", flush=True)
            t_grow, t_update = grow(
                writer, real, inner, rng, state, size, args.write_batch, settings
            )
            n_papers, n_chunks = writer.counts()
            print(
                f"library: {n_papers} papers, {n_chunks} chunks (written in {t_grow:.0f} s, "
                f"keyword index updated in {t_update:.1f} s)",
                flush=True,
            )
            res = measure(
                TimedLibrary, TimedRetriever, settings, embedder, queries, args.k, args.filtered
            )
            res.update(size=size, papers=n_papers, chunks=n_chunks, grow=t_grow, update=t_update)
            print(f"new Retriever: first refresh (loads the index) {res['load']:.2f} s", flush=True)
            plain = summarise(res["plain"])
            print(f"search p50 {plain[0]} ms, p95 {plain[1]} ms", flush=True)
            results.append(res)
        after = memory = None
        if res is not None and args.new_papers:
            print(
                f"\n== ingest {args.new_papers} new papers into {res['chunks']} chunks ==",
                flush=True,
            )
            after = after_ingest(
                res["retriever"],
                writer,
                real,
                inner,
                rng,
                state,
                settings,
                args.new_papers,
                queries,
                args.k,
            )
            memory = memory_figures(res["retriever"], Path(home))

    header = [
        "chunks",
        "papers",
        "p50 ms",
        "p95 ms",
        "embed",
        "dense",
        "bm25",
        "passages",
        "refresh",
        "rest",
        "hits",
    ]
    print_table(
        f"Retriever.search latency, k={args.k}, {len(queries)} queries after one warm-up; "
        "parts are p50 ms of each part, so they need not add up",
        header,
        [[r["chunks"], r["papers"], *summarise(r["plain"])] for r in results],
    )
    if args.filtered:
        print_table(
            f"Same, {args.filtered} queries with Filters(since=...), four dates in turn, the "
            "filter cache emptied before each (every query is a first use)",
            header,
            [[r["chunks"], r["papers"], *summarise(r["filtered"])] for r in results],
        )
    for r in results[-1:]:  # where the tail comes from: the slowest queries, part by part
        for name in ("plain", "filtered"):
            slow = sorted(r[name], key=lambda row: -row["total"])[:3]
            print(
                f"slowest {name} queries at {r['chunks']} chunks (ms): "
                + "; ".join(
                    f"{row['total'] * 1000:.0f} = "
                    + " ".join(
                        f"{p} {row[p] * 1000:.0f}"
                        for p in ("embed", "dense", "bm25", "passages", "refresh")
                    )
                    for row in slow
                )
            )
    print_table(
        "Building the library and loading the index",
        ["chunks", "write s", "index update s", "new Retriever refresh s", "segment loads s"],
        [
            [
                r["chunks"],
                f"{r['grow']:.0f}",
                f"{r['update']:.2f}",
                f"{r['load']:.2f}",
                f"{r['load_parts']['index.load']:.2f}",
            ]
            for r in results
        ],
    )
    if after:
        print(
            f"\nIngest of {after['new papers']} papers ({after['new chunks']} chunks): "
            f"Library.write {after['write s']:.1f} s, keyword index update "
            f"{after['index update s']:.2f} s"
        )
        warm = after["warm"]
        print(
            f"first query after it, in the process already searching: "
            f"{warm['first search'] * 1000:.0f} ms (refresh {warm['of which refresh'] * 1000:.0f}"
            f" ms, of which loading the new segment {warm['segment loads'] * 1000:.0f} ms)"
        )
        if after["fresh"]:
            print(
                "first query after it, in a fresh process: "
                + ", ".join(
                    f"{name} {value:.2f} s"
                    for name, value in after["fresh"].items()
                    if name != "hits"
                )
            )
    if memory:
        print(
            "memory at the largest size: "
            + ", ".join(f"{name} {value:.0f}" for name, value in memory.items())
        )
    print(
        "\nParts: embed = the query's MiniLM embedding; dense = Chroma collection.query; "
        "bm25 = KeywordIndex.search (BM25F over papers); passages = reading the top papers' "
        "chunks and choosing each one's passage; refresh = Retriever.refresh (generation "
        "check); rest = everything else (names, fusion, filters)."
    )
    print(f"\n{load_line()} (2 cores: above ~2, other work was competing)")


if __name__ == "__main__":
    main()
