"""Evidence: the sentences of each source that answer the question, quoted verbatim.

A small model writes poor prose, so the answer is built on something that is
true by construction: for every source, the abstract sentences that best
match the question, kept as exact substrings (with their character offsets)
of the stored abstract. They are scored by the embedder (meaning) and by
keyword overlap (names and figures, which MiniLM blurs), so "What is GaLore?"
picks the sentence that says what GaLore is and "how much memory" picks the
sentence with the figure.

The same evidence decides whether the library can answer at all
(`answerability`): a question that names a paper in the library is
answerable however weak its cosine is; a question whose distinctive terms
occur nowhere in the retrieved papers, and whose dense match is weak, is not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import codec
from .text import STOPWORDS, content_words, numbers, sentence_spans

if TYPE_CHECKING:
    from .embed import Embedder
    from .store import Library

# Sentence weights: meaning, keyword overlap, and bonuses for what a question asks.
W_DENSE, W_KEYWORD = 0.6, 0.4
FIGURE_BONUS = 0.12  # a sentence with figures, when the question asks for a quantity
DEFINES_BONUS = 0.1  # a paper's first "we propose/introduce ..." sentence: it names the method
NAMED_DEFINES_BONUS = 0.2  # "we propose X" for "What is X?": the sentence that defines X
# A quote is kept when it scores at least this share of its source's best sentence.
KEEP_RELATIVE = 0.8
KEEP_RELATIVE_FOCUS = 0.6
FOLLOWS_DEFINITION_BONUS = 0.1
APPROACH_BONUS = 0.15  # a paper's "we propose ..." when the question asks how papers do it
# "Which papers ..., how do they differ?": each paper's own contribution is what is
# compared, so its "we propose ..." sentence leads and its background opening goes.
SEVERAL_DEFINES_BONUS = 0.3
SEVERAL_BACKGROUND_PENALTY = 0.3
MAX_QUOTE_CHARS = 420

_ASKS_QUANTITY = re.compile(
    r"\b(how (much|many|often|fast|large|big|well|far)|what (speed-?up|accuracy|score|rate|"
    r"percentage|share|fraction|proportion|number|size|improvement|reduction|gain|bleu|f1)|"
    r"by how|figure|percent|%|rate|rise|reach|achieve|report)",
    re.IGNORECASE,
)
_ASKS_DEFINITION = re.compile(
    r"^\s*(what (is|are|does|do)|summari[sz]e|explain|describe|tell me about|how does|"
    r"what problem|what's)\b",
    re.IGNORECASE,
)
_ASKS_APPROACH = re.compile(
    r"\b(how|approach(es)?|methods?|techniques?|differ\w*|compare[sd]?|comparison)\b", re.IGNORECASE
)
_DEFINES = re.compile(
    r"\b(we(,? \w+,?)? (propose|present|introduce|develop|design|build|call|term|dub)|"
    r"(this|our) (paper|work) "
    r"(proposes|presents|introduces)|is (a|an) (novel |new |simple )?\w+|called|named)\b",
    re.IGNORECASE,
)
# Pointers to code and data say nothing about the question.
# So do sentences about whom a paper helps ("For end users, our benchmark helps ...").
_BOILERPLATE = re.compile(
    r"(https?://|github\.com|\b(code|models?|data(sets?)?|weights) (is|are|will be) "
    r"(publicly |freely |open-?sourced? )?(available|released)|\bavailable at\b|"
    r"^\s*for (end[- ])?(users|researchers|practitioners|developers|the community),)",
    re.IGNORECASE,
)
BOILERPLATE_PENALTY = 0.3
BACKGROUND_PENALTY = 0.12

# The authors' own claims ("we show", "our method") answer more than background does.
_CONTRIBUTION = re.compile(r"\b(we|our|this (paper|work|study))\b", re.IGNORECASE)
CONTRIBUTION_BONUS = 0.05

# Words a question uses that say nothing about its topic.
QUESTION_WORDS = (
    frozenset(
        """
what which who whom whose how why when where does do did is are was were can could would should
paper papers work works method methods approach approaches model models propose proposes proposed
summarize summarise summary explain describe tell me about problem address addresses solve solves
differ difference different compare comparison approach idea main key use used using there any
reach reaches achieve achieves report reports get gets help helps make makes way ways
""".split()
    )
    | STOPWORDS
)
# Words that look like names in a question but name nothing in particular.
_GENERIC_NAMES = frozenset(
    "i a an the llm llms vlm vlms mllm mllms gpu gpus cpu ai ml nlp rl ai's what which how "
    "is are does do can who why when where summarize summarise explain describe tell".split()
)
_NAME_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-\.'’]*[A-Za-z0-9]|[A-Z]")


@dataclass
class Quote:
    """One verbatim sentence of a source's abstract: `abstract[start:end] == text`."""

    n: int
    paper_id: str
    text: str
    start: int
    end: int
    score: float = field(metadata=codec.rounded(4))


@dataclass
class Answerability:
    """Why a question is (or is not) answerable from the retrieved sources."""

    answerable: bool
    reason: str
    named: list[int] = field(default_factory=list)  # source numbers whose title the question names
    best_similarity: float = field(default=0.0, metadata=codec.rounded(4))
    coverage: float = field(
        default=0.0, metadata=codec.rounded(4)
    )  # share of the question's distinctive terms found in the sources
    missing_names: list[str] = field(default_factory=list)
    # Versioned names ("Llama 5") no paper of the library says, though a sibling is there.
    absent: list[str] = field(default_factory=list)


def fetch_abstracts(library: Library, paper_ids: Sequence[str]) -> dict[str, str]:
    """Whole stored abstracts by paper id (a passage is only one chunk of one)."""
    papers = library.papers()
    if papers is None or not paper_ids:
        return {}
    got = papers.get(ids=list(dict.fromkeys(paper_ids)), include=["documents"])
    return {pid: doc or "" for pid, doc in zip(got["ids"], got["documents"])}


def asks_for_several(question: str) -> bool:
    """ "Which papers ...", "what methods ...": the answer spans several papers."""
    return bool(
        re.search(r"\b(papers|works|methods|approaches|studies|systems)\b", question, re.IGNORECASE)
    )


def name_tokens(question: str) -> list[str]:
    """Tokens of a question that look like names: GaLore, CSKV, Sophia, Q-GaLore, 2401.12345."""
    tokens = _NAME_TOKEN.findall(question)
    names = []
    for i, token in enumerate(tokens):
        plain = token.strip(".'’")
        if plain.endswith(("'s", "’s")):
            plain = plain[:-2]
        low = plain.casefold()
        if low in _GENERIC_NAMES or low in STOPWORDS or len(plain) < 2:
            continue
        inner_cap = any(c.isupper() for c in plain[1:])
        has_digit = any(c.isdigit() for c in plain) and any(c.isalpha() for c in plain)
        arxiv = bool(re.fullmatch(r"\d{4}\.\d{4,5}(v\d+)?", plain))
        capitalised = plain[0].isupper() and i > 0
        if inner_cap or has_digit or arxiv or capitalised:
            names.append(plain)
    return list(dict.fromkeys(names))


# "Llama 5", "AlphaFold 3", "GPT-6", "YOLOv13", "Qwen4": a family name and a version.
_VERSIONED = re.compile(
    r"\b([A-Z][A-Za-z]*(?:-[A-Za-z]+)*?)(?:[\s-]?v?)(\d+(?:\.\d+)?)(?![\w.]*[A-Za-z])(?!\.\d)"
)


def versioned_names(question: str) -> list[tuple[str, str]]:
    """(name as written, family) for each versioned name: ("Llama 5", "llama").

    A version is what tells "Llama 5" from the Llama 3 work a library holds, so a
    question about a version that no paper mentions is not answered by its sibling.
    """
    out = []
    for match in _VERSIONED.finditer(question):
        family = match.group(1)
        low = family.casefold()
        if low in _GENERIC_NAMES or low in QUESTION_WORDS or len(family) < 2:
            continue
        inner = any(c.isupper() for c in family[1:])
        if match.start() == 0 and not inner:
            continue  # a capital that only starts the sentence
        out.append((match.group(0), family.casefold()))
    return out


def _spelled_out(question: str, name: str) -> str:
    """The name with the capitalised words before it: "Stable Diffusion 4", not
    "Diffusion 4" (the version attaches to the last word; the reader wrote all three)."""
    at = question.find(name)
    words = question[:at].split() if at > 0 else []
    lead: list[str] = []
    while words and len(lead) < 3:
        word = words[-1]
        if not re.fullmatch(r"[A-Z][\w\-]*", word) or word.casefold() in QUESTION_WORDS:
            break
        lead.insert(0, words.pop())
    return " ".join([*lead, name])


def version_pattern(name: str) -> re.Pattern[str]:
    """ "Llama 5" also as "Llama-5" and "Llama5", but not "Llama 50" or "Llama 5.1"."""
    m = re.fullmatch(r"(.*?)[\s-]?(v?)(\d+(?:\.\d+)?)", name.strip())
    family, v, version = (m.group(1), m.group(2), m.group(3)) if m else (name, "", "")
    return re.compile(
        rf"(?<![\w-]){re.escape(family)}[\s-]?{v}{re.escape(version)}(?![\dA-Za-z]|\.\d)",
        re.IGNORECASE,
    )


def _plain_word(token: str) -> bool:
    """ "Visual", "Sophia": capitalised only; not GaLore, CSKV, GPT-4 or 2401.12345."""
    return token[:1].isupper() and token[1:].islower() and token.isalpha()


def _name_part(title: str) -> str:
    """ "GaLore" of "GaLore: Memory-Efficient ..."; a title without a colon has none."""
    return title.split(":", 1)[0] if ":" in title else ""


def _title_words(title: str) -> set[str]:
    return {w.casefold().strip(".,;:!?()'\"") for w in re.split(r"[\s:,()]+", title) if w}


def distinctive_terms(question: str) -> set[str]:
    """Content words of the question that say what it is about."""
    return {w for w in content_words(question) if w not in QUESTION_WORDS}


def select_evidence(
    question: str,
    sources: Sequence[Any],
    abstracts: dict[str, str],
    embedder: Embedder | None,
    *,
    per_source: int = 2,
    focus: set[int] | frozenset[int] = frozenset(),
) -> dict[int, list[Quote]]:
    """The best `per_source` sentences of each source's abstract, in document order.

    `sources` are `answer.Source`s (n, paper_id, title, passage). Scores mix
    the embedder's cosine with keyword overlap, so a name or a figure the
    question asks for is found even when MiniLM's meaning match is flat.
    `focus` (the papers a question names) get one sentence more and a lower
    bar: the question is about them.
    """
    import numpy as np

    wanted = distinctive_terms(question) or content_words(question)
    asks_quantity = bool(_ASKS_QUANTITY.search(question))
    asks_definition = bool(_ASKS_DEFINITION.search(question))
    asks_approach = bool(_ASKS_APPROACH.search(question))
    names = {n.casefold() for n in name_tokens(question)}
    name_words = content_words(" ".join(names))
    several = asks_for_several(question)

    candidates: list[tuple[int, str, str, int, int]] = []  # n, paper_id, text, start, end
    defining: set[int] = set()  # per source: its first "we propose ..." sentence, and the next
    opening: set[int] = set()  # an abstract's first sentence when it is background
    # ... and, when papers are compared, every sentence before the paper's own ("we ...").
    background: set[int] = set()
    for source in sources:
        text = abstracts.get(source.paper_id) or source.passage
        found = None
        own = False
        for k, (start, end) in enumerate(sentence_spans(text)):
            sentence = text[start:end]
            own = own or bool(_CONTRIBUTION.search(sentence))
            if k == 0 and not own:
                opening.add(len(candidates))
            if not own and several and source.n not in focus:
                background.add(len(candidates))
            if found is None and _DEFINES.search(sentence) and _CONTRIBUTION.search(sentence):
                found = len(candidates)
                defining.update((found, found + 1))
            candidates.append((source.n, source.paper_id, sentence, start, end))
    if not candidates:
        return {}
    dense = np.zeros(len(candidates), dtype=np.float32)
    if embedder is not None:
        vectors = embedder.embed([question] + [c[2] for c in candidates])
        dense = vectors[1:] @ vectors[0]
    by_source: dict[int, list[Quote]] = {}
    field_only: set[int] = set()  # quotes of `background`: shown only when a paper has no other
    for i, (n, pid, text, start, end) in enumerate(candidates):
        words = content_words(text)
        # In a paper the question names, every sentence names it: the name says
        # nothing about which sentence answers, the question's other words do.
        terms = wanted - name_words if n in focus else wanted
        keyword = len(terms & words) / len(terms) if terms else 0.0
        score = W_DENSE * float(dense[i]) + W_KEYWORD * keyword
        if _CONTRIBUTION.search(text):
            score += CONTRIBUTION_BONUS
        if _BOILERPLATE.search(text):
            score -= BOILERPLATE_PENALTY
        if i in background:
            score -= SEVERAL_BACKGROUND_PENALTY
        elif i in opening:
            score -= BACKGROUND_PENALTY  # "Training LLMs is costly": the field, not the paper
        if asks_quantity and numbers(text):
            score += FIGURE_BONUS
        if i in defining and _DEFINES.search(text) and not asks_definition:
            # A paper's "we propose X" names its method, which most questions are after;
            # more so when the question asks how papers go about it.
            if several and n not in focus:
                score += SEVERAL_DEFINES_BONUS
            else:
                score += APPROACH_BONUS if asks_approach else DEFINES_BONUS
        if asks_definition:
            named_here = any(name in text.casefold() for name in names)
            if _DEFINES.search(text) and (named_here or i in defining):
                score += NAMED_DEFINES_BONUS if names else DEFINES_BONUS
            elif i in defining and n in focus:
                score += FOLLOWS_DEFINITION_BONUS  # "Specifically, X does ...": how it works
        quote = Quote(n, pid, text, start, end, score)
        if i in background:
            field_only.add(id(quote))
        by_source.setdefault(n, []).append(quote)
    chosen: dict[int, list[Quote]] = {}
    for n, quotes in by_source.items():
        own = [q for q in quotes if id(q) not in field_only]
        best = sorted(own or quotes, key=lambda q: (-q.score, q.start))
        top = best[0].score
        width, bar = (
            (per_source + 1, KEEP_RELATIVE_FOCUS) if n in focus else (per_source, KEEP_RELATIVE)
        )
        keep = [q for q in best[:width] if q.score >= bar * top or q is best[0]]
        chosen[n] = sorted((_trim(q) for q in keep), key=lambda q: q.start)
    return chosen


def _trim(quote: Quote) -> Quote:
    """Very long sentences are cut at a word boundary; the quote stays an exact prefix."""
    if len(quote.text) <= MAX_QUOTE_CHARS:
        return quote
    cut = quote.text.rfind(" ", 0, MAX_QUOTE_CHARS)
    cut = cut if cut > MAX_QUOTE_CHARS // 2 else MAX_QUOTE_CHARS
    text = quote.text[:cut].rstrip(" ,;:")
    return Quote(quote.n, quote.paper_id, text, quote.start, quote.start + len(text), quote.score)


# Calibrated on eval/questions.jsonl by bench/calibrate.py (README "Abstention").
ABSTAIN_SIMILARITY = 0.36  # below this best-passage cosine, abstain unless a name matched
WEAK_COVERAGE = 0.5  # at most this share of the question's terms in the sources ...
WEAK_COVERAGE_SIMILARITY = 0.45  # ... and a cosine below this: abstain
MISSING_NAMES_SHARE = 0.5  # this share of its names in no source, and a weak cosine: abstain


def answerability(
    question: str,
    sources: Sequence[Any],
    abstracts: dict[str, str],
    library_says: Callable[[str], bool] | None = None,
) -> Answerability:
    """Decide on the whole evidence whether the retrieved sources can answer.

    Named papers first: a name token of the question that is a word of a
    source's title makes the question answerable (names have weak MiniLM
    cosines). Otherwise the question's distinctive terms must mostly occur in
    the sources, or the dense match must be strong.
    """
    best = max((s.similarity or 0.0 for s in sources), default=0.0)
    if not sources:
        return Answerability(False, "the library returned no passage", best_similarity=best)
    names = name_tokens(question)
    folded_names = [name.casefold() for name in names]
    exact = [
        s.n
        for s in sources
        if ":" in s.title and s.title.split(":", 1)[0].strip().casefold() in folded_names
    ]
    # A plain capitalised word ("Visual" of "Visual Genome") names a paper only when it
    # is in the title's name, before the colon; GaLore, CSKV or Q-GaLore anywhere in it.
    plain = {n.casefold() for n in names if _plain_word(n)}
    mentioned = [
        s.n
        for s in sources
        if any(
            name in (_title_words(_name_part(s.title)) if name in plain else _title_words(s.title))
            for name in folded_names
        )
    ]
    # "What is GaLore?" means the paper called GaLore, not Q-GaLore; "Which papers
    # build on GaLore?" means every paper whose title names it.
    plural = asks_for_several(question)
    named = exact if exact and not plural else mentioned
    texts = [f"{s.title} {abstracts.get(s.paper_id) or s.passage}" for s in sources]
    folded = " ".join(texts).casefold()
    missing = [name for name in names if name.casefold() not in folded]
    terms = distinctive_terms(question)
    present = content_words(" ".join(texts))
    coverage = len(terms & present) / len(terms) if terms else 1.0
    verdict = Answerability(True, "", named, best, coverage, missing)
    # A version no paper says ("Llama 5") while its family is there ("Llama 3"): the
    # neighbour does not answer it, however close its cosine. `library_says` looks
    # beyond the retrieved papers, so "no paper in the library is about X" is true.
    for name, family in versioned_names(question):
        pattern = version_pattern(name)
        if any(pattern.search(t) for t in texts):
            continue
        if family in folded and (library_says is None or not library_says(name)):
            verdict.absent.append(_spelled_out(question, name))
    if verdict.absent:
        verdict.answerable, verdict.named = False, []
        verdict.reason = "no paper in the library mentions " + ", ".join(verdict.absent)
        return verdict
    if named:
        verdict.reason = "the question names a paper in the library"
        return verdict
    if (
        names
        and len(missing) >= MISSING_NAMES_SHARE * len(names)
        and (best < WEAK_COVERAGE_SIMILARITY)
    ):
        verdict.answerable = False
        verdict.reason = "no retrieved paper mentions " + ", ".join(missing)
        return verdict
    if best < ABSTAIN_SIMILARITY:
        verdict.answerable = False
        verdict.reason = f"the best passage is a weak match (cosine {best:.2f})"
        return verdict
    if coverage <= WEAK_COVERAGE and best < WEAK_COVERAGE_SIMILARITY:
        verdict.answerable = False
        verdict.reason = (
            f"the sources hold few of the question's terms ({coverage:.0%}) and "
            f"match it weakly (cosine {best:.2f})"
        )
        return verdict
    verdict.reason = "the sources match the question"
    return verdict
