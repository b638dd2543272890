"""The optional LLM judge: is an answer faithful to the sources it was given?

There is no default judge model and no hosted fallback: without
`--judge-model` nothing is judged. Small local models break JSON, so the
verdict is parsed defensively, and a verdict that still does not parse is a
*failure* that is counted and reported (`judge_failures`) — never a NaN that
drops out of the mean.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .. import prompts

JUDGE_PROMPT = "judge"
JUDGE_MAX_TOKENS = 200
_FENCE = re.compile(r"```(?:json)?", re.IGNORECASE)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_TRUE = {"true", "yes", "faithful", "1"}
_FALSE = {"false", "no", "unfaithful", "not faithful", "0"}


@dataclass
class Verdict:
    """One judged answer. `ok` is False when the judge's output was unusable."""

    ok: bool
    faithful: bool | None = None
    score: float | None = None
    reason: str = ""
    raw: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().casefold()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def _as_score(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if 0.0 <= score <= 1.0 else None


def _objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object embedded in `text`, in order (models wrap them in prose)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    i = text.find("{")
    while i != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        i = text.find("{", end)
    return found


def parse_verdict(text: str) -> Verdict:
    """Read {"faithful": bool, "score": 0..1, "reason": str} out of a judge's reply.

    Accepts the object inside prose or a code fence, "true"/"false" strings,
    and either field alone (a score alone means faithful when >= 0.5; a
    boolean alone scores 1 or 0). A score outside [0, 1] is not rescaled: a
    judge that ignores the scale is reported as a failure, not guessed at.
    """
    cleaned = _FENCE.sub("", _THINK.sub("", text or ""))
    for obj in _objects(cleaned):
        lowered = {str(k).casefold(): v for k, v in obj.items()}
        if "faithful" not in lowered and "score" not in lowered:
            continue
        faithful = _as_bool(lowered.get("faithful"))
        score = _as_score(lowered.get("score"))
        if "faithful" in lowered and faithful is None:
            return Verdict(
                False, raw=text, error=f"'faithful' is not a boolean: {lowered['faithful']!r}"
            )
        if "score" in lowered and score is None and faithful is None:
            return Verdict(False, raw=text, error=f"'score' is not in [0, 1]: {lowered['score']!r}")
        if score is None:
            score = 1.0 if faithful else 0.0
        if faithful is None:
            faithful = score >= 0.5
        reason = lowered.get("reason")
        return Verdict(True, faithful, score, str(reason) if reason is not None else "", raw=text)
    return Verdict(False, raw=text, error="no JSON verdict with 'faithful' or 'score' found")


class Judge:
    """Scores faithfulness with one model call per answer.

    `complete` maps chat messages to the model's text; the real one wraps a
    `ModelClient`, and a test can pass a stub to exercise the parsing and
    failure counting without a server. `key` names the judge (model,
    endpoint, prompt) so cached verdicts are reused only for the same judge.
    """

    def __init__(self, complete: Callable[[list[dict]], str], name: str) -> None:
        self.complete = complete
        self.name = name
        prompt_hash = hashlib.sha256(prompts.load(JUDGE_PROMPT).encode()).hexdigest()[:12]
        self.key = hashlib.sha256(f"{name}|{prompt_hash}".encode()).hexdigest()[:16]

    def messages(self, question: str, answer: str, sources: Sequence[dict[str, Any]]) -> list:
        blocks = "\n\n".join(
            f"[{s.get('n')}] {s.get('title', '')}\n{' '.join(str(s.get('passage', '')).split())}"
            for s in sources
        )
        return [
            {
                "role": "user",
                "content": prompts.render(
                    JUDGE_PROMPT, question=question, sources=blocks, answer=answer
                ),
            }
        ]

    def __call__(self, question: str, answer: str, sources: Sequence[dict[str, Any]]) -> Verdict:
        """One verdict; a failed model call is a failed verdict, not an exception."""
        try:
            text = self.complete(self.messages(question, answer, sources))
        except Exception as exc:  # the run goes on; the failure is counted
            return Verdict(False, error=f"{type(exc).__name__}: {exc}")
        return parse_verdict(text)


def model_judge(
    settings: Any, model: str, base_url: str | None = None, api_key_env: str | None = None
) -> Judge:
    """A judge on an OpenAI-compatible endpoint: by default the answer endpoint.

    The answer endpoint's key is sent only to the answer endpoint itself; a
    judge elsewhere gets the key named by `api_key_env`, or none.
    """
    import os

    from ..errors import UsageError
    from ..llm import ModelClient

    url = (base_url or settings.base_url or "").rstrip("/") or None
    if not url:
        raise UsageError("--judge-model needs an endpoint: --judge-base-url or OPENAI_BASE_URL")
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise UsageError(f"--judge-api-key-env {api_key_env}: that variable is not set")
    else:
        key = settings.api_key if url == (settings.base_url or "").rstrip("/") else None
    client = ModelClient(settings.with_(base_url=url, api_key=key, model=model), model=model)

    def complete(messages: list[dict]) -> str:
        return client.chat(messages, max_tokens=JUDGE_MAX_TOKENS, temperature=0.0).text

    from ..settings import display_url

    return Judge(complete, f"{model}@{display_url(url)}")
