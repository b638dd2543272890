"""Scoring: per-question scores and the run's metrics, as pure functions over records.

A *record* is the dict that `results.jsonl` holds for one question: the
question's own fields, what retrieval returned, what the model answered, and
any error. Everything here recomputes from those fields, so a cached answer
is rescored against the current question set, and the unit tests can score
hand-made records with known values.

Every metric is `{"value": x, "n": n}`: `n` is how many questions (or
citations, where stated) it was computed on. A metric with `n == 0` has
`value None`, never NaN, so it cannot vanish silently from a mean or a chart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

Metric = dict[str, Any]  # {"value": float | int | None, "n": int}
Record = dict[str, Any]

# name (with "@" for the k-suffixed ones) -> (what it means, higher is better?, unit)
# unit "rate" is a share in [0, 1]; the chart draws only those.
METRIC_INFO: dict[str, tuple[str, bool, str]] = {
    "recall@": (
        "share of expected papers among the top k retrieved (answerable questions)",
        True,
        "rate",
    ),
    "mrr": (
        "mean 1/rank of the first expected paper in the top k, 0 if none (answerable)",
        True,
        "rate",
    ),
    "ndcg@": (
        "binary-relevance nDCG over the top k; ideal DCG over min(|expected|, k) hits",
        True,
        "rate",
    ),
    "citation_validity": (
        "share of shown citations whose paper was among the retrieved sources (n = citations)",
        True,
        "rate",
    ),
    "citation_precision": (
        "per question, share of its citations that point at an expected "
        "paper (questions with citations)",
        True,
        "rate",
    ),
    "citation_recall": (
        "per question, share of expected papers it cites (answerable questions answered)",
        True,
        "rate",
    ),
    "supported_rate": (
        "share of citations the support check accepted (n = citations)",
        True,
        "rate",
    ),
    "answer_accuracy": ("answerable questions whose answer matches answer_contains", True, "rate"),
    "evidence_accuracy": (
        "answerable questions whose prose plus evidence quotes match answer_contains",
        True,
        "rate",
    ),
    "named_cited": ("named questions whose answer cites the named paper", True, "rate"),
    "prose_removed_share": (
        "share of the model's sentences removed by the review (n = sentences)",
        False,
        "rate",
    ),
    "prose_shown": (
        "answers (not abstained) that show some of the model's own prose",
        True,
        "rate",
    ),
    "model_declined": (
        "answerable questions the model declined although the library can answer "
        "(the evidence is shown instead)",
        False,
        "rate",
    ),
    "accuracy": (
        "LitQA2-style: correct / all (a match, or an abstention on an unanswerable question)",
        True,
        "rate",
    ),
    "precision": ("LitQA2-style: correct / answered (not abstained)", True, "rate"),
    "abstention_accuracy": ("unanswerable questions abstained on", True, "rate"),
    "false_abstention_rate": ("answerable questions abstained on", False, "rate"),
    "false_abstention_": ("answerable questions of this kind abstained on", False, "rate"),
    "faithfulness": ("judge's mean faithfulness score over parsed verdicts", True, "rate"),
    "judge_failures": (
        "judge verdicts that did not parse or failed (n = answers judged)",
        False,
        "count",
    ),
    "latency_p50_s": ("median seconds per question, retrieval to checked answer", False, "s"),
    "latency_p95_s": ("95th percentile seconds per question", False, "s"),
    "first_token_p50_s": ("median seconds to the first answer token (model calls)", False, "s"),
    "prompt_tokens_mean": ("prompt tokens per model call", False, "tokens"),
    "prompt_tokens_total": ("prompt tokens over the run", False, "tokens"),
    "completion_tokens_mean": ("completion tokens per model call", False, "tokens"),
    "completion_tokens_total": ("completion tokens over the run", False, "tokens"),
}


def metric_info(name: str) -> tuple[str, bool, str]:
    """Description, direction and unit of a metric (k-suffixed names share one entry)."""
    if "@" in name:
        return METRIC_INFO.get(name.split("@")[0] + "@", ("", True, "rate"))
    if name.startswith("false_abstention_") and name not in METRIC_INFO:
        return METRIC_INFO["false_abstention_"]
    return METRIC_INFO.get(name, ("", True, ""))


def _metric(value: float | int | None, n: int, digits: int = 4) -> Metric:
    if value is None or n == 0:
        return {"value": None, "n": n}
    return {"value": round(value, digits) if isinstance(value, float) else value, "n": n}


def _mean(values: Sequence[float]) -> Metric:
    return _metric(sum(values) / len(values) if values else None, len(values))


def _share(hits: int, n: int) -> Metric:
    return _metric(hits / n if n else None, n)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear-interpolation percentile (numpy's default), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# -- answers ------------------------------------------------------------------------------


def match_answer(text: str | None, answer_contains: Sequence[Sequence[str]]) -> tuple[bool, list]:
    """Whether `text` holds every required fact, and which alternative matched each.

    An answer passes when every inner list matches; an inner list matches when
    any alternative is a case-insensitive substring (eval/README.md). The
    per-fact list (the matching alternative, or None) is what the report shows
    to explain a miss.
    """
    folded = (text or "").casefold()
    matched: list[str | None] = []
    for alternatives in answer_contains:
        hit = next((alt for alt in alternatives if alt.casefold() in folded), None)
        matched.append(hit)
    return bool(answer_contains) and all(m is not None for m in matched), matched


# -- retrieval ----------------------------------------------------------------------------


def retrieval_scores(
    expected: Sequence[Iterable[str]], retrieved: Sequence[str], k: int
) -> dict[str, float]:
    """Recall@k, reciprocal rank and nDCG@k of one ranked list, on paper ids.

    `expected` has one entry per expected paper: the set of ids that paper
    has in the library (usually one; empty when its title is not in the
    library, which then counts as a miss). Relevance is binary and each
    expected paper counts once. The ideal DCG sums the first
    min(|expected|, k) positions: computing it over the number of retrieved
    items instead (as one LlamaIndex version did) scores a perfect
    single-paper hit at ~0.34.
    """
    items = [set(ids) for ids in expected]
    if not items:
        raise ValueError("retrieval scores need at least one expected paper")
    found: set[int] = set()
    dcg = 0.0
    first_rank: int | None = None
    for rank, pid in enumerate(retrieved[:k], start=1):
        item = next((i for i, ids in enumerate(items) if pid in ids and i not in found), None)
        if item is None:
            continue
        found.add(item)
        dcg += 1.0 / math.log2(rank + 1)
        if first_rank is None:
            first_rank = rank
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(items), k) + 1))
    return {
        "recall": len(found) / len(items),
        "rr": 1.0 / first_rank if first_rank else 0.0,
        "ndcg": dcg / ideal,
    }


# -- one question -------------------------------------------------------------------------


def failed(record: Record) -> bool:
    """A question whose answer path raised: it counts in no answer metric."""
    return bool(record.get("error"))


def question_scores(record: Record, k: int) -> dict[str, Any]:
    """Everything scored about one question; None where a score does not apply."""
    scores: dict[str, Any] = {"recall": None, "rr": None, "ndcg": None}
    expected = record.get("expected_ids") or []
    retrieved = record.get("retrieved")
    if record.get("answerable") and expected and retrieved is not None:
        scores.update(retrieval_scores(expected, [r["paper_id"] for r in retrieved], k))
    if failed(record) or record.get("answer") is None:
        return scores

    abstained = bool(record.get("abstained"))
    answerable = bool(record.get("answerable"))
    match, matches = match_answer(record.get("answer"), record.get("answer_contains") or [])
    match = match and not abstained
    scores["matches"] = matches
    scores["answer_match"] = match if answerable else None
    quoted = " ".join(q.get("text", "") for q in record.get("evidence") or [])
    evidence_match, _ = match_answer(
        f"{record.get('answer') or ''} {quoted}", record.get("answer_contains") or []
    )
    scores["evidence_match"] = (evidence_match and not abstained) if answerable else None
    scores["correct"] = match if answerable else abstained

    citations = record.get("citations") or []
    retrieved_ids = {r["paper_id"] for r in retrieved or []}
    expected_ids = set().union(*map(set, expected)) if expected else set()
    cited = {c["paper_id"] for c in citations}
    scores["citations"] = len(citations)
    scores["citations_valid"] = sum(c["paper_id"] in retrieved_ids for c in citations)
    scores["citations_supported"] = sum(bool(c.get("supported")) for c in citations)
    scores["citation_precision"] = (
        sum(c["paper_id"] in expected_ids for c in citations) / len(citations)
        if citations
        else None
    )
    scores["citation_recall"] = (
        sum(bool(set(ids) & cited) for ids in expected) / len(expected)
        if answerable and expected and not abstained
        else None
    )
    verdict = record.get("judge")
    scores["faithfulness"] = verdict.get("score") if verdict and verdict.get("ok") else None
    return scores


# -- the run ------------------------------------------------------------------------------


def retrieval_metrics(records: Sequence[Record], k: int) -> dict[str, Metric]:
    """recall@k, mrr and ndcg@k over the answerable questions that were retrieved for."""
    scored = [question_scores(r, k) for r in records]
    rows = [s for s in scored if s["recall"] is not None]
    return {
        f"recall@{k}": _mean([s["recall"] for s in rows]),
        "mrr": _mean([s["rr"] for s in rows]),
        f"ndcg@{k}": _mean([s["ndcg"] for s in rows]),
    }


def aggregate(
    records: Sequence[Record], k: int, *, retrieval_only: bool = False, judged: bool = False
) -> dict[str, Metric]:
    """All metrics of a run, each with its n, in the order the report lists them.

    Failed questions count in no answer, citation or cost metric (their ids
    are listed beside the metrics instead); they still count in the
    retrieval metrics when retrieval itself succeeded.
    """
    metrics = retrieval_metrics(records, k)
    if retrieval_only:
        return metrics
    done = [r for r in records if not failed(r) and r.get("answer") is not None]
    scored = [(r, question_scores(r, k)) for r in done]
    answerable = [(r, s) for r, s in scored if r.get("answerable")]
    unanswerable = [(r, s) for r, s in scored if not r.get("answerable")]
    answered = [(r, s) for r, s in scored if not r.get("abstained")]

    n_citations = sum(s["citations"] for _, s in scored)
    metrics["citation_validity"] = _share(sum(s["citations_valid"] for _, s in scored), n_citations)
    metrics["citation_precision"] = _mean(
        [s["citation_precision"] for _, s in scored if s["citation_precision"] is not None]
    )
    metrics["citation_recall"] = _mean(
        [s["citation_recall"] for _, s in scored if s["citation_recall"] is not None]
    )
    metrics["supported_rate"] = _share(
        sum(s["citations_supported"] for _, s in scored), n_citations
    )

    metrics["answer_accuracy"] = _share(
        sum(s["answer_match"] for _, s in answerable), len(answerable)
    )
    metrics["evidence_accuracy"] = _share(
        sum(bool(s["evidence_match"]) for _, s in answerable), len(answerable)
    )
    named = [(r, s) for r, s in answerable if r.get("kind") == "named"]
    if named:
        metrics["named_cited"] = _share(
            sum(bool(s["citation_recall"]) for _, s in named), len(named)
        )
    reviewed = sum(int(r.get("prose_sentences") or 0) for r in done)
    metrics["prose_removed_share"] = _share(
        sum(len(r.get("removed") or []) for r in done), reviewed
    )
    metrics["prose_shown"] = _share(
        sum(bool(r.get("prose_supported")) for r, _ in answered), len(answered)
    )
    metrics["model_declined"] = _share(
        sum(bool(r.get("model_declined")) for r, _ in answerable), len(answerable)
    )
    metrics["accuracy"] = _share(sum(s["correct"] for _, s in scored), len(scored))
    metrics["precision"] = _share(sum(s["correct"] for _, s in answered), len(answered))
    metrics["abstention_accuracy"] = _share(
        sum(bool(r.get("abstained")) for r, _ in unanswerable), len(unanswerable)
    )
    metrics["false_abstention_rate"] = _share(
        sum(bool(r.get("abstained")) for r, _ in answerable), len(answerable)
    )
    for kind in sorted({str(r.get("kind")) for r, _ in answerable if r.get("kind")}):
        rows = [r for r, _ in answerable if r.get("kind") == kind]
        metrics[f"false_abstention_{kind}"] = _share(
            sum(bool(r.get("abstained")) for r in rows), len(rows)
        )

    if judged:
        verdicts = [r["judge"] for r in done if r.get("judge")]
        scores = [v["score"] for v in verdicts if v.get("ok")]
        metrics["faithfulness"] = _mean(scores)
        metrics["judge_failures"] = _metric(len(verdicts) - len(scores), len(verdicts))

    usages = [r.get("usage") or {} for r in done]
    latencies = [u["total_s"] for u in usages if u.get("total_s") is not None]
    metrics["latency_p50_s"] = _metric(percentile(latencies, 50), len(latencies), 3)
    metrics["latency_p95_s"] = _metric(percentile(latencies, 95), len(latencies), 3)
    firsts = [u["first_token_s"] for u in usages if u.get("first_token_s") is not None]
    metrics["first_token_p50_s"] = _metric(percentile(firsts, 50), len(firsts), 3)
    # Token means are per model call: a retrieval abstention costs no tokens and
    # would otherwise pull the mean down.
    called = [r.get("usage") or {} for r in done if r.get("abstain_reason") != "retrieval"]
    for kind in ("prompt", "completion"):
        tokens = [int(u.get(f"{kind}_tokens") or 0) for u in called]
        metrics[f"{kind}_tokens_mean"] = _mean([float(t) for t in tokens])
        metrics[f"{kind}_tokens_total"] = _metric(sum(tokens), len(tokens))
    return metrics


def badness(record: Record, k: int) -> tuple:
    """Sort key for the report's "worst questions": wrong first, then weakest retrieval."""
    s = question_scores(record, k)
    return (
        0 if failed(record) else 1,
        1 if s.get("correct") else 0,
        s["recall"] if s["recall"] is not None else 1.0,
        s.get("citation_precision") if s.get("citation_precision") is not None else 1.0,
        record.get("id", ""),
    )
