"""Helpers for the reliability tests: consistency checks of a knowledge base, writes behind its back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.engine import ArticleStore
from index.extract import Document
from index.kb import KnowledgeBase
from index.lexical import analyze
from index.settings import IndexSettings
from index.store import Store

ZERO_INTEGRITY = {
    "chunks_without_article": 0,
    "articles_without_chunks": 0,
    "chunks_without_vector": 0,
    "vectors_without_chunk": 0,
    "fts_mismatch": 0,
}


def open_store(settings: IndexSettings) -> ArticleStore:
    """A store of its own on the database ``settings`` name (another connection, as another process has)."""
    if settings.storage.engine == "postgres":
        from index.pg_store import PgStore

        return PgStore(settings.storage)
    from index.kb import DB_FILE

    return Store(Path(settings.data_dir) / DB_FILE)


def index_problems(kb: KnowledgeBase) -> list[str]:
    """Everything that makes the vector index disagree with the store (empty list: they agree).

    pgvector's index is the stored vectors themselves: only the ids it answers from are compared.
    """
    problems = []
    vectors = kb.vectors
    ids = vectors.ids()
    if len(ids) != len(np.unique(ids)):
        problems.append(f"duplicate ids in FAISS: {len(ids) - len(np.unique(ids))}")
    stored = kb.store.chunk_ids()
    if not np.array_equal(np.sort(np.unique(ids)), stored):
        missing = np.setdiff1d(stored, ids)[:10].tolist()
        extra = np.setdiff1d(ids, stored)[:10].tolist()
        problems.append(f"FAISS ids differ from chunk ids: missing {missing}, extra {extra}")
        return problems
    if len(stored) and hasattr(vectors, "_index"):
        store_ids, store_vectors = kb.store.vectors_for(stored.tolist())
        faiss_vectors = np.vstack([vectors._index.reconstruct(int(i)) for i in store_ids])
        wrong = store_ids[~np.all(faiss_vectors == store_vectors, axis=1)]
        if len(wrong):
            problems.append(f"FAISS holds other vectors than SQLite for chunks {wrong[:10].tolist()}")
    return problems


def article_problems(kb: KnowledgeBase) -> list[str]:
    """Articles that are not complete: each needs chunks, one vector per chunk and one FTS row per chunk
    (in PostgreSQL also its postings, and term and token counts that match them)."""
    if kb.store.__class__.__name__ == "PgStore":
        return _pg_article_problems(kb.store)
    conn = kb.store.reader()
    problems = []
    rows = conn.execute(
        "SELECT a.id, count(c.id), count(e.chunk_id), count(f.rowid) FROM articles a "
        "LEFT JOIN chunks c ON c.article_id = a.id "
        "LEFT JOIN embeddings e ON e.chunk_id = c.id "
        "LEFT JOIN chunks_fts f ON f.rowid = c.id GROUP BY a.id"
    ).fetchall()
    for article_id, chunks, embeddings, fts in rows:
        if not chunks or chunks != embeddings or chunks != fts:
            problems.append(f"article #{article_id}: {chunks} chunks, {embeddings} vectors, {fts} FTS rows")
    orphans = conn.execute("SELECT count(*) FROM chunks_fts WHERE rowid NOT IN (SELECT id FROM chunks)").fetchone()[0]
    if orphans:
        problems.append(f"{orphans} FTS rows without a chunk")
    return problems


def _pg_article_problems(store) -> list[str]:
    problems = []
    with store.snapshot() as conn:
        rows = conn.execute(
            "SELECT a.id, count(c.id), count(e.chunk_id), count(f.chunk_id) FROM articles a "
            "LEFT JOIN chunks c ON c.article_id = a.id "
            "LEFT JOIN embeddings e ON e.chunk_id = c.id "
            "LEFT JOIN lexical_docs f ON f.chunk_id = c.id GROUP BY a.id"
        ).fetchall()
        for article_id, chunks, embeddings, fts in rows:
            if not chunks or chunks != embeddings or chunks != fts:
                problems.append(f"article #{article_id}: {chunks} chunks, {embeddings} vectors, {fts} lexical rows")
        checks = {
            "lexical rows without a chunk": "SELECT count(*) FROM lexical_docs WHERE chunk_id NOT IN "
            "(SELECT id FROM chunks)",
            "postings without a lexical row": "SELECT count(*) FROM postings WHERE chunk_id NOT IN "
            "(SELECT chunk_id FROM lexical_docs)",
            "lexical rows without postings": "SELECT count(*) FROM lexical_docs d WHERE length > 0 AND NOT EXISTS "
            "(SELECT 1 FROM postings p WHERE p.chunk_id = d.chunk_id)",
            "terms whose passage count is off": "SELECT count(*) FROM (SELECT term, count(*) AS n FROM postings "
            "GROUP BY term) p FULL JOIN lexical_terms t USING (term) WHERE p.n IS DISTINCT FROM t.docs",
            "totals that are off": "SELECT count(*) FROM lexical_stats s WHERE s.docs != (SELECT count(*) FROM "
            "lexical_docs) OR s.tokens != (SELECT coalesce(sum(length), 0) FROM lexical_docs)",
        }
        for what, sql in checks.items():
            count = conn.execute(sql).fetchone()[0]
            if count:
                problems.append(f"{count} {what}")
    return problems


def add_behind_back(data_dir, embedder, doc: Document, settings=None) -> tuple[int, list[int]]:
    """Write an article to SQLite only, as another process that died before saving FAISS would."""
    from index.settings import IndexSettings

    other = KnowledgeBase(settings or IndexSettings(data_dir=str(data_dir)), embedder=embedder)
    try:
        (prepared,) = other.prepare([doc])
        chunks = [{"position": c.position, "text": c.text, "start": c.start, "end": c.end} for c in prepared.chunks]
        fts = [(" ".join(analyze(doc.title)), " ".join(analyze(c.text))) for c in prepared.chunks]
        article = {"title": doc.title, "url": doc.url, "source": "test", "text": doc.text, "language": "de"}
        return other.store.add_article(article, chunks, prepared.vectors, embedder.model_id, fts)
    finally:
        other.store.close()


def fake_article(store: ArticleStore, n: int, chunks: int, model: str, dim: int, rng: np.random.Generator):
    """A direct store write with random vectors (for tests about SQLite, not about search)."""
    text = " ".join(f"Satz {n}-{i} über Thema{n}." for i in range(chunks))
    parts, pos = [], 0
    for i in range(chunks):
        piece = f"Satz {n}-{i} über Thema{n}."
        start = text.index(piece, pos)
        parts.append({"position": i, "text": piece, "start": start, "end": start + len(piece)})
        pos = start + len(piece)
    vectors = rng.standard_normal((chunks, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    fts = [(f"titel{n}", " ".join(analyze(p["text"]))) for p in parts]
    article = {"title": f"Artikel {n}", "url": None, "source": "test", "text": text, "language": "de"}
    return store.add_article(article, parts, vectors, model, fts)
