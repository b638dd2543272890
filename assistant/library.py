"""What the library holds, for `papers`, `doctor` and the chat status bar."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import Settings


def summarise(settings: Settings) -> dict[str, Any]:
    """Counts, the published date range and where the papers came from."""
    from .store import Library, decode_list, int_to_date

    library = Library.open(settings)
    n_papers, n_chunks = library.counts()
    dates: list[int] = []
    undated = inferred = 0
    sources: Counter[str] = Counter()
    for _pid, meta, _ in library.iter_papers():
        if meta.get("published"):
            dates.append(int(meta["published"]))
        else:
            undated += 1
        inferred += bool(meta.get("year_inferred"))
        for source in {s.rsplit(":", 1)[0] for s in decode_list(meta.get("sources"))}:
            sources[source] += 1
    embedder = library.embedder_info
    return {
        "location": library.location,
        "papers": n_papers,
        "chunks": n_chunks,
        "earliest": str(int_to_date(min(dates))) if dates else None,
        "latest": str(int_to_date(max(dates))) if dates else None,
        "undated": undated,
        "year_inferred": inferred,
        "embedder": f"{embedder[0]} ({embedder[1]} dims)" if embedder else None,
        "sources": dict(sorted(sources.items())),
    }
