"""The PostgreSQL engine (``[storage] engine = "postgres"``): every table of the SQLite file, in a server.

Several bot processes (and the CLI) share one database: articles, passages, vectors (pgvector) and
the lexical postings live in ``index.pg_store``, the vector search in ``index.pg_vectors``, the bot's
update ledger, answers, votes and feeds in ``index.pg_side_tables``. This module connects and keeps
the schema: a numbered list of migrations like SQLite's (``index.schema``), applied under an advisory
lock so two processes starting at once migrate once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .engine import AnswerLog, ArticleStore, SchemaTooNew, StorageError, UpdateLedgerTable, VectorSearchIndex
from .settings import SearchSettings, StorageSettings

# pg_advisory_xact_lock key taken while migrating ("articleb" in ASCII): one process migrates, the others wait.
MIGRATION_LOCK = 0x61727469636C6562


def describe(storage: StorageSettings) -> str:
    """The DSN without its password, for messages and 'stats'."""
    try:
        parts = conninfo_to_dict(storage.dsn)
    except psycopg.ProgrammingError:
        return "<a malformed [storage] dsn>"
    parts.pop("password", None)
    return make_conninfo(**parts)


def connect(storage: StorageSettings, autocommit: bool = True) -> psycopg.Connection:
    """A new connection, the password taken from the environment variable the config names."""
    password = os.environ.get(storage.password_env) if storage.password_env else None
    extra = {"password": password} if password else {}
    try:
        return psycopg.connect(storage.dsn, autocommit=autocommit, connect_timeout=10, **extra)
    except psycopg.ProgrammingError as exc:  # a malformed DSN
        raise StorageError(f"[storage] dsn is not a PostgreSQL connection string: {exc}") from exc
    except psycopg.OperationalError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = lines[0] if lines else type(exc).__name__
        raise StorageError(f"cannot connect to PostgreSQL at {describe(storage)}: {reason}") from exc


# --- the schema ---------------------------------------------------------------------------------

_META = ('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)',)

# The knowledge base's tables (index.pg_store, index.pg_vectors).
_STORE_SCHEMA: tuple[str, ...] = ()

# The bot's tables, column for column as in SQLite (index.schema migrations 3 and 4).
_BOT_SCHEMA: tuple[str, ...] = ()


def _v1_everything(conn: psycopg.Connection) -> None:
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.InsufficientPrivilege as exc:
        raise StorageError(
            "the pgvector extension is not installed in this database and this user may not install it: "
            "run 'CREATE EXTENSION vector;' there as a superuser once"
        ) from exc
    for statement in (*_META, *_STORE_SCHEMA, *_BOT_SCHEMA):
        conn.execute(statement)


# MIGRATIONS[n] takes a database from schema version n to n + 1, in one transaction. Append, never edit.
MIGRATIONS: tuple[Callable[[psycopg.Connection], None], ...] = (_v1_everything,)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: psycopg.Connection) -> int:
    if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection, where: object, migrations=MIGRATIONS) -> int:
    """Apply the migrations the database lacks, one transaction each, under an advisory lock; its version."""
    known = len(migrations)
    while True:
        current = schema_version(conn)
        if current > known:
            raise SchemaTooNew(where, current, known)
        if current == known:
            return current
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            current = schema_version(conn)  # another process may have migrated while we waited
            if current < known:
                migrations[current](conn)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(current + 1),),
                )


def open_migrated(storage: StorageSettings) -> psycopg.Connection:
    """A connection (autocommit) to a database brought up to date; closed again if it cannot be."""
    conn = connect(storage)
    try:
        migrate(conn, describe(storage))
    except BaseException:
        conn.close()
        raise
    return conn


class PostgresEngine:
    """One PostgreSQL database holds everything; the data dir keeps only local files (none needed)."""

    name = "postgres"

    def __init__(self, storage: StorageSettings, data_dir: Path):
        self.storage = storage
        self.data_dir = Path(data_dir)
        open_migrated(storage).close()

    def describe(self) -> str:
        return describe(self.storage)

    def size_bytes(self) -> int:
        with connect(self.storage) as conn:
            return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])

    def article_store(self) -> ArticleStore:
        from .pg_store import PgStore

        return PgStore(self.storage)

    def vector_index(self, settings: SearchSettings, model: str, dim: int) -> VectorSearchIndex:
        from .pg_vectors import PgVectorIndex

        return PgVectorIndex(self.storage, settings, model, dim)

    def update_ledger(self) -> UpdateLedgerTable:
        from .pg_side_tables import PgUpdateLedger

        return PgUpdateLedger(self.storage)

    def answer_log(self) -> AnswerLog:
        from .pg_side_tables import PgAnswerLog

        return PgAnswerLog(self.storage)
