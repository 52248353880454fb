"""``articlebot migrate``: a SQLite data dir copied into another engine, resumable, verified, refusing bad targets."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from test_crash import HOLD, ConsoleRun, committed, hold_inside, kill_inside, landed, marks, store_version
from util_cli import CLI
from util_kb import ZERO_INTEGRITY, fake_article

from bot.cli import load_samples
from index.engine import BOT_TABLES
from index.engines import DB_FILE, SQLiteEngine, open_engine
from index.kb import KnowledgeBase
from index.migrate import MigrationError, migrate
from index.records import ArticleRecord, ChunkRecord, DuplicateArticle, content_hash
from index.settings import IndexSettings
from index.store import Store

QUESTIONS = [
    "Wie viel kostet der Kubikmeter Trinkwasser ab dem 1. April?",
    "How much did the new tram line in Ulmenhagen cost to build?",
    "Who led the bumblebee study?",
    "Wie viele Parkplätze fallen in der Hauptstraße weg?",
    "Wer hat Tauwerk Labs gegründet?",
]


@pytest.fixture(scope="module")
def sample_source(tmp_path_factory, embedder) -> Path:
    """A data dir as a bot leaves it: the samples (one removed, the newest), answers, votes, feeds, updates."""
    data_dir = tmp_path_factory.mktemp("source") / "data"
    with KnowledgeBase(IndexSettings(data_dir=str(data_dir)), embedder=embedder) as kb:
        assert load_samples(kb) == 8
        kb.remove(max(a.id for a in kb.articles()))  # the counters must carry this id, or it is handed out again
        log = kb.answer_log()
        try:
            first = log.record_answer({"chat_id": 7, "question": "Wer?", "answer": "Sie.", "found": 1, "citations": []})
            second = log.record_answer(
                {"chat_id": 8, "question": "Was?", "answer": "Das [1].", "found": 1, "citations": [{"n": 1}]}
            )
            assert log.vote(first, 70, 1) and log.vote(second, 80, -1)
        finally:
            log.close()
        ledger = kb.update_ledger()
        ledger.open()
        try:
            ledger.record([(100, '{"update_id": 100}'), (101, '{"update_id": 101}')])
            assert ledger.begin(100)
            ledger.finish(100, "answered")
        finally:
            ledger.close()
    conn = sqlite3.connect(data_dir / DB_FILE)
    with conn:
        for url in ("https://a.example/feed", "https://b.example/feed", "https://c.example/feed"):
            conn.execute("INSERT INTO feeds (url, url_key, added_at) VALUES (?, ?, '2026-01-01')", (url, url))
        items = [(1, "g1", "https://a.example/1", "added"), (2, "g2", None, "failed")]
        conn.executemany("INSERT INTO feed_items (feed_id, guid, url, status) VALUES (?, ?, ?, ?)", items)
        conn.execute("DELETE FROM feeds WHERE id = 3")  # its id, too, is never to be given again
    conn.close()
    return data_dir


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path: Path) -> IndexSettings:
    """Settings of an empty target on each engine (a data dir, or a fresh PostgreSQL database)."""
    settings = IndexSettings(data_dir=str(tmp_path / "target"))
    if request.param == "postgres":
        settings.storage.engine = "postgres"
        settings.storage.dsn = request.getfixturevalue("pg_dsn")
    return settings


def source_settings(data_dir: Path) -> IndexSettings:
    return IndexSettings(data_dir=str(data_dir))


def contents(settings: IndexSettings) -> dict:
    """Everything a migration carries over, read through the engine's protocols (so on either engine)."""
    engine = open_engine(settings)
    with closing(engine.article_store()) as store, closing(engine.bot_tables()) as tables:
        articles = store.articles()
        return {
            "articles": [_article_facts(a) for a in reversed(articles)],
            "passages": [[_chunk_facts(c) for c in store.article_chunks(a.id)] for a in reversed(articles)],
            "vectors": [(ids.tolist(), vectors.tobytes(), model) for ids, vectors, model in store.iter_vectors()],
            "id counters": store.id_counters(),
            "rows": {table: list(tables.read(table)) for table in BOT_TABLES},
            "row counters": tables.counters(),
            "version": store.version(),
        }


def snapshot(data_dir: Path) -> dict:
    """Every row of a SQLite file, the FTS rows and AUTOINCREMENT counters included."""
    conn = sqlite3.connect(data_dir / DB_FILE)
    try:
        out = {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("articles", "chunks", "embeddings", "answers", "feedback", "feeds", "feed_items", "updates")
        }
        out["fts"] = conn.execute("SELECT rowid, title_terms, terms FROM chunks_fts ORDER BY rowid").fetchall()
        out["sequences"] = conn.execute("SELECT * FROM sqlite_sequence ORDER BY name").fetchall()
        return out
    finally:
        conn.close()


def test_a_copy_holds_every_row_id_and_vector_byte_and_hands_out_no_used_id(sample_source, target, embedder):
    report = migrate(sample_source, target)
    assert (report.articles, report.already) == (7, 0)
    assert report.rows == {"feeds": 2, "feed_items": 2, "answers": 2, "feedback": 2, "updates": 2}
    assert report.totals["chunks"] == report.passages == report.sampled > 0
    copied, original = contents(target), contents(source_settings(sample_source))
    assert {k: v for k, v in copied.items() if k != "version"} == {k: v for k, v in original.items() if k != "version"}
    if target.storage.engine == "sqlite":
        assert snapshot(Path(target.data_dir)) == snapshot(sample_source)

    counters = original["id counters"]
    with KnowledgeBase(target, embedder=embedder) as kb:
        assert kb.open() == "loaded", "the migration left no vector index for the first start"
        added = kb.add(_doc("Ein neuer Artikel über die Fähre am Nordufer. " * 8))
        assert added.article_id == counters["articles"] + 1  # not the removed newest article's id
        assert min(c.id for c in kb.store.article_chunks(added.article_id)) == counters["chunks"] + 1
        log = kb.answer_log()
        try:
            assert log.record_answer({"chat_id": 1, "question": "q", "answer": "a", "found": 0}) == 3
        finally:
            log.close()
        ledger = kb.update_ledger()
        ledger.open()
        try:  # the unanswered update comes back to be answered; the answered one is not handled twice
            assert ledger.recover(3, timedelta(days=2)) == ([], [(101, '{"update_id": 101}')])
            assert not ledger.begin(100)
        finally:
            ledger.close()
    engine = open_engine(target)
    with closing(engine.bot_tables()) as tables:
        assert tables.counters()["feeds"] == 3, "the id of the removed feed #3 would be given again"


def _doc(text: str):
    from index.extract import from_text

    return from_text(text, title="Fähre Nordufer", source="test")


def _article_facts(a) -> tuple:
    return (a.id, a.title, a.url, a.source, a.published, a.added_by, a.added_at, a.content_hash, a.text, a.language)


def _chunk_facts(c) -> tuple:
    return (c.id, c.article_id, c.position, c.text, c.start, c.end, c.title, c.url, c.language)


def test_a_rerun_checks_what_is_there_and_copies_nothing_twice(sample_source, target):
    migrate(sample_source, target)
    before = contents(target)
    again = migrate(sample_source, target)
    assert (again.articles, again.already, sum(again.rows.values())) == (0, 7, 0)
    assert contents(target) == before


def test_a_rerun_refuses_a_copied_article_whose_vector_changed_since(sample_source, target):
    migrate(sample_source, target)
    engine = open_engine(target)
    with closing(engine.article_store()) as store:
        chunk_id = int(store.chunk_ids()[-1])
        _, (vector,) = store.vectors_for([chunk_id])
        vector = vector.copy()
        vector[0] = np.nextafter(vector[0], np.float32(2))  # one bit of one number
        store.replace_vectors([(chunk_id, vector)], store.embedding_models()[0][0])
    with pytest.raises(MigrationError, match="vectors of article #.* differ"):
        migrate(sample_source, target)


def test_the_copy_answers_search_and_ask_as_the_original(
    sample_source, target, tmp_path, monkeypatch, capsys, embedder
):
    migrate(sample_source, target)
    cli = CLI(monkeypatch, capsys, embedder, sample_source)
    try:
        original = _answers(cli, sample_source)
        config = tmp_path / "target.toml"
        config.write_text(f'[storage]\nengine = "{target.storage.engine}"\ndsn = "{target.storage.dsn}"\n')
        copied = _answers(cli, Path(target.data_dir), str(config), target.storage.engine)
    finally:
        cli.close()
    assert all(result["results"] for result in original["search"])
    assert copied == original


def _answers(cli: CLI, data_dir: Path, config: str | None = None, engine: str = "sqlite") -> dict:
    cli.data_dir = data_dir
    stats = cli("stats", "--json", config=config)
    assert json.loads(stats.out)["engine"] == engine, stats.err
    out = {}
    for command in ("search", "ask"):
        lines = []
        for question in QUESTIONS:
            result = cli(command, question, "--json", config=config)
            assert result.code == 0, result.err
            lines.append(json.loads(result.out))
        out[command] = lines
    return out


def test_import_article_keeps_every_id_and_refuses_a_taken_one(engine_settings):
    """The store side of a copy, on each engine: own ids kept (passage ids need not be one run), counters
    moved past them, and a taken id or text refused in one transaction that leaves nothing behind."""
    Path(engine_settings.data_dir).mkdir()
    with closing(open_engine(engine_settings).article_store()) as store:
        vectors = np.eye(3, 4, dtype=np.float32)
        store.import_article(_record(10, "Erster Text"), _chunks(10, [20, 21, 25]), vectors, "m", _terms(3))
        assert [c.id for c in store.article_chunks(10)] == [20, 21, 25]
        assert store.vectors_for([20, 21, 25])[1].tobytes() == vectors.tobytes()
        assert store.id_counters() == {"articles": 10, "chunks": 25}
        store.raise_id_counters({"articles": 4, "chunks": 40})  # raises, never lowers
        assert store.id_counters() == {"articles": 10, "chunks": 40}
        new_id, new_chunks = store.add_article(
            {"title": "Neu", "text": "Ein neuer Text"},
            [{"position": 0, "text": "Ein neuer Text", "start": 0, "end": 14}],
            vectors[:1],
            "m",
            _terms(1),
        )
        assert (new_id, new_chunks) == (11, [41])
        before = store.counts()
        with pytest.raises(DuplicateArticle, match="#10 \\(same id\\)"):
            store.import_article(_record(10, "Anderer Text"), _chunks(10, [50]), vectors[:1], "m", _terms(1))
        with pytest.raises(DuplicateArticle, match="#10 \\(same text\\)"):
            store.import_article(_record(12, "Erster Text"), _chunks(12, [50]), vectors[:1], "m", _terms(1))
        with pytest.raises(ValueError, match="passage id 21 is taken"):
            store.import_article(_record(13, "Dritter Text"), _chunks(13, [60, 21]), vectors[:2], "m", _terms(2))
        assert store.counts() == before and store.integrity() == {k: 0 for k in store.integrity()}


def _record(article_id: int, text: str) -> ArticleRecord:
    return ArticleRecord(
        id=article_id,
        title=f"Titel {article_id}",
        url=f"https://example.org/{article_id}",
        source="test",
        published="2026-01-02",
        added_by="7",
        added_at="2026-01-03T04:05:06+00:00",
        content_hash=content_hash(text),
        text=text,
        language="de",
    )


def _chunks(article_id: int, ids: list[int]) -> list[ChunkRecord]:
    return [
        ChunkRecord(cid, article_id, i, f"Stück {cid}", i * 10, i * 10 + 8, "", None, "de") for i, cid in enumerate(ids)
    ]


def _terms(count: int) -> list[tuple[str, str]]:
    return [("titel", f"stuck wort{i}") for i in range(count)]


# --- refusals: one line, nothing changed -------------------------------------------------------


def test_a_target_holding_other_articles_is_refused_untouched(sample_source, target, embedder):
    with KnowledgeBase(target, embedder=embedder) as kb:
        kb.add(_doc("Ein ganz anderer Artikel über den Hafen von Ortheim und seine Fähren. " * 5))
    before = contents(target)
    with pytest.raises(MigrationError, match="already holds 1 other article.*empty database"):
        migrate(sample_source, target)
    assert contents(target) == before


def test_a_target_holding_other_bot_rows_is_refused_untouched(sample_source, target):
    Path(target.data_dir).mkdir()
    engine = open_engine(target)
    with closing(engine.answer_log()) as log:
        log.record_answer({"chat_id": 5, "question": "anders", "answer": "x", "found": 0})
    before = contents(target)
    with pytest.raises(MigrationError, match="answers table holds another row under id 1"):
        migrate(sample_source, target)
    assert contents(target) == before


@pytest.mark.parametrize(
    ("damage", "refusal"),
    [
        (
            "DELETE FROM embeddings WHERE chunk_id = 2",
            r"source database is not consistent \(chunks without vector: 1\)",
        ),
        ("UPDATE embeddings SET model = 'other-model' WHERE chunk_id = 2", "vectors of several models"),
    ],
)
def test_a_source_that_cannot_be_copied_whole_is_refused(tmp_path, damage, refusal):
    source = tmp_path / "source"
    store = Store(source / DB_FILE)
    try:
        fake_article(store, 1, 3, "test-model", 8, np.random.default_rng(1))
    finally:
        store.close()
    conn = sqlite3.connect(source / DB_FILE)
    with conn:
        conn.execute(damage)
    conn.close()
    target = IndexSettings(data_dir=str(tmp_path / "target"))
    with pytest.raises(MigrationError, match=refusal):
        migrate(source, target)
    assert not (tmp_path / "target" / DB_FILE).exists()


def test_no_copy_while_a_bot_runs_on_either_side(sample_source, target):
    """A bot holds its engine's run lock while it runs (webhook mode: shared); a copy waits for none."""
    Path(target.data_dir).mkdir()
    before = contents(target)
    for engine, side in ((SQLiteEngine(sample_source), "the source data dir"), (open_engine(target), "the target")):
        bot = engine.run_lock()
        assert bot.acquire(polling=False) is None
        try:
            with pytest.raises(
                MigrationError, match=f"a bot runs on {side} .*pid {os.getpid()}.*stop it, then migrate"
            ):
                migrate(sample_source, target)
        finally:
            bot.release()
        assert contents(target) == before
    assert migrate(sample_source, target).articles == 7  # and once they are gone, it runs


def test_the_cli_refuses_in_one_line_and_creates_nothing(sample_source, tmp_path, monkeypatch, capsys, embedder):
    missing = tmp_path / "no-such-data"
    cli = CLI(monkeypatch, capsys, embedder, missing)
    try:
        result = cli("migrate", "--to", str(tmp_path / "target"))
        assert result.code == 1 and result.err.count("\n") == 1
        assert "no articlebot database" in result.err
        assert not missing.exists() and not (tmp_path / "target").exists()

        cli.data_dir = sample_source
        result = cli("migrate", "--to", "postgresql://articlebot@127.0.0.1:1/articlebot")
        assert result.code == 1 and result.err.count("\n") == 1
        assert "cannot connect to PostgreSQL at" in result.err

        result = cli("migrate", "--to", str(sample_source))
        assert result.code == 1 and "the target is the source data dir" in result.err
    finally:
        cli.close()


def test_a_config_already_on_postgres_is_told_migrate_copies_a_sqlite_data_dir(
    sample_source, pg_dsn, tmp_path, monkeypatch, capsys, embedder
):
    # It said 'no articlebot database in … (articlebot.db is missing)', as if the data dir had lost it.
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\nengine = "postgres"\ndsn = "{pg_dsn}"\n')
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "local")
    try:
        result = cli("migrate", "--to", str(tmp_path / "target"), config=str(config))
        assert result.code == 1 and result.err.count("\n") == 1, result.err
        assert 'migrate copies a SQLite data dir, and this config has [storage] engine = "postgres"' in result.err
        assert not (tmp_path / "target").exists() and not (tmp_path / "local" / DB_FILE).exists()
        cli.data_dir = sample_source  # the SQLite deployment's data dir: it copies, whatever the engine says
        result = cli("migrate", "--to", str(tmp_path / "target"), config=str(config))
        assert result.code == 0 and "copied 7 articles" in result.out, result
    finally:
        cli.close()


def test_the_cli_reports_the_copy_and_the_config_lines(sample_source, tmp_path, monkeypatch, capsys, embedder):
    cli = CLI(monkeypatch, capsys, embedder, sample_source)
    try:
        result = cli("migrate", "--to", str(tmp_path / "target"))
    finally:
        cli.close()
    assert result.code == 0, result.err
    assert "copied 7 articles (" in result.out
    assert "none half-added" in result.out and "sampled vectors byte-equal" in result.out
    assert f'[storage]\nengine = "sqlite"\ndata_dir = "{tmp_path / "target"}"' in result.out


def test_the_cli_prints_the_postgresql_lines_without_the_password(sample_source, pg_dsn, monkeypatch, capsys, embedder):
    assert pg_dsn.startswith("postgresql://postgres@")
    with_password = pg_dsn.replace("postgres@", "postgres:sesam-7f3@", 1)  # the test server trusts loopback
    cli = CLI(monkeypatch, capsys, embedder, sample_source)
    try:
        result = cli("migrate", "--to", with_password)
    finally:
        cli.close()
    assert result.code == 0, result.err
    assert "copied 7 articles (" in result.out and "sesam-7f3" not in result.out + result.err
    lines = f'[storage]\nengine = "postgres"\ndsn = "{pg_dsn}"\npassword_env = "ARTICLEBOT_DB_PASSWORD"'
    assert lines in result.out


# --- killed mid-copy, run again ------------------------------------------------------------------


@pytest.fixture
def many_articles(tmp_path: Path) -> Path:
    """40 articles written straight to a store (random vectors: this is about copying, not search)."""
    data_dir = tmp_path / "source"
    store = Store(data_dir / DB_FILE)
    try:
        rng = np.random.default_rng(5)
        for n in range(40):
            fake_article(store, n, 3 + n % 4, "test-model", 16, rng)
    finally:
        store.close()
    return data_dir


def article_ids(data_dir: Path) -> list[int]:
    conn = sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM articles ORDER BY id")]
    finally:
        conn.close()


def test_a_copy_killed_inside_an_article_resumes_to_an_exact_copy(many_articles, tmp_path):
    """A real ``articlebot migrate`` process, SIGKILLed inside the transaction of its 5th article, then run again."""
    trace, target = tmp_path / "trace", tmp_path / "target"
    argv = ["--data-dir", str(many_articles), "migrate", "--to", str(target)]
    hold_inside(trace, HOLD)
    run = ConsoleRun(argv, tmp_path, "killed", trace)
    how = kill_inside(run, trace, "article", 5)
    hold_inside(trace, 0)
    assert how == "killed inside article transaction 5", how
    assert landed(marks(trace, run.pid)) == "article"
    # Whole articles only, the first four in id order; the fifth's rows all rolled back.
    assert article_ids(target) == article_ids(many_articles)[:4]
    assert committed(marks(trace, run.pid), "article") == 4
    store = Store(target / DB_FILE)
    try:
        assert store.integrity() == ZERO_INTEGRITY
    finally:
        store.close()

    again = ConsoleRun(argv, tmp_path, "again", trace)
    assert again.wait() == 0, again.err.read_text()
    out = again.out.read_text()
    assert "copied 36 articles" in out and "4 articles copied before, checked" in out
    assert snapshot(target) == snapshot(many_articles)


def test_a_copy_killed_at_random_moments_ends_an_exact_copy(many_articles, tmp_path):
    """Killed a random number of commits and milliseconds into each run (in or between transactions)."""
    trace, target = tmp_path / "trace", tmp_path / "target"
    argv = ["--data-dir", str(many_articles), "migrate", "--to", str(target)]
    wanted = article_ids(many_articles)
    rng = random.Random(3)
    landings = []
    for attempt in range(4):
        # Every other run waits 10 ms in each article's transaction (so most kills land inside one),
        # the others run at full speed (kills land between, or in the middle of a commit).
        hold = 0.01 * (attempt % 2)
        hold_inside(trace, hold)
        start = store_version(target / DB_FILE)
        run = ConsoleRun(argv, tmp_path, f"run{attempt}", trace)
        commits = start + 1 + rng.randint(0, 4)
        while store_version(target / DB_FILE) < commits and not run.finished(0.001):
            pass
        time.sleep(rng.uniform(0, 0.015 if hold else 0.001))
        assert run.kill(), f"run {attempt} ended by itself: {run.err.read_text()[-500:]}"
        landings.append(landed(marks(trace, run.pid)))
        assert article_ids(target) == wanted[: len(article_ids(target))]  # a prefix, nothing skipped
        store = Store(target / DB_FILE)
        try:
            assert store.integrity() == ZERO_INTEGRITY
        finally:
            store.close()
    hold_inside(trace, 0)
    assert 0 < len(article_ids(target)) < len(wanted), landings
    assert "article" in landings, landings
    final = ConsoleRun(argv, tmp_path, "final", trace)
    assert final.wait() == 0, final.err.read_text()
    assert snapshot(target) == snapshot(many_articles)


def pg_articles(dsn: str) -> list[int]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('articles')").fetchone()[0] is None:
            return []
        return [row[0] for row in conn.execute("SELECT id FROM articles ORDER BY id")]


def test_a_copy_to_postgresql_killed_mid_copy_resumes_to_an_exact_copy(many_articles, tmp_path, pg_dsn):
    """A real ``articlebot migrate --to postgresql://…`` process SIGKILLed a few commits in, three times, then
    run to the end: each kill leaves whole articles in id order, the last run an exact copy."""
    argv = ["--data-dir", str(many_articles), "migrate", "--to", pg_dsn]
    wanted = article_ids(many_articles)
    rng = random.Random(8)
    target = IndexSettings(data_dir=str(tmp_path / "pg-local"))
    target.storage.engine, target.storage.dsn = "postgres", pg_dsn
    for attempt in range(3):
        before = len(pg_articles(pg_dsn))
        run = ConsoleRun(argv, tmp_path, f"pg{attempt}", tmp_path / "trace")
        while len(pg_articles(pg_dsn)) < before + rng.randint(1, 4) and not run.finished(0.001):
            pass
        time.sleep(rng.uniform(0, 0.005))
        assert run.kill(), f"run {attempt} ended by itself: {run.err.read_text()[-500:]}"
        copied = pg_articles(pg_dsn)
        assert copied == wanted[: len(copied)] and len(copied) > before
        engine = open_engine(target)
        with closing(engine.article_store()) as store:
            assert store.integrity() == {key: 0 for key in store.integrity()}
    final = ConsoleRun(argv, tmp_path, "pg-final", tmp_path / "trace")
    assert final.wait() == 0, final.err.read_text()
    assert f"{len(copied)} articles copied before, checked" in final.out.read_text()
    assert {k: v for k, v in contents(target).items() if k != "version"} == {
        k: v for k, v in contents(source_settings(many_articles)).items() if k != "version"
    }
