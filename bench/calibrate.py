"""Calibrate the retrieval abstention threshold on the bundled eval set.

`ask` abstains without calling the model when the best retrieved passage's
cosine similarity to the question is below `answer.ABSTAIN_SIMILARITY`. This
prints that score for every answerable and unanswerable question of
`eval/questions.jsonl` and the threshold that separates them best (ties
broken towards the lower threshold: a false abstention on a question the
library can answer costs more than a weak answer the model may still
decline).

Run: ASSISTANT_EMBED_MODEL_DIR=... .venv/bin/python bench/calibrate.py [--home DIR] [--k 4]
(ingests the bundled sample into a temporary home when --home is not given).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from assistant.embed import make_embedder
from assistant.ingest import ingest
from assistant.retrieve import Retriever
from assistant.settings import Settings
from assistant.store import Library

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="an ASSISTANT_HOME with the sample ingested")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--set", type=Path, default=ROOT / "eval" / "questions.jsonl")
    args = parser.parse_args()
    model_dir = os.environ.get("ASSISTANT_EMBED_MODEL_DIR")
    home = args.home or Path(tempfile.mkdtemp(prefix="calibrate-"))
    settings = Settings(home=home, embed_model_dir=Path(model_dir) if model_dir else None)
    embedder = make_embedder(settings)
    library = Library.open(settings)
    if library.counts()[0] == 0:
        ingest([], settings, library=library, embedder=embedder)
    retriever = Retriever(library, embedder, settings)

    scores: dict[bool, list[tuple[float, str]]] = {True: [], False: []}
    for line in args.set.read_text().splitlines():
        q = json.loads(line)
        hits = retriever.search(q["question"], k=args.k)
        best = max((h.similarity or 0.0 for h in hits), default=0.0)
        scores[bool(q["answerable"])].append((best, q["id"]))

    for label, answerable in (("answerable", True), ("unanswerable", False)):
        values = sorted(s for s, _ in scores[answerable])
        print(f"{label:13s} n={len(values):3d} min={values[0]:.3f} "
              f"median={statistics.median(values):.3f} max={values[-1]:.3f}")
    candidates = sorted({round(s, 3) for group in scores.values() for s, _ in group})
    best_t, best_acc = 0.0, -1.0
    for t in [0.0] + candidates:
        tpr = sum(s >= t for s, _ in scores[True]) / len(scores[True])
        tnr = sum(s < t for s, _ in scores[False]) / len(scores[False])
        balanced = (tpr + tnr) / 2
        if balanced > best_acc + 1e-9:
            best_t, best_acc = t, balanced
    print(f"threshold with the best balanced accuracy: {best_t:.3f} ({best_acc:.3f})")
    weakest = min(s for s, _ in scores[True])
    safe = round(weakest - 0.01, 2)
    caught = sum(s < safe for s, _ in scores[False])
    print(f"conservative threshold (weakest answerable - 0.01): {safe:.2f}: abstains on "
          f"{caught}/{len(scores[False])} unanswerable and 0/{len(scores[True])} answerable "
          "questions; the model's own refusal handles the rest")
    low = sorted(scores[True])[:5]
    high = sorted(scores[False], reverse=True)[:5]
    print("weakest answerable:", ", ".join(f"{i}={s:.3f}" for s, i in low))
    print("strongest unanswerable:", ", ".join(f"{i}={s:.3f}" for s, i in high))


if __name__ == "__main__":
    main()
