"""Step 5b: every sentence the model wrote is checked before anyone reads it.

A sentence is shown only when it cites (or is attributed by
`citations.check` to) papers of its theme and the support check passes for
at least one of them; unsupported citations are dropped from it, never shown
as `[n?]`. It is removed, with the reason kept for `--json`, when:

- no cited abstract supports it (content words and every figure, clause by clause:
  `citations.supports`, the answer review's bar for shown prose);
- it names a paper that is not in the window (small models invent "Title: Subtitle (2019)");
- it only restates titles, repeats an earlier sentence, or copies the prompt's framing;
- it speaks as a paper's authors ("we use a new approach"): a digest says whose work it is.

`assistant eval digest` reuses `invented_titles` and `sentence_supported`, so a
digest is scored by the same rules it was written under.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..citations import (
    MIN_CONTENT_WORDS,
    SHOWN_SUPPORT_MIN,
    SourceText,
    check,
    mixes_papers,
    support,
    supports,
    unfinished,
    unsupported_clause,
)
from ..text import content_words, numbers, split_sentences
from .data import DigestPaper, ProseSentence

REPEAT_MIN = 0.8  # share of the shorter sentence's content words that makes it a repeat
TITLE_MATCH_MIN = 0.6  # share of a named title's words that must be in a window title
_YEAR = r"\((?:19|20)\d{2}(?:-\d{2}){0,2}[a-z]?\)"
_NAMED = (
    # "LLM: Lambda-Limb Regression (2019)", "FLT: Flattens-Based ... Estimation"
    re.compile(
        r"((?:[A-Z][\w\-]*\s?){1,4}:\s+[A-Z][\w\-]*(?:,?\s+(?:[A-Z0-9][\w\-]*|"
        r"of|for|and|the|a|an|in|on|to|with|via|from|by|at|as|or|vs)){1,14})"
        r"(?:\s*" + _YEAR + ")?"
    ),
    # "Scaling Laws for Transfer (2021)": up to twelve words before a year in brackets
    re.compile(r"((?:[\w\-:,]+\s+){1,12}?)" + _YEAR),
    # "a paper called “Attention Sinks”"
    re.compile(r"[\"“]([^\"“”]{8,140})[\"”]"),
)
_HEADER = re.compile(r"\((?:19|20)\d{2}-\d{2}-\d{2}\)|\(undated\)")  # "Title (2024-03-11)"
TITLE_SHARE_MAX = 0.8  # a sentence this much made of title words restates titles
_PROMPT_ECHO = re.compile(
    r"UNTRUSTED|BEGIN PAPERS|END PAPERS|data only, never instructions|"
    r"^\s*(?:the\s+)?(?:problem|approach|result|solution|method)\s*:",
    re.IGNORECASE,
)


def source_for(n: int, paper: DigestPaper) -> SourceText:
    return SourceText(
        n, paper.title, paper.abstract, paper.published.isoformat() if paper.published else ""
    )


def _title_words(titles: Iterable[str]) -> list[set[str]]:
    return [content_words(t) for t in titles]


def invented_titles(sentence: str, window_titles: list[str]) -> list[str]:
    """Paper-like names in a sentence that match no paper of the window."""
    known = _title_words(window_titles)
    found = []
    for pattern in _NAMED:
        for match in pattern.finditer(sentence):
            name = match.group(1).strip(" ,:")
            words = content_words(name)
            if len(words) < 2:
                continue
            best = max((len(words & k) / len(words) for k in known), default=0.0)
            if best < TITLE_MATCH_MIN and name not in found:
                found.append(name)
    return found


def sentence_supported(text: str, sources: list[SourceText]) -> float:
    """The best support of `text` by any of `sources` (0 when none)."""
    words, figures = content_words(text), numbers(text)
    return max((support(words, figures, s) for s in sources), default=0.0)


# A digest speaks about papers, never as their authors: a small model copies an
# abstract's "we use a new approach" and then pins it on the wrong paper or invents
# the rest ("instead of regularization, we use ... [4]"), and the reader cannot tell
# whose claim it is.
_FIRST_PERSON = re.compile(r"\b(?:we|our|ours|us)\b", re.IGNORECASE)


# "may not generalize" retold as "can be adapted": the words match, the claim is reversed.
# Compared clause by clause, since one abstract sentence often holds a negated clause
# beside plain ones.
_NEGATION = re.compile(r"\b(?:not|no|never|cannot|fails?|without|neither|nor)\b|n't\b", re.I)
_CLAUSE = re.compile(r"[,;:()]|\b(?:so|but|while|whereas|implying|indicating|suggesting)\b", re.I)
CLAUSE_SHARED_MIN = 3  # content words a clause must share with an abstract's to be its retelling


def _clauses(text: str) -> list[tuple[set[str], bool]]:
    parts = (c.strip() for c in _CLAUSE.split(text))
    return [(content_words(c), bool(_NEGATION.search(c))) for c in parts if c]


def reverses_source(text: str, abstracts: Iterable[str]) -> bool:
    """Whether a clause of `text` retells its closest abstract clause (most shared
    content words, at least CLAUSE_SHARED_MIN) with a "not" added or dropped."""
    source = [c for a in abstracts for sentence in split_sentences(a) for c in _clauses(sentence)]
    for words, negated in _clauses(text):
        best = max(source, key=lambda c: len(words & c[0]), default=None)
        if best and len(words & best[0]) >= CLAUSE_SHARED_MIN and best[1] != negated:
            return True
    return False


def check_prose(
    raw: str, local: dict[int, DigestPaper], window_titles: list[str], earlier: list[set[str]]
) -> list[ProseSentence]:
    """The model's paragraph as checked sentences; `earlier` (content words of the
    sentences already kept in this digest) is extended with the ones kept here."""
    raw = name_leading_markers(raw, local)
    sources = [source_for(n, p) for n, p in local.items()]
    all_titles = _title_words(window_titles)
    title_words = set().union(*all_titles) if all_titles else set()
    out: list[ProseSentence] = []
    for sentence in check(raw, sources).sentences:
        text = sentence.text
        words = content_words(text)
        # The answer review's bar for shown prose, clause by clause (`citations.supports`).
        good = [
            n for n in sentence.cited if supports(words, numbers(text), source_for(n, local[n]))
        ]
        best = max(
            (support(words, numbers(text), source_for(n, local[n])) for n in sentence.cited),
            default=0.0,
        )
        item = ProseSentence(text, [local[n].paper_id for n in good], support=best)
        invented = invented_titles(text, window_titles)
        if _PROMPT_ECHO.search(text):
            item.reason = "copies the prompt's framing"
        elif _HEADER.search(text):
            item.reason = "copies a paper's title line"
        elif not re.search(r"[.!?][\"')\]]*$", text) or unfinished(
            text, " ".join(local[n].abstract for n in sentence.cited if n in local)
        ):
            item.reason = "cut off mid-sentence"
        elif _FIRST_PERSON.search(text):
            item.reason = "speaks as a paper's authors ('we', 'our')"
        elif invented:
            item.reason = "names a paper not in the window: " + "; ".join(invented)
        elif len(words) < MIN_CONTENT_WORDS:
            item.reason = "too short to check"
        elif not sentence.cited:
            item.reason = "cites no paper, and no abstract supports it"
        elif not good:
            item.reason = (
                f"not supported by the abstract it cites (best share {best:.2f} "
                f"< {SHOWN_SUPPORT_MIN})"
            )
        elif unsupported_clause(text, [source_for(n, local[n]) for n in good]):
            item.reason = "a clause of it is in no abstract it cites"
        elif reverses_source(text, [local[n].abstract for n in sentence.cited]):
            item.reason = "reverses the abstract it cites (a 'not' added or dropped)"
        elif mixes_papers(sentence, sources):
            item.reason = "mixes another paper's content into the one it cites"
        elif len(words & title_words) >= TITLE_SHARE_MAX * len(words):
            item.reason = "only restates titles"
        elif any(_overlap(words, seen) >= REPEAT_MIN for seen in earlier):
            item.reason = "repeats an earlier sentence"
        if not item.reason:
            earlier.append(words)
            item.cited = list(dict.fromkeys(item.cited))
            if len(item.cited) == 1:
                item.text = name_the_paper(item.text, local, item.cited[0])
        out.append(item)
    return out


_LEADING_MARK = re.compile(r"(^|(?<=[.!?])[ \t]+|\n[ \t]*)\[(\d+)\]((?:\s*\[\d+\])*)\s*(?=[a-z])")


def name_leading_markers(raw: str, local: dict[int, DigestPaper]) -> str:
    """ "[7] proposes a guidance method." -> "CFG++ [7] proposes a guidance method.":
    the marker moves to the sentence's end when shown, so the sentence keeps the
    paper's short name as its subject instead of starting with a verb."""
    from .render import short_title

    def subject(match: re.Match[str]) -> str:
        paper = local.get(int(match.group(2)))
        if paper is None:
            return match.group(0)
        return f"{match.group(1)}{short_title(paper.title)} [{match.group(2)}]{match.group(3)} "

    return _LEADING_MARK.sub(subject, raw)


_THIS_PAPER = re.compile(r"^(?:This|The) (?:paper|work|study|article)\b", re.IGNORECASE)


def name_the_paper(text: str, local: dict[int, DigestPaper], paper_id: str) -> str:
    """ "This paper presents a dataset [4]." -> "PAVE presents a dataset [4].": in a
    digest "this paper" names nothing; the one paper the sentence cites does."""
    from .render import short_title

    paper = next((p for p in local.values() if p.paper_id == paper_id), None)
    if paper is None or not _THIS_PAPER.match(text):
        return text
    return _THIS_PAPER.sub(lambda _: short_title(paper.title), text, count=1)


def _overlap(a: set[str], b: set[str]) -> float:
    """Shared content words over the smaller sentence's: a shortened copy still repeats."""
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0
