"""The evaluation runner: metrics on hand-made records, the judge's parser, resumption,
`eval compare`, and runs against the real llama.cpp server (SmolLM2-135M)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from assistant.answer import ABSTAIN_TEXT, Answer, Citation, Usage, ask, sources_from_hits
from assistant.errors import UsageError
from assistant.evaluation import metrics as m
from assistant.evaluation.judge import Judge, parse_verdict
from assistant.evaluation.runner import (
    CACHE_FILE,
    RunResult,
    answer_settings,
    bundled_set,
    choose_run_dir,
    load_questions,
    run_answers,
    settings_hash,
    write_run,
)
from assistant.llm import EndpointUnreachable, ModelClient
from assistant.retrieve import Hit

from .cli_runner import run_assistant
from .conftest import ROOT, embed_model_dir, make_settings
from .fakeserver import FakeServer

# -- hand-made records --------------------------------------------------------------------


def rec(
    qid: str = "q",
    *,
    answerable: bool = True,
    expected=(("p1",),),
    retrieved=("p1", "x1", "x2"),
    answer: str | None = "an answer",
    abstained: bool = False,
    contains=(("answer",),),
    citations=(),
    usage=None,
    error=None,
    abstain_reason=None,
    judge=None,
) -> dict:
    """A results.jsonl record built by hand, so every metric has a known value."""
    if not answerable:
        expected, contains = (), ()
    return {
        "id": qid,
        "question": f"question {qid}?",
        "kind": "test",
        "answerable": answerable,
        "expected_titles": [f"title {i}" for i in range(len(expected))],
        "answer_contains": [list(c) for c in contains],
        "expected_ids": [list(e) for e in expected],
        "retrieved": None
        if retrieved is None
        else [
            {"rank": i, "paper_id": p, "title": p, "similarity": 0.5}
            for i, p in enumerate(retrieved, start=1)
        ],
        "answer": answer,
        "raw": answer,
        "abstained": abstained,
        "abstain_reason": abstain_reason or ("model" if abstained else None),
        "citations": [
            {"n": i, "paper_id": p, "title": p, "supported": s}
            for i, (p, s) in enumerate(citations, start=1)
        ],
        "sources": [],
        "usage": usage
        or {"total_s": 1.0, "first_token_s": 0.5, "prompt_tokens": 100, "completion_tokens": 10},
        "error": error,
        "judge": judge,
    }


def value(metrics: dict, name: str) -> tuple:
    return metrics[name]["value"], metrics[name]["n"]


# -- retrieval metrics --------------------------------------------------------------------


def test_ndcg_recall_mrr_known_values():
    # A perfect single hit is 1.0, not ~0.34 (the IDCG-over-retrieved-items mistake).
    assert m.retrieval_scores([["a"]], ["a", "x", "y", "z", "w"], 5) == {
        "recall": 1.0,
        "rr": 1.0,
        "ndcg": 1.0,
    }
    # Two expected papers at ranks 2 and 4.
    s = m.retrieval_scores([["a"], ["b"]], ["x", "a", "y", "b", "z"], 5)
    ideal = 1 + 1 / math.log2(3)
    assert s["recall"] == 1.0 and s["rr"] == 0.5
    assert s["ndcg"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    assert s["ndcg"] == pytest.approx(0.6509, abs=1e-4)
    # Three expected, one found at rank 1: the ideal DCG sums three positions.
    s = m.retrieval_scores([["a"], ["b"], ["c"]], ["a", "x", "y"], 3)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["ndcg"] == pytest.approx(1 / (1 + 1 / math.log2(3) + 0.5))
    # More expected than k: the ideal DCG stops at k, so the best possible list scores 1.
    assert m.retrieval_scores([["a"], ["b"], ["c"]], ["b", "a"], 2)["ndcg"] == pytest.approx(1)
    # Beyond k nothing counts.
    assert m.retrieval_scores([["a"]], ["x", "y", "a"], 2) == {
        "recall": 0.0,
        "rr": 0.0,
        "ndcg": 0.0,
    }
    # A paper with two ids counts once; a title missing from the library is a miss.
    assert m.retrieval_scores([["a1", "a2"]], ["a2", "a1"], 5)["ndcg"] == pytest.approx(1)
    assert m.retrieval_scores([[], ["b"]], ["b"], 5)["recall"] == 0.5


def test_retrieval_metrics_only_on_answerable_questions_with_a_search():
    records = [
        rec("a", retrieved=("p1", "x")),  # recall 1, rr 1
        rec("b", expected=(("p1",), ("p2",)), retrieved=("x", "p2")),  # recall .5, rr .5
        rec("c", answerable=False, retrieved=("p1",)),  # not counted
        rec("d", retrieved=None, answer=None, error="boom"),  # no search: not counted
        rec("e", retrieved=("p1",), answer=None, error="model down"),  # counted
    ]
    metrics = m.retrieval_metrics(records, 2)
    assert list(metrics) == ["recall@2", "mrr", "ndcg@2"]
    assert value(metrics, "recall@2") == (pytest.approx((1 + 0.5 + 1) / 3, abs=1e-4), 3)
    assert value(metrics, "mrr") == (pytest.approx((1 + 0.5 + 1) / 3, abs=1e-4), 3)
    ndcg_b = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert value(metrics, "ndcg@2") == (pytest.approx((1 + ndcg_b + 1) / 3, abs=1e-4), 3)


# -- answer metrics -----------------------------------------------------------------------


def test_match_answer_needs_every_fact_any_alternative_any_case():
    facts = [["12,868", "12868"], ["410"]]
    assert m.match_answer("MetaShift has 12868 sets over 410 classes", facts) == (
        True,
        ["12868", "410"],
    )
    assert m.match_answer("It has 12,868 sets", facts) == (False, ["12,868", None])
    assert m.match_answer("NOPROP trains without backprop", [["NoProp"]])[0]
    assert m.match_answer("anything", [])[0] is False
    assert m.match_answer(None, [["x"]])[0] is False


def test_evidence_accuracy_counts_the_quotes_and_removed_share_the_sentences():
    prose_hit = rec(
        "prose", answer="It is manifold intrusion [1].", contains=(("manifold intrusion",),)
    )
    quoted = rec(
        "quoted",
        answer="The model's answer was not supported by the sources.",
        contains=(("manifold intrusion",),),
    )
    quoted["evidence"] = [{"n": 1, "text": "We call this manifold intrusion."}]
    quoted["prose_sentences"], quoted["removed"] = 3, [{"reason": "unsupported"}] * 3
    prose_hit["prose_sentences"], prose_hit["removed"] = 1, []
    missed = rec("missed", answer="Nothing.", contains=(("manifold intrusion",),))
    named = rec(
        "named", expected=(("p1",),), answer="X [1].", contains=(("X",),), citations=(("p1", True),)
    )
    named["kind"] = "named"
    shy = rec("named-shy", answer=ABSTAIN_TEXT, abstained=True, contains=(("X",),))
    shy["kind"] = "named"
    metrics = m.aggregate([prose_hit, quoted, missed, named, shy], 3)
    assert value(metrics, "answer_accuracy") == (pytest.approx(2 / 5), 5)  # prose + named
    assert value(metrics, "evidence_accuracy") == (pytest.approx(3 / 5), 5)  # + the quote
    assert value(metrics, "prose_removed_share") == (pytest.approx(3 / 4), 4)
    assert value(metrics, "named_cited") == (0.5, 2)
    assert value(metrics, "false_abstention_named") == (0.5, 2)
    assert value(metrics, "false_abstention_test") == (0.0, 3)


def test_litqa2_accuracy_precision_and_abstention_metrics():
    records = [
        rec("right", answer="It is manifold intrusion.", contains=(("manifold intrusion",),)),
        rec("wrong", answer="It is overfitting.", contains=(("manifold intrusion",),)),
        # An abstention never matches, even if the fact happens to be in the text.
        rec(
            "shy",
            answer=ABSTAIN_TEXT + " manifold intrusion",
            abstained=True,
            contains=(("manifold intrusion",),),
        ),
        rec(
            "declined",
            answerable=False,
            answer=ABSTAIN_TEXT,
            abstained=True,
            abstain_reason="retrieval",
        ),
        rec("guessed", answerable=False, answer="Whisper gets 2.7% WER."),
        rec("failed", answer=None, error="EndpointUnreachable: down"),
    ]
    metrics = m.aggregate(records, 3)
    assert value(metrics, "answer_accuracy") == (pytest.approx(1 / 3, abs=1e-4), 3)
    assert value(metrics, "accuracy") == (pytest.approx(2 / 5), 5)  # right + declined
    # correct among answered (right, wrong, guessed): only "right"
    assert value(metrics, "precision") == (pytest.approx(1 / 3, abs=1e-4), 3)
    assert value(metrics, "abstention_accuracy") == (0.5, 2)
    assert value(metrics, "false_abstention_rate") == (pytest.approx(1 / 3, abs=1e-4), 3)
    scores = {r["id"]: m.question_scores(r, 3) for r in records}
    assert scores["shy"]["correct"] is False and scores["declined"]["correct"] is True
    assert "correct" not in scores["failed"]
    # without a judge there is no faithfulness metric at all
    assert "faithfulness" not in metrics and "judge_failures" not in metrics


def test_citation_metrics_known_values():
    records = [
        rec(
            "a",
            expected=(("p1",), ("p2",)),
            retrieved=("p1", "p3", "p2"),
            citations=[("p1", True), ("p3", False)],
        ),
        rec(
            "b", expected=(("p4",),), retrieved=("p4",), citations=[("p4", True), ("p9", True)]
        ),  # p9 was never retrieved
        rec("c", expected=(("p5",),), retrieved=("p5",), citations=[]),
        rec("d", answerable=False, retrieved=("p6",), citations=[("p6", False)]),
        rec("e", expected=(("p7",),), answer=ABSTAIN_TEXT, abstained=True),
    ]
    metrics = m.aggregate(records, 3)
    assert value(metrics, "citation_validity") == (0.8, 5)  # 4 of 5 citations were retrieved
    assert value(metrics, "supported_rate") == (0.6, 5)
    # per question with citations: a 1/2, b 1/2, d 0/1
    assert value(metrics, "citation_precision") == (pytest.approx(1 / 3, abs=1e-4), 3)
    # per answerable question answered: a 1/2, b 1, c 0 (e abstained: not counted)
    assert value(metrics, "citation_recall") == (0.5, 3)


def test_cost_metrics_percentiles_and_per_call_tokens():
    def usage(total, first, prompt, completion):
        return {
            "total_s": total,
            "first_token_s": first,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
        }

    records = [
        rec(str(i), usage=usage(t, t / 2, 100 * i, 10 * i))
        for i, t in enumerate([1.0, 2.0, 3.0, 4.0], start=1)
    ]
    records.append(
        rec(
            "r",
            answer=ABSTAIN_TEXT,
            abstained=True,
            abstain_reason="retrieval",
            usage=usage(10.0, None, 0, 0),
        )
    )
    metrics = m.aggregate(records, 3)
    assert value(metrics, "latency_p50_s") == (3.0, 5)
    assert value(metrics, "latency_p95_s") == (pytest.approx(4 + 0.8 * 6), 5)
    assert value(metrics, "first_token_p50_s") == (1.25, 4)
    # a retrieval abstention makes no model call: not in the per-call token numbers
    assert value(metrics, "prompt_tokens_mean") == (250.0, 4)
    assert value(metrics, "prompt_tokens_total") == (1000, 4)
    assert value(metrics, "completion_tokens_total") == (100, 4)
    assert m.percentile([], 50) is None


def test_empty_metric_is_none_with_n_zero_never_nan():
    metrics = m.aggregate([rec("only", answerable=False, answer="guess")], 3)
    assert value(metrics, "recall@3") == (None, 0)
    assert value(metrics, "citation_validity") == (None, 0)
    assert value(metrics, "abstention_accuracy") == (0.0, 1)
    assert json.dumps(metrics)  # no NaN anywhere: strict JSON still serialises it


# -- the judge ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"faithful": true, "score": 0.9, "reason": "ok"}', (True, 0.9)),
        ('Sure! ```json\n{"faithful": false, "score": 0.25}\n``` hope that helps', (False, 0.25)),
        ('<think>hmm {not json}</think> {"Faithful": "true"}', (True, 1.0)),
        ('{"score": "0.4"}', (False, 0.4)),
        ('{"note": 1} then {"faithful": "no", "reason": "made up"}', (False, 0.0)),
    ],
)
def test_parse_verdict_reads_what_small_models_write(text, expected):
    verdict = parse_verdict(text)
    assert verdict.ok and (verdict.faithful, verdict.score) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The answer is faithful.",
        '"faithful" is true. "score" is a number from 0 to 1',
        '{"faithful": "maybe"}',
        '{"score": 7}',
        '{"reason": "no verdict"}',
        "",
    ],
)
def test_parse_verdict_fails_loudly_on_unusable_output(text):
    verdict = parse_verdict(text)
    assert not verdict.ok and verdict.error and verdict.score is None


# -- the runner without a server ----------------------------------------------------------


PAPERS = {
    "p1": {"title": "Paper One"},
    "p2": {"title": "Paper Two"},
    "p3": {"title": "Paper Three"},
}


class FakeRetriever:
    """The bundled papers' shape without Chroma: a title table and a fixed ranking."""

    papers = PAPERS
    embedder = SimpleNamespace(name="fake")

    def search(self, query, k=10, filters=None):
        return [
            Hit(
                rank=i,
                paper_id=pid,
                title=PAPERS[pid]["title"],
                published=None,
                score=1.0 / i,
                passage=f"{PAPERS[pid]['title']} passage",
                chunk=0,
                similarity=0.6,
            )
            for i, pid in enumerate(["p1", "p2", "p3"][:k], start=1)
        ]


def _fake_questions() -> list[dict]:
    return [
        {
            "id": "f1",
            "question": "One?",
            "expected_titles": ["Paper One"],
            "answer_contains": [["one"]],
            "answerable": True,
            "kind": "t",
        },
        {
            "id": "f2",
            "question": "Two?",
            "expected_titles": ["Paper Two"],
            "answer_contains": [["two"]],
            "answerable": True,
            "kind": "t",
        },
        {
            "id": "f3",
            "question": "None?",
            "expected_titles": [],
            "answer_contains": [],
            "answerable": False,
            "kind": "unanswerable",
        },
    ]


def test_runner_records_failures_counts_judge_failures_and_resumes(tmp_path: Path):
    down = {"f2"}
    asked: list[str] = []

    def fake_ask(question, retriever, client, *, k, context_window, stream):
        asked.append(question)
        hits = retriever.search(question, k=k)
        if question == "Two?" and down:
            raise EndpointUnreachable("nothing answered at http://127.0.0.1:9/v1")
        sources = sources_from_hits(hits)
        return Answer(
            question,
            "Paper one says one [1].",
            [Citation(1, "p1", "Paper One", True)],
            sources,
            False,
            Usage(prompt_tokens=50, completion_tokens=5, first_token_s=0.1, total_s=0.2),
            raw="one [1]",
        )

    replies = iter(
        [
            "I think it is faithful",
            '{"faithful": false, "score": 0.2}',
            '{"faithful": true, "score": 1}',
        ]
    )
    judged: list[str] = []

    def complete(messages):
        judged.append(messages[0]["content"])
        return next(replies)

    judge = Judge(complete, "stub")
    info = {"model": "fake", "k": 2, "set": "fake.jsonl"}
    run_dir = tmp_path / "run"
    result = run_answers(
        _fake_questions(),
        FakeRetriever(),
        None,
        k=2,
        context_window=4096,
        run_dir=run_dir,
        info=info,
        ask_fn=fake_ask,
        judge=judge,
    )
    assert result.failed == ["f2"] and len(result.records) == 3
    failed = result.records[1]
    assert failed["error"].startswith("EndpointUnreachable") and failed["answer"] is None
    assert [r["paper_id"] for r in failed["retrieved"]] == ["p1", "p2"]  # still scored
    assert value(result.metrics, "recall@2") == (1.0, 2)
    assert value(result.metrics, "accuracy") == (0.5, 2)  # f1 right, f3 answered a guess
    # two answers judged: one verdict did not parse and is counted, not dropped
    assert value(result.metrics, "judge_failures") == (1, 2)
    assert value(result.metrics, "faithfulness") == (0.2, 1)
    assert "Paper One passage" in judged[0] and "One?" in judged[0]
    for name in ("results.jsonl", "metrics.json", "report.md", "metrics.png", CACHE_FILE):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["failed"] == ["f2"] and summary["metrics"]["accuracy"] == {"value": 0.5, "n": 2}
    report = (run_dir / "report.md").read_text()
    assert "## Failed questions" in report and "EndpointUnreachable" in report
    assert "did not parse" in report or "no JSON verdict" in report
    assert result.to_json()["failed"] == ["f2"] and result.to_json()["n"] == 3

    # The server is back: a rerun asks only the failed question and re-judges nothing cached.
    down.clear()
    asked.clear()
    judged.clear()
    again = run_answers(
        _fake_questions(),
        FakeRetriever(),
        None,
        k=2,
        context_window=4096,
        run_dir=run_dir,
        info=info,
        ask_fn=fake_ask,
        judge=judge,
    )
    assert asked == ["Two?"] and len(judged) == 1
    assert again.failed == [] and (again.cached, again.computed) == (2, 1)
    assert value(again.metrics, "judge_failures") == (1, 3)


def test_load_questions_checks_lines(tmp_path: Path):
    path = tmp_path / "set.jsonl"
    path.write_text('{"id": "a", "question": "?"}\n')
    with pytest.raises(UsageError, match=r"set.jsonl:1: missing expected_titles"):
        load_questions(path)
    path.write_text("not json\n")
    with pytest.raises(UsageError, match=r":1: not JSON"):
        load_questions(path)
    assert [q["id"] for q in load_questions(bundled_set(), limit=2)] == [
        "q01-mixup-intrusion",
        "q02-noise-pairing",
    ]


def test_packaged_question_set_is_the_bundled_one():
    """A wheel has no eval/ folder and falls back to the package's copy: keep them equal."""
    packaged = ROOT / "assistant" / "evaluation" / "questions.jsonl"
    assert packaged.read_bytes() == (ROOT / "eval" / "questions.jsonl").read_bytes()
    assert bundled_set() == (ROOT / "eval" / "questions.jsonl").resolve()


# -- eval compare -------------------------------------------------------------------------


def _write_run(run_dir: Path, records: list[dict], **info) -> None:
    write_run(
        RunResult(
            run_dir, "answer", 3, records, m.aggregate(records, 3), info={"model": "m", **info}
        )
    )


def test_eval_compare_prints_deltas_with_n(tmp_path: Path):
    right = {"answer": "manifold intrusion", "contains": (("manifold intrusion",),)}
    wrong = {"answer": "no idea", "contains": (("manifold intrusion",),)}
    _write_run(
        tmp_path / "a",
        [rec("q1", **wrong), rec("q2", **right), rec("q3", retrieved=("x", "p1"), **wrong)],
        model="small",
    )
    _write_run(
        tmp_path / "b", [rec("q1", **right), rec("q2", **wrong), rec("q3", **right)], model="big"
    )
    env = {**os.environ}
    proc = run_assistant(
        ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json"], env=env
    )
    assert proc.returncode == 0, proc.stderr
    diff = json.loads(proc.stdout)
    acc = diff["metrics"]["answer_accuracy"]
    assert (acc["a"], acc["a_n"], acc["b"], acc["b_n"]) == (0.3333, 3, 0.6667, 3)
    assert acc["delta"] == pytest.approx(0.3334) and acc["better"] is True
    recall = diff["metrics"]["recall@3"]
    assert recall["delta"] == 0.0 and recall["better"] is None
    assert diff["questions"] == {"fixed": ["q1", "q3"], "broken": ["q2"], "common": 3}
    assert diff["settings_differ"]["model"] == {"a": "small", "b": "big"}

    proc = run_assistant(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")], env=env)
    assert proc.returncode == 0, proc.stderr
    assert "answer_accuracy" in proc.stdout and "+0.333" in proc.stdout
    assert "broken in B: q2" in proc.stdout

    proc = run_assistant(["eval", "compare", str(tmp_path / "a"), str(tmp_path)], env=env)
    assert proc.returncode == 2 and "not a run folder" in proc.stderr


def test_eval_help_imports_nothing_heavy():
    code = (
        "import sys; from assistant.cli import main\n"
        "for argv in (['eval', '--help'], ['eval', 'run', '--help']):\n"
        "    main(argv)\n"
        "heavy = [m for m in ('chromadb', 'llama_index', 'openai', 'onnxruntime')"
        " if m in sys.modules]\nprint('HEAVY', heavy)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    assert "--retrieval-only" in proc.stdout
    assert re.search(r"1\s+some\s+questions\s+failed", proc.stdout)  # the exit code is documented


# -- resuming, against the fake endpoint (what is cached matters, not what it says) --------


def test_resume_after_interrupt_reuses_cached_answers(
    sample_retriever, fake_llm: FakeServer, tmp_path: Path
):
    questions = load_questions(bundled_set(), limit=3)
    settings = make_settings(
        tmp_path / "home", base_url=fake_llm.url, model="smollm2", context_window=4096
    )
    client = ModelClient(settings)
    for i in range(6):  # each answer its own words, so a reused answer is recognisable
        fake_llm.add_reply(f"Reply number {i} from the model.")

    def chats() -> int:
        return len(fake_llm.chat_requests)

    info = answer_settings(settings, "smollm2", 2, sample_retriever.embedder.name)
    base = tmp_path / "runs"
    set_path = bundled_set()
    run_dir, resumed = choose_run_dir(base, None, "smollm2", settings_hash(info), set_path)
    assert not resumed
    info["set"] = str(set_path.resolve())
    asked: list[str] = []

    def interrupting_ask(question, *args, **kwargs):
        if len(asked) == 2:
            raise KeyboardInterrupt
        asked.append(question)
        return ask(question, *args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        run_answers(
            questions,
            sample_retriever,
            client,
            k=2,
            context_window=4096,
            run_dir=run_dir,
            info=info,
            ask_fn=interrupting_ask,
        )
    assert not (run_dir / "metrics.json").exists()
    cached = [json.loads(line) for line in (run_dir / CACHE_FILE).read_text().splitlines()]
    assert [c["id"] for c in cached] == [q["id"] for q in questions[:2]]
    first_chats = chats()
    assert first_chats >= 1

    # Without --out the unfinished run with the same settings is found again.
    again_dir, resumed = choose_run_dir(base, None, "smollm2", settings_hash(info), set_path)
    assert again_dir == run_dir and resumed
    asked.clear()

    def counting_ask(question, *args, **kwargs):
        asked.append(question)
        return ask(question, *args, **kwargs)

    result = run_answers(
        questions,
        sample_retriever,
        client,
        k=2,
        context_window=4096,
        run_dir=run_dir,
        info=info,
        ask_fn=counting_ask,
    )
    assert asked == [questions[2]["question"]]
    assert chats() - first_chats <= 1  # only the third question reached the model
    assert (result.cached, result.computed) == (2, 1)
    assert [r["cached"] for r in result.records] == [True, True, False]
    assert [r["answer"] for r in result.records[:2]] == [c["outcome"]["answer"] for c in cached]
    assert value(result.metrics, "accuracy")[1] == 3
    raws = [r["raw"] for r in result.records]
    assert raws[:2] == [c["outcome"]["raw"] for c in cached]  # not asked again
    # finished: the next run without --out starts a new folder
    assert choose_run_dir(base, None, "smollm2", settings_hash(info), set_path)[1] is False


# -- against the real local server --------------------------------------------------------


def test_eval_run_cli_on_local_server(sample_copy: Path, llama_server: str, tmp_path: Path):
    # one answerable question and one the library cannot answer: each answer and each
    # verdict costs SmolLM2 seconds of CPU
    wanted = {"q18-metashift-size", "q46-swebench-agents"}
    lines = [
        line
        for line in (ROOT / "eval" / "questions.jsonl").read_text().splitlines()
        if json.loads(line)["id"] in wanted
    ]
    subset = tmp_path / "subset.jsonl"
    subset.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    env = {
        **os.environ,
        "ASSISTANT_HOME": str(sample_copy),
        "OPENAI_BASE_URL": llama_server,
        "ASSISTANT_TIMEOUT": "120",
    }
    if embed_model_dir():
        env["ASSISTANT_EMBED_MODEL_DIR"] = str(embed_model_dir())
    proc = run_assistant(
        [
            "eval",
            "run",
            "--model",
            "smollm2",
            "--set",
            str(subset),
            "--k",
            "2",
            "--out",
            str(out),
            "--judge-model",
            "smollm2",
            "--json",
        ],
        env=env,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert set(report) >= {"metrics", "n", "failed", "run_dir"}
    assert report["n"] == 2 and report["run_dir"] == str(out)
    assert proc.returncode == (1 if report["failed"] else 0)
    for name in ("results.jsonl", "metrics.json", "report.md", "metrics.png", CACHE_FILE):
        assert (out / name).is_file(), name
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "metrics.json").read_text())
    assert all(set(v) == {"value", "n"} for v in summary["metrics"].values())
    metrics, n = report["metrics"], report["metric_n"]
    assert n["recall@2"] == 1 and metrics["recall@2"] == 1.0
    done = 2 - len(report["failed"])
    assert n["accuracy"] == done and n["abstention_accuracy"] == (
        0 if "q46-swebench-agents" in report["failed"] else 1
    )
    # every answer that was not an abstention was judged; each verdict parsed or failed
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    answered = [r for r in records if not r["error"] and not r["abstained"]]
    assert n["judge_failures"] == len(answered)
    assert n["faithfulness"] + metrics["judge_failures"] == len(answered)
    assert {r["id"] for r in records} == wanted
    assert all(
        {
            "question",
            "expected_titles",
            "retrieved",
            "answer",
            "raw",
            "citations",
            "abstained",
            "scores",
            "usage",
            "error",
        }
        <= set(r)
        for r in records
    )
    report_md = (out / "report.md").read_text()
    assert "| recall@2 |" in report_md and "## Settings" in report_md


def test_prose_shown_and_model_declined_are_counted_on_answered_questions():
    shown = rec("shown", answer="MetaShift has 12,868 sets [1].")
    shown["prose_supported"] = True
    declined = rec("declined", answer="The model did not answer from these sources.")
    declined["model_declined"] = True
    bare = rec("bare", answer="The model's answer was not supported by the sources.")
    gone = rec("gone", answer=ABSTAIN_TEXT, abstained=True, abstain_reason="retrieval")
    metrics = m.aggregate([shown, declined, bare, gone], 3)
    assert value(metrics, "prose_shown") == (
        pytest.approx(1 / 3, abs=1e-4),
        3,
    )  # abstention not counted
    assert value(metrics, "model_declined") == (pytest.approx(1 / 4), 4)
    assert value(metrics, "false_abstention_rate") == (pytest.approx(1 / 4), 4)
