"""The product's sentence splitter (`assistant.text.sentence_spans`) against nltk's punkt.

punkt is the maintained choice and ships with llama-index (its `_static/nltk_cache`),
so it costs no download. Both split every abstract of the bundled sample and of
the real 2025 week (tests/data/arxiv-week-2025); the script prints how often
they agree, examples of where they differ, and the time per 1,000 abstracts.

Run: .venv/bin/python bench/sentences_bench.py [--examples 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from assistant.ingest import bundled_corpus, expand_paths
from assistant.readers import read_file
from assistant.text import sentence_spans

ROOT = Path(__file__).resolve().parents[1]


def abstracts() -> list[str]:
    found: list[str] = []
    for path in expand_paths([bundled_corpus()]):
        found += [p.abstract for p in read_file(path).papers]
    for path in sorted((ROOT / "tests/data/arxiv-week-2025").rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                found.append(json.loads(line).get("summary") or "")
    return list(dict.fromkeys(" ".join(a.split()) for a in found if a.strip()))


def punkt():
    import llama_index.core
    import nltk
    from nltk.tokenize import PunktTokenizer

    nltk.data.path.append(str(Path(llama_index.core.__file__).parent / "_static" / "nltk_cache"))
    return PunktTokenizer("english")


def timed(split, texts: list[str], rounds: int = 3) -> float:
    runs = []
    for _ in range(rounds):
        started = time.perf_counter()
        for text in texts:
            split(text)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) / len(texts) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=8)
    args = parser.parse_args()
    texts = abstracts()
    tokenizer = punkt()

    def punkt_spans(text: str) -> list[tuple[int, int]]:
        return list(tokenizer.span_tokenize(text))

    ours = [sentence_spans(t) for t in texts]
    theirs = [punkt_spans(t) for t in texts]
    differ = [i for i in range(len(texts)) if ours[i] != theirs[i]]
    print(
        f"{len(texts)} abstracts: ours {sum(map(len, ours))} sentences, punkt "
        f"{sum(map(len, theirs))}; they split {len(texts) - len(differ)} abstracts identically "
        f"({100 * (len(texts) - len(differ)) / len(texts):.1f}%)"
    )
    print(
        f"time per 1,000 abstracts (median of 3): ours {timed(sentence_spans, texts):.0f} ms, "
        f"punkt {timed(punkt_spans, texts):.0f} ms"
    )
    for i in differ[: args.examples]:
        a = {texts[i][s:e] for s, e in ours[i]}
        b = {texts[i][s:e] for s, e in theirs[i]}
        print("\n- ours only:  " + " | ".join(sorted(x[:90] for x in a - b)))
        print("  punkt only: " + " | ".join(sorted(x[:90] for x in b - a)))


if __name__ == "__main__":
    main()
