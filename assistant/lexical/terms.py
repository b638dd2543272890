"""Words as the keyword index sees them: tokens, query stop words and paper names.

Shared by the index and the retriever's passage choice, so a word the index
matched is the same word everywhere else; the stop words and the stemmer are
text.py's, which the citation check uses too.
"""

from __future__ import annotations

import re

from ..text import INDEX_STOPWORDS, stem

# Figures such as "12,868" or "2.8" stay one token: abstracts quote them and
# users search for them; a plain \w+ pattern would split them into "12", "868".
TOKEN_RE = re.compile(r"(?u)\d+(?:[.,]\d+)+|\b\w\w+\b")
NAME_WORD_RE = re.compile(r"[^\W_]+")
# Words of a request, not of its topic ("Summarize GaLore.", "Tell me about X").
QUERY_STOPWORDS = INDEX_STOPWORDS | frozenset(
    """
summarize summarise summary explain describe tell give list paper papers library main idea
""".split()
)
MAX_NAME_WORDS = 6


def tokenize(text: str, stopwords: frozenset[str] = INDEX_STOPWORDS) -> list[str]:
    """Lower-cased, stemmed word tokens without stop words (figures kept whole)."""
    return stem([w for w in TOKEN_RE.findall(text.lower()) if w not in stopwords])


def normalise_name(text: str) -> str:
    """Letters and digits only, single-spaced: "Q-GaLore" -> "q galore"."""
    return " ".join(NAME_WORD_RE.findall(text.casefold()))


def title_name(title: str) -> str | None:
    """The name a title starts with ("GaLore" in "GaLore: Memory-Efficient ..."), normalised."""
    head, sep, _ = title.partition(":")
    if not sep:
        return None
    name = normalise_name(head)
    return name if name and len(name.split()) <= MAX_NAME_WORDS else None
