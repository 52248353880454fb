"""The article store and the vector index: atomic writes, consistent reads, detection and repair of a bad index.

The store tests run on both engines (``engine_settings``: SQLite, PostgreSQL); those about the SQLite
file itself (WAL) and about FAISS's files (damaged, foreign or stale index files and their sidecars)
run on SQLite only: PostgreSQL keeps no such files (pgvector's index lives in the database).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from util_kb import ZERO_INTEGRITY, add_behind_back, article_problems, fake_article, index_problems, open_store

from index.extract import Document
from index.kb import KnowledgeBase
from index.store import DuplicateArticle, Store
from index.vectors import INDEX_FILE, META_FILE, VectorIndex

ROOT = Path(__file__).resolve().parents[1]
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384

TRAM = Document(
    title="Straßenbahn in Lindenau",
    text="Lindenau eröffnet die Straßenbahnlinie 4. Die Strecke ist 7,2 Kilometer lang. Sie kostet 88 Mio. Euro.",
)
BAKERY = Document(
    title="Bäckerei Morgenrot schließt",
    text="Die Bäckerei Morgenrot in der Altstadt schließt Ende Juni. Die Inhaberin findet keinen Nachfolger.",
)
HARBOUR = Document(
    title="Hafenfest in Quillsby",
    text="Beim Hafenfest in Quillsby kamen 40.000 Besucher. Die Feuerwerksshow wurde wegen Sturm abgesagt.",
)


@pytest.fixture
def store(engine_settings):
    s = open_store(engine_settings)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path):
    s = Store(tmp_path / "store.db")
    yield s
    s.close()


# --- the store ------------------------------------------------------------------------------------


def test_wal_mode_is_on(sqlite_store, tmp_path):
    store = sqlite_store
    assert store.reader().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Persistent in the file: a plain connection (another process) sees WAL too.
    plain = sqlite3.connect(tmp_path / "store.db")
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        plain.close()


def test_failed_write_leaves_nothing(store):
    rng = np.random.default_rng(0)
    fake_article(store, 1, 3, MODEL, DIM, rng)
    before = (store.counts(), store.version())
    article = {"title": "Kaputt", "url": None, "source": "test", "text": "Ein anderer Text.", "language": "de"}
    chunks = [{"position": i, "text": "x", "start": 0, "end": 1} for i in range(3)]
    # Two vectors for three chunks: the third chunk's insert fails after two went in.
    with pytest.raises(ValueError):
        store.add_article(article, chunks, rng.standard_normal((2, DIM)), MODEL, [("k", "x")] * 3)
    assert (store.counts(), store.version()) == before
    assert store.integrity() == ZERO_INTEGRITY
    # A duplicate is refused inside the same transaction, leaving nothing either.
    existing = store.article(1)
    with pytest.raises(DuplicateArticle, match="already present as #1"):
        store.add_article(
            {**article, "text": existing.text}, chunks, rng.standard_normal((3, DIM)), MODEL, [("k", "x")] * 3
        )
    assert (store.counts(), store.version()) == before


class _CommitBetweenStatements:
    """A reader connection that lets another writer commit right after its n-th SELECT."""

    def __init__(self, conn, after: int, write):
        self._conn = conn
        self._after = after
        self._write = write
        self.in_transaction = getattr(conn, "in_transaction", None)

    def __getattr__(self, name: str):  # PostgreSQL's snapshot asks the connection for its state
        return getattr(self._conn, name)

    def execute(self, sql, *args):
        result = self._conn.execute(sql, *args)
        if sql.lstrip().upper().startswith("SELECT") and self._write is not None:
            if self._after == 0:
                write, self._write = self._write, None
                result = _Materialized(result.fetchall())
                write()
            self._after -= 1
        self.in_transaction = getattr(self._conn, "in_transaction", None)
        return result


class _Materialized:
    def __init__(self, rows):
        self.rows = rows

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self):
        return self.rows


@pytest.mark.parametrize(("read", "after"), [("counts", n) for n in range(2)] + [("integrity", n) for n in range(6)])
def test_multi_statement_reads_are_one_snapshot(store, engine_settings, monkeypatch, read, after):
    """A commit landing between two statements of one read must not show half an article.

    Before the fix counts() returned 0 articles with 5 chunks here, and integrity() an FTS mismatch.
    """
    rng = np.random.default_rng(1)
    writer = open_store(engine_settings)
    real = store.reader()
    proxy = _CommitBetweenStatements(real, after, lambda: fake_article(writer, 1, 5, MODEL, DIM, rng))
    monkeypatch.setattr(store, "reader", lambda: proxy)
    result = getattr(store, read)()
    writer.close()
    if read == "counts":
        assert result["chunks"] == result["embeddings"], result
        assert result in ({"articles": 0, "chunks": 0, "embeddings": 0}, {"articles": 1, "chunks": 5, "embeddings": 5})
    else:
        assert result == ZERO_INTEGRITY


PER_ARTICLE = (
    "SELECT a.id, (SELECT count(*) FROM chunks c WHERE c.article_id = a.id), "
    "(SELECT count(*) FROM embeddings e JOIN chunks c ON c.id = e.chunk_id WHERE c.article_id = a.id) "
    "FROM articles a"
)


def test_reader_thread_never_sees_half_written_article(engine_settings):
    """A reader polling while a writer adds articles of 7 chunks each only ever sees whole articles."""
    writer = open_store(engine_settings)
    reader = open_store(engine_settings)
    done = threading.Event()
    seen: list[dict] = []
    bad: list[str] = []

    def poll():
        while not done.is_set():
            counts = reader.counts()
            seen.append(counts)
            if counts["chunks"] != counts["embeddings"] or counts["chunks"] != 7 * counts["articles"]:
                bad.append(f"counts {counts}")
            integrity = reader.integrity()
            if integrity != ZERO_INTEGRITY:
                bad.append(f"integrity {integrity}")
            # One statement is one snapshot: every article it shows has all its chunks and vectors.
            rows = reader.reader().execute(PER_ARTICLE).fetchall()
            bad.extend(f"article {r}" for r in rows if r[1] != 7 or r[2] != 7)

    thread = threading.Thread(target=poll)
    thread.start()
    rng = np.random.default_rng(2)
    try:
        for n in range(80):
            fake_article(writer, n, 7, MODEL, DIM, rng)
            if n % 10 == 9:  # removals are transactions too
                writer.remove_article(n)
    finally:
        done.set()
        thread.join()
        writer.close()
        reader.close()
    assert not bad, bad[:5]
    assert len(seen) > 20, "the reader should have polled while the writer wrote"
    assert len({c["articles"] for c in seen}) > 5, "the reader should have seen several states"


def test_ids_are_never_reused_after_removing_the_newest(store, engine_settings):
    """SQLite would give a removed newest row's id to the next insert; a stale FAISS index (or a
    citation) holding that id would then mean a different passage."""
    rng = np.random.default_rng(3)
    first_id, first_chunks = fake_article(store, 1, 3, MODEL, DIM, rng)
    store.remove_article(first_id)
    second_id, second_chunks = fake_article(store, 2, 3, MODEL, DIM, rng)
    assert second_id != first_id
    assert not set(second_chunks) & set(first_chunks)
    # Also across reopening the store.
    store.remove_article(second_id)
    store.close()
    reopened = open_store(engine_settings)
    try:
        third_id, third_chunks = fake_article(reopened, 3, 3, MODEL, DIM, rng)
        assert third_id > second_id and min(third_chunks) > max(second_chunks)
    finally:
        reopened.close()


# --- FAISS ----------------------------------------------------------------------------------------


def _reopen(settings, embedder) -> KnowledgeBase:
    return KnowledgeBase(settings, embedder=embedder)


def _saved_kb(settings, embedder, docs=(TRAM, BAKERY)) -> None:
    kb = _reopen(settings, embedder)
    for doc in docs:
        kb.add(doc)
    kb.close()


def _flip_vector_bytes(path, rng):
    data = bytearray(path.read_bytes())
    # Past FAISS's headers, inside the stored vectors: FAISS reads this without complaint.
    start = len(data) // 3
    for i in range(start, start + 64):
        data[i] = rng.randrange(256)
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "index deleted": lambda d, rng: (d / INDEX_FILE).unlink(),
    "sidecar deleted": lambda d, rng: (d / META_FILE).unlink(),
    "random bytes": lambda d, rng: (d / INDEX_FILE).write_bytes(rng.randbytes((d / INDEX_FILE).stat().st_size)),
    "flipped vector bytes": lambda d, rng: _flip_vector_bytes(d / INDEX_FILE, rng),
    "truncated": lambda d, rng: (d / INDEX_FILE).write_bytes((d / INDEX_FILE).read_bytes()[:-1000]),
    "empty file": lambda d, rng: (d / INDEX_FILE).write_bytes(b""),
    "sidecar garbage": lambda d, rng: (d / META_FILE).write_text("{not json"),
    "sidecar not an object": lambda d, rng: (d / META_FILE).write_text("[1, 2]"),
}


@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_damaged_index_is_detected_and_rebuilt(settings, embedder, caplog, damage):
    _saved_kb(settings, embedder)
    data_dir = Path(settings.data_dir)
    CORRUPTIONS[damage](data_dir, random.Random(damage))
    kb = _reopen(settings, embedder)
    with caplog.at_level(logging.WARNING, logger="index.vectors"):
        status = kb.open()
    assert status == "rebuilt"
    if damage not in ("index deleted", "sidecar deleted"):
        assert any("FAISS index unusable" in r.getMessage() for r in caplog.records), caplog.text
    assert index_problems(kb) == []
    assert kb.search("Wie lang ist die Strecke der Straßenbahn?", k=1)[0].title == TRAM.title
    kb.close()
    # The rebuilt index was saved and now loads as it is.
    again = _reopen(settings, embedder)
    assert again.open() == "loaded"
    assert index_problems(again) == []
    again.close()


def test_index_from_another_model_is_rebuilt(settings, embedder, caplog):
    _saved_kb(settings, embedder)
    data_dir = Path(settings.data_dir)
    meta = json.loads((data_dir / META_FILE).read_text())
    (data_dir / META_FILE).write_text(json.dumps({**meta, "model": "other/model", "dim": 768}))
    kb = _reopen(settings, embedder)
    with caplog.at_level(logging.WARNING, logger="index.vectors"):
        assert kb.open() == "rebuilt"
    assert "another model" in caplog.text
    assert index_problems(kb) == []
    kb.close()


def test_index_with_another_dimension_is_rebuilt(settings, embedder, caplog):
    """A 16-dimensional index saved properly, its sidecar claiming the configured model."""
    _saved_kb(settings, embedder)
    kb = _reopen(settings, embedder)
    store_id = kb.store.store_id()
    foreign = VectorIndex(kb.data_dir, settings.search, embedder.model_id, 16)
    foreign.add(np.array([1, 2, 3]), np.random.default_rng(4).standard_normal((3, 16)))
    foreign.version = kb.store.version()
    foreign.store_id = store_id
    foreign.save()
    meta = json.loads((kb.data_dir / META_FILE).read_text())
    (kb.data_dir / META_FILE).write_text(json.dumps({**meta, "dim": embedder.dim}))
    with caplog.at_level(logging.WARNING, logger="index.vectors"):
        assert kb.open() == "rebuilt"
    assert index_problems(kb) == []
    kb.close()


def test_index_left_from_another_database_is_rebuilt(settings, embedder):
    """The database was deleted and refilled to the same version and count; the old FAISS file stayed."""
    _saved_kb(settings, embedder, [TRAM])
    data_dir = Path(settings.data_dir)
    for name in ("articlebot.db", "articlebot.db-wal", "articlebot.db-shm"):
        (data_dir / name).unlink(missing_ok=True)
    saved_index = {name: (data_dir / name).read_bytes() for name in (INDEX_FILE, META_FILE)}
    _saved_kb(settings, embedder, [BAKERY])  # same version (1) and vector count as before
    for name, data in saved_index.items():
        (data_dir / name).write_bytes(data)
    kb = _reopen(settings, embedder)
    assert kb.open() == "rebuilt"
    assert index_problems(kb) == []
    assert kb.search("Wer schließt in der Altstadt?", k=1, mode="dense")[0].title == BAKERY.title
    kb.close()


def test_stale_index_is_synced_on_open(settings, embedder):
    _saved_kb(settings, embedder, [TRAM])
    kb = _reopen(settings, embedder)
    add_behind_back(kb.data_dir, embedder, HARBOUR, settings)
    assert kb.open() == "synced"
    assert index_problems(kb) == []
    hits = kb.search("Wie viele Besucher kamen zum Hafenfest?", k=1, mode="dense")
    assert hits[0].title == HARBOUR.title
    kb.close()
    again = _reopen(settings, embedder)
    assert again.open() == "loaded"
    again.close()


def test_running_kb_follows_another_writer(engine_settings, embedder):
    """The bot (kb) keeps running while another process (other) adds and removes articles."""
    kb = _reopen(engine_settings, embedder)
    tram = kb.add(TRAM)
    assert kb.open() in ("rebuilt", "loaded")
    other = _reopen(engine_settings, embedder)
    other.remove(tram.article_id)
    other.add(HARBOUR)
    other.close()
    # The next search notices the new version and syncs: no passage of the removed article, and
    # the new one is found with its own vectors (not those of an old id).
    hits = kb.search("Straßenbahn Lindenau Kilometer", k=5, mode="dense")
    assert all(h.article_id != tram.article_id for h in hits)
    assert kb.search("Besucher beim Hafenfest", k=1, mode="dense")[0].title == HARBOUR.title
    assert index_problems(kb) == []
    # A write of its own after someone else's: applied by syncing, not by a blind add.
    other = _reopen(engine_settings, embedder)
    other.add(TRAM)
    other.close()
    kb.add(BAKERY)
    assert index_problems(kb) == []
    kb.close()


def test_remove_deletes_vectors_from_the_index_and_the_store(engine_settings, embedder):
    kb = _reopen(engine_settings, embedder)
    tram = kb.add(TRAM)
    kb.add(BAKERY)
    chunk_ids = [c.id for c in kb.store.article_chunks(tram.article_id)]
    kb.remove(tram.article_id)
    assert not np.isin(chunk_ids, kb.vectors.ids()).any()
    assert kb.store.vectors_for(chunk_ids)[0].size == 0
    assert kb.store.chunks_by_id(chunk_ids) == {}
    assert kb.store.lexical_search(["lindenau", "strassenbahn"], 10) == []
    assert kb.store.integrity() == ZERO_INTEGRITY
    assert article_problems(kb) == []
    assert index_problems(kb) == []
    kb.close()
    again = _reopen(engine_settings, embedder)
    assert again.open() == "loaded"
    assert not np.isin(chunk_ids, again.vectors.ids()).any()
    assert all(h.article_id != tram.article_id for h in again.search("Straßenbahn Lindenau", k=5))
    again.close()


def test_concurrent_syncs_add_each_vector_once(engine_settings, embedder):
    """Two questions arriving together after a CLI import both find the index stale."""
    kb = _reopen(engine_settings, embedder)
    kb.add(TRAM)
    kb.open()
    rng = np.random.default_rng(5)
    writer = open_store(engine_settings)
    for n in range(30):
        fake_article(writer, n, 4, embedder.model_id, embedder.dim, rng)
    writer.close()
    barrier = threading.Barrier(4)

    def sync():
        barrier.wait()
        kb.vectors.sync(kb.store)

    threads = [threading.Thread(target=sync) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert index_problems(kb) == []
    kb.close()


def test_article_problems_helper_sees_a_half_article(store):
    """The crash tests rely on article_problems(); make sure it can fail."""
    rng = np.random.default_rng(6)
    fake_article(store, 1, 3, MODEL, DIM, rng)

    class _KB:
        pass

    fake = _KB()
    fake.store = store
    assert article_problems(fake) == []
    store._write_conn.execute("DELETE FROM embeddings WHERE chunk_id = (SELECT min(id) FROM chunks)")
    assert article_problems(fake) and store.integrity()["chunks_without_vector"] == 1
    if isinstance(store, Store):
        return
    # PostgreSQL's lexical bookkeeping: a lost posting shows in the term counts.
    fake_article(store, 2, 2, MODEL, DIM, rng)
    assert len(article_problems(fake)) == 1
    store._write_conn.execute("DELETE FROM postings WHERE term = 'thema2' AND chunk_id = (SELECT max(id) FROM chunks)")
    assert any("passage count is off" in p for p in article_problems(fake))


def test_concurrent_writers_in_one_process(engine_settings, embedder):
    """The bot adds and removes from several worker threads: every write lands once, saves never collide."""
    settings = engine_settings
    kb = _reopen(settings, embedder)
    kb.open()
    docs = [
        Document(
            title=f"Meldung {i}", text=f"Die Gemeinde Ortheim{i} baut eine neue Brücke Nummer {i}. Sie kostet viel."
        )
        for i in range(24)
    ]
    prepared = kb.prepare(docs)  # embedding once, outside the race
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(items):
        try:
            barrier.wait()
            for item in items:
                result = kb.commit(item)
                if result.article_id % 3 == 0:
                    kb.remove(result.article_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(prepared[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert index_problems(kb) == []
    kb.close()
    again = _reopen(settings, embedder)
    assert again.open() == "loaded"
    assert index_problems(again) == []
    again.close()


# --- re-chunking (reindex with a smaller window) -------------------------------------------------------


def _passages(article_id: int, generation: int, count: int) -> tuple[list[dict], list[tuple[str, str]]]:
    texts = [f"Generation{generation} Artikel{article_id} Absatz{i}." for i in range(count)]
    chunks = [{"position": i, "text": t, "start": 0, "end": len(t)} for i, t in enumerate(texts)]
    return chunks, [(f"titel{article_id}", t.lower()) for t in texts]


def test_replace_chunks_swaps_an_articles_passages_in_one_write(store):
    rng = np.random.default_rng(7)
    first, first_chunks = fake_article(store, 1, 3, MODEL, DIM, rng)
    fake_article(store, 2, 2, MODEL, DIM, rng)
    # An older store may lack the id high-water mark: new ids must still pass every old one.
    store._write_conn.execute("DELETE FROM meta WHERE key = 'last_chunks_id'")
    before = (store.counts(), store.version())
    chunks, fts = _passages(first, 1, 4)
    with pytest.raises(ValueError):  # three vectors for four passages: fails after three inserts
        store.replace_chunks(first, chunks, rng.standard_normal((3, DIM)), fts, MODEL)
    assert (store.counts(), store.version()) == before
    assert [c.id for c in store.article_chunks(first)] == first_chunks

    highest = int(store.chunk_ids().max())
    old, new = store.replace_chunks(first, chunks, rng.standard_normal((4, DIM)), fts, MODEL)
    assert old == first_chunks and min(new) > highest
    assert [c.id for c in store.article_chunks(first)] == new
    assert store.version() == before[1] + 1
    assert store.integrity() == ZERO_INTEGRITY
    assert {chunk_id for chunk_id, _ in store.lexical_search(["generation1"], 10)} == set(new)
    assert store.vectors_for(first_chunks)[0].size == 0


# Only numpy and the store in the child: it starts in a fraction of a second.
CHILD = """
import sys
import numpy as np

if sys.argv[1].startswith("postgresql://"):
    from index.pg_store import PgStore
    from index.settings import StorageSettings

    store = PgStore(StorageSettings(engine="postgres", dsn=sys.argv[1]))
else:
    from index.store import Store

    store = Store(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
generation = int(sys.argv[2])
while True:
    generation += 1
    for article_id in (1, 2, 3):
        count = 2 + (generation + article_id) % 5
        chunks, fts = _passages(article_id, generation, count)
        store.replace_chunks(article_id, chunks, rng.standard_normal((count, 384)), fts, "m")
"""
CHILD = inspect.getsource(_passages) + CHILD


def test_replace_chunks_killed_leaves_old_or_new_passages_complete(engine_settings):
    """SIGKILL while articles are re-chunked over and over: each holds one generation, whole."""
    store = open_store(engine_settings)
    where = engine_settings.storage.dsn if engine_settings.storage.engine == "postgres" else str(store.path)
    rng = np.random.default_rng(8)
    for n in (1, 2, 3):
        fake_article(store, n, 3, "m", DIM, rng)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    seen_ids = set(store.chunk_ids().tolist())
    for run in range(6):
        start = store.version()
        child = subprocess.Popen([sys.executable, "-c", CHILD, where, str(run * 100_000)], env=env)
        try:
            while store.version() == start:
                assert child.poll() is None, "the re-chunking process died by itself"
                time.sleep(0.005)
            time.sleep(random.Random(run).uniform(0, 0.3))
        finally:
            child.kill()
            child.wait()
        assert store.integrity() == ZERO_INTEGRITY
        assert article_problems(SimpleNamespace(store=store)) == []
        for article_id in (1, 2, 3):
            chunks = store.article_chunks(article_id)
            generations = {c.text.split()[0] for c in chunks}
            assert len(generations) == 1, f"article {article_id} mixes passages: {generations}"
            assert [c.position for c in chunks] == list(range(len(chunks)))
            if generations != {"Satz"}:  # re-chunked at least once: the count its generation wrote
                generation = int(generations.pop().removeprefix("Generation"))
                assert len(chunks) == 2 + (generation + article_id) % 5
        fresh = set(store.chunk_ids().tolist()) - seen_ids
        assert fresh and min(fresh) > max(seen_ids), "a re-chunked passage took an id used before"
        seen_ids |= fresh
    store.close()
