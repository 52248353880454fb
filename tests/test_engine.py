"""The storage interfaces: SQLite and FAISS implement the protocols, the schema migrates in steps, the KB closes."""

from __future__ import annotations

import inspect
import sqlite3
from datetime import timedelta

import pytest
from newsroom import add_ferry_and_solar
from util_cli import CLI

from index import engine
from index.engines import PostgresEngine, SQLiteEngine
from index.kb import DB_FILE, KnowledgeBase
from index.pg_side_tables import PgAnswerLog, PgBotTables, PgPortableSQL, PgRunLock, PgUpdateLedger
from index.pg_store import PgStore
from index.pg_vectors import PgVectorIndex
from index.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from index.settings import IndexSettings
from index.side_tables import SQLiteAnswerLog, SQLiteBotTables, SQLitePortableSQL, SQLiteRunLock, SQLiteUpdateLedger
from index.store import Store
from index.vectors import VectorIndex

IMPLEMENTATIONS = [
    (engine.ArticleStore, Store),
    (engine.ArticleStore, PgStore),
    (engine.VectorSearchIndex, VectorIndex),
    (engine.VectorSearchIndex, PgVectorIndex),
    (engine.UpdateLedgerTable, SQLiteUpdateLedger),
    (engine.AnswerLog, SQLiteAnswerLog),
    (engine.BotTableRows, SQLiteBotTables),
    (engine.PortableSQL, SQLitePortableSQL),
    (engine.RunLock, SQLiteRunLock),
    (engine.UpdateLedgerTable, PgUpdateLedger),
    (engine.AnswerLog, PgAnswerLog),
    (engine.PortableSQL, PgPortableSQL),
    (engine.RunLock, PgRunLock),
    (engine.BotTableRows, PgBotTables),
    (engine.Engine, SQLiteEngine),
    (engine.Engine, PostgresEngine),
]


def _members(protocol: type) -> set[str]:
    return {n for n in vars(protocol) if not n.startswith("_")} | set(protocol.__annotations__)


@pytest.mark.parametrize(("protocol", "implementation"), IMPLEMENTATIONS, ids=lambda x: x.__name__)
def test_the_sqlite_and_faiss_classes_implement_the_protocols(protocol, implementation):
    for name in sorted(_members(protocol)):
        wanted = getattr(protocol, name, None)
        if not callable(wanted) or isinstance(wanted, property):
            continue  # attributes and properties: checked on live objects below
        assert hasattr(implementation, name), f"{implementation.__name__} lacks {name}"
        have = list(inspect.signature(getattr(implementation, name)).parameters)
        want = list(inspect.signature(wanted).parameters)
        assert have == want, f"{implementation.__name__}.{name}{have} differs from the protocol's {want}"


@pytest.fixture
def any_kb(engine_settings, embedder):
    """A knowledge base on each engine."""
    knowledge_base = KnowledgeBase(engine_settings, embedder=embedder)
    yield knowledge_base
    knowledge_base.close()


def test_the_knowledge_base_holds_its_engines_through_the_protocols(any_kb):
    kb = any_kb
    add_ferry_and_solar(kb)
    assert isinstance(kb.engine, engine.Engine)
    assert isinstance(kb.store, engine.ArticleStore)
    assert isinstance(kb.vectors, engine.VectorSearchIndex)
    assert kb.vectors.count == kb.counts()["chunks"] and kb.vectors.kind
    ledger, log, sql, lock = kb.update_ledger(), kb.answer_log(), kb.engine.portable_sql(), kb.run_lock()
    try:
        assert isinstance(ledger, engine.UpdateLedgerTable) and isinstance(log, engine.AnswerLog)
        assert isinstance(sql, engine.PortableSQL) and isinstance(lock, engine.RunLock)
        assert sql.query("SELECT count(*) FROM articles") == [(2,)], "the same database as the store"
        ledger.open()
        assert ledger.record([(5, "{}")]) == [5]
        assert ledger.recover(3, timedelta(days=2)) == ([], []), "update 5 is this process's"
        ledger.close()
        ledger.open()  # as the next process: it takes over what the last one left
        assert ledger.recover(3, timedelta(days=2)) == ([], [(5, "{}")])
        answer_id = log.record_answer({"chat_id": 1, "question": "q", "answer": "a", "found": 1, "citations": []})
        assert log.vote(answer_id, 9, 1) and log.counts() == {"answers": 1, "up": 1, "down": 0}
    finally:
        ledger.close()
        log.close()
        sql.close()


# --- migrations -------------------------------------------------------------------------------


def _meta(path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()


def _tables(path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


@pytest.mark.parametrize("opener", ["store", "ledger", "answer log"])
def test_a_new_database_gets_every_migration_whoever_opens_it_first(tmp_path, opener):
    path = tmp_path / "a.db"
    if opener == "store":
        Store(path).close()
    elif opener == "ledger":
        ledger = SQLiteUpdateLedger(path)
        ledger.open()
        ledger.close()
    else:
        SQLiteAnswerLog(path).close()
    meta = _meta(path)
    assert meta["schema"] == str(SCHEMA_VERSION) == str(len(MIGRATIONS))
    assert meta["version"] == "0" and len(meta["store_id"]) == 32
    expected = {"articles", "chunks", "embeddings", "chunks_fts", "meta", "updates", "answers", "feedback"}
    assert expected | {"feeds", "feed_items"} <= _tables(path)


def test_an_old_database_gets_the_missing_migrations_and_keeps_its_articles(tmp_path, kb):
    add_ferry_and_solar(kb)
    articles = kb.counts()["articles"]
    kb.close()
    path = kb.data_dir / DB_FILE
    conn = sqlite3.connect(path)
    # As a version-1 file from before store_id was written: the migration to 2 must add it.
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    conn.execute("DELETE FROM meta WHERE key = 'store_id'")
    conn.commit()
    conn.close()
    store = Store(path)
    try:
        assert store.counts()["articles"] == articles
        assert len(store.store_id()) == 32
    finally:
        store.close()
    assert _meta(path)["schema"] == str(SCHEMA_VERSION)
    assert {"updates", "answers", "feedback", "feeds", "feed_items"} <= _tables(path)


def test_a_database_newer_than_the_code_is_refused_untouched(tmp_path):
    path = tmp_path / "new.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    before = _meta(path)
    ledger = SQLiteUpdateLedger(path)
    for opening in (lambda: Store(path), ledger.open, lambda: SQLiteAnswerLog(path)):
        with pytest.raises(engine.SchemaTooNew, match=rf"schema version {SCHEMA_VERSION + 1}, newer than this"):
            opening()
    assert _meta(path) == before
    with pytest.raises(RuntimeError, match="not open"):
        ledger.states()


def test_the_cli_says_so_in_one_line_for_a_newer_database(tmp_path, monkeypatch, capsys, embedder):
    cli = CLI(monkeypatch, capsys, embedder, tmp_path)
    try:
        KnowledgeBase(IndexSettings(data_dir=str(tmp_path))).close()  # a database of the current schema
        conn = sqlite3.connect(tmp_path / DB_FILE)
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
        conn.commit()
        conn.close()
        result = cli("list")
    finally:
        cli.close()
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        f"articlebot: {tmp_path / DB_FILE} has schema version 99, newer than this articlebot knows "
        f"({SCHEMA_VERSION}): upgrade articlebot, or use another data dir"
    ]


def test_each_migration_is_one_transaction_and_a_failing_one_stops_there(tmp_path):
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)

    def first(c):
        c.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        c.execute("CREATE TABLE one (x)")

    def second(c):
        c.execute("CREATE TABLE two (x)")
        raise RuntimeError("disk on fire")

    def third(c):
        c.execute("CREATE TABLE three (x)")

    with pytest.raises(RuntimeError, match="disk on fire"):
        migrate(conn, "m.db", [first, second, third])
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"meta", "one"}, "the first step stays, the failed one is rolled back, the third never ran"
    assert schema_version(conn) == 1
    assert migrate(conn, "m.db", [first, lambda c: c.execute("CREATE TABLE two (x)"), third]) == 3
    assert {"two", "three"} <= {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()


# --- closing ----------------------------------------------------------------------------------


def test_the_knowledge_base_is_a_context_manager(settings, embedder):
    with KnowledgeBase(settings, embedder=embedder) as kb:
        assert kb.counts()["articles"] == 0
    assert kb.closed
    with pytest.raises(sqlite3.ProgrammingError):
        kb.store.remove_article(1)


def test_every_cli_command_closes_the_knowledge_base(tmp_path, monkeypatch, capsys, embedder):
    article = tmp_path / "fähre.md"
    article.write_text(
        "# Neue Fähre für Seewinkel\n\nDie Gemeinde Seewinkel kauft eine elektrische Fähre für 40 Fahrgäste."
        " Sie soll ab dem Frühjahr zwischen dem Hafen und der Insel pendeln und die alte Dieselfähre ersetzen,"
        " die nach dreißig Jahren im Dienst zu viel Wartung braucht.\n",
        encoding="utf-8",
    )
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    commands = [
        ("add", str(article)),
        ("list",),
        ("show", "1"),
        ("stats",),
        ("search", "Fähre"),
        ("ask", "Was kauft Seewinkel?"),
        ("reindex",),
        ("remove", "1"),
    ]
    try:
        for argv in commands:
            before = len(cli.opened)
            result = cli(*argv)
            assert result.code == 0, (argv, result.err)
            assert len(cli.opened) == before + 1
            assert cli.opened[-1].closed, f"'articlebot {argv[0]}' left its knowledge base open"
    finally:
        cli.close()
