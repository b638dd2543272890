"""The prose review's precision and recall per model, on hand-labelled sentences.

`citations.review` decides which of a model's sentences a reader sees. Whether
it decides well is measured against people: `eval/review-answers.jsonl` holds
model answers exactly as written (the raw text, the question, the sources the
model was given with their whole abstracts, the papers the question names) and
`eval/review-labels.jsonl` holds one hand label per prose sentence of them:
`supported` (the cited, or for an uncited sentence the one, source says it:
its figures and its claim) or `unsupported` (a wrong figure, a claim no source
makes, another paper's content under this citation, an invented paper, a
refusal or an echo that says nothing), with the source number that supports it.

    report  (default): review every stored answer again with the current code,
            then per model: precision = labelled-supported share of the sentences
            shown; recall = shown share of the labelled-supported sentences; and
            the disagreements, so a rule change can be judged sentence by sentence.
    extract RUN_DIR --home HOME --model NAME --set NAME: append the answers of an
            `assistant eval run` folder to review-answers.jsonl and print their
            sentences with the best-matching abstract sentence, for labelling.

Run: .venv/bin/python bench/review_calibration.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ANSWERS = ROOT / "eval" / "review-answers.jsonl"
LABELS = ROOT / "eval" / "review-labels.jsonl"


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def reviewed(answer: dict[str, Any]) -> tuple[dict[str, bool], dict[str, str]]:
    """Sentence text -> shown?, and the removal reason of each removed one (current code)."""
    from assistant.citations import SourceText, review, says_no_answer

    sources = [
        SourceText(s["n"], s["title"], s["text"], s.get("published", "")) for s in answer["sources"]
    ]
    raw = answer["raw"]
    if not raw.strip() or says_no_answer(raw):
        raw = ""  # `answer.finish` reviews nothing for a refusal: the evidence is shown
    focus = set(answer.get("focus") or []) or None
    result = review(raw, sources, focus=focus, question=answer["question"])
    shown = {s.text: True for s in result.sentences}
    reasons = {r.text: r.reason for r in result.removed}
    for text in reasons:
        shown.setdefault(text, False)
    return shown, reasons


def sentences_of(answer: dict[str, Any]) -> list[str]:
    """The prose sentences the review sees, in order (markers stripped, as `check` gives)."""
    from assistant.citations import SourceText, check

    sources = [SourceText(s["n"], s["title"], s["text"]) for s in answer["sources"]]
    out: list[str] = []
    for line in answer["raw"].splitlines():
        out.extend(s.text for s in check(line, sources).sentences)
    return out


def report(as_json: bool) -> int:
    answers = {a["id"]: a for a in _read(ANSWERS)}
    labels = _read(LABELS)
    if not labels:
        print(f"{LABELS}: no labels", file=sys.stderr)
        return 1
    cache: dict[str, tuple[dict[str, bool], dict[str, str]]] = {}
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    wrong: list[dict[str, Any]] = []
    missing = 0
    for label in labels:
        answer = answers.get(label["answer"])
        if answer is None:
            missing += 1
            continue
        if answer["id"] not in cache:
            cache[answer["id"]] = reviewed(answer)
        shown_map, reasons = cache[answer["id"]]
        if label["sentence"] not in shown_map:
            # A refusal is not reviewed: its sentences are never shown.
            shown = False
        else:
            shown = shown_map[label["sentence"]]
        good = label["label"] == "supported"
        c = counts[answer["model"]]
        c["sentences"] += 1
        c["supported"] += good
        c["shown"] += shown
        c["shown_supported"] += shown and good
        if shown != good:
            wrong.append(
                {
                    "model": answer["model"],
                    "answer": answer["id"],
                    "sentence": label["sentence"],
                    "label": label["label"],
                    "shown": shown,
                    "reason": reasons.get(label["sentence"]),
                    "note": label.get("note", ""),
                }
            )
    table = {}
    for model, c in sorted(counts.items()):
        precision = c["shown_supported"] / c["shown"] if c["shown"] else None
        recall = c["shown_supported"] / c["supported"] if c["supported"] else None
        table[model] = {
            "sentences": c["sentences"],
            "labelled_supported": c["supported"],
            "shown": c["shown"],
            "shown_and_supported": c["shown_supported"],
            "precision": None if precision is None else round(precision, 3),
            "recall": None if recall is None else round(recall, 3),
            "shown_unsupported": c["shown"] - c["shown_supported"],
        }
    if as_json:
        print(json.dumps({"models": table, "disagreements": wrong, "unmatched": missing}, indent=1))
        return 0
    print(
        f"{'model':10s} {'sentences':>9s} {'supported':>9s} {'shown':>6s} "
        f"{'precision':>9s} {'recall':>7s}"
    )
    for model, row in table.items():
        print(
            f"{model:10s} {row['sentences']:9d} {row['labelled_supported']:9d} {row['shown']:6d} "
            f"{row['precision'] if row['precision'] is not None else '-':>9} "
            f"{row['recall'] if row['recall'] is not None else '-':>7}"
        )
    if wrong:
        print("\ndisagreements (label / what the review did):")
        for w in wrong:
            did = "shown" if w["shown"] else f"removed ({w['reason']})"
            print(
                f"  {w['model']:9s} {w['answer']:28s} {w['label']:11s} {did:22s} "
                f"{w['sentence'][:110]}"
            )
    return 0


def extract(
    run: Path, home: Path, model: str, set_name: str, question_set: Path | None = None
) -> int:
    """Append a run's answers (with whole abstracts) and print their sentences to label."""
    from assistant.evidence import fetch_abstracts
    from assistant.settings import Settings
    from assistant.store import Library
    from assistant.text import sentence_spans

    model_dir = os.environ.get("ASSISTANT_EMBED_MODEL_DIR")
    settings = Settings(home=home, embed_model_dir=Path(model_dir) if model_dir else None)
    library = Library.open(settings)
    have = {a["id"] for a in _read(ANSWERS)}
    added = []
    results = run / "results.jsonl"
    if results.is_file():
        records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    else:  # an unfinished run: its answer cache, with the questions from the set
        questions = {q["id"]: q for q in _read(question_set)} if question_set else {}
        records = []
        for entry in _read(run / "answers.jsonl"):
            if entry.get("type") == "answer" and entry["id"] in questions:
                records.append({**questions[entry["id"]], **entry["outcome"]})
    for record in records:
        raw = record.get("raw") or ""
        if not raw.strip():
            continue
        aid = f"{set_name}/{record['id']}/{model}"
        if aid in have:
            continue
        srcs = record.get("sources") or []
        abstracts = fetch_abstracts(library, [s["paper_id"] for s in srcs])
        verdict = record.get("answerability") or {}
        entry = {
            "id": aid,
            "model": model,
            "set": set_name,
            "question": record["question"],
            "raw": raw,
            "focus": verdict.get("named") or [],
            "sources": [
                {
                    "n": s["n"],
                    "title": s["title"],
                    "text": abstracts.get(s["paper_id"]) or s.get("passage", ""),
                    "published": s.get("published") or "",
                }
                for s in srcs
            ],
        }
        added.append(entry)
    with ANSWERS.open("a", encoding="utf-8") as out:
        for entry in added:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
    from assistant.text import content_words

    for entry in added:
        print(f"=== {entry['id']}  Q: {entry['question']}")
        for i, sentence in enumerate(sentences_of(entry)):
            words = content_words(sentence)
            best = ("", 0.0, 0)
            for s in entry["sources"]:
                for a, b in sentence_spans(s["text"]):
                    cand = s["text"][a:b]
                    score = len(words & content_words(cand)) / max(1, len(words))
                    if score > best[1]:
                        best = (cand, score, s["n"])
            print(f"  [{i}] {sentence}")
            print(f"      ~[{best[2]}] {best[0][:300]}")
    print(f"{len(added)} answers added to {ANSWERS}", file=sys.stderr)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    rep = sub.add_parser("report")
    rep.add_argument("--json", action="store_true")
    ext = sub.add_parser("extract")
    ext.add_argument("run", type=Path)
    ext.add_argument("--home", type=Path, required=True)
    ext.add_argument("--model", required=True)
    ext.add_argument("--set", dest="set_name", required=True)
    ext.add_argument("--questions", type=Path, help="the question set (for an unfinished run)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.command == "extract":
        sys.exit(extract(args.run, args.home, args.model, args.set_name, args.questions))
    sys.exit(report(args.json or getattr(args, "json", False)))


if __name__ == "__main__":
    main()
