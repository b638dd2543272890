"""Follow-up questions: "how does it compare?" rewritten into a question that retrieves.

A chat turn and `ask -c` both answer a follow-up in the light of the turns
before it; only the rewrite (prompts/condense.md) sees the history, so
retrieval and the answer work on one standalone question.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import prompts

if TYPE_CHECKING:
    from .answer import Answer
    from .llm import ModelClient

CONDENSE_TURNS = 3  # earlier turns the rewrite sees

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


def condense(
    history: list[Turn],
    question: str,
    client: ModelClient | None,
    cancel: threading.Event | None = None,
) -> str:
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
    from .errors import LLMError, ModelTimeout

    lines = []
    for turn in history[-CONDENSE_TURNS:]:
        lines.append(f"User: {turn.question}")
        if turn.answer_text:
            titles = "; ".join(c.title for c in (turn.answer.citations if turn.answer else []))
            answer = re.sub(r"\[\d+\??\]", "", turn.answer_text).strip()
            lines.append(f"Assistant: {answer[:600]}" + (f" (papers: {titles})" if titles else ""))
    prompt = prompts.render("condense", history="\n".join(lines), question=question)
    try:
        result = client.chat(
            [{"role": "user", "content": prompt}], max_tokens=80, temperature=0.0, cancel=cancel
        )
    except ModelTimeout:
        raise
    except LLMError:
        return fallback
    if result.finish_reason == "cancelled":
        return fallback
    text = result.text.strip()
    rewritten = text.splitlines()[0].strip().strip('"') if text else ""
    rewritten = re.sub(r"^(standalone question|question)\s*:\s*", "", rewritten, flags=re.I)
    from .text import content_words

    own = content_words(question) - {"compare", "compared", "comparison"}
    if (
        not rewritten
        or len(rewritten) > 4 * len(question) + 200
        or (own and not own & content_words(rewritten))
        # said back unchanged, "it" still unresolved (SmolLM2 does this with "How much
        # memory does it save?"): retrieval would search for "it"
        or rewritten.rstrip("?. ").casefold() == question.rstrip("?. ").casefold()
    ):
        return fallback
    return rewritten
