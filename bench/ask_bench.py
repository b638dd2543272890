"""`ask` against LlamaIndex's CitationQueryEngine, same model, same embedder, same papers.

Measures, over the first `--n` (default 10) answerable questions of
eval/questions.jsonl:

1. the time `assistant.answer.ask` spends outside the model (retrieval,
   prompt building, citation checking): median and p95 of `usage.overhead_s`
   with the store warm (one untimed warm-up question first); target < 150 ms;
2. end-to-end wall time of `ask`, non-streaming and streaming, and how many
   answers carry at least one citation with every citation resolving to the
   title of a paper in the library;
3. the same questions through LlamaIndex's `CitationQueryEngine`
   (`OpenAILike` on the same server, `similarity_top_k=4`) over an in-memory
   `VectorStoreIndex` of the same 264 papers (one "title + abstract"
   document each) embedded by the same all-MiniLM-L6-v2 (`MiniLMEmbedder`
   wrapped as a LlamaIndex `BaseEmbedding`): wall time, and how many answers
   contain a marker like [1] (and how many such markers point at a
   retrieved source).

The model is SmolLM2-135M-Instruct (Q4_1) served by llama.cpp's
OpenAI-compatible server, started here on a free loopback port unless
`--base-url` names a running one (it must serve the model as "smollm2").
The library is the bundled sample ingested into a temporary ASSISTANT_HOME.

The three systems are interleaved question by question (ours, baseline,
ours streaming), so that a change in background load hits all of them
alike, and before every timed call a one-token request with an unrelated
prompt empties llama.cpp's prompt-prefix cache, so no call is helped by the
previous one's identical instructions or prompt. Each system first answers
one untimed warm-up question (the next answerable one). Latencies are
medians (and p95) of single runs: on a small shared machine they are noisy,
so the min..max spread and the load average are printed. `--rounds R`
repeats the whole pass R times and takes each question's median run.

Everything LlamaIndex needs (llm, embed_model, transformations) is passed
explicitly; OPENAI_API_KEY is removed from the environment and the script
checks at the end that LlamaIndex's global Settings never built a default
LLM or embedding model.

Run from the repository root:

    ASSISTANT_EMBED_MODEL_DIR=/work/shared/models/all-MiniLM-L6-v2 \\
        .venv/bin/python bench/ask_bench.py
    .venv/bin/python bench/ask_bench.py --n 5 --base-url http://127.0.0.1:8080/v1

Per-question records (raw model output, checked answer, citations, timings)
are written to bench/out/ask_bench.json (`--json` to change it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    REPO,
    add_common_args,
    check_model_dir,
    machine_line,
    median,
    percentile,
    print_table,
    spread,
    temp_home,
)

from assistant import codec
from assistant.localserver import MODEL_ALIAS, LocalServerError
from assistant.localserver import llama_server as local_llama_server

N_CTX = 4096
MAX_TOKENS = 256  # = assistant.answer.ANSWER_MAX_TOKENS, the baseline gets the same
TOP_K = 4
OVERHEAD_TARGET_S = 0.150
_MARKER = re.compile(r"\[(\d+)\]")


# -- the llama.cpp server ----------------------------------------------------------


@contextmanager
def llama_server(base_url: str | None):
    """Yield the /v1 URL of a server that serves SmolLM2 as "smollm2"."""
    if base_url:
        yield base_url.rstrip("/")
        return
    started = time.perf_counter()
    try:
        with local_llama_server(n_ctx=N_CTX) as url:
            print(
                f"llama.cpp server up at {url} in {time.perf_counter() - started:.1f} s", flush=True
            )
            yield url
    except LocalServerError as exc:
        sys.exit(str(exc))


def flush_prefix_cache(base_url: str) -> None:
    """A one-token request with an unrelated prompt, so the next call reuses no prefix.

    llama.cpp keeps the last prompt's KV cache and re-evaluates only what
    differs; without this, a call right after one with the same instructions
    (or the same prompt) would skip part of its prompt processing.
    """
    body = json.dumps(
        {
            "model": MODEL_ALIAS,
            "max_tokens": 1,
            "temperature": 0,
            "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "ok"}],
        }
    ).encode()
    request = urllib.request.Request(
        f"{base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=120).read()


# -- questions and records ---------------------------------------------------------


def load_questions(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("answerable")]


@dataclass
class Run:
    """One question through one system."""

    qid: str
    wall_s: float
    text: str
    cited: bool = False  # at least one citation
    valid: bool = False  # at least one citation, and every one resolves to a source title
    cites_expected: bool = False
    facts: bool = False  # what the reader sees holds every `answer_contains` fact (eval's rule)
    # Counted the same way for both systems: the [n] markers the model itself wrote,
    # resolved against that system's own sources, before any check, attribution or
    # evidence fallback.
    model_cited: bool = False
    model_valid: bool = False
    prose_facts: bool = False  # the model's prose alone (after our review, for ours)
    detail: dict[str, Any] = field(default_factory=dict)


def has_facts(text: str, q: dict[str, Any]) -> bool:
    """eval/README.md's rule: every inner list has one alternative in the answer."""
    low = text.casefold()
    return all(
        any(alt.casefold() in low for alt in group) for group in q.get("answer_contains", [])
    )


def _norm(title: str) -> str:
    return " ".join(title.casefold().split())


# -- our pipeline ------------------------------------------------------------------


def run_ours(q: dict[str, Any], retriever, client, *, stream: bool) -> Run:
    from assistant.answer import ask

    pieces: list[str] = []
    started = time.perf_counter()
    answer = ask(
        q["question"],
        retriever,
        client,
        k=TOP_K,
        context_window=N_CTX,
        stream=stream,
        on_token=pieces.append,
    )
    wall = time.perf_counter() - started
    papers = retriever.papers
    by_n = {s.n: s for s in answer.sources}
    resolved = [
        c.n in by_n
        and by_n[c.n].title == c.title
        and c.paper_id in papers
        and papers[c.paper_id].get("title") == c.title
        and bool(c.title.strip())
        for c in answer.citations
    ]
    expected = {_norm(t) for t in q.get("expected_titles", [])}
    u = answer.usage
    raw_markers = [int(m) for m in _MARKER.findall(answer.raw)]
    raw_resolved = [n in by_n for n in raw_markers]
    return Run(
        qid=q["id"],
        wall_s=wall,
        text=answer.full_text(),
        cited=bool(answer.citations),
        valid=bool(resolved) and all(resolved),
        cites_expected=any(_norm(c.title) in expected for c in answer.citations),
        facts=not answer.abstained and has_facts(answer.full_text(), q),
        model_cited=bool(raw_markers),
        model_valid=bool(raw_resolved) and all(raw_resolved),
        prose_facts=not answer.abstained and answer.prose_supported and has_facts(answer.text, q),
        detail={
            "raw": answer.raw,
            "abstained": answer.abstained,
            "abstain_reason": answer.abstain_reason,
            "citations": codec.encode(answer.citations),
            "dropped_citations": answer.dropped_citations,
            "unknown_numbers": answer.unknown_numbers,
            "raw_markers": len(_MARKER.findall(answer.raw)),
            "sources": [s.title for s in answer.sources],
            "retrieval_s": u.retrieval_s,
            "model_s": u.model_s,
            "total_s": u.total_s,
            "overhead_s": u.overhead_s,
            "first_token_s": u.first_token_s,
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
        },
    )


# -- the LlamaIndex baseline -------------------------------------------------------


def make_llama_embedding(embedder):
    """`MiniLMEmbedder` as a LlamaIndex embedding model (same vectors as ours)."""
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import PrivateAttr

    class MiniLMEmbedding(BaseEmbedding):
        _embedder: Any = PrivateAttr()

        def __init__(self, inner, **kwargs: Any) -> None:
            super().__init__(model_name="all-MiniLM-L6-v2", embed_batch_size=32, **kwargs)
            self._embedder = inner

        @classmethod
        def class_name(cls) -> str:
            return "MiniLMEmbedding"

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._embedder.embed([query])[0].tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._embedder.embed([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._embedder.embed(list(texts)).tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        async def _aget_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embedding(text)

    return MiniLMEmbedding(embedder)


class LLMCallLog:
    """Per query: each LLM call's duration and completion tokens (instrumentation events)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._starts: list[float] = []

    def reset(self) -> None:
        self.calls, self._starts = [], []

    def install(self) -> None:
        from llama_index.core.instrumentation import get_dispatcher
        from llama_index.core.instrumentation.event_handlers import BaseEventHandler
        from llama_index.core.instrumentation.events.llm import (
            LLMChatEndEvent,
            LLMChatStartEvent,
        )

        log = self

        class Handler(BaseEventHandler):
            @classmethod
            def class_name(cls) -> str:
                return "AskBenchLLMCalls"

            def handle(self, event: Any, **kwargs: Any) -> None:
                if isinstance(event, LLMChatStartEvent):
                    log._starts.append(time.perf_counter())
                elif isinstance(event, LLMChatEndEvent):
                    start = log._starts.pop() if log._starts else None
                    raw = getattr(event.response, "raw", None)
                    usage = getattr(raw, "usage", None)
                    log.calls.append(
                        {
                            "s": None if start is None else time.perf_counter() - start,
                            "prompt_tokens": getattr(usage, "prompt_tokens", None),
                            "completion_tokens": getattr(usage, "completion_tokens", None),
                        }
                    )

        get_dispatcher().add_event_handler(Handler())


def build_baseline(base_url: str, embedder, timeout: float):
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.query_engine import CitationQueryEngine
    from llama_index.llms.openai_like import OpenAILike

    from assistant.ingest import bundled_corpus, expand_paths, merge_records
    from assistant.readers import read_file

    papers = []
    for path in expand_paths([bundled_corpus()]):
        papers.extend(read_file(path).papers)
    merged = list(merge_records(papers).values())
    docs = [
        Document(
            text=f"{m.paper.title}\n\n{m.paper.abstract}",
            metadata={"title": m.paper.title, "paper_id": m.paper.paper_id},
            excluded_embed_metadata_keys=["title", "paper_id"],
            excluded_llm_metadata_keys=["title", "paper_id"],
        )
        for m in merged
    ]
    llm = OpenAILike(
        model=MODEL_ALIAS,
        api_base=base_url,
        api_key="x",
        is_chat_model=True,
        context_window=N_CTX,
        max_tokens=MAX_TOKENS,
        temperature=0,
        timeout=timeout,
    )
    embed_model = make_llama_embedding(embedder)
    started = time.perf_counter()
    index = VectorStoreIndex.from_documents(
        docs,
        embed_model=embed_model,
        transformations=[SentenceSplitter(chunk_size=1024, chunk_overlap=200)],
    )
    build_s = time.perf_counter() - started
    engine = CitationQueryEngine.from_args(
        index, llm=llm, similarity_top_k=TOP_K, embed_model=embed_model
    )
    return engine, len(docs), len(index.docstore.docs), build_s


def run_baseline(q: dict[str, Any], engine, calls: LLMCallLog, known_titles: set[str]) -> Run:
    calls.reset()
    started = time.perf_counter()
    response = engine.query(q["question"])
    wall = time.perf_counter() - started
    text = str(response.response or "")
    nodes = response.source_nodes  # "Source n:" citation chunks, numbered from 1
    markers = [int(m) for m in _MARKER.findall(text)]
    resolved = [
        1 <= n <= len(nodes) and nodes[n - 1].node.metadata.get("title") in known_titles
        for n in markers
    ]
    cited_titles = {
        nodes[n - 1].node.metadata.get("title", "") for n, ok in zip(markers, resolved) if ok
    }
    expected = {_norm(t) for t in q.get("expected_titles", [])}
    model_s = sum(c["s"] or 0.0 for c in calls.calls)
    return Run(
        qid=q["id"],
        wall_s=wall,
        text=text,
        cited=bool(markers),
        valid=bool(resolved) and all(resolved),
        cites_expected=any(_norm(t) in expected for t in cited_titles),
        facts=has_facts(text, q),
        model_cited=bool(markers),
        model_valid=bool(resolved) and all(resolved),
        prose_facts=has_facts(text, q),
        detail={
            "markers": markers,
            "sources": [n.node.metadata.get("title") for n in nodes],
            "llm_calls": calls.calls,
            "model_s": model_s,
            "overhead_s": max(0.0, wall - model_s) if calls.calls else None,
            "completion_tokens": sum(c["completion_tokens"] or 0 for c in calls.calls),
        },
    )


# -- report ------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    return f"{median(values) * 1000:.0f} / {percentile(values, 95) * 1000:.0f}"


def _s(values: list[float]) -> str:
    return f"{median(values):.2f} / {percentile(values, 95):.2f}"


def best_of(rounds: list[list[Run]]) -> list[Run]:
    """Each question's median-latency run over the rounds (the run itself with one round)."""
    out = []
    for runs in zip(*rounds):
        ordered = sorted(runs, key=lambda r: r.wall_s)
        out.append(ordered[len(ordered) // 2])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument(
        "--base-url",
        help="a running OpenAI-compatible server serving "
        "SmolLM2 as 'smollm2' (default: start llama.cpp's server here)",
    )
    parser.add_argument("--n", type=int, default=10, help="answerable questions (default 10)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the whole pass this many times (default 1)"
    )
    parser.add_argument("--questions", type=Path, default=REPO / "eval" / "questions.jsonl")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="per model call, seconds (default 600: a busy machine is slow)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=REPO / "bench" / "out" / "ask_bench.json",
        help="per-question records (default bench/out/ask_bench.json)",
    )
    args = parser.parse_args()
    model_dir = check_model_dir(args.model_dir)
    os.environ["ASSISTANT_EMBED_MODEL_DIR"] = str(model_dir)
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    # No hosted fallback: anything reaching for OpenAI's defaults must fail, not call out.
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "ASSISTANT_CHROMA_URL"):
        os.environ.pop(var, None)

    answerable = load_questions(args.questions)
    if len(answerable) <= args.n:
        sys.exit(
            f"need more than --n={args.n} answerable questions (one is the warm-up); "
            f"{args.questions} has {len(answerable)}"
        )
    questions, warmup = answerable[: args.n], answerable[args.n]
    print(machine_line())
    print(
        f"{len(questions)} answerable questions from {args.questions.name}; warm-up: "
        f"{warmup['id']}; {args.rounds} round(s); load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )

    from assistant.embed import MiniLMEmbedder
    from assistant.ingest import ingest
    from assistant.llm import ModelClient
    from assistant.retrieve import Retriever
    from assistant.settings import Settings
    from assistant.store import Library

    with temp_home(args.keep_home) as home, llama_server(args.base_url) as url:
        settings = Settings(
            home=home,
            embed_model_dir=model_dir,
            base_url=url,
            model=MODEL_ALIAS,
            context_window=N_CTX,
            timeout=args.timeout,
        )
        embedder = MiniLMEmbedder(model_dir)
        started = time.perf_counter()
        report = ingest([], settings, library=Library.open(settings), embedder=embedder)
        print(
            f"ingested {report.total_papers} papers in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        retriever = Retriever(Library.open(settings), embedder, settings)
        known_titles = {str(p.get("title", "")) for p in retriever.papers.values()}
        client = ModelClient(settings, model=MODEL_ALIAS)

        engine = calls = None
        base_info = ""
        if not args.skip_baseline:
            calls = LLMCallLog()
            calls.install()
            engine, n_docs, n_nodes, build_s = build_baseline(url, embedder, args.timeout)
            base_info = f"{n_docs} documents -> {n_nodes} nodes, indexed in {build_s:.1f} s"
            print(f"baseline index: {base_info}", flush=True)

        # One untimed warm-up per system: models loaded, store and caches warm.
        run_ours(warmup, retriever, client, stream=False)
        run_ours(warmup, retriever, client, stream=True)
        if engine is not None:
            run_baseline(warmup, engine, calls, known_titles)

        systems = [("ours", False), ("ours (stream)", True)]
        if engine is not None:
            systems.insert(1, ("baseline", None))
        all_runs: dict[str, list[list[Run]]] = {label: [] for label, _ in systems}
        for r in range(args.rounds):
            for label, _ in systems:
                all_runs[label].append([])
            for q in questions:
                for label, stream in systems:
                    flush_prefix_cache(url)
                    if stream is None:
                        run = run_baseline(q, engine, calls, known_titles)
                        what = (
                            f"{len(run.detail['llm_calls'])} LLM call(s), markers "
                            f"{run.detail['markers']}"
                        )
                    else:
                        run = run_ours(q, retriever, client, stream=stream)
                        d = run.detail
                        what = (
                            f"outside model {d['overhead_s'] * 1000:4.0f} ms, "
                            f"{len(d['citations'])} citation(s)"
                            + (f", ABSTAINED ({d['abstain_reason']})" if d["abstained"] else "")
                        )
                    all_runs[label][r].append(run)
                    print(
                        f"  r{r + 1} {q['id']:28} {label:14} {run.wall_s:6.2f} s  {what}  "
                        f"valid={run.valid}",
                        flush=True,
                    )
        client.close()
        if engine is not None:
            from llama_index.core import Settings as LISettings

            untouched = LISettings._llm is None and LISettings._embed_model is None
            print(
                f"LlamaIndex global Settings default LLM/embedder never built: {untouched}; "
                f"OPENAI_API_KEY set: {'OPENAI_API_KEY' in os.environ}"
            )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    ours = {label: best_of(rounds) for label, rounds in all_runs.items()}
    for label in ("ours", "ours (stream)"):
        ours[label + " all"] = [run for runs in all_runs[label] for run in runs]
    base = ours.get("baseline", [])

    n = len(questions)
    plain, streamed = ours["ours"], ours["ours (stream)"]
    overheads = [r.detail["overhead_s"] for r in ours["ours all"] + ours["ours (stream) all"]]
    retrievals = [r.detail["retrieval_s"] for r in ours["ours all"] + ours["ours (stream) all"]]
    rest = [o - r for o, r in zip(overheads, retrievals)]
    rows = []
    for label, runs in (("ours", plain), ("ours (stream)", streamed), ("baseline", base)):
        if not runs:
            continue
        walls = [r.wall_s for r in runs]
        if label == "baseline":
            oh = [r.detail["overhead_s"] for r in runs if r.detail["overhead_s"] is not None]
        else:
            oh = [r.detail["overhead_s"] for r in runs]
        rows.append(
            [
                label,
                f"{median(walls):.2f}",
                f"{percentile(walls, 95):.2f}",
                spread(walls),
                f"{sum(r.cited for r in runs)}/{n}",
                f"{sum(r.valid for r in runs)}/{n}",
                f"{sum(r.cites_expected for r in runs)}/{n}",
                f"{sum(r.facts for r in runs)}/{n}",
                f"{sum(r.model_valid for r in runs)}/{n}",
                f"{sum(r.prose_facts for r in runs)}/{n}",
                _ms(oh) if oh else "-",
            ]
        )
    print_table(
        f"ask vs CitationQueryEngine, SmolLM2-135M Q4_1 via llama.cpp, {n} answerable "
        f"questions ({machine_line()})",
        [
            "system",
            "median s",
            "p95 s",
            "min..max s",
            "cited",
            "valid cit.",
            "cites exp.",
            "facts",
            "model's own valid markers",
            "prose facts",
            "outside model ms (med / p95)",
        ],
        rows,
    )
    first = [r.detail["first_token_s"] for r in streamed if r.detail["first_token_s"]]
    model = [r.detail["model_s"] for r in plain if not r.detail["abstained"]]
    tokens = [r.detail["completion_tokens"] for r in plain if not r.detail["abstained"]]
    prompts = [r.detail["prompt_tokens"] for r in plain if not r.detail["abstained"]]
    print(
        f"\nours, time outside the model over {len(overheads)} warm asks: median "
        f"{median(overheads) * 1000:.1f} ms, p95 {percentile(overheads, 95) * 1000:.1f} ms "
        f"(target < {OVERHEAD_TARGET_S * 1000:.0f} ms median: "
        f"{'met' if median(overheads) < OVERHEAD_TARGET_S else 'MISSED'}); of which "
        f"retrieval {median(retrievals) * 1000:.1f} ms, prompt + checking "
        f"{median(rest) * 1000:.1f} ms (medians)"
    )
    print(
        f"ours: model time median {median(model):.2f} s for {median(prompts):.0f} prompt + "
        f"{median(tokens):.0f} completion tokens; streaming first token median "
        f"{median(first):.2f} s; abstained "
        f"{sum(r.detail['abstained'] for r in plain)}/{n} (non-stream), "
        f"{sum(r.detail['abstained'] for r in streamed)}/{n} (stream)"
    )
    if base:
        b_tokens = [r.detail["completion_tokens"] for r in base]
        b_prompts = [sum(c["prompt_tokens"] or 0 for c in r.detail["llm_calls"]) for r in base]
        b_calls = [len(r.detail["llm_calls"]) for r in base]
        b_model = [r.detail["model_s"] for r in base]
        print(
            f"baseline: {base_info}; model time median {median(b_model):.2f} s for "
            f"{median(b_prompts):.0f} prompt + {median(b_tokens):.0f} completion tokens; "
            f"LLM calls per query "
            f"{min(b_calls)}..{max(b_calls)}"
        )
        verdict_speed = median([r.wall_s for r in plain]) <= median([r.wall_s for r in base])
        need = max(1, round(0.9 * n))
        print(
            f"target: no slower than the baseline: {'met' if verdict_speed else 'MISSED'}; "
            f"valid citations on >= {need}/{n}: "
            f"{'met' if sum(r.valid for r in plain) >= need else 'MISSED'} (non-stream), "
            f"{'met' if sum(r.valid for r in streamed) >= need else 'MISSED'} (stream)"
        )
    print(
        "single runs on a shared 2-core machine: the spread above is the noise; compare "
        "systems within one run, not with figures from another"
    )

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "machine": machine_line(),
                "n": n,
                "rounds": args.rounds,
                "ours": [vars(r) for r in ours["ours all"]],
                "ours_stream": [vars(r) for r in ours["ours (stream) all"]],
                "baseline": [vars(r) for r in base],
            },
            indent=1,
            default=str,
        )
    )
    print(f"per-question records: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
