"""Helpers shared by the benchmark scripts (not a benchmark itself).

Every script runs against a temporary ASSISTANT_HOME that it creates and
removes, never the user's real data folder, and reads the embedding model from
ASSISTANT_EMBED_MODEL_DIR (or `--model-dir`) so nothing is downloaded.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def add_common_args(parser) -> None:
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=os.environ.get("ASSISTANT_EMBED_MODEL_DIR"),
        help="local all-MiniLM-L6-v2 (a folder holding onnx/) "
        "[default: $ASSISTANT_EMBED_MODEL_DIR]",
    )
    parser.add_argument(
        "--keep-home",
        action="store_true",
        help="do not delete the temporary ASSISTANT_HOME at the end (its path is printed)",
    )


def check_model_dir(model_dir: Path | None) -> Path:
    if model_dir is None or not (Path(model_dir) / "onnx" / "model.onnx").is_file():
        sys.exit(
            "set ASSISTANT_EMBED_MODEL_DIR (or --model-dir) to a folder holding "
            "onnx/model.onnx; this machine may be offline"
        )
    return Path(model_dir).resolve()


@contextmanager
def exported_home(home: Path) -> Iterator[Path]:
    """`home` as ASSISTANT_HOME for this process and its children, restored after."""
    old = os.environ.get("ASSISTANT_HOME")
    os.environ["ASSISTANT_HOME"] = str(home)
    try:
        yield home
    finally:
        if old is None:
            os.environ.pop("ASSISTANT_HOME", None)
        else:
            os.environ["ASSISTANT_HOME"] = old


@contextmanager
def temp_home(keep: bool = False, prefix: str = "assistant-bench-") -> Iterator[Path]:
    """A throw-away ASSISTANT_HOME, also exported for any child process."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with exported_home(home):
            yield home
    finally:
        if keep:
            print(f"(kept {home})")
        else:
            shutil.rmtree(home, ignore_errors=True)


def child_env(home: Path, model_dir: Path | None) -> dict[str, str]:
    """Environment for a subprocess: the temp home, the local model, no .env surprises."""
    env = dict(os.environ)
    env["ASSISTANT_HOME"] = str(home)
    if model_dir is not None:
        env["ASSISTANT_EMBED_MODEL_DIR"] = str(model_dir)
    env.setdefault("ANONYMIZED_TELEMETRY", "False")
    env.pop("ASSISTANT_CHROMA_URL", None)
    return env


def timed(fn: Callable[..., object], *args, **kwargs) -> tuple[float, object]:
    """Wall time of fn(*args, **kwargs), and its result."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100] (numpy's default method)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """min..max, to show how noisy the repeats were."""
    if not values:
        return ""
    return f"{fmt.format(min(values))}..{fmt.format(max(values))}"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain-text table: first column left-aligned, the rest right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
        ).rstrip()

    print()
    print(title)
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def machine_line() -> str:
    """Where and when, with the load average: other work on the machine skews timings."""
    try:
        load = "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    except OSError:
        load = "load average unknown"
    return (
        f"{platform.node() or 'machine'}: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}, {load}"
    )


def load_line() -> str:
    try:
        return "load average now {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    except OSError:
        return "load average unknown"
