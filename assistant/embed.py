"""Embedding models: chromadb's local all-MiniLM-L6-v2 (fp32, or an int8 copy made from
it on this machine), or an endpoint's /v1/embeddings.

The library records which embedder built it (name and dimension) because a
query embedded by another model finds wrong neighbours without any error; the
int8 model has its own name for the same reason (its vectors differ slightly).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import AssistantError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from .settings import Settings

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_INT8_NAME = "all-MiniLM-L6-v2-int8"
MODEL_FILES = (
    "config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
)
ENDPOINT_BATCH = 64  # texts per /v1/embeddings request
ENDPOINT_CONCURRENCY = 4  # requests in flight at once: a GPU server batches them
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

    def __init__(self, model_dir: Path | None = None, int8_cache: Path | None = None):
        """`int8_cache`: a folder for the int8 copy of the model (made once, then reused);
        None embeds with the fp32 model itself."""
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
        if int8_cache is not None:
            self.name = MINILM_INT8_NAME
            self._int8_cache = Path(int8_cache)
            self._int8_ready = False

    def _use_int8(self) -> None:
        """Point this instance at the int8 copy, quantising the fp32 model first if needed."""
        if getattr(self, "_int8_cache", None) is None or self._int8_ready:
            return
        self._fn._download_model_if_not_exists()  # the fp32 source (offline: the local copy)
        source = Path(self._fn.DOWNLOAD_PATH)
        self._fn.DOWNLOAD_PATH = str(quantized_copy(source, self._int8_cache))
        self._int8_ready = True

    @property
    def dim(self) -> int:
        return 384

    @property
    def _tokenizer(self):
        """chromadb pads every text to 256 word pieces; this one pads a batch
        only to its longest text, which makes short chunks cheaper to embed."""
        if self._tok is None:
            self._use_int8()
            try:
                self._fn._download_model_if_not_exists()
                tok = self._fn.Tokenizer.from_file(
                    str(
                        Path(self._fn.DOWNLOAD_PATH)
                        / self._fn.EXTRACTED_FOLDER_NAME
                        / "tokenizer.json"
                    )
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
            idx = order[start : start + EMBED_BATCH]
            width = max(len(encoded[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encoded[i].ids)
                ids[row, :n] = encoded[i].ids
                mask[row, :n] = 1
            hidden = model.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
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
    """An OpenAI-compatible `/v1/embeddings` model (Ollama, llama.cpp, vLLM, OpenAI).

    Requests go through `ModelClient`, so they follow the chat calls' policy:
    the SDK's retries of 429/5xx (Retry-After honoured up to a cap), no retry
    of a timeout or a refused connection, one-line errors without the key.
    """

    def __init__(self, settings: Settings):
        if not settings.base_url:
            raise UsageError(
                "ASSISTANT_EMBEDDER=endpoint needs OPENAI_BASE_URL (the server to embed with)"
            )
        if not settings.embed_model:
            raise UsageError("ASSISTANT_EMBEDDER=endpoint needs ASSISTANT_EMBED_MODEL (its name)")
        from .llm import ModelClient

        self._client = ModelClient(settings, model=settings.embed_model)
        self.name = f"endpoint:{settings.embed_model}"
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(
        self, texts: list[str], batch: int = ENDPOINT_BATCH, concurrency: int = ENDPOINT_CONCURRENCY
    ) -> np.ndarray:
        """Unit vectors in input order; `batch` texts per request, `concurrency` requests
        in flight, so a GPU server (TEI, vLLM, Ollama) works at its speed, not ours."""
        import numpy as np

        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        size = max(1, batch)
        batches = [texts[i : i + size] for i in range(0, len(texts), size)]
        if len(batches) == 1 or concurrency <= 1:
            parts = [self._client.embed(b) for b in batches]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(
                max_workers=min(concurrency, len(batches)), thread_name_prefix="embed"
            ) as pool:
                parts = list(pool.map(self._client.embed, batches))
        vectors = np.asarray([v for part in parts for v in part], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)


def quantized_copy(source: Path, cache: Path) -> Path:
    """A folder laid out like `source` (onnx/ with the tokenizer files) whose model.onnx is
    `source`'s quantised to int8 by ONNX Runtime's dynamic quantisation; made once.

    The copy records the size and mtime of the model it came from and is remade
    when they change. Written to a temporary name and renamed, so an interrupted
    run leaves no half model behind.
    """
    import json
    import shutil

    src_model = source / "onnx" / "model.onnx"
    target = cache / MINILM_INT8_NAME
    stamp = {
        "source": str(src_model.resolve()),
        "size": src_model.stat().st_size,
        "mtime": int(src_model.stat().st_mtime),
    }
    marker = target / "source.json"
    if (target / "onnx" / "model.onnx").is_file() and marker.is_file():
        try:
            if json.loads(marker.read_text()) == stamp:
                return target
        except ValueError:
            pass
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise UsageError(
            "ASSISTANT_EMBEDDER=minilm-int8 needs the `onnx` package once, to quantise the "
            "model: pip install onnx"
        ) from None
    tmp = cache / f".{MINILM_INT8_NAME}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "onnx").mkdir(parents=True)
    for name in MODEL_FILES:
        if (source / "onnx" / name).is_file():
            shutil.copy2(source / "onnx" / name, tmp / "onnx" / name)
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process is for static quantisation
    try:
        quantize_dynamic(
            str(src_model), str(tmp / "onnx" / "model.onnx"), weight_type=QuantType.QInt8
        )
    except Exception as exc:  # onnx raises many types; each becomes one line, nothing half-written
        shutil.rmtree(tmp, ignore_errors=True)
        raise AssistantError(f"could not quantise {src_model} to int8: {exc}") from None
    finally:
        root.setLevel(level)
    (tmp / "source.json").write_text(json.dumps(stamp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def make_embedder(settings: Settings) -> Embedder:
    if settings.embedder in ("minilm", "default", MINILM_NAME.lower()):
        return MiniLMEmbedder(settings.embed_model_dir)
    if settings.embedder in ("minilm-int8", "int8", MINILM_INT8_NAME.lower()):
        return MiniLMEmbedder(settings.embed_model_dir, int8_cache=Path(settings.home) / "models")
    if settings.embedder in ("endpoint", "openai"):
        return EndpointEmbedder(settings)
    raise UsageError(
        f"ASSISTANT_EMBEDDER={settings.embedder!r}: expected 'minilm' (local), 'minilm-int8' "
        "(local, quantised on first use) or 'endpoint'"
    )
