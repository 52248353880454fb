"""Hybrid retrieval: FAISS dense top-k and FTS5 BM25 top-k, fused into one ranking.

Two fusions (``SearchSettings.fusion``):

- ``"score"`` (default): ``dense_weight * cosine + lexical_weight * bm25 / best_bm25`` over the
  union of both candidate lists. BM25 is divided by the query's best BM25 (its scale depends on the
  query); cosine is already on a fixed scale. A candidate the dense side did not return gets the
  dense side's last (lowest) score, which bounds its true cosine from above.
- ``"rrf"``: weighted reciprocal rank fusion, ``weight / (rrf_k + rank)`` summed over both lists.

Score fusion keeps how *much* better one passage matched, which rank fusion throws away: with the
bundled English model (weak on German) equal-weight RRF lets a poor dense ranking outvote a
confident BM25 ranking. Measured on German XQuAD in BENCHMARKS.md ("Retrieval (issue 3)").

Fusion knows the languages. The question's language and every article's language are detected
(``lexical.detect_language``). BM25 can only match words the question shares with the article, so
for an article in another language the lexical evidence comes from a second query made only of the
question's names and numbers (``lexical.cross_language_query``), whose hits in such articles are
weighted by ``cross_language_lexical_factor``; hits of the full query count only in articles of the
question's language. The second query runs only when a candidate is in another language. Measured
in BENCHMARKS.md ("Cross-lingual retrieval (issue 6)"): full-query BM25 across languages hurts,
names and numbers at a low weight help.
"""

from __future__ import annotations

from dataclasses import dataclass

from .lexical import cross_language_query, detect_language, fts_query
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


def score_fusion(
    dense: list[tuple[int, float]],
    lexical: list[tuple[int, float]],
    settings: SearchSettings,
    lexical_weight_for=None,
) -> list[tuple[int, float]]:
    """Weighted sum of cosine and query-normalised BM25 (see the module docstring)."""
    dense_scores = dict(dense)
    floor = min(dense_scores.values()) if dense_scores else 0.0
    best = max((score for _, score in lexical), default=0.0)
    lexical_scores = {chunk_id: score / best for chunk_id, score in lexical} if best > 0 else {}
    scores: dict[int, float] = {}
    for chunk_id in dict.fromkeys([c for c, _ in dense] + [c for c, _ in lexical]):
        weight = lexical_weight_for(chunk_id) if lexical_weight_for else settings.lexical_weight
        score = weight * lexical_scores.get(chunk_id, 0.0)
        if dense_scores:
            score += settings.dense_weight * dense_scores.get(chunk_id, floor)
        scores[chunk_id] = score
    return sorted(scores.items(), key=lambda item: -item[1])


def fuse(
    dense: list[tuple[int, float]],
    lexical: list[tuple[int, float]],
    settings: SearchSettings,
    lexical_weight_for=None,
) -> list[tuple[int, float]]:
    if settings.fusion == "rrf":
        return rrf(dense, lexical, settings, lexical_weight_for)
    if settings.fusion == "score":
        return score_fusion(dense, lexical, settings, lexical_weight_for)
    raise ValueError(f"unknown fusion {settings.fusion!r} (known: score, rrf)")


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

    def same_language(chunk_id: int) -> bool:
        record = records.get(chunk_id)
        return record is None or record.language == query_language

    if mode == "hybrid" and not all(same_language(c) for c in candidates):
        lexical = _language_aware(store, query, lexical, records, same_language, settings)

    def lexical_weight_for(chunk_id: int) -> float:
        factor = 1.0 if same_language(chunk_id) else settings.cross_language_lexical_factor
        return settings.lexical_weight * factor

    fused = fuse(dense, lexical, settings, lexical_weight_for)
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


def _language_aware(store: Store, query: str, lexical, records: dict, same_language, settings: SearchSettings):
    """Full-query hits in the question's language, names-and-numbers hits in the others.

    Each list is scaled by its own best BM25 (the two queries' scores are not comparable) and the
    two are merged by that scaled score, which both fusions then read.
    """
    own = [(c, s) for c, s in lexical if same_language(c)]
    match = cross_language_query(query) if settings.cross_language_lexical_factor > 0 else None
    other = [(c, s) for c, s in store.lexical_search(match, settings.lexical_k)] if match else []
    missing = [c for c, _ in other if c not in records]
    if missing:
        records.update(store.chunks_by_id(missing))
    other = [(c, s) for c, s in other if not same_language(c)]
    merged = [(c, s) for part in (own, other) if part for c, s in _scaled(part)]
    return sorted(merged, key=lambda item: -item[1])


def _scaled(hits: list[tuple[int, float]]) -> list[tuple[int, float]]:
    best = max(s for _, s in hits)
    return [(c, s / best if best > 0 else 0.0) for c, s in hits]
