"""`assistant eval digest`: a digest's JSON scored by fixed rules, no model involved.

The same rules the digest is written under (`naming.valid_name`,
`citations.check`/`support`, `check.invented_titles`, `table.has_figure`),
applied again to what the digest shows, so two models' digests of one window
can be compared, and so can a digest written before these rules existed (its
JSON lacks abstracts and vectors: they are read from the library).

Figures:
- names_valid: share of named themes whose name passes the naming rule;
- prose_supported: share of shown prose sentences with a citation, every cited
  abstract supporting it; `unsupported_marks` counts `[n?]` shown;
- invented_titles: paper names in the prose that match no paper of the window;
- result_cells: of the papers whose abstract states a figure, the share whose
  table row has a result cell holding one;
- rows_once: every paper of the window in exactly one theme, and in at most
  one table row (a large window's tables hold each theme's representatives;
  the rest are listed one line each);
- other_share: share of the papers under "Other papers" (target at most 0.15);
- names_distinct: no name (theme or area) equal to or inside another, word-wise;
- trends_add_up: the previous window's papers counted per theme, plus those in
  no theme, equal the previous window's total;
- silhouette / far_papers: coherence of the themes (mean silhouette of the
  themed papers; share of themed papers far from their theme's centre).
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING, Any

from ..citations import SUPPORT_MIN, check
from ..text import has_figure
from .check import invented_titles, source_for
from .data import DigestPaper
from .naming import valid_name
from .themes import FAR_SIMILARITY, centre_similarities, silhouette_samples

if TYPE_CHECKING:
    from ..store import Library

TARGETS = {
    "names_valid": 1.0,
    "prose_supported": 0.95,
    "invented_titles": 0,
    "unsupported_marks": 0,
    "result_cells": 1.0,
    "rows_once": True,
    "other_share_ok": True,
    "names_distinct": True,
    "trends_add_up": True,
}
OTHER_SHARE_MAX = 0.15


def _papers(data: dict[str, Any], library: Library | None) -> list[DigestPaper]:
    rows = data.get("papers") or []
    missing = [r["paper_id"] for r in rows if r.get("abstract") is None]
    stored: dict[str, tuple[str, Any]] = {}
    if library is not None:
        ids = [r["paper_id"] for r in rows]
        for start in range(0, len(ids), 500):
            got = library.papers().get(
                ids=ids[start : start + 500], include=["documents", "embeddings"]
            )
            for pid, doc, emb in zip(got["ids"], got["documents"], got["embeddings"]):
                stored[pid] = (doc or "", emb)
    out = []
    for row in rows:
        pid = row["paper_id"]
        abstract = row.get("abstract")
        if abstract is None:
            abstract = stored.get(pid, ("", None))[0]
        published = row.get("published")
        out.append(
            DigestPaper(
                pid,
                row.get("title", ""),
                abstract,
                date.fromisoformat(published) if published else None,
                None,
                row.get("url"),
                int(row.get("upvotes") or 0),
                stored.get(pid, ("", None))[1],
            )
        )
    if missing and library is None:
        raise ValueError(f"{len(missing)} papers carry no abstract and no library was given")
    return out


def score_digest(data: dict[str, Any], library: Library | None = None) -> dict[str, Any]:
    """The figures above for one digest JSON (`assistant digest --format json`)."""
    import numpy as np

    papers = _papers(data, library)
    by_id = {p.paper_id: p for p in papers}
    titles = [p.title for p in papers]
    sources = [source_for(n, p) for n, p in enumerate(papers, start=1)]
    named = [t for t in data.get("themes", []) if not t.get("other")]

    names = []
    for theme in named:
        ok, reason = valid_name(theme["name"], [by_id[i] for i in theme["paper_ids"]])
        names.append({"name": theme["name"], "valid": ok, "reason": reason or None})

    shown, supported, invented, marks = 0, 0, [], 0
    removed = sum(1 for t in named for s in t.get("prose", []) if not s.get("kept", True))
    for theme in named:
        text = theme.get("text") or ""
        marks += len(re.findall(r"\[\d+\?\]", text))
        for sentence in check(re.sub(r"\[(\d+)\?\]", r"[\1]", text), sources).sentences:
            shown += 1
            verdicts = [sentence.supported.get(n, False) for n in sentence.cited]
            supported += bool(verdicts) and all(verdicts)
            invented += invented_titles(sentence.text, titles)

    rows: dict[str, int] = {}
    placed: dict[str, int] = {}
    with_figure, with_result = 0, 0
    for theme in data.get("themes", []):
        for row in theme.get("table") or []:
            rows[row["paper_id"]] = rows.get(row["paper_id"], 0) + 1
        for pid in theme.get("paper_ids") or []:
            placed[pid] = placed.get(pid, 0) + 1
    cells = {row["paper_id"]: row for t in data.get("themes", []) for row in t.get("table") or []}
    offsets_ok = True
    for paper in papers:
        row = cells.get(paper.paper_id)
        for role in ("problem", "approach", "result"):
            cell = (row or {}).get(role)
            if cell and paper.abstract[cell["start"] : cell["end"]] != cell["text"]:
                offsets_ok = False
        if row is not None and has_figure(paper.abstract):
            with_figure += 1
            result = (row or {}).get("result")
            with_result += bool(result and has_figure(result["text"]))

    silhouette, far = data.get("silhouette"), None
    if papers and all(p.vector is not None for p in papers):
        vectors = np.stack([np.asarray(p.vector, dtype=np.float64) for p in papers])
        index = {p.paper_id: i for i, p in enumerate(papers)}
        members = [(index[pid], k) for k, t in enumerate(named) for pid in t["paper_ids"]]
        if len({k for _, k in members}) >= 2:
            sub = vectors[[i for i, _ in members]]
            labels = [k for _, k in members]
            distances = np.clip(1.0 - sub @ sub.T, 0.0, 2.0)
            silhouette = float(silhouette_samples(distances, labels).mean())
            own = centre_similarities(sub, labels)[np.arange(len(labels)), labels]
            far = float((own < FAR_SIMILARITY).mean())

    from .naming import _inside

    others = sum(len(t["paper_ids"]) for t in data.get("themes", []) if t.get("other"))
    all_names = [t["name"].lower() for t in named] + [
        a["name"].lower() for a in data.get("areas") or []
    ]
    clashes = [
        (a, b)
        for i, a in enumerate(all_names)
        for b in all_names[i + 1 :]
        if _inside(a, b) or _inside(b, a)
    ]
    previous = data.get("previous") or {}
    counted = sum(int(t.get("previous_count") or 0) for t in named)
    add_up = "other" not in previous or counted + int(previous["other"]) == int(
        previous.get("papers") or 0
    )
    return {
        "themes": len(named),
        "areas": len(data.get("areas") or []),
        "other_share": round(others / len(papers), 4) if papers else None,
        "other_share_ok": (others / len(papers) <= OTHER_SHARE_MAX) if papers else None,
        "names_distinct": not clashes,
        "name_clashes": [f"{a} / {b}" for a, b in clashes],
        "trends_add_up": add_up,
        "previous_papers": previous.get("papers"),
        "previous_in_themes": counted,
        "papers": len(papers),
        "names_valid": sum(n["valid"] for n in names) / len(names) if names else None,
        "prose_sentences": shown,
        "prose_supported": supported / shown if shown else None,
        "prose_removed": removed,
        "unsupported_marks": marks,
        "invented_titles": len(invented),
        "result_cells": with_result / with_figure if with_figure else None,
        "papers_with_figure": with_figure,
        "rows_once": bool(papers)
        and all(placed.get(p.paper_id) == 1 for p in papers)
        and len(placed) == len(papers)
        and all(c == 1 for c in rows.values()),
        "cell_offsets_exact": offsets_ok,
        "silhouette": None if silhouette is None else round(float(silhouette), 4),
        "far_papers": None if far is None else round(far, 4),
        "support_min": SUPPORT_MIN,
        "names": names,
        "invented": invented,
    }
