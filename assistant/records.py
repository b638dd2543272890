"""The paper record every reader produces, and how a paper gets its identity.

Kept free of heavy imports: the CLI, the readers and the tests all use it, and
`assistant --help` must stay fast.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

# The record errors live in the one error tree; imported here, where readers used to find them.
from .errors import RecordError as RecordError
from .errors import RecordTooLarge as RecordTooLarge

_ARXIV_NEW = re.compile(r"(?<![\d.])(\d{4}\.\d{4,5})(?:v\d+)?(?![\d])")
_ARXIV_OLD = re.compile(r"\b([a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?\b")


def normalise_title(title: str) -> str:
    """Fold a title to the form used for identity.

    Two captures of one paper differ in case, spacing, dashes and LaTeX
    spacing, so identity ignores all of those: NFKC, lower case, only letters
    and digits kept.
    """
    folded = unicodedata.normalize("NFKC", title).casefold()
    return re.sub(r"[\W_]+", "", folded)


def title_key(title: str) -> str:
    """The hash-based id of a paper whose arXiv id is unknown."""
    digest = hashlib.sha1(normalise_title(title).encode("utf-8")).hexdigest()
    return f"title:{digest[:16]}"


def parse_arxiv_id(text: str | None) -> str | None:
    """Extract a bare arXiv id (no version) from an id, an abs/pdf URL or a DOI."""
    if not text:
        return None
    match = _ARXIV_NEW.search(text)
    if match:
        return match.group(1)
    match = _ARXIV_OLD.search(text)
    return match.group(1) if match else None


@dataclass
class Paper:
    """One paper as read from one place in one file.

    `line` is 1-based and points at the paper's title (or record) so that
    errors and the ingest report can name it.
    """

    title: str
    abstract: str
    source: str
    line: int
    arxiv_id: str | None = None
    url: str | None = None
    authors: list[str] = field(default_factory=list)
    author_count: int | None = None
    organisation: str | None = None
    published: date | None = None
    year_inferred: bool = False
    upvotes: int | None = None
    primary_class: str | None = None  # arXiv's primary category ("cs.CL"), for BibTeX

    @property
    def paper_id(self) -> str:
        """arXiv id when known, else a hash of the normalised title."""
        return self.arxiv_id or title_key(self.title)

    @property
    def title_id(self) -> str:
        return title_key(self.title)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["published"] = self.published.isoformat() if self.published else None
        data["paper_id"] = self.paper_id
        return data
