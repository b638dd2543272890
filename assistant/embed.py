"""Embedding models: chromadb's local all-MiniLM-L6-v2, or an endpoint's /v1/embeddings.

The library records which embedder built it (name and dimension) because a
query embedded by another model finds wrong neighbours without any error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import AssistantError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from .settings import Settings

MINILM_NAME = "all-MiniLM-L6-v2"
# all-MiniLM-L6-v2 reads 256 word pieces, two of which are [CLS] and [SEP].
MINILM_MAX_WORDPIECES = 256
EMBED_BATCH = 32


class Embedder(Protocol):
    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


class MiniLMEmbedder:
    """chromadb's own ONNX all-MiniLM-L6-v2, optionally read from a local copy.

    Pointing `DOWNLOAD_PATH` at a folder that holds `onnx/` makes chromadb
    load it without downloading, which is how offline machines run.
    """

    name = MINILM_NAME

    def __init__(self, model_dir: Path | None = None):
        from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2

        if model_dir is not None:
            onnx_dir = Path(model_dir) / "onnx"
            if not (onnx_dir / "model.onnx").is_file():
                raise UsageError(
                    f"ASSISTANT_EMBED_MODEL_DIR={model_dir}: no onnx/model.onnx in that folder "
                    "(it must be laid out as chromadb downloads all-MiniLM-L6-v2)"
                )
            ONNXMiniLM_L6_V2.DOWNLOAD_PATH = str(Path(model_dir).resolve())
        self._fn = ONNXMiniLM_L6_V2()
        self._model_dir = model_dir
        self._tok = None

    @property
    def dim(self) -> int:
        return 384

    @property
    def _tokenizer(self):
        """chromadb pads every text to 256 word pieces; this one pads a batch
        only to its longest text, which makes short chunks cheaper to embed."""
        if self._tok is None:
            try:
                self._fn._download_model_if_not_exists()
                tok = self._fn.Tokenizer.from_file(
                    str(Path(self._fn.DOWNLOAD_PATH) / self._fn.EXTRACTED_FOLDER_NAME
                        / "tokenizer.json")
                )
                self._fn.model  # noqa: B018 - load the ONNX session now, inside this guard
            except Exception as exc:  # download failure offline, corrupt model file
                where = self._model_dir or "chromadb's cache (~/.cache/chroma)"
                raise AssistantError(
                    f"could not load the embedding model {MINILM_NAME} from {where}: {exc}. "
                    "Offline, set ASSISTANT_EMBED_MODEL_DIR to a folder holding onnx/model.onnx"
                ) from None
            tok.enable_truncation(max_length=MINILM_MAX_WORDPIECES)
            tok.no_padding()
            self._tok = tok
        return self._tok

    def embed(self, texts: list[str]) -> np.ndarray:
        """Same vectors as chromadb's function (mean pooling over the attention
        mask, L2 norm), computed on length-sorted batches."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encoded = self._tokenizer.encode_batch(texts)
        model = self._fn.model
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i].ids))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), EMBED_BATCH):
            idx = order[start:start + EMBED_BATCH]
            width = max(len(encoded[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encoded[i].ids)
                ids[row, :n] = encoded[i].ids
                mask[row, :n] = 1
            hidden = model.run(None, {"input_ids": ids, "attention_mask": mask,
                                      "token_type_ids": np.zeros_like(ids)})[0]
            summed = (hidden * mask[:, :, None]).sum(axis=1)
            pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.where(norms == 0, 1e-12, norms)
        return out

    def fits(self, text: str) -> bool:
        """Whether the model reads `text` whole (nothing truncated)."""
        return self.count_wordpieces(text) <= MINILM_MAX_WORDPIECES

    def count_wordpieces(self, text: str) -> int:
        """Word pieces the model would read, [CLS] and [SEP] included, before truncation."""
        tok = self._tokenizer
        tok.no_truncation()
        try:
            return len(tok.encode(text).ids)
        finally:
            tok.enable_truncation(max_length=MINILM_MAX_WORDPIECES)


class EndpointEmbedder:
    """An OpenAI-compatible `/v1/embeddings` model (Ollama, llama.cpp, vLLM, OpenAI)."""

    def __init__(self, settings: Settings):
        if not settings.base_url:
            raise UsageError(
                "ASSISTANT_EMBEDDER=endpoint needs OPENAI_BASE_URL (the server to embed with)"
            )
        if not settings.embed_model:
            raise UsageError("ASSISTANT_EMBEDDER=endpoint needs ASSISTANT_EMBED_MODEL (its name)")
        from openai import OpenAI

        self._client = OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or "not-needed",
            timeout=settings.timeout,
            max_retries=3,
        )
        self._model = settings.embed_model
        self.name = f"endpoint:{settings.embed_model}"
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np
        import openai

        try:
            response = self._client.embeddings.create(model=self._model, input=texts)
        except openai.APIConnectionError:
            raise AssistantError(
                f"embedding endpoint unreachable at {self._client.base_url}"
            ) from None
        except openai.APIStatusError as exc:
            raise AssistantError(f"embedding endpoint refused the request: {exc.message}") from None
        vectors = np.asarray([item.embedding for item in response.data], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)


def make_embedder(settings: Settings) -> Embedder:
    if settings.embedder in ("minilm", "default", MINILM_NAME.lower()):
        return MiniLMEmbedder(settings.embed_model_dir)
    if settings.embedder in ("endpoint", "openai"):
        return EndpointEmbedder(settings)
    raise UsageError(
        f"ASSISTANT_EMBEDDER={settings.embedder!r}: expected 'minilm' (local) or 'endpoint'"
    )
