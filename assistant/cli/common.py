"""What every command module shares: context settings, option types, settings, output.

Command modules import from here and never from `assistant.cli` itself (the
package's `__init__` imports them to build the root group). Nothing heavy at
module level: `assistant --help` imports this module, so only click does.

`AssistantGroup.main` is the one place exceptions become exit codes (the
table is in `assistant/errors.py`); commands raise, they do not catch to exit.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import click

from ..errors import AssistantError, Interrupted
from ..safe_text import is_safe, safe_line, safe_text

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# The settings' secrets (the API key, URL passwords): never in an error line or --json.
_SECRETS: set[str] = set()


def redact(text: str) -> str:
    """`text` without any secret of this command's settings (and inert: `safe_text`)."""
    text = safe_text(text)
    for secret in _SECRETS:
        text = text.replace(secret, "****")
    return text


class AssistantGroup(click.Group):
    """The root group: one-line errors for the user's mistakes, no tracebacks, exit codes
    from the exception's class. With `standalone_mode=False` it returns the exit code."""

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> int:
        code = self._run(args, prog_name, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(self, args: list[str] | None, prog_name: str | None, **extra: Any) -> int:
        try:
            result = super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            return exc.exit_code
        except click.ClickException as exc:
            exc.message = redact(exc.message)
            exc.show()
            return exc.exit_code
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("interrupted", err=True)
            return Interrupted.exit_code
        except Interrupted as exc:
            click.echo(redact(str(exc)), err=True)  # the line says what was kept
            return exc.exit_code
        except AssistantError as exc:
            click.echo(f"Error: {redact(str(exc))}", err=True)
            return exc.exit_code
        return result if isinstance(result, int) else 0


def terminate_as_interrupt() -> None:
    """SIGTERM (kill, systemd, a closing terminal multiplexer) ends a long command as
    Ctrl-C does: its handlers run, and the user gets the line saying what was kept,
    not a silent exit 143."""
    import signal
    import threading

    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, raise_interrupt)


# -- option types ---------------------------------------------------------------------------


class DateParam(click.ParamType):
    """YYYY-MM-DD, YYYY-MM (first day) or YYYY (1 January), read as the chat reads `/since`."""

    name = "DATE"

    def convert(self, value: Any, param: Any, ctx: Any) -> date:
        if isinstance(value, date):
            return value
        from ..errors import UsageError
        from ..retrieve import parse_filter_date

        try:
            return parse_filter_date(str(value))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


DATE = DateParam()


class TextParam(click.ParamType):
    """A word or sentence argument (a query, a question): refused as one line when the
    shell handed over bytes that are not UTF-8 (Python keeps them as lone surrogates,
    which nothing downstream can encode)."""

    name = "TEXT"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        text = str(value)
        if not is_safe(text) and any("\ud800" <= c <= "\udfff" for c in text):
            self.fail("not UTF-8 text (the shell passed bytes in another encoding)", param, ctx)
        return text


TEXT = TextParam()

# A session id is a SQLite rowid: 1 to 2**63 - 1 (a larger number overflows the driver).
SESSION_ID = click.IntRange(1, 2**63 - 1)


def filter_options(func: Callable) -> Callable:
    """--since, --until, --author and --title: the filters `search` and `ask` share."""
    func = click.option(
        "--title", "title_kw", type=TEXT, help="Only papers whose title has these words."
    )(func)
    func = click.option(
        "--author", type=TEXT, help="Only papers whose authors/organisation have these words."
    )(func)
    func = click.option("--until", type=DATE, help="Published on or before this date.")(func)
    func = click.option("--since", type=DATE, help="Published on or after this date.")(func)
    return func


# -- settings --------------------------------------------------------------------------------


def settings_of(ctx: click.Context):
    """The command's settings, loaded once per invocation from the root's flags.

    Commands that need a model call `model_settings` instead.
    """
    from ..settings import Settings

    obj = ctx.find_root().obj
    if "settings" not in obj:
        obj["settings"] = Settings.load(**obj["flags"])
        _SECRETS.update(obj["settings"].secrets())
        for warning in obj["settings"].warnings:
            click.echo(f"warning: {warning}", err=True)
    return obj["settings"]


def model_settings(ctx: click.Context, wait: bool = True):
    """(settings pointing at a model, the `Endpoint`): OPENAI_BASE_URL, else a running
    `assistant serve`, else the bundled server, started once per command and stopped
    when the command ends (errors and Ctrl-C included: the root context closes it).

    With `wait=False` the bundled server loads while the caller opens the library;
    the caller then calls `endpoint.wait_ready()`.
    """
    import contextlib

    from ..localserver import bundled_notice, resolve_endpoint

    root = ctx.find_root()
    obj = root.obj
    if "model" not in obj:
        base = settings_of(root)
        stack = root.with_resource(contextlib.ExitStack())
        settings, endpoint = resolve_endpoint(base, stack, wait=False)
        if endpoint.how == "bundled":
            click.echo(bundled_notice(base), err=True)
        elif endpoint.how == "serve":
            click.echo(f"using the bundled model of `assistant serve` at {endpoint.url}", err=True)
        obj["model"] = (settings, endpoint)
    settings, endpoint = obj["model"]
    if wait:
        endpoint.wait_ready()
    return settings, endpoint


# -- output ---------------------------------------------------------------------------------


def emit_json(data: Any) -> None:
    """What `--json` prints: one object, UTF-8 kept readable, dates as ISO strings.

    JSON escapes C0 controls itself; C1 controls, bidi overrides and lone
    surrogates it would print raw are written as \\uXXXX escapes too, so the
    data stay exact and the terminal shows them inert."""
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    text = _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    for secret in _SECRETS:
        text = text.replace(secret, "****")
    click.echo(text)


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def rich_console(stderr: bool = False):
    """A rich console that leaves numbers and URLs uncoloured (output gets copied)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def escape(text: str) -> str:
    """Text shown literally by rich (a title with [brackets] is not markup, an ESC in it
    is shown as "␛", not obeyed: see `assistant.safe_text`)."""
    from rich.markup import escape as rich_escape

    return rich_escape(safe_text(text))


def echo_safe(text: str, err: bool = False) -> None:
    """`click.echo` for text that came from a paper, a model or a file name."""
    click.echo(redact(text), err=err)


def clip(text: str, n: int) -> str:
    text = safe_text(text)
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def short_path(path: str) -> str:
    """A path relative to the working folder when under it, else its last two parts."""
    try:
        return safe_line(str(Path(path).resolve().relative_to(Path.cwd())))
    except ValueError:
        parts = Path(path).parts
        return safe_line(str(Path(*parts[-2:])) if len(parts) > 2 else path)


def progress(label: str, enabled: bool = True):
    """A rich progress bar on stderr, only when stderr is a terminal: (update, stop).

    `update(done, total, label=None)` (a label renames the bar: fetch names each day); both
    are no-ops (update is None) off a terminal.
    """
    if not enabled or not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=rich_console(stderr=True),
        transient=True,
    )
    task = bar.add_task(label, total=None)
    bar.start()

    def update(done: int, total: int, label: str | None = None) -> None:
        if label is not None:
            bar.update(task, description=label)
        bar.update(task, completed=done, total=total)

    return update, bar.stop
