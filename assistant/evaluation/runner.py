"""Run the question set through the real retrieval and answer path, resumably.

Each question goes through `answer.ask` exactly as `assistant ask` would
send it. Its outcome is appended to `answers.jsonl` in the run folder as soon
as it completes, keyed by the question id, a hash of the question text and a
hash of every setting that changes answers (model, k, endpoint, context
window, prompt files, embedder, answer limits). A rerun into the same folder
— or, without `--out`, into the latest unfinished run with the same settings —
reuses those answers and asks the model only for the rest. Scores are
recomputed from the stored outcomes every time, so a corrected question set
rescores old answers without asking again.

A question whose answer path raises (the model went down mid-run) is
recorded as failed with its error and the run goes on; failed questions are
not cached, so a rerun retries them. Ctrl-C propagates: what was answered is
already on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..records import normalise_title
from ..safe_text import is_safe
from . import metrics as m
from .report import RunResult, render_report

if TYPE_CHECKING:
    from ..settings import Settings
    from .judge import Judge

QUESTION_FIELDS = ("id", "question", "expected_titles", "answer_contains", "answerable", "kind")
ANSWER_PROMPTS = ("answer_system", "answer_user", "source")
CACHE_FILE = "answers.jsonl"
STATE_FILE = "run.json"
Progress = Callable[[int, int, str], None]


# -- the question set ---------------------------------------------------------------------


def bundled_set() -> Path:
    """The bundled `eval/questions.jsonl`: the checkout's copy, else the packaged one.

    A source or editable install reads the repository's file; a wheel has no
    `eval/` folder, so the package ships a copy (a test keeps the two equal).
    """
    import assistant

    checkout = Path(assistant.__file__).resolve().parent.parent / "eval" / "questions.jsonl"
    if checkout.is_file():
        return checkout
    return Path(__file__).resolve().parent / "questions.jsonl"


def load_questions(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The questions of a JSONL set (the first `limit`), checked field by field.

    A malformed set is the user's mistake to fix, so it stops the run with the
    line number before any model call is spent.
    """
    if not path.is_file():
        raise UsageError(f"{path}: no such question set (pass --set FILE)")
    questions: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path}:{number}: not UTF-8 text (byte {exc.start + 1})") from None
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not JSON ({exc.msg})") from None
        missing = [f for f in QUESTION_FIELDS if f not in q] if isinstance(q, dict) else ["all"]
        if missing:
            raise UsageError(f"{path}:{number}: missing {', '.join(missing)}")
        problem = _field_problem(q)
        if problem:
            raise UsageError(f"{path}:{number}: field {problem}")
        if q["id"] in seen:
            raise UsageError(f"{path}:{number}: duplicate id {q['id']!r}")
        seen.add(q["id"])
        questions.append({f: q[f] for f in QUESTION_FIELDS})
        if limit is not None and len(questions) >= limit:
            break
    if not questions:
        raise UsageError(f"{path}: no questions")
    return questions


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and is_safe(value)


def _field_problem(q: dict[str, Any]) -> str | None:
    """What is wrong with one question's fields ("'id': expected text, got a list"), or None."""

    def kind(value: Any) -> str:
        return "null" if value is None else f"a {type(value).__name__}"

    for name in ("id", "question", "kind"):
        if not _is_text(q[name]):
            return f"{name!r}: expected text, got {kind(q[name])}"
    titles = q["expected_titles"]
    if not isinstance(titles, list) or not all(_is_text(t) for t in titles):
        return "'expected_titles': expected a list of titles"
    contains = q["answer_contains"]
    if not isinstance(contains, list) or not all(
        _is_text(c) or (isinstance(c, list) and c and all(_is_text(w) for w in c)) for c in contains
    ):
        return "'answer_contains': expected a list of words or of lists of words"
    if not isinstance(q["answerable"], bool):
        return f"'answerable': expected true or false, got {kind(q['answerable'])}"
    return None


def title_index(papers: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Normalised title -> paper ids, from the retriever's paper table."""
    index: dict[str, list[str]] = {}
    for pid, meta in papers.items():
        index.setdefault(normalise_title(str(meta.get("title", ""))), []).append(pid)
    return index


def expected_ids(question: dict[str, Any], index: dict[str, list[str]]) -> tuple[list, list]:
    """One id list per expected title, and the titles the library does not hold."""
    ids = [index.get(normalise_title(str(t)), []) for t in question["expected_titles"]]
    unmapped = [t for t, found in zip(question["expected_titles"], ids) if not found]
    return ids, unmapped


# -- settings and the cache ---------------------------------------------------------------


def _sha(text: str, n: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def answer_settings(settings: Settings, model: str, k: int, embedder: str) -> dict[str, Any]:
    """Everything that changes an answer: the cache key's settings part, shown in the report."""
    from .. import prompts
    from ..answer import ABSTAIN_SIMILARITY, ANSWER_MAX_TOKENS, prompt_sources
    from ..settings import display_url

    return {
        "model": model,
        "k": k,
        "base_url": display_url(settings.base_url) if settings.base_url else None,
        "context_window": settings.context_window,
        "embedder": embedder,
        "prompts": {name: _sha(prompts.load(name), 12) for name in ANSWER_PROMPTS},
        "abstain_similarity": ABSTAIN_SIMILARITY,
        "answer_max_tokens": ANSWER_MAX_TOKENS,
        "answer_sources": prompt_sources(),
    }


_HASHED = (
    "model",
    "k",
    "base_url",
    "context_window",
    "embedder",
    "prompts",
    "abstain_similarity",
    "answer_max_tokens",
    "answer_sources",
)


def settings_hash(info: dict[str, Any]) -> str:
    """Hash of the answer-changing part of `info` (report-only keys are left out)."""
    return _sha(json.dumps({k: info.get(k) for k in _HASHED}, sort_keys=True, default=str))


def answer_key(question: dict[str, Any], shash: str) -> str:
    """Cache key: the id, the question's wording and the settings; not its expected answers."""
    return f"{question['id']}|{_sha(question['question'], 12)}|{shash}"


class AnswerCache:
    """`answers.jsonl`: one line per completed answer or verdict, appended as they complete.

    A line cut short by a kill is ignored on reading, and the file is given
    back its final newline before appending, so the next line stays whole.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.answers: dict[str, dict[str, Any]] = {}
        self.verdicts: dict[str, dict[str, Any]] = {}
        if path.is_file():
            data = path.read_bytes()
            for line in data.decode("utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if entry.get("type") == "answer":
                    self.answers[entry["key"]] = entry["outcome"]
                elif entry.get("type") == "judge":
                    self.verdicts[entry["key"]] = entry["verdict"]
            if data and not data.endswith(b"\n"):
                with path.open("ab") as f:
                    f.write(b"\n")

    def _append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def put_answer(self, key: str, qid: str, outcome: dict[str, Any]) -> None:
        self.answers[key] = outcome
        self._append({"type": "answer", "key": key, "id": qid, "outcome": outcome})

    def put_verdict(self, key: str, verdict: dict[str, Any]) -> None:
        self.verdicts[key] = verdict
        self._append({"type": "judge", "key": key, "verdict": verdict})


# -- run folders --------------------------------------------------------------------------


def runs_base(settings: Settings) -> Path:
    """`eval/runs/` in a checkout; `ASSISTANT_HOME/eval-runs/` for an installed package."""
    import assistant

    checkout = Path(assistant.__file__).resolve().parent.parent / "eval"
    if (checkout / "questions.jsonl").is_file():
        return checkout / "runs"
    return settings.home / "eval-runs"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "model"


def choose_run_dir(
    base: Path, out: Path | None, label: str, shash: str, set_path: Path, fresh: bool = False
) -> tuple[Path, bool]:
    """The run folder and whether it resumes an earlier, unfinished run.

    With `out` that folder is used (its cached answers are reused when the
    settings match). Without it, the newest unfinished run under `base` with
    the same settings and question set is resumed, unless `fresh`; otherwise
    a new `<timestamp>-<label>` folder is made.
    """
    if out is not None:
        return out, (out / CACHE_FILE).is_file()
    if not fresh and base.is_dir():
        states = sorted(base.glob(f"*/{STATE_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True)
        for state_path in states:
            try:
                state = json.loads(state_path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if (
                not state.get("complete")
                and state.get("settings_hash") == shash
                and state.get("set") == str(set_path.resolve())
            ):
                return state_path.parent, True
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = base / f"{stamp}-{_slug(label)}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = base / f"{stamp}-{_slug(label)}-{suffix}"
    return run_dir, False


def _write_state(run_dir: Path, **state: Any) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / STATE_FILE
    old = json.loads(path.read_text()) if path.is_file() else {}
    old.update(state)
    path.write_text(json.dumps(old, indent=2, default=str) + "\n")


# -- running ------------------------------------------------------------------------------


class _RecordingRetriever:
    """Passes searches through and keeps the last hits.

    The retrieved list is scored even when the model call after it fails, so
    a model outage does not erase the retrieval metrics.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last: list[Any] | None = None

    def search(self, query: str, k: int = 10, filters: Any = None) -> list[Any]:
        self.last = None
        hits = self.inner.search(query, k=k, filters=filters)
        self.last = hits
        return hits

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _retrieved(hits: Sequence[Any] | None) -> list[dict[str, Any]] | None:
    if hits is None:
        return None
    return [
        {
            "rank": i,
            "paper_id": h.paper_id,
            "title": h.title,
            "similarity": None
            if getattr(h, "similarity", None) is None
            else round(h.similarity, 4),
        }
        for i, h in enumerate(hits, start=1)
    ]


def _record(
    question: dict[str, Any], index: dict[str, list[str]], outcome: dict[str, Any], k: int
) -> dict[str, Any]:
    ids, unmapped = expected_ids(question, index)
    record = {**question, "expected_ids": ids, "unmapped_titles": unmapped, **outcome}
    record["scores"] = m.question_scores(record, k)
    return record


def _preflight(client: Any) -> None:
    """Fail the run at once when the endpoint is down, instead of 48 failed questions.

    Only when something is left to ask: a fully cached rerun needs no server.
    A server that cannot list models is left for the chat call to judge.
    """
    from ..errors import AuthenticationRefused, EndpointUnreachable, LLMError

    if not hasattr(client, "list_models"):
        return
    try:
        client.list_models()
    except (EndpointUnreachable, AuthenticationRefused):
        raise
    except LLMError:
        pass


def run_answers(
    questions: Sequence[dict[str, Any]],
    retriever: Any,
    client: Any,
    *,
    k: int,
    context_window: int,
    run_dir: Path,
    info: dict[str, Any],
    ask_fn: Callable[..., Any] | None = None,
    judge: Judge | None = None,
    progress: Progress | None = None,
    stream: bool = True,
) -> RunResult:
    """Answer every question (or take it from the cache), score, and write the run folder.

    `ask_fn` defaults to `answer.ask`; tests wrap it to count calls or to
    interrupt. `info` is `answer_settings(...)` plus anything the report
    should show; its answer part must not change between resumed runs.
    """
    if ask_fn is None:
        from ..answer import ask as ask_fn

    started = time.perf_counter()
    shash = settings_hash(info)
    _write_state(
        run_dir,
        mode="answer",
        settings_hash=shash,
        complete=False,
        set=info.get("set"),
        started=_now(),
    )
    cache = AnswerCache(run_dir / CACHE_FILE)
    index = title_index(retriever.papers)
    recording = _RecordingRetriever(retriever)
    records: list[dict[str, Any]] = []
    computed = cached = 0
    checked = False
    for done, question in enumerate(questions):
        if progress:
            progress(done, len(questions), question["id"])
        key = answer_key(question, shash)
        outcome = cache.answers.get(key)
        if outcome is not None:
            cached += 1
            outcome = {**outcome, "cached": True}
        else:
            if not checked:
                _preflight(client)
                checked = True
            outcome = _answer(
                question["question"], recording, client, ask_fn, k, context_window, stream
            )
            computed += 1
            if not outcome["error"]:
                cache.put_answer(key, question["id"], outcome)
            outcome = {**outcome, "cached": False}
        if judge is not None and not outcome["error"] and not outcome.get("abstained"):
            outcome["judge"] = _judge(judge, cache, key, question, outcome)
        records.append(_record(question, index, outcome, k))
    if progress:
        progress(len(questions), len(questions), "")
    result = RunResult(
        run_dir,
        "answer",
        k,
        records,
        m.aggregate(records, k, judged=judge is not None),
        info={**info, "settings_hash": shash, "judge": judge.name if judge else None},
        computed=computed,
        cached=cached,
        wall_s=time.perf_counter() - started,
    )
    write_run(result)
    return result


def _answer(
    text: str,
    retriever: _RecordingRetriever,
    client: Any,
    ask_fn: Callable[..., Any],
    k: int,
    context_window: int,
    stream: bool,
) -> dict[str, Any]:
    """One question's outcome; an exception becomes the recorded error, Ctrl-C does not."""
    try:
        answer = ask_fn(text, retriever, client, k=k, context_window=context_window, stream=stream)
    except Exception as exc:  # recorded per question; the run goes on
        return {
            "retrieved": _retrieved(retriever.last),
            "answer": None,
            "raw": None,
            "abstained": None,
            "abstain_reason": None,
            "citations": [],
            "sources": [],
            "usage": None,
            "model": None,
            "error": f"{type(exc).__name__}: {exc}",
        }
    d = answer.to_dict()
    return {
        "retrieved": _retrieved(retriever.last)
        or [
            {
                "rank": s["n"],
                "paper_id": s["paper_id"],
                "title": s["title"],
                "similarity": s["similarity"],
            }
            for s in d["sources"]
        ],
        "raw": answer.raw,
        "sources": d["sources"],
        "usage": d["usage"],
        "model": d["model"],
        "answerability": d.get("answerability"),
        "error": None,
        **reviewed_fields(d),
    }


def reviewed_fields(d: dict[str, Any]) -> dict[str, Any]:
    """The part of a cached outcome that the review decides (from `Answer.to_dict`):
    what `bench/rereview.py` replaces when it reviews a cached reply again."""
    return {
        "answer": d["answer"],
        "abstained": d["abstained"],
        "abstain_reason": d["abstain_reason"],
        "citations": d["citations"],
        "dropped_citations": d["dropped_citations"],
        "unknown_numbers": d["unknown_numbers"],
        "evidence": d.get("evidence") or [],
        "removed": d.get("removed") or [],
        "prose_sentences": d.get("prose_sentences") or 0,
        "prose_supported": bool(d.get("prose_supported")),
        "model_declined": bool(d.get("model_declined")),
    }


def _judge(
    judge: Judge, cache: AnswerCache, key: str, question: dict[str, Any], outcome: dict[str, Any]
) -> dict[str, Any]:
    """The verdict for one answer, cached per judge; a failed call is retried next run."""
    jkey = f"{key}|{judge.key}"
    verdict = cache.verdicts.get(jkey)
    if verdict is None:
        verdict = judge(
            question["question"], outcome["answer"] or "", outcome.get("sources") or []
        ).to_dict()
        if verdict["ok"] or verdict["raw"]:
            cache.put_verdict(jkey, verdict)
    return verdict


def run_retrieval(
    questions: Sequence[dict[str, Any]],
    retriever: Any,
    *,
    k: int,
    run_dir: Path | None = None,
    info: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Retrieval metrics only: no model, no cache (a search takes milliseconds).

    With `run_dir` None nothing is written (the CI floor test uses this).
    """
    started = time.perf_counter()
    index = title_index(retriever.papers)
    records = []
    for done, question in enumerate(questions):
        if progress:
            progress(done, len(questions), question["id"])
        try:
            outcome = {
                "retrieved": _retrieved(retriever.search(question["question"], k=k)),
                "error": None,
            }
        except Exception as exc:  # recorded per question; the run goes on
            outcome = {"retrieved": None, "error": f"{type(exc).__name__}: {exc}"}
        records.append(_record(question, index, outcome, k))
    if progress:
        progress(len(questions), len(questions), "")
    result = RunResult(
        run_dir or Path("."),
        "retrieval",
        k,
        records,
        m.aggregate(records, k, retrieval_only=True),
        info=dict(info or {}),
        computed=len(records),
        wall_s=time.perf_counter() - started,
    )
    if run_dir is not None:
        _write_state(
            run_dir, mode="retrieval", complete=False, set=result.info.get("set"), started=_now()
        )
        write_run(result)
    return result


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- writing ------------------------------------------------------------------------------


def write_run(result: RunResult) -> None:
    """results.jsonl, metrics.json, report.md and metrics.png; then mark the run complete."""
    from .chart import draw_chart

    run_dir = result.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    unmapped = result.unmapped_titles
    with (run_dir / "results.jsonl").open("w", encoding="utf-8") as f:
        for record in result.records:
            record.setdefault("scores", m.question_scores(record, result.k))
            f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    summary = {
        "mode": result.mode,
        "k": result.k,
        "metrics": result.metrics,
        "n": len(result.records),
        "failed": result.failed,
        "unmapped_titles": unmapped,
        "computed": result.computed,
        "cached": result.cached,
        "wall_s": round(result.wall_s, 2),
        "finished": _now(),
        "settings": result.info,
    }
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (run_dir / "report.md").write_text(render_report(result), encoding="utf-8")
    draw_chart(
        result.metrics, run_dir / "metrics.png", title=f"{run_dir.name} (n={len(result.records)})"
    )
    _write_state(run_dir, complete=True, finished=summary["finished"])
