"""Search latency at about 1k, 10k and 100k chunks (p50/p95 of `Retriever.search`).

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
  `paper_metadata`, chunk records, vectors), as ingest would write it.

The BM25 side indexes the synthetic texts for real: the first `refresh()` of a
new `Retriever` builds it (timed and reported separately, with its parts), and
a second fresh `Retriever` loads it from the cache (also reported). Then
`--queries` realistic ML questions are searched with the model already loaded,
after one warm-up query, and p50/p95 in ms are printed, split into query
embedding, the Chroma dense query, BM25, and the rest. A few queries with a
`since` date filter are timed as well (that path differs).

The library grows in place: the 1k library is extended to 10k, then 100k, so
the total build is what the largest size needs. Building 100k chunks takes
several minutes on 2 cores; progress is printed.

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
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from _common import (
    add_common_args,
    check_model_dir,
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

TITLE_PREFIXES = ["Towards", "Revisiting", "Rethinking", "On", "Scaling", "Efficient",
                  "Learning", "Understanding", "Beyond", "Improving"]
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
    from assistant.store import Library

    kw = retrieve.KeywordIndex
    kw.build = classmethod(TIMERS.wrap("bm25.build", kw.build.__func__))
    kw.load = classmethod(TIMERS.wrap("bm25.load", kw.load.__func__))
    kw.save = TIMERS.wrap("bm25.save", kw.save)
    kw.search = TIMERS.wrap("bm25.search", kw.search)

    class TimedLibrary(Library):
        def chunks(self, create_for=None):
            inner = super().chunks(create_for)
            return None if inner is None else TimedCollection(inner)

        def iter_papers(self, *args, **kwargs):
            return TIMERS.wrap("read.papers", lambda: list(super(TimedLibrary, self)
                                                           .iter_papers(*args, **kwargs)))()

        def iter_chunks(self):
            return TIMERS.wrap("read.chunks",
                               lambda: list(super(TimedLibrary, self).iter_chunks()))()

    class TimedRetriever(retrieve.Retriever):
        def refresh(self):
            return TIMERS.wrap("refresh", super().refresh)()

    return TimedLibrary, TimedRetriever


# -- the synthetic library ------------------------------------------------------


def load_real(embedder) -> list[RealPaper]:
    import numpy as np

    from assistant.chunking import split_abstract
    from assistant.ingest import bundled_corpus, expand_paths, merge_records
    from assistant.readers import read_file

    papers = []
    for path in expand_paths([bundled_corpus()]):
        papers.extend(read_file(path).papers)
    merged = list(merge_records(papers).values())
    bodies = [split_abstract(m.paper.title, m.paper.abstract, embedder.fits) for m in merged]
    texts = [f"{m.paper.title}\n\n{b}" for m, bs in zip(merged, bodies) for b in bs]
    t, vectors = timed(embedder.embed, texts)
    print(f"embedded the {len(texts)} real sample chunks once: {t:.1f} s", flush=True)
    out, offset = [], 0
    for m, bs in zip(merged, bodies):
        out.append(RealPaper(m, [split_sentences(b) for b in bs],
                             np.asarray(vectors[offset:offset + len(bs)]), list(m.paper.authors)))
        offset += len(bs)
    return out


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
    """One synthetic paper: (id, metadata, abstract, chunk texts, vectors)."""
    import numpy as np

    from assistant.ingest import Merged, paper_metadata
    from assistant.records import Paper

    parents = [real[i] for i in rng.choice(len(real), size=int(rng.integers(2, 4)),
                                              replace=False)]
    base = parents[0]
    title = perturb_title(rng, base.merged.paper.title, parents[1].merged.paper.title)
    bodies, vectors = [], []
    for j in range(len(base.bodies)):
        weights = rng.dirichlet(np.ones(len(parents)))
        sentences, mix = [], np.zeros(base.vectors.shape[1], dtype=np.float64)
        for w, parent in zip(weights, parents):
            c = j % len(parent.bodies)
            src = parent.bodies[c]
            take = max(1, round(w * len(src)))
            start = int(rng.integers(0, len(src) - take + 1))
            sentences.extend(src[start:start + take])
            mix += w * parent.vectors[c]
        mix += rng.normal(0.0, NOISE_NORM / np.sqrt(mix.size), size=mix.size)
        vectors.append(mix / np.linalg.norm(mix))
        bodies.append(" ".join(sentences))
    authors = list(dict.fromkeys(a for p in parents for a in p.authors[:3]))
    published = date(2023, 1, 1) + timedelta(days=int(rng.integers(0, 900)))
    paper = Paper(title=title, abstract=" ".join(bodies), source="synthetic", line=index,
                  authors=authors, published=published)
    meta = paper_metadata(Merged(paper=paper, sightings=[paper]), embedder_name, now)
    texts = [f"{title}\n\n{b}" for b in bodies]
    meta["n_chunks"] = len(texts)
    return (f"synth:{index:07d}", meta, paper.abstract, texts,
            np.asarray(vectors, dtype=np.float32))


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
        library.write(writes[start:start + 32], (embedder.name, embedder.dim))


def grow(library, real, embedder, rng, state: dict, target: int, batch_papers: int) -> float:
    """Add synthetic papers until the library holds `target` chunks; returns seconds."""
    from assistant.store import PaperWrite

    started = time.perf_counter()
    key = (embedder.name, embedder.dim)
    last_print = started
    gen_s = write_s = 0.0
    while state["chunks"] < target:
        now = time.time()
        t0 = time.perf_counter()
        writes = []
        while state["chunks"] < target and len(writes) < batch_papers:
            pid, meta, abstract, texts, vecs = synth_paper(rng, real, state["next"],
                                                           embedder.name, now)
            state["next"] += 1
            state["chunks"] += len(texts)
            writes.append(PaperWrite(pid, meta, abstract, texts, vecs))
        t1 = time.perf_counter()
        library.write(writes, key)
        t2 = time.perf_counter()
        gen_s += t1 - t0
        write_s += t2 - t1
        state["papers"] += len(writes)
        if t2 - last_print > 15 or state["chunks"] >= target:
            last_print = t2
            el = t2 - started
            print(f"  ... {state['chunks']} chunks / {state['papers']} papers, {el:.0f} s "
                  f"(generate {gen_s:.0f} s, Library.write {write_s:.0f} s, last batch "
                  f"{(t2 - t1) / max(1, sum(len(w.chunks) for w in writes)) * 1000:.2f} "
                  "ms/chunk)", flush=True)
    return time.perf_counter() - started


# -- measuring ------------------------------------------------------------------


def measure(TimedLibrary, TimedRetriever, settings, embedder, queries, k, n_filtered):
    """Build/load times of the retriever's caches and per-query latencies."""
    from assistant.retrieve import Filters

    result: dict[str, object] = {}
    TIMERS.reset()
    lib = TimedLibrary.open(settings)
    retriever = TimedRetriever(lib, embedder, settings)
    t_build, _ = timed(retriever.refresh)
    result["build"] = t_build
    result["build_parts"] = {name: TIMERS.total(name) for name in
                             ("read.papers", "read.chunks", "bm25.build", "bm25.save")}
    del retriever

    TIMERS.reset()
    lib = TimedLibrary.open(settings)
    retriever = TimedRetriever(lib, embedder, settings)
    t_load, _ = timed(retriever.refresh)
    result["load"] = t_load
    result["load_parts"] = {name: TIMERS.total(name) for name in ("read.papers", "bm25.load")}
    if TIMERS.total("bm25.build"):
        print("  WARNING: the fresh Retriever rebuilt BM25 instead of loading the cache")

    retriever.search("warm-up: transformers for language modelling", k=k)

    def run(qs, filters):
        rows = []
        for q in qs:
            TIMERS.reset()
            t, hits = timed(retriever.search, q, k, filters)
            rows.append({
                "total": t,
                "embed": TIMERS.total("embed"),
                "dense": TIMERS.total("chroma.query"),
                "bm25": TIMERS.total("bm25.search"),
                "refresh": TIMERS.total("refresh"),
                "count": TIMERS.total("chroma.count"),
                "get": TIMERS.total("chroma.get"),
                "hits": len(hits),
            })
        return rows

    result["plain"] = run(queries, None)
    since = Filters(since=date(2024, 1, 1))
    result["filtered"] = run(queries[:n_filtered], since) if n_filtered else []
    return result


def summarise(rows: list[dict]) -> list[str]:
    def ms(values, q):
        return f"{percentile(values, q) * 1000:.1f}"

    total = [r["total"] for r in rows]
    parts = ("embed", "dense", "bm25", "count", "refresh")
    rest = [r["total"] - sum(r[p] for p in parts) for r in rows]
    return [
        ms(total, 50), ms(total, 95),
        *(ms([r[p] for r in rows], 50) for p in parts),
        ms(rest, 50),
        f"{median([r['hits'] for r in rows]):.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring (or bench/README.md) for how the library is built.",
    )
    add_common_args(parser)
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="library sizes in chunks, comma-separated, ascending "
                             "[default: 1000,10000,100000]")
    parser.add_argument("--queries", type=int, default=len(QUERIES),
                        help=f"how many of the built-in queries to time [default: {len(QUERIES)}]")
    parser.add_argument("--filtered", type=int, default=10,
                        help="how many queries to time again with a since filter [default: 10]")
    parser.add_argument("--k", type=int, default=10, help="results per query [default: 10]")
    parser.add_argument("--write-batch", type=int, default=256,
                        help="synthetic papers per Library.write call [default: 256]")
    parser.add_argument("--seed", type=int, default=0, help="random seed [default: 0]")
    args = parser.parse_args()
    model_dir = check_model_dir(args.model_dir)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    queries = QUERIES[: args.queries]

    import numpy as np

    from assistant.embed import MiniLMEmbedder
    from assistant.settings import Settings
    from assistant.store import Library

    print(machine_line())
    print("synthetic library: sample papers + recombined-sentence variants; synthetic vectors = "
          "random convex combinations of 2-3 real chunk vectors + noise "
          f"(norm ~{NOISE_NORM}), re-normalised; BM25 indexes the synthetic texts for real")
    TimedLibrary, TimedRetriever = install_timers()
    inner = MiniLMEmbedder(model_dir)
    inner.embed(["warm-up"])
    embedder = TimedEmbedder(inner)
    rng = np.random.default_rng(args.seed)

    results = []
    with temp_home(keep=args.keep_home) as home:
        settings = Settings(home=Path(home), embed_model_dir=model_dir)
        real = load_real(inner)
        writer = Library.open(settings)
        t_real, _ = timed(write_real, writer, real, inner)
        state = {"papers": len(real), "chunks": sum(len(r.bodies) for r in real), "next": 0}
        print(f"wrote the sample ({state['papers']} papers, {state['chunks']} chunks) "
              f"in {t_real:.1f} s", flush=True)
        for size in sizes:
            print(f"\n== {size} chunks ==", flush=True)
            t_grow = grow(writer, real, inner, rng, state, size, args.write_batch)
            n_papers, n_chunks = writer.counts()
            print(f"library: {n_papers} papers, {n_chunks} chunks (grown in {t_grow:.0f} s)",
                  flush=True)
            res = measure(TimedLibrary, TimedRetriever, settings, embedder, queries, args.k,
                          args.filtered)
            res.update(size=size, papers=n_papers, chunks=n_chunks, grow=t_grow)
            bp, lp = res["build_parts"], res["load_parts"]
            print(f"first refresh (builds BM25) {res['build']:.2f} s = read papers "
                  f"{bp['read.papers']:.2f} + read chunks {bp['read.chunks']:.2f} + bm25 index "
                  f"{bp['bm25.build']:.2f} + save {bp['bm25.save']:.2f} s; fresh Retriever "
                  f"(cached) {res['load']:.2f} s = read papers {lp['read.papers']:.2f} + "
                  f"bm25 load {lp['bm25.load']:.2f} s", flush=True)
            plain = summarise(res["plain"])
            print(f"search p50 {plain[0]} ms, p95 {plain[1]} ms", flush=True)
            results.append(res)

    header = ["chunks", "papers", "p50 ms", "p95 ms", "embed", "dense", "bm25", "count",
              "refresh", "rest", "hits"]
    print_table(
        f"Retriever.search latency, k={args.k}, {len(queries)} queries after one warm-up; "
        "parts are p50 ms of each part, so they need not add up",
        header, [[r["chunks"], r["papers"], *summarise(r["plain"])] for r in results],
    )
    if args.filtered:
        print_table(
            f"Same, {args.filtered} queries with Filters(since=2024-01-01)", header,
            [[r["chunks"], r["papers"], *summarise(r["filtered"])] for r in results],
        )
    print_table(
        "Building the library and the BM25 index",
        ["chunks", "grow s", "BM25 build s", "read chunks s", "bm25 index s",
         "cached load s", "read papers s", "bm25 load s"],
        [[r["chunks"], f"{r['grow']:.0f}", f"{r['build']:.2f}",
          f"{r['build_parts']['read.chunks']:.2f}", f"{r['build_parts']['bm25.build']:.2f}",
          f"{r['load']:.2f}", f"{r['load_parts']['read.papers']:.2f}",
          f"{r['load_parts']['bm25.load']:.2f}"] for r in results],
    )
    print("\nParts: embed = the query's MiniLM embedding; dense = Chroma collection.query; "
          "bm25 = KeywordIndex.search; count = collection.count(); refresh = Retriever.refresh "
          "(generation check); rest = everything else (RRF fusion, filters, chunk fetches).")
    print("'grow s' is the time to add synthetic papers since the previous size "
          "(generation + Library.write). 'BM25 build' is the first refresh() of a new Retriever "
          "(reads every paper and chunk, builds and saves BM25); 'cached load' is a second new "
          "Retriever's refresh() (reads every paper, loads BM25 from ASSISTANT_HOME/cache).")
    print(f"\n{load_line()} (2 cores: above ~2, other work was competing)")


if __name__ == "__main__":
    main()
