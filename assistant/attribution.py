"""Whose words a sentence carries: names that belong to no source, or to another paper
than the one it cites, and sentences that point back at another paper's sentence.

The answer review (`citations.review`) and the digest's prose check ask these; they
know a source only by its title and text (`Paper`), so this module imports nothing
of theirs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol


class Paper(Protocol):
    title: str
    passage: str


# Tokens that name something: inner capitals (GaLore), digits with letters (GPT-4),
# or all capitals of three letters or more (CSKV).
_NAMEISH = re.compile(r"\b(?=[A-Za-z0-9\-]*[A-Za-z])[A-Za-z0-9][A-Za-z0-9\-]*\b")


def _nameish(token: str) -> bool:
    inner_cap = any(c.isupper() for c in token[1:]) and any(c.islower() for c in token)
    digit_mix = any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
    caps = len(token) >= 3 and token.isupper() and token.isalpha()
    return inner_cap or digit_mix or caps


SIZE = re.compile(r"\b\d+(?:\.\d+)?[KMBT]\b")  # "10B", "1.5B", "8K": sizes, not names


def spelled_before(token: str, text: str, known_folded: str) -> bool:
    """ "Equal-Info Windows (EIW)": an acronym the sentence spells out just before it,
    from words a source says, names nothing new (Qwen abbreviates what it quotes)."""
    at = text.find(f"({token})")
    if at < 0 or not token.isalpha():
        return False
    words = re.findall(r"[A-Za-z]+", text[:at])
    for size in range(len(token), min(len(words), 2 * len(token)) + 1):
        phrase = words[-size:]
        capitals = "".join(w[0] for w in phrase if w[0].isupper())
        if token.upper() in (capitals.upper(), "".join(w[0] for w in phrase).upper()):
            spelled = re.escape(" ".join(phrase)).replace(r"\ ", r"[\s\-]+")
            return bool(re.search(spelled, known_folded, re.IGNORECASE))
    return False


def foreign_names(text: str, known: str) -> list[str]:
    """Name-like tokens of `text` found nowhere in `known` (the sources' titles and text)."""
    known_folded = known.casefold()
    found = []
    for token in _NAMEISH.findall(text):
        if (
            _nameish(token)
            and token.casefold() not in known_folded
            and not spelled_before(token, text, known_folded)
        ):
            found.append(token)
    return found


def names_other_paper(text: str, titles: list[str], cited: str) -> bool:
    """Whether `text` names a retrieved paper by its title's name ("Natural GaLore" of
    "Natural GaLore: Accelerating ...") that the cited source never mentions: Qwen 1.5B
    put 8-bit GaLore's figures under "Natural GaLore ... [GaLore]". A plain word such as
    "Natural" is no name to `foreign_names`, so the whole title name is looked for."""
    folded, in_cited = text.casefold(), " ".join(cited.casefold().split())
    for title in titles:
        name, colon, _ = title.partition(":")
        name = " ".join(name.split()).casefold()
        if not colon or not 1 < len(name.split()) <= 4 or name in in_cited:
            continue
        if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", folded):
            return True
    return False


_INTRO_VERB = r"\b(?:introduc|propos|present)\w*"
# "... a new memory-efficient optimization framework called GaLore": the name a sentence
# says its cited paper introduces.
_CLAIMED_NAME = re.compile(
    _INTRO_VERB
    + r"\b[^.]*?\b(?:called|named|dubbed|termed)\s+(?P<name>[A-Z][\w\-]*(?:\s+[A-Z][\w\-]*)*)"
)
# ... and the names a paper introduces: "we propose Gradient Low-Rank Projection (GaLore)",
# "This work introduces Natural GaLore, a ...", "we introduce FRUGAL (Full-Rank ...)".
_OWN_NAME = re.compile(
    _INTRO_VERB
    + r"\s+(?:(?:[a-z][\w\-]*|\d[\w\-]*)\s+){0,10}?(?:(?:called|named|dubbed|termed)\s+)?"
    r"(?P<name>[A-Z][\w\-]*(?:\s+[A-Z][\w\-]*)*)(?:\s*\((?P<short>[^)]{1,60})\))?"
)


def _names_introduced(source: Paper) -> set[str]:
    """What a paper calls its own contribution: its title's name ("Natural GaLore" of
    "Natural GaLore: Accelerating ...") and the names its abstract introduces."""
    fold = lambda name: " ".join(name.split()).casefold()  # noqa: E731
    head, colon, _ = source.title.partition(":")
    names = {fold(head)} if colon else set()
    for match in _OWN_NAME.finditer(source.passage):
        names.add(fold(match["name"]))
        if match["short"]:
            names.add(fold(match["short"]))
    return names


def claims_other_method(text: str, sources: Sequence[Paper]) -> bool:
    """Whether `text` says its cited paper introduces a method "called NAME" that none of
    `sources` introduces. SmolLM2 wrote "This work introduces a new memory-efficient
    optimization framework called GaLore [3]" under Natural GaLore, in FRUGAL's words:
    Natural GaLore mentions GaLore, which is why the name check alone let it through."""
    match = _CLAIMED_NAME.search(text)
    if match is None or not sources:
        return False
    claimed = " ".join(match["name"].split()).casefold()
    return not any(claimed in _names_introduced(source) for source in sources)


# A sentence that starts by pointing back ("It is designed to ...") is about whatever the
# sentence before it was about.
_POINTS_BACK = re.compile(r"^\s*(?:It|Its|They|Their|Them)\b")


def points_elsewhere(text: str, cited: list[int], before: list[int] | None) -> bool:
    """Whether a sentence opening with "It"/"They" follows a sentence about other papers
    (`before`: what that one cited, shown or not): SmolLM2's "It is designed to reduce the
    number of parameters in the optimizer ... [2]" followed a sentence on another paper,
    and its words matched the runtime benchmark it cited well enough."""
    if not _POINTS_BACK.match(text) or before is None:
        return False  # the answer's first sentence: "It" is the question's subject
    return not set(cited) & set(before)
