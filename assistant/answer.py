"""Grounded answers: retrieve, prompt with fenced sources, stream, check every citation.

The instructions live in the system message; abstracts go into the user
message fenced in `<source>` blocks and labelled as untrusted data, so a
sentence inside an abstract cannot become an instruction. The answer is then
checked by `citations.check` and the model never has the last word on what
counts as a citation.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from . import prompts
from .citations import CheckedAnswer, SourceText, check, says_no_answer
from .tokens import count_message_tokens, count_tokens

if TYPE_CHECKING:
    import threading

    from .llm import ModelClient
    from .retrieve import Filters, Hit, Retriever

# Abstain without asking the model when the best passage's cosine similarity
# to the question is below this. Calibrated on eval/questions.jsonl: see
# bench/calibrate.py and the README's "Abstention threshold" section.
ABSTAIN_SIMILARITY = 0.36
ANSWER_MAX_TOKENS = 256
PROMPT_MARGIN_TOKENS = 64
ABSTAIN_TEXT = (
    "The library has nothing on this: none of the papers retrieved for the question "
    "answers it."
)


@dataclass
class Source:
    n: int
    paper_id: str
    title: str
    published: date | None
    passage: str
    url: str | None
    similarity: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "paper_id": self.paper_id, "title": self.title,
            "published": self.published.isoformat() if self.published else None,
            "passage": self.passage, "url": self.url,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
        }


@dataclass
class Citation:
    n: int
    paper_id: str
    title: str
    supported: bool

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "paper_id": self.paper_id, "title": self.title,
                "supported": self.supported}


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_s: float | None = None
    total_s: float = 0.0
    retrieval_s: float = 0.0
    model_s: float = 0.0

    @property
    def overhead_s(self) -> float:
        """Time spent outside the model: retrieval, prompt building, checking."""
        return max(0.0, self.total_s - self.model_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "first_token_s": None if self.first_token_s is None else round(self.first_token_s, 3),
            "total_s": round(self.total_s, 3),
            "retrieval_s": round(self.retrieval_s, 4),
            "overhead_s": round(self.overhead_s, 4),
        }


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation]
    sources: list[Source]
    abstained: bool
    usage: Usage
    raw: str = ""  # what the model wrote, before checking
    model: str | None = None
    dropped_citations: int = 0
    unknown_numbers: list[str] = field(default_factory=list)
    abstain_reason: str | None = None  # "retrieval" or "model"
    standalone_question: str | None = None

    @property
    def cited_sources(self) -> list[Source]:
        numbers = {c.n for c in self.citations}
        return [s for s in self.sources if s.n in numbers]

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "answer": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "sources": [s.to_dict() for s in self.sources],
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
            "dropped_citations": self.dropped_citations,
            "unknown_numbers": self.unknown_numbers,
            "model": self.model,
            "usage": self.usage.to_dict(),
        }


_FENCE = re.compile(r"-{3,}\s*(BEGIN|END)\b", re.IGNORECASE)


def _fence(text: str) -> str:
    """Keep source text from closing (or reopening) the fence around the sources."""
    return _FENCE.sub(lambda m: "- " + m.group(1).lower(), " ".join(text.split()))


def source_block(source: Source) -> str:
    return prompts.render(
        "source", n=str(source.n), title=_fence(source.title),
        published=source.published.isoformat() if source.published else "unknown",
        passage=_fence(source.passage),
    )


def build_messages(question: str, sources: list[Source], context_window: int,
                   max_tokens: int = ANSWER_MAX_TOKENS) -> tuple[list[dict], list[Source]]:
    """The chat messages, with as many sources (strongest first) as the window allows."""
    system = prompts.load("answer_system")
    empty = [{"role": "system", "content": system},
             {"role": "user", "content": prompts.render("answer_user", sources="",
                                                        question=question)}]
    budget = context_window - max_tokens - PROMPT_MARGIN_TOKENS - count_message_tokens(empty)
    kept: list[Source] = []
    for source in sources:  # strongest first: the weakest are the ones left out
        cost = count_tokens(source_block(source)) + 2
        if cost > budget:
            break
        budget -= cost
        kept.append(source)
    user = prompts.render("answer_user", sources="\n\n".join(source_block(s) for s in kept),
                          question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}], kept


def sources_from_hits(hits: list[Hit]) -> list[Source]:
    return [Source(n=i, paper_id=h.paper_id, title=h.title, published=h.published,
                   passage=h.passage, url=h.url, similarity=h.similarity)
            for i, h in enumerate(hits, start=1)]


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
    retrieval_s = time.perf_counter() - started
    sources = sources_from_hits(hits)
    usage = Usage(retrieval_s=retrieval_s)

    best = max((s.similarity or 0.0 for s in sources), default=0.0)
    if not sources or best < ABSTAIN_SIMILARITY:
        usage.total_s = time.perf_counter() - started
        return Answer(question, ABSTAIN_TEXT, [], sources, True, usage,
                      abstain_reason="retrieval", standalone_question=standalone_question)

    if client is None:
        from .llm import NotConfigured

        raise NotConfigured("no model endpoint configured: set OPENAI_BASE_URL")
    messages, kept = build_messages(query, sources, context_window)
    result = client.chat(messages, stream=stream, on_token=on_token, cancel=cancel,
                         max_tokens=ANSWER_MAX_TOKENS, temperature=0.0)
    usage.model_s = result.total_s
    usage.prompt_tokens = result.prompt_tokens or 0
    usage.completion_tokens = result.completion_tokens or 0
    usage.first_token_s = (retrieval_s + result.first_token_s
                           if result.first_token_s is not None else None)

    answer = finish(question, result.text, kept, sources)
    answer.usage, answer.model = usage, result.model
    answer.standalone_question = standalone_question
    usage.total_s = time.perf_counter() - started
    return answer


def finish(question: str, raw: str, kept: list[Source], sources: list[Source]) -> Answer:
    """Turn the model's text into a checked answer (or an abstention)."""
    if not raw.strip() or says_no_answer(raw):
        return Answer(question, ABSTAIN_TEXT, [], sources, True, Usage(), raw=raw,
                      abstain_reason="model")
    checked: CheckedAnswer = check(raw, [
        SourceText(s.n, s.title, s.passage, s.published.isoformat() if s.published else "")
        for s in kept
    ])
    by_n = {s.n: s for s in kept}
    if not checked.sentences and kept:
        # The model wrote only citation markers (small models do): answer with the
        # sentence of the first cited (else the best) passage closest to the question.
        chosen = by_n.get(_first_marker(raw, by_n), kept[0])
        sentence = extract_sentence(question, chosen.passage)
        checked = check(f"{sentence} [{chosen.n}]", [
            SourceText(chosen.n, chosen.title, chosen.passage,
                       chosen.published.isoformat() if chosen.published else "")])
    if not checked.sentences:
        return Answer(question, ABSTAIN_TEXT, [], sources, True, Usage(), raw=raw,
                      abstain_reason="model")
    citations = [Citation(n, by_n[n].paper_id, by_n[n].title, checked.supported(n))
                 for n in checked.cited_numbers]
    return Answer(question, checked.text, citations, sources, False, Usage(), raw=raw,
                  dropped_citations=checked.dropped_citations,
                  unknown_numbers=checked.unknown_numbers)


def _first_marker(raw: str, by_n: dict[int, Source]) -> int | None:
    for match in re.finditer(r"\[(\d+)", raw):
        if int(match.group(1)) in by_n:
            return int(match.group(1))
    return None


def extract_sentence(question: str, passage: str) -> str:
    """The passage sentence sharing most content words with the question."""
    from .citations import content_words, split_sentences

    wanted = content_words(question)
    sentences = split_sentences(passage) or [passage]
    best = max(range(len(sentences)),  # ties go to the earliest sentence
               key=lambda i: (len(wanted & content_words(sentences[i])), -i))
    return sentences[best]


# -- follow-up questions ------------------------------------------------------------

_ANAPHORA = re.compile(
    r"\b(it|its|they|them|their|this|that|these|those|the (first|second|third|last|same|"
    r"former|latter|paper|method|approach|model|one)|above|compare[sd]?|and (how|what|why)|"
    r"what about|how about|also|else|another|other)\b",
    re.IGNORECASE,
)


@dataclass
class Turn:
    """One exchange of a conversation; its answer keeps its own citations."""

    question: str
    answer: Answer | None = None

    @property
    def answer_text(self) -> str:
        return self.answer.text if self.answer else ""


def condense(history: list[Turn], question: str, client: ModelClient | None,
             cancel: threading.Event | None = None) -> str:
    """Rewrite a follow-up into a standalone question (prompts/condense.md).

    A question that refers to nothing earlier is returned as it is, without a
    model call. A small model's rewrite that comes back empty, rambling or
    without the follow-up's own key words is replaced by the follow-up with
    the previous question appended, which still retrieves the right papers.

    `cancel` (Esc in the chat) stops the rewrite at once and returns that
    fallback; the caller's answer call sees the same event and stops too. A
    model or endpoint error also falls back, since the rewrite is optional and
    the answer call reports the endpoint's state itself, except a timeout: the
    answer call would wait it out a second time, so it is raised. Anything
    else is a bug and propagates.
    """
    if not history or not _ANAPHORA.search(question):
        return question
    previous = history[-1]
    fallback = f"{question} (following: {previous.question})"
    if client is None:
        return fallback
    from .llm import LLMError, ModelTimeout

    lines = []
    for turn in history[-3:]:
        lines.append(f"User: {turn.question}")
        if turn.answer_text:
            titles = "; ".join(c.title for c in (turn.answer.citations if turn.answer else []))
            answer = re.sub(r"\[\d+\??\]", "", turn.answer_text).strip()
            lines.append(f"Assistant: {answer[:600]}" + (f" (papers: {titles})" if titles else ""))
    prompt = prompts.render("condense", history="\n".join(lines), question=question)
    try:
        result = client.chat([{"role": "user", "content": prompt}], max_tokens=80,
                             temperature=0.0, cancel=cancel)
    except ModelTimeout:
        raise
    except LLMError:
        return fallback
    if result.finish_reason == "cancelled":
        return fallback
    text = result.text.strip()
    rewritten = text.splitlines()[0].strip().strip('"') if text else ""
    rewritten = re.sub(r"^(standalone question|question)\s*:\s*", "", rewritten, flags=re.I)
    from .citations import content_words

    own = content_words(question) - {"compare", "compared", "comparison"}
    if (not rewritten or len(rewritten) > 4 * len(question) + 200
            or (own and not own & content_words(rewritten))):
        return fallback
    return rewritten
