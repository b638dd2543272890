"""Digest cost at 30, 100 and 500 papers: model calls, prompt tokens, wall time.

Synthesises N papers in one week (two sentences each from the bundled sample's
abstracts, so themes are realistic), ingests them with the real embedder into a
temporary home, and writes the week's digest with SmolLM2-135M through
llama.cpp's server (started here unless --base-url is given).

Run: ASSISTANT_EMBED_MODEL_DIR=/work/shared/models/all-MiniLM-L6-v2 \\
     .venv/bin/python bench/digest_bench.py [--sizes 30,100,500] [--context-window 8192]

`--real-week` instead writes the digest of the real week in
tests/data/arxiv-week-2025 (2025-W47, 1,027 papers; the week before for trends),
ingested into a temporary home unless `--home` names one that holds it, and
prints the figures the issue asks for: share under "Other papers", areas and
theme names, trend counts (which must add up), model calls, prompt tokens,
build time, and `assistant eval digest`'s scores; `--out` keeps the Markdown.

`--coherence SINCE UNTIL` instead prints, for the library in ASSISTANT_HOME, the
cosine similarities behind `themes.MEMBER_MIN`: the distribution over all pairs
of the window's papers and each paper's nearest neighbours (no model needed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

from assistant.digest import build_digest
from assistant.embed import make_embedder
from assistant.ingest import bundled_corpus, expand_paths, ingest, merge_records
from assistant.llm import ModelClient
from assistant.localserver import LocalServerError, llama_server
from assistant.readers import read_file
from assistant.settings import Settings
from assistant.store import Library


def synthesise(n: int, path: Path, seed: int = 7) -> None:
    papers = []
    for f in expand_paths([bundled_corpus()]):
        papers.extend(read_file(f).papers)
    sentences = [
        s.strip() + "."
        for m in merge_records(papers).values()
        for s in m.paper.abstract.split(". ")
        if len(s) > 40
    ]
    rng = random.Random(seed)
    with path.open("w") as out:
        for i in range(n):
            abstract = " ".join(rng.sample(sentences, 2))
            out.write(
                json.dumps(
                    {
                        "title": f"Study {i}: {abstract[:70]}",
                        "abstract": abstract,
                        "published": f"2030-03-0{1 + i % 7}",
                    }
                )
                + "\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30,100,500")
    parser.add_argument("--context-window", type=int, default=8192)
    parser.add_argument("--base-url")
    parser.add_argument("--coherence", nargs=2, metavar=("SINCE", "UNTIL"))
    parser.add_argument("--real-week", action="store_true")
    parser.add_argument("--home", type=Path, help="with --real-week: a home holding the week")
    parser.add_argument("--out", type=Path, help="with --real-week: write the Markdown here")
    args = parser.parse_args()
    if args.coherence:
        coherence(*(date.fromisoformat(d) for d in args.coherence))
        return
    with ExitStack() as stack:
        try:
            base_url = args.base_url or stack.enter_context(llama_server(n_ctx=8192))
        except LocalServerError as exc:
            sys.exit(str(exc))
        if args.real_week:
            real_week(args, base_url)
        else:
            run(args, base_url)


def real_week(args: argparse.Namespace, base_url: str) -> None:
    from assistant.digest.render import digest_json, render_html, render_markdown
    from assistant.digest.score import score_digest

    model_dir = os.environ.get("ASSISTANT_EMBED_MODEL_DIR")
    home = args.home or Path(tempfile.mkdtemp(prefix="digest-week-"))
    settings = Settings(
        home=home,
        embed_model_dir=Path(model_dir) if model_dir else None,
        base_url=base_url,
        model="smollm2",
        context_window=args.context_window,
        timeout=600.0,
    )
    embedder = make_embedder(settings)
    library = Library.open(settings)
    if library.counts()[0] == 0:
        started = time.perf_counter()
        folder = Path(__file__).resolve().parents[1] / "tests" / "data" / "arxiv-week-2025"
        ingest([folder], settings, library=library, embedder=embedder)
        print(f"ingested {library.counts()[0]} papers in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    digest = build_digest(
        settings, library, embedder, ModelClient(settings), date(2025, 11, 17), date(2025, 11, 23)
    )
    wall = time.perf_counter() - started
    markdown = render_markdown(digest)
    if args.out:
        args.out.write_text(markdown, encoding="utf-8")
    others = sum(len(t.papers) for t in digest.themes if t.other)
    print(
        f"2025-W47: {len(digest.papers)} papers, {len(digest.areas)} areas, "
        f"{len(digest.named)} themes, {others} other papers "
        f"({100 * others / max(1, len(digest.papers)):.1f}%)"
    )
    for area in digest.areas:
        print(f"  {area.name} ({area.size})")
        for t in area.themes:
            print(f"    {t.name}: {len(t.papers)} (previous {t.previous}, {t.status})")
    counted = sum(t.previous for t in digest.named)
    print(
        f"previous window: {digest.previous_total} papers = {counted} in these themes "
        f"+ {digest.previous_other} in none"
    )
    kept = sum(len(t.kept) for t in digest.named)
    written = sum(len(t.prose) for t in digest.named)
    print(
        f"model calls {digest.model_calls}, prompt tokens {digest.prompt_tokens} "
        f"(largest {digest.max_prompt_tokens}), prose kept {kept}/{written}, build {wall:.1f} s"
    )
    print(
        f"Markdown {len(markdown.encode()) // 1024} KB, HTML "
        f"{len(render_html(digest).encode()) // 1024} KB"
    )
    scores = score_digest(digest_json(digest), library)
    keys = (
        "names_valid names_distinct other_share trends_add_up rows_once prose_sentences "
        "prose_supported invented_titles result_cells silhouette far_papers"
    ).split()
    print("eval digest: " + ", ".join(f"{k}={scores.get(k)}" for k in keys))


def run(args: argparse.Namespace, base_url: str) -> None:
    model_dir = os.environ.get("ASSISTANT_EMBED_MODEL_DIR")
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        home = Path(tempfile.mkdtemp(prefix=f"digest-bench-{n}-"))
        settings = Settings(
            home=home,
            embed_model_dir=Path(model_dir) if model_dir else None,
            base_url=base_url,
            model="smollm2",
            context_window=args.context_window,
            timeout=600.0,
        )
        embedder = make_embedder(settings)
        library = Library.open(settings)
        data = home / "papers.jsonl"
        synthesise(n, data)
        ingest([data], settings, library=library, embedder=embedder)
        started = time.perf_counter()
        digest = build_digest(
            settings, library, embedder, ModelClient(settings), date(2030, 3, 1), date(2030, 3, 7)
        )
        wall = time.perf_counter() - started
        others = sum(len(t.papers) for t in digest.themes if t.other)
        rows.append(
            (
                n,
                len(digest.named),
                digest.model_calls,
                digest.prompt_tokens,
                digest.max_prompt_tokens,
                wall,
            )
        )
        print(
            f"{n} papers: {len(digest.named)} themes (+{others} other papers, silhouette "
            f"{digest.silhouette}), {digest.model_calls} calls, "
            f"{digest.prompt_tokens} prompt tokens (largest {digest.max_prompt_tokens}), "
            f"{wall:.1f} s",
            flush=True,
        )
        shutil.rmtree(home, ignore_errors=True)
    print(f"\ncontext window {args.context_window} tokens, SmolLM2-135M, 2 cores")
    print(
        f"{'papers':>6} {'themes':>6} {'calls':>6} {'prompt tok':>10} {'largest':>8} {'wall s':>8}"
    )
    for n, themes, calls, tokens, largest, wall in rows:
        print(f"{n:>6} {themes:>6} {calls:>6} {tokens:>10} {largest:>8} {wall:>8.1f}")


def coherence(since: date, until: date) -> None:
    import numpy as np

    from assistant.digest.themes import MEMBER_MIN
    from assistant.digest.window import select_papers

    settings = Settings.load()
    papers = select_papers(Library.open(settings), since, until, "published")
    if len(papers) < 2:
        sys.exit(f"{len(papers)} papers between {since} and {until} in {settings.home}")
    vectors = np.stack([p.vector for p in papers]).astype(float)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = vectors @ vectors.T
    pairs = sims[np.triu_indices(len(papers), 1)]
    pct = np.percentile(pairs, [10, 50, 90, 95, 99])
    print(
        f"{len(papers)} papers, {len(pairs)} pairs; cosine percentiles 10/50/90/95/99: "
        + " / ".join(f"{x:.2f}" for x in pct)
        + f"; MEMBER_MIN = {MEMBER_MIN}"
    )
    np.fill_diagonal(sims, -np.inf)
    for i, paper in enumerate(papers):
        near = np.argsort(-sims[i])[:3]
        print(
            f"{paper.title[:48]:48} | "
            + " | ".join(f"{sims[i, j]:.2f} {papers[j].title[:26]}" for j in near)
        )


if __name__ == "__main__":
    main()
