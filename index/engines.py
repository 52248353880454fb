"""Opening the configured storage engine (``[storage] engine``): SQLite with FAISS, or PostgreSQL.

The knowledge base asks this module for its engine and then sees only the protocols of
``index.engine``; the PostgreSQL driver is imported only when that engine is configured.
"""

from __future__ import annotations

from pathlib import Path

from .engine import (
    AnswerLog,
    ArticleStore,
    BotTableRows,
    Engine,
    PortableSQL,
    RunLock,
    UpdateLedgerTable,
    VectorSearchIndex,
)
from .errors import SetupError
from .settings import IndexSettings, SearchSettings, StorageSettings

DB_FILE = "articlebot.db"


class SQLiteEngine:
    """One SQLite file in the data dir holds everything; the FAISS index is a file beside it."""

    name = "sqlite"

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_FILE

    def describe(self) -> str:
        return str(self.path)

    def size_bytes(self) -> int:
        # An open database holds its recent writes in the WAL until a checkpoint; they are part of its size.
        files = (self.path, self.path.with_name(self.path.name + "-wal"))
        return sum(f.stat().st_size for f in files if f.exists())

    def article_store(self) -> ArticleStore:
        from .store import Store

        return Store(self.path)

    def vector_index(self, settings: SearchSettings, model: str, dim: int) -> VectorSearchIndex:
        from .vectors import VectorIndex

        return VectorIndex(self.data_dir, settings, model, dim)

    def update_ledger(self) -> UpdateLedgerTable:
        from .side_tables import SQLiteUpdateLedger

        return SQLiteUpdateLedger(self.path)

    def answer_log(self) -> AnswerLog:
        from .side_tables import SQLiteAnswerLog

        return SQLiteAnswerLog(self.path)

    def bot_tables(self) -> BotTableRows:
        from .side_tables import SQLiteBotTables

        return SQLiteBotTables(self.path)

    def portable_sql(self) -> PortableSQL:
        from .side_tables import SQLitePortableSQL

        return SQLitePortableSQL(self.path)

    def run_lock(self) -> RunLock:
        from .side_tables import SQLiteRunLock

        return SQLiteRunLock(self.data_dir)


class PostgresEngine:
    """One PostgreSQL database holds everything; the data dir keeps only local files (none needed).

    Here rather than in ``index.postgres``: the table modules import that one (connections, schema),
    so the factory that imports them lives apart, and nothing imports in a circle.
    """

    name = "postgres"

    def __init__(self, storage: StorageSettings, data_dir: Path):
        from .postgres import open_migrated

        self.storage = storage
        self.data_dir = Path(data_dir)
        open_migrated(storage).close()

    def describe(self) -> str:
        from .postgres import describe

        return describe(self.storage)

    def size_bytes(self) -> int:
        from .postgres import connect

        with connect(self.storage) as conn:
            return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])

    def article_store(self) -> ArticleStore:
        from .pg_store import PgStore

        return PgStore(self.storage)

    def vector_index(self, settings: SearchSettings, model: str, dim: int) -> VectorSearchIndex:
        if self.storage.vector_search == "faiss":
            from .vectors import VectorIndex

            # A replica in this process's data dir; it catches up with other processes' writes by the
            # database's version, through the ArticleStore protocol, as with SQLite.
            self.data_dir.mkdir(parents=True, exist_ok=True)
            return VectorIndex(self.data_dir, settings, model, dim)
        from .pg_vectors import PgVectorIndex

        return PgVectorIndex(self.storage, settings, model, dim)

    def update_ledger(self) -> UpdateLedgerTable:
        from .pg_side_tables import PgUpdateLedger

        return PgUpdateLedger(self.storage)

    def answer_log(self) -> AnswerLog:
        from .pg_side_tables import PgAnswerLog

        return PgAnswerLog(self.storage)

    def portable_sql(self) -> PortableSQL:
        from .pg_side_tables import PgPortableSQL

        return PgPortableSQL(self.storage)

    def run_lock(self) -> RunLock:
        from .pg_side_tables import PgRunLock

        return PgRunLock(self.storage)

    def bot_tables(self) -> BotTableRows:
        from .pg_side_tables import PgBotTables

        return PgBotTables(self.storage)


def open_engine(settings: IndexSettings) -> Engine:
    """The engine ``settings.storage`` names (its tables are opened, and migrated, by their own objects)."""
    storage = settings.storage
    if storage.engine == "sqlite":
        return SQLiteEngine(Path(settings.data_dir))
    if storage.engine == "postgres":
        if not storage.dsn:
            raise SetupError('[storage] engine = "postgres" needs [storage] dsn = "postgresql://user@host:port/db"')
        return PostgresEngine(storage, Path(settings.data_dir))
    raise SetupError(f"unknown [storage] engine {storage.engine!r} (known: sqlite, postgres)")
