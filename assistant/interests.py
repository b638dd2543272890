"""What the reader follows, and the week's papers ranked by it ("For you").

`ASSISTANT_HOME/interests.toml` (all keys optional)::

    keywords = ["kv cache", "speculative decoding"]   # phrases in a title or abstract
    authors  = ["Tri Dao"]                             # exact names, case-blind
    liked    = ["2511.12345"]                          # arXiv ids of papers you liked
    exclude  = ["medical"]                             # a paper mentioning one is never picked

A pick says why it was picked ("matches 'kv cache'", "by Tri Dao", "close to
<a paper you liked>"), so the reader can tell a good match from a lucky one.
Without the file the week's most upvoted (Hugging Face) and most central
papers stand in. Only arithmetic on stored data: no model call, no network.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    from .digest.data import Digest, DigestPaper, Pick
    from .store import Library

FILE_NAME = "interests.toml"
FOR_YOU = 8  # picks shown
LIKED_MIN = 0.55  # cosine similarity (MiniLM) to a liked paper that counts as "close to"
KEYWORD_TITLE, KEYWORD_ABSTRACT, AUTHOR, LIKED = 3.0, 1.0, 4.0, 3.0
FALLBACK_UPVOTED = 3


@dataclass
class Interests:
    keywords: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    liked: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    path: Path | None = None

    @property
    def empty(self) -> bool:
        return not (self.keywords or self.authors or self.liked)


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib


def interests_path(home: Path) -> Path:
    return Path(home) / FILE_NAME


def load_interests(home: Path) -> Interests | None:
    """The reader's interests, or None when there is no file; a malformed file is
    a `UsageError` naming the file, the line and the field."""
    path = interests_path(home)
    if not path.exists():
        return None
    toml = _toml()
    try:
        data = toml.loads(path.read_text(encoding="utf-8"))
    except toml.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it ({exc})") from None
    found = Interests(path=path)
    for key in ("keywords", "authors", "liked", "exclude"):
        value = data.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            line = _line_of(path, key)
            raise UsageError(f"{path}{line}: field {key!r} must be a list of strings")
        setattr(found, key, [v.strip() for v in value if v.strip()])
    unknown = sorted(set(data) - {"keywords", "authors", "liked", "exclude"})
    if unknown:
        raise UsageError(
            f"{path}{_line_of(path, unknown[0])}: unknown field {unknown[0]!r} "
            "(expected keywords, authors, liked, exclude)"
        )
    return found


def _line_of(path: Path, key: str) -> str:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return f", line {n}"
    return ""


def add_liked(home: Path, arxiv_id: str) -> bool:
    """Add a paper to the liked list, keeping the rest of the file as written;
    False when it was already there."""
    path = interests_path(home)
    current = load_interests(home) or Interests()
    if arxiv_id in current.liked:
        return False
    liked = ", ".join(f'"{x}"' for x in [*current.liked, arxiv_id])
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    pattern = re.compile(r"^liked\s*=\s*\[[^\]]*\]", re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: f"liked = [{liked}]", text, count=1)
    else:
        text = (text.rstrip("\n") + "\n" if text.strip() else "") + f"liked = [{liked}]\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def _phrase(phrase: str) -> re.Pattern[str]:
    """A phrase as a case-blind whole-word pattern ("kv cache" matches "KV-cache")."""
    words = [re.escape(w) for w in re.split(r"[\s\-]+", phrase.strip()) if w]
    return re.compile(r"(?<![\w])" + r"[\s\-]+".join(words) + r"s?(?![\w])", re.IGNORECASE)


def short(title: str, limit: int = 60) -> str:
    head, sep, _ = title.partition(":")
    if sep and 1 <= len(head.split()) <= 4:
        return head.strip()
    return title if len(title) <= limit else title[: title.rfind(" ", 0, limit)] + " …"


def score_papers(
    papers: list[DigestPaper],
    interests: Interests,
    authors: dict[str, list[str]],
    liked: dict[str, tuple[str, Any]],
    top: int = FOR_YOU,
) -> list[Pick]:
    """The best matches, best first, each with its reasons.

    `authors` maps paper id to author names; `liked` maps a liked paper's id to
    its (title, unit vector). A liked paper itself is never picked again.
    """
    import numpy as np

    from .digest.data import Pick

    keywords = [(k, _phrase(k)) for k in interests.keywords]
    excluded = [_phrase(k) for k in interests.exclude]
    wanted_authors = {a.casefold(): a for a in interests.authors}
    liked_items = [
        (pid, title, np.asarray(v, dtype=np.float64) / max(np.linalg.norm(v), 1e-12))
        for pid, (title, v) in liked.items()
        if v is not None
    ]
    picks = []
    for paper in papers:
        if paper.paper_id in liked:
            continue
        text = f"{paper.title}\n{paper.abstract}"
        if any(p.search(text) for p in excluded):
            continue
        score, reasons = 0.0, []
        for keyword, pattern in keywords:
            if pattern.search(paper.title):
                score += KEYWORD_TITLE
                reasons.append(f"matches '{keyword}'")
            elif pattern.search(paper.abstract):
                score += KEYWORD_ABSTRACT
                reasons.append(f"matches '{keyword}'")
        for name in authors.get(paper.paper_id, []):
            if name.casefold() in wanted_authors:
                score += AUTHOR
                reasons.append(f"by {wanted_authors[name.casefold()]}")
        if liked_items and paper.vector is not None:
            v = np.asarray(paper.vector, dtype=np.float64)
            v = v / max(np.linalg.norm(v), 1e-12)
            sim, title = max((float(lv @ v), t) for _, t, lv in liked_items)
            if sim >= LIKED_MIN:
                score += LIKED * sim
                reasons.append(f"close to '{short(title)}' (similarity {sim:.2f})")
        if score > 0:
            picks.append(Pick(paper, reasons, round(score, 3)))
    picks.sort(key=lambda p: -p.score)
    return picks[:top]


def fallback_picks(digest: Digest, top: int = FOR_YOU) -> list[Pick]:
    """Without interests: the most upvoted papers, then the most central paper of
    each of the largest themes."""
    from .digest.data import Pick

    picks: list[Pick] = []
    upvoted = sorted((p for p in digest.papers if p.upvotes > 0), key=lambda p: -p.upvotes)
    for paper in upvoted[:FALLBACK_UPVOTED]:
        picks.append(Pick(paper, [f"most upvoted in this window ({paper.upvotes})"], paper.upvotes))
    seen = {p.paper.paper_id for p in picks}
    for theme in sorted(digest.named, key=lambda t: -len(t.papers)):
        if len(picks) >= top:
            break
        paper = theme.papers[0]  # the themes' papers come most central first
        if paper.paper_id not in seen:
            seen.add(paper.paper_id)
            picks.append(
                Pick(paper, [f"most central paper of '{theme.name}' ({len(theme.papers)})"])
            )
    return picks


def rank(
    digest: Digest, interests: Interests | None, library: Library | None
) -> tuple[list[Pick], str]:
    """The "For you" picks of a digest and their basis ("interests" or "no interests")."""
    if interests is None or interests.empty:
        return fallback_picks(digest), "no interests"
    authors: dict[str, list[str]] = {}
    liked: dict[str, tuple[str, Any]] = {}
    if library is not None:
        from .store import decode_list

        if interests.authors:
            metas = library.get_papers([p.paper_id for p in digest.papers])
            authors = {pid: decode_list(m.get("authors")) for pid, m in metas.items()}
        if interests.liked:
            got = library.papers().get(
                ids=list(interests.liked), include=["metadatas", "embeddings"]
            )
            for pid, meta, emb in zip(got["ids"], got["metadatas"], got["embeddings"]):
                liked[pid] = (str((meta or {}).get("title", pid)), emb)
    return score_papers(digest.papers, interests, authors, liked), "interests"
