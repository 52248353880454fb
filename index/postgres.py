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

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .engine import SchemaTooNew, StorageError
from .settings import StorageSettings

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


def _scheme_problem(dsn: str) -> str | None:
    """Why ``dsn`` cannot be a PostgreSQL address by its form, or None. libpq's own words for a typo
    such as postgressql:// or a missing scheme are 'missing "=" after "<the whole DSN>" …'."""
    scheme, sep, _ = dsn.partition("://")
    if sep and scheme.strip().lower() not in ("postgresql", "postgres"):
        return f"[storage] dsn must begin with postgresql:// (or postgres://), not {scheme.strip()}://"
    if not sep and "=" not in dsn:  # libpq would quote it whole, with a password in it
        return "[storage] dsn must be postgresql://user@host:port/db (or key=value pairs such as host=… dbname=…)"
    return None


def _password_hint(storage: StorageSettings, reason: str, password: str | None) -> str:
    """What to do about a refused password: name the variable it comes (or should come) from."""
    if "no password supplied" in reason:
        if storage.password_env:
            return f"the server wants a password and ${storage.password_env} ([storage] password_env) is not set"
        return "the server wants a password and [storage] password_env names no variable to read it from"
    if "password authentication failed" in reason and password:
        return f"{reason} (the password is read from ${storage.password_env})"
    return reason


def connect(storage: StorageSettings, autocommit: bool = True) -> psycopg.Connection:
    """A new connection, the password taken from the environment variable the config names."""
    password = os.environ.get(storage.password_env) if storage.password_env else None
    extra = {"password": password} if password else {}
    if problem := _scheme_problem(storage.dsn):
        raise StorageError(problem)
    try:
        return psycopg.connect(storage.dsn, autocommit=autocommit, connect_timeout=10, **extra)
    except psycopg.ProgrammingError as exc:  # a malformed DSN
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"[storage] dsn is not a PostgreSQL connection string: {reason}") from exc
    except psycopg.OperationalError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = _password_hint(storage, lines[0] if lines else type(exc).__name__, password)
        raise StorageError(f"cannot connect to PostgreSQL at {describe(storage)}: {reason}") from exc


# --- the schema ---------------------------------------------------------------------------------

_META = ("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",)

# The knowledge base's tables (index.pg_store, index.pg_vectors): SQLite's, column for column, with the
# FTS5 table replaced by what BM25 needs (index.pg_store: lexical_docs, postings, lexical_terms and
# lexical_stats). Vectors are pgvector values without a fixed dimension; index.pg_vectors builds its
# HNSW index on an expression that fixes it (vector::vector(dim)).
_STORE_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE articles (id BIGINT PRIMARY KEY, title TEXT, url TEXT, url_key TEXT, source TEXT, "
    "published TEXT, added_by TEXT, added_at TEXT, content_hash TEXT NOT NULL, text TEXT, language TEXT)",
    "CREATE UNIQUE INDEX articles_content_hash ON articles (content_hash)",
    "CREATE INDEX articles_url_key ON articles (url_key)",
    "CREATE TABLE chunks (id BIGINT PRIMARY KEY, article_id BIGINT NOT NULL REFERENCES articles (id), "
    'position INTEGER NOT NULL, text TEXT NOT NULL, start INTEGER, "end" INTEGER, UNIQUE (article_id, position))',
    "CREATE TABLE embeddings (chunk_id BIGINT PRIMARY KEY REFERENCES chunks (id), model TEXT NOT NULL, "
    "dim INTEGER NOT NULL, vector vector NOT NULL)",
    # One row per passage, as FTS5 holds it: the terms and their token count (BM25's document length).
    "CREATE TABLE lexical_docs (chunk_id BIGINT PRIMARY KEY REFERENCES chunks (id), title_terms TEXT NOT NULL, "
    "terms TEXT NOT NULL, length INTEGER NOT NULL)",
    # Token -> passage with its counts in title and body; the length repeated so scoring needs no join,
    # and all of it in the key's index, so BM25 reads a term's postings by an index-only scan (once
    # vacuumed): at 40k passages p50/p95 4.6/10 ms, as FTS5, instead of 24/71 ms from the heap.
    "CREATE TABLE postings (term TEXT NOT NULL, chunk_id BIGINT NOT NULL, tf_title INTEGER NOT NULL, "
    "tf_body INTEGER NOT NULL, length INTEGER NOT NULL, "
    "PRIMARY KEY (term, chunk_id) INCLUDE (tf_title, tf_body, length))",
    "CREATE INDEX postings_chunk_id ON postings (chunk_id)",
    # Passages per token (document frequency), kept by every write: idf and pruning read one row each.
    "CREATE TABLE lexical_terms (term TEXT PRIMARY KEY, docs BIGINT NOT NULL)",
    # FTS5's row count and total token count (N and the average length), one row.
    "CREATE TABLE lexical_stats (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), docs BIGINT NOT NULL, "
    "tokens BIGINT NOT NULL)",
    "INSERT INTO lexical_stats (docs, tokens) VALUES (0, 0)",
    "INSERT INTO meta (key, value) VALUES ('version', '0')",
    "INSERT INTO meta (key, value) VALUES ('store_id', replace(gen_random_uuid()::text, '-', ''))",
)

# The bot's tables, column for column as in SQLite (index.schema migrations 3 and 4), plus updates.claimed_by.
# Ids are identities BY DEFAULT: never reused, and a copy from SQLite may bring its own (then setval them).
_BOT_SCHEMA: tuple[str, ...] = (
    # claimed_by: the bot instance holding the update (it recorded or claimed it; index.pg_side_tables):
    # recovery takes over only updates whose instance's advisory lock is free, i.e. whose process is gone.
    "CREATE TABLE IF NOT EXISTS updates (update_id BIGINT PRIMARY KEY, state TEXT NOT NULL, "
    "received_at TEXT NOT NULL, attempts INTEGER NOT NULL, finished_at TEXT, payload TEXT NOT NULL, claimed_by BIGINT)",
    "CREATE INDEX IF NOT EXISTS idx_updates_state ON updates (state)",
    "CREATE SEQUENCE IF NOT EXISTS bot_instances AS integer CYCLE",
    "CREATE TABLE IF NOT EXISTS answers (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, created_at TEXT, "
    "chat_id BIGINT, question TEXT, answer TEXT, found INTEGER, language TEXT, mode TEXT, citations TEXT)",
    "CREATE TABLE IF NOT EXISTS feedback (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
    "answer_id BIGINT REFERENCES answers (id), user_id BIGINT, vote INTEGER, created_at TEXT)",
    # One vote per person and answer: pressing again changes the vote, never adds one.
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_feedback_answer_id_user_id ON feedback (answer_id, user_id)",
    "CREATE TABLE IF NOT EXISTS feeds (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, url TEXT NOT NULL, "
    "url_key TEXT NOT NULL UNIQUE, title TEXT, etag TEXT, last_modified TEXT, added_at TEXT, last_check TEXT, "
    "last_success TEXT, items_added INTEGER NOT NULL DEFAULT 0, last_error TEXT, failures INTEGER NOT NULL DEFAULT 0, "
    "next_try TEXT, failing_since TEXT, notified INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS feed_items (feed_id BIGINT NOT NULL, guid TEXT NOT NULL, url TEXT, url_key TEXT, "
    "article_id BIGINT, content_hash TEXT, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT, "
    "seen_at TEXT, PRIMARY KEY (feed_id, guid))",
    "CREATE INDEX IF NOT EXISTS feed_items_url_key ON feed_items (feed_id, url_key)",
)


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
    # pg_tables, not to_regclass: a catalog cache lookup may miss a table another process committed while
    # this one waited for the migration lock, and it would then migrate again (measured: DuplicateTable).
    exists = "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'meta'"
    if conn.execute(exists).fetchone() is None:
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
