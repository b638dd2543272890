"""Step 1: which papers a digest covers (the window, an optional topic, a cap)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..store import date_to_int, int_to_date
from ..text import content_words
from .data import DigestPaper

if TYPE_CHECKING:
    from ..embed import Embedder
    from ..store import Library

TOPIC_MIN_SIMILARITY = 0.30  # same scale as ask's abstention threshold


def parse_week(text: str) -> tuple[date, date]:
    """ "2025-W45" -> Monday..Sunday of that ISO week."""
    match = re.fullmatch(r"(\d{4})-?W(\d{1,2})", text.strip(), re.IGNORECASE)
    if not match:
        raise UsageError(f"--week {text!r}: expected an ISO week such as 2025-W45")
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise UsageError(f"--week {text!r}: no such ISO week") from None
    return monday, monday + timedelta(days=6)


def resolve_window(
    week: str | None, since: date | None, until: date | None, today: date | None = None
) -> tuple[date, date]:
    """The window from --week or --since/--until; seven days ending today by default."""
    if week and (since or until):
        raise UsageError("use either --week or --since/--until, not both")
    if week:
        return parse_week(week)
    today = today or date.today()
    until = until or (since + timedelta(days=6) if since else today)
    since = since or until - timedelta(days=6)
    if since > until:
        raise UsageError(f"--since {since} is after --until {until}")
    return since, until


def previous_window(since: date, until: date) -> tuple[date, date]:
    """The window of the same length just before [since, until]."""
    length = (until - since).days + 1
    return since - timedelta(days=length), since - timedelta(days=1)


def select_papers(library: Library, since: date, until: date, by: str) -> list[DigestPaper]:
    """Papers in the window: by published date (undated papers count by when they
    were added) or by when they entered the library."""
    import numpy as np

    lo, hi = date_to_int(since), date_to_int(until)
    in_added = {"$and": [{"added_day": {"$gte": lo}}, {"added_day": {"$lte": hi}}]}
    where = (
        in_added
        if by == "added"
        else {
            "$or": [{"$and": [{"published": {"$gte": lo}}, {"published": {"$lte": hi}}]}, in_added]
        }
    )
    chosen: list[DigestPaper] = []
    for pid, meta, extra in library.iter_papers(
        ("metadatas", "documents", "embeddings"), where=where
    ):
        published = int_to_date(meta.get("published"))
        added = int_to_date(meta.get("added_day"))
        if by == "published" and published is not None and not (since <= published <= until):
            continue  # added in the window, published outside it
        vector = np.asarray(extra["embedding"], dtype=np.float32)
        chosen.append(
            DigestPaper(
                pid,
                str(meta.get("title", "")),
                extra.get("document") or "",
                published,
                added,
                meta.get("url"),
                int(meta.get("upvotes") or 0),
                vector,
            )
        )
    chosen.sort(key=lambda p: (p.day or since, p.title))
    return chosen


def filter_topic(
    papers: list[DigestPaper], topic: str, embedder: Embedder, library: Library
) -> list[DigestPaper]:
    """Papers whose best chunk is about `topic` (cosine similarity, as in search)."""
    import numpy as np

    if not papers:
        return papers
    query = embedder.embed([topic])[0]
    best: dict[str, float] = {}
    ids = [p.paper_id for p in papers]
    chunks = library.chunks()
    for start in range(0, len(ids), 500):
        got = chunks.get(
            where={"paper_id": {"$in": ids[start : start + 500]}},
            include=["metadatas", "embeddings"],
        )
        for meta, emb in zip(got["metadatas"], got["embeddings"]):
            sim = float(np.dot(np.asarray(emb, dtype=np.float32), query))
            pid = str(meta["paper_id"])
            best[pid] = max(best.get(pid, -1.0), sim)
    keyword = content_words(topic)
    return [
        p
        for p in papers
        if best.get(p.paper_id, -1.0) >= TOPIC_MIN_SIMILARITY
        or (keyword and keyword <= content_words(p.title))
    ]


def cap(papers: list[DigestPaper], max_papers: int | None, since: date) -> list[DigestPaper]:
    """At most `max_papers`, the most upvoted first, back in date order."""
    if not max_papers or len(papers) <= max_papers:
        return papers
    ranked = sorted(papers, key=lambda p: (-p.upvotes, p.day or since))
    return sorted(ranked[:max_papers], key=lambda p: (p.day or since, p.title))
