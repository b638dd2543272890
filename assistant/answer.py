"""Grounded answers: evidence first, then the model's prose, shown only where supported.

A small local model writes poor prose, so it must not be able to make the
answer poor. For every retrieved paper the sentences that answer the
question are selected from its abstract and quoted verbatim (`evidence`);
the model sees those sentences (fenced and labelled as untrusted data, with
the instructions only in the system message) and writes a short answer;
every sentence of it is then reviewed (`citations.review`) and shown only
when the source it cites supports it. When nothing survives, the reader gets
the evidence itself, said plainly. Whether to answer at all is decided on
the whole evidence (`evidence.answerability`), not on one cosine.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from . import codec, prompts
from .citations import Removed, Review, SourceText, review, says_no_answer
from .evidence import (
    ABSTAIN_SIMILARITY,
    Answerability,
    Quote,
    answerability,
    asks_for_several,
    fetch_abstracts,
    select_evidence,
)
from .tokens import count_message_tokens, count_tokens

if TYPE_CHECKING:
    import threading

    from .llm import ModelClient
    from .retrieve import Filters, Hit, Retriever

__all__ = ["ABSTAIN_SIMILARITY", "ABSTAIN_TEXT", "Answer", "ask", "build_messages"]

ANSWER_MAX_TOKENS = 200
PROMPT_MARGIN_TOKENS = 64
PROMPT_QUOTES_PER_SOURCE = 3  # evidence sentences the model sees per paper
SHOWN_QUOTES_PER_SOURCE = 2  # evidence sentences the reader sees per paper
MAX_EVIDENCE_SOURCES = 4
WHOLE_ABSTRACT_TOKENS = 450  # an abstract up to this long goes to the model whole ...
WHOLE_ABSTRACT_SOURCES = 2  # ... for the strongest sources; the rest give their evidence
EVIDENCE_RELATIVE = 0.85  # a paper's evidence is shown when it scores this share of the best
EVIDENCE_RELATIVE_PLURAL = 0.6  # ... a lower bar when the question asks for several papers
# Earlier turns a follow-up is condensed against: all that is loaded from a session for a question.
ABSTAIN_TEXT = (
    "The library has nothing on this: none of the papers retrieved for the question answers it."
)
UNSUPPORTED_LEAD = "The model's answer was not supported by the sources; here is what they say:"
# The retrieval found sources that can answer, but the model declined: its refusal is
# about itself, not about the library, so the reader gets the sources' own words.
DECLINED_LEAD = "The model did not answer from these sources; here is what they say:"
NEAREST_SOURCES = 3  # titles named after "the nearest are"
NO_PROSE_LEAD = "The model gave no answer of its own; here is what the sources say:"


@dataclass
class Source:
    n: int
    paper_id: str
    title: str
    published: date | None
    passage: str
    url: str | None
    similarity: float | None = field(default=None, metadata=codec.rounded(4))
    # The whole stored abstract (evidence is quoted from it); not stored with a turn.
    abstract: str = field(default="", metadata=codec.SKIP)


@dataclass
class Citation:
    n: int
    paper_id: str
    title: str
    supported: bool


@dataclass
class Usage:
    JSON_DERIVED: ClassVar[tuple[str, ...]] = ("overhead_s",)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_s: float | None = field(default=None, metadata=codec.rounded(3))
    total_s: float = field(default=0.0, metadata=codec.rounded(3))
    retrieval_s: float = field(default=0.0, metadata=codec.rounded(4))
    model_s: float = field(default=0.0, metadata=codec.rounded(4))

    @property
    def overhead_s(self) -> float:
        """Time spent outside the model: retrieval, prompt building, checking."""
        return round(max(0.0, self.total_s - self.model_s), 4)


@dataclass
class Answer:
    """One answer, live or read back from a stored turn (`Answer.from_dict`): one shape."""

    question: str
    # The prose as shown (supported sentences only), or a plain lead-in.
    text: str = field(metadata=codec.renamed("answer"))
    citations: list[Citation]
    sources: list[Source]
    abstained: bool
    usage: Usage
    raw: str = field(default="", metadata=codec.SKIP)  # what the model wrote, before checking
    model: str | None = None
    dropped_citations: int = 0
    unknown_numbers: list[str] = field(default_factory=list)
    abstain_reason: str | None = None  # "retrieval", "model" or "cancelled"
    standalone_question: str | None = None
    evidence: list[Quote] = field(default_factory=list)  # verbatim, shown under the prose
    removed: list[Removed] = field(default_factory=list)  # model sentences not shown, with why
    prose_sentences: int = 0  # model sentences reviewed (kept + removed)
    prose_supported: bool = False  # whether any of the model's own sentences is shown
    answerability: Answerability | None = None
    model_declined: bool = False  # the model said the sources do not answer; evidence shown

    @property
    def cited_sources(self) -> list[Source]:
        """The sources some citation points at, in source order: the references of an
        answer wherever it is shown (`ask`, the chat's sources panel, an export)."""
        numbers = {c.n for c in self.citations}
        return [s for s in self.sources if s.n in numbers]

    def supported(self, source: Source) -> bool:
        """Whether the answer's citation of `source` is supported by that source."""
        return any(c.n == source.n and c.supported for c in self.citations)

    def quotes(self, source: Source) -> list[Quote]:
        """The evidence quoted from `source`, in the order shown."""
        return [q for q in self.evidence if q.n == source.n]

    def evidence_by_source(self) -> list[tuple[Source, list[Quote]]]:
        """The evidence grouped per paper, in citation order: each paper's words side by side."""
        by_n = {s.n: s for s in self.sources}
        groups: dict[int, list[Quote]] = {}
        for quote in self.evidence:
            groups.setdefault(quote.n, []).append(quote)
        return [(by_n[n], quotes) for n, quotes in groups.items() if n in by_n]

    def evidence_text(self) -> str:
        """The evidence as Markdown: a list item per paper, its quotes nested under it."""
        lines = []
        for source, quotes in self.evidence_by_source():
            lines.append(f"- [{source.n}] *{_md(source.title)}*")
            lines.extend(f"    - “{_md(q.text)}”" for q in quotes)
        return "\n".join(lines)

    def full_text(self) -> str:
        """Prose and evidence together (Markdown), as the chat shows and stores a turn."""
        if self.abstained or not self.evidence:
            return self.text
        return f"{self.text}\n\n**Evidence**\n\n{self.evidence_text()}"

    def to_dict(self) -> dict[str, Any]:
        """What `ask --json` prints and a chat turn stores; each quote carries its paper's
        title for readers of the JSON (`from_dict` ignores it)."""
        data = codec.encode(self)
        titles = {s.n: s.title for s in self.sources}
        for quote in data["evidence"]:
            quote["title"] = titles.get(quote["n"], "")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Answer:
        """A stored answer read back (`to_dict`'s inverse; older records read leniently)."""
        return codec.decode(cls, data or {})


def _md(text: str) -> str:
    """Abstract text shown as Markdown stays literal (asterisks, underscores, brackets)."""
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", " ".join(text.split()))


_FENCE = re.compile(r"-{3,}\s*(BEGIN|END)\b", re.IGNORECASE)


def _fence(text: str) -> str:
    """Keep source text from closing (or reopening) the fence around the sources."""
    return _FENCE.sub(lambda m: "- " + m.group(1).lower(), " ".join(text.split()))


def prompt_sources() -> str:
    """What the model reads per source: "abstracts" (whole, when short) or "evidence".

    Measured on both models (README "How an answer is built"): given only the
    selected sentences, a 1.5B model often says the sources do not answer;
    given the whole short abstract it answers. `ASSISTANT_ANSWER_SOURCES=evidence`
    restores the selected sentences, for comparing the two.
    """
    value = os.environ.get("ASSISTANT_ANSWER_SOURCES", "abstracts").strip().lower()
    return value if value in ("abstracts", "evidence") else "abstracts"


def source_block(source: Source, quotes: list[Quote] | None = None, whole: bool = False) -> str:
    """One source as the model sees it: its number, title and text (no placeholders).

    `whole`: the stored abstract when it is short enough, else the evidence."""
    if whole and source.abstract and count_tokens(source.abstract) <= WHOLE_ABSTRACT_TOKENS:
        passage = source.abstract
    else:
        passage = " ".join(q.text for q in quotes) if quotes else source.passage
    return prompts.render(
        "source", n=str(source.n), title=_fence(source.title), passage=_fence(passage)
    )


def build_messages(
    question: str,
    sources: list[Source],
    context_window: int,
    max_tokens: int = ANSWER_MAX_TOKENS,
    evidence: dict[int, list[Quote]] | None = None,
) -> tuple[list[dict], list[Source]]:
    """The chat messages, with as many sources (strongest first) as the window allows.

    With `evidence`, each source carries its selected sentences instead of
    the whole passage: a smaller prompt a small model reads faster and
    parrots less.
    """
    evidence = evidence or {}
    system = prompts.load("answer_system")
    empty = [
        {"role": "system", "content": system},
        {"role": "user", "content": prompts.render("answer_user", sources="", question=question)},
    ]
    budget = context_window - max_tokens - PROMPT_MARGIN_TOKENS - count_message_tokens(empty)
    kept: list[Source] = []
    blocks: list[str] = []
    whole = prompt_sources() == "abstracts"
    for i, source in enumerate(sources):  # strongest first: the weakest are left out
        block = source_block(
            source, evidence.get(source.n), whole=whole and i < WHOLE_ABSTRACT_SOURCES
        )
        cost = count_tokens(block) + 2
        if cost > budget and whole and i < WHOLE_ABSTRACT_SOURCES and source.n in evidence:
            block = source_block(source, evidence.get(source.n))  # the evidence fits
            cost = count_tokens(block) + 2
        if cost > budget:
            break
        budget -= cost
        kept.append(source)
        blocks.append(block)
    user = prompts.render("answer_user", sources="\n\n".join(blocks), question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}], kept


def sources_from_hits(hits: list[Hit]) -> list[Source]:
    return [
        Source(
            n=i,
            paper_id=h.paper_id,
            title=h.title,
            published=h.published,
            passage=h.passage,
            url=h.url,
            similarity=h.similarity,
        )
        for i, h in enumerate(hits, start=1)
    ]


def ask(
    question: str,
    retriever: Retriever,
    client: ModelClient | None,
    *,
    k: int = 4,
    filters: Filters | None = None,
    context_window: int = 8192,
    on_token: Callable[[str], None] | None = None,
    stream: bool = True,
    cancel: threading.Event | None = None,
    standalone_question: str | None = None,
) -> Answer:
    """Answer `question` from the library, every claim cited by paper title.

    `standalone_question` (from `condense`) is what is retrieved and asked
    when the question is a follow-up; `question` is what the user typed.
    """
    started = time.perf_counter()
    query = standalone_question or question
    hits = retriever.search(query, k=k, filters=filters)
    sources = sources_from_hits(hits)
    abstracts = fetch_abstracts(retriever.library, [s.paper_id for s in sources])
    for source in sources:
        source.abstract = abstracts.get(source.paper_id) or source.passage
    verdict = answerability(query, sources, abstracts, library_says(retriever))
    sources = _named_first(sources, verdict)
    retrieval_s = time.perf_counter() - started
    usage = Usage(retrieval_s=retrieval_s)

    if not verdict.answerable:
        usage.total_s = time.perf_counter() - started
        return Answer(
            question,
            abstain_text(verdict, sources),
            [],
            sources,
            True,
            usage,
            abstain_reason="retrieval",
            standalone_question=standalone_question,
            answerability=verdict,
        )

    if client is None:
        from .errors import NotConfigured

        raise NotConfigured("no model endpoint configured: set OPENAI_BASE_URL")
    quotes = select_evidence(
        query,
        sources,
        abstracts,
        retriever.embedder,
        per_source=PROMPT_QUOTES_PER_SOURCE,
        focus=set(verdict.named),
    )
    messages, kept = build_messages(query, sources, context_window, evidence=quotes)
    result = client.chat(
        messages,
        stream=stream,
        on_token=on_token,
        cancel=cancel,
        max_tokens=ANSWER_MAX_TOKENS,
        temperature=0.0,
    )
    usage.model_s = result.total_s
    usage.prompt_tokens = result.prompt_tokens or 0
    usage.completion_tokens = result.completion_tokens or 0
    usage.first_token_s = (
        retrieval_s + result.first_token_s if result.first_token_s is not None else None
    )

    if cancel is not None and cancel.is_set() and not result.text.strip():
        # Stopped before the model wrote anything: nothing to review or to stand in for.
        usage.total_s = time.perf_counter() - started
        return Answer(
            question,
            ABSTAIN_TEXT,
            [],
            sources,
            True,
            usage,
            abstain_reason="cancelled",
            standalone_question=standalone_question,
            answerability=verdict,
        )
    answer = finish(question, result.text, kept, sources, quotes, verdict)
    answer.usage, answer.model = usage, result.model
    answer.standalone_question = standalone_question
    usage.total_s = time.perf_counter() - started
    return answer


def abstain_text(verdict: Answerability | None, sources: list[Source]) -> str:
    """What an abstention says: the library's verdict, true when said.

    A question about a version the library does not hold ("Llama 5" beside Llama 3
    work) is told so, with the nearest papers named as neighbours, not cited as answers.
    """
    if verdict is None or not verdict.absent or not sources:
        return ABSTAIN_TEXT
    nearest = "; ".join(f"“{' '.join(s.title.split())}”" for s in sources[:NEAREST_SOURCES])
    absent = " or ".join(verdict.absent)
    return f"No paper in the library is about {absent}; the nearest are {nearest}."


def library_says(retriever: Retriever) -> Callable[[str], bool]:
    """Whether any paper of the library (not only the retrieved ones) says a name.

    The keyword index finds the candidates (every paper holding the name's words
    ranks), and their stored titles and abstracts are read for the exact name.
    """
    from .evidence import version_pattern

    def says(name: str) -> bool:
        keyword = getattr(retriever, "_keyword", None)
        if keyword is None:
            return False
        pattern = version_pattern(name)
        pids = [pid for pid, _ in keyword.search(name, 50)]
        if not pids:
            return False
        texts = fetch_abstracts(retriever.library, pids)
        papers = retriever.papers
        return any(
            pattern.search(f"{papers.get(pid, {}).get('title', '')} {texts.get(pid, '')}")
            for pid in pids
        )

    return says


def _named_first(sources: list[Source], verdict: Answerability) -> list[Source]:
    """Papers the question names go first (and are renumbered): the model cites [1] most."""
    if not verdict.named or verdict.named == list(range(1, len(verdict.named) + 1)):
        return sources
    named = [s for s in sources if s.n in verdict.named]
    ordered = named + [s for s in sources if s.n not in verdict.named]
    renumber = {s.n: i for i, s in enumerate(ordered, start=1)}
    verdict.named = sorted(renumber[n] for n in verdict.named)
    for source in ordered:
        source.n = renumber[source.n]
    return ordered


def _source_texts(sources: list[Source]) -> list[SourceText]:
    """What prose is checked against: each paper's whole abstract, not just the quotes."""
    return [
        SourceText(
            s.n, s.title, s.abstract or s.passage, s.published.isoformat() if s.published else ""
        )
        for s in sources
    ]


def finish(
    question: str,
    raw: str,
    kept: list[Source],
    sources: list[Source],
    quotes: dict[int, list[Quote]] | None = None,
    verdict: Answerability | None = None,
) -> Answer:
    """Turn the model's text into a reviewed answer with its evidence (or an abstention)."""
    quotes = quotes or {}
    refused = not raw.strip() or says_no_answer(raw)
    named = bool(verdict and verdict.named)
    model_refused = dict(raw=raw, abstain_reason="model", answerability=verdict)
    if refused and (verdict is None or not verdict.answerable):
        # No retrieval verdict to stand on: the refusal is all there is.
        return Answer(question, ABSTAIN_TEXT, [], sources, True, Usage(), **model_refused)
    focus = set(verdict.named) if named and verdict else None
    checked: Review = review(
        "" if refused else raw, _source_texts(kept), focus=focus, question=question
    )
    by_n = {s.n: s for s in sources}
    # A model that wrote only markers ("[2] [1]") still pointed at papers: theirs go first.
    # Markers under sentences the review removed point nowhere trustworthy: retrieval's
    # order stands (SmolLM2 put an unrelated [2] before MetaShift for a MetaShift question).
    pointed = checked.cited_numbers or (
        [n for n in _markers(raw) if n in by_n] if not checked.removed else []
    )
    evidence = _shown_evidence(
        quotes,
        pointed,
        verdict,
        plural=asks_for_several(question),
        similarity={s.n: s.similarity or 0.0 for s in sources},
    )
    if checked.sentences:
        text, prose = checked.text, True
    elif refused and raw.strip():
        text, prose = DECLINED_LEAD, False
    else:
        text, prose = (NO_PROSE_LEAD if refused or not checked.removed else UNSUPPORTED_LEAD), False
    if not checked.sentences and not evidence:
        return Answer(
            question,
            ABSTAIN_TEXT,
            [],
            sources,
            True,
            Usage(),
            **model_refused,
            removed=checked.removed,
            prose_sentences=checked.total,
        )
    numbers = list(dict.fromkeys(checked.cited_numbers + [q.n for q in evidence]))
    citations = [Citation(n, by_n[n].paper_id, by_n[n].title, True) for n in numbers if n in by_n]
    return Answer(
        question,
        text,
        citations,
        sources,
        False,
        Usage(),
        raw=raw,
        dropped_citations=checked.dropped_citations,
        unknown_numbers=checked.unknown_numbers,
        evidence=evidence,
        removed=checked.removed,
        prose_sentences=checked.total,
        prose_supported=prose,
        answerability=verdict,
        model_declined=refused and bool(raw.strip()),
    )


def _markers(raw: str) -> list[int]:
    return list(dict.fromkeys(int(m) for m in re.findall(r"\[(\d+)\]", raw)))


def _shown_evidence(
    quotes: dict[int, list[Quote]],
    cited: list[int],
    verdict: Answerability | None,
    plural: bool = False,
    similarity: dict[int, float] | None = None,
) -> list[Quote]:
    """The quotes the reader sees: the named papers', the cited ones', and the strongest.

    Grouped per paper in citation order, so a multi-paper question shows
    each paper's own words side by side. For "which papers ..." the papers
    are those retrieval ranks near its first (`similarity`, as `search`
    ranks them), whatever their best sentence scores: Momentum-GS is a
    Gaussian-splatting paper even when its sentences share fewer words.
    """
    if not quotes:
        return []
    best = {n: max(q.score for q in qs) for n, qs in quotes.items() if qs}
    if not best:
        return []
    top = max(best.values())
    if verdict and verdict.named:
        chosen = [n for n in verdict.named if n in best]
        chosen += [n for n in cited if n in best and n not in chosen]
    else:
        # What the model cites, the retrieval's first paper always, then any paper
        # whose evidence is nearly as strong as the best.
        chosen = [n for n in cited if n in best]
        chosen += [n for n in [1] if n in best and n not in chosen]
        bar = EVIDENCE_RELATIVE_PLURAL if plural else EVIDENCE_RELATIVE
        strong = sorted((n for n in best if best[n] >= bar * top), key=lambda n: -best[n])
        chosen += [n for n in strong if n not in chosen]
        if plural and similarity:
            first = max(similarity.values())
            near = sorted(
                (n for n in best if similarity.get(n, 0.0) >= EVIDENCE_RELATIVE * first),
                key=lambda n: -similarity[n],
            )
            chosen += [n for n in near if n not in chosen]
    out: list[Quote] = []
    focus = set(verdict.named) if verdict else set()
    for n in chosen[:MAX_EVIDENCE_SOURCES]:
        # One paper's evidence gets a sentence more, unless papers are to be compared.
        single = (n in focus and len(focus) == 1) or (not focus and not plural and n == chosen[0])
        width = SHOWN_QUOTES_PER_SOURCE + (1 if single else 0)
        strongest = sorted(quotes[n], key=lambda q: -q.score)[:width]
        out.extend(sorted(strongest, key=lambda q: q.start))
    return out


def extract_sentence(question: str, passage: str) -> str:
    """The passage sentence sharing most content words with the question."""
    from .text import content_words, split_sentences

    wanted = content_words(question)
    sentences = split_sentences(passage) or [passage]
    best = max(
        range(len(sentences)),  # ties go to the earliest sentence
        key=lambda i: (len(wanted & content_words(sentences[i])), -i),
    )
    return sentences[best]
