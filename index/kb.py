"""KnowledgeBase: the one facade over store, embedder, vector index (FAISS, or pgvector) and lexical search.

Everything the bot and the CLI do to articles goes through here; nothing here knows Telegram.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .cache import LRU
from .chunking import Chunk, chunk_text
from .embedding import Embedder, configured_model, load_embedder
from .engine import AnswerLog, ArticleStore, Engine, RunLock, UpdateLedgerTable, VectorSearchIndex
from .engines import DB_FILE, open_engine
from .errors import SetupError
from .extract import MAX_TITLE_CHARS, Document, ExtractionError, require_length
from .fetch import fetch_document
from .lexical import analyze, detect_language
from .records import ArticleNotFound, ArticleRecord, ChunkRecord, DuplicateArticle, content_hash, normalize_url
from .search import SearchHit, hybrid_search, lexical_search
from .settings import IndexSettings

log = logging.getLogger(__name__)

# Saving the FAISS file after every write is cheap while small; beyond this it waits for close()
# and a restart catches up from SQLite (sync), which never needs re-embedding.
SAVE_EVERY_WRITE_BELOW = 100_000
# Question vectors kept: search and answerer embed the same question, and questions repeat.
QUERY_CACHE_SIZE = 256
SEARCH_ATTEMPTS = 3
# An article's language is told from its opening: a few thousand characters hold stop words enough.
LANGUAGE_SAMPLE_CHARS = 5000

__all__ = ["KnowledgeBase", "AddResult", "RefreshResult", "DuplicateArticle", "ArticleNotFound", "ExtractionError"]


@dataclass
class AddResult:
    article_id: int
    title: str
    chunks: int


class PassagePlace(NamedTuple):
    article_id: int
    number: int  # from 1, in text order
    total: int  # passages in the article


@dataclass
class RefreshResult:
    article_id: int
    title: str
    chunks: int
    # False when the text was the same as before: nothing was written.
    changed: bool


@dataclass
class Prepared:
    """An article chunked and embedded, ready for its single write transaction."""

    doc: Document
    chunks: list[Chunk]
    vectors: np.ndarray


def fts_terms(title: str, texts: list[str]) -> list[tuple[str, str]]:
    """(title terms, passage terms) per passage: what the FTS5 table holds, at add and at reindex alike."""
    title_terms = " ".join(analyze(title))
    return [(title_terms, " ".join(analyze(text))) for text in texts]


def chunk_rows(chunks: list[Chunk]) -> list[dict]:
    """The passages as the store writes them, at add, refresh and re-chunking alike."""
    return [{"position": c.position, "text": c.text, "start": c.start, "end": c.end} for c in chunks]


def retitled_texts(doc: Document) -> list[str]:
    """The texts the same article has when added again with a title of its own (``add FILE --title``):
    the file's first line then stays in the text, or was taken as the title before."""
    first, _, rest = doc.text.partition("\n")
    texts = [f"{doc.title}\n{doc.text}"]
    if rest.strip() and len(first) <= MAX_TITLE_CHARS:
        texts.append(rest)
    return texts


class KnowledgeBase:
    def __init__(self, settings: IndexSettings, embedder: Embedder | None = None):
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The engine and its tables, typed by their protocols (index.engine): SQLite with FAISS, or PostgreSQL.
        self.engine: Engine = open_engine(settings)
        self.store: ArticleStore = self.engine.article_store()
        self._embedder = embedder
        self._vectors: VectorSearchIndex | None = None
        self._open_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._query_vectors: LRU[str, np.ndarray] = LRU(QUERY_CACHE_SIZE)
        self.index_status = "not loaded"
        self.closed = False

    # --- lazily loaded parts (list/show/stats need neither the model nor FAISS) ----------------

    @property
    def embedder(self) -> Embedder:
        with self._open_lock:
            if self._embedder is None:
                self._embedder = load_embedder(self.settings.embedding)
        return self._embedder

    @property
    def vectors(self) -> VectorSearchIndex:
        embedder = self.embedder
        with self._open_lock:
            if self._vectors is None:
                vectors = self._new_vector_index(embedder)
                self._check_stored_model(embedder)
                self.index_status = vectors.load_or_rebuild(self.store)
                self._vectors = vectors
        return self._vectors

    def _new_vector_index(self, embedder: Embedder) -> VectorSearchIndex:
        return self.engine.vector_index(self.settings.search, embedder.model_id, embedder.dim)

    def _check_stored_model(self, embedder: Embedder) -> None:
        models = self.store.embedding_models()
        if models and models != [(embedder.model_id, embedder.dim)]:
            names = ", ".join(f"{m} ({d} dims)" for m, d in models)
            raise SetupError(
                f"the stored vectors were made by {names}, not by the configured {embedder.model_id}; "
                "run 'articlebot reindex' to re-embed them"
            )

    def open(self) -> str:
        """Load the model and index now (start-up), returning what happened to the index."""
        _ = self.vectors
        return self.index_status

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._vectors is not None:
            self._vectors.save()
        self.store.close()

    # --- adding -------------------------------------------------------------------------------

    def check_duplicate(self, doc: Document) -> None:
        found = self.store.find_duplicate(content_hash(doc.text), normalize_url(doc.url))
        for text in retitled_texts(doc):
            found = found or self.store.find_duplicate(content_hash(text), None)
        if found:
            raise DuplicateArticle(*found)

    def chunk(self, doc: Document) -> list[Chunk]:
        return self._chunk_text(doc.title, doc.text)

    def _chunk_text(self, title: str, text: str) -> list[Chunk]:
        """Passages of ``text`` within the current settings and the embedder's budget next to ``title``."""
        embedder = self.embedder
        return chunk_text(
            text,
            max_chars=self.settings.chunking.max_chars,
            min_chars=self.settings.chunking.min_chars,
            max_tokens=embedder.passage_budget(title),
            count_tokens=embedder.count_tokens,
        )

    def prepare(self, docs: list[Document]) -> list[Prepared]:
        """Chunk and embed several articles in one batch (the slow part, outside any transaction)."""
        chunked = [self.chunk(doc) for doc in docs]
        texts = [c.text for chunks in chunked for c in chunks]
        titles = [doc.title for doc, chunks in zip(docs, chunked, strict=True) for _ in chunks]
        vectors = self.embedder.embed_passages(texts, titles) if texts else np.zeros((0, self.embedder.dim))
        prepared, offset = [], 0
        for doc, chunks in zip(docs, chunked, strict=True):
            prepared.append(Prepared(doc, chunks, vectors[offset : offset + len(chunks)]))
            offset += len(chunks)
        return prepared

    def commit(self, item: Prepared, added_by: str | None = None) -> AddResult:
        doc = item.doc
        if not item.chunks:
            raise ExtractionError("the text contains nothing to index")
        article = {
            "title": doc.title,
            "url": doc.url,
            "source": doc.source,
            "published": doc.published,
            "added_by": added_by,
            "text": doc.text,
            "language": detect_language(doc.text[:LANGUAGE_SAMPLE_CHARS]),
        }
        fts_rows = fts_terms(doc.title, [c.text for c in item.chunks])
        chunks = chunk_rows(item.chunks)
        vectors = self.vectors
        article_id, chunk_ids = self.store.add_article(article, chunks, item.vectors, self.embedder.model_id, fts_rows)
        self._after_write(lambda: vectors.add(np.array(chunk_ids, dtype=np.int64), item.vectors))
        return AddResult(article_id, doc.title, len(chunk_ids))

    def add(self, doc: Document, added_by: str | None = None) -> AddResult:
        self.check_duplicate(doc)
        (prepared,) = self.prepare([doc])
        return self.commit(prepared, added_by)

    def add_many(
        self,
        docs: Iterable[Document],
        added_by: str | None = None,
        batch_size: int = 16,
        on_result: Callable[[Document, AddResult | Exception], None] | None = None,
    ) -> None:
        """Add articles in embedding batches; each article is still its own transaction."""
        batch: list[Document] = []

        def flush() -> None:
            for item in self.prepare(batch):
                try:
                    result: AddResult | Exception = self.commit(item, added_by)
                except (DuplicateArticle, ExtractionError) as exc:
                    result = exc
                if on_result:
                    on_result(item.doc, result)
            batch.clear()

        for doc in docs:
            try:
                self.check_duplicate(doc)
            except DuplicateArticle as exc:
                if on_result:
                    on_result(doc, exc)
                continue
            batch.append(doc)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        self.save_index()

    # --- updating -----------------------------------------------------------------------------

    def update(self, article_id: int) -> RefreshResult:
        """Fetch the article's URL again and refresh it if the text changed (the stored title stays)."""
        article = self.store.article(article_id)
        if not article.url or not article.url.startswith(("http://", "https://")):
            raise ExtractionError(f"article #{article_id} has no http(s) URL to fetch again")
        doc = require_length(
            fetch_document(article.url, self.settings.fetch, title=article.title), self.settings.ingest.min_chars
        )
        doc.url = article.url
        doc.published = doc.published or article.published
        return self.refresh(article_id, doc)

    def refresh(self, article_id: int, doc: Document) -> RefreshResult:
        """Give an article new text (and ``doc``'s title and date), keeping its id; nothing if unchanged.

        One transaction swaps article row, passages, vectors and FTS rows; the new passages get new
        ids. The new vectors enter FAISS before that commit and the old ones leave after it, so a
        search always finds one whole version: FAISS holds both for a moment, SQLite says which is live.
        """
        article = self.store.article(article_id)
        if content_hash(doc.text) == article.content_hash:
            return RefreshResult(article_id, article.title, article.chunk_count, changed=False)
        (item,) = self.prepare([doc])
        if not item.chunks:
            raise ExtractionError("the text contains nothing to index")
        fields = {
            "title": doc.title,
            "text": doc.text,
            "published": doc.published,
            "language": detect_language(doc.text[:LANGUAGE_SAMPLE_CHARS]),
        }
        chunks = chunk_rows(item.chunks)
        fts_rows = fts_terms(doc.title, [c.text for c in item.chunks])
        vectors = self.vectors
        first = self.store.reserve_chunk_ids(len(item.chunks))
        new_ids = np.arange(first, first + len(item.chunks), dtype=np.int64)
        vectors.add(new_ids, item.vectors)
        try:
            old_ids = self.store.refresh_article(
                article_id, fields, chunks, item.vectors, self.embedder.model_id, fts_rows, first
            )
        except BaseException:
            vectors.remove(new_ids.tolist())
            raise

        def apply() -> None:
            vectors.add(new_ids, item.vectors)  # again: a sync in between may have dropped them
            vectors.remove(old_ids)

        self._after_write(apply)
        return RefreshResult(article_id, doc.title, len(chunks), changed=True)

    def article_id_for_url(self, url: str | None) -> int | None:
        """The article stored under this URL (tracking parameters and fragments aside), if any."""
        return self.store.article_id_for_url(url)

    # --- removing -----------------------------------------------------------------------------

    def remove(self, article_id: int) -> ArticleRecord:
        article = self.store.article(article_id)
        vectors = self.vectors
        chunk_ids = self.store.remove_article(article_id)
        self._after_write(lambda: vectors.remove(chunk_ids))
        return article

    def _after_write(self, update: Callable[[], None]) -> None:
        """Apply a committed write to the vector index; if another process wrote meanwhile, sync instead."""
        vectors = self.vectors
        version = self.store.version()
        if version == vectors.version + 1:
            update()
            vectors.version = version
        else:
            vectors.sync(self.store)
        if vectors.count < SAVE_EVERY_WRITE_BELOW:
            vectors.save()

    def save_index(self) -> None:
        if self._vectors is not None:
            self._vectors.save()

    # --- reading ------------------------------------------------------------------------------

    def search(self, query: str, k: int | None = None, mode: str = "hybrid") -> list[SearchHit]:
        k = k or self.settings.search.k
        query = query.strip()
        if not query:
            return []
        # A write landing mid-search (a refresh swapping an article's passages) can leave the FAISS
        # or BM25 candidates naming passages that the final lookup no longer finds: search again.
        for _ in range(SEARCH_ATTEMPTS - 1):
            missing: list[int] = []
            hits = self._search(query, k, mode, missing)
            if not missing:
                return hits
        return self._search(query, k, mode)

    def _search(self, query: str, k: int, mode: str, missing: list[int] | None = None) -> list[SearchHit]:
        settings = self.settings.search
        # BM25 runs on another thread while the question is embedded and FAISS searched: SQLite,
        # ONNX and FAISS all release the GIL, so the two sides overlap instead of adding up.
        lexical = None
        if mode != "dense":
            lexical = self._lexical_pool().submit(
                lexical_search, self.store, query, settings.lexical_k, settings.common_term_passages
            )
        dense: list[tuple[int, float]] = []
        if mode != "lexical":
            vectors = self.vectors
            if self.store.version() != vectors.version:
                vectors.sync(self.store)  # another process (CLI import) wrote since we loaded
            dense = vectors.search(self.embed_query(query), settings.dense_k)
        lexical_hits = lexical.result() if lexical else []
        return hybrid_search(self.store, dense, query, k, settings, mode, lexical_hits, missing)

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector; the answerer asks for the one search just made, so it is kept."""
        cached = self._query_vectors.get_many([query])
        if query in cached:
            return cached[query]
        (vector,) = self.embedder.embed_queries([query])
        self._query_vectors.put_many([(query, vector)])
        return vector

    def _lexical_pool(self) -> ThreadPoolExecutor:
        with self._open_lock:
            if self._pool is None:
                # As many workers as Python gives a pool on this machine: concurrent questions from
                # the bot each get their BM25 thread, as they did when it ran in their own thread.
                self._pool = ThreadPoolExecutor(thread_name_prefix="bm25")
            return self._pool

    def article(self, article_id: int) -> ArticleRecord:
        return self.store.article(article_id)

    def passage_numbers(self, chunk_ids: Iterable[int]) -> dict[int, PassagePlace]:
        """Where each passage still stored sits in its article: what people are shown ("passage 3 of 7")
        instead of a global passage id."""
        found = self.store.chunks_by_id(list(dict.fromkeys(chunk_ids)))
        places: dict[int, PassagePlace] = {}
        for article_id in {c.article_id for c in found.values()}:
            ids = [c.id for c in self.store.article_chunks(article_id)]
            places.update((cid, PassagePlace(article_id, i, len(ids))) for i, cid in enumerate(ids, 1) if cid in found)
        return places

    def version(self) -> int:
        """Grows with every write: caches derived from the articles compare it to know they are stale."""
        return self.store.version()

    def counts(self) -> dict[str, int]:
        """Articles, passages ("chunks") and vectors held."""
        return self.store.counts()

    def term_passages(self, terms: list[str]) -> dict[str, int]:
        """How many passages hold each analysed term (the lexical index's document frequency)."""
        return self.store.document_frequencies(terms)

    @property
    def state_path(self) -> Path:
        """The SQLite file of the "sqlite" engine (tests and diagnostics read it directly)."""
        return self.data_dir / DB_FILE

    def update_ledger(self) -> UpdateLedgerTable:
        """The bot's update ledger, not yet opened (``open()`` on the thread that will use it).

        It lives in the engine's database beside the articles: one backup holds everything, and
        several bot processes on one PostgreSQL database share it.
        """
        return self.engine.update_ledger()

    def run_lock(self) -> RunLock:
        """The lock a bot process holds while it runs (``acquire(polling)`` says when it may not run)."""
        return self.engine.run_lock()

    def answer_log(self) -> AnswerLog:
        """The answers the bot gave and the votes on them (a connection of its own; the caller closes it)."""
        return self.engine.answer_log()

    def articles(self, limit: int | None = None, offset: int = 0) -> list[ArticleRecord]:
        return self.store.articles(limit, offset)

    def stats(self) -> dict:
        counts = self.store.counts()
        models = self.store.embedding_models()
        stats = {
            **counts,
            "data_dir": str(self.data_dir),
            "model": models[0][0] if models else self._model_name(),
            "dimension": models[0][1] if models else None,
            "index": None,
            "engine": self.engine.name,
            "database": self.engine.describe(),
            "db_bytes": self.engine.size_bytes(),
        }
        if self._vectors is not None:
            stats["index"] = {"kind": self._vectors.kind, "vectors": self._vectors.count, "status": self.index_status}
        return stats

    def _model_name(self) -> str:
        """With no vectors stored yet: the model that will make them (its exact id once it is loaded)."""
        return self._embedder.model_id if self._embedder is not None else configured_model(self.settings.embedding)

    # --- maintenance --------------------------------------------------------------------------

    def reindex(self, progress: Callable[[int, int], None] | None = None, rechunk: bool = False) -> dict:
        """Rebuild the vector index from the store; re-chunk articles whose passages no longer fit the embedder's
        window (with ``rechunk``: every article the current settings would cut differently), and
        re-embed the rest if the stored vectors came from another model."""
        embedder = self.embedder
        models = self.store.embedding_models()
        model_changed = bool(models) and models != [(embedder.model_id, embedder.dim)]
        rechunked, reembedded = self._refit(model_changed, progress, rechunk)
        analyzed = self._reanalyze()
        vectors = self._new_vector_index(embedder)
        vectors.rebuild(self.store)
        vectors.save()
        with self._open_lock:
            self._vectors = vectors
            self.index_status = "rebuilt"
        return {
            "vectors": vectors.count,
            "kind": vectors.kind,
            "reembedded": reembedded,
            "rechunked": rechunked,
            "analyzed": analyzed,
        }

    def _reanalyze(self) -> int:
        """Rewrite the FTS rows with the current analyzer, so analyzer improvements reach old articles."""
        rows = []
        for article in self.store.articles():
            chunks = self.store.article_chunks(article.id)
            terms = fts_terms(article.title, [c.text for c in chunks])
            rows.extend((c.id, *row) for c, row in zip(chunks, terms, strict=True))
        self.store.replace_fts(rows)
        return len(rows)

    def _refit(
        self, reembed: bool, progress: Callable[[int, int], None] | None, rechunk: bool = False
    ) -> tuple[int, int]:
        """Re-chunk the articles that need it (``_fresh_chunks``); re-embed the others if asked.

        Passages were cut for the window of the model (or ``max_tokens``) they were added with; a
        smaller window would silently truncate them. Returns (articles re-chunked, passages embedded).
        """
        articles = self.store.articles()
        kept: list[tuple[int, np.ndarray]] = []
        rechunked = embedded = 0
        for done, article in enumerate(articles, 1):
            chunks = self.store.article_chunks(article.id)
            fresh = self._fresh_chunks(article, chunks, rechunk)
            if fresh is not None:
                embedded += self._rechunk(article, fresh)
                rechunked += 1
            elif reembed:
                vectors = self.embedder.embed_passages([c.text for c in chunks], [article.title] * len(chunks))
                kept.extend(zip([c.id for c in chunks], vectors, strict=True))
            if progress and (reembed or rechunk):
                progress(done, len(articles))
        if reembed:
            self.store.replace_vectors(kept, self.embedder.model_id)
        return rechunked, embedded + len(kept)

    def _fresh_chunks(self, article: ArticleRecord, chunks: list[ChunkRecord], rechunk: bool) -> list[Chunk] | None:
        """New passages when the stored ones must go: too long for the window, or (``rechunk``) cut
        otherwise than the current settings cut; None when they stay."""
        if not rechunk and self._fits(article.title, chunks):
            return None
        fresh = self._chunk_text(article.title, article.text)
        if [(c.start, c.end) for c in fresh] == [(c.start, c.end) for c in chunks]:
            return None
        return fresh

    def _fits(self, title: str, chunks: list[ChunkRecord]) -> bool:
        """The chunker's own test (tokens per passage within the budget), so a fresh chunking always passes."""
        budget = self.embedder.passage_budget(title)
        return all(self.embedder.count_tokens(c.text) <= budget for c in chunks)

    def _rechunk(self, article: ArticleRecord, chunks: list[Chunk]) -> int:
        """Swap an article's passages for ``chunks``, with vectors and FTS rows, in one transaction."""
        texts = [c.text for c in chunks]
        vectors = self.embedder.embed_passages(texts, [article.title] * len(chunks))
        rows = chunk_rows(chunks)
        fts_rows = fts_terms(article.title, texts)
        self.store.replace_chunks(article.id, rows, vectors, fts_rows, self.embedder.model_id)
        return len(chunks)
