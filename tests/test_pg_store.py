"""What only the PostgreSQL engine has to show: several processes on one database, its own errors, HNSW.

The behaviour both engines share (one transaction per article, snapshots, ids never reused, the
knowledge base on top) is tested for both in test_store.py, test_kb.py and test_crash.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pg_server import _free_port
from util_cli import CLI
from util_kb import ZERO_INTEGRITY, fake_article

from index.engine import SchemaTooNew, StorageError
from index.kb import KnowledgeBase
from index.pg_store import PgStore
from index.pg_vectors import PgVectorIndex
from index.postgres import SCHEMA_VERSION
from index.settings import IndexSettings, SearchSettings, StorageSettings

ROOT = Path(__file__).resolve().parents[1]
DIM = 384
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}


def _storage(dsn: str) -> StorageSettings:
    return StorageSettings(engine="postgres", dsn=dsn)


@pytest.fixture
def pg(pg_dsn):
    store = PgStore(_storage(pg_dsn))
    yield store
    store.close()


def _unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# --- two connections, two processes --------------------------------------------------------------


def test_two_stores_see_each_others_writes_and_versions(pg_dsn):
    a, b = PgStore(_storage(pg_dsn)), PgStore(_storage(pg_dsn))
    try:
        assert a.store_id() == b.store_id() and len(a.store_id()) == 32
        rng = np.random.default_rng(1)
        article_id, chunk_ids = fake_article(a, 1, 3, "m", DIM, rng)
        assert b.version() == a.version() == 1
        assert b.counts() == {"articles": 1, "chunks": 3, "embeddings": 3}
        assert {c for c, _ in b.lexical_search(["thema1"], 10)} == set(chunk_ids)
        other_id, other_chunks = fake_article(b, 2, 2, "m", DIM, rng)
        assert other_id > article_id and min(other_chunks) > max(chunk_ids)
        assert b.remove_article(article_id) == chunk_ids
        assert a.version() == 3 and a.counts()["articles"] == 1
        assert a.lexical_search(["thema1"], 10) == [] and a.chunks_by_id(chunk_ids) == {}
        assert a.integrity() == b.integrity() == ZERO_INTEGRITY
    finally:
        a.close()
        b.close()


def test_two_processes_writing_at_once_get_disjoint_ids_never_reused(pg_dsn, tmp_path):
    PgStore(_storage(pg_dsn)).close()  # migrated before the race: the race is about ids
    gate = tmp_path / "go"
    script = textwrap.dedent(
        """
        import json, sys, time
        from pathlib import Path
        import numpy as np
        from index.pg_store import PgStore
        from index.settings import StorageSettings
        from util_kb import fake_article

        store = PgStore(StorageSettings(engine="postgres", dsn=sys.argv[1]))
        who = int(sys.argv[2])
        gate = Path(sys.argv[3])
        while not gate.exists():
            time.sleep(0.001)
        rng = np.random.default_rng(who)
        articles, reserved = [], []
        for n in range(25):
            articles.append(fake_article(store, who * 1000 + n, 1 + n % 4, "m", 8, rng))
            count = 1 + n % 3
            reserved.append([store.reserve_chunk_ids(count), count])
        print(json.dumps({"articles": articles, "reserved": reserved}))
        store.close()
        """
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, pg_dsn, str(who), str(gate)], env=ENV, stdout=subprocess.PIPE, text=True
        )
        for who in (1, 2)
    ]
    time.sleep(1.0)  # both connected and waiting
    gate.touch()
    results = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        results.append(json.loads(out))
    article_ids = [a for r in results for a, _ in r["articles"]]
    assert len(set(article_ids)) == len(article_ids) == 50
    chunk_ids: list[int] = []
    for r in results:
        for _, ids in r["articles"]:
            assert ids == list(range(ids[0], ids[0] + len(ids))), "an article's passages take one contiguous block"
            chunk_ids += ids
        for first, count in r["reserved"]:
            chunk_ids += range(first, first + count)
    assert len(set(chunk_ids)) == len(chunk_ids), "two processes were given the same chunk id"
    store = PgStore(_storage(pg_dsn))
    try:
        assert store.version() == 50 and store.integrity() == ZERO_INTEGRITY
        newest = max(article_ids)
        store.remove_article(newest)
        again, again_chunks = fake_article(store, 9999, 2, "m", 8, np.random.default_rng(9))
        assert again > newest and min(again_chunks) > max(chunk_ids)
    finally:
        store.close()


def test_processes_migrating_a_fresh_database_at_once(pg_dsn, tmp_path):
    gate = tmp_path / "go"
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from index.postgres import connect, migrate
        from index.settings import StorageSettings

        conn = connect(StorageSettings(engine="postgres", dsn=sys.argv[1]))
        while not Path(sys.argv[2]).exists():
            time.sleep(0.001)
        print(migrate(conn, "test"))
        """
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, pg_dsn, str(gate)],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    time.sleep(1.0)
    gate.touch()
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0 and out.strip() == str(SCHEMA_VERSION), err[-2000:]
    with psycopg.connect(pg_dsn) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        assert meta["schema"] == str(SCHEMA_VERSION) and meta["version"] == "0" and len(meta["store_id"]) == 32
        assert conn.execute("SELECT count(*) FROM lexical_stats").fetchone()[0] == 1


# --- errors ---------------------------------------------------------------------------------------


def test_an_unreachable_server_or_a_malformed_dsn_is_one_line(tmp_path):
    unreachable = f"postgresql://postgres@127.0.0.1:{_free_port()}/articlebot"
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL at") as caught:
        PgStore(_storage(unreachable))
    assert "\n" not in str(caught.value)
    for malformed in ("postgresql://[::1", "host=127.0.0.1 port=notaport dbname"):
        with pytest.raises(StorageError) as caught:
            PgStore(_storage(malformed))
        assert "\n" not in str(caught.value) and "[storage] dsn" in str(caught.value)


@pytest.mark.parametrize("command", [("stats",), ("list",), ("add", "x.md")])
def test_the_cli_prints_an_unreachable_database_in_one_line(tmp_path, monkeypatch, capsys, embedder, command):
    config = tmp_path / "config.toml"
    port = _free_port()
    config.write_text(f'[storage]\nengine = "postgres"\ndsn = "postgresql://postgres@127.0.0.1:{port}/articlebot"\n')
    (tmp_path / "x.md").write_text("# T\n\n" + "Text. " * 60)
    monkeypatch.chdir(tmp_path)
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    try:
        result = cli(*command, config=str(config))
    finally:
        cli.close()
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert lines[0].startswith(
        f"articlebot: cannot connect to PostgreSQL at user=postgres dbname=articlebot host=127.0.0.1 port={port}"
    )


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "postgressql://u:hunter2@127.0.0.1:5432/db",
            "must begin with postgresql:// (or postgres://), not postgressql://",
        ),
        ("mysql://u:hunter2@127.0.0.1/db", "must begin with postgresql:// (or postgres://), not mysql://"),
        ("u:hunter2@127.0.0.1:5432/db", "must be postgresql://user@host:port/db (or key=value pairs"),
    ],
)
def test_a_dsn_of_the_wrong_form_is_named_and_its_password_never_shown(dsn, expected):
    # libpq said 'missing "=" after "<the whole DSN, password and all>" in connection info string'.
    with pytest.raises(StorageError) as caught:
        PgStore(_storage(dsn))
    message = str(caught.value)
    assert message.startswith("[storage] dsn ") and expected in message, message
    assert "hunter2" not in message and "\n" not in message


@pytest.fixture
def password_dsn(postgres_server, pg_dsn) -> str:
    """``pg_dsn`` as a role that must give its password 'sekret' (the server trusts everyone else)."""
    role = f"pw_{os.urandom(4).hex()}"
    with psycopg.connect(postgres_server.admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD 'sekret'")
        hba = postgres_server.data / "pg_hba.conf"
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        conn.execute("SELECT pg_reload_conf()")
    return pg_dsn.replace("postgres@", f"{role}@")


def test_a_missing_or_wrong_password_names_the_variable_it_is_read_from(password_dsn, monkeypatch):
    storage = StorageSettings(engine="postgres", dsn=password_dsn, password_env="WALK_DB_PASSWORD")
    monkeypatch.delenv("WALK_DB_PASSWORD", raising=False)
    with pytest.raises(StorageError) as caught:  # was libpq's 'fe_sendauth: no password supplied'
        PgStore(storage)
    wanted = "the server wants a password and $WALK_DB_PASSWORD ([storage] password_env) is not set"
    assert str(caught.value).endswith(wanted), caught.value
    with pytest.raises(StorageError, match="names no variable to read it from"):
        PgStore(StorageSettings(engine="postgres", dsn=password_dsn, password_env=""))
    monkeypatch.setenv("WALK_DB_PASSWORD", "wrong")
    with pytest.raises(StorageError) as caught:
        PgStore(storage)
    message = str(caught.value)
    assert "password authentication failed" in message, message
    assert message.endswith("(the password is read from $WALK_DB_PASSWORD)") and "\n" not in message
    monkeypatch.setenv("WALK_DB_PASSWORD", "sekret")
    PgStore(storage).close()


def test_a_database_newer_than_the_code_is_refused_untouched(pg_dsn):
    PgStore(_storage(pg_dsn)).close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
        before = conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
    with pytest.raises(SchemaTooNew, match=rf"schema version {SCHEMA_VERSION + 1}, newer than this"):
        PgStore(_storage(pg_dsn))
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall() == before


def test_a_lost_connection_is_one_line_and_the_next_call_reconnects(pg, pg_dsn):
    fake_article(pg, 1, 2, "m", DIM, np.random.default_rng(2))
    for pid in (pg.reader().info.backend_pid, pg._write_conn.info.backend_pid):
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StorageError) as caught:
        pg.counts()
    assert "\n" not in str(caught.value) and str(caught.value).startswith("PostgreSQL at ")
    assert pg.counts()["articles"] == 1
    with pytest.raises(StorageError):
        fake_article(pg, 2, 2, "m", DIM, np.random.default_rng(3))
    fake_article(pg, 3, 2, "m", DIM, np.random.default_rng(4))
    assert pg.counts()["articles"] == 2 and pg.integrity() == ZERO_INTEGRITY


# --- pgvector -------------------------------------------------------------------------------------


def _filled(pg: PgStore, vectors: np.ndarray, per: int = 50) -> None:
    first = pg.chunk_id_bound()
    for a in range(0, len(vectors), per):
        block = vectors[a : a + per]
        article = {"title": f"t{a}", "url": None, "source": "test", "text": f"text {first + a}", "language": "de"}
        chunks = [{"position": i, "text": "x", "start": 0, "end": 1} for i in range(len(block))]
        pg.add_article(article, chunks, block, "m", [("t", "x")] * len(block))


def test_hnsw_top10_equals_exact_search_on_2k_random_vectors(pg, pg_dsn):
    """At the default settings (ef_search 512, m 32) with HNSW forced on: the same ten, in the same order."""
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 2000)
    _filled(pg, vectors)
    index = PgVectorIndex(_storage(pg_dsn), SearchSettings(index="hnsw"), "m", DIM)
    assert index.load_or_rebuild(pg) == "rebuilt"
    assert index.kind == "pgvector-hnsw" and index.count == 2000
    assert "Index Scan using embeddings_hnsw_384" in index.explain()
    queries = _unit(rng, 100)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10] + 1  # chunk ids count from 1
    for query, want in zip(queries, exact, strict=True):
        hits = index.search(query, 10)
        assert [c for c, _ in hits] == want.tolist()
        assert [s for _, s in hits] == pytest.approx((vectors[want - 1] @ query).tolist(), abs=1e-5)


def test_small_corpora_are_searched_exactly_and_the_index_comes_with_size(pg, pg_dsn):
    rng = np.random.default_rng(4)
    settings = SearchSettings(hnsw_threshold=300)
    index = PgVectorIndex(_storage(pg_dsn), settings, "m", DIM)
    _filled(pg, _unit(rng, 200))
    assert index.load_or_rebuild(pg) == "loaded"
    assert index.kind == "pgvector-flat" and "Seq Scan" in index.explain()
    # Crossing the threshold while writing: the index is built then, and used from then on.
    _filled(pg, _unit(rng, 150))
    index.add(np.arange(201, 351), np.zeros((150, DIM)))
    assert index.kind == "pgvector-hnsw" and "embeddings_hnsw_384" in index.explain()
    # A second process's index object finds it built.
    other = PgVectorIndex(_storage(pg_dsn), settings, "m", DIM)
    assert other.load_or_rebuild(pg) == "loaded" and other.kind == "pgvector-hnsw"
    flat = PgVectorIndex(_storage(pg_dsn), SearchSettings(index="flat"), "m", DIM)
    flat.load_or_rebuild(pg)
    assert flat.kind == "pgvector-flat" and "Seq Scan" in flat.explain()


def test_the_knowledge_base_on_postgres_follows_another_process_without_copying(pg_dsn, tmp_path, embedder):
    from index.extract import Document

    settings = IndexSettings(data_dir=str(tmp_path / "data"))
    settings.storage = _storage(pg_dsn)
    kb, other = KnowledgeBase(settings, embedder=embedder), KnowledgeBase(settings, embedder=embedder)
    try:
        kb.add(Document(title="Fähre", text="Die Gemeinde Seewinkel kauft eine elektrische Fähre für 40 Fahrgäste."))
        assert kb.open() == "loaded" and kb.vectors.version == 1
        added = other.add(
            Document(title="Solar", text="Auf dem Dach der Schule in Quillsby entsteht eine Solaranlage.")
        )
        hits = kb.search("Solaranlage auf dem Schuldach", k=1, mode="dense")
        assert hits[0].article_id == added.article_id and kb.vectors.version == 2
        other.remove(added.article_id)
        assert all(h.article_id != added.article_id for h in kb.search("Solaranlage Schule", k=5))
        assert not list(Path(settings.data_dir).glob("faiss*")), "pgvector keeps nothing in the data dir"
    finally:
        kb.close()
        other.close()


def test_faiss_replicas_on_postgres_sync_by_version(pg_dsn, tmp_path, embedder):
    """[storage] vector_search = "faiss": each process keeps a FAISS copy in its own data dir."""
    from index.extract import Document
    from index.vectors import VectorIndex

    def settings(name: str) -> IndexSettings:
        s = IndexSettings(data_dir=str(tmp_path / name))
        s.storage = StorageSettings(engine="postgres", dsn=pg_dsn, vector_search="faiss")
        return s

    kb, other = KnowledgeBase(settings("one"), embedder=embedder), KnowledgeBase(settings("two"), embedder=embedder)
    try:
        kb.add(Document(title="Fähre", text="Die Gemeinde Seewinkel kauft eine elektrische Fähre für 40 Fahrgäste."))
        assert isinstance(kb.vectors, VectorIndex) and (tmp_path / "one" / "faiss.index").exists()
        added = other.add(
            Document(title="Solar", text="Auf dem Dach der Schule in Quillsby entsteht eine Solaranlage.")
        )
        assert kb.search("Solaranlage auf dem Schuldach", k=1, mode="dense")[0].article_id == added.article_id
        assert sorted(kb.vectors.ids().tolist()) == kb.store.chunk_ids().tolist()
    finally:
        kb.close()
        other.close()


def test_closing_the_knowledge_base_closes_every_connection_it_opened(pg_dsn, tmp_path, embedder):
    """Per-thread read connections (question threads, the BM25 pool) all end with close(), none left behind."""
    import threading

    from index.extract import Document

    settings = IndexSettings(data_dir=str(tmp_path / "data"))
    settings.storage = _storage(pg_dsn)
    kb = KnowledgeBase(settings, embedder=embedder)
    kb.add(Document(title="Fähre", text="Die Gemeinde Seewinkel kauft eine elektrische Fähre für 40 Fahrgäste."))
    asked, done = threading.Barrier(5), threading.Event()

    def ask(i: int) -> None:  # a thread that stays alive, as the bot's workers do, holding its connection
        kb.search(f"Fähre Seewinkel {i}")
        asked.wait()
        done.wait()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    asked.wait()
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:

            def others() -> int:
                sql = (
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid != pg_backend_pid()"
                )
                return admin.execute(sql).fetchone()[0]

            assert others() >= 5, "the writer, and a reader for each thread that asked"
            kb.close()
            deadline = time.monotonic() + 5
            while others() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert others() == 0
    finally:
        done.set()
        for thread in threads:
            thread.join()
