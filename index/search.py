"""Hybrid retrieval: FAISS dense top-k and FTS5 BM25 top-k, fused by weighted reciprocal rank.

The lexical side is weighted down when the question's language differs from the article's:
BM25 can only match words the question shares with the article.
"""

from __future__ import annotations

from dataclasses import dataclass

from .lexical import detect_language, fts_query
from .settings import SearchSettings
from .store import Store


@dataclass
class SearchHit:
    chunk_id: int
    article_id: int
    title: str
    url: str | None
    text: str
    score: float
    start: int
    end: int
    language: str
    dense_score: float | None = None
    lexical_score: float | None = None


def rrf(
    dense: list[tuple[int, float]],
    lexical: list[tuple[int, float]],
    settings: SearchSettings,
    lexical_weight_for=None,
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion; ``lexical_weight_for(chunk_id)`` may vary the lexical weight."""
    scores: dict[int, float] = {}
    for rank, (chunk_id, _) in enumerate(dense):
        scores[chunk_id] = settings.dense_weight / (settings.rrf_k + rank + 1)
    for rank, (chunk_id, _) in enumerate(lexical):
        weight = lexical_weight_for(chunk_id) if lexical_weight_for else settings.lexical_weight
        scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (settings.rrf_k + rank + 1)
    return sorted(scores.items(), key=lambda item: -item[1])


def lexical_search(store: Store, query: str, k: int) -> list[tuple[int, float]]:
    match = fts_query(query)
    return store.lexical_search(match, k) if match else []


def hybrid_search(
    store: Store,
    dense: list[tuple[int, float]],
    query: str,
    k: int,
    settings: SearchSettings,
    mode: str = "hybrid",
) -> list[SearchHit]:
    lexical = lexical_search(store, query, settings.lexical_k) if mode != "dense" else []
    if mode == "lexical":
        dense = []
    candidates = set(c for c, _ in dense) | set(c for c, _ in lexical)
    records = store.chunks_by_id(list(candidates))
    query_language = detect_language(query)

    def lexical_weight_for(chunk_id: int) -> float:
        record = records.get(chunk_id)
        same = record is None or record.language == query_language
        return settings.lexical_weight * (1.0 if same else settings.cross_language_lexical_factor)

    fused = rrf(dense, lexical, settings, lexical_weight_for)
    dense_scores, lexical_scores = dict(dense), dict(lexical)
    hits = []
    for chunk_id, score in fused:
        record = records.get(chunk_id)
        if record is None:  # removed between the index lookup and now
            continue
        hits.append(
            SearchHit(
                chunk_id=chunk_id,
                article_id=record.article_id,
                title=record.title,
                url=record.url,
                text=record.text,
                score=score,
                start=record.start,
                end=record.end,
                language=record.language,
                dense_score=dense_scores.get(chunk_id),
                lexical_score=lexical_scores.get(chunk_id),
            )
        )
        if len(hits) == k:
            break
    return hits
