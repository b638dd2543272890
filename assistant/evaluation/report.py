"""A finished run (`RunResult`) and `report.md`: the metrics with their n, the worst
questions with why, the settings used; reading a run folder back and comparing two.

The worst questions come with their answer, the facts that matched or not,
the retrieved papers (expected ones marked) and the citations, so a reader
can tell a retrieval miss from a model mistake without opening results.jsonl.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import metrics as m

WORST = 8
ANSWER_CLIP = 700


@dataclass
class RunResult:
    """A finished run: its records, metrics and where they were written."""

    run_dir: Path
    mode: str  # "answer" or "retrieval"
    k: int
    records: list[dict[str, Any]]
    metrics: dict[str, m.Metric]
    info: dict[str, Any] = field(default_factory=dict)
    computed: int = 0  # questions answered in this invocation
    cached: int = 0  # questions whose answers came from the cache
    wall_s: float = 0.0

    @property
    def failed(self) -> list[str]:
        return [r["id"] for r in self.records if m.failed(r)]

    @property
    def unmapped_titles(self) -> list[str]:
        """Expected titles the library does not hold (they count as retrieval misses)."""
        return sorted({t for r in self.records for t in r.get("unmapped_titles", [])})

    def to_json(self) -> dict[str, Any]:
        """What `eval run --json` prints: one object."""
        return {
            "metrics": {name: v["value"] for name, v in self.metrics.items()},
            "metric_n": {name: v["n"] for name, v in self.metrics.items()},
            "n": len(self.records),
            "failed": self.failed,
            "run_dir": str(self.run_dir),
        }


def format_value(name: str, value: Any) -> str:
    """A metric value as the report and `eval compare` show it."""
    if value is None:
        return "—"
    unit = m.metric_info(name)[2]
    if unit == "s":
        return f"{value:.2f} s"
    if unit in ("tokens", "count"):
        return f"{value:.1f}" if isinstance(value, float) else str(value)
    return f"{value:.3f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def metrics_table(metrics: dict[str, m.Metric]) -> list[str]:
    lines = ["| metric | value | n | meaning |", "|---|---:|---:|---|"]
    for name, metric in metrics.items():
        lines.append(
            f"| {name} | {format_value(name, metric['value'])} | {metric['n']} | "
            f"{_cell(m.metric_info(name)[0])} |"
        )
    return lines


def _question_section(record: dict[str, Any], k: int, retrieval_only: bool) -> list[str]:
    s = m.question_scores(record, k)
    verdict = (
        "failed"
        if m.failed(record)
        else ("correct" if s.get("correct") else "wrong")
        if not retrieval_only
        else ""
    )
    bits = [verdict] if verdict else []
    if s["recall"] is not None:
        bits.append(f"recall@{k} {s['recall']:.2f}, ndcg@{k} {s['ndcg']:.2f}")
    lines = [
        f"### {record['id']} ({record.get('kind', '')}): {', '.join(bits)}",
        "",
        f"**Question:** {record['question']}",
        "",
    ]
    expected = record.get("expected_titles") or []
    lines.append(
        "**Expected:** "
        + ("; ".join(expected) if expected else "nothing (unanswerable: should abstain)")
    )
    if record.get("unmapped_titles"):
        lines.append(f"(not in the library: {'; '.join(record['unmapped_titles'])})")
    lines.append("")
    if record.get("error"):
        lines += [f"**Error:** `{_clip(record['error'], 400)}`", ""]
    if not retrieval_only and record.get("answer") is not None:
        how = f" (abstained: {record.get('abstain_reason')})" if record.get("abstained") else ""
        lines += [
            f"**Answer{how}:**",
            "",
            "> " + (_clip(record["answer"], ANSWER_CLIP) or "(empty)"),
            "",
        ]
        if record.get("raw") and record.get("raw") != record.get("answer"):
            lines += ["**Model wrote:**", "", "> " + _clip(record["raw"], ANSWER_CLIP), ""]
        facts = record.get("answer_contains") or []
        if facts:
            shown = [
                f"{'/'.join(alts)}: " + (f'found "{hit}"' if hit else "missing")
                for alts, hit in zip(facts, s.get("matches") or [None] * len(facts))
            ]
            lines += ["**Facts:** " + "; ".join(shown), ""]
    expected_ids = {pid for ids in record.get("expected_ids") or [] for pid in ids}
    retrieved = record.get("retrieved")
    if retrieved is not None:
        lines.append("**Retrieved:**")
        lines.append("")
        for hit in retrieved:
            mark = " ✓ expected" if hit["paper_id"] in expected_ids else ""
            sim = f" (similarity {hit['similarity']:.3f})" if hit.get("similarity") else ""
            lines.append(f"{hit['rank']}. {hit['title']}{sim}{mark}")
        lines.append("")
    citations = record.get("citations") or []
    if not retrieval_only and record.get("answer") is not None and not record.get("abstained"):
        if citations:
            lines.append(
                "**Citations:** "
                + "; ".join(
                    f"[{c['n']}] {c['title']} "
                    f"({'supported' if c.get('supported') else 'unsupported'}"
                    f"{', expected' if c['paper_id'] in expected_ids else ''})"
                    for c in citations
                )
            )
        else:
            lines.append("**Citations:** none")
        lines.append("")
    judge = record.get("judge")
    if judge:
        lines += [
            (
                "**Judge:** "
                + (
                    f"score {judge['score']}, {_clip(judge.get('reason', ''), 200)}"
                    if judge.get("ok")
                    else f"failed ({_clip(judge.get('error') or '', 200)})"
                    + (f"; it wrote: {_clip(judge['raw'], 200)}" if judge.get("raw") else "")
                )
            ),
            "",
        ]
    return lines


def _passed_fully(record: dict[str, Any], k: int) -> bool:
    """Nothing to explain: not failed, not wrong, every expected paper retrieved."""
    s = m.question_scores(record, k)
    return not m.failed(record) and s.get("correct") is not False and s["recall"] in (None, 1.0)


def render_report(result: RunResult) -> str:
    """The whole report as Markdown."""
    retrieval_only = result.mode == "retrieval"
    records = result.records
    failed = result.failed
    lines = [f"# Evaluation run `{result.run_dir.name}`", ""]
    lines.append(f"- mode: {'retrieval only' if retrieval_only else 'retrieval and answers'}")
    lines.append(
        f"- questions: {len(records)} ({sum(1 for r in records if r.get('answerable'))} "
        f"answerable), failed: {len(failed)}"
    )
    if not retrieval_only:
        lines.append(f"- answered now: {result.computed}, from the cache: {result.cached}")
    lines.append(f"- wall time: {result.wall_s:.1f} s")
    lines += ["", "## Metrics", "", *metrics_table(result.metrics), ""]
    lines.append(
        "Each n is the number of questions the metric was computed on (citations for "
        "citation_validity and supported_rate; answers judged for judge_failures). "
        "Failed questions count in no answer metric."
    )
    lines.append("")
    if result.unmapped_titles:
        lines += [
            "**Warning:** these expected titles are not in the library, so they count as "
            "misses: " + "; ".join(result.unmapped_titles),
            "",
        ]
    if failed:
        lines += ["## Failed questions", "", "| id | error |", "|---|---|"]
        lines += [
            f"| {r['id']} | {_cell(_clip(r['error'], 300))} |" for r in records if m.failed(r)
        ]
        lines.append("")
    worst = [
        r
        for r in sorted(records, key=lambda r: m.badness(r, result.k))
        if not _passed_fully(r, result.k)
    ][:WORST]
    lines += ["## Worst questions", ""]
    if not worst:
        lines += ["None: every question was answered correctly and retrieved all its papers.", ""]
    for record in worst:
        lines += _question_section(record, result.k, retrieval_only)
    lines += ["## Settings", "", "| setting | value |", "|---|---|"]
    for key, value in result.info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        lines.append(f"| {key} | {_cell(value)} |")
    lines.append("")
    return "\n".join(lines)


# -- eval compare -------------------------------------------------------------------------


def load_run(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run folder's metrics.json (or that file itself) and its results.jsonl records."""
    import json

    from ..errors import UsageError

    summary_path = path / "metrics.json" if path.is_dir() else path
    if not summary_path.is_file():
        raise UsageError(f"{path}: not a run folder (no metrics.json); finish or rerun it first")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{summary_path}: not JSON ({exc.msg})") from None
    records = []
    results = summary_path.parent / "results.jsonl"
    if results.is_file():
        for line in results.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return summary, records


def _passed(record: dict[str, Any], k: int) -> bool | None:
    """Per question: correct (answer runs) or all expected papers found (retrieval runs)."""
    if m.failed(record):
        return None
    scores = m.question_scores(record, k)
    if scores.get("correct") is not None:
        return bool(scores["correct"])
    return None if scores.get("recall") is None else scores["recall"] == 1.0


def compare_runs(a: Path, b: Path) -> dict[str, Any]:
    """Metric deltas B - A (with both n), differing settings, and questions that flipped."""
    sa, ra = load_run(a)
    sb, rb = load_run(b)
    names = list(sa.get("metrics", {})) + [
        n for n in sb.get("metrics", {}) if n not in sa.get("metrics", {})
    ]
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        ma = sa.get("metrics", {}).get(name) or {"value": None, "n": 0}
        mb = sb.get("metrics", {}).get(name) or {"value": None, "n": 0}
        delta = (
            None
            if ma["value"] is None or mb["value"] is None
            else round(mb["value"] - ma["value"], 4)
        )
        higher_better = m.metric_info(name)[1]
        better = None if not delta else (delta > 0) == higher_better
        rows[name] = {
            "a": ma["value"],
            "a_n": ma["n"],
            "b": mb["value"],
            "b_n": mb["n"],
            "delta": delta,
            "better": better,
        }
    set_a, set_b = sa.get("settings", {}), sb.get("settings", {})
    differing = {
        key: {"a": set_a.get(key), "b": set_b.get(key)}
        for key in list(set_a) + [k for k in set_b if k not in set_a]
        if set_a.get(key) != set_b.get(key) and key not in ("settings_hash",)
    }
    before = {r["id"]: _passed(r, int(sa.get("k") or 4)) for r in ra}
    after = {r["id"]: _passed(r, int(sb.get("k") or 4)) for r in rb}
    common = [q for q in before if q in after and before[q] is not None and after[q] is not None]
    return {
        "runs": {"a": str(a), "b": str(b)},
        "metrics": rows,
        "settings_differ": differing,
        "questions": {
            "fixed": [q for q in common if after[q] and not before[q]],
            "broken": [q for q in common if before[q] and not after[q]],
            "common": len(common),
        },
    }
