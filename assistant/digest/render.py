"""Step 6: the digest as Markdown, as one standalone HTML page, and the output path.

Markdown uses real tables. Titles, table cells and model text are escaped
for it (a title may hold `<script>` or `|`). The HTML page is built directly
from the digest, not by converting Markdown, so no raw HTML can pass through:
every string from a paper or a model goes through `html.escape`, links must be
http(s), and a Content-Security-Policy that forbids scripts backs that up.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data import ROLES, Digest, ProseSentence, Theme

if TYPE_CHECKING:
    from ..settings import Settings

HEADINGS = {"problem": "Problem", "approach": "Approach", "result": "Key result"}
CITED_IN_TREND = 5  # papers cited per theme in the trends paragraph
TOP_UPVOTED = 5
SHORT_TITLE_CHARS = 70
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>])")


def md(text: str) -> str:
    """Text that Markdown shows as itself (no HTML, links or emphasis from it)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def md_cell(text: str) -> str:
    return md(text).replace("|", "\\|")


def short_title(title: str) -> str:
    """ "Mamba: Linear-Time ..." -> "Mamba"; else the title cut at a word boundary."""
    head, sep, _ = title.partition(":")
    if sep and 1 <= len(head.split()) <= 4:
        return head.strip()
    if len(title) <= SHORT_TITLE_CHARS:
        return title
    cut = title.rfind(" ", 0, SHORT_TITLE_CHARS)
    return title[: cut if cut > 0 else SHORT_TITLE_CHARS].rstrip(" ,;:-") + " …"


def papers_count(n: int) -> str:
    return f"{n} paper" if n == 1 else f"{n} papers"


def _when(digest: Digest) -> str:
    return f"{digest.since.isoformat()} to {digest.until.isoformat()}"


def page_title(digest: Digest) -> str:
    title = f"Paper digest: {_when(digest)}"
    return title + (f" — {digest.topic}" if digest.topic else "")


def summary_line(digest: Digest) -> str:
    basis = "published date" if digest.by == "published" else "date added to the library"
    named = digest.named
    others = sum(len(t.papers) for t in digest.themes if t.other)
    text = f"{len(digest.papers)} papers by {basis}: {len(named)} themes"
    return text + (f" and {others} other papers." if others else ".")


def _change(theme: Theme) -> str:
    return {
        "new": "new this window",
        "grew": f"up from {theme.previous}",
        "shrank": f"down from {theme.previous}",
        "steady": "as many as before",
    }[theme.status]


def _cites(digest: Digest, theme: Theme, limit: int = CITED_IN_TREND) -> str:
    numbers = [digest.number(p.paper_id) for p in theme.papers]
    marks = "".join(f"[{n}]" for n in numbers[:limit])
    return marks + ("…" if len(numbers) > limit else "")


def trend_parts(digest: Digest) -> tuple[str, list[tuple[str, str, Theme]]]:
    """The trend sentence's opening and (label, detail, theme) for each changed theme."""
    days = (digest.until - digest.since).days + 1
    opening = (
        f"Compared with the previous {days} days ({digest.previous_since.isoformat()} "
        f"to {digest.previous_until.isoformat()}, {digest.previous_total} papers)"
    )
    parts = []
    for theme in digest.named:
        if theme.status == "new":
            parts.append(("new", papers_count(len(theme.papers)), theme))
        elif theme.status in ("grew", "shrank"):
            parts.append(
                (theme.status, f"{papers_count(len(theme.papers))}, {_change(theme)}", theme)
            )
    return opening, parts


def upvoted(digest: Digest) -> list:
    ranked = sorted(
        (p for p in digest.papers if p.upvotes > 0),
        key=lambda p: (-p.upvotes, digest.number(p.paper_id)),
    )
    return ranked[:TOP_UPVOTED]


def digest_json(digest: Digest) -> dict[str, Any]:
    """The `--json` / `--format json` object: the digest's records and its Markdown.

    Here, not on `Digest`, so that the records module imports none of the steps.
    """
    return {**digest.to_dict(), "markdown": render_markdown(digest)}


def render_markdown(digest: Digest) -> str:
    lines = [f"# {md(page_title(digest))}", ""]
    if not digest.themes:
        lines.append(empty_message(digest))
        return "\n".join(lines) + "\n"
    lines += [summary_line(digest), "", "## Overview", ""]
    for i, theme in enumerate(digest.themes, start=1):
        if theme.other:
            lines.append(
                f"{i}. Other papers: {papers_count(len(theme.papers))}, each far from every theme"
            )
        else:
            lines.append(
                f"{i}. **{md(theme.name)}**: {papers_count(len(theme.papers))} ({_change(theme)})"
            )
    lines += ["", "## Trends", "", _trend_markdown(digest), ""]
    top = upvoted(digest)
    if top:
        lines += [
            "Most upvoted: "
            + "; ".join(
                f"[{digest.number(p.paper_id)}] {md(short_title(p.title))} ({p.upvotes})"
                for p in top
            )
            + ".",
            "",
        ]
    for i, theme in enumerate(digest.themes, start=1):
        lines += _theme_markdown(digest, i, theme)
    lines += ["## References", ""]
    for n, paper in enumerate(digest.papers, start=1):
        when = paper.published.isoformat() if paper.published else "undated"
        link = f" <{paper.url}>" if _safe_url(paper.url) else ""
        lines.append(f"{n}. {md(paper.title)} ({when}).{link}")
    return "\n".join(lines) + "\n"


def _trend_groups(digest: Digest) -> list[tuple[str, list[tuple[str, Theme]]]]:
    opening, parts = trend_parts(digest)
    groups = []
    for label in ("new", "grew", "shrank"):
        members = [(detail, t) for lab, detail, t in parts if lab == label]
        if members:
            groups.append((label, members))
    return groups


TREND_LABELS = {"new": "new themes", "grew": "grew", "shrank": "shrank"}


def _trend_markdown(digest: Digest) -> str:
    opening, _ = trend_parts(digest)
    if digest.previous_total == 0:
        return opening + ": the library has no papers then, so every theme is new."
    groups = _trend_groups(digest)
    if not groups:
        return opening + ": every theme is about as large as before."
    return (
        opening
        + ": "
        + "; ".join(
            f"{TREND_LABELS[label]}: "
            + ", ".join(f"**{md(t.name)}** ({detail}) {_cites(digest, t)}" for detail, t in members)
            for label, members in groups
        )
        + "."
    )


def _theme_markdown(digest: Digest, i: int, theme: Theme) -> list[str]:
    numbers = digest._numbers()
    if theme.other:
        lines = [
            f"## {i}. Other papers",
            "",
            "Papers far from every theme, each with its own row.",
            "",
        ]
    else:
        lines = [f"## {i}. {md(theme.name)}", ""]
        notes = [f"key phrases: {md(', '.join(theme.key_phrases[:4]))}"]
        if theme.silhouette is not None:
            notes.append(f"coherence {theme.silhouette:.2f}")
        lines += ["_" + "; ".join(notes) + "_", ""]
        kept = theme.kept
        if kept:
            lines += [" ".join(_md_sentence(s, numbers) for s in kept), ""]
    lines += ["| Paper | " + " | ".join(HEADINGS[r] for r in ROLES) + " |", "|---|---|---|---|"]
    for row in theme.rows:
        n = numbers[row.paper.paper_id]
        cells = [md_cell(c.shown) if (c := row.cells.get(r)) else "—" for r in ROLES]
        lines.append(
            f"| [{n}] {md_cell(short_title(row.paper.title))} | " + " | ".join(cells) + " |"
        )
    return lines + [""]


def _md_sentence(sentence: ProseSentence, numbers: dict[str, int]) -> str:
    escaped = ProseSentence(md(sentence.text), sentence.cited)
    return escaped.with_marks(numbers)


def empty_message(digest: Digest) -> str:
    text = (
        f"No papers in this window ({_when(digest)}, by {digest.by} date). The library "
        f"has {digest.library_total} papers"
    )
    if digest.library_range:
        first, last = digest.library_range
        text += f", published {first.isoformat()} to {last.isoformat()}"
    return text + "."


# -- HTML ----------------------------------------------------------------------------

STYLE = """
body{font-family:Georgia,'Times New Roman',serif;max-width:62em;margin:2em auto;padding:0 1em;
line-height:1.5;color:#222;background:#fff}
h1,h2{font-family:Helvetica,Arial,sans-serif;line-height:1.25}
h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.note{color:#666;font-style:italic;margin:.2em 0 .8em}
table{border-collapse:collapse;width:100%;font-size:.92em;margin:.8em 0 1.2em}
th,td{border:1px solid #ccc;padding:.35em .5em;vertical-align:top;text-align:left}
th{background:#f3f3f3;font-family:Helvetica,Arial,sans-serif}
td.paper{width:18%}
a{color:#1a4f8b}
li{margin:.2em 0}
""".strip()
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _e(text: str) -> str:
    return html.escape(" ".join(str(text).split()), quote=True)


def _safe_url(url: str | None) -> bool:
    return bool(url) and re.match(r"https?://[^\s<>\"']+$", url or "") is not None


def _ref(n: int) -> str:
    return f'<a href="#ref-{n}">[{n}]</a>'


def render_html(digest: Digest) -> str:
    """The digest as one standalone page (inline CSS, no scripts, every string escaped)."""
    title = page_title(digest)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if not digest.themes:
        out += [f"<p>{_e(empty_message(digest))}</p>", "</body></html>"]
        return "\n".join(out) + "\n"
    numbers = digest._numbers()
    out += [f"<p>{_e(summary_line(digest))}</p>", "<h2>Overview</h2>", "<ol>"]
    for theme in digest.themes:
        if theme.other:
            out.append(
                f"<li>Other papers: {papers_count(len(theme.papers))}, each far from "
                "every theme</li>"
            )
        else:
            out.append(
                f"<li><strong>{_e(theme.name)}</strong>: {papers_count(len(theme.papers))} "
                f"({_e(_change(theme))})</li>"
            )
    out += ["</ol>", "<h2>Trends</h2>", f"<p>{_trend_html(digest)}</p>"]
    top = upvoted(digest)
    if top:
        out.append(
            "<p>Most upvoted: "
            + "; ".join(
                f"{_ref(numbers[p.paper_id])} {_e(short_title(p.title))} ({p.upvotes})" for p in top
            )
            + ".</p>"
        )
    for i, theme in enumerate(digest.themes, start=1):
        out += _theme_html(numbers, i, theme)
    out += ["<h2>References</h2>", "<ol>"]
    for n, paper in enumerate(digest.papers, start=1):
        when = paper.published.isoformat() if paper.published else "undated"
        link = (
            f' <a href="{html.escape(paper.url or "", quote=True)}">{_e(paper.url or "")}</a>'
            if _safe_url(paper.url)
            else ""
        )
        out.append(f'<li id="ref-{n}">{_e(paper.title)} ({when}).{link}</li>')
    out += ["</ol>", "</body></html>"]
    return "\n".join(out) + "\n"


def _html_sentence(sentence: ProseSentence, numbers: dict[str, int]) -> str:
    escaped = ProseSentence(_e(sentence.text), sentence.cited)
    return escaped.with_marks(numbers, _ref)


def _trend_html(digest: Digest) -> str:
    opening, _ = trend_parts(digest)
    if digest.previous_total == 0:
        return _e(opening + ": the library has no papers then, so every theme is new.")
    groups = _trend_groups(digest)
    if not groups:
        return _e(opening + ": every theme is about as large as before.")
    numbers = digest._numbers()

    def cites(theme: Theme) -> str:
        refs = [numbers[p.paper_id] for p in theme.papers]
        marks = "".join(_ref(n) for n in refs[:CITED_IN_TREND])
        return marks + ("…" if len(refs) > CITED_IN_TREND else "")

    return (
        _e(opening)
        + ": "
        + "; ".join(
            f"{TREND_LABELS[label]}: "
            + ", ".join(
                f"<strong>{_e(t.name)}</strong> ({_e(detail)}) {cites(t)}" for detail, t in members
            )
            for label, members in groups
        )
        + "."
    )


def _theme_html(numbers: dict[str, int], i: int, theme: Theme) -> list[str]:
    if theme.other:
        out = [
            f"<h2>{i}. Other papers</h2>",
            '<p class="note">Papers far from every theme, each with its own row.</p>',
        ]
    else:
        notes = [f"key phrases: {', '.join(theme.key_phrases[:4])}"]
        if theme.silhouette is not None:
            notes.append(f"coherence {theme.silhouette:.2f}")
        out = [f"<h2>{i}. {_e(theme.name)}</h2>", f'<p class="note">{_e("; ".join(notes))}</p>']
        if theme.kept:
            out.append("<p>" + " ".join(_html_sentence(s, numbers) for s in theme.kept) + "</p>")
    out += [
        '<table class="comparison">',
        "<thead><tr><th>Paper</th>"
        + "".join(f"<th>{HEADINGS[r]}</th>" for r in ROLES)
        + "</tr></thead>",
        "<tbody>",
    ]
    for row in theme.rows:
        n = numbers[row.paper.paper_id]
        cells = "".join(
            f"<td>{_e(c.shown) if (c := row.cells.get(r)) else '—'}</td>" for r in ROLES
        )
        out.append(
            f'<tr><td class="paper">{_ref(n)} {_e(short_title(row.paper.title))}</td>{cells}</tr>'
        )
    return out + ["</tbody></table>"]


def default_output(settings: Settings, digest: Digest, fmt: str) -> Path:
    ext = {"md": "md", "html": "html", "json": "json"}[fmt]
    name = f"digest-{digest.since.isoformat()}_{digest.until.isoformat()}"
    if digest.topic:
        name += "-" + re.sub(r"[^a-z0-9]+", "-", digest.topic.lower()).strip("-")[:40]
    return settings.home / "digests" / f"{name}.{ext}"
