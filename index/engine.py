"""What a storage engine provides: the interfaces the knowledge base and the bot are typed against.

Two engines implement them: SQLite (``index.schema``, ``index.store``, ``index.side_tables``) with
FAISS (``index.vectors``), and PostgreSQL with pgvector (``index.postgres``); ``index.engines`` opens
the configured one. Nothing here imports an engine: the bot may import this module, never an engine's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import UserError
from .records import ArticleRecord, ChunkRecord
from .settings import SearchSettings

# The states of an update in the ledger (see bot.updates for what they mean).
RECEIVED, PROCESSING, ANSWERED, FAILED, ABANDONED = "received", "processing", "answered", "failed", "abandoned"


class StorageError(UserError, RuntimeError):
    """A storage engine failed (its own errors translated, e.g. sqlite3.Error): one line for the user.

    A ``UserError`` so adapters report it as one line (a newer database, a full disk), not as a bug.
    """


class SchemaTooNew(StorageError):
    """The database was written by a newer articlebot: opening it could damage what this code does not know."""

    def __init__(self, where: object, found: int, known: int):
        super().__init__(
            f"{where} has schema version {found}, newer than this articlebot knows ({known}): "
            "upgrade articlebot, or use another data dir"
        )
        self.found = found
        self.known = known


@runtime_checkable
class ArticleStore(Protocol):
    """The source of truth: articles, passages, their vectors and the lexical index, one transaction per write."""

    def close(self) -> None: ...

    # writes
    def find_duplicate(self, text_hash: str, url_key: str | None) -> tuple[int, str] | None: ...
    def add_article(
        self,
        article: dict,
        chunks: Sequence[dict],
        vectors: np.ndarray,
        model: str,
        fts_rows: Sequence[tuple[str, str]],
    ) -> tuple[int, list[int]]: ...
    def replace_chunks(
        self,
        article_id: int,
        chunks: Sequence[dict],
        vectors: np.ndarray,
        fts_rows: Sequence[tuple[str, str]],
        model: str,
    ) -> tuple[list[int], list[int]]: ...
    def reserve_chunk_ids(self, count: int) -> int: ...
    def refresh_article(
        self,
        article_id: int,
        article: dict,
        chunks: Sequence[dict],
        vectors: np.ndarray,
        model: str,
        fts_rows: Sequence[tuple[str, str]],
        first_chunk_id: int,
    ) -> list[int]: ...
    def remove_article(self, article_id: int) -> list[int]: ...
    def replace_vectors(self, rows: Sequence[tuple[int, np.ndarray]], model: str) -> None: ...
    def replace_fts(self, rows: Sequence[tuple[int, str, str]]) -> None: ...

    # moving a deployment (index.migrate): an article copied with its ids, no re-embedding
    def import_article(
        self,
        article: ArticleRecord,
        chunks: Sequence[ChunkRecord],
        vectors: np.ndarray,
        model: str,
        fts_rows: Sequence[tuple[str, str]],
    ) -> None: ...
    def id_counters(self) -> dict[str, int]: ...  # {"articles": n, "chunks": m}: the highest ids ever handed out
    def raise_id_counters(self, counters: dict[str, int]) -> None: ...  # never lowers them

    # reads
    def version(self) -> int: ...
    def store_id(self) -> str: ...
    def get_meta(self, key: str) -> str | None: ...
    def article(self, article_id: int) -> ArticleRecord: ...
    def article_id_for_url(self, url: str | None) -> int | None: ...
    def articles(self, limit: int | None = None, offset: int = 0) -> list[ArticleRecord]: ...
    def counts(self) -> dict[str, int]: ...
    def chunks_by_id(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRecord]: ...
    def article_chunks(self, article_id: int) -> list[ChunkRecord]: ...
    def chunk_ids(self) -> np.ndarray: ...
    def iter_vectors(self, batch: int = 50_000, after: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, str]]: ...
    def vectors_for(self, chunk_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]: ...
    def embedding_models(self) -> list[tuple[str, int]]: ...
    def chunk_id_bound(self) -> int: ...
    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]: ...
    # The analysed terms of a question (index.lexical.query_terms), ORed; each engine builds its own query
    # and scores with FTS5's BM25 (title terms weighted 0.5, passage terms 1.0), so rankings agree.
    def lexical_search(self, terms: Sequence[str], k: int) -> list[tuple[int, float]]: ...
    def integrity(self) -> dict[str, int]: ...


@runtime_checkable
class VectorSearchIndex(Protocol):
    """Nearest-neighbour search over the stored vectors, derived from an ``ArticleStore`` and rebuildable from it."""

    version: int  # the store version it reflects

    @property
    def kind(self) -> str: ...
    @property
    def count(self) -> int: ...
    def load_or_rebuild(self, store: ArticleStore) -> str: ...
    def rebuild(self, store: ArticleStore) -> None: ...
    def sync(self, store: ArticleStore) -> None: ...
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: list[int]) -> None: ...
    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]: ...
    def save(self) -> None: ...


@runtime_checkable
class UpdateLedgerTable(Protocol):
    """The bot's durable record of Telegram updates (blocking calls; the bot runs them on a thread of their own)."""

    def open(self) -> None: ...
    def close(self) -> None: ...
    def record(self, rows: Iterable[tuple[int, str]]) -> list[int]: ...
    def begin(self, update_id: int) -> bool: ...
    def finish(self, update_id: int, state: str) -> None: ...
    def recover(self, max_attempts: int, keep_finished: timedelta) -> tuple[list[int], list[tuple[int, str]]]: ...
    def states(self) -> dict[int, str]: ...


@runtime_checkable
class AnswerLog(Protocol):
    """The answers the bot gave and the votes on them, as plain dicts (citations as lists of dicts)."""

    def record_answer(self, row: dict) -> int: ...
    def answer(self, answer_id: int) -> dict | None: ...
    def vote(self, answer_id: int, user_id: int, vote: int) -> bool: ...
    def feedback(self) -> list[dict]: ...
    def counts(self) -> dict[str, int]: ...
    def close(self) -> None: ...


# The bot's tables, in an order that puts every row after the rows it refers to, each with its key columns.
BOT_TABLES: dict[str, tuple[str, ...]] = {
    "feeds": ("id",),
    "feed_items": ("feed_id", "guid"),
    "answers": ("id",),
    "feedback": ("id",),
    "updates": ("update_id",),
}


@runtime_checkable
class BotTableRows(Protocol):
    """The bot's tables (``BOT_TABLES``) as plain rows, for moving a deployment to another engine.

    A row is a dict with SQLite's column names and values (text, integers, JSON as text), whichever
    engine holds it, so rows read from one engine compare equal to the same rows read from another.
    """

    def read(self, table: str) -> Iterator[dict]: ...  # every row, in key order
    def write(self, table: str, rows: Sequence[dict]) -> int: ...  # one transaction; rows whose key exists skipped
    def counters(self) -> dict[str, int]: ...  # table → the highest id it ever handed out (tables with an id)
    def raise_counters(self, counters: dict[str, int]) -> None: ...  # so ids handed out later are never reused
    def close(self) -> None: ...


class SQLTransaction(Protocol):
    def execute(self, sql: str, args: Sequence = ()) -> list[tuple]: ...  # its rows (SELECT, RETURNING), or []
    def executemany(self, sql: str, rows: Iterable[Sequence]) -> None: ...


@runtime_checkable
class PortableSQL(Protocol):
    """A connection for small tables written once for both engines (the feeds).

    The SQL is what SQLite (>= 3.35) and PostgreSQL both speak: ``?`` placeholders, ``ON CONFLICT``,
    ``RETURNING``, no ``INSERT OR …``. A transaction takes the write lock on SQLite (BEGIN IMMEDIATE)
    and row locks as it goes on PostgreSQL.
    """

    def query(self, sql: str, args: Sequence = ()) -> list[tuple]: ...
    def transaction(self) -> AbstractContextManager[SQLTransaction]: ...
    # True inside while this process alone runs the work ``name``; False when another process runs it now.
    def hold(self, name: str) -> AbstractContextManager[bool]: ...
    def close(self) -> None: ...


@runtime_checkable
class RunLock(Protocol):
    """Held while a bot process runs: long polling only alone (Telegram allows one getUpdates consumer)."""

    def acquire(self, polling: bool) -> str | None: ...  # None: ours now; else why not, one line
    def release(self) -> None: ...


@runtime_checkable
class Engine(Protocol):
    """One configured storage engine: hands out the tables above, all in the same database.

    Each call returns a new object with connections of its own (the caller closes it), so a bot
    process can give its update ledger, its answer log and its feed poller one each.
    """

    name: str  # "sqlite" or "postgres"

    def describe(self) -> str: ...  # where the data lives, for logs and 'stats' (never a password)
    def size_bytes(self) -> int: ...  # the database's size on disk
    def article_store(self) -> ArticleStore: ...
    def vector_index(self, settings: SearchSettings, model: str, dim: int) -> VectorSearchIndex: ...
    def update_ledger(self) -> UpdateLedgerTable: ...
    def answer_log(self) -> AnswerLog: ...
    def bot_tables(self) -> BotTableRows: ...
    def portable_sql(self) -> PortableSQL: ...
    def run_lock(self) -> RunLock: ...
