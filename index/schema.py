"""The SQLite file's schema, every table of it, as numbered migrations; and how a connection is opened.

The store (articles, passages, vectors, FTS), the bot's side tables (update ledger, answers,
votes) and the feed subscriptions share one file, so one backup holds everything and one schema
version describes it. Whoever opens the file first (``Store``, the ledger, the answer log, the
feeds) brings it up to date; a file newer than this code is refused untouched.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from .engine import SchemaTooNew

_V1_SCHEMA = (
    'CREATE TABLE IF NOT EXISTS "articles" ("id" INTEGER PRIMARY KEY, "title" TEXT, "url" TEXT, "url_key" TEXT, '
    '"source" TEXT, "published" TEXT, "added_by" TEXT, "added_at" TEXT, "content_hash" TEXT, "text" TEXT, '
    '"language" TEXT)',
    'CREATE UNIQUE INDEX IF NOT EXISTS "idx_articles_content_hash" ON "articles" ("content_hash")',
    'CREATE INDEX IF NOT EXISTS "idx_articles_url_key" ON "articles" ("url_key")',
    'CREATE TABLE IF NOT EXISTS "chunks" ("id" INTEGER PRIMARY KEY, "article_id" INTEGER REFERENCES "articles"("id"), '
    '"position" INTEGER, "text" TEXT, "start" INTEGER, "end" INTEGER)',
    'CREATE UNIQUE INDEX IF NOT EXISTS "idx_chunks_article_id_position" ON "chunks" ("article_id", "position")',
    'CREATE TABLE IF NOT EXISTS "embeddings" ("chunk_id" INTEGER PRIMARY KEY REFERENCES "chunks"("id"), '
    '"model" TEXT, "dim" INTEGER, "vector" BLOB)',
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(title_terms, terms, "
    "tokenize='unicode61 remove_diacritics 2')",
    'CREATE TABLE IF NOT EXISTS "meta" ("key" TEXT PRIMARY KEY, "value" TEXT)',
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('version', '0')",
)


def _v1_articles_chunks_vectors_fts(conn: sqlite3.Connection) -> None:
    # The tables as sqlite-utils created them before migrations existed; IF NOT EXISTS because the
    # old code created them one autocommit statement at a time, so a kill could leave some behind.
    # (Statement by statement: executescript would commit the migration's transaction first.)
    for statement in _V1_SCHEMA:
        conn.execute(statement)


def _v2_store_id(conn: sqlite3.Connection) -> None:
    # Names this database, so a FAISS file left from another one is never taken for its index.
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex,))


def _v3_bot_tables(conn: sqlite3.Connection) -> None:
    # The bot's update ledger, answers and votes (index.side_tables), until now created by their own
    # code when first opened; IF NOT EXISTS keeps the ones a bot has already made.
    for statement in _V3_SCHEMA:
        conn.execute(statement)


_V3_SCHEMA = (
    'CREATE TABLE IF NOT EXISTS "updates" ("update_id" INTEGER PRIMARY KEY, "state" TEXT NOT NULL, '
    '"received_at" TEXT NOT NULL, "attempts" INTEGER NOT NULL, "finished_at" TEXT, "payload" TEXT NOT NULL)',
    'CREATE INDEX IF NOT EXISTS "idx_updates_state" ON "updates" ("state")',
    'CREATE TABLE IF NOT EXISTS "answers" ("id" INTEGER PRIMARY KEY, "created_at" TEXT, "chat_id" INTEGER, '
    '"question" TEXT, "answer" TEXT, "found" INTEGER, "language" TEXT, "mode" TEXT, "citations" TEXT)',
    'CREATE TABLE IF NOT EXISTS "feedback" ("id" INTEGER PRIMARY KEY, "answer_id" INTEGER REFERENCES "answers"("id"), '
    '"user_id" INTEGER, "vote" INTEGER, "created_at" TEXT)',
    # One vote per person and answer: pressing again changes the vote, never adds one.
    'CREATE UNIQUE INDEX IF NOT EXISTS "idx_feedback_answer_id_user_id" ON "feedback" ("answer_id", "user_id")',
)


def _v4_feed_tables(conn: sqlite3.Connection) -> None:
    # Feed subscriptions and their items (index.feeds), until now created by Feeds when first opened;
    # IF NOT EXISTS keeps the ones a bot has already made.
    for statement in _V4_SCHEMA:
        conn.execute(statement)


_V4_SCHEMA = (
    # AUTOINCREMENT: a feed id is never reused, so old items never attach to a new feed.
    'CREATE TABLE IF NOT EXISTS "feeds" ("id" INTEGER PRIMARY KEY AUTOINCREMENT, "url" TEXT NOT NULL, '
    '"url_key" TEXT NOT NULL UNIQUE, "title" TEXT, "etag" TEXT, "last_modified" TEXT, "added_at" TEXT, '
    '"last_check" TEXT, "last_success" TEXT, "items_added" INTEGER NOT NULL DEFAULT 0, "last_error" TEXT, '
    '"failures" INTEGER NOT NULL DEFAULT 0, "next_try" TEXT, "failing_since" TEXT, '
    '"notified" INTEGER NOT NULL DEFAULT 0)',
    'CREATE TABLE IF NOT EXISTS "feed_items" ("feed_id" INTEGER NOT NULL, "guid" TEXT NOT NULL, "url" TEXT, '
    '"url_key" TEXT, "article_id" INTEGER, "content_hash" TEXT, "status" TEXT NOT NULL, '
    '"attempts" INTEGER NOT NULL DEFAULT 0, "error" TEXT, "seen_at" TEXT, PRIMARY KEY ("feed_id", "guid"))',
    'CREATE INDEX IF NOT EXISTS "feed_items_url_key" ON "feed_items" ("feed_id", "url_key")',
)

# MIGRATIONS[n] takes a database from schema version n to n + 1, inside one transaction. Append, never
# edit: a database records in meta.schema how far it got, and only the missing steps run on open.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _v1_articles_chunks_vectors_fts,
    _v2_store_id,
    _v3_bot_tables,
    _v4_feed_tables,
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """How many migrations this database has had (0: a new file)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    return int(row[0]) if row else 0


def migrate(
    conn: sqlite3.Connection, where: object, migrations: Sequence[Callable[[sqlite3.Connection], None]] = MIGRATIONS
) -> int:
    """Apply the migrations this database lacks, in order, one transaction each; its version after.

    A database at the current version is only read (no write lock taken), so readers open freely;
    one newer than the code is refused untouched.
    """
    known = len(migrations)
    while True:
        current = schema_version(conn)
        if current > known:
            raise SchemaTooNew(where, current, known)
        if current == known:
            return current
        # The last migration to fail leaves the database at the step before it, never half way.
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = schema_version(conn)  # another process may have migrated while we waited
            if current < known:
                migrations[current](conn)
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (str(current + 1),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def open_migrated(path: Path) -> sqlite3.Connection:
    """A connection to a database brought up to date (closed again if it cannot be: too new, say)."""
    conn = connect(path)
    try:
        migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn
