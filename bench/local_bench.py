"""What the bundled model's start-up adds to one `assistant ask`.

Runs the same `assistant ask QUESTION --json` as a fresh CLI process `--runs`
times (default 3) in each of two ways, interleaved so background load hits
both alike:

* **bundled**: no OPENAI_BASE_URL, so the command starts llama.cpp's server
  with SmolLM2-135M on a free loopback port, waits for it, asks, and stops it;
* **running**: against an `assistant serve` started once beforehand (found
  through its state file in ASSISTANT_HOME, as a user's second terminal would).

The start-up cost is the difference of the two medians. It also times the
server alone (start to first `/v1/models` answer, `--runs` times) and prints
how much of that `ask` hides by loading chromadb and the embedder meanwhile.
Before every timed ask against the running server, a one-token request with
an unrelated prompt empties llama.cpp's prompt-prefix cache (as
bench/ask_bench.py does): without it the repeated question's whole prompt
would be served from the cache, and a fresh bundled server, which has no
cache, would look ~50 s slower for that reason alone (measured: 73.7 vs
21.0 s on a loaded machine). Same question, temperature 0, same library:
the bundled sample ingested into a temporary ASSISTANT_HOME, copied to a
second home for the bundled way (so it does not find the serve). Each way
first answers once untimed (file cache, keyword-index cache).

    ASSISTANT_EMBED_MODEL_DIR=/work/shared/models/all-MiniLM-L6-v2 \\
        .venv/bin/python bench/local_bench.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import urllib.request

from _common import (
    REPO,
    add_common_args,
    check_model_dir,
    child_env,
    load_line,
    machine_line,
    median,
    print_table,
    spread,
    temp_home,
)

QUESTION = "What is GaLore?"


def ask_once(env: dict[str, str], question: str) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "ask", question, "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    took = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"ask failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return took, json.loads(proc.stdout)


def flush_prefix_cache(base_url: str) -> None:
    """A one-token request with an unrelated prompt, so the next call reuses no prefix."""
    body = json.dumps(
        {
            "model": "smollm2",
            "max_tokens": 1,
            "temperature": 0,
            "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "ok"}],
        }
    ).encode()
    request = urllib.request.Request(
        f"{base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=300).read()


def server_start_once() -> float:
    sys.path.insert(0, str(REPO))
    from assistant.localserver import BundledServer

    server = BundledServer(n_ctx=8192)
    started = time.perf_counter()
    try:
        server.start()
        server.wait_ready()
        return time.perf_counter() - started
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--runs", type=int, default=3, help="asks per way (default 3)")
    parser.add_argument("--question", default=QUESTION)
    args = parser.parse_args()
    model_dir = check_model_dir(args.model_dir)
    print(machine_line())

    with temp_home(keep=args.keep_home, prefix="assistant-local-bench-") as home:
        env = child_env(home, model_dir)
        for var in (
            "OPENAI_BASE_URL",
            "OPENAI_API_KEY",
            "ASSISTANT_MODEL",
            "ASSISTANT_LOCAL_MODEL",
        ):
            env.pop(var, None)
        subprocess.run(
            [sys.executable, "-m", "assistant", "ingest", "--json"],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
        starts = [server_start_once() for _ in range(args.runs)]

        bundled: list[float] = []
        running: list[float] = []
        answers: list[str] = []
        serve = subprocess.Popen(
            [sys.executable, "-m", "assistant", "serve"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            url = serve.stdout.readline().strip()
            if not url:
                sys.exit("assistant serve did not start")
            solo = home / "solo"
            shutil.copytree(home / "chroma", solo / "chroma")
            solo_env = dict(env, ASSISTANT_HOME=str(solo))
            ask_once(env, args.question)  # warm-ups, untimed
            ask_once(solo_env, args.question)
            for _ in range(args.runs):
                took, data = ask_once(solo_env, args.question)
                bundled.append(took)
                answers.append(data["answer"][:80])
                flush_prefix_cache(url)
                took, data = ask_once(env, args.question)
                running.append(took)
        finally:
            serve.send_signal(2)
            serve.wait(timeout=60)

    cost = median(bundled) - median(running)
    print_table(
        f"`assistant ask {args.question!r} --json`, {args.runs} runs each (s)",
        ["way", "median", "min..max"],
        [
            ["bundled (starts and stops SmolLM2)", f"{median(bundled):.2f}", spread(bundled)],
            ["running `assistant serve`", f"{median(running):.2f}", spread(running)],
            ["start-up cost added to one ask", f"{cost:.2f}", ""],
            ["server alone: start to first answer", f"{median(starts):.2f}", spread(starts)],
        ],
    )
    print(f"\nhidden behind chromadb/embedder loading: {median(starts) - cost:.2f} s")
    print(f"answer (first run): {answers[0]!r}")
    print(load_line())


if __name__ == "__main__":
    main()
