"""Step 4: a comparison table per theme, built from the abstracts alone.

One row per paper with three cells: the problem it addresses, the approach it
proposes, the result it reports. Each cell is a verbatim substring of the
abstract, found by sentence role (cue words such as "however", "we propose",
"outperforms", a figure, and the sentence's position), trimmed at word
boundaries to a readable length with an ellipsis where it was cut, so figures
are copied exactly. No model writes any of it: this is the part of the digest
that is true whichever model (if any useful one) wrote the prose.
"""

from __future__ import annotations

import re

from ..text import FIGURE, has_figure, sentence_spans
from .data import Cell, DigestPaper, Row

CELL_CHARS = {"problem": 150, "approach": 170, "result": 190}
PROBLEM_MIN = 1.0  # a problem cue, or context words in the opening sentences
APPROACH_MIN = 0.85  # a cue, or "we" in one of the first three sentences

_PROBLEM = re.compile(
    r"\b(?:challeng\w*|problems?|limit(?:s|ed|ation|ations)|lacks?|lacking|suffers?|suffering|"
    r"difficult\w*|bottlenecks?|struggles?|costly|expensive|however|despite|hinders?|issues?|"
    r"gaps?|fails?|failing|prohibitive|unclear|under-?explored|little is known|inefficien\w*|"
    r"unreliable|poorly)\b",
    re.IGNORECASE,
)
_CONTEXT = re.compile(
    r"\b(?:crucial|critical|important|requires?|demand\w*|while|although|"
    r"remains?|growing|increasingly)\b",
    re.IGNORECASE,
)
_APPROACH = re.compile(
    r"\b(?:we (?:first )?(?:propose|introduce|present|develop|design|describe|build|study|"
    r"investigate|explore|train|release|formulate|extend|apply|leverage|use|employ|show how|"
    r"devise|construct|curate|create)|this (?:paper|work|report) (?:proposes|introduces|presents|"
    r"describes)|our (?:method|approach|model|framework|system)|called|dubbed|named|termed|"
    r"a novel|a new)\b",
    re.IGNORECASE,
)
_RESULT = re.compile(
    r"\b(?:outperform\w*|achiev\w*|improv\w*|reduc\w*|surpass\w*|state-of-the-art|sota|"
    r"results? (?:show|demonstrate|indicate|suggest)|experiments? (?:show|demonstrate|on)|"
    r"speed-?ups?|accuracy|faster|gains?|matches|matching|competitive|exceed\w*|boost\w*|"
    r"we (?:find|found|observe|show|demonstrate)|yield\w*|attains?)\b",
    re.IGNORECASE,
)
_LEAD_IN = re.compile(
    r"^(?:In this (?:paper|work|study|report|article)|Here|To (?:this end|address[^,]{0,60}|"
    r"tackle[^,]{0,60}|overcome[^,]{0,60}|solve[^,]{0,60})|In (?:response|contrast|addition)|"
    r"Specifically|Moreover|Furthermore|Additionally|Finally|Overall|However|Consequently|"
    r"As a result|Concretely|Empirically|Experimentally)\s*,\s*",
    re.IGNORECASE,
)


def _scores(text: str, spans: list[tuple[int, int]]) -> dict[str, list[float]]:
    n = len(spans)
    out: dict[str, list[float]] = {"problem": [], "approach": [], "result": []}
    for i, (a, b) in enumerate(spans):
        s = text[a:b]
        figures = len(FIGURE.findall(s))
        position = i / max(1, n - 1)
        out["result"].append(
            3.0 * min(figures, 2) + 1.5 * len(_RESULT.findall(s)[:2]) + 0.8 * position
        )
        out["approach"].append(
            2.5 * bool(_APPROACH.search(s))
            + 0.6 * ("we " in s.lower())
            + (0.8 if i in (1, 2) else 0.3 if i == 0 else 0.0)
            - 1.0 * (figures > 0)
        )
        out["problem"].append(
            1.5 * min(2, len(_PROBLEM.findall(s)))
            + 0.7 * min(1, len(_CONTEXT.findall(s)))
            + (1.0 if i == 0 else 0.6 if i == 1 else 0.3 if i == 2 else 0.0)
            - 2.0 * bool(_APPROACH.search(s))
            - 1.0 * (figures > 0)
            - 1.0 * bool(_RESULT.search(s))
            - 1.0 * bool(re.match(r"(?:\w+,\s*)?we\b", s, re.IGNORECASE))
        )
    return out


def _trim(
    text: str, span: tuple[int, int], limit: int, figure: tuple[int, int] | None = None
) -> Cell:
    """The sentence `span` of `text`, cut at word boundaries to about `limit` characters,
    keeping the figure at `figure` (start, end offsets) inside."""
    a, b = span
    lead_in = _LEAD_IN.match(text[a:b])
    base = a + (lead_in.end() if lead_in else 0)
    start, end = base, b
    if end - start > limit:
        if figure is not None and figure[0] - start > limit // 2:
            # Start a little before the figure, at a word boundary (a figure starts one).
            space = text.find(" ", max(start, figure[0] - limit // 3), figure[0])
            start = space + 1 if space != -1 else figure[0]
        hi = min(b, start + limit)
        if hi < b:
            cut = text.rfind(" ", start, hi)
            if cut <= start:
                cut = text.find(" ", hi, b)
            end = cut if cut != -1 else b
        if figure is not None and end < figure[1]:
            after = text.find(" ", figure[1], b)
            end = after if after != -1 else b
    while end > start and (text[end - 1] in ",;:([-–—\"'" or text[end - 1].isspace()):
        end -= 1
    return Cell(
        text=text[start:end], start=start, end=end, sentence=(a, b), lead=start > base, tail=end < b
    )


def row_for(paper: DigestPaper) -> Row:
    """The paper's row: one sentence per role where the abstract has one."""
    text = paper.abstract
    spans = sentence_spans(text)
    cells: dict[str, Cell | None] = {"problem": None, "approach": None, "result": None}
    if not spans:
        return Row(paper, cells)
    scores = _scores(text, spans)
    used: set[int] = set()
    figured = [i for i, (a, b) in enumerate(spans) if has_figure(text[a:b])]
    if figured:
        best = max(figured, key=lambda i: (scores["result"][i], i))
        used.add(best)
        cells["result"] = _cell(text, spans[best], "result")
    elif len(spans) >= 3:
        best = max(range(len(spans)), key=lambda i: (scores["result"][i], i))
        if _RESULT.search(text[slice(*spans[best])]) and best > 0:
            used.add(best)
            cells["result"] = _cell(text, spans[best], "result")
    for role, least in (("problem", PROBLEM_MIN), ("approach", APPROACH_MIN)):
        free = [i for i in range(len(spans)) if i not in used]
        if not free:
            break
        best = max(free, key=lambda i: (scores[role][i], -i))
        if scores[role][best] < least:
            continue  # no sentence plays this role: an empty cell beats a wrong one
        used.add(best)
        cells[role] = _cell(text, spans[best], role)
    return Row(paper, cells)


def _cell(text: str, span: tuple[int, int], role: str) -> Cell:
    figure = None
    if role == "result":
        found = FIGURE.search(text, span[0], span[1])
        figure = found.span() if found else None
    return _trim(text, span, CELL_CHARS[role], figure)


TABLE_ROWS = 6  # a theme's comparison table: its most representative papers
TABLE_ALL_BELOW = 60  # a window smaller than this gives every paper a row


def build_tables(themes: list, small: bool = True) -> None:
    """Fill the themes' rows: every paper's in a small window (the Other papers
    group included), else the first `TABLE_ROWS` of each named theme (its
    papers come most representative first); the rest are listed one line each."""
    for theme in themes:
        chosen = theme.papers if small else ([] if theme.other else theme.papers[:TABLE_ROWS])
        theme.rows = [row_for(p) for p in chosen]
        theme.table_ids = [p.paper_id for p in chosen]
