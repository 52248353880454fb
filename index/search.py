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

Fusion knows the languages: the question's language and every article's language are detected
(``lexical.detect_language``), and an article in another language than the question gets its
lexical score weighted by ``cross_language_lexical_factor``. BM25 can only match the words the
question shares with such an article (names, numbers, loan words), which is weak evidence: at full
weight it pulls the ranking away from the multilingual dense side; at a low weight it still breaks
ties. Measured in BENCHMARKS.md ("Cross-lingual retrieval (issue 6)"), including the alternative of
a names-and-numbers-only query for other-language articles, which was not better.
"""

from __future__ import annotations

from dataclasses import dataclass

from .engine import ArticleStore
from .lexical import detect_language, query_terms
from .settings import SearchSettings


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


def lexical_search(
    store: ArticleStore, query: str, k: int, common_term_passages: int | None = None
) -> list[tuple[int, float]]:
    terms = query_terms(query)
    limit = SearchSettings.common_term_passages if common_term_passages is None else common_term_passages
    if len(terms) > 1 and store.chunk_id_bound() > limit:
        frequencies = store.document_frequencies(terms)
        kept = [t for t in terms if frequencies[t] <= limit]
        terms = kept or [min(terms, key=frequencies.__getitem__)]
    return store.lexical_search(terms, k) if terms else []


def hybrid_search(
    store: ArticleStore,
    dense: list[tuple[int, float]],
    query: str,
    k: int,
    settings: SearchSettings,
    mode: str = "hybrid",
    lexical: list[tuple[int, float]] | None = None,
    missing: list[int] | None = None,
) -> list[SearchHit]:
    """Fuse the dense list with BM25's (run here unless the caller already has it) into ``k`` hits.

    Candidates whose passage is gone by the time it is looked up are left out (and added to ``missing``).
    """
    if lexical is None:
        lexical = (
            lexical_search(store, query, settings.lexical_k, settings.common_term_passages) if mode != "dense" else []
        )
    if mode == "lexical":
        dense = []
    candidates = set(c for c, _ in dense) | set(c for c, _ in lexical)
    records = store.chunks_by_id(list(candidates))
    query_language = detect_language(query)

    def lexical_weight_for(chunk_id: int) -> float:
        record = records.get(chunk_id)
        same = record is None or record.language == query_language
        return settings.lexical_weight * (1.0 if same else settings.cross_language_lexical_factor)

    fused = fuse(dense, lexical, settings, lexical_weight_for)
    dense_scores, lexical_scores = dict(dense), dict(lexical)
    hits = []
    for chunk_id, score in fused:
        record = records.get(chunk_id)
        if record is None:  # removed between the index lookup and now
            if missing is not None:
                missing.append(chunk_id)
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
