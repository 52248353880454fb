"""The FAISS index: derived from the vectors in SQLite, never the source of truth.

Saved atomically (temp file + rename) with a JSON sidecar naming model, dimension, count, the
store version it reflects, the database it was built from and a checksum of the file. On open it is
verified; a missing, corrupt or foreign index is rebuilt from SQLite, a merely stale one is brought
up to date by adding and removing the differing ids.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from .engine import ArticleStore
from .settings import SearchSettings

log = logging.getLogger(__name__)

INDEX_FILE = "faiss.index"
META_FILE = "faiss.json"


@dataclass
class IndexMeta:
    model: str
    dim: int
    count: int
    version: int
    kind: str
    # CRC-32 of the index file: FAISS itself reads a file with flipped bytes in its vector data
    # without complaint, and returns wrong neighbours from then on.
    checksum: str = ""
    # meta.store_id of the database the index was built from.
    store_id: str = ""


class VectorIndex:
    def __init__(self, data_dir: Path, settings: SearchSettings, model: str, dim: int):
        self.data_dir = Path(data_dir)
        self.settings = settings
        self.model = model
        self.dim = dim
        self.version = -1
        self.store_id = ""
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._index = self._empty("flat")
        # HNSW cannot delete; removed ids are filtered from results until the next rebuild.
        self._removed: set[int] = set()

    # --- construction -------------------------------------------------------------------------

    def _kind_for(self, count: int, current: str | None = None) -> str:
        """The index kind for ``count`` vectors: exact (flat) while small, HNSW from the threshold on.

        An HNSW index stays HNSW until the corpus shrinks below half the threshold, so a corpus
        hovering around the threshold does not flip between kinds (each flip is a rebuild).
        """
        if self.settings.index != "auto":
            return self.settings.index
        threshold = self.settings.hnsw_threshold
        if current == "hnsw" and count >= threshold // 2:
            return "hnsw"
        return "hnsw" if count >= threshold else "flat"

    def _half(self, kind: str) -> bool:
        """Whether a ``kind`` index stores float16: "auto" halves only HNSW, the large case, and
        keeps a small flat index exact in fp32 (its memory does not matter there)."""
        if self.settings.float16 == "auto":
            return kind == "hnsw"
        return bool(self.settings.float16)

    def _empty(self, kind: str) -> faiss.Index:
        if kind == "hnsw":
            if self._half(kind):
                inner = faiss.IndexHNSWSQ(
                    self.dim, faiss.ScalarQuantizer.QT_fp16, self.settings.hnsw_m, faiss.METRIC_INNER_PRODUCT
                )
            else:
                inner = faiss.IndexHNSWFlat(self.dim, self.settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = self.settings.hnsw_ef_search
            return faiss.IndexIDMap2(inner)
        if self._half(kind):
            inner = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        else:
            inner = faiss.IndexFlatIP(self.dim)
        return faiss.IndexIDMap2(inner)

    @property
    def kind(self) -> str:
        inner = faiss.downcast_index(self._index.index)
        return "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"

    @property
    def float16(self) -> bool:
        inner = faiss.downcast_index(self._index.index)
        if isinstance(inner, faiss.IndexHNSW):
            inner = faiss.downcast_index(inner.storage)
        return isinstance(inner, faiss.IndexScalarQuantizer)

    def _fits_settings(self) -> str | None:
        """Why the loaded index should be rebuilt for the current settings and size, or None."""
        wanted = self._kind_for(self.count, self.kind)
        if wanted != self.kind:
            return f"{self.count} vectors call for a {wanted} index, not {self.kind}"
        if self.float16 != self._half(self.kind):
            return "float16 setting changed"
        return None

    def _convert(self, kind: str) -> None:
        """Rebuild in memory as ``kind`` from the index's own vectors (no SQLite, no re-embedding)."""
        with self._lock:
            old = self._index
            ids = faiss.vector_to_array(old.id_map).astype(np.int64)
            index = self._empty(kind)
            for start in range(0, len(ids), 50_000):
                stop = min(start + 50_000, len(ids))
                index.add_with_ids(old.index.reconstruct_n(start, stop - start), ids[start:stop])
            self._index = index
        log.info("FAISS index converted to %s at %d vectors", kind, index.ntotal)

    def ef_search(self) -> int:
        """efSearch for the index's current size. At a fixed efSearch HNSW recall falls as the graph
        grows (recall@10 0.84 at 512 on 1M realistic vectors, BENCHMARKS.md "Scale"), so beyond
        ``hnsw_ef_scale_passages`` it grows in proportion to the passages."""
        base, per = self.settings.hnsw_ef_search, self.settings.hnsw_ef_scale_passages
        if per <= 0:
            return base
        return max(base, round(base * self.count / per))

    @property
    def count(self) -> int:
        return int(self._index.ntotal) - len(self._removed)

    def rebuild(self, store: ArticleStore) -> None:
        """Build from every vector in SQLite (no re-embedding)."""
        # The version is read before the vectors: a write landing meanwhile leaves the index looking
        # older than it is (the next check syncs, harmlessly), never newer than it is (a lost article).
        version = store.version()
        total = store.counts()["embeddings"]
        index = self._empty(self._kind_for(total))
        for ids, vectors, model in store.iter_vectors():
            self._check_model(model, vectors.shape[1])
            index.add_with_ids(vectors, ids)
        with self._lock:
            self._index = index
            self._removed = set()
            self.version = version
            self.store_id = store.store_id()
        log.info("FAISS index rebuilt from SQLite: %d vectors (%s)", index.ntotal, self.kind)

    def _check_model(self, model: str, dim: int) -> None:
        if model != self.model or dim != self.dim:
            raise ValueError(
                f"stored vectors were made by {model} ({dim} dims) but the configured model is "
                f"{self.model} ({self.dim} dims); run 'articlebot reindex' to re-embed"
            )

    # --- updates ------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; ids already present are skipped, so a write applied twice (once directly and
        once by a concurrent sync) never leaves duplicates."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._lock:
            new = ~self._present(ids)
            if not new.all():
                ids, vectors = ids[new], np.ascontiguousarray(vectors[new])
            if len(ids):
                self._index.add_with_ids(vectors, ids)
            if not self._removed and self._kind_for(int(self._index.ntotal), self.kind) != self.kind:
                # Crossing the threshold during an import: convert now (once; about a minute per
                # 100k vectors), rather than leave a flat index to slow every search until a restart.
                self._convert(self._kind_for(int(self._index.ntotal), self.kind))

    def _present(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` the index holds (tombstoned ones do not count)."""
        if len(ids) > 64 or self._index.ntotal < 50_000:
            return np.isin(ids, self.ids())
        # An article's few ids: one hash lookup each, instead of copying a million-entry id map
        # (which made every single add O(corpus)).
        held = np.zeros(len(ids), dtype=bool)
        for i, chunk_id in enumerate(ids.tolist()):
            try:
                self._index.reconstruct(chunk_id)
            except RuntimeError:
                continue
            held[i] = chunk_id not in self._removed
        return held

    def remove(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._lock:
            if self.kind == "hnsw":
                self._removed.update(int(i) for i in ids)
            else:
                self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def ids(self) -> np.ndarray:
        with self._lock:
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        if self._removed:
            ids = ids[~np.isin(ids, np.fromiter(self._removed, dtype=np.int64))]
        return ids

    def sync(self, store: ArticleStore) -> None:
        """Bring the index up to the store's version by adding/removing the ids that differ."""
        with self._lock:  # two searches finding the index stale at once must not both add
            version = store.version()  # read first, as in rebuild()
            stored = store.chunk_ids()
            present = self.ids()
            missing = np.setdiff1d(stored, present)
            extra = np.setdiff1d(present, stored)
            self.remove([int(i) for i in extra])
            for start in range(0, len(missing), 50_000):
                ids, vectors = store.vectors_for(missing[start : start + 50_000].tolist())
                if len(ids):
                    self._check_model(store.embedding_models()[0][0], vectors.shape[1])
                    self.add(ids, vectors)
            self.version = version
            self.store_id = store.store_id()
        if len(missing) or len(extra):
            log.info("FAISS index synced with SQLite: +%d -%d vectors", len(missing), len(extra))

    # --- search -------------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        with self._lock:
            if self._index.ntotal == 0:
                return []
            extra = len(self._removed)
            # Per call, not stored in the index: a saved index keeps the efSearch it was built with,
            # and the configured value and the corpus size may both have changed since.
            params = faiss.SearchParametersHNSW(efSearch=self.ef_search()) if self.kind == "hnsw" else None
            scores, ids = _one_thread_search(self._index, query, min(k + extra, int(self._index.ntotal)), params)
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        if extra:
            hits = [h for h in hits if h[0] not in self._removed]
        return hits[:k]

    # --- persistence --------------------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        return self.data_dir / INDEX_FILE

    @property
    def meta_path(self) -> Path:
        return self.data_dir / META_FILE

    def save(self) -> None:
        # One save at a time per index (worker threads write concurrently): two saves sharing the
        # temp files would rename each other's files away. Searches only wait for the serialisation.
        with self._save_lock:
            with self._lock:
                if self._removed:
                    return  # an HNSW index with tombstones is not worth persisting; rebuilt on next open
                # Temp names per process: the bot and a CLI import may save at the same moment.
                tmp = self.index_path.with_name(f"{INDEX_FILE}.tmp{os.getpid()}")
                faiss.write_index(self._index, str(tmp))
                meta = IndexMeta(
                    self.model, self.dim, int(self._index.ntotal), self.version, self.kind, store_id=self.store_id
                )
            meta.checksum = _checksum(tmp)
            _fsync(tmp)
            meta_tmp = self.meta_path.with_name(f"{META_FILE}.tmp{os.getpid()}")
            meta_tmp.write_text(json.dumps(meta.__dict__))
            _fsync(meta_tmp)
            # Meta first: a crash (or another process saving) between the renames leaves a pair whose
            # checksum does not match, which is rebuilt, never a mismatched pair that passes.
            os.replace(meta_tmp, self.meta_path)
            os.replace(tmp, self.index_path)

    def load_or_rebuild(self, store: ArticleStore) -> str:
        """Open the saved index if it is sound; returns what happened ("loaded", "synced", "rebuilt")."""
        problem = self._load(store.store_id())
        if problem is None and self.count != store.counts()["embeddings"] and self.version == store.version():
            problem = "vector count differs from SQLite"
        if problem is None:
            problem = self._fits_settings()
        if problem is not None:
            if self.index_path.exists() or self.meta_path.exists():
                log.warning("FAISS index unusable (%s); rebuilding from SQLite", problem)
            self.rebuild(store)
            self.save()
            return "rebuilt"
        if self.version != store.version():
            self.sync(store)
            self.save()
            return "synced"
        return "loaded"

    def _load(self, store_id: str) -> str | None:
        if not self.index_path.exists() or not self.meta_path.exists():
            return "index file missing"
        try:
            meta = IndexMeta(**json.loads(self.meta_path.read_text()))
        except (ValueError, TypeError, AttributeError, OSError) as exc:
            return f"unreadable metadata: {exc}"
        if meta.model != self.model or meta.dim != self.dim:
            return f"made by another model ({meta.model}, {meta.dim} dims)"
        if meta.store_id != store_id:
            return "made from another database"
        try:
            if _checksum(self.index_path) != meta.checksum:
                return "corrupt index file: checksum mismatch"
            index = faiss.read_index(str(self.index_path))
        except (RuntimeError, MemoryError, OSError) as exc:
            return f"corrupt index file: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
        if index.d != self.dim or index.ntotal != meta.count or not isinstance(index, faiss.IndexIDMap2):
            return "index file does not match its metadata"
        with self._lock:
            self._index = index
            self._removed = set()
            self.version = meta.version
            self.store_id = meta.store_id
        return None


def _one_thread_search(index: faiss.Index, query: np.ndarray, k: int, params) -> tuple[np.ndarray, np.ndarray]:
    """One query on one OpenMP thread. FAISS otherwise opens a parallel region for a single query,
    and on a busy 2-core machine waking the second thread costs whole scheduler ticks (HNSW at 1M,
    efSearch 2560: p95 28 ms with both threads, 13 ms with one). The thread count is the calling
    thread's own OpenMP setting, restored after, so index builds keep every core."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(query, k, params=params)
    finally:
        faiss.omp_set_num_threads(before)


def _checksum(path: Path) -> str:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
