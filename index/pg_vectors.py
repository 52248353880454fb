"""Vector search in PostgreSQL with pgvector: the database is the index, nothing is copied or saved.

The vectors live in ``embeddings`` (index.pg_store) without a fixed dimension; the HNSW index is a
partial expression index on ``vector::vector(dim)`` for the configured model's dimension, with inner
product (the vectors are normalised, so it ranks as cosine), and ``hnsw.ef_search`` set per query.

Small corpora are searched exactly, as FAISS's flat index does: below ``EXACT_BELOW`` passages (or
``[search] hnsw_threshold`` if lower) a query scans every vector (the bare column does not match the
index's expression). Measured on 2 busy cores with 384-dim vectors: the scan takes 0.4 ms at 2k and
13 ms at 20k passages, HNSW (ef_search 512) 1.2 and 14 ms with recall@10 1.0 and 0.985. Maintaining
an HNSW index costs ingestion ~30x (330 instead of ~10,000 vectors/s), so the index is only built
when the corpus first reaches that size (like FAISS's conversion; seconds per 10k vectors), and from
then on kept by PostgreSQL with every insert. ``[search] index = "hnsw"`` builds it at once,
``"flat"`` never.

``version`` keeps the meaning ``KnowledgeBase`` relies on (the store version the index reflects):
every committed write is in the index at once, so ``add``/``remove`` only let the version follow,
and ``sync`` reads it. Searches use the store's per-thread read connections.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import psycopg

from .engine import ArticleStore, StorageError
from .postgres import connect, describe
from .settings import SearchSettings, StorageSettings

log = logging.getLogger(__name__)

# pgvector's upper bound for hnsw.ef_search.
MAX_EF_SEARCH = 1000
EF_CONSTRUCTION = 80  # as the FAISS HNSW index (index.vectors)
EXACT_BELOW = 20_000
BUILD_MEMORY = "512MB"
# pg_advisory_xact_lock key while creating the HNSW index ("articlev"): two processes opening at once build it once.
INDEX_LOCK = 0x61727469636C6576


class PgVectorIndex:
    def __init__(self, storage: StorageSettings, settings: SearchSettings, model: str, dim: int):
        self.storage = storage
        self.settings = settings
        self.model = model
        self.dim = int(dim)
        self.version = -1
        self._store = None
        self._count = 0
        self._count_version = -2
        self._has_index = False

    @property
    def index_name(self) -> str:
        return f"embeddings_hnsw_{self.dim}"

    # --- the protocol -------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return f"pgvector-{'hnsw' if self._use_hnsw() else 'flat'}"

    def _exact_below(self) -> int:
        return min(EXACT_BELOW, self.settings.hnsw_threshold)

    def _wants_index(self, count: int) -> bool:
        if self.settings.index == "auto":
            return count >= self._exact_below()
        return self.settings.index == "hnsw"

    def _use_hnsw(self) -> bool:
        """HNSW once its index exists and the corpus calls for it (until then, and for "flat": exact)."""
        return self._has_index and self._wants_index(self.count)

    @property
    def count(self) -> int:
        if self._store is None:
            return 0
        if self._count_version != self.version:
            # Each passage has its vector and its lexical row, written in one transaction, so the passage
            # count BM25 keeps is this count, read from one row; count(*) over embeddings would read every
            # vector (about 200 MB at 100k passages) after each write. (Vectors of another model make the
            # knowledge base refuse to open until a reindex replaces them, so they never count here.)
            row = self._query("SELECT docs FROM lexical_stats").fetchone()
            self._count, self._count_version = int(row[0]), self.version
        return self._count

    def load_or_rebuild(self, store: ArticleStore) -> str:
        self._attach(store)
        created = self._index_if_due()
        return "rebuilt" if created else "loaded"

    def rebuild(self, store: ArticleStore) -> None:
        self._attach(store)
        self._index_if_due()

    def sync(self, store: ArticleStore) -> None:
        self._attach(store)
        self._index_if_due()

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Nothing to copy: the committed vectors are already in the index (built here once the corpus is large)."""
        if len(ids) and not self._has_index and self._store is not None:
            self._count_version = -2  # the caller moves the version only after this: count afresh
            self._index_if_due()

    def remove(self, ids: list[int]) -> None:
        """Nothing to delete: removed vectors left the index with their commit."""

    def save(self) -> None:
        """Nothing to save: the database is the index."""

    def ef_search(self) -> int:
        """efSearch for the corpus's size, as index.vectors grows it, within pgvector's bound."""
        base, per = self.settings.hnsw_ef_search, self.settings.hnsw_ef_scale_passages
        wanted = base if per <= 0 else max(base, round(base * self.count / per))
        return min(wanted, MAX_EF_SEARCH)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, inner product) of the ``k`` nearest stored vectors."""
        if self._store is None or k <= 0:
            return []
        vector = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(-1))
        if vector.shape[0] != self.dim:
            raise ValueError(f"a {vector.shape[0]}-dimensional query for a {self.dim}-dimensional index")
        exact = not self._use_hnsw()
        # Exact: the bare column, which the expression index cannot serve, so PostgreSQL scans every vector.
        distance = "vector <#> %s" if exact else f"(vector::vector({self.dim})) <#> %s"
        sql = f"SELECT chunk_id, {distance} AS d FROM embeddings WHERE dim = {self.dim} ORDER BY d LIMIT %s"
        conn = self._connection()
        try:
            with conn.transaction():
                if not exact:
                    conn.execute(f"SET LOCAL hnsw.ef_search = {max(self.ef_search(), min(k, MAX_EF_SEARCH))}")
                rows = conn.execute(sql, (vector, k)).fetchall()
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        return [(int(chunk_id), -float(d)) for chunk_id, d in rows]

    # --- beyond the protocol ------------------------------------------------------------------

    def ids(self) -> np.ndarray:
        """The chunk ids the index holds (tests compare them with the store's)."""
        rows = self._query(f"SELECT chunk_id FROM embeddings WHERE dim = {self.dim} ORDER BY chunk_id").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def explain(self, k: int = 10) -> str:
        """The plan of a search (tests check that HNSW is used when it should be)."""
        vector = np.zeros(self.dim, dtype=np.float32)
        vector[0] = 1.0
        exact = not self._use_hnsw()
        distance = "vector <#> %s" if exact else f"(vector::vector({self.dim})) <#> %s"
        sql = f"EXPLAIN SELECT chunk_id, {distance} AS d FROM embeddings WHERE dim = {self.dim} ORDER BY d LIMIT %s"
        return "\n".join(r[0] for r in self._query(sql, (vector, k)).fetchall())

    # --- helpers ------------------------------------------------------------------------------

    def _attach(self, store: ArticleStore) -> None:
        """Search ``store``'s database from now on, as of its current version."""
        if not hasattr(store, "reader"):
            raise TypeError("PgVectorIndex searches the vectors of a PgStore")
        self._store = store
        self.version = store.version()
        if not self._has_index:
            self._has_index = self._query("SELECT to_regclass(%s)", (self.index_name,)).fetchone()[0] is not None

    def _index_if_due(self) -> bool:
        """Create the HNSW index for this dimension if the corpus calls for it and it is missing (True then)."""
        if self._has_index or not self._wants_index(self.count):
            return False
        started = time.monotonic()
        try:
            with connect(self.storage) as conn, conn.transaction():
                # Another process may be building it: one waits for the other (CREATE INDEX IF NOT EXISTS
                # alone would let both build and one of them fail at the end).
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (INDEX_LOCK,))
                # The default 64 MB holds the graph of ~30k 384-dim vectors; beyond it pgvector builds far slower.
                conn.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {self.index_name} ON embeddings "
                    f"USING hnsw ((vector::vector({self.dim})) vector_ip_ops) "
                    f"WITH (m = {int(self.settings.hnsw_m)}, ef_construction = {EF_CONSTRUCTION}) "
                    f"WHERE dim = {self.dim}"
                )
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        self._has_index = True
        log.info(
            "pgvector HNSW index %s ready at %d vectors (%.1f s)",
            self.index_name,
            self.count,
            time.monotonic() - started,
        )
        return True

    def _connection(self) -> psycopg.Connection:
        return self._store.reader()

    def _query(self, sql: str, params: tuple = ()) -> psycopg.Cursor:
        try:
            return self._connection().execute(sql, params)
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: psycopg.Error) -> StorageError:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return StorageError(f"PostgreSQL at {describe(self.storage)}: {lines[0] if lines else type(exc).__name__}")
