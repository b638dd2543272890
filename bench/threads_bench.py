"""How fast llama.cpp reads a prompt when two bundled servers share the cores.

llama-cpp-python's server reads prompts with `--n_threads_batch` threads, one per
logical CPU by default, whatever `--n_threads` says. Two servers (two terminals, or
the test suite's two pytest-xdist workers) then run twice as many spinning threads as
there are cores. This reads the same 1,000-token prompt (abstracts from the bundled
sample) with SmolLM2-135M in two processes at once, `--repeat` times each (default
4), first with the default batch threads, then with one per process as
`BundledServer` passes (`ASSISTANT_LOCAL_THREADS` split between them), and once
alone; it prints each process's median tokens per second.

`--embedder` does the same for the MiniLM embedder (200 sample abstracts per round,
onnxruntime's default threads against one per process), which is why the test suite's
xdist workers each give their ONNX sessions their share of the cores (tests/conftest.py).

    .venv/bin/python bench/threads_bench.py --repeat 4
    ASSISTANT_EMBED_MODEL_DIR=... .venv/bin/python bench/threads_bench.py --embedder --repeat 3
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


def embed_texts(threads: int, repeat: int) -> list[float]:
    """Abstracts per second embedded by MiniLM with `threads` ONNX threads (0: the default)."""
    import os
    from pathlib import Path

    import onnxruntime

    if threads:
        default = onnxruntime.SessionOptions

        class Limited(default):  # chromadb builds its session with SessionOptions()
            def __init__(self) -> None:
                super().__init__()
                self.intra_op_num_threads = threads
                self.inter_op_num_threads = 1

        onnxruntime.SessionOptions = Limited
    from assistant.embed import MiniLMEmbedder

    model_dir = os.environ.get("ASSISTANT_EMBED_MODEL_DIR")
    embedder = MiniLMEmbedder(Path(model_dir) if model_dir else None)
    texts = [line for line in SAMPLE.read_text().splitlines() if len(line) > 400][:200]
    embedder.embed(texts[:8])  # load the model before timing
    speeds = []
    for _ in range(repeat):
        started = time.perf_counter()
        embedder.embed(texts)
        speeds.append(len(texts) / (time.perf_counter() - started))
    return speeds


def run_child(batch_threads: int, threads: int, repeat: int) -> subprocess.Popen[str]:
    """`batch_threads` 0 with `threads` N: the embedder at N ONNX threads (0: default)."""
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
    parser.add_argument("--embedder", action="store_true", help="time the MiniLM embedder")
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        batch, threads, repeat = args.child
        speeds = read_prompt(*args.child) if batch else embed_texts(threads, repeat)
        print(" ".join(f"{s:.1f}" for s in speeds))
        return
    logical = multiprocessing.cpu_count()
    from assistant.localserver import physical_cores

    each = max(1, physical_cores() // 2)
    print(machine_line())
    if args.embedder:
        embedder_table(each, args.repeat)
        print(load_line())
        return
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


def embedder_table(each: int, repeat: int) -> None:
    rows = []
    for label, threads in (("default", 0), (f"{each} each", each)):
        pair = [run_child(0, threads, repeat) for _ in range(2)]
        speeds = [speeds_of(proc) for proc in pair]
        for i, got in enumerate(speeds, 1):
            rows.append(
                [
                    f"two embedders, ONNX threads {label}",
                    i,
                    f"{median(got):.1f}",
                    spread(got, "{:.1f}"),
                ]
            )
        rows.append(
            [
                f"two embedders, ONNX threads {label}",
                "sum",
                f"{sum(median(got) for got in speeds):.1f}",
                "",
            ]
        )
    print_table(
        "MiniLM embedding, 200 sample abstracts a round",
        ["setting", "process", "abstracts/s (median)", "min..max"],
        rows,
    )


if __name__ == "__main__":
    main()
