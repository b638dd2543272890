"""Token counts with tiktoken's cl100k_base: chunk sizes, prompt budgets, usage estimates.

Local models use other tokenizers, so counts are estimates for budgets, with
margins where it matters (chunking measures its margin against the embedder).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

_encoder_lock = threading.Lock()
_encoder_state: dict[str, Any] = {}

_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def encoder() -> Any:
    """tiktoken's cl100k_base, loaded from a local cache only; None when there is none.

    tiktoken downloads its tables on first use; offline (the normal case for a
    local-model user) that would hang or fail, so it is only used when the
    table is already on disk, preferring the copy bundled with llama-index-core.
    """
    with _encoder_lock:
        if "encoder" in _encoder_state:
            return _encoder_state["encoder"]
        encoder = None
        try:
            spec = importlib.util.find_spec("llama_index.core")
            if spec is not None and spec.submodule_search_locations:
                bundled = Path(list(spec.submodule_search_locations)[0]) / "_static/tiktoken_cache"
                if bundled.is_dir():
                    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(bundled))
        except (ImportError, ValueError):
            pass
        cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
        key = hashlib.sha1(_CL100K_URL.encode()).hexdigest()
        if cache_dir and (Path(cache_dir) / key).is_file():
            try:
                import tiktoken

                encoder = tiktoken.get_encoding("cl100k_base")
            except Exception:  # a corrupt cache must not break a chat call
                encoder = None
        _encoder_state["encoder"] = encoder
        return encoder


def count_tokens(text: str) -> int:
    """Tokens in `text` by cl100k_base (about four characters a token without it).

    Local models use other tokenizers, so this is an estimate for budgets and
    reports, never an exact count.
    """
    if not text:
        return 0
    encoder_ = encoder()
    if encoder_ is None:
        return max(1, round(len(text) / 4))
    return len(encoder_.encode(text, disallowed_special=()))


def count_message_tokens(messages: list[dict]) -> int:
    """Prompt tokens for a chat, with OpenAI's per-message framing overhead."""
    total = 3
    for message in messages:
        total += 3
        for key in ("role", "content", "name"):
            value = message.get(key)
            if isinstance(value, str):
                total += count_tokens(value)
            elif isinstance(value, list):  # content parts: count the text ones
                for part in value:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        total += count_tokens(part["text"])
    return total
