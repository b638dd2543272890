"""Review a finished run's model replies again with the current code, without the model.

An `assistant eval run` caches each answer as it was reviewed when it was
asked. A change to the review (`citations.review`, `answer.finish`) should be
measured on the same replies, not on new ones the model writes differently
each run, and a 1.5B model's 114 answers take an hour on a laptop. This script
rebuilds every cached answer from what the cache kept (the raw reply, the
sources, their whole abstracts from the library, the retrieval verdict and the
evidence quotes), runs `answer.finish` on it with today's code, and writes a
copy of the run folder whose cache holds the re-reviewed answers. Scoring that
copy is an ordinary fully cached run:

    python bench/rereview.py RUN_DIR OUT_DIR --home HOME
    OPENAI_BASE_URL=<the run's URL> ASSISTANT_CONTEXT_WINDOW=<the run's> \\
      ASSISTANT_HOME=HOME assistant eval run --model NAME --out OUT_DIR [--set SET]

(the same URL and context window as the run, so its cache keys match; no
server is contacted when every answer is cached).

Approximation, said plainly: the cache keeps the evidence quotes that were
shown, not every quote selected, so the evidence of a re-reviewed answer is
chosen among those; the prose review, the citations and abstention are exact.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def rereview(outcome: dict[str, Any], question: str, abstracts: dict[str, str]) -> dict[str, Any]:
    """The cached outcome with its answer rebuilt by today's `answer.finish`."""
    from assistant.answer import Source, finish
    from assistant.evaluation.runner import reviewed_fields
    from assistant.evidence import Answerability, Quote

    raw = outcome.get("raw")
    if raw is None or outcome.get("error") or outcome.get("abstain_reason") == "retrieval":
        return outcome  # no reply to review: retrieval decided, or the call failed
    sources = [
        Source(
            s["n"],
            s["paper_id"],
            s["title"],
            _date(s.get("published")),
            s.get("passage") or "",
            s.get("url"),
            s.get("similarity"),
            abstracts.get(s["paper_id"], ""),
        )
        for s in outcome.get("sources") or []
    ]
    quotes: dict[int, list[Any]] = {}
    for q in outcome.get("evidence") or []:
        quotes.setdefault(q["n"], []).append(
            Quote(q["n"], q["paper_id"], q["text"], q["start"], q["end"], q.get("score", 0.0))
        )
    known = {f.name for f in Answerability.__dataclass_fields__.values()}
    verdict_dict = outcome.get("answerability")
    verdict = (
        Answerability(**{k: v for k, v in verdict_dict.items() if k in known})
        if verdict_dict
        else None
    )
    answer = finish(question, raw, sources, sources, quotes, verdict)
    return {**outcome, **reviewed_fields(answer.to_dict())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--set", dest="question_set", type=Path, default=None)
    args = parser.parse_args()

    from assistant.evidence import fetch_abstracts
    from assistant.settings import Settings
    from assistant.store import Library

    root = Path(__file__).resolve().parent.parent
    question_set = args.question_set or root / "eval" / "questions.jsonl"
    questions = {
        q["id"]: q["question"]
        for q in (json.loads(line) for line in question_set.read_text().splitlines() if line)
    }
    model_dir = os.environ.get("ASSISTANT_EMBED_MODEL_DIR")
    library = Library.open(
        Settings(home=args.home, embed_model_dir=Path(model_dir) if model_dir else None)
    )
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    shutil.copy(args.run / "run.json", args.out / "run.json")
    changed = 0
    lines = []
    for line in (args.run / "answers.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if entry.get("type") == "answer" and entry["id"] in questions:
            outcome = entry["outcome"]
            ids = [s["paper_id"] for s in outcome.get("sources") or []]
            new = rereview(outcome, questions[entry["id"]], fetch_abstracts(library, ids))
            changed += new.get("answer") != outcome.get("answer")
            entry = {**entry, "outcome": new}
        lines.append(json.dumps(entry, ensure_ascii=False))
    (args.out / "answers.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} cached entries, {changed} answers read differently now -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
