"""Citations a user can trust, checked deterministically after the model has spoken.

Small models cite numbers that were never given, cite nothing at all, or cite
a source that says something else. Each answer sentence is therefore parsed
for `[n]` markers; numbers that were not among the sources are dropped and
counted; an uncited sentence is attributed to the source whose words and
figures it shares most (above a threshold, else it stays uncited); and every
citation is checked against its passage the same way. Figures in the answer
that appear in no source are flagged.

The measure is the share of a sentence's content words (lower-cased, crudely
stemmed, stop words removed) found in the source's title and passage, and
every number in the sentence must appear in the source for it to count as
support. It is cheap (well under a millisecond per sentence), explainable, and
good enough to catch the usual small-model failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .attribution import (
    SIZE,
    claims_other_method,
    foreign_names,
    names_other_paper,
    points_elsewhere,
    spelled_before,
)
from .text import content_words, numbers, split_sentences, stem

# A sentence is attributed to a source when at least this share of its content
# words appears there, and a citation is "supported" at the same bar. Chosen on
# the bundled eval set (bench/calibrate.py prints the distributions).
ATTRIBUTE_MIN = 0.5
SUPPORT_MIN = 0.5
# Prose shown to a reader needs this share of its words in the cited source (the
# question's own words aside); measured on eval/review-labels.jsonl by
# bench/review_calibration.py.
SHOWN_SUPPORT_MIN = 0.6
MIN_CONTENT_WORDS = 3

_CITE = re.compile(
    r"\[(?:(?:sources?|refs?|references?)\s*)?(\d+(?:\s*(?:,|;|and|&|-|–)\s*\d+)*)\]",
    re.IGNORECASE,
)


@dataclass
class SourceText:
    n: int
    title: str
    passage: str
    published: str = ""  # a year in the answer may come from the source's date

    def __post_init__(self) -> None:
        self.words = content_words(f"{self.title} {self.passage}")
        self.numbers = numbers(f"{self.title} {self.passage} {self.published}")
        # Stems once per source, not once per sentence checked against it.
        self.stems = set(stem(sorted(self.words)))


def support(sentence_words: set[str], sentence_numbers: set[str], source: SourceText) -> float:
    """Share of the sentence's content words in the source; 0 if a figure is missing there."""
    if sentence_numbers - source.numbers:
        return 0.0
    if not sentence_words:
        return 0.0
    return len(sentence_words & source.words) / len(sentence_words)


def supports(
    sentence_words: set[str],
    sentence_numbers: set[str],
    source: SourceText,
    asked: frozenset[str] | set[str] = frozenset(),
) -> bool:
    """The review's verdict: most words found in the source, or its exact figures and some.

    The bar for prose a reader sees (SHOWN_SUPPORT_MIN) is higher than for
    attributing a citation: SmolLM2 copies half a source sentence and invents
    the rest ("... random sampling grids"), which a 0.5 share let through.
    Words of the question (`asked`) that the source lacks are set aside: an
    answer restates the question around the source's fact ("To swap a
    vocabulary without gradients, one can use ..."). A faithful paraphrase
    ("doubles the speed, 2.1x") shares few words but carries the figures only
    that source gives; every figure must be there.
    """
    words = sentence_words - (set(asked) - source.words)
    share = support(words or sentence_words, sentence_numbers, source)
    if share >= SHOWN_SUPPORT_MIN:
        return True
    if not sentence_numbers or sentence_numbers - source.numbers:
        return False
    # A paraphrase changes word forms ("adaptive decoder" for "adaptively decoding"):
    # compare stems, and accept fewer of them when every figure matches.

    stems = set(stem(sorted(sentence_words)))
    return bool(stems) and len(stems & source.stems) / len(stems) >= FIGURE_SUPPORT_MIN


@dataclass
class CitedSentence:
    text: str  # without citation markers
    cited: list[int] = field(default_factory=list)
    supported: dict[int, bool] = field(default_factory=dict)
    attributed: bool = False  # the citation was added here, not written by the model
    unknown_numbers: list[str] = field(default_factory=list)  # figures found in no source
    # The sentence with the markers its grammar needs kept in place ("introduced in [2]
    # achieves ..."): stripped, it would read "introduced in achieves". None when none.
    inline: str | None = None

    def render(self) -> str:
        def mark(n: int) -> str:
            return f"[{n}]" if self.supported.get(n, False) else f"[{n}?]"

        if self.inline is not None:
            placed = {int(n) for n in re.findall(r"\[(\d+)\]", self.inline)}
            text = re.sub(r"\[(\d+)\]", lambda m: mark(int(m.group(1))), self.inline)
            rest = "".join(mark(n) for n in self.cited if n not in placed)
            return f"{text} {rest}".rstrip() if rest else text
        marks = "".join(mark(n) for n in self.cited)
        return f"{self.text} {marks}".rstrip() if marks else self.text


@dataclass
class CheckedAnswer:
    sentences: list[CitedSentence]
    dropped_citations: int  # numbers the model cited that were not among the sources

    @property
    def text(self) -> str:
        return " ".join(s.render() for s in self.sentences)

    @property
    def cited_numbers(self) -> list[int]:
        seen: dict[int, None] = {}
        for s in self.sentences:
            for n in s.cited:
                seen.setdefault(n, None)
        return list(seen)

    def supported(self, n: int) -> bool:
        """A source counts as supported when every sentence citing it is supported."""
        verdicts = [s.supported[n] for s in self.sentences if n in s.supported]
        return bool(verdicts) and all(verdicts)

    @property
    def unknown_numbers(self) -> list[str]:
        return sorted({x for s in self.sentences for x in s.unknown_numbers})


_PREPOSITION_END = re.compile(r"\b(?:in|by|from|see|of|to|on|at|with|and)\s*$", re.IGNORECASE)


def _tidy(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"\s{2,}", " ", text)).strip()


def _inline_markers(raw: str, by_n: dict[int, SourceText]) -> str | None:
    """The sentence with the markers that follow a preposition kept in place ("as
    introduced in [2]", "described in [1]"), every other marker removed; None when no
    marker is part of the sentence's grammar."""
    kept = False

    def keep_or_drop(match: re.Match[str]) -> str:
        nonlocal kept
        numbers = [n for n in _expand(match.group(1)) if n in by_n]
        if numbers and _PREPOSITION_END.search(raw[: match.start()]):
            kept = True
            return "".join(f"[{n}]" for n in numbers)
        return ""

    text = _tidy(_CITE.sub(keep_or_drop, raw))
    return text if kept else None


def check(answer: str, sources: list[SourceText]) -> CheckedAnswer:
    """Resolve, attribute and verify the citations of one answer."""
    by_n = {s.n: s for s in sources}
    all_numbers = set().union(*(s.numbers for s in sources)) if sources else set()
    dropped = 0
    out: list[CitedSentence] = []
    for raw in split_sentences(answer):
        cited: list[int] = []
        for match in _CITE.finditer(raw):
            for n in _expand(match.group(1)):
                if n in by_n:
                    if n not in cited:
                        cited.append(n)
                else:
                    dropped += 1
        text = _tidy(_CITE.sub("", raw))
        inline = _inline_markers(raw, by_n)
        if not text or not re.search(r"\w", text):
            # A line holding only markers belongs to the sentence before it.
            if out and cited:
                out[-1].cited.extend(n for n in cited if n not in out[-1].cited)
            continue
        sentence = CitedSentence(text=text, cited=cited, inline=inline)
        words, figures = content_words(text), numbers(text)
        sentence.unknown_numbers = sorted(figures - all_numbers)
        if not cited and len(words) >= MIN_CONTENT_WORDS and sources:
            scored = sorted(((support(words, figures, s), -s.n) for s in sources), reverse=True)
            best_score, neg_n = scored[0]
            if best_score >= ATTRIBUTE_MIN:
                sentence.cited = [-neg_n]
                sentence.attributed = True
        for n in sentence.cited:
            sentence.supported[n] = support(words, figures, by_n[n]) >= SUPPORT_MIN
        out.append(sentence)
    # Markers on a final line of their own were merged above; re-check those.
    for sentence in out:
        words, figures = content_words(sentence.text), numbers(sentence.text)
        for n in sentence.cited:
            if n not in sentence.supported:
                sentence.supported[n] = support(words, figures, by_n[n]) >= SUPPORT_MIN
    return CheckedAnswer(out, dropped)


def _expand(group: str) -> list[int]:
    """ "1, 3" -> [1, 3]; "2-4" -> [2, 3, 4] (ranges capped to stay sane)."""
    numbers_: list[int] = []
    for part in re.split(r"\s*(?:,|;|and|&)\s*", group):
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
            lo, hi = int(bounds[0]), int(bounds[1])
            if 0 < hi - lo <= 20:
                numbers_.extend(range(lo, hi + 1))
                continue
        if part.strip().isdigit():
            numbers_.append(int(part))
    return numbers_


_NO_ANSWER = re.compile(
    r"(sources?|context|passages?|abstracts?|provided (text|information)|information)"
    r"[^.]{0,60}\b(do(es)?\s*n[o']t|did\s*n[o']t|cannot|can't|fail to)\s+"
    r"(answer|contain|provide|mention|include|address|say|discuss|specify|state|cover)"
    r"|\b(can ?not|unable to|can't) (answer|determine|find)"
    r"|\bno (relevant )?information\b"
    r"|\bnot (mentioned|provided|stated|specified|discussed) in the (sources?|context|passages?)",
    re.IGNORECASE,
)


def says_no_answer(answer: str) -> bool:
    """Whether the model declined: its first sentence says the sources do not answer."""
    sentences = split_sentences(answer)
    return bool(sentences) and bool(_NO_ANSWER.search(sentences[0]))


# -- reviewing prose: only supported sentences reach the reader ---------------------

# A line's structure (bullet, numbered item, heading) is kept around its sentences.
_LINE_PREFIX = re.compile(r"^(\s*(?:[-*+•]|\d{1,2}[.)]|#{1,6})\s+)")
_HEADER_PLACEHOLDER = re.compile(r"\((unknown|undated|n\.?d\.?)\)", re.IGNORECASE)
# An invented reference: "Name: Some Title (2019)".
_INVENTED_REF = re.compile(r"\b[A-Z][\w\-]*:\s+[A-Z][^()]{3,120}\((19|20)\d\d\)")
# A title-shaped line, "Name: A Subtitle", is a header, not a statement.
_TITLE_SHAPE = re.compile(r"^[^\s:][^:.]{0,60}:\s+[A-Z][^.]*\.?$")
# Words no finished English sentence ends on, stop or not ("... how models are [2].",
# copied from an abstract cut at "are ..."), and words that end one only when a stop
# follows ("... than it is.").
_DANGLING = frozenset(
    "a an the and or but to of into for with by from at that which whose its their "
    "is are was were".split()
)
_DANGLING_WITHOUT_STOP = frozenset("in on as".split())


_ENUMERATOR_END = re.compile(r"\((?:\d{1,2}|[ivx]{1,4}|[a-h])[.)]\)?$")  # "(1.)", "(ii)", "(b)"
# A clause that opens with one of these needs a main clause after a comma.
_SUBORDINATE = frozenset("while although though because since if when whereas unless".split())


def unfinished(text: str, sources: str = "") -> bool:
    """Whether a sentence stops mid-way: the model ran out, or copied a cut-off abstract.

    Without a final stop, a sentence is also cut when it copies the start of a
    longer sentence of `sources` word for word ("While we made alignment faking
    easier by telling the model when and by what criteria" of "... criteria it
    was being trained, we did not ..."), or is a subordinate clause with no
    main clause ("While X does Y").
    """
    plain = _CITE.sub("", text).strip()
    words = plain.rstrip(" .,;:!?\"')").split()
    if not words:
        return False
    word = words[-1].strip("\"'(").lower()
    stopped = plain.rstrip("\"') ").endswith((".", "!", "?"))
    if word in _DANGLING or (word in _DANGLING_WITHOUT_STOP and not stopped):
        return True
    if _ENUMERATOR_END.search(plain):
        return True  # "To back our arguments: (1.)": the list it opens was cut away
    if stopped:
        return False
    if words[0].lower() in _SUBORDINATE and "," not in plain:
        return True
    return len(words) >= 4 and _copies_start_of_longer(" ".join(words), sources)


def _copies_start_of_longer(plain: str, sources: str) -> bool:
    """Whether `plain` occurs in `sources` followed by more of the same sentence."""
    haystack = " ".join(sources.split()).casefold()
    needle = plain.casefold()
    start = haystack.find(needle)
    while start >= 0:
        rest = haystack[start + len(needle) :].lstrip()
        if rest and rest[0] not in ".!?":
            return True
        start = haystack.find(needle, start + 1)
    return False


REPEAT_JACCARD = 0.7
REPEAT_CONTAINED = 0.85  # this share of a sentence's words already said: a repeat
ECHO_SHARE = 0.8  # a sentence and the question sharing this much both ways: an echo
ECHO_NEW_WORDS = 2  # ... unless it adds this many content words of its own (or a figure)
# A paraphrase that carries the source's exact figures needs fewer of its words.
FIGURE_SUPPORT_MIN = 0.34
# A sentence citing one paper whose words not found there are found in another retrieved
# paper, at least this many and this share: two papers mixed under one citation.
MIX_MIN_WORDS = 2
MIX_SHARE = 0.15
MIN_PROSE_WORDS = 2


@dataclass
class Removed:
    """A model sentence the reader does not see, and why (kept for --json)."""

    text: str
    reason: str  # unsupported, uncited, repeat, header, echo, unknown-paper, off-question, ...
    cited: list[int] = field(default_factory=list)


@dataclass
class Review:
    """The prose as shown: supported sentences only, in the model's own layout."""

    text: str
    sentences: list[CitedSentence]
    removed: list[Removed]
    dropped_citations: int

    @property
    def cited_numbers(self) -> list[int]:
        return CheckedAnswer(self.sentences, 0).cited_numbers

    @property
    def unknown_numbers(self) -> list[str]:
        return CheckedAnswer(self.sentences, 0).unknown_numbers

    @property
    def total(self) -> int:
        return len(self.sentences) + len(self.removed)


# A verb that makes a title's words a statement: "GaLore is a memory-efficient method".
_STATES = re.compile(
    r"\b(is|are|was|were|reduces?|improves?|proposes?|introduces?|uses?|achieves?|"
    r"enables?|allows?|outperforms?|builds?|trains?|learns?)\b",
    re.IGNORECASE,
)


def _title_shaped(text: str) -> bool:
    """ "Name: A Capitalised Subtitle" is how titles look, not how statements do."""
    if not _TITLE_SHAPE.match(text):
        return False
    after = [w for w in text.split(":", 1)[1].split() if len(w) > 3]
    return bool(after) and sum(w[0].isupper() for w in after) >= 0.6 * len(after)


def _title_cased(text: str) -> bool:
    """A line in Title Case without a final stop is a title or heading, not a statement:
    SmolLM2 writes "Training-free Camera Control for Video Diffusion Models" (a source's
    title, altered) or "Horizon-Length Prediction (HLP)" between its sentences."""
    if text.rstrip().endswith((".", "!", "?")):
        return False
    long_words = [w for w in re.findall(r"[A-Za-z][\w\-]*", text) if len(w) > 3]
    return len(long_words) >= 2 and sum(w[0].isupper() for w in long_words) >= 0.75 * len(
        long_words
    )


# Where a sentence joins a second claim to the first: each part must be supported.
_CLAUSE_BREAK = re.compile(
    r",\s*(?:which|where|but|especially|as|making|enabling|allowing|while)\b|;|\s(?:while|whereas)\s",
    re.IGNORECASE,
)
CLAUSE_MIN_WORDS = 2


def unsupported_clause(text: str, sources: list[SourceText]) -> bool:
    """Whether a clause of `text` has less than half its words in every one of `sources`.

    SmolLM2 starts with the source's words and invents the rest: "It uses momentum
    correction and local gradient clipping ... while minimizing memory usage during
    compression." The whole sentence shares enough words; its second clause shares
    one in four. Stems are compared, so a paraphrase's word forms still count.
    """
    parts = _CLAUSE_BREAK.split(text)
    if len(parts) < 2 or not sources:
        return False
    source_stems = [s.stems for s in sources]
    for part in parts:
        stems = set(stem(sorted(content_words(part))))
        if len(stems) < CLAUSE_MIN_WORDS:
            continue
        if all(len(stems & known) < SUPPORT_MIN * len(stems) for known in source_stems):
            return True
    return False


def _echoes_header(text: str, titles: list[str]) -> bool:
    """A sentence that restates a source's header line rather than saying anything."""
    if _HEADER_PLACEHOLDER.search(text) or _title_shaped(text) or _title_cased(text):
        return True
    words = content_words(text)
    folded = " ".join(text.casefold().split())
    for title in titles:
        t_words = content_words(title)
        if not t_words:
            continue
        if " ".join(title.casefold().split()) in folded and len(words - t_words) <= 2:
            return True
        if words and words <= t_words and len(words) >= 0.6 * len(t_words):
            return True
        shared = len(words & t_words)
        if len(words) <= 12 and shared >= max(3, 0.75 * len(words)) and not _STATES.search(text):
            return True  # a title's words said as a phrase; "X is a ..." states something
    return False


def review(
    answer: str, sources: list[SourceText], focus: set[int] | None = None, question: str = ""
) -> Review:
    """Keep the sentences a reader can trust, in the model's layout; list the rest.

    A sentence is removed when its citation is not supported by the cited
    source (or it cites nothing and cannot be attributed), when it repeats an
    earlier sentence, restates a source header, or names a paper or system
    that appears in no source; with `focus` (the papers a question names),
    also when it cites none of them. Lists, paragraphs and headings keep
    their form; a heading is shown only when something under it survives.
    """
    titles = [s.title for s in sources]
    asked = content_words(question)
    texts = {s.n: f"{s.title} {s.passage}" for s in sources}
    known = " ".join(texts.values())
    by_n = {s.n: s for s in sources}
    # In a one-source answer (one source given, or every marker the same) a sentence
    # without a marker belongs to that source: it is checked against it, not dropped.
    marked = {n for m in _CITE.finditer(answer) for n in _expand(m.group(1)) if n in by_n}
    only = next(iter(marked)) if len(marked) == 1 else (sources[0].n if len(sources) == 1 else None)
    kept: list[CitedSentence] = []
    removed: list[Removed] = []
    dropped = 0
    lines_out: list[str] = []
    pending_heading: str | None = None
    seen: list[set[str]] = []
    previous: CitedSentence | None = None  # the sentence before, shown or not
    blank = False
    for line in _attach_marker_lines(answer):
        if not line.strip():
            blank = bool(lines_out)
            continue
        match = _LINE_PREFIX.match(line)
        prefix = match.group(1) if match else ""
        body = line[len(prefix) :]
        if prefix.strip().startswith("#"):
            # A heading's own words need no citation; it stands only above kept text.
            pending_heading = prefix + body.strip() if body.strip() else None
            continue
        checked = check(body, sources)
        dropped += checked.dropped_citations
        shown: list[str] = []
        for sentence in checked.sentences:
            if not sentence.cited and only is not None:
                sentence.cited, sentence.attributed = [only], True
            words, figures = content_words(sentence.text), numbers(sentence.text)
            for n in sentence.cited:
                sentence.supported[n] = supports(words, figures, by_n[n], asked)
            if sentence.cited and not any(sentence.supported.values()) and not sentence.inline:
                # A true sentence under the wrong number ("1,679 problems [1]" where [3]
                # says it) is shown under the source that says it, never under [1]; not
                # when its own words name the source ("introduced in [2]").
                right = [s.n for s in sources if supports(words, figures, s, asked)]
                if len(right) == 1 and len(words) >= MIN_CONTENT_WORDS:
                    sentence.cited, sentence.attributed = right, True
                    sentence.supported = {right[0]: True}
            good = [n for n in sentence.cited if sentence.supported.get(n)]
            if good and len(good) < len(sentence.cited) and not sentence.inline:
                # "1,679 problems [3][2]" where only [3] says it: shown under [3] alone.
                sentence.cited = good
                sentence.supported = {n: True for n in good}
            reason = _verdict(sentence, titles, known, seen, question, texts)
            if not reason and unsupported_clause(
                sentence.text, [by_n[n] for n in sentence.cited if n in by_n]
            ):
                reason = "unsupported"
            if not reason and claims_other_method(
                sentence.text, [by_n[n] for n in sentence.cited if n in by_n]
            ):
                reason = "wrong-paper"
            if not reason and points_elsewhere(
                sentence.text, sentence.cited, previous and previous.cited
            ):
                reason = "wrong-paper"
            if not reason and mixes_papers(sentence, sources, question):
                reason = "mixed-papers"
            if not reason and focus and not set(sentence.cited) & focus:
                reason = "off-question"
            previous = sentence
            if reason:
                removed.append(Removed(sentence.text, reason, list(sentence.cited)))
                continue
            seen.append(content_words(sentence.text))
            kept.append(sentence)
            shown.append(sentence.render())
        if not shown:
            continue
        if blank and lines_out:
            lines_out.append("")
        blank = False
        if pending_heading:
            lines_out.append(pending_heading)
            pending_heading = None
        lines_out.append(prefix + " ".join(shown))
    return Review("\n".join(lines_out).strip(), kept, removed, dropped)


def mixes_papers(sentence: CitedSentence, sources: list[SourceText], question: str = "") -> bool:
    """A sentence citing one paper that carries another retrieved paper's content.

    "X does audio captioning and lip-reading [1]" where lip-reading is paper 2's:
    the words the cited paper lacks, and another paper has (the question's own
    words aside), are the mixed-in part.
    """
    if len(sentence.cited) != 1 or len(sources) < 2:
        return False
    by_n = {s.n: s for s in sources}
    cited = by_n.get(sentence.cited[0])
    if cited is None:
        return False
    words = content_words(sentence.text)
    lacking = words - cited.words - content_words(question)
    others = set().union(*(s.words for s in sources if s.n != cited.n))
    titles = set().union(*(content_words(s.title) for s in sources if s.n != cited.n))
    mixed = lacking & others
    # Shared vocabulary ("sample", "create") is not another paper's content; a word
    # of another paper's title among the mixed-in words is.
    return (
        len(mixed) >= MIX_MIN_WORDS
        and len(mixed) >= MIX_SHARE * len(words)
        and bool(mixed & titles)
    )


def _attach_marker_lines(answer: str) -> list[str]:
    """A line holding only citation markers belongs to the line above it."""
    lines: list[str] = []
    for line in answer.splitlines():
        if line.strip() and not re.search(r"\w", _CITE.sub("", line)) and _CITE.search(line):
            for i in range(len(lines) - 1, -1, -1):
                if lines[i].strip():
                    lines[i] = lines[i].rstrip() + " " + line.strip()
                    break
            continue
        lines.append(line)
    return lines


def _verdict(
    sentence: CitedSentence,
    titles: list[str],
    known: str,
    seen: list[set[str]],
    question: str = "",
    cited_texts: dict[int, str] | None = None,
) -> str | None:
    """Why a sentence must not be shown, or None when it may."""
    words = content_words(sentence.text)
    if len(words) < MIN_PROSE_WORDS:
        return "no-content"
    asked = content_words(question)
    shared = len(words & asked)
    # A restatement that carries something the question did not (a figure, a name,
    # a few words of content) answers it: "BLEU 28.4 on WMT14" for "What BLEU ...?".

    # An acronym spelled out from the question's own words ("word error rate (WER)") is
    # nothing new either: "Yes, the word error rate (WER) does reflect ..." only says yes.
    spelled = {
        a.casefold()
        for a in re.findall(r"\(([A-Z]{2,})\)", sentence.text)
        if spelled_before(a, sentence.text, question.casefold())
    }
    new = set(stem(sorted(words - spelled - {"yes", "no"}))) - set(stem(sorted(asked)))
    adds = len(new) >= ECHO_NEW_WORDS or bool(numbers(sentence.text) - numbers(question))
    if re.match(r"\s*(question|answer|sources?)\s*:", sentence.text, re.IGNORECASE) or (
        asked and not adds and shared >= ECHO_SHARE * len(words)
    ):
        return "echo"  # the prompt or the question said back, adding nothing
    if _echoes_header(sentence.text, titles):
        return "header"
    if unfinished(sentence.text, known):
        return "cut-off"  # the model stopped mid-sentence ("... integrating length extension into")
    # A size the question itself says ("a 10B+ parameter model") is no invented name.
    sizes = " ".join(SIZE.findall(question))
    if _INVENTED_REF.search(sentence.text) or foreign_names(sentence.text, f"{known} {sizes}"):
        return "unknown-paper"
    if sentence.cited and cited_texts:
        cited = " ".join(cited_texts.get(n, "") for n in sentence.cited)
        if foreign_names(sentence.text, f"{cited} {sizes}") or names_other_paper(
            sentence.text, titles, cited
        ):
            return "wrong-paper"  # names something from another source than the one it cites
    for earlier in seen:
        union = words | earlier
        if union and len(words & earlier) / len(union) >= REPEAT_JACCARD:
            return "repeat"
        if len(words & earlier) >= REPEAT_CONTAINED * len(words):  # a cut-off copy
            return "repeat"
    if not sentence.cited:
        return "uncited"
    if not all(sentence.supported.get(n, False) for n in sentence.cited):
        return "unsupported"
    return None
