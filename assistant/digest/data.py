"""The records a digest is made of: papers of the window, themes, the digest itself.

Kept apart from the steps so that every step (select, themes, naming, table,
prose, render, score) shares one vocabulary and none imports another's
internals. `to_dict` is the `--json` / `--format json` shape; `assistant eval
digest` reads it back, so it carries everything needed to re-check a digest
without the library: abstracts, table cells with their offsets, kept and
removed prose sentences, coherence figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

ROLES = ("problem", "approach", "result")


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

    @property
    def day(self) -> date | None:
        return self.published or self.added

    def to_dict(self) -> dict[str, Any]:
        return {
            "paper_id": self.paper_id,
            "title": self.title,
            "published": self.published.isoformat() if self.published else None,
            "url": self.url,
            "upvotes": self.upvotes,
            "abstract": self.abstract,
        }


@dataclass
class Cell:
    """A verbatim piece of an abstract: `abstract[start:end] == text`.

    `lead`/`tail` say whether an ellipsis is shown before/after it (the cell was
    trimmed inside its sentence); `sentence` is the span of the whole sentence.
    """

    text: str
    start: int
    end: int
    sentence: tuple[int, int]
    lead: bool = False
    tail: bool = False

    @property
    def shown(self) -> str:
        return ("… " if self.lead else "") + self.text + (" …" if self.tail else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "shown": self.shown,
            "start": self.start,
            "end": self.end,
            "sentence_start": self.sentence[0],
            "sentence_end": self.sentence[1],
        }


@dataclass
class Row:
    """One paper's row of its theme's comparison table; a role may have no cell."""

    paper: DigestPaper
    cells: dict[str, Cell | None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "paper_id": self.paper.paper_id,
            **{role: (c.to_dict() if (c := self.cells.get(role)) else None) for role in ROLES},
        }


@dataclass
class ProseSentence:
    """A sentence the model wrote, after checking: shown only when `reason` is empty."""

    text: str
    cited: list[str]  # paper ids, the supported citations
    reason: str = ""  # why it was removed; "" = kept
    support: float = 0.0

    def with_marks(self, numbers: dict[str, int], mark: Any = None) -> str:
        """The sentence with its reference marks before its final stop ("... [3][5].").

        A mark after the stop would read as belonging to the next sentence (and
        `citations.check` would attach it there)."""
        marks = "".join((mark or (lambda n: f"[{n}]"))(numbers[pid]) for pid in self.cited)
        body, stop = self.text, ""
        if body[-1:] in ".!?":
            body, stop = body[:-1].rstrip(), body[-1]
        return f"{body} {marks}{stop}" if marks else self.text

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "citations": self.cited,
            "kept": not self.reason,
            "reason": self.reason or None,
            "support": round(self.support, 3),
        }


@dataclass
class Theme:
    name: str
    papers: list[DigestPaper]
    key_phrases: list[str] = field(default_factory=list)
    model_name: str = ""  # what the model proposed, valid or not
    name_source: str = "key phrases"  # or "model"
    rows: list[Row] = field(default_factory=list)
    prose: list[ProseSentence] = field(default_factory=list)
    silhouette: float | None = None
    previous: int = 0
    status: str = "new"  # new / grew / shrank / steady
    other: bool = False  # the "Other papers" group: no name, no prose, no silhouette
    raw_prose: str = ""  # the model's reply before checking, for --json
    rule: str = "members"  # how a paper is assigned to it: "members" or "centre" (themes.assign)
    centre: Any = None  # unit mean vector of its papers
    area: str = ""  # the area it belongs to in a large window
    table_ids: list[str] = field(default_factory=list)  # its representative papers (the table)

    @property
    def kept(self) -> list[ProseSentence]:
        return [s for s in self.prose if not s.reason]

    @property
    def cited(self) -> list[str]:
        seen: dict[str, None] = {}
        for sentence in self.kept:
            for pid in sentence.cited:
                seen.setdefault(pid, None)
        return list(seen)

    def text(self, numbers: dict[str, int]) -> str:
        """The shown paragraph: kept sentences with their reference numbers."""
        return " ".join(s.with_marks(numbers) for s in self.kept)

    def to_dict(self, numbers: dict[str, int]) -> dict[str, Any]:
        return {
            "name": self.name,
            "other": self.other,
            "name_source": self.name_source,
            "key_phrases": self.key_phrases,
            "model_name": self.model_name or None,
            "paper_ids": [p.paper_id for p in self.papers],
            "silhouette": None if self.silhouette is None else round(self.silhouette, 4),
            "table": [r.to_dict() for r in self.rows],
            "prose": [s.to_dict() for s in self.prose],
            "prose_raw": self.raw_prose or None,
            "text": self.text(numbers),
            "citations": self.cited,
            "previous_count": self.previous,
            "status": self.status,
            "area": self.area or None,
        }


@dataclass
class Area:
    """A group of themes in a large window, named like a theme from its own key phrases."""

    name: str
    themes: list[Theme]
    key_phrases: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(t.papers) for t in self.themes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key_phrases": self.key_phrases,
            "themes": [t.name for t in self.themes],
            "papers": self.size,
        }


@dataclass
class Pick:
    """A paper of the window picked for the reader, and why (`interests.rank`)."""

    paper: DigestPaper
    reasons: list[str]
    score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"paper_id": self.paper.paper_id, "reasons": self.reasons, "score": self.score}


@dataclass
class Digest:
    since: date
    until: date
    by: str
    themes: list[Theme]  # the named themes, largest first, then "Other papers" if any
    papers: list[DigestPaper]  # in reference order
    previous_since: date
    previous_until: date
    previous_total: int
    library_total: int
    topic: str | None = None
    library_range: tuple[date, date] | None = None  # published dates, for the empty message
    silhouette: float | None = None  # of the window's themed papers
    model: str | None = None
    model_calls: int = 0
    prompt_tokens: int = 0
    max_prompt_tokens: int = 0
    areas: list[Area] = field(default_factory=list)  # empty in a small window
    previous_other: int = 0  # previous-window papers in none of this window's themes
    for_you: list[Pick] = field(default_factory=list)
    for_you_basis: str = ""  # "interests" or "no interests": upvotes and centrality

    @property
    def named(self) -> list[Theme]:
        return [t for t in self.themes if not t.other]

    def number(self, paper_id: str) -> int:
        """The paper's reference number (1-based)."""
        return self._numbers()[paper_id]

    def _numbers(self) -> dict[str, int]:
        return {p.paper_id: i for i, p in enumerate(self.papers, start=1)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "by": self.by,
            "topic": self.topic,
            "model": self.model,
            "papers": [p.to_dict() for p in self.papers],
            "themes": [t.to_dict(self._numbers()) for t in self.themes],
            "silhouette": None if self.silhouette is None else round(self.silhouette, 4),
            "previous": {
                "since": self.previous_since.isoformat(),
                "until": self.previous_until.isoformat(),
                "papers": self.previous_total,
                "in_themes": self.previous_total - self.previous_other,
                "other": self.previous_other,
            },
            "areas": [a.to_dict() for a in self.areas],
            "previous_other": self.previous_other,
            "for_you": [p.to_dict() for p in self.for_you],
            "for_you_basis": self.for_you_basis,
            "model_calls": self.model_calls,
            "prompt_tokens": self.prompt_tokens,
            "max_prompt_tokens": self.max_prompt_tokens,
        }
