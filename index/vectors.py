"""The FAISS index: derived from the vectors in SQLite, never the source of truth.

Saved atomically (temp file + rename) with a JSON sidecar naming model, dimension, count and the
store version it reflects. On open it is verified; a missing, corrupt or foreign index is rebuilt
from SQLite, a merely stale one is brought up to date by adding and removing the differing ids.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from .settings import SearchSettings
from .store import Store

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


class VectorIndex:
    def __init__(self, data_dir: Path, settings: SearchSettings, model: str, dim: int):
        self.data_dir = Path(data_dir)
        self.settings = settings
        self.model = model
        self.dim = dim
        self.version = -1
        self._lock = threading.RLock()
        self._index = self._empty("flat")
        # HNSW cannot delete; removed ids are filtered from results until the next rebuild.
        self._removed: set[int] = set()

    # --- construction -------------------------------------------------------------------------

    def _kind_for(self, count: int) -> str:
        if self.settings.index != "auto":
            return self.settings.index
        return "hnsw" if count >= self.settings.hnsw_threshold else "flat"

    def _empty(self, kind: str) -> faiss.Index:
        if kind == "hnsw":
            if self.settings.float16:
                inner = faiss.IndexHNSWSQ(
                    self.dim, faiss.ScalarQuantizer.QT_fp16, self.settings.hnsw_m, faiss.METRIC_INNER_PRODUCT
                )
            else:
                inner = faiss.IndexHNSWFlat(self.dim, self.settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = self.settings.hnsw_ef_search
            return faiss.IndexIDMap2(inner)
        if self.settings.float16:
            inner = faiss.IndexScalarQuantizer(self.dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        else:
            inner = faiss.IndexFlatIP(self.dim)
        return faiss.IndexIDMap2(inner)

    @property
    def kind(self) -> str:
        inner = faiss.downcast_index(self._index.index)
        return "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"

    @property
    def count(self) -> int:
        return int(self._index.ntotal) - len(self._removed)

    def rebuild(self, store: Store) -> None:
        """Build from every vector in SQLite (no re-embedding)."""
        total = store.counts()["embeddings"]
        index = self._empty(self._kind_for(total))
        for ids, vectors, model in store.iter_vectors():
            self._check_model(model, vectors.shape[1])
            index.add_with_ids(vectors, ids)
        with self._lock:
            self._index = index
            self._removed = set()
            self.version = store.version()
        log.info("FAISS index rebuilt from SQLite: %d vectors (%s)", index.ntotal, self.kind)

    def _check_model(self, model: str, dim: int) -> None:
        if model != self.model or dim != self.dim:
            raise ValueError(
                f"stored vectors were made by {model} ({dim} dims) but the configured model is "
                f"{self.model} ({self.dim} dims); run 'articlebot reindex' to re-embed"
            )

    # --- updates ------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self._lock:
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

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

    def sync(self, store: Store) -> None:
        """Bring the index up to the store's version by adding/removing the ids that differ."""
        stored = store.chunk_ids()
        present = self.ids()
        missing = np.setdiff1d(stored, present, assume_unique=True)
        extra = np.setdiff1d(present, stored, assume_unique=True)
        self.remove([int(i) for i in extra])
        for start in range(0, len(missing), 50_000):
            ids, vectors = store.vectors_for(missing[start : start + 50_000].tolist())
            if len(ids):
                self._check_model(store.embedding_models()[0][0], vectors.shape[1])
                self.add(ids, vectors)
        self.version = store.version()
        if len(missing) or len(extra):
            log.info("FAISS index synced with SQLite: +%d -%d vectors", len(missing), len(extra))

    # --- search -------------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        with self._lock:
            if self._index.ntotal == 0:
                return []
            extra = len(self._removed)
            scores, ids = self._index.search(query, min(k + extra, int(self._index.ntotal)))
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
        with self._lock:
            if self._removed:
                return  # an HNSW index with tombstones is not worth persisting; rebuilt on next open
            meta = IndexMeta(self.model, self.dim, int(self._index.ntotal), self.version, self.kind)
            tmp = self.index_path.with_name(INDEX_FILE + ".tmp")
            faiss.write_index(self._index, str(tmp))
            _fsync(tmp)
        meta_tmp = self.meta_path.with_name(META_FILE + ".tmp")
        meta_tmp.write_text(json.dumps(meta.__dict__))
        _fsync(meta_tmp)
        # Meta first: a crash between the renames leaves a meta that fails verification, never a
        # mismatched pair that passes.
        os.replace(meta_tmp, self.meta_path)
        os.replace(tmp, self.index_path)

    def load_or_rebuild(self, store: Store) -> str:
        """Open the saved index if it is sound; returns what happened ("loaded", "synced", "rebuilt")."""
        problem = self._load()
        if problem is None and self.count != store.counts()["embeddings"] and self.version == store.version():
            problem = "vector count differs from SQLite"
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

    def _load(self) -> str | None:
        if not self.index_path.exists() or not self.meta_path.exists():
            return "index file missing"
        try:
            meta = IndexMeta(**json.loads(self.meta_path.read_text()))
        except (ValueError, TypeError) as exc:
            return f"unreadable metadata: {exc}"
        if meta.model != self.model or meta.dim != self.dim:
            return f"made by another model ({meta.model}, {meta.dim} dims)"
        try:
            index = faiss.read_index(str(self.index_path))
        except RuntimeError as exc:
            return f"corrupt index file: {str(exc).splitlines()[0][:200]}"
        if index.d != self.dim or index.ntotal != meta.count or not isinstance(index, faiss.IndexIDMap2):
            return "index file does not match its metadata"
        with self._lock:
            self._index = index
            self._removed = set()
            self.version = meta.version
        return None


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
