"""Calibrate abstention on the bundled eval set: the whole-evidence rule of `ask`.

`ask` decides whether the library can answer with `evidence.answerability`:
a question that names a paper among the retrieved ones is answerable; one
whose name-like terms occur in no retrieved paper, or whose distinctive
terms are mostly absent, is not unless its dense match is strong; and a best
passage cosine under `ABSTAIN_SIMILARITY` abstains. This prints, for every
question of `eval/questions.jsonl`, the features the rule reads, both error
rates (false abstention on answerable questions, per kind; answering an
unanswerable one) for the rule as configured, and a small grid of the
thresholds so a change can be justified by figures.

No model is called: this is the retrieval side of the decision only (the
model may still refuse; `eval run` measures the whole path).

Run: ASSISTANT_EMBED_MODEL_DIR=... .venv/bin/python bench/calibrate.py [--home DIR] [--k 4]
(ingests the bundled sample into a temporary home when --home is not given).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

from assistant import evidence
from assistant.answer import library_says, sources_from_hits
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
    parser.add_argument("--verbose", action="store_true", help="one line per question")
    parser.add_argument(
        "--ingest", type=Path, help="a folder to ingest into an empty home instead of the sample"
    )
    parser.add_argument("--no-grid", action="store_true", help="skip the threshold grid")
    args = parser.parse_args()
    model_dir = os.environ.get("ASSISTANT_EMBED_MODEL_DIR")
    home = args.home or Path(tempfile.mkdtemp(prefix="calibrate-"))
    settings = Settings(home=home, embed_model_dir=Path(model_dir) if model_dir else None)
    embedder = make_embedder(settings)
    library = Library.open(settings)
    if library.counts()[0] == 0:
        ingest([args.ingest] if args.ingest else [], settings, library=library, embedder=embedder)
    retriever = Retriever(library, embedder, settings)

    says = library_says(retriever)
    rows = []
    for line in args.set.read_text().splitlines():
        q = json.loads(line)
        sources = sources_from_hits(retriever.search(q["question"], k=args.k))
        abstracts = evidence.fetch_abstracts(library, [s.paper_id for s in sources])
        rows.append((q, sources, abstracts))

    def run(sim: float, cov: float, cov_sim: float) -> tuple[dict, list]:
        old = (
            evidence.ABSTAIN_SIMILARITY,
            evidence.WEAK_COVERAGE,
            evidence.WEAK_COVERAGE_SIMILARITY,
        )
        evidence.ABSTAIN_SIMILARITY, evidence.WEAK_COVERAGE = sim, cov
        evidence.WEAK_COVERAGE_SIMILARITY = cov_sim
        try:
            errors: dict = defaultdict(lambda: [0, 0])
            lines = []
            for q, sources, abstracts in rows:
                verdict = evidence.answerability(q["question"], sources, abstracts, says)
                wrong = verdict.answerable != bool(q["answerable"])
                errors[q["kind"]][0] += wrong
                errors[q["kind"]][1] += 1
                lines.append((q, verdict, wrong))
            return errors, lines
        finally:
            (
                evidence.ABSTAIN_SIMILARITY,
                evidence.WEAK_COVERAGE,
                evidence.WEAK_COVERAGE_SIMILARITY,
            ) = old

    configured = (
        evidence.ABSTAIN_SIMILARITY,
        evidence.WEAK_COVERAGE,
        evidence.WEAK_COVERAGE_SIMILARITY,
    )
    errors, lines = run(*configured)
    if args.verbose:
        for q, v, wrong in lines:
            print(
                f"{'WRONG' if wrong else 'ok   '} {q['kind']:17s} {q['id']:24s} "
                f"sim={v.best_similarity:.3f} cov={v.coverage:.2f} named={v.named} "
                f"missing={v.missing_names} absent={v.absent} "
                f"-> {'answer' if v.answerable else 'abstain'}"
            )
    print(
        "rule as configured: ABSTAIN_SIMILARITY={:.2f} WEAK_COVERAGE={:.2f} "
        "WEAK_COVERAGE_SIMILARITY={:.2f}".format(*configured)
    )
    answerable_n = sum(n for kind, (_, n) in errors.items() if kind != "unanswerable")
    false_abst = sum(w for kind, (w, _) in errors.items() if kind != "unanswerable")
    print(f"  false abstention: {false_abst}/{answerable_n} answerable questions")
    for kind, (wrong, n) in sorted(errors.items()):
        if kind != "unanswerable":
            print(f"    {kind:17s} {wrong}/{n}")
    wrong, n = errors.get("unanswerable", [0, 0])
    print(f"  answered although unanswerable: {wrong}/{n} (abstained on {n - wrong}/{n})")

    if args.no_grid:
        return
    print("\ngrid (false abstentions / unanswerable answered):")
    for sim in (0.30, 0.33, 0.36, 0.40):
        cells = []
        for cov, cov_sim in ((0.0, 0.0), (0.5, 0.45), (0.5, 0.5), (0.6, 0.5)):
            e, _ = run(sim, cov, cov_sim)
            fa = sum(w for kind, (w, _) in e.items() if kind != "unanswerable")
            ua = e.get("unanswerable", [0, 0])[0]
            cells.append(f"cov<={cov:.1f}&sim<{cov_sim:.2f}: {fa:2d}/{ua}")
        print(f"  sim<{sim:.2f}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
