"""The PostgreSQL article store: ``index.store.Store``'s behaviour, in a database several processes share.

Writes go through one connection under a lock, one transaction per article, and every write
transaction first locks the ``meta`` row holding the version: writers queue there (as SQLite's
BEGIN IMMEDIATE makes them), across processes too, so the id counters hand out contiguous blocks that
never overlap and no two writers' term counts deadlock. Each write bumps that version in the same
transaction. Readers use a connection per thread and never see a half-written article; reads of
several statements (counts, integrity) run in one REPEATABLE READ snapshot.

Lexical search computes FTS5's BM25 in SQL, so both engines rank alike (``index.unicode61`` makes the
same tokens of the stored terms): ``postings`` (token → passage, title and body counts, passage
length), ``lexical_terms`` (passages per token) and ``lexical_stats`` (passages and tokens in all).
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.pq import TransactionStatus

from .engine import StorageError
from .postgres import connect, describe, open_migrated
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
from .settings import StorageSettings
from .unicode61 import tokens, word_tokens

# FTS5's bm25(): k1, b, and the column weights the SQLite engine passes (bm25(chunks_fts, 0.5, 1.0)).
BM25_K1 = 1.2
BM25_B = 0.75
TITLE_WEIGHT = 0.5
BODY_WEIGHT = 1.0
# As the SQLite engine's query (index.lexical.fts_match): the first 64 terms of a question count.
MAX_QUERY_TERMS = 64

_ARTICLE_COLUMNS = (
    "a.id, a.title, a.url, a.source, a.published, a.added_by, a.added_at, a.content_hash, a.text, a.language, "
    "(SELECT count(*) FROM chunks c WHERE c.article_id = a.id) AS chunk_count"
)
_CHUNK_COLUMNS = 'c.id, c.article_id, c.position, c.text, c.start, c."end", a.title, a.url, a.language'

# Sum over the query's terms of idf · f·(k1+1) / (f + k1·(1 − b + b·D/avgdl)), f = 0.5·tf_title + tf_body,
# D the passage's tokens in both columns; idf = ln((N − n + 0.5)/(n + 0.5)), 1e-6 where that is ≤ 0.
# The shape is fixed for the planner: one index lookup per term in lexical_terms and in postings
# (LATERAL, OFFSET 0 keeps it from being flattened into a join). Left to choose, with statistics from
# before a bulk load it merge-joined the whole postings index: 4.5 s instead of 30 ms at 40k passages.
_BM25_SQL = """
WITH s AS MATERIALIZED (SELECT docs::float8 AS n, tokens::float8 / greatest(docs, 1) AS avgdl FROM lexical_stats),
q AS MATERIALIZED (
    SELECT u.term, ln((s.n - t.docs + 0.5) / (t.docs + 0.5)) AS idf
    FROM s CROSS JOIN unnest(%(terms)s::text[]) AS u (term)
    CROSS JOIN LATERAL (SELECT coalesce((SELECT docs FROM lexical_terms WHERE term = u.term), 0)::float8 AS docs) AS t
)
SELECT p.chunk_id, sum(
    (CASE WHEN q.idf > 0 THEN q.idf ELSE 1e-6 END)
    * (%(wt)s * p.tf_title + %(wb)s * p.tf_body) * (%(k1)s + 1)
    / ((%(wt)s * p.tf_title + %(wb)s * p.tf_body) + %(k1)s * (1 - %(b)s + %(b)s * p.length / s.avgdl))
) AS score
FROM s, q CROSS JOIN LATERAL (
    SELECT chunk_id, tf_title, tf_body, length FROM postings WHERE postings.term = q.term OFFSET 0
) AS p
GROUP BY p.chunk_id
ORDER BY score DESC, p.chunk_id
LIMIT %(k)s
"""


def _one_line(exc: psycopg.Error) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _translated(method):
    """psycopg's errors as a StorageError of one line (the bot and the CLI print those, not a traceback)."""

    @functools.wraps(method)
    def wrapper(self: PgStore, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except psycopg.Error as exc:
            self._forget_broken()
            raise StorageError(f"PostgreSQL at {describe(self.storage)}: {_one_line(exc)}") from exc

    return wrapper


def query_tokens(terms: Sequence[str]) -> list[str]:
    """The tokens a query's terms are matched as. A term FTS5 would split ("a_b") becomes its tokens,
    each matched alone (FTS5 matches them as a phrase; analysed terms almost never split)."""
    return [token for term in terms[:MAX_QUERY_TERMS] for token in word_tokens(term)]


def _runs(ids: Sequence[int]) -> Iterator[tuple[int, int]]:
    """(start, stop) index ranges of ``ids`` in which each id is one more than the one before."""
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[i - 1] + 1:
            yield start, i
            start = i


class PgStore:
    def __init__(self, storage: StorageSettings):
        self.storage = storage
        # The schema is brought up to date on open (index.postgres); a database newer than the code is refused.
        self._write_conn = self._prepare(open_migrated(storage))
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[psycopg.Connection] = []
        self._readers_lock = threading.Lock()

    # --- connections --------------------------------------------------------------------------

    @staticmethod
    def _prepare(conn: psycopg.Connection) -> psycopg.Connection:
        try:
            register_vector(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def reader(self) -> psycopg.Connection:
        """A per-thread read connection (autocommit: each statement sees committed articles only)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._prepare(connect(self.storage))
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _writer(self) -> psycopg.Connection:
        if self._write_conn.closed:
            self._write_conn = self._prepare(connect(self.storage))
        return self._write_conn

    def _forget_broken(self) -> None:
        """Drop this thread's connections that the server ended (a restart): the next call reconnects."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.broken:
            conn.close()
        if self._write_conn.broken:
            self._write_conn.close()

    @contextmanager
    def snapshot(self) -> Iterator[psycopg.Connection]:
        """A read transaction in which every statement sees one and the same committed state."""
        conn = self.reader()
        if conn.info.transaction_status != TransactionStatus.IDLE:
            yield conn
            return
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[psycopg.Connection]:
        """One write transaction, after the writers of every process before it (the version row's lock)."""
        with self._write_lock:
            conn = self._writer()
            with conn.transaction():
                conn.execute("SELECT value FROM meta WHERE key = 'version' FOR UPDATE")
                yield conn

    def close(self) -> None:
        self._write_conn.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._local = threading.local()

    # --- writes -------------------------------------------------------------------------------

    @_translated
    def find_duplicate(self, text_hash: str, url_key: str | None) -> tuple[int, str] | None:
        return self._find_duplicate_in(self.reader(), text_hash, url_key)

    @_translated
    def add_article(
        self,
        article: dict,
        chunks: Sequence[dict],
        vectors: np.ndarray,
        model: str,
        fts_rows: Sequence[tuple[str, str]],
    ) -> tuple[int, list[int]]:
        """Insert an article with its chunks, vectors and lexical rows in one transaction."""
        record = new_article_row(article)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._writing() as conn:
            duplicate = self._find_duplicate_in(conn, record["content_hash"], record["url_key"])
            if duplicate:
                raise DuplicateArticle(*duplicate)
            record["id"] = article_id = self._next_id(conn, "articles")
            columns = ", ".join(record)
            marks = ", ".join("%s" for _ in record)
            conn.execute(f"INSERT INTO articles ({columns}) VALUES ({marks})", tuple(record.values()))
            first_chunk = self._next_id(conn, "chunks", len(chunks))
            chunk_ids = self._insert_chunks(conn, article_id, first_chunk, chunks, vectors, model, fts_rows)
            self._bump_version(conn)
        return article_id, chunk_ids

    @_translated
    def replace_chunks(
        self,
        article_id: int,
        chunks: Sequence[dict],
        vectors: np.ndarray,
        fts_rows: Sequence[tuple[str, str]],
        model: str,
    ) -> tuple[list[int], list[int]]:
        """Swap an article's passages for new ones (re-chunked) in one transaction: (old ids, new ids)."""
        if not chunks:
            raise ValueError("an article needs at least one passage")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._writing() as conn:
            self._require_article(conn, article_id)
            first_chunk = self._next_id(conn, "chunks", len(chunks))
            old_ids = self._delete_chunks(conn, article_id)
            new_ids = self._insert_chunks(conn, article_id, first_chunk, chunks, vectors, model, fts_rows)
            self._bump_version(conn)
        return old_ids, new_ids

    @_translated
    def reserve_chunk_ids(self, count: int) -> int:
        """The first of ``count`` chunk ids set aside now for a later write (unused ones are never reused)."""
        with self._writing() as conn:
            return self._next_id(conn, "chunks", count)

    @_translated
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
        """New text for an article, with all its passages, vectors and lexical rows, in one transaction."""
        if not chunks:
            raise ValueError("an article needs at least one passage")
        record = {k: article[k] for k in ("title", "text", "published", "language") if k in article}
        record["content_hash"] = content_hash(record["text"])
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._writing() as conn:
            self._require_article(conn, article_id)
            row = conn.execute(
                "SELECT id FROM articles WHERE content_hash = %s AND id != %s", (record["content_hash"], article_id)
            ).fetchone()
            if row:
                raise DuplicateArticle(row[0], "same text")
            assignments = ", ".join(f"{k} = %s" for k in record)
            conn.execute(f"UPDATE articles SET {assignments} WHERE id = %s", (*record.values(), article_id))
            old_ids = self._delete_chunks(conn, article_id)
            self._insert_chunks(conn, article_id, first_chunk_id, chunks, vectors, model, fts_rows)
            self._bump_version(conn)
        return old_ids

    @_translated
    def article_id_for_url(self, url: str | None) -> int | None:
        """The article stored under this URL (tracking parameters and fragments aside), if any."""
        key = normalize_url(url)
        if not key:
            return None
        row = self.reader().execute("SELECT id FROM articles WHERE url_key = %s ORDER BY id LIMIT 1", (key,)).fetchone()
        return row[0] if row else None

    @_translated
    def remove_article(self, article_id: int) -> list[int]:
        with self._writing() as conn:
            self._require_article(conn, article_id)
            chunk_ids = self._delete_chunks(conn, article_id)
            conn.execute("DELETE FROM articles WHERE id = %s", (article_id,))
            self._bump_version(conn)
        return chunk_ids

    @_translated
    def replace_vectors(self, rows: Sequence[tuple[int, np.ndarray]], model: str) -> None:
        """Re-embedding with another model: these passages' vectors swapped in one transaction."""
        with self._writing() as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO embeddings (chunk_id, model, dim, vector) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (chunk_id) DO UPDATE SET model = excluded.model, dim = excluded.dim, "
                "vector = excluded.vector",
                [(int(cid), model, int(v.shape[0]), np.asarray(v, dtype=np.float32)) for cid, v in rows],
            )
            self._bump_version(conn)

    @_translated
    def replace_fts(self, rows: Sequence[tuple[int, str, str]]) -> None:
        """Swap every lexical row (chunk id, title terms, terms) in one transaction: a new analyzer's terms."""
        with self._writing() as conn:
            # DELETE, not TRUNCATE: readers keep searching the old rows until the commit instead of waiting.
            for table in ("postings", "lexical_docs", "lexical_terms"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("UPDATE lexical_stats SET docs = 0, tokens = 0")
            self._insert_lexical(conn, rows)

    @_translated
    def import_article(
        self,
        article: ArticleRecord,
        chunks: Sequence[ChunkRecord],
        vectors: np.ndarray,
        model: str,
        fts_rows: Sequence[tuple[str, str]],
    ) -> None:
        """Copy an article from another store with its own ids, passages, vectors and lexical rows, in one
        transaction (``index.migrate``); the id counters grow past its ids. A taken id raises ``DuplicateArticle``."""
        if not chunks:
            raise ValueError("an article needs at least one passage")
        record = article_row(article)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = [{"position": c.position, "text": c.text, "start": c.start, "end": c.end} for c in chunks]
        ids = [c.id for c in chunks]
        with self._writing() as conn:
            taken = conn.execute(
                "SELECT id FROM articles WHERE id = %s OR content_hash = %s", (article.id, article.content_hash)
            ).fetchone()
            if taken:
                raise DuplicateArticle(taken[0], "same id" if taken[0] == article.id else "same text")
            taken = conn.execute("SELECT id FROM chunks WHERE id = ANY(%s) LIMIT 1", (ids,)).fetchone()
            if taken:
                raise ValueError(f"passage id {taken[0]} is taken here already")
            columns = ", ".join(record)
            conn.execute(
                f"INSERT INTO articles ({columns}) VALUES ({', '.join('%s' for _ in record)})", tuple(record.values())
            )
            # _insert_chunks numbers passages on from a first id: one call per run of consecutive ids
            # (an article's passages always were one run so far), so each keeps its own.
            for start, stop in _runs(ids):
                part = slice(start, stop)
                self._insert_chunks(conn, article.id, ids[start], rows[part], vectors[part], model, fts_rows[part])
            self._raise_counters(conn, {"articles": article.id, "chunks": max(ids)})
            self._bump_version(conn)

    @_translated
    def id_counters(self) -> dict[str, int]:
        """The highest article and passage ids ever handed out (removed ones count: they are never reused)."""
        with self.snapshot() as conn:
            return {table: self._last_id(conn, table) for table in ("articles", "chunks")}

    @_translated
    def raise_id_counters(self, counters: dict[str, int]) -> None:
        """Let the next ids start after ``counters`` (another store's ``id_counters``); never lowers them."""
        with self._writing() as conn:
            self._raise_counters(conn, counters)

    @classmethod
    def _raise_counters(cls, conn: psycopg.Connection, counters: dict[str, int]) -> None:
        for table, last in counters.items():
            if last > cls._last_id(conn, table):
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (%s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (f"last_{table}_id", str(last)),
                )

    @staticmethod
    def _last_id(conn: psycopg.Connection, table: str) -> int:
        if table not in ("articles", "chunks"):
            raise ValueError(f"no id counter for {table!r}")
        row = conn.execute("SELECT value FROM meta WHERE key = %s", (f"last_{table}_id",)).fetchone()
        current = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        return max(int(row[0]) if row else 0, int(current))

    @staticmethod
    def _require_article(conn: psycopg.Connection, article_id: int) -> None:
        if conn.execute("SELECT 1 FROM articles WHERE id = %s", (article_id,)).fetchone() is None:
            raise ArticleNotFound(article_id)

    @classmethod
    def _insert_chunks(
        cls,
        conn: psycopg.Connection,
        article_id: int,
        first_id: int,
        chunks: Sequence[dict],
        vectors: np.ndarray,
        model: str,
        fts_rows: Sequence[tuple[str, str]],
    ) -> list[int]:
        """Chunks with their vectors and lexical rows, ids from ``first_id`` on (inside the caller's transaction)."""
        rows = list(zip(chunks, vectors, fts_rows, strict=True))  # a count mismatch fails before any insert
        chunk_ids = [first_id + i for i in range(len(rows))]
        with conn.cursor() as cur:
            cur.executemany(
                'INSERT INTO chunks (id, article_id, position, text, start, "end") VALUES (%s, %s, %s, %s, %s, %s)',
                [
                    (cid, article_id, c["position"], c["text"], c["start"], c["end"])
                    for cid, (c, _, _) in zip(chunk_ids, rows, strict=True)
                ],
            )
            cur.executemany(
                "INSERT INTO embeddings (chunk_id, model, dim, vector) VALUES (%s, %s, %s, %s)",
                [(cid, model, int(v.shape[0]), v) for cid, (_, v, _) in zip(chunk_ids, rows, strict=True)],
            )
        cls._insert_lexical(conn, [(cid, *fts) for cid, (_, _, fts) in zip(chunk_ids, rows, strict=True)])
        return chunk_ids

    @staticmethod
    def _insert_lexical(conn: psycopg.Connection, rows: Sequence[tuple[int, str, str]]) -> None:
        """Passages' lexical rows, postings, term counts and totals (inside the caller's transaction)."""
        docs, postings, per_term = [], [], Counter()
        total = 0
        for chunk_id, title_terms, terms in rows:
            title, body = Counter(tokens(title_terms)), Counter(tokens(terms))
            length = sum(title.values()) + sum(body.values())
            total += length
            docs.append((int(chunk_id), title_terms, terms, length))
            for term in title.keys() | body.keys():
                postings.append((term, int(chunk_id), title[term], body[term], length))
                per_term[term] += 1
        if not docs:
            return
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO lexical_docs (chunk_id, title_terms, terms, length) VALUES (%s, %s, %s, %s)", docs
            )
            with cur.copy("COPY postings (term, chunk_id, tf_title, tf_body, length) FROM STDIN") as copy:
                for posting in postings:
                    copy.write_row(posting)
            names = sorted(per_term)
            cur.execute(
                "INSERT INTO lexical_terms (term, docs) SELECT * FROM unnest(%s::text[], %s::bigint[]) "
                "ON CONFLICT (term) DO UPDATE SET docs = lexical_terms.docs + excluded.docs",
                (names, [per_term[n] for n in names]),
            )
            cur.execute("UPDATE lexical_stats SET docs = docs + %s, tokens = tokens + %s", (len(docs), total))

    @staticmethod
    def _delete_chunks(conn: psycopg.Connection, article_id: int) -> list[int]:
        """Remove an article's chunks with their vectors and lexical rows (inside the caller's transaction)."""
        chunk_ids = [
            r[0] for r in conn.execute("SELECT id FROM chunks WHERE article_id = %s ORDER BY id", (article_id,))
        ]
        conn.execute(
            "UPDATE lexical_terms t SET docs = t.docs - d.n FROM (SELECT term, count(*) AS n FROM postings "
            "WHERE chunk_id = ANY(%s) GROUP BY term) d WHERE t.term = d.term",
            (chunk_ids,),
        )
        conn.execute(
            "DELETE FROM lexical_terms WHERE docs <= 0 "
            "AND term IN (SELECT term FROM postings WHERE chunk_id = ANY(%s))",
            (chunk_ids,),
        )
        conn.execute(
            "UPDATE lexical_stats s SET docs = s.docs - d.n, tokens = s.tokens - d.total FROM (SELECT count(*) AS n, "
            "coalesce(sum(length), 0) AS total FROM lexical_docs WHERE chunk_id = ANY(%s)) d",
            (chunk_ids,),
        )
        for table, column in (("postings", "chunk_id"), ("lexical_docs", "chunk_id"), ("embeddings", "chunk_id")):
            conn.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", (chunk_ids,))
        conn.execute("DELETE FROM chunks WHERE article_id = %s", (article_id,))
        return chunk_ids

    @staticmethod
    def _find_duplicate_in(conn: psycopg.Connection, text_hash: str, url_key: str | None):
        row = conn.execute("SELECT id FROM articles WHERE content_hash = %s", (text_hash,)).fetchone()
        if row:
            return row[0], "same text"
        if url_key:
            row = conn.execute("SELECT id FROM articles WHERE url_key = %s ORDER BY id LIMIT 1", (url_key,)).fetchone()
            if row:
                return row[0], "same URL"
        return None

    @staticmethod
    def _next_id(conn: psycopg.Connection, table: str, count: int = 1) -> int:
        """The first of ``count`` ids never used before in ``table`` (the caller holds the writers' lock)."""
        key = f"last_{table}_id"
        row = conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        used = int(row[0]) if row else 0
        current = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        first = max(used, current) + 1
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(first + max(count, 1) - 1)),
        )
        return first

    @staticmethod
    def _bump_version(conn: psycopg.Connection) -> None:
        conn.execute("UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'version'")

    # --- reads --------------------------------------------------------------------------------

    @_translated
    def version(self) -> int:
        row = self.reader().execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        return int(row[0])

    def store_id(self) -> str:
        return self.get_meta("store_id") or ""

    @_translated
    def get_meta(self, key: str) -> str | None:
        row = self.reader().execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return row[0] if row else None

    @_translated
    def article(self, article_id: int) -> ArticleRecord:
        sql = f"SELECT {_ARTICLE_COLUMNS} FROM articles a WHERE a.id = %s"
        row = self.reader().execute(sql, (article_id,)).fetchone()
        if row is None:
            raise ArticleNotFound(article_id)
        return ArticleRecord(*row)

    @_translated
    def articles(self, limit: int | None = None, offset: int = 0) -> list[ArticleRecord]:
        rows = self.reader().execute(
            f"SELECT {_ARTICLE_COLUMNS} FROM articles a ORDER BY a.id DESC LIMIT %s OFFSET %s", (limit, offset)
        )
        return [ArticleRecord(*r) for r in rows]

    @_translated
    def counts(self) -> dict[str, int]:
        with self.snapshot() as conn:
            return {
                table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("articles", "chunks", "embeddings")
            }

    @_translated
    def chunks_by_id(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRecord]:
        if not chunk_ids:
            return {}
        rows = self.reader().execute(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN articles a ON a.id = c.article_id WHERE c.id = ANY(%s)",
            ([int(c) for c in chunk_ids],),
        )
        return {r[0]: ChunkRecord(*r) for r in rows}

    @_translated
    def article_chunks(self, article_id: int) -> list[ChunkRecord]:
        rows = self.reader().execute(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN articles a ON a.id = c.article_id "
            "WHERE c.article_id = %s ORDER BY c.position",
            (article_id,),
        )
        return [ChunkRecord(*r) for r in rows]

    @_translated
    def chunk_ids(self) -> np.ndarray:
        rows = self.reader().execute("SELECT id FROM chunks ORDER BY id").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def iter_vectors(self, batch: int = 50_000, after: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, str]]:
        """(ids, vectors, model) in id order, in batches, so a rebuild never holds two copies."""
        last = after
        while True:
            rows = self._vector_rows(
                "SELECT chunk_id, model, vector FROM embeddings WHERE chunk_id > %s ORDER BY chunk_id LIMIT %s",
                (last, batch),
            )
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            yield ids, np.vstack([r[2].to_numpy() for r in rows]).astype(np.float32, copy=False), rows[0][1]
            last = int(ids[-1])

    @_translated
    def _vector_rows(self, sql: str, params: tuple) -> list[tuple]:
        return self.reader().execute(sql, params).fetchall()

    def vectors_for(self, chunk_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        if not len(chunk_ids):
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        rows = self._vector_rows(
            "SELECT chunk_id, model, vector FROM embeddings WHERE chunk_id = ANY(%s) ORDER BY chunk_id",
            ([int(c) for c in chunk_ids],),
        )
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        return ids, np.vstack([r[2].to_numpy() for r in rows]).astype(np.float32, copy=False)

    @_translated
    def embedding_models(self) -> list[tuple[str, int]]:
        return [tuple(r) for r in self.reader().execute("SELECT DISTINCT model, dim FROM embeddings")]

    @_translated
    def chunk_id_bound(self) -> int:
        """The highest chunk id: an upper bound of the passage count, from the primary key (ids are never reused)."""
        return int(self.reader().execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()[0])

    @_translated
    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """Passages holding each analysed term: one row of ``lexical_terms`` per token.

        A term FTS5 splits into several tokens counts the passages of its rarest one (at most that many
        hold the phrase)."""
        parts = {term: word_tokens(term) for term in terms}
        wanted = sorted({t for p in parts.values() for t in p})
        rows = self.reader().execute("SELECT term, docs FROM lexical_terms WHERE term = ANY(%s)", (wanted,))
        docs = dict(rows.fetchall())
        return {term: min((int(docs.get(t, 0)) for t in p), default=0) for term, p in parts.items()}

    @_translated
    def lexical_search(self, terms: Sequence[str], k: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score, higher is better): FTS5's bm25(chunks_fts, 0.5, 1.0) over the terms, ORed."""
        query = query_tokens(terms)
        if not query or k <= 0:
            return []
        params = {"terms": query, "k": k, "k1": BM25_K1, "b": BM25_B, "wt": TITLE_WEIGHT, "wb": BODY_WEIGHT}
        return [(int(r[0]), float(r[1])) for r in self.reader().execute(_BM25_SQL, params)]

    @_translated
    def integrity(self) -> dict[str, int]:
        """Counts of rows that would mean a half-added or half-removed article (all should be 0)."""
        with self.snapshot() as conn:

            def one(sql: str) -> int:
                return int(conn.execute(sql).fetchone()[0])

            return {
                "chunks_without_article": one(
                    "SELECT count(*) FROM chunks WHERE article_id NOT IN (SELECT id FROM articles)"
                ),
                "articles_without_chunks": one(
                    "SELECT count(*) FROM articles WHERE id NOT IN (SELECT article_id FROM chunks)"
                ),
                "chunks_without_vector": one(
                    "SELECT count(*) FROM chunks WHERE id NOT IN (SELECT chunk_id FROM embeddings)"
                ),
                "vectors_without_chunk": one(
                    "SELECT count(*) FROM embeddings WHERE chunk_id NOT IN (SELECT id FROM chunks)"
                ),
                "fts_mismatch": abs(one("SELECT count(*) FROM lexical_docs") - one("SELECT count(*) FROM chunks")),
            }
