"""Weekly digests that group a window's papers by theme and compare them.

Themes come from the papers' embeddings (the mean of each paper's chunk
vectors, stored with the paper): Ward hierarchical clustering from SciPy, with
the number of themes chosen by the silhouette score within a readable range.
The model then names each theme and writes one comparative paragraph per
theme, citing papers by number; the same checks as `ask` resolve, attribute
and verify those citations, and only papers of the window can be cited.

Budgets are measured with tiktoken: a theme whose papers do not fit one prompt
is summarised in batches that each fit, then merged, so model calls grow with
themes and batches, never with the square of the number of papers.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import prompts
from .citations import SourceText, check, content_words
from .errors import UsageError
from .store import date_to_int, int_to_date
from .tokens import count_message_tokens, count_tokens, encoder

if TYPE_CHECKING:
    import numpy as np

    from .embed import Embedder
    from .llm import ModelClient
    from .settings import Settings
    from .store import Library

SECTION_TOKENS = 320  # the answer budget of one section call
NAME_TOKENS = 16
PAPER_TOKENS = 220  # an abstract is cut to this many tokens inside a digest prompt
SECTION_SENTENCES = 6
PROMPT_MARGIN_TOKENS = 48
TOPIC_MIN_SIMILARITY = 0.30  # same scale as ask's abstention threshold
PREVIOUS_MIN_SIMILARITY = 0.50  # a previous-window paper counts towards a theme above this
MAX_THEMES = 20
THEME_MAX_AVG = 12
THEME_MIN_AVG = 3


@dataclass
class DigestPaper:
    paper_id: str
    title: str
    abstract: str
    published: date | None
    added: date | None
    url: str | None
    upvotes: int
    vector: Any  # np.ndarray, unit length

    def to_dict(self) -> dict[str, Any]:
        return {"paper_id": self.paper_id, "title": self.title,
                "published": self.published.isoformat() if self.published else None}


@dataclass
class Theme:
    name: str
    papers: list[DigestPaper]
    text: str = ""  # with global reference numbers, [n?] for unsupported citations
    cited: list[str] = field(default_factory=list)  # paper ids
    previous: int = 0
    status: str = "new"  # new / grew / shrank / steady

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "text": self.text,
                "paper_ids": [p.paper_id for p in self.papers], "citations": self.cited,
                "previous_count": self.previous, "status": self.status}


@dataclass
class Digest:
    since: date
    until: date
    by: str
    themes: list[Theme]
    papers: list[DigestPaper]  # in reference order
    previous_since: date
    previous_until: date
    previous_total: int
    library_total: int
    topic: str | None = None
    library_range: tuple[date, date] | None = None  # published dates, for the empty message
    model_calls: int = 0
    prompt_tokens: int = 0
    max_prompt_tokens: int = 0

    @property
    def markdown(self) -> str:
        return render_markdown(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(), "until": self.until.isoformat(), "by": self.by,
            "topic": self.topic,
            "papers": [p.to_dict() for p in self.papers],
            "themes": [t.to_dict() for t in self.themes],
            "previous": {"since": self.previous_since.isoformat(),
                         "until": self.previous_until.isoformat(),
                         "papers": self.previous_total},
            "model_calls": self.model_calls,
            "markdown": self.markdown,
        }


# -- the window ---------------------------------------------------------------------


def parse_week(text: str) -> tuple[date, date]:
    """"2025-W45" -> Monday..Sunday of that ISO week."""
    match = re.fullmatch(r"(\d{4})-?W(\d{1,2})", text.strip(), re.IGNORECASE)
    if not match:
        raise UsageError(f"--week {text!r}: expected an ISO week such as 2025-W45")
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise UsageError(f"--week {text!r}: no such ISO week") from None
    return monday, monday + timedelta(days=6)


def resolve_window(week: str | None, since: date | None, until: date | None,
                   today: date | None = None) -> tuple[date, date]:
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


def select_papers(library: Library, since: date, until: date, by: str) -> list[DigestPaper]:
    """Papers in the window: by published date (undated papers count by when they
    were added) or by when they entered the library."""
    import numpy as np

    lo, hi = date_to_int(since), date_to_int(until)
    in_added = {"$and": [{"added_day": {"$gte": lo}}, {"added_day": {"$lte": hi}}]}
    where = in_added if by == "added" else {"$or": [
        {"$and": [{"published": {"$gte": lo}}, {"published": {"$lte": hi}}]}, in_added]}
    chosen: list[DigestPaper] = []
    for pid, meta, extra in library.iter_papers(("metadatas", "documents", "embeddings"),
                                                 where=where):
        published = int_to_date(meta.get("published"))
        added = int_to_date(meta.get("added_day"))
        if by == "published" and published is not None and not (since <= published <= until):
            continue  # added in the window, published outside it
        vector = np.asarray(extra["embedding"], dtype=np.float32)
        chosen.append(DigestPaper(pid, str(meta.get("title", "")), extra.get("document") or "",
                                  published, added, meta.get("url"),
                                  int(meta.get("upvotes") or 0), vector))
    chosen.sort(key=lambda p: (p.published or p.added or since, p.title))
    return chosen


def filter_topic(papers: list[DigestPaper], topic: str, embedder: Embedder, library: Library
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
        got = chunks.get(where={"paper_id": {"$in": ids[start:start + 500]}},
                         include=["metadatas", "embeddings"])
        for meta, emb in zip(got["metadatas"], got["embeddings"]):
            sim = float(np.dot(np.asarray(emb, dtype=np.float32), query))
            pid = str(meta["paper_id"])
            best[pid] = max(best.get(pid, -1.0), sim)
    keyword = content_words(topic)
    return [p for p in papers
            if best.get(p.paper_id, -1.0) >= TOPIC_MIN_SIMILARITY
            or (keyword and keyword <= content_words(p.title))]


# -- themes -------------------------------------------------------------------------


def cluster(vectors: np.ndarray, max_themes: int = MAX_THEMES) -> list[int]:
    """Theme label per paper.

    Ward linkage on the unit vectors gives themes of comparable size (average
    linkage on these embeddings splits off a couple of outliers and leaves one
    giant theme). The number of themes is the one with the best silhouette
    among those that keep themes readable: on average no more than
    `THEME_MAX_AVG` papers, and at least `THEME_MIN_AVG`.
    """
    import math

    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(vectors)
    if n <= 3:
        return [0] * n
    tree = linkage(vectors, method="ward", metric="euclidean")
    distances = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    k_lo = min(max_themes, max(2, math.ceil(n / THEME_MAX_AVG)))
    k_hi = min(max_themes, max(k_lo, n // THEME_MIN_AVG))
    best_labels, best_score = [0] * n, -2.0
    for k in range(k_lo, k_hi + 1):
        labels = fcluster(tree, t=k, criterion="maxclust")
        score = _silhouette(distances, labels)
        if score > best_score + 1e-6:
            best_labels, best_score = list(labels), score
    # Renumber by first appearance so the order is stable.
    order: dict[int, int] = {}
    return [order.setdefault(label, len(order)) for label in best_labels]


def _silhouette(distances: np.ndarray, labels: Any) -> float:
    """Mean silhouette (singletons score 0, as in scikit-learn), vectorised."""
    import numpy as np

    labels = np.asarray(labels)
    unique, index = np.unique(labels, return_inverse=True)
    if len(unique) < 2 or len(unique) >= len(labels):
        return -1.0
    onehot = np.zeros((len(labels), len(unique)))
    onehot[np.arange(len(labels)), index] = 1.0
    sizes = onehot.sum(axis=0)
    sums = distances @ onehot  # distance from each point to each cluster, summed
    own = sizes[index]
    a = sums[np.arange(len(labels)), index] / np.maximum(own - 1, 1)
    means = sums / sizes
    means[np.arange(len(labels)), index] = np.inf
    b = means.min(axis=1)
    scores = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(scores.mean())


def fallback_name(papers: list[DigestPaper]) -> str:
    """The theme's most shared title words, when the model gives no usable name."""
    counts = Counter(w for p in papers for w in content_words(p.title) if len(w) > 3)
    words = [w for w, _ in counts.most_common(3)]
    return " · ".join(words).title() if words else "Other papers"


# -- writing --------------------------------------------------------------------------


class _Writer:
    """Model calls for one digest, each prompt checked against the context window."""

    def __init__(self, client: ModelClient, context_window: int, section_tokens: int):
        self.client = client
        self.context_window = context_window
        self.section_tokens = section_tokens
        self.system = prompts.load("digest_system")
        self.calls = 0
        self.prompt_tokens = 0
        self.max_prompt_tokens = 0

    def chat(self, user: str, max_tokens: int) -> str:
        messages = [{"role": "system", "content": self.system},
                    {"role": "user", "content": user}]
        size = count_message_tokens(messages)
        if size + max_tokens > self.context_window:
            raise AssertionError(f"digest prompt of {size} tokens exceeds the window")
        self.calls += 1
        self.prompt_tokens += size
        self.max_prompt_tokens = max(self.max_prompt_tokens, size)
        return self.client.chat(messages, max_tokens=max_tokens, temperature=0.0).text

    def room(self, template: str, max_tokens: int, **fixed: str) -> int:
        """Tokens left for the variable part of a prompt."""
        empty = prompts.render(template, **fixed)
        used = count_message_tokens([{"role": "system", "content": self.system},
                                     {"role": "user", "content": empty}])
        return self.context_window - used - max_tokens - PROMPT_MARGIN_TOKENS


def _clip(text: str, tokens: int) -> str:
    enc = encoder()
    if enc is None:
        return text[: tokens * 4]
    ids = enc.encode(text, disallowed_special=())
    return text if len(ids) <= tokens else enc.decode(ids[:tokens]).rstrip() + " …"


def _fence(text: str) -> str:
    return re.sub(r"-{3,}\s*(BEGIN|END)\b", lambda m: "- " + m.group(1).lower(),
                  " ".join(text.split()), flags=re.IGNORECASE)


def _paper_block(n: int, paper: DigestPaper, tokens: int) -> str:
    when = paper.published.isoformat() if paper.published else "undated"
    return f"[{n}] {_fence(paper.title)} ({when})\n{_fence(_clip(paper.abstract, tokens))}"


def _batches(blocks: list[str], room: int) -> list[list[int]]:
    """Consecutive groups of blocks that each fit `room` tokens."""
    groups: list[list[int]] = [[]]
    used = 0
    for i, block in enumerate(blocks):
        cost = count_tokens(block) + 2
        if groups[-1] and used + cost > room:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += cost
    return groups


def write_theme(writer: _Writer, theme: Theme, numbers: dict[str, int]) -> None:
    """Name the theme, write its comparative paragraph, check its citations."""
    local = {i + 1: p for i, p in enumerate(theme.papers)}
    titles = "\n".join(f"[{n}] {_fence(p.title)}" for n, p in local.items())
    room = writer.room("digest_name", NAME_TOKENS, titles="")
    name = writer.chat(prompts.render("digest_name", titles=_clip(titles, max(room, 32))),
                       NAME_TOKENS)
    name = re.sub(r"^(theme|name)\s*:\s*", "", name.strip().splitlines()[0] if name.strip()
                  else "", flags=re.I).strip(" \"'*#.")
    theme.name = name if 2 <= len(name) <= 80 else fallback_name(theme.papers)

    fixed = {"theme": theme.name, "sentences": str(SECTION_SENTENCES)}
    room = writer.room("digest_section", writer.section_tokens, papers="", **fixed)
    per_paper = max(48, min(PAPER_TOKENS, room - 8))
    blocks = [_paper_block(n, p, per_paper) for n, p in local.items()]
    partials = []
    for group in _batches(blocks, room):
        text = "\n\n".join(blocks[i] for i in group)
        partials.append(writer.chat(prompts.render("digest_section", papers=text, **fixed),
                                    writer.section_tokens))
    if len(partials) == 1:
        text = partials[0]
    else:
        room = writer.room("digest_merge", writer.section_tokens, partials="", titles="",
                           **fixed)
        titles_part = _clip(titles, room // 3)
        budget = room - count_tokens(titles_part)
        per_partial = max(32, budget // len(partials) - 4)
        joined = "\n\n".join(_clip(p, per_partial) for p in partials)
        text = writer.chat(prompts.render("digest_merge", partials=joined, titles=titles_part,
                                          **fixed), writer.section_tokens)

    checked = check(text, [SourceText(n, p.title, p.abstract,
                                      p.published.isoformat() if p.published else "")
                           for n, p in local.items()])
    rendered = []
    for sentence in checked.sentences:
        marks = "".join(
            f"[{numbers[local[n].paper_id]}]" if sentence.supported.get(n)
            else f"[{numbers[local[n].paper_id]}?]" for n in sentence.cited)
        rendered.append(f"{sentence.text} {marks}".rstrip())
    theme.text = " ".join(rendered)
    theme.cited = [local[n].paper_id for n in checked.cited_numbers]


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
    import numpy as np

    if by not in ("published", "added"):
        raise UsageError(f"--by {by!r}: expected 'published' or 'added'")
    library.check_embedder(embedder.name, embedder.dim)
    papers = select_papers(library, since, until, by)
    if topic:
        papers = filter_topic(papers, topic, embedder, library)
    if max_papers and len(papers) > max_papers:
        papers = sorted(papers, key=lambda p: (-p.upvotes, p.published or p.added or since))
        papers = sorted(papers[:max_papers], key=lambda p: (p.published or p.added or since))
    length = (until - since).days + 1
    prev_since, prev_until = since - timedelta(days=length), since - timedelta(days=1)
    digest = Digest(since, until, by, [], [], prev_since, prev_until, 0,
                    library.counts()[0], topic)
    if not papers:
        dates = [int(m["published"]) for _, m, _ in library.iter_papers() if m.get("published")]
        if dates:
            digest.library_range = (int_to_date(min(dates)), int_to_date(max(dates)))
        return digest
    if client is None:
        from .llm import NotConfigured

        raise NotConfigured("no model endpoint configured: set OPENAI_BASE_URL")

    vectors = np.stack([p.vector for p in papers])
    labels = cluster(vectors)
    groups: dict[int, list[DigestPaper]] = {}
    for label, paper in zip(labels, papers):
        groups.setdefault(label, []).append(paper)
    themes = [Theme("", members) for members in sorted(groups.values(), key=len, reverse=True)]
    ordered = [p for t in themes for p in t.papers]
    numbers = {p.paper_id: i for i, p in enumerate(ordered, start=1)}
    digest.papers, digest.themes = ordered, themes

    previous = select_papers(library, prev_since, prev_until, by)
    if topic:
        previous = filter_topic(previous, topic, embedder, library)
    digest.previous_total = len(previous)
    _compare_with_previous(themes, previous)

    writer = _Writer(client, settings.context_window, section_tokens)
    for theme in themes:
        write_theme(writer, theme, numbers)
    digest.model_calls = writer.calls
    digest.prompt_tokens = writer.prompt_tokens
    digest.max_prompt_tokens = writer.max_prompt_tokens
    return digest


def _compare_with_previous(themes: list[Theme], previous: list[DigestPaper]) -> None:
    """Count the previous window's papers that fall into each current theme."""
    import numpy as np

    if not themes:
        return
    centroids = np.stack([np.mean([p.vector for p in t.papers], axis=0) for t in themes])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    for paper in previous:
        sims = centroids @ paper.vector
        best = int(np.argmax(sims))
        if sims[best] >= PREVIOUS_MIN_SIMILARITY:
            themes[best].previous += 1
    for theme in themes:
        now = len(theme.papers)
        theme.status = ("new" if theme.previous == 0 else "grew" if now > theme.previous
                        else "shrank" if now < theme.previous else "steady")


# -- output -----------------------------------------------------------------------------


def render_markdown(digest: Digest) -> str:
    title = f"# Paper digest: {digest.since.isoformat()} to {digest.until.isoformat()}"
    if digest.topic:
        title += f" — {digest.topic}"
    lines = [title, ""]
    if not digest.themes:
        lines.append(empty_message(digest))
        return "\n".join(lines) + "\n"
    basis = "published date" if digest.by == "published" else "date added to the library"
    lines += [f"{len(digest.papers)} papers in {len(digest.themes)} themes, by {basis}.", "",
              "## Overview", ""]
    for i, theme in enumerate(digest.themes, start=1):
        change = {"new": "new this window", "grew": f"up from {theme.previous}",
                  "shrank": f"down from {theme.previous}", "steady": "as many as before"}
        lines.append(f"{i}. **{theme.name}**: {len(theme.papers)} papers "
                     f"({change[theme.status]})")
    lines += ["", f"Compared with the previous {(digest.until - digest.since).days + 1} days "
              f"({digest.previous_since.isoformat()} to {digest.previous_until.isoformat()}, "
              f"{digest.previous_total} papers): " + _changes(digest.themes) + ".", ""]
    numbers = {p.paper_id: i for i, p in enumerate(digest.papers, start=1)}
    for i, theme in enumerate(digest.themes, start=1):
        lines += [f"## {i}. {theme.name}", "", theme.text or "_(no text)_", "",
                  "Papers: " + "; ".join(f"[{numbers[p.paper_id]}] {p.title}"
                                         for p in theme.papers), ""]
    if any("?]" in t.text for t in digest.themes):
        lines += ["_[n?] marks a citation whose abstract does not support the sentence._", ""]
    lines += ["## References", ""]
    for n, paper in enumerate(digest.papers, start=1):
        when = paper.published.isoformat() if paper.published else "undated"
        link = f" {paper.url}" if paper.url else ""
        lines.append(f"{n}. {paper.title} ({when}).{link}")
    return "\n".join(lines) + "\n"


def _changes(themes: list[Theme]) -> str:
    parts = []
    for status, label in (("new", "new themes"), ("grew", "grown"), ("shrank", "shrunk")):
        names = [t.name for t in themes if t.status == status]
        if names:
            parts.append(f"{label}: {', '.join(names)}")
    return "; ".join(parts) if parts else "no change in themes"


def empty_message(digest: Digest) -> str:
    text = (f"No papers in this window ({digest.since.isoformat()} to "
            f"{digest.until.isoformat()}, by {digest.by} date). The library has "
            f"{digest.library_total} papers")
    if digest.library_range:
        first, last = digest.library_range
        text += f", published {first.isoformat()} to {last.isoformat()}"
    return text + "."


def render_html(markdown: str, title: str) -> str:
    """The same content as the Markdown, as a self-contained page for e-mail."""
    import html

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").render(markdown)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:Georgia,serif;max-width:46em;margin:2em auto;line-height:1.5;"
        "color:#222}h1,h2{font-family:Helvetica,Arial,sans-serif}li{margin:.2em 0}</style>"
        f"</head><body>\n{body}</body></html>\n"
    )


def default_output(settings: Settings, digest: Digest, fmt: str) -> Path:
    ext = {"md": "md", "html": "html", "json": "json"}[fmt]
    name = f"digest-{digest.since.isoformat()}_{digest.until.isoformat()}"
    if digest.topic:
        name += "-" + re.sub(r"[^a-z0-9]+", "-", digest.topic.lower()).strip("-")[:40]
    return settings.home / "digests" / f"{name}.{ext}"


def digest_markdown(settings: Settings, retriever: Any, client: ModelClient | None,
                    since: date, until: date, max_papers: int | None = None) -> str:
    """A digest as Markdown, for the chat's /digest."""
    digest = build_digest(settings, retriever.library, retriever.embedder, client, since, until,
                          max_papers=max_papers)
    return digest.markdown
