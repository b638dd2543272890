"""Words, figures and sentences: one definition of each for the whole product.

The evidence picked for an answer, the review of the model's sentences and the
digest's tables all compare texts by their content words and figures, and cut
abstracts into sentences. When each kept its own splitter and figure pattern,
a sentence quoted as evidence could be two sentences to the review, and a
figure a table showed could be no figure to the support check. They share
these now.

Sentences are split by a regular expression rather than nltk's punkt (which
llama-index's cache ships): on the 2,271 abstracts of the sample and the real
2025 week they split 95.7% of abstracts identically, and where they differ
punkt mostly cuts inside "e.g. BERT", "(i.e. semantic masks" and "w.r.t.
inputs", which the regex keeps whole (`bench/sentences_bench.py`).
"""

from __future__ import annotations

import re

# Words that carry no topic, in abstracts or in questions about them: the keyword
# index leaves them out (a short list, so "more" or "only" can still be searched).
INDEX_STOPWORDS = frozenset(
    """
a an and are as at be been being but by can could did do does doing for from had has have how
if in into is it its no not of on or our over such than that the their then there these they
this those to was we were what when where which while who whom why will with would you your
i me my us about also via using use used based show shows propose proposes present presents
""".split()
)
# Words that say nothing about what a sentence claims, when a sentence is compared
# with its source: all function words, and the words every abstract presents itself
# with ("we propose a novel method", "results show").
STOPWORDS = INDEX_STOPWORDS | frozenset(
    """
about above after again against all am any because before below between both down during each
few further having he her here hers him his itself just more most nor now off once only other
ours out own same she should so some theirs them through too under until up very yours paper
papers source sources proposed presented approach method methods study work new novel results uses
result however thus
""".split()
)

_WORD = re.compile(r"[a-z][a-z0-9\-]*[a-z0-9]|[a-z]")

# A figure: two or more digits, or a decimal ("12,868", "65.5%", "2.8x"); a lone digit
# is a count ("two") more often than a result. Group 1 is the number itself.
FIGURE = re.compile(r"(?<![\w.])(\d{2,}(?:[.,]\d+)*|\d+[.,]\d+)(?:\s*%|x\b|×)?")
# Sizes said in words are figures too: a small model's favourite invention is "by
# orders of magnitude" or "tenfold" where the source gives 80%.
_WORD_FIGURE = re.compile(
    r"\b(?:an?\s+)?(orders?\s+of\s+magnitude|(?:\w+|\d+(?:\.\d+)?)[- ]fold"
    r"|(?:two|three|four|five|six|seven|eight|nine|ten|twenty|hundred|thousand)fold)\b",
    re.IGNORECASE,
)

# A sentence ends at . ! or ? (a closing quote or bracket may follow), then space, then
# something that starts a sentence; never after an abbreviation.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")
_ABBREVIATION = re.compile(
    r"\b(?:e\.g|i\.e|et al|al|vs|cf|Fig|Figs|Eq|Sec|approx|resp|etc|No)\.$", re.IGNORECASE
)
# In an abstract a "sentence" shorter than this is a fragment ("Sec. 3.", "(ii)."): it
# stays with the next one.
ABSTRACT_FRAGMENT_CHARS = 12


_STEMMER = None


def stem(words: list[str]) -> list[str]:
    """Snowball (Porter 2) stems: "trained" and "train" are one word to the index and the review."""
    global _STEMMER
    if _STEMMER is None:
        import Stemmer

        _STEMMER = Stemmer.Stemmer("english")
    return _STEMMER.stemWords(words)


def content_words(text: str) -> set[str]:
    """Lower-cased words without stop words, a plural's final s dropped."""
    words = set()
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS or len(word) < 2:
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.add(word)
    return words


def numbers(text: str) -> set[str]:
    """Figures in a text, normalised ("12,868" -> "12868"; "65.50" -> "65.5").

    "Orders of magnitude" and "N-fold" count as figures (one spelling each), so a
    sentence that claims them must find them in its source."""
    found = set()
    for digits in FIGURE.findall(text):
        plain = digits.replace(",", "")
        found.add(plain.rstrip(".").rstrip("0").rstrip(".") if "." in plain else plain)
    for phrase in _WORD_FIGURE.findall(text):
        words = phrase.lower().replace("-", " ").split()
        if "magnitude" in words:
            found.add("order of magnitude")
        else:
            found.add(f"{words[0].removesuffix('fold')}-fold")
    return found


def has_figure(text: str) -> bool:
    return FIGURE.search(text) is not None


def sentence_spans(
    text: str, fragment_chars: int = ABSTRACT_FRAGMENT_CHARS
) -> list[tuple[int, int]]:
    """(start, end) of each sentence, so that every sentence is an exact slice of `text`.

    Quotes are shown verbatim and located by offset, so a sentence is never
    rebuilt from pieces; leading whitespace is left out of the span.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        candidate = text[start : match.start()].rstrip()
        closing = text[match.start() : match.end()].strip()
        if _ABBREVIATION.search(candidate) or len(candidate.strip()) < fragment_chars:
            continue
        spans.append((start, match.start() + len(closing)))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        if e > s:
            out.append((s, e))
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of a model's answer, line by line (a list item is never joined to the next)."""
    return [
        line[s:e]
        for line in (raw.strip() for raw in text.splitlines())
        if line
        for s, e in sentence_spans(line, fragment_chars=1)
    ]
