"""SQLite store (through sqlite-utils): the source of truth for articles, chunks, vectors and FTS.

Writes go through one connection, one transaction per article: after a crash an article is either
complete (article, chunks, vectors, FTS rows) or absent. Readers use their own connections, so
they never see a half-written article. Each write bumps ``meta.version`` in the same transaction,
which lets the derived FAISS index tell whether it is stale.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import sqlite_utils

from .lexical import fts_match
from .records import (
    ArticleNotFound,
    ArticleRecord,
    ChunkRecord,
    DuplicateArticle,
    article_row,
    content_hash,
    new_article_row,
    normalize_url,
)
from .schema import connect, open_migrated


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The schema is brought up to date on open (index.schema); a database newer than the code is refused.
        self._write_conn = open_migrated(self.path)
        self.db = sqlite_utils.Database(self._write_conn)
        self._write_lock = threading.Lock()
        self._local = threading.local()

    # --- connections --------------------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        """A per-thread read connection: it only ever sees committed articles."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every statement inside sees one and the same committed state.

        Without it each statement is its own snapshot, and a commit landing between two of them
        shows, say, the chunks of an article but not yet its vectors.
        """
        conn = self.reader()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        self._write_conn.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- writes -------------------------------------------------------------------------------

    def find_duplicate(self, text_hash: str, url_key: str | None) -> tuple[int, str] | None:
        return self._find_duplicate_in(self.reader(), text_hash, url_key)

    def add_article(
        self,
        article: dict,
        chunks: Sequence[dict],
        vectors: np.ndarray,
        model: str,
        fts_rows: Sequence[tuple[str, str]],
    ) -> tuple[int, list[int]]:
        """Insert an article with its chunks, vectors and FTS rows in one transaction."""
        record = new_article_row(article)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._write_lock, self._transaction() as conn:
            duplicate = self._find_duplicate_in(conn, record["content_hash"], record["url_key"])
            if duplicate:
                raise DuplicateArticle(*duplicate)
            record["id"] = article_id = self._next_id(conn, "articles")
            columns = ", ".join(record)
            marks = ", ".join("?" for _ in record)
            conn.execute(f"INSERT INTO articles ({columns}) VALUES ({marks})", tuple(record.values()))
            first_chunk = self._next_id(conn, "chunks", len(chunks))
            chunk_ids = self._insert_chunks(conn, article_id, first_chunk, chunks, vectors, model, fts_rows)
            self._bump_version(conn)
        return article_id, chunk_ids

    def replace_chunks(
        self,
        article_id: int,
        chunks: Sequence[dict],
        vectors: np.ndarray,
        fts_rows: Sequence[tuple[str, str]],
        model: str,
    ) -> tuple[list[int], list[int]]:
        """Swap an article's passages for new ones (re-chunked) in one transaction: (old ids, new ids).

        After a crash the article holds either all its old passages or all its new ones. The new
        passages get ids never used before, so a stale FAISS index never mistakes one for an old one.
        """
        if not chunks:
            raise ValueError("an article needs at least one passage")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._write_lock, self._transaction() as conn:
            if conn.execute("SELECT 1 FROM articles WHERE id = ?", (article_id,)).fetchone() is None:
                raise ArticleNotFound(article_id)
            # Ids first: _next_id falls back to max(id), which must still see the old passages.
            first_chunk = self._next_id(conn, "chunks", len(chunks))
            old_ids = self._delete_chunks(conn, article_id)
            new_ids = self._insert_chunks(conn, article_id, first_chunk, chunks, vectors, model, fts_rows)
            self._bump_version(conn)
        return old_ids, new_ids

    def reserve_chunk_ids(self, count: int) -> int:
        """The first of ``count`` chunk ids set aside now for a later write (unused ones are never reused)."""
        with self._write_lock, self._transaction() as conn:
            return self._next_id(conn, "chunks", count)

    def refresh_article(
        self,
        article_id: int,
        article: dict,
        chunks: Sequence[dict],
        vectors: np.ndarray,
        model: str,
        fts_rows: Sequence[tuple[str, str]],
        first_chunk_id: int,
    ) -> list[int]:
        """New text for an article, with all its passages, vectors and FTS rows, in one transaction.

        The article keeps its id; ``article`` holds the columns that change (title, text, published,
        language). The new passages take the ids from ``first_chunk_id`` on (``reserve_chunk_ids``).
        Returns the ids of the passages it replaced. A reader sees the old article or the new one.
        """
        if not chunks:
            raise ValueError("an article needs at least one passage")
        record = {k: article[k] for k in ("title", "text", "published", "language") if k in article}
        record["content_hash"] = content_hash(record["text"])
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._write_lock, self._transaction() as conn:
            if conn.execute("SELECT 1 FROM articles WHERE id = ?", (article_id,)).fetchone() is None:
                raise ArticleNotFound(article_id)
            row = conn.execute(
                "SELECT id FROM articles WHERE content_hash = ? AND id != ?", (record["content_hash"], article_id)
            ).fetchone()
            if row:
                raise DuplicateArticle(row[0], "same text")
            assignments = ", ".join(f"{k} = ?" for k in record)
            conn.execute(f"UPDATE articles SET {assignments} WHERE id = ?", (*record.values(), article_id))
            old_ids = self._delete_chunks(conn, article_id)
            self._insert_chunks(conn, article_id, first_chunk_id, chunks, vectors, model, fts_rows)
            self._bump_version(conn)
        return old_ids

    def article_id_for_url(self, url: str | None) -> int | None:
        """The article stored under this URL (tracking parameters and fragments aside), if any."""
        key = normalize_url(url)
        if not key:
            return None
        row = self.reader().execute("SELECT id FROM articles WHERE url_key = ?", (key,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def _insert_chunks(
        conn: sqlite3.Connection,
        article_id: int,
        first_id: int,
        chunks: Sequence[dict],
        vectors: np.ndarray,
        model: str,
        fts_rows: Sequence[tuple[str, str]],
    ) -> list[int]:
        """Chunks with their vectors and FTS rows, ids from ``first_id`` on (inside the caller's transaction)."""
        chunk_ids = []
        for chunk, vector, (title_terms, terms) in zip(chunks, vectors, fts_rows, strict=True):
            chunk_id = first_id + len(chunk_ids)
            conn.execute(
                "INSERT INTO chunks (id, article_id, position, text, start, end) VALUES (?, ?, ?, ?, ?, ?)",
                (chunk_id, article_id, chunk["position"], chunk["text"], chunk["start"], chunk["end"]),
            )
            chunk_ids.append(chunk_id)
            conn.execute(
                "INSERT INTO embeddings (chunk_id, model, dim, vector) VALUES (?, ?, ?, ?)",
                (chunk_id, model, int(vector.shape[0]), vector.tobytes()),
            )
            conn.execute(
                "INSERT INTO chunks_fts (rowid, title_terms, terms) VALUES (?, ?, ?)",
                (chunk_id, title_terms, terms),
            )
        return chunk_ids

    @staticmethod
    def _delete_chunks(conn: sqlite3.Connection, article_id: int) -> list[int]:
        """Remove an article's chunks with their vectors and FTS rows (inside the caller's transaction)."""
        chunk_ids = [r[0] for r in conn.execute("SELECT id FROM chunks WHERE article_id = ?", (article_id,))]
        conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(c,) for c in chunk_ids])
        conn.executemany("DELETE FROM embeddings WHERE chunk_id = ?", [(c,) for c in chunk_ids])
        conn.execute("DELETE FROM chunks WHERE article_id = ?", (article_id,))
        return chunk_ids

    def remove_article(self, article_id: int) -> list[int]:
        with self._write_lock, self._transaction() as conn:
            if conn.execute("SELECT 1 FROM articles WHERE id = ?", (article_id,)).fetchone() is None:
                raise ArticleNotFound(article_id)
            chunk_ids = self._delete_chunks(conn, article_id)
            conn.execute("DELETE FROM articles WHERE id = ?", (article_id,))
            self._bump_version(conn)
        return chunk_ids

    def replace_vectors(self, rows: Sequence[tuple[int, np.ndarray]], model: str) -> None:
        """Re-embedding with another model: these passages' vectors swapped in one transaction.

        Only the given rows: passages re-chunked during the same reindex already hold new vectors.
        """
        with self._write_lock, self._transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (chunk_id, model, dim, vector) VALUES (?, ?, ?, ?)",
                [(cid, model, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes()) for cid, v in rows],
            )
            self._bump_version(conn)

    def replace_fts(self, rows: Sequence[tuple[int, str, str]]) -> None:
        """Swap every FTS row (chunk id, title terms, terms) in one transaction: a new analyzer's terms."""
        with self._write_lock, self._transaction() as conn:
            conn.execute("DELETE FROM chunks_fts")
            conn.executemany("INSERT INTO chunks_fts (rowid, title_terms, terms) VALUES (?, ?, ?)", rows)

    def import_article(
        self,
        article: ArticleRecord,
        chunks: Sequence[ChunkRecord],
        vectors: np.ndarray,
        model: str,
        fts_rows: Sequence[tuple[str, str]],
    ) -> None:
        """Copy an article from another store with its own ids, passages, vectors and FTS rows, in one transaction.

        The ids are kept (citations, FAISS and feed items name them); the id counters grow past them,
        so they are never handed out again. An id already taken here raises ``DuplicateArticle``.
        """
        if not chunks:
            raise ValueError("an article needs at least one passage")
        record = article_row(article)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = [{"position": c.position, "text": c.text, "start": c.start, "end": c.end} for c in chunks]
        with self._write_lock, self._transaction() as conn:
            taken = conn.execute(
                "SELECT id FROM articles WHERE id = ? OR content_hash = ?", (article.id, article.content_hash)
            ).fetchone()
            if taken:
                raise DuplicateArticle(taken[0], "same id" if taken[0] == article.id else "same text")
            taken = conn.execute(
                f"SELECT id FROM chunks WHERE id IN ({','.join('?' for _ in chunks)})", [c.id for c in chunks]
            ).fetchone()
            if taken:
                raise ValueError(f"passage id {taken[0]} is taken here already")
            columns = ", ".join(record)
            conn.execute(
                f"INSERT INTO articles ({columns}) VALUES ({', '.join('?' for _ in record)})", tuple(record.values())
            )
            for chunk, row, vector, fts in zip(chunks, rows, vectors, fts_rows, strict=True):
                self._insert_chunks(conn, article.id, chunk.id, [row], vector[None, :], model, [fts])
            self._raise_counters(conn, {"articles": article.id, "chunks": max(c.id for c in chunks)})
            self._bump_version(conn)

    def id_counters(self) -> dict[str, int]:
        """The highest article and passage ids ever handed out (removed ones count: they are never reused)."""
        with self.snapshot() as conn:
            return {table: self._last_id(conn, table) for table in ("articles", "chunks")}

    def raise_id_counters(self, counters: dict[str, int]) -> None:
        """Let the next ids start after ``counters`` (another store's ``id_counters``); never lowers them."""
        with self._write_lock, self._transaction() as conn:
            self._raise_counters(conn, counters)

    @classmethod
    def _raise_counters(cls, conn: sqlite3.Connection, counters: dict[str, int]) -> None:
        for table, last in counters.items():
            if last > cls._last_id(conn, table):
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (f"last_{table}_id", str(last)))

    @staticmethod
    def _last_id(conn: sqlite3.Connection, table: str) -> int:
        if table not in ("articles", "chunks"):
            raise ValueError(f"no id counter for {table!r}")
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (f"last_{table}_id",)).fetchone()
        current = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        return max(int(row[0]) if row else 0, current)

    def lexical_rows(self, chunk_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """The FTS rows (title terms, terms) of these passages, as the analyzer wrote them."""
        if not chunk_ids:
            return {}
        marks = ",".join("?" for _ in chunk_ids)
        rows = self.reader().execute(
            f"SELECT rowid, title_terms, terms FROM chunks_fts WHERE rowid IN ({marks})", [int(c) for c in chunk_ids]
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    def _transaction(self):
        return _Transaction(self._write_conn)

    @staticmethod
    def _find_duplicate_in(conn: sqlite3.Connection, text_hash: str, url_key: str | None):
        row = conn.execute("SELECT id FROM articles WHERE content_hash = ?", (text_hash,)).fetchone()
        if row:
            return row[0], "same text"
        if url_key:
            row = conn.execute("SELECT id FROM articles WHERE url_key = ?", (url_key,)).fetchone()
            if row:
                return row[0], "same URL"
        return None

    @staticmethod
    def _next_id(conn: sqlite3.Connection, table: str, count: int = 1) -> int:
        """The first of ``count`` ids never used before in ``table``.

        SQLite would hand out the id of a just-removed newest row again; a FAISS index (or a
        citation, or a person) still holding the old id would then silently mean the new row.
        """
        key = f"last_{table}_id"
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        used = int(row[0]) if row else 0
        current = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        first = max(used, current) + 1
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(first + max(count, 1) - 1)))
        return first

    @staticmethod
    def _bump_version(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")

    # --- reads --------------------------------------------------------------------------------

    def version(self) -> int:
        row = self.reader().execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        return int(row[0])

    def store_id(self) -> str:
        return self.get_meta("store_id") or ""

    def get_meta(self, key: str) -> str | None:
        row = self.reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def article(self, article_id: int) -> ArticleRecord:
        row = (
            self.reader()
            .execute(
                "SELECT a.*, (SELECT count(*) FROM chunks c WHERE c.article_id = a.id) AS chunk_count "
                "FROM articles a WHERE a.id = ?",
                (article_id,),
            )
            .fetchone()
        )
        if row is None:
            raise ArticleNotFound(article_id)
        return _article(row)

    def articles(self, limit: int | None = None, offset: int = 0) -> list[ArticleRecord]:
        sql = (
            "SELECT a.*, (SELECT count(*) FROM chunks c WHERE c.article_id = a.id) AS chunk_count "
            "FROM articles a ORDER BY a.id DESC LIMIT ? OFFSET ?"
        )
        rows = self.reader().execute(sql, (-1 if limit is None else limit, offset))
        return [_article(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.snapshot() as conn:
            return {
                "articles": conn.execute("SELECT count(*) FROM articles").fetchone()[0],
                "chunks": conn.execute("SELECT count(*) FROM chunks").fetchone()[0],
                "embeddings": conn.execute("SELECT count(*) FROM embeddings").fetchone()[0],
            }

    def chunks_by_id(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRecord]:
        if not chunk_ids:
            return {}
        marks = ",".join("?" for _ in chunk_ids)
        rows = self.reader().execute(
            "SELECT c.id, c.article_id, c.position, c.text, c.start, c.end, a.title, a.url, a.language "
            f"FROM chunks c JOIN articles a ON a.id = c.article_id WHERE c.id IN ({marks})",
            tuple(int(c) for c in chunk_ids),
        )
        return {r["id"]: ChunkRecord(*r) for r in rows}

    def article_chunks(self, article_id: int) -> list[ChunkRecord]:
        rows = self.reader().execute(
            "SELECT c.id, c.article_id, c.position, c.text, c.start, c.end, a.title, a.url, a.language "
            "FROM chunks c JOIN articles a ON a.id = c.article_id WHERE c.article_id = ? ORDER BY c.position",
            (article_id,),
        )
        return [ChunkRecord(*r) for r in rows]

    def chunk_ids(self) -> np.ndarray:
        rows = self.reader().execute("SELECT id FROM chunks ORDER BY id").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def iter_vectors(self, batch: int = 50_000, after: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, str]]:
        """(ids, vectors, model) in id order, in batches, so a rebuild never holds two copies."""
        conn = self.reader()
        last = after
        while True:
            rows = conn.execute(
                "SELECT chunk_id, model, dim, vector FROM embeddings WHERE chunk_id > ? ORDER BY chunk_id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            dim = rows[0][2]
            vectors = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float32).reshape(len(rows), dim)
            yield ids, vectors, rows[0][1]
            last = int(ids[-1])

    def vectors_for(self, chunk_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        if not len(chunk_ids):
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        marks = ",".join("?" for _ in chunk_ids)
        rows = (
            self.reader()
            .execute(
                f"SELECT chunk_id, dim, vector FROM embeddings WHERE chunk_id IN ({marks}) ORDER BY chunk_id",
                tuple(int(c) for c in chunk_ids),
            )
            .fetchall()
        )
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        dim = rows[0][1] if rows else 0
        vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vectors

    def embedding_models(self) -> list[tuple[str, int]]:
        return [tuple(r) for r in self.reader().execute("SELECT DISTINCT model, dim FROM embeddings")]

    def chunk_id_bound(self) -> int:
        """The highest chunk id: an upper bound of the passage count, in O(1) (ids are never reused)."""
        return int(self.reader().execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()[0])

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """Passages holding each analysed term, read from FTS5's term index (fts5vocab, no schema change)."""
        conn = self.reader()
        if getattr(self._local, "vocab_conn", None) is not conn:  # temp tables belong to a connection
            conn.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab USING fts5vocab(main, chunks_fts, 'row')"
            )
            self._local.vocab_conn = conn
        out = {}
        for term in terms:
            row = conn.execute("SELECT doc FROM temp.chunks_vocab WHERE term = ?", (term,)).fetchone()
            out[term] = int(row[0]) if row else 0
        return out

    def lexical_search(self, terms: Sequence[str], k: int) -> list[tuple[int, float]]:
        """(chunk id, bm25 score, higher is better): an FTS5 OR-query over the analysed terms."""
        query = fts_match(list(terms))
        if not query:
            return []
        rows = (
            self.reader()
            .execute(
                "SELECT rowid, bm25(chunks_fts, 0.5, 1.0) AS rank FROM chunks_fts WHERE chunks_fts MATCH ? "
                "ORDER BY rank LIMIT ?",
                (query, k),
            )
            .fetchall()
        )
        return [(r[0], -r[1]) for r in rows]

    def integrity(self) -> dict[str, int]:
        """Counts of rows that would mean a half-added or half-removed article (all should be 0)."""
        with self.snapshot() as conn:
            return self._integrity(conn.execute)

    @staticmethod
    def _integrity(q) -> dict[str, int]:
        return {
            "chunks_without_article": q(
                "SELECT count(*) FROM chunks WHERE article_id NOT IN (SELECT id FROM articles)"
            ).fetchone()[0],
            "articles_without_chunks": q(
                "SELECT count(*) FROM articles WHERE id NOT IN (SELECT article_id FROM chunks)"
            ).fetchone()[0],
            "chunks_without_vector": q(
                "SELECT count(*) FROM chunks WHERE id NOT IN (SELECT chunk_id FROM embeddings)"
            ).fetchone()[0],
            "vectors_without_chunk": q(
                "SELECT count(*) FROM embeddings WHERE chunk_id NOT IN (SELECT id FROM chunks)"
            ).fetchone()[0],
            "fts_mismatch": abs(
                q("SELECT count(*) FROM chunks_fts").fetchone()[0] - q("SELECT count(*) FROM chunks").fetchone()[0]
            ),
        }


def _article(row: sqlite3.Row) -> ArticleRecord:
    return ArticleRecord(
        id=row["id"],
        title=row["title"],
        url=row["url"],
        source=row["source"],
        published=row["published"],
        added_by=row["added_by"],
        added_at=row["added_at"],
        content_hash=row["content_hash"],
        text=row["text"],
        language=row["language"],
        chunk_count=row["chunk_count"],
    )


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (one writer at a time)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
