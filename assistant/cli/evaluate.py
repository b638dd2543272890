"""`assistant eval run`, `assistant eval compare` and `assistant eval digest`.

Only click is imported at module level: chromadb, the embedder and openai
are imported inside the command functions so `assistant eval --help` stays
fast. The evaluation itself is `assistant.evaluation`; this is its command line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..chat import DEFAULT_K, MAX_K
from ..errors import Interrupted, UsageError
from .common import CONTEXT, emit_json, model_settings, settings_of


@click.group(context_settings=CONTEXT)
def eval_group() -> None:
    """Measure retrieval and answers on a question set (eval/questions.jsonl)."""


def _progress(total_label: str):
    """A rich progress bar on stderr when stderr is a terminal; else no-ops."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("[dim]{task.fields[qid]}"),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(total_label, total=None, qid="")
    bar.start()

    def update(done: int, total: int, qid: str) -> None:
        bar.update(task, completed=done, total=total, qid=qid)

    return update, bar.stop


@eval_group.command("run", context_settings=CONTEXT)
@click.option(
    "--set",
    "set_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Question set (JSONL, schema in eval/README.md). [default: the bundled "
    "eval/questions.jsonl]",
)
@click.option("--model", help="Chat model name [env: ASSISTANT_MODEL].")
@click.option(
    "--k",
    "k",
    default=DEFAULT_K,
    show_default=True,
    type=click.IntRange(1, MAX_K),
    help="Papers retrieved and given to the model (as `assistant ask`); the "
    "retrieval metrics are @k.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder [default: eval/runs/<timestamp>-<model>/]. An existing one "
    "is resumed: its cached answers are reused when the settings match.",
)
@click.option("--limit", type=click.IntRange(1), help="Only the first N questions.")
@click.option("--retrieval-only", is_flag=True, help="Retrieval metrics only; needs no model.")
@click.option(
    "--fresh", is_flag=True, help="Start a new run folder instead of resuming an unfinished one."
)
@click.option("--judge-model", help="Score faithfulness with this model. No judge without it.")
@click.option("--judge-base-url", help="Judge endpoint [default: the answer endpoint].")
@click.option(
    "--judge-api-key-env",
    metavar="VAR",
    help="Environment variable holding the judge endpoint's key.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object: metrics (name to value), metric_n (name to n), "
    "n (questions run), failed (question ids), run_dir.",
)
@click.pass_context
def run_command(
    ctx: click.Context,
    set_path: Path | None,
    model: str | None,
    k: int,
    out: Path | None,
    limit: int | None,
    retrieval_only: bool,
    fresh: bool,
    judge_model: str | None,
    judge_base_url: str | None,
    judge_api_key_env: str | None,
    as_json: bool,
) -> None:
    """Run every question through retrieval and the model and score the answers.

    Writes results.jsonl, metrics.json, report.md and metrics.png to the run
    folder. Answers are cached as they complete: after an interruption, run
    the same command again to resume (without --out, the newest unfinished
    run with the same settings is resumed).

    Exit codes: 0 every question completed; 1 some questions failed (e.g. the
    model went down): they are listed and recorded in the run folder, the
    rest is scored, and a rerun retries them; 2 usage error; 130 interrupted.
    """
    from ..evaluation.runner import bundled_set, load_questions

    if (judge_base_url or judge_api_key_env) and not judge_model:
        raise UsageError("--judge-base-url and --judge-api-key-env need --judge-model")
    if retrieval_only and (judge_model or model):
        raise UsageError("--retrieval-only uses no model: drop --model/--judge-model")
    settings = settings_of(ctx) if retrieval_only else model_settings(ctx)[0]
    set_path = (set_path or bundled_set()).resolve()
    questions = load_questions(set_path, limit)

    client = None
    if not retrieval_only:  # before the store opens: no endpoint is a one-line error at once
        from ..llm import ModelClient

        client = ModelClient(settings, model=model or settings.model)
    from ..retrieve import open_retriever

    retriever = open_retriever(settings)
    if not retriever.papers:
        raise UsageError("the library is empty: run `assistant ingest` first")
    if retrieval_only:
        result = _run_retrieval(settings, retriever, questions, k, out, set_path, limit)
    else:
        result = _run_answers(
            settings,
            retriever,
            client,
            questions,
            k,
            out,
            set_path,
            limit,
            fresh,
            judge_model,
            judge_base_url,
            judge_api_key_env,
        )
    if as_json:
        emit_json(result.to_json())
    else:
        _print_result(result)
    ctx.exit(1 if result.failed else 0)


def _run_retrieval(
    settings: Any,
    retriever: Any,
    questions: list,
    k: int,
    out: Path | None,
    set_path: Path,
    limit: int | None,
) -> Any:
    from ..evaluation.runner import choose_run_dir, run_retrieval, runs_base

    info = {
        "mode": "retrieval",
        "k": k,
        "embedder": retriever.embedder.name,
        "set": str(set_path),
        "limit": limit,
    }
    run_dir, _ = choose_run_dir(runs_base(settings), out, "retrieval", "", set_path, fresh=True)
    update, stop = _progress("Retrieving")
    try:
        return run_retrieval(questions, retriever, k=k, run_dir=run_dir, info=info, progress=update)
    finally:
        stop()


def _run_answers(
    settings: Any,
    retriever: Any,
    client: Any,
    questions: list,
    k: int,
    out: Path | None,
    set_path: Path,
    limit: int | None,
    fresh: bool,
    judge_model: str | None,
    judge_base_url: str | None,
    judge_api_key_env: str | None,
) -> Any:
    from ..evaluation.judge import model_judge
    from ..evaluation.runner import (
        answer_settings,
        choose_run_dir,
        run_answers,
        runs_base,
        settings_hash,
    )

    info = answer_settings(settings, client.model, k, retriever.embedder.name)
    shash = settings_hash(info)
    run_dir, resumed = choose_run_dir(
        runs_base(settings), out, client.model, shash, set_path, fresh
    )
    info.update(set=str(set_path), limit=limit)
    judge = (
        model_judge(settings, judge_model, judge_base_url, judge_api_key_env)
        if judge_model
        else None
    )
    if resumed:
        click.echo(f"resuming {run_dir} (cached answers are reused)", err=True)
    update, stop = _progress(f"Evaluating {client.model}")
    try:
        return run_answers(
            questions,
            retriever,
            client,
            k=k,
            context_window=settings.context_window,
            run_dir=run_dir,
            info=info,
            judge=judge,
            progress=update,
        )
    except KeyboardInterrupt:
        again = "the same command" if out is None else f"again with --out {out}"
        raise Interrupted(
            f"interrupted: completed answers are cached in {run_dir}; run {again} to resume"
        ) from None
    finally:  # the bar goes before any line is printed
        stop()
        client.close()


def _print_result(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..evaluation.report import format_value

    console = Console(highlight=False)
    title = (
        "Retrieval" if result.mode == "retrieval" else "Evaluation"
    ) + f" — {len(result.records)} questions"
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("n", justify="right")
    for name, metric in result.metrics.items():
        table.add_row(name, format_value(name, metric["value"]), str(metric["n"]))
    console.print(table)
    if result.mode == "answer":
        console.print(
            f"answered now: {result.computed}, from the cache: {result.cached}; "
            f"{result.wall_s:.1f} s"
        )
    if result.failed:
        console.print(
            f"[red]failed[/red] ({len(result.failed)}): {', '.join(result.failed)}", soft_wrap=True
        )
    if result.unmapped_titles:
        console.print(
            "[yellow]expected titles not in the library:[/yellow] "
            + "; ".join(result.unmapped_titles),
            soft_wrap=True,
            markup=True,
        )
    console.print(f"run folder: {result.run_dir}", soft_wrap=True)


@eval_group.command("compare", context_settings=CONTEXT)
@click.argument("run_a", type=click.Path(exists=True, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def compare_command(run_a: Path, run_b: Path, as_json: bool) -> None:
    """Metric deltas of RUN_B against RUN_A (run folders), side by side with their n.

    Also lists the settings that differ and the questions that became right
    ("fixed") or wrong ("broken").
    """
    from ..evaluation.report import compare_runs, format_value

    diff = compare_runs(run_a, run_b)
    if as_json:
        emit_json(diff)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"A = {run_a.name}   B = {run_b.name}", title_justify="left")
    for column, justify in (
        ("metric", "left"),
        ("A", "right"),
        ("n", "right"),
        ("B", "right"),
        ("n ", "right"),
        ("B − A", "right"),
    ):
        table.add_column(column, justify=justify)
    for name, row in diff["metrics"].items():
        delta = row["delta"]
        if delta is None:
            shown = "—"
        else:
            shown = f"{delta:+.3f}" if isinstance(delta, float) else f"{delta:+d}"
            colour = {True: "green", False: "red", None: "dim"}[row["better"]]
            shown = f"[{colour}]{shown}[/{colour}]"
        table.add_row(
            name,
            format_value(name, row["a"]),
            str(row["a_n"]),
            format_value(name, row["b"]),
            str(row["b_n"]),
            shown,
        )
    console.print(table)
    for key, values in diff["settings_differ"].items():
        console.print(
            f"setting {escape(key)}: A={escape(str(values['a']))}  B={escape(str(values['b']))}",
            soft_wrap=True,
        )
    questions = diff["questions"]
    console.print(
        f"questions in both: {questions['common']}; fixed in B: "
        f"{', '.join(questions['fixed']) or 'none'}; broken in B: "
        f"{', '.join(questions['broken']) or 'none'}",
        soft_wrap=True,
    )


@eval_group.command("digest", context_settings=CONTEXT)
@click.argument("digest_json", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def digest_command(ctx: click.Context, digest_json: Path, as_json: bool) -> None:
    """Score a digest written with `assistant digest --format json`, by fixed rules.

    Theme names valid (short, no brackets or numbering, every word from the
    theme's papers); share of shown prose sentences supported by what they
    cite; `[n?]` marks shown; paper names that match no paper of the window;
    share of papers with a result cell when their abstract states a figure;
    every paper in exactly one table row; coherence (silhouette, share of
    papers far from their theme). No model is called. Abstracts and vectors a
    JSON lacks (digests written before these rules) are read from the library.
    Exit 0 when every target is met, 1 otherwise.
    """
    import json

    try:
        data = json.loads(digest_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{digest_json}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{digest_json}: not a digest JSON file ({exc})") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("themes"), list)
        or not isinstance(data.get("papers"), list)
    ):
        raise UsageError(
            f"{digest_json}: not a digest JSON file (no 'themes' and 'papers'); "
            "write one with `assistant digest --format json`"
        )
    from ..digest.score import TARGETS, score_digest
    from ..store import Library

    library = Library.open(settings_of(ctx)) if data["papers"] else None
    try:
        scores = score_digest(data, library)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{digest_json}: cannot score this digest ({exc})") from None
    met = all(_meets(scores.get(k), want) for k, want in TARGETS.items())
    if as_json:
        emit_json({**scores, "targets_met": met, "file": str(digest_json)})
    else:
        _print_digest_scores(scores, met)
    ctx.exit(0 if met else 1)


def _meets(value: Any, want: Any) -> bool:
    """Whether one figure meets its target (no prose or no figure at all counts as met)."""
    if value is None:
        return True
    if isinstance(want, bool):
        return value is want
    if isinstance(want, int) and not isinstance(want, float) and want == 0:
        return value == 0
    return value >= want


def _print_digest_scores(scores: dict[str, Any], met: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..digest.score import TARGETS

    console = Console(highlight=False)
    table = Table(
        title=f"Digest: {scores['papers']} papers, {scores['themes']} themes", title_justify="left"
    )
    for column, justify in (("figure", "left"), ("value", "right"), ("target", "right")):
        table.add_column(column, justify=justify)
    for key in (
        "names_valid",
        "prose_sentences",
        "prose_supported",
        "prose_removed",
        "unsupported_marks",
        "invented_titles",
        "papers_with_figure",
        "result_cells",
        "rows_once",
        "cell_offsets_exact",
        "silhouette",
        "far_papers",
        "areas",
        "other_share",
        "other_share_ok",
        "names_distinct",
        "trends_add_up",
    ):
        value = scores.get(key)
        shown = "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
        want = TARGETS.get(key)
        table.add_row(
            key,
            shown,
            "" if want is None else (f"≥ {want}" if isinstance(want, float) else str(want)),
        )
    console.print(table)
    for name in scores["names"]:
        if not name["valid"]:
            console.print(
                f"invalid name {escape(name['name'])!r}: {escape(name['reason'])}", soft_wrap=True
            )
    for title in scores["invented"]:
        console.print(f"invented title: {escape(title)}", soft_wrap=True)
    console.print("targets met" if met else "[red]targets not met[/red]")
