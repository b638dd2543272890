"""`assistant ARGS` run inside the test process, read back as a finished subprocess.

Most CLI tests are about what a command prints, stores and exits with, not about the
process boundary; starting Python, then chromadb and the embedding model, cost 1.5-3 s
per call, for about 150 calls. `run_assistant` gives the command what a fresh process
would have (its own environment, working directory, standard streams, signal handlers,
Chroma clients, logging without pytest's capture, Python's default warning filters) and
takes it all back afterwards, so a test that switches from
`subprocess.run([sys.executable, "-m", "assistant", ...])` keeps its assertions.

Tests of the boundary itself stay subprocesses: start-up imports, signals sent from
outside, a real terminal, the bundled llama.cpp server a command starts.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What a fresh interpreter ignores (the rest is printed once per place, to stderr).
_PYTHON_DEFAULT_IGNORES = (
    (DeprecationWarning, "ignore"),
    (PendingDeprecationWarning, "ignore"),
    (ImportWarning, "ignore"),
    (ResourceWarning, "ignore"),
)


def run_assistant(
    args: Sequence[str | bytes],
    *,
    env: Mapping[str, str],
    cwd: Path | str = ROOT,
    input: str | bytes | None = None,
) -> subprocess.CompletedProcess:
    """`python -m assistant ARGS` with `env` as the whole environment; output as text.

    An exception the CLI lets out is printed as Python prints it (with "Traceback"),
    exit code 1, so tests asserting that no traceback reaches a user still catch one.
    Arguments given as bytes are decoded as Python decodes a process's argv.
    """
    from chromadb.api.client import SharedSystemClient

    from assistant.cli import main

    argv = [os.fsdecode(arg) for arg in args]
    stdin_bytes = input.encode() if isinstance(input, str) else (input or b"")
    out, err = io.BytesIO(), io.BytesIO()
    std = (  # kept referenced: a collected wrapper closes its buffer
        io.TextIOWrapper(io.BytesIO(stdin_bytes), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace", write_through=True),
    )
    saved_std = (sys.stdin, sys.stdout, sys.stderr)
    saved_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_clients = SharedSystemClient._identifier_to_system
    saved_refcounts = SharedSystemClient._identifier_to_refcount
    root = logging.getLogger()
    saved_log_handlers = root.handlers

    SharedSystemClient._identifier_to_system, SharedSystemClient._identifier_to_refcount = {}, {}
    sys.stdin, sys.stdout, sys.stderr = std
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    root.handlers = []  # so a library's warning reaches stderr through logging.lastResort
    try:
        with warnings.catch_warnings():
            warnings.resetwarnings()
            for category, action in _PYTHON_DEFAULT_IGNORES:
                warnings.simplefilter(action, category)  # type: ignore[arg-type]
            warnings.showwarning = _print_warning
            code = _exit_code(main, argv)
    finally:
        root.handlers = saved_log_handlers
        sys.stdin, sys.stdout, sys.stderr = saved_std
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in saved_handlers.items():
            signal.signal(sig, handler)
        for system in SharedSystemClient._identifier_to_system.values():
            system.stop()  # what the process's exit did: the store's files are let go
        SharedSystemClient._identifier_to_system = saved_clients
        SharedSystemClient._identifier_to_refcount = saved_refcounts
    return subprocess.CompletedProcess(
        ["assistant", *argv],
        code,
        out.getvalue().decode("utf-8", "replace"),
        err.getvalue().decode("utf-8", "replace"),
    )


def _exit_code(main: Callable[[list[str]], int | None], argv: list[str]) -> int:
    """The exit status a process running `sys.exit(main(argv))` would end with."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # what an uncaught exception does to a process
        traceback.print_exc()
        return 1
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)  # sys.exit("message")
    return 1


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
