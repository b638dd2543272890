"""Start-up time of the command line, and whether `--help` stays light.

Measures the wall time of a fresh subprocess (median of `--runs`, default 10,
after one untimed warm-up run that fills the OS file cache) for:

  * `assistant --help`
  * `assistant ingest --help`
  * `python -c "import assistant.cli"`
  * `python -c "pass"` (the interpreter alone, for reference)

and checks, in a subprocess that runs `assistant --help` and then looks at
`sys.modules`, that it imports neither chromadb nor llama_index (printed as
yes/no, with the other heavy modules that did load). With `--importtime` it
also prints the slowest imports (top level and one level down) of `python -X importtime -m
assistant --help`.

Run from the repository root:

    .venv/bin/python bench/startup_bench.py
    .venv/bin/python bench/startup_bench.py --runs 20 --importtime

Commands run with a temporary ASSISTANT_HOME; nothing is written there.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time

from _common import (
    VENV_BIN,
    add_common_args,
    child_env,
    load_line,
    machine_line,
    median,
    percentile,
    print_table,
    spread,
    temp_home,
)

HEAVY = [
    "chromadb",
    "llama_index",
    "onnxruntime",
    "numpy",
    "tiktoken",
    "openai",
    "textual",
    "rich",
    "tokenizers",
    "httpx",
    "pydantic",
]

PROBE = r"""
import json, sys
from assistant.cli import main
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    code = main(["--help"])
top = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"code": code, "modules": top}))
"""


def time_command(cmd: list[str], env: dict, cwd, runs: int) -> tuple[list[float], int]:
    subprocess.run(cmd, env=env, cwd=cwd, capture_output=True)  # warm the file cache
    times, code = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True)
        times.append(time.perf_counter() - start)
        code = code or proc.returncode
    return times, code


def import_times(env: dict, cwd, top: int) -> list[tuple[str, int, int]]:
    """(module, self µs, cumulative µs) of the slowest imports under -X importtime,
    top-level ones and what they import directly (the name is indented by depth)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "assistant", "--help"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)", line)
        if m and len(m.group(3)) <= 3:  # depth 0 and 1
            rows.append((m.group(3)[1:] + m.group(4), int(m.group(1)), int(m.group(2))))
    return sorted(rows, key=lambda r: -r[2])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command [default: 10]")
    parser.add_argument(
        "--importtime",
        action="store_true",
        help="also list the slowest top-level imports of `assistant --help`",
    )
    args = parser.parse_args()

    print(machine_line())
    py = sys.executable
    commands = [
        ("assistant --help", [str(VENV_BIN / "assistant"), "--help"]),
        ("assistant ingest --help", [str(VENV_BIN / "assistant"), "ingest", "--help"]),
        ('python -c "import assistant.cli"', [py, "-c", "import assistant.cli"]),
        ('python -c "pass" (reference)', [py, "-c", "pass"]),
    ]
    rows = []
    with temp_home(keep=args.keep_home) as home:
        env = child_env(home, args.model_dir)
        for label, cmd in commands:
            times, code = time_command(cmd, env, home, args.runs)
            rows.append(
                [
                    label,
                    f"{median(times) * 1000:.0f}",
                    f"{percentile(times, 95) * 1000:.0f}",
                    spread([t * 1000 for t in times], "{:.0f}"),
                    code,
                ]
            )
            print(f"{label}: median {median(times) * 1000:.0f} ms", flush=True)

        proc = subprocess.run([py, "-c", PROBE], env=env, cwd=home, capture_output=True, text=True)
        try:
            probe = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            sys.exit(f"the sys.modules probe failed: {proc.stderr[-500:]}")
        loaded = set(probe["modules"])
        slow = import_times(env, home, 12) if args.importtime else []

    print_table(
        f"Start-up, subprocess wall time, median of {args.runs} runs",
        ["command", "median ms", "p95 ms", "min..max ms", "exit"],
        rows,
    )
    print()
    print(f"`assistant --help` imports chromadb: {'yes' if 'chromadb' in loaded else 'no'}")
    print(f"`assistant --help` imports llama_index: {'yes' if 'llama_index' in loaded else 'no'}")
    others = [m for m in HEAVY if m in loaded and m not in ("chromadb", "llama_index")]
    print(
        f"other heavy modules it loads: {', '.join(others) or 'none'} "
        f"({len(loaded)} top-level modules in all)"
    )
    if slow:
        print_table(
            "Slowest imports of `python -X importtime -m assistant --help` "
            "(top level and one level down, one run)",
            ["module", "self ms", "cumulative ms"],
            [[m, f"{own / 1000:.1f}", f"{cum / 1000:.1f}"] for m, own, cum in slow],
        )
    print(f"\n{load_line()} (2 cores: above ~2, other work was competing)")


if __name__ == "__main__":
    main()
