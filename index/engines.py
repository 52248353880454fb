"""Opening the configured storage engine (``[storage] engine``): SQLite with FAISS, or PostgreSQL.

The knowledge base asks this module for its engine and then sees only the protocols of
``index.engine``; the PostgreSQL driver is imported only when that engine is configured.
"""

from __future__ import annotations

from pathlib import Path

from .engine import AnswerLog, ArticleStore, BotTableRows, Engine, UpdateLedgerTable, VectorSearchIndex
from .errors import SetupError
from .settings import IndexSettings, SearchSettings

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
        return self.path.stat().st_size if self.path.exists() else 0

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


def open_engine(settings: IndexSettings) -> Engine:
    """The engine ``settings.storage`` names (its tables are opened, and migrated, by their own objects)."""
    storage = settings.storage
    if storage.engine == "sqlite":
        return SQLiteEngine(Path(settings.data_dir))
    if storage.engine == "postgres":
        if not storage.dsn:
            raise SetupError('[storage] engine = "postgres" needs [storage] dsn = "postgresql://user@host:port/db"')
        from .postgres import PostgresEngine

        return PostgresEngine(storage, Path(settings.data_dir))
    raise SetupError(f"unknown [storage] engine {storage.engine!r} (known: sqlite, postgres)")
