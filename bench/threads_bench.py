"""How fast llama.cpp reads a prompt when two bundled servers share the cores.

llama-cpp-python's server reads prompts with `--n_threads_batch` threads, one per
logical CPU by default, whatever `--n_threads` says. Two servers (two terminals, or
the test suite's two pytest-xdist workers) then run twice as many spinning threads as
there are cores. This reads the same 1,000-token prompt (abstracts from the bundled
sample) with SmolLM2-135M in two processes at once, `--repeat` times each (default
4), first with the default batch threads, then with one per process as
`BundledServer` passes (`ASSISTANT_LOCAL_THREADS` split between them), and once
alone; it prints each process's median tokens per second.

    .venv/bin/python bench/threads_bench.py --repeat 4
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import time

from _common import REPO, load_line, machine_line, median, print_table, spread

SAMPLE = REPO / "assistant" / "data" / "hf-daily-papers" / "001_6bca746acf7cc91f.txt"


def read_prompt(batch_threads: int, threads: int, repeat: int) -> list[float]:
    """Tokens per second reading a 1,000-token prompt, `repeat` times, fresh each time."""
    from llama_cpp import Llama

    from assistant.localserver import smollm2_path

    llm = Llama(
        str(smollm2_path()),
        n_ctx=4096,
        n_threads=threads,
        n_threads_batch=batch_threads,
        verbose=False,
    )
    tokens = llm.tokenize(SAMPLE.read_text()[:6000].encode())[:1000]
    speeds = []
    for _ in range(repeat):
        llm.reset()
        started = time.perf_counter()
        llm.eval(tokens)
        speeds.append(len(tokens) / (time.perf_counter() - started))
    return speeds


def run_child(batch_threads: int, threads: int, repeat: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", str(batch_threads), str(threads), str(repeat)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def speeds_of(proc: subprocess.Popen[str]) -> list[float]:
    out, _ = proc.communicate()
    return [float(x) for x in out.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(" ".join(f"{s:.1f}" for s in read_prompt(*args.child)))
        return
    logical = multiprocessing.cpu_count()
    from assistant.localserver import physical_cores

    each = max(1, physical_cores() // 2)
    print(machine_line())
    rows = []
    for label, batch in ((f"default ({logical} each)", logical), (f"{each} each", each)):
        pair = [run_child(batch, each, args.repeat) for _ in range(2)]
        for i, proc in enumerate(pair, 1):
            speeds = speeds_of(proc)
            rows.append(
                [
                    f"two servers, batch threads {label}",
                    i,
                    f"{median(speeds):.0f}",
                    spread(speeds, "{:.0f}"),
                ]
            )
    alone = speeds_of(run_child(each, each, args.repeat))
    rows.append(
        [f"one server, batch threads {each}", 1, f"{median(alone):.0f}", spread(alone, "{:.0f}")]
    )
    print_table(
        "Prompt reading, SmolLM2-135M, 1,000 tokens",
        ["setting", "process", "tokens/s (median)", "min..max"],
        rows,
    )
    print(load_line())


if __name__ == "__main__":
    main()
