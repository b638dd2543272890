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

from .data import ROLES, Area, Digest, DigestPaper, ProseSentence, Theme

if TYPE_CHECKING:
    from ..settings import Settings

HEADINGS = {"problem": "Problem", "approach": "Approach", "result": "Key result"}
CITED_IN_TREND = 5  # papers cited per theme in the trends paragraph
TOP_UPVOTED = 5
TOP_PAPERS = 6
TREND_MOVERS = 5  # themes named per trend group in a large window
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
    if digest.areas:
        text += f" in {len(digest.areas)} areas"
    if not others:
        return text + "."
    if digest.areas:
        return text + f", and {others} other papers ({100 * others / len(digest.papers):.0f}%)."
    return text + f" and {others} other papers."


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
    if digest.previous_total and digest.named and digest.named[0].rule == "centre":
        opening += (
            f", each assigned to this window's themes by the rule that formed them: "
            f"{digest.previous_total - digest.previous_other} in these themes, "
            f"{digest.previous_other} in none; this window has {len(digest.papers)}"
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


def other_share(digest: Digest) -> float:
    others = sum(len(t.papers) for t in digest.themes if t.other)
    return others / len(digest.papers) if digest.papers else 0.0


def top_papers(digest: Digest, limit: int = TOP_PAPERS) -> list[tuple[DigestPaper, str]]:
    """The week's top papers for the overview: the most upvoted if any paper has
    votes, else the most central paper of each of the largest themes."""
    ranked = upvoted(digest)
    if ranked:
        return [(p, f"{p.upvotes} upvotes") for p in ranked[:limit]]
    named = sorted(digest.named, key=lambda t: -len(t.papers))[:limit]
    return [(t.papers[0], t.name) for t in named]


def _theme_numbers(digest: Digest) -> dict[int, int]:
    """id(theme) -> its section number."""
    return {id(t): i for i, t in enumerate(digest.themes, start=1)}


def _area_line(digest: Digest, area: Area, md_: bool = True) -> str:
    sections = _theme_numbers(digest)
    parts = [
        f"{sections[id(t)]}. {md(t.name) if md_ else t.name} {len(t.papers)}"
        + (f" ({_short_change(t)})" if _short_change(t) else "")
        for t in area.themes
    ]
    return f"**{md(area.name)}** ({papers_count(area.size)}): " + " · ".join(parts)


def _short_change(theme: Theme) -> str:
    if theme.status == "new":
        return "new"
    if theme.status == "steady":
        return ""
    return f"{'↑' if theme.status == 'grew' else '↓'} from {theme.previous}"


def render_markdown(digest: Digest) -> str:
    lines = [f"# {md(page_title(digest))}", ""]
    if not digest.themes:
        lines.append(empty_message(digest))
        return "\n".join(lines) + "\n"
    numbers = digest._numbers()
    lines += [summary_line(digest), "", "## Overview", ""]
    if digest.areas:
        for area in digest.areas:
            lines += [_area_line(digest, area), ""]
        others = [t for t in digest.themes if t.other]
        if others:
            lines += [
                f"{len(digest.themes)}. Other papers: {papers_count(len(others[0].papers))}, "
                "each far from every theme",
                "",
            ]
        lines += [
            "Top papers: "
            + "; ".join(
                f"[{numbers[p.paper_id]}] {md(short_title(p.title))} ({md(why)})"
                for p, why in top_papers(digest)
            )
            + ".",
            "",
        ]
    else:
        for i, theme in enumerate(digest.themes, start=1):
            if theme.other:
                count = papers_count(len(theme.papers))
                lines.append(f"{i}. Other papers: {count}, each far from every theme")
            else:
                count = papers_count(len(theme.papers))
                lines.append(f"{i}. **{md(theme.name)}**: {count} ({_change(theme)})")
        lines.append("")
    lines += _for_you_markdown(digest, numbers)
    lines += ["## Trends", "", _trend_markdown(digest), ""]
    if not digest.areas:
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
    area_of = {id(t): a for a in digest.areas for t in a.themes}
    current = None
    for i, theme in enumerate(digest.themes, start=1):
        area = area_of.get(id(theme))
        if digest.areas and area is not current and area is not None:
            current = area
            lines += [f"## {md(area.name)}", ""]
        lines += _theme_markdown(digest, i, theme)
    if not digest.areas:
        lines += ["## References", ""]
        for n, paper in enumerate(digest.papers, start=1):
            when = paper.published.isoformat() if paper.published else "undated"
            link = f" <{paper.url}>" if _safe_url(paper.url) else ""
            lines.append(f"{n}. {md(paper.title)} ({when}).{link}")
    return "\n".join(lines) + "\n"


def _for_you_markdown(digest: Digest, numbers: dict[str, int]) -> list[str]:
    if not digest.for_you:
        if digest.for_you_basis == "interests":
            return ["## For you", "", "Nothing this window matches your interests.toml.", ""]
        return []
    lines = ["## For you", ""]
    if digest.for_you_basis != "interests":
        lines += [
            "_No interests.toml in ASSISTANT_HOME (keywords, authors, liked arXiv ids, "
            "exclude): the most upvoted and the most central papers._",
            "",
        ]
        if digest.areas:  # the overview's top papers already are those
            return lines[:2] + [lines[2][:-2] + " stand in: see Top papers above._", ""]
    for pick in digest.for_you:
        p = pick.paper
        link = f" <{p.url}>" if _safe_url(p.url) else ""
        lines.append(
            f"- [{numbers[p.paper_id]}] {md(p.title)}: {md('; '.join(pick.reasons))}.{link}"
        )
    return lines + [""]


def _trend_groups(digest: Digest) -> list[tuple[str, list[tuple[str, Theme]]]]:
    opening, parts = trend_parts(digest)
    groups = []
    for label in ("new", "grew", "shrank"):
        members = [(detail, t) for lab, detail, t in parts if lab == label]
        if digest.areas and len(members) > TREND_MOVERS:
            # A week has dozens of themes: name the largest moves (relative), the
            # overview shows every theme's count beside the previous one.
            members.sort(
                key=lambda m: -abs(len(m[1].papers) - m[1].previous) / (m[1].previous or 1)
            )
            rest = len(members) - TREND_MOVERS
            members = members[:TREND_MOVERS] + [(f"and {rest} more", None)]
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
            + ", ".join(
                (
                    detail
                    if t is None
                    else f"**{md(t.name)}** ({detail})"
                    + ("" if digest.areas else f" {_cites(digest, t)}")
                )
                for detail, t in members
            )
            for label, members in groups
        )
        + "."
    )


def _theme_markdown(digest: Digest, i: int, theme: Theme) -> list[str]:
    numbers = digest._numbers()
    level = "###" if digest.areas else "##"
    if theme.other:
        lines = [f"{level} {i}. Other papers", ""]
        lines += [
            "Papers far from every theme" + (", each with its own row." if theme.rows else ":"),
            "",
        ]
    else:
        head = f"{level} {i}. {md(theme.name)}"
        if digest.areas:
            head += f": {papers_count(len(theme.papers))} ({_change(theme)})"
        lines = [head, ""]
        notes = [f"key phrases: {md(', '.join(theme.key_phrases[:4]))}"]
        if theme.silhouette is not None:
            notes.append(f"coherence {theme.silhouette:.2f}")
        lines += ["_" + "; ".join(notes) + "_", ""]
        kept = theme.kept
        if kept:
            lines += [" ".join(_md_sentence(s, numbers) for s in kept), ""]
    if theme.rows:
        lines += [
            "| Paper | " + " | ".join(HEADINGS[r] for r in ROLES) + " |",
            "|---|---|---|---|",
        ]
        for row in theme.rows:
            n = numbers[row.paper.paper_id]
            cells = [md_cell(c.shown) if (c := row.cells.get(r)) else "—" for r in ROLES]
            name = md_cell(short_title(row.paper.title))
            if digest.areas and _safe_url(row.paper.url):
                name = f"[{name}]({row.paper.url})"
            lines.append(f"| [{n}] {name} | " + " | ".join(cells) + " |")
        lines.append("")
    rest = [p for p in theme.papers if p.paper_id not in {r.paper.paper_id for r in theme.rows}]
    if rest:
        if theme.rows:
            lines += [f"Also in this theme ({len(rest)}):", ""]
        for paper in rest:
            link = f" <{paper.url}>" if _safe_url(paper.url) else ""
            lines.append(f"- [{numbers[paper.paper_id]}] {md(paper.title)}{link}")
        lines.append("")
    return lines


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
details{margin:.6em 0;border-bottom:1px solid #eee}
summary{cursor:pointer}
summary h3{display:inline;font-family:Helvetica,Arial,sans-serif;font-size:1.1em}
.count{color:#666}
ul.compact{font-size:.92em}
""".strip()
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _e(text: str) -> str:
    return html.escape(" ".join(str(text).split()), quote=True)


def _safe_url(url: str | None) -> bool:
    return bool(url) and re.match(r"https?://[^\s<>\"']+$", url or "") is not None


def _ref(n: int) -> str:
    return f'<a href="#ref-{n}">[{n}]</a>'


def render_html(digest: Digest) -> str:
    """The digest as one standalone page (inline CSS, no scripts, every string escaped).

    A large window's page opens with a table of contents (the overview: areas
    and their themes, linked) and shows each theme as a collapsible section."""
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
    out += [f"<p>{_e(summary_line(digest))}</p>", '<nav id="contents"><h2>Overview</h2>']
    if digest.areas:
        sections = _theme_numbers(digest)
        out.append('<ul class="areas">')
        for j, area in enumerate(digest.areas, start=1):
            items = "".join(
                f'<li><a href="#theme-{sections[id(t)]}">{sections[id(t)]}. {_e(t.name)}</a> '
                f"{len(t.papers)}{_e(f' ({_short_change(t)})' if _short_change(t) else '')}</li>"
                for t in area.themes
            )
            out.append(
                f'<li><a href="#area-{j}"><strong>{_e(area.name)}</strong></a> '
                f"({papers_count(area.size)})<ul>{items}</ul></li>"
            )
        for i, theme in enumerate(digest.themes, start=1):
            if theme.other:
                out.append(
                    f'<li><a href="#theme-{i}">Other papers</a>: '
                    f"{papers_count(len(theme.papers))}, each far from every theme</li>"
                )
        out.append("</ul>")
        out.append(
            "<p>Top papers: "
            + "; ".join(
                f"{_ref(numbers[p.paper_id])} {_e(short_title(p.title))} ({_e(why)})"
                for p, why in top_papers(digest)
            )
            + ".</p>"
        )
    else:
        out.append("<ol>")
        for i, theme in enumerate(digest.themes, start=1):
            if theme.other:
                out.append(
                    f'<li><a href="#theme-{i}">Other papers</a>: '
                    f"{papers_count(len(theme.papers))}, each far from every theme</li>"
                )
            else:
                out.append(
                    f'<li><a href="#theme-{i}"><strong>{_e(theme.name)}</strong></a>: '
                    f"{papers_count(len(theme.papers))} ({_e(_change(theme))})</li>"
                )
        out.append("</ol>")
    out.append("</nav>")
    out += _for_you_html(digest, numbers)
    out += ["<h2>Trends</h2>", f"<p>{_trend_html(digest)}</p>"]
    top = upvoted(digest)
    if top and not digest.areas:
        out.append(
            "<p>Most upvoted: "
            + "; ".join(
                f"{_ref(numbers[p.paper_id])} {_e(short_title(p.title))} ({p.upvotes})" for p in top
            )
            + ".</p>"
        )
    area_of = {id(t): a for a in digest.areas for t in a.themes}
    current = None
    for i, theme in enumerate(digest.themes, start=1):
        area = area_of.get(id(theme))
        if area is not None and area is not current:
            current = area
            out.append(f'<h2 id="area-{digest.areas.index(area) + 1}">{_e(area.name)}</h2>')
        out += _theme_html(numbers, i, theme, collapsible=bool(digest.areas))
    if not digest.areas:
        out += ["<h2>References</h2>", "<ol>"]
        for n, paper in enumerate(digest.papers, start=1):
            when = paper.published.isoformat() if paper.published else "undated"
            out.append(f'<li id="ref-{n}">{_e(paper.title)} ({when}).{_link(paper.url)}</li>')
        out.append("</ol>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _link(url: str | None) -> str:
    if not _safe_url(url):
        return ""
    return f' <a href="{html.escape(url or "", quote=True)}">{_e(url or "")}</a>'


def _for_you_html(digest: Digest, numbers: dict[str, int]) -> list[str]:
    if not digest.for_you:
        if digest.for_you_basis == "interests":
            return ["<h2>For you</h2>", "<p>Nothing this window matches your interests.toml.</p>"]
        return []
    out = ['<h2 id="for-you">For you</h2>']
    if digest.for_you_basis != "interests":
        out.append(
            '<p class="note">No interests.toml in ASSISTANT_HOME (keywords, authors, liked '
            "arXiv ids, exclude): the most upvoted and the most central papers"
            + (" stand in: see Top papers above.</p>" if digest.areas else ".</p>")
        )
        if digest.areas:
            return out
    out.append("<ul>")
    for pick in digest.for_you:
        p = pick.paper
        out.append(
            f"<li>{_ref(numbers[p.paper_id])} {_e(p.title)}: {_e('; '.join(pick.reasons))}."
            f"{_link(p.url)}</li>"
        )
    return out + ["</ul>"]


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
                (
                    _e(detail)
                    if t is None
                    else f"<strong>{_e(t.name)}</strong> ({_e(detail)})"
                    + ("" if digest.areas else f" {cites(t)}")
                )
                for detail, t in members
            )
            for label, members in groups
        )
        + "."
    )


def _theme_html(
    numbers: dict[str, int], i: int, theme: Theme, collapsible: bool = False
) -> list[str]:
    count = papers_count(len(theme.papers))
    if theme.other:
        heading = "Other papers"
        out = [
            f'<p class="note">Papers far from every theme'
            f"{', each with its own row' if theme.rows else ''}.</p>"
        ]
    else:
        heading = theme.name
        notes = [f"key phrases: {', '.join(theme.key_phrases[:4])}"]
        if theme.silhouette is not None:
            notes.append(f"coherence {theme.silhouette:.2f}")
        out = [f'<p class="note">{_e("; ".join(notes))}</p>']
        if theme.kept:
            out.append("<p>" + " ".join(_html_sentence(s, numbers) for s in theme.kept) + "</p>")
    if theme.rows:
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
            name = _e(short_title(row.paper.title))
            if collapsible and _safe_url(row.paper.url):
                href = html.escape(row.paper.url or "", quote=True)
                name = f'<a id="ref-{n}" href="{href}">{name}</a>'
            elif collapsible:
                name = f'<span id="ref-{n}">{name}</span>'
            mark = f"[{n}]" if collapsible else _ref(n)
            out.append(f'<tr><td class="paper">{mark} {name}</td>{cells}</tr>')
        out.append("</tbody></table>")
    shown = {r.paper.paper_id for r in theme.rows}
    rest = [p for p in theme.papers if p.paper_id not in shown]
    if rest:
        out.append(f"<p>Also in this theme ({len(rest)}):</p>" if theme.rows else "")
        out.append('<ul class="compact">')
        for paper in rest:
            n = numbers[paper.paper_id]
            out.append(f'<li id="ref-{n}">[{n}] {_e(paper.title)}{_link(paper.url)}</li>')
        out.append("</ul>")
    if collapsible:
        summary = (
            f'<summary><h3>{i}. {_e(heading)}</h3> <span class="count">{count}'
            f"{'' if theme.other else ' (' + _e(_change(theme)) + ')'}</span></summary>"
        )
        return [f'<details id="theme-{i}">', summary, *out, "</details>"]
    return [f'<h2 id="theme-{i}">{i}. {_e(heading)}</h2>', *out]


def default_output(settings: Settings, digest: Digest, fmt: str) -> Path:
    ext = {"md": "md", "html": "html", "json": "json"}[fmt]
    name = f"digest-{digest.since.isoformat()}_{digest.until.isoformat()}"
    if digest.topic:
        name += "-" + re.sub(r"[^a-z0-9]+", "-", digest.topic.lower()).strip("-")[:40]
    return settings.home / "digests" / f"{name}.{ext}"
