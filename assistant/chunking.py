"""Split abstracts into chunks that the embedding model reads whole.

all-MiniLM-L6-v2 reads 256 word pieces and silently drops the rest, and
nearly every abstract is longer than that, so an abstract embedded whole loses
its end. Chunks are measured with tiktoken (cl100k_base) and sized with a
margin measured on the sample corpus (the worst chunk reaches 226 of 256 word
pieces); `tests/test_ingest.py` checks every chunk of the sample against the
real tokenizer, and `split_abstract` re-splits any chunk the embedder's own
tokenizer says would be truncated.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from .tokens import count_tokens, encoder

if TYPE_CHECKING:
    from llama_index.core.node_parser import SentenceSplitter

# Budget per chunk in cl100k tokens, title included. Scientific text costs more
# word pieces than cl100k tokens (LaTeX, numbers, rare words), so 256 word
# pieces allow fewer tiktoken tokens; 200 keeps the worst sample chunk at 226.
CHUNK_TOKENS = 200
CHUNK_OVERLAP = 24
MIN_BODY_TOKENS = 48
# Bumped whenever chunking changes, so stored papers get re-chunked.
CHUNKER_VERSION = "sentences-200-24"


def _token_ids(text: str) -> list[int]:
    enc = encoder()
    if enc is None:
        raise RuntimeError("tiktoken's cl100k_base is not available (llama-index-core ships it)")
    return enc.encode(text, disallowed_special=())


@lru_cache(maxsize=64)
def _splitter(body_tokens: int) -> SentenceSplitter:
    from llama_index.core.node_parser import SentenceSplitter

    return SentenceSplitter(
        chunk_size=body_tokens,
        chunk_overlap=min(CHUNK_OVERLAP, body_tokens // 4),
        tokenizer=_token_ids,
    )


def chunk_header(title: str) -> str:
    return f"{title}\n\n"


def split_abstract(
    title: str, abstract: str, fits: Callable[[str], bool] | None = None
) -> list[str]:
    """Chunk bodies (without the title) for one abstract, each within budget once
    the title is put in front of it.

    `fits` is the embedder's own check (its real word-piece count); a chunk that
    tiktoken admitted but the embedder would truncate is split again, smaller.
    """
    body_tokens = max(MIN_BODY_TOKENS, CHUNK_TOKENS - count_tokens(chunk_header(title)))
    return _split(title, abstract, body_tokens, fits)


def _split(
    title: str, text: str, body_tokens: int, fits: Callable[[str], bool] | None
) -> list[str]:
    # Round to a multiple of 8 so a handful of splitters serve every title length.
    body_tokens -= body_tokens % 8
    pieces = [p for p in _splitter(body_tokens).split_text(text) if p.strip()]
    if fits is None or body_tokens <= MIN_BODY_TOKENS:
        return pieces
    out: list[str] = []
    for piece in pieces:
        if fits(chunk_header(title) + piece):
            out.append(piece)
        else:
            out.extend(_split(title, piece, body_tokens * 3 // 4, fits))
    return out


def chunk_texts(title: str, bodies: list[str]) -> list[str]:
    """What gets embedded and keyword-indexed: every chunk carries its title."""
    return [chunk_header(title) + body for body in bodies]
