"""Step 5a: the model's part, two calls per theme, each prompt measured against the window.

1. A proposed name (kept only if `naming.valid_name` accepts it).
2. A few sentences comparing the theme's papers, from the table's cells of the
   papers nearest the theme's centre: as many as fit the window, so a theme of
   200 papers costs the same two calls as a theme of three. The table covers
   every paper; the prose compares the core of the theme.

Everything that comes from a paper goes inside the untrusted-data fence; the
instructions (prompts/digest_*.md) hold no paper text.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .. import prompts
from ..tokens import count_message_tokens, count_tokens, encoder
from .check import check_prose
from .data import DigestPaper, Theme
from .naming import accept_model_name
from .themes import central_order

if TYPE_CHECKING:
    from ..llm import ModelClient

# The answer budget of one prose call: about 75 tokens a sentence, so the
# fourth sentence of a careful model is not cut at the limit (200 cut 4 of the
# stronger model's 25 sentences on the 2024 sample).
SECTION_TOKENS = 300
SECTION_SENTENCES = 4
NAME_TOKENS = 16
PROSE_PAPERS = 6  # the prose compares at most this many papers of a theme
PROMPT_MARGIN_TOKENS = 48
CELL_TOKENS = 70  # one cell inside a prompt is cut to this many tokens


class Writer:
    """Model calls for one digest, each prompt checked against the context window."""

    def __init__(self, client: ModelClient, context_window: int, section_tokens: int):
        self.client = client
        self.context_window = context_window
        self.section_tokens = section_tokens
        self.system = prompts.load("digest_system")
        self.calls = 0
        self.prompt_tokens = 0
        self.max_prompt_tokens = 0

    def chat(self, user: str, max_tokens: int) -> str:
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": user}]
        size = count_message_tokens(messages)
        if size + max_tokens > self.context_window:
            raise AssertionError(f"digest prompt of {size} tokens exceeds the window")
        self.calls += 1
        self.prompt_tokens += size
        self.max_prompt_tokens = max(self.max_prompt_tokens, size)
        return self.client.chat(messages, max_tokens=max_tokens, temperature=0.0).text

    def room(self, template: str, max_tokens: int, **fixed: str) -> int:
        """Tokens left for the variable part of a prompt."""
        empty = prompts.render(template, **fixed)
        used = count_message_tokens(
            [{"role": "system", "content": self.system}, {"role": "user", "content": empty}]
        )
        return self.context_window - used - max_tokens - PROMPT_MARGIN_TOKENS


def clip(text: str, tokens: int) -> str:
    """`text` cut to `tokens` tokens (with an ellipsis when cut)."""
    enc = encoder()
    if enc is None:
        return text[: tokens * 4]
    ids = enc.encode(text, disallowed_special=())
    return text if len(ids) <= tokens else enc.decode(ids[: max(0, tokens)]).rstrip() + " …"


def fence(text: str) -> str:
    """One line, with anything that could close the untrusted-data fence defused."""
    return re.sub(
        r"-{3,}\s*(BEGIN|END)\b",
        lambda m: "- " + m.group(1).lower(),
        " ".join(text.split()),
        flags=re.IGNORECASE,
    )


def _paper_block(n: int, theme: Theme, paper: DigestPaper) -> str:
    when = paper.published.isoformat() if paper.published else "undated"
    row = next((r for r in theme.rows if r.paper is paper), None)
    lines = [f"[{n}] {fence(paper.title)} ({when})"]
    for role in ("problem", "approach", "result"):
        cell = row.cells.get(role) if row else None
        if cell:
            lines.append(f"{role.capitalize()}: {fence(clip(cell.text, CELL_TOKENS))}")
    if len(lines) == 1:
        lines.append(fence(clip(paper.abstract, CELL_TOKENS * 2)))
    return "\n".join(lines)


def propose_name(writer: Writer, theme: Theme, taken: set[str]) -> None:
    """Ask the model for a name; `naming.accept_model_name` decides whether it is used."""
    phrases = ", ".join(theme.key_phrases[:5])
    room = writer.room("digest_name", NAME_TOKENS, titles="", phrases=fence(phrases))
    titles = "\n".join(f"- {fence(p.title)}" for p in central_order(theme)[:12])
    reply = writer.chat(
        prompts.render("digest_name", titles=clip(titles, max(room, 24)), phrases=fence(phrases)),
        NAME_TOKENS,
    )
    accept_model_name(theme, reply, taken)


def write_prose(
    writer: Writer, theme: Theme, window_titles: list[str], earlier: list[set[str]]
) -> None:
    """The model's comparison of the theme's central papers, checked sentence by sentence."""
    fixed = {"sentences": str(SECTION_SENTENCES)}
    room = writer.room("digest_section", writer.section_tokens, papers="", **fixed)
    local: dict[int, DigestPaper] = {}
    blocks: list[str] = []
    used = 0
    for paper in central_order(theme)[:PROSE_PAPERS]:
        block = _paper_block(len(local) + 1, theme, paper)
        cost = count_tokens(block) + 2
        if used + cost > room:
            if local:
                break
            block = clip(block, max(16, room - 2))
            cost = count_tokens(block) + 2
        local[len(local) + 1] = paper
        blocks.append(block)
        used += cost
    raw = writer.chat(
        prompts.render("digest_section", papers="\n\n".join(blocks), **fixed), writer.section_tokens
    )
    theme.raw_prose = raw
    theme.prose = check_prose(raw, local, window_titles, earlier)
