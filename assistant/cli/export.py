"""`assistant export bibtex`: BibTeX for a digest's papers, a session's cited papers or a search."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import UsageError
from .common import CONTEXT, settings_of


@click.group(name="export", context_settings=CONTEXT)
def export_group() -> None:
    """Export stored papers for other tools (no network)."""


@export_group.command(name="bibtex", context_settings=CONTEXT)
@click.option(
    "--digest",
    "digest_file",
    type=click.Path(path_type=Path),
    help="A digest JSON (`assistant digest --format json`): all its papers.",
)
@click.option("--session", "session_id", type=int, help="A chat session: the papers it cited.")
@click.option("--search", "query", help="A search: its top papers.")
@click.option(
    "-k", type=click.IntRange(1, 200), default=10, show_default=True, help="For --search."
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Write to this file (default: stdout)."
)
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
@click.pass_context
def bibtex(
    ctx: click.Context,
    digest_file: Path | None,
    session_id: int | None,
    query: str | None,
    k: int,
    out: Path | None,
    force: bool,
) -> None:
    """BibTeX entries (arXiv eprint, primary class when known, authors, year) from the library."""
    chosen = [x for x in (digest_file, session_id, query) if x is not None]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --digest FILE, --session ID or --search QUERY")
    if out is not None and out.exists() and not force:
        raise UsageError(f"{out} exists; use --force to overwrite it")
    settings = settings_of(ctx)
    if digest_file is not None:
        ids = _digest_ids(digest_file)
    elif session_id is not None:
        ids = _session_ids(settings, session_id)
    else:
        from ..retrieve import open_retriever

        ids = [h.paper_id for h in open_retriever(settings).search(query or "", k=k)]
    from ..bibtex import bibliography
    from ..store import Library

    metas = Library.open(settings).get_papers(ids)
    missing = [i for i in ids if i not in metas]
    if missing:
        click.echo(
            f"{len(missing)} paper(s) not in the library, skipped: {', '.join(missing[:5])}",
            err=True,
        )
    text = bibliography([metas[i] for i in ids if i in metas])
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}: {len(ids) - len(missing)} entries", err=True)


def _digest_ids(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [str(p["paper_id"]) for p in data["papers"]]
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, KeyError, TypeError):
        raise UsageError(
            f"{path}: not a digest JSON file (no 'papers' with 'paper_id'); "
            "write one with `assistant digest --format json`"
        ) from None


def _session_ids(settings, session_id: int) -> list[str]:
    from ..sessions import SessionStore

    with SessionStore.open(settings.home) as store:
        store.get_session(session_id)  # a missing session is its own clear error
        seen: dict[str, None] = {}
        for message in store.messages(session_id):
            for source in message.answer.cited_sources if message.answer else []:
                if source.paper_id:
                    seen.setdefault(source.paper_id, None)
    return list(seen)
