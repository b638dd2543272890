"""The digest pipeline: select → themes → names → tables → prose (checked) → trends.

Everything but the prose and the optional model names is computed from the
papers, so a digest is readable with any model: the tables are copied from
the abstracts, the names come from key phrases, and a sentence the model
wrote is shown only when the abstracts it cites support it. Model calls are
two per named theme in a small window (name, prose), one in a large one
(prose), each prompt measured against `ASSISTANT_CONTEXT_WINDOW`, so calls
grow with themes, never with papers.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..store import int_to_date
from .data import Area, Digest
from .naming import name_themes
from .prose import SECTION_TOKENS, Writer, propose_name, write_prose
from .table import TABLE_ALL_BELOW, build_tables
from .themes import central_order, compare_with_previous, group, make_areas
from .window import cap, filter_topic, previous_window, select_papers

if TYPE_CHECKING:
    from ..embed import Embedder
    from ..llm import ModelClient
    from ..settings import Settings
    from ..store import Library


def build_digest(
    settings: Settings,
    library: Library,
    embedder: Embedder,
    client: ModelClient | None,
    since: date,
    until: date,
    *,
    by: str = "published",
    topic: str | None = None,
    max_papers: int | None = None,
    section_tokens: int = SECTION_TOKENS,
) -> Digest:
    """The digest of [since, until]; an empty window gives a digest with no themes
    (and makes no model call)."""
    if by not in ("published", "added"):
        raise UsageError(f"--by {by!r}: expected 'published' or 'added'")
    library.check_embedder(embedder.name, embedder.dim)
    papers = select_papers(library, since, until, by)
    if topic:
        papers = filter_topic(papers, topic, embedder, library)
    papers = cap(papers, max_papers, since)
    prev_since, prev_until = previous_window(since, until)
    digest = Digest(since, until, by, [], [], prev_since, prev_until, 0, library.counts()[0], topic)
    if not papers:
        dates = [int(m["published"]) for _, m, _ in library.iter_papers() if m.get("published")]
        if dates:
            digest.library_range = (int_to_date(min(dates)), int_to_date(max(dates)))
        return digest
    if client is None:
        from ..errors import NotConfigured

        raise NotConfigured("no model endpoint configured: set OPENAI_BASE_URL")

    themes, digest.silhouette = group(papers)
    groups = make_areas(themes)
    area_names = name_themes(themes, groups)
    digest.areas = [Area(name, members) for name, members in zip(area_names, groups)]
    if digest.areas:  # themes read area by area
        themes = [t for a in digest.areas for t in a.themes] + [t for t in themes if t.other]
    for theme in themes:  # most representative first: the table, then one line each
        if not theme.other:
            theme.papers = central_order(theme)
    digest.themes = themes
    digest.papers = [p for t in themes for p in t.papers]
    previous = select_papers(library, prev_since, prev_until, by)
    if topic:
        previous = filter_topic(previous, topic, embedder, library)
    digest.previous_total = len(previous)
    digest.previous_other = compare_with_previous(themes, previous)
    build_tables(themes, small=len(papers) < TABLE_ALL_BELOW)

    writer = Writer(client, settings.context_window, section_tokens)
    titles = [p.title for p in digest.papers]
    taken = {t.name.lower() for t in themes}
    earlier: list[set[str]] = []
    taken.update(a.name.lower() for a in digest.areas)
    for theme in digest.named:
        if not digest.areas:
            # A large window names its themes from key phrases only: one call a
            # theme keeps a week within minutes, and the small model's names
            # rarely pass `valid_name` there.
            taken.discard(theme.name.lower())
            propose_name(writer, theme, taken)
            taken.add(theme.name.lower())
        write_prose(writer, theme, titles, earlier)
    # Picked once the themes have their final names: a pick's reason names its theme.
    from ..interests import load_interests, rank

    digest.for_you, digest.for_you_basis = rank(digest, load_interests(settings.home), library)
    digest.model = getattr(client, "model", None) if writer.calls else None
    digest.model_calls = writer.calls
    digest.prompt_tokens = writer.prompt_tokens
    digest.max_prompt_tokens = writer.max_prompt_tokens
    return digest


def digest_markdown(
    settings: Settings,
    retriever: Any,
    client: ModelClient | None,
    since: date,
    until: date,
    max_papers: int | None = None,
) -> str:
    """A digest as Markdown, for the chat's /digest."""
    digest = build_digest(
        settings,
        library=retriever.library,
        embedder=retriever.embedder,
        client=client,
        since=since,
        until=until,
        max_papers=max_papers,
    )
    from .render import render_markdown

    return render_markdown(digest)
