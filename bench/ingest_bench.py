"""Ingest throughput on the bundled sample corpus (264 papers).

Measures, in one warm process (model loaded before any timing):

  (a) the embedder's raw throughput, in abstracts/s, on exactly the texts that
      ingest embeds: every chunk text of every paper (title + chunk body, as
      `split_abstract` + `chunk_texts` make them), through
      `MiniLMEmbedder.embed`, batched as ingest batches them (32 papers per
      call); also the same texts in a single call, and the chunking alone;
  (b) for reference, chromadb's default embedding function raw
      (`MiniLMEmbedder._fn`, i.e. `ONNXMiniLM_L6_V2`) on whole abstracts
      (title + abstract, which it pads and truncates at 256 word pieces);
  (c) `ingest()` of the sample into a fresh ASSISTANT_HOME with the loaded
      embedder passed in, in abstracts/s, and its ratio to (a);
  (c') for context, the store's share: the same papers written through
      `Library.write` (32 papers per call, as ingest does) with the vectors
      already computed;
  (d) an unchanged re-ingest of the sample: median wall time of 5 runs, both
      in-process (`ingest()`) and as a subprocess (`assistant ingest --json`,
      which includes interpreter start-up and imports).

(a)-(c) are repeated `--repeat` times and the medians printed (min..max
alongside: the machine is noisy). Timings are printed, never asserted.

`--int8` runs instead a comparison of the int8 MiniLM (`ASSISTANT_EMBEDDER=
minilm-int8`: ONNX Runtime dynamic quantisation of the fp32 model, made once
into the temporary home; needs the `onnx` package) with the fp32 one: time to
quantise, raw throughput on the sample's chunk texts (the two alternating,
`--repeat` times each), how far the vectors move (cosine fp32 vs int8), and
retrieval quality: the sample ingested with each, then recall@5/mrr on the
answerable questions of the bundled eval set and hit@1 on eval/name_queries.jsonl.

`--endpoint URL --endpoint-model NAME` measures the endpoint embedder instead:
the sample's chunk texts sent one text per request with one request at a time,
against batched (`--endpoint-batch`, default 64) with concurrent requests
(`--endpoint-concurrency`, default 4), e.g. against llama.cpp's server started
with `--embedding true`.

Run from the repository root:

    ASSISTANT_EMBED_MODEL_DIR=/path/to/all-MiniLM-L6-v2 .venv/bin/python bench/ingest_bench.py
    .venv/bin/python bench/ingest_bench.py --repeat 5 --reingest-runs 10

A temporary ASSISTANT_HOME is created and removed; the real one is never used.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

from _common import (
    REPO,
    VENV_BIN,
    add_common_args,
    check_model_dir,
    child_env,
    load_line,
    machine_line,
    median,
    print_table,
    spread,
    temp_home,
    timed,
)


def load_sample():
    """The sample's papers exactly as ingest merges them (`Merged`, one per paper)."""
    from assistant.ingest import bundled_corpus, expand_paths, merge_records
    from assistant.readers import read_file

    papers = []
    for path in expand_paths([bundled_corpus()]):
        papers.extend(read_file(path).papers)
    return list(merge_records(papers).values())


def store_only(merged, chunks, vectors, embedder, settings) -> None:
    """What ingest writes, with the vectors already computed: the store's share."""
    from assistant.ingest import EMBED_BATCH_PAPERS, paper_metadata
    from assistant.store import Library, PaperWrite

    library = Library.open(settings)
    key = (embedder.name, embedder.dim)
    now = time.time()
    offset = 0
    writes = []
    for m, texts in zip(merged, chunks):
        meta = paper_metadata(m, embedder.name, now)
        meta["n_chunks"] = len(texts)
        writes.append(
            PaperWrite(
                m.paper.paper_id,
                meta,
                m.paper.abstract,
                texts,
                vectors[offset : offset + len(texts)],
            )
        )
        offset += len(texts)
    for start in range(0, len(writes), EMBED_BATCH_PAPERS):
        library.write(writes[start : start + EMBED_BATCH_PAPERS], key)


def chunk_all(papers, embedder) -> list[list[str]]:
    from assistant.chunking import chunk_texts, split_abstract

    return [
        chunk_texts(p.title, split_abstract(p.title, p.abstract, embedder.fits)) for p in papers
    ]


def embed_batches(embedder, batches: list[list[str]]) -> None:
    for batch in batches:
        embedder.embed(batch)


def compare_int8(args, model_dir) -> None:
    """fp32 vs int8 MiniLM: throughput on the same texts and retrieval quality."""
    import json as _json

    import numpy as np

    from assistant.embed import MiniLMEmbedder
    from assistant.evaluation.runner import bundled_set, load_questions, run_retrieval
    from assistant.ingest import ingest
    from assistant.retrieve import Retriever
    from assistant.settings import Settings
    from assistant.store import Library

    print(machine_line())
    merged = load_sample()
    papers = [m.paper for m in merged]
    with temp_home(keep=args.keep_home) as home:
        fp32 = MiniLMEmbedder(model_dir)
        fp32.embed(["warm-up"])
        int8 = MiniLMEmbedder(model_dir, int8_cache=home / "models")
        t_quant, _ = timed(int8.embed, ["warm-up: quantise once, then load"])
        again = MiniLMEmbedder(model_dir, int8_cache=home / "models")
        t_cached, _ = timed(again.embed, ["warm-up: the cached copy"])
        size = {
            name: (folder / "onnx" / "model.onnx").stat().st_size / 2**20
            for name, folder in (("fp32", model_dir), ("int8", home / "models" / int8.name))
        }
        print(
            f"int8 copy made in {t_quant:.1f} s (later loads {t_cached:.2f} s); model.onnx "
            f"{size['fp32']:.1f} MiB fp32, {size['int8']:.1f} MiB int8",
            flush=True,
        )
        flat = [t for c in chunk_all(papers, fp32) for t in c]
        times: dict[str, list[float]] = {"fp32": [], "int8": []}
        vectors = {}
        for _ in range(args.repeat):
            for name, emb in (("fp32", fp32), ("int8", int8)):
                t, vectors[name] = timed(emb.embed, flat)
                times[name].append(t)
            print(f"  fp32 {times['fp32'][-1]:.1f} s, int8 {times['int8'][-1]:.1f} s", flush=True)
        cos = np.sum(vectors["fp32"] * vectors["int8"], axis=1)
        names = [
            _json.loads(line)
            for line in (REPO / "eval" / "name_queries.jsonl").read_text().splitlines()
        ]
        questions = load_questions(bundled_set())
        quality = {}
        for name, emb in (("fp32", fp32), ("int8", int8)):
            settings = Settings(home=home / name, embed_model_dir=model_dir)
            t_ing, _ = timed(ingest, [], settings, embedder=emb)
            retriever = Retriever(Library.open(settings), emb, settings)
            metrics = run_retrieval(questions, retriever, k=5).metrics
            hit1 = sum(
                [h.title for h in retriever.search(r["query"], k=1)] == [r["expected_title"]]
                for r in names
            ) / len(names)
            quality[name] = (metrics["recall@5"]["value"], metrics["mrr"]["value"], hit1, t_ing)
            print(f"  {name}: ingest {t_ing:.1f} s, recall@5 {quality[name][0]:.3f}", flush=True)
    rows = []
    for name in ("fp32", "int8"):
        rate = len(papers) / median(times[name])
        rows.append(
            [
                name,
                f"{median(times[name]):.2f}",
                spread(times[name]),
                f"{rate:.1f}",
                f"{quality[name][0]:.3f}",
                f"{quality[name][1]:.3f}",
                f"{quality[name][2]:.3f}",
                f"{quality[name][3]:.1f}",
            ]
        )
    print_table(
        f"MiniLM fp32 vs int8 on {len(flat)} chunk texts of {len(papers)} papers, "
        f"medians of {args.repeat}",
        [
            "model",
            "embed s",
            "min..max",
            "abstracts/s",
            "recall@5",
            "mrr",
            "name hit@1",
            "ingest s",
        ],
        rows,
    )
    print(
        f"throughput ratio int8/fp32: {median(times['fp32']) / median(times['int8']):.2f}x; "
        f"recall@5 change {quality['int8'][0] - quality['fp32'][0]:+.3f}; cosine fp32 vs "
        f"int8 per chunk: median {np.median(cos):.4f}, min {cos.min():.4f}"
    )
    print(f"\n{load_line()} (2 cores: above ~2, other work was competing)")


def compare_endpoint(args, model_dir) -> None:
    """The endpoint embedder one text per request vs batched and concurrent."""
    from assistant.embed import EndpointEmbedder, MiniLMEmbedder
    from assistant.settings import Settings

    print(machine_line())
    papers = [m.paper for m in load_sample()]
    flat = [t for c in chunk_all(papers, MiniLMEmbedder(model_dir)) for t in c]
    flat = flat[: args.endpoint_texts or None]
    settings = Settings(
        base_url=args.endpoint.rstrip("/"),
        embed_model=args.endpoint_model,
        embedder="endpoint",
        api_key="not-needed",
    )
    emb = EndpointEmbedder(settings)
    emb.embed(flat[:4])  # warm-up
    ways = {
        "one text per request, one at a time": (1, 1),
        f"batch {args.endpoint_batch}, one at a time": (args.endpoint_batch, 1),
        f"batch {args.endpoint_batch}, {args.endpoint_concurrency} concurrent": (
            args.endpoint_batch,
            args.endpoint_concurrency,
        ),
    }
    times: dict[str, list[float]] = {w: [] for w in ways}
    for _ in range(args.repeat):
        for way, (batch, conc) in ways.items():
            t, _ = timed(emb.embed, flat, batch=batch, concurrency=conc)
            times[way].append(t)
    print_table(
        f"Endpoint embedder {args.endpoint_model} at {args.endpoint}, {len(flat)} chunk "
        f"texts, medians of {args.repeat}",
        ["requests", "s", "min..max", "texts/s"],
        [
            [w, f"{median(v):.2f}", spread(v), f"{len(flat) / median(v):.1f}"]
            for w, v in times.items()
        ],
    )
    print(f"\n{load_line()}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring (or bench/README.md) for what each row means.",
    )
    add_common_args(parser)
    parser.add_argument(
        "--repeat", type=int, default=3, help="repeats of (a)-(c), medians printed [default: 3]"
    )
    parser.add_argument(
        "--reingest-runs",
        type=int,
        default=5,
        help="runs of the unchanged re-ingest, in-process and CLI [default: 5]",
    )
    parser.add_argument(
        "--skip-cli", action="store_true", help="skip the `assistant ingest --json` subprocess runs"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="compare the int8 MiniLM with fp32 instead (see the docstring)",
    )
    parser.add_argument("--endpoint", help="measure the endpoint embedder at this base URL")
    parser.add_argument("--endpoint-model", default="embed", help="its model name")
    parser.add_argument("--endpoint-batch", type=int, default=64)
    parser.add_argument("--endpoint-concurrency", type=int, default=4)
    parser.add_argument(
        "--endpoint-texts",
        type=int,
        default=0,
        help="time only the first N chunk texts (a CPU server is slow) [default: all]",
    )
    args = parser.parse_args()
    model_dir = check_model_dir(args.model_dir)
    if args.int8:
        return compare_int8(args, model_dir)
    if args.endpoint:
        return compare_endpoint(args, model_dir)

    from assistant.embed import MiniLMEmbedder
    from assistant.ingest import EMBED_BATCH_PAPERS, ingest
    from assistant.settings import Settings

    print(machine_line())
    merged = load_sample()
    papers = [m.paper for m in merged]
    n = len(papers)

    t_load, embedder = timed(MiniLMEmbedder, model_dir)
    t_warm, _ = timed(embedder.embed, ["warm-up: load the tokenizer and ONNX session"])
    chunk_all(papers[:2], embedder)  # warm the chunker (tiktoken, llama-index import)
    print(
        f"sample: {n} papers; model constructed in {t_load:.2f} s, first embed "
        f"(loads ONNX + tokenizer) {t_warm:.2f} s"
    )

    whole = [f"{p.title}\n\n{p.abstract}" for p in papers]
    truncated = sum(1 for t in whole if not embedder.fits(t))

    rows_chunk, rows_a, rows_a1, rows_b, rows_c, rows_s = [], [], [], [], [], []
    n_chunks = 0
    with temp_home(keep=args.keep_home) as home:
        for r in range(args.repeat):
            t_chunk, chunks = timed(chunk_all, papers, embedder)
            n_chunks = sum(len(c) for c in chunks)
            rows_chunk.append(t_chunk)

            batches = [
                [t for c in chunks[start : start + EMBED_BATCH_PAPERS] for t in c]
                for start in range(0, n, EMBED_BATCH_PAPERS)
            ]
            flat = [t for c in chunks for t in c]
            t_a, _ = timed(embed_batches, embedder, batches)
            t_a1, vectors = timed(embedder.embed, flat)
            t_b, _ = timed(embedder._fn, whole)
            rows_a.append(t_a)
            rows_a1.append(t_a1)
            rows_b.append(t_b)

            settings = Settings(home=home / f"fresh-{r}", embed_model_dir=model_dir)
            t_c, report = timed(ingest, [], settings, embedder=embedder)
            rows_c.append(t_c)
            if report.added != n or report.failures:
                print(
                    f"  WARNING: fresh ingest added {report.added} of {n}, "
                    f"{len(report.failures)} failures"
                )
            settings = Settings(home=home / f"store-{r}", embed_model_dir=model_dir)
            t_s, _ = timed(store_only, merged, chunks, vectors, embedder, settings)
            rows_s.append(t_s)
            print(
                f"repeat {r + 1}/{args.repeat}: chunking {t_chunk:.2f} s, embed (a) {t_a:.2f} s, "
                f"one call {t_a1:.2f} s, chromadb raw (b) {t_b:.2f} s, ingest (c) {t_c:.2f} s, "
                f"store only {t_s:.2f} s",
                flush=True,
            )

        # (d) unchanged re-ingest of the last fresh home
        settings = Settings(home=home / f"fresh-{args.repeat - 1}", embed_model_dir=model_dir)
        re_inproc = []
        for _ in range(args.reingest_runs):
            t, report = timed(ingest, [], settings, embedder=embedder)
            if report.unchanged != n or report.added or report.updated:
                print(
                    f"  WARNING: re-ingest was not a no-op: added {report.added}, "
                    f"updated {report.updated}, unchanged {report.unchanged}"
                )
            re_inproc.append(t)
        re_cli = []
        if not args.skip_cli:
            cmd = [str(VENV_BIN / "assistant"), "ingest", "--json"]
            env = child_env(settings.home, model_dir)
            for _ in range(args.reingest_runs):
                start = time.perf_counter()
                proc = subprocess.run(
                    cmd, env=env, cwd=settings.home, capture_output=True, text=True
                )
                re_cli.append(time.perf_counter() - start)
                try:
                    out = json.loads(proc.stdout)
                    ok = out["unchanged"] == n and not out["added"] and not out["updated"]
                except (ValueError, KeyError):
                    ok = False
                if proc.returncode != 0 or not ok:
                    print(
                        f"  WARNING: CLI re-ingest rc={proc.returncode}: "
                        f"{(proc.stderr or proc.stdout)[-300:]}"
                    )
        print(
            f"re-ingest runs: in-process {[round(t, 3) for t in re_inproc]}, "
            f"CLI {[round(t, 3) for t in re_cli]}"
        )

    med_a = median(rows_a)
    rate_a = n / med_a
    rate_c = n / median(rows_c)
    rows = [
        [
            "chunking only (split_abstract+fits, warm)",
            f"{median(rows_chunk):.2f}",
            spread(rows_chunk),
            f"{n / median(rows_chunk):.0f}",
            f"{n_chunks / median(rows_chunk):.0f}",
        ],
        [
            "(a) MiniLMEmbedder.embed, 32-paper batches",
            f"{med_a:.2f}",
            spread(rows_a),
            f"{rate_a:.1f}",
            f"{n_chunks / med_a:.1f}",
        ],
        [
            "(a') MiniLMEmbedder.embed, one call",
            f"{median(rows_a1):.2f}",
            spread(rows_a1),
            f"{n / median(rows_a1):.1f}",
            f"{n_chunks / median(rows_a1):.1f}",
        ],
        [
            "(b) chromadb ONNXMiniLM_L6_V2 raw, whole",
            f"{median(rows_b):.2f}",
            spread(rows_b),
            f"{n / median(rows_b):.1f}",
            f"({n} texts)",
        ],
        [
            "(c) ingest() into a fresh home",
            f"{median(rows_c):.2f}",
            spread(rows_c),
            f"{rate_c:.1f}",
            f"{n_chunks / median(rows_c):.1f}",
        ],
        [
            "store only: Library.write, vectors given",
            f"{median(rows_s):.2f}",
            spread(rows_s),
            f"{n / median(rows_s):.0f}",
            f"{n_chunks / median(rows_s):.0f}",
        ],
    ]
    print_table(
        f"Ingest throughput, {n} papers / {n_chunks} chunks, medians of {args.repeat} repeats",
        ["step", "median s", "min..max", "abstracts/s", "chunks/s"],
        rows,
    )
    print(
        f"ratio ingest / raw embed (c)/(a): {rate_c / rate_a:.2f}  "
        f"(ingest overhead over embedding: {median(rows_c) - med_a:+.2f} s)"
    )
    print(
        f"(b) truncates {truncated} of {n} whole abstracts at 256 word pieces "
        "and pads every text to 256"
    )
    rows_d = [["in-process ingest()", f"{median(re_inproc):.3f}", spread(re_inproc, "{:.3f}")]]
    if re_cli:
        rows_d.append(
            ["CLI `assistant ingest --json`", f"{median(re_cli):.3f}", spread(re_cli, "{:.3f}")]
        )
    print_table(
        f"Unchanged re-ingest of the sample, median of {args.reingest_runs} runs",
        ["how", "median s", "min..max"],
        rows_d,
    )
    print(f"\n{load_line()} (2 cores: above ~2, other work was competing)")


if __name__ == "__main__":
    main()
