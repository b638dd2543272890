"""A stored session as Markdown: `sessions show`, `sessions export` and the chat's /export.

Apart from the store because it is rendering, not storage: it reads a
session through `SessionStore` like any other caller. Everything it writes
came from a paper, a model or a user, so all of it is made inert
(`safe_markdown`, `safe_line`, `safe_url`) for the terminal and for whatever
renders the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StoreError
from ..safe_text import safe_line, safe_markdown, safe_url
from .records import Message, Session, describe_filters
from .store import SessionStore

if TYPE_CHECKING:
    from ..answer import Source


def source_line(source: Source, supported: bool | None = None) -> str:
    """One reference: `[n] Title (date). url, supported by its passage` (the verdict
    when one is given)."""
    when = safe_line(source.published.isoformat() if source.published else "undated")
    line = f"[{source.n}] {safe_markdown(safe_line(source.title))} ({when})."
    url = safe_url(source.url)
    if url:
        line += f" {url}"
    if supported is not None:
        line += " (supported by its passage)" if supported else " (not supported by its passage)"
    return line


def render_markdown(session: Session, messages: list[Message]) -> str:
    """The session as Markdown: each question, each answer with its numbered
    references, and at the end every paper the session cited."""
    lines = [f"# {safe_markdown(safe_line(session.title))}", ""]
    meta = [
        f"- session: {session.id}",
        f"- started: {session.created}",
        f"- last used: {session.updated}",
    ]
    if session.model:
        meta.append(f"- model: {safe_markdown(safe_line(session.model))}")
    if describe_filters(session.filters):
        meta.append(f"- filters: {safe_markdown(safe_line(describe_filters(session.filters)))}")
    lines += meta + [""]
    cited: dict[str, Source] = {}
    for message in messages:
        if message.role == "user":
            lines += ["## Question", "", safe_markdown(message.content.strip()), ""]
            continue
        heading = "## Digest" if message.role == "digest" else "## Answer"
        lines += [heading, "", safe_markdown(message.content.strip()), ""]
        if message.status == "cancelled":
            lines += ["*(cancelled before the model finished)*", ""]
        answer = message.answer
        refs = answer.cited_sources if answer else []
        if answer is None or not refs:
            continue
        # A turn's stored text holds its evidence (`Answer.full_text`); a reply stored
        # with its prose alone (older `ask` records) gets its quotes under each paper.
        quoted = answer.evidence_text() in message.content
        lines += ["References:", ""]
        for source in refs:
            lines.append(f"- {source_line(source, answer.supported(source))}")
            if not quoted:
                lines += [
                    f"    - “{safe_markdown(' '.join(q.text.split()))}”"
                    for q in answer.quotes(source)
                ]
            cited.setdefault(source.paper_id, source)
        lines.append("")
    if cited:
        lines += ["## All references", ""]
        for i, source in enumerate(cited.values(), start=1):
            when = safe_line(source.published.isoformat() if source.published else "undated")
            url = safe_url(source.url)
            url = f" {url}" if url else ""
            title = safe_markdown(safe_line(source.title))
            lines.append(f"{i}. {title} ({when}).{url}")
        lines.append("")
    return "\n".join(lines)


def export_markdown(store: SessionStore, session_id: int) -> str:
    """Session `session_id` as Markdown (SessionNotFound when there is none)."""
    return render_markdown(store.get_session(session_id), store.messages(session_id))


def write_export(store: SessionStore, session_id: int, folder: Path) -> Path:
    """Write the session as Markdown under `folder` (made if missing); returns the path."""
    session = store.get_session(session_id)
    text = render_markdown(session, store.messages(session_id))
    slug = re.sub(r"[^a-z0-9]+", "-", session.title.lower()).strip("-")[:40] or "chat"
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"session-{session.id}-{slug}.md"
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"cannot write the export to {folder}: {exc.strerror}") from None
    return path
