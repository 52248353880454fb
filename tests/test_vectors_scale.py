"""The FAISS index by corpus size: flat below the threshold, HNSW above; recall, float16, tombstones."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from index.settings import SearchSettings
from index.store import Store
from index.vectors import VectorIndex

MODEL = "test-model"
DIM = 48


def clustered(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    """Normalised vectors around a few hundred centres: the shape of real embeddings, not uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((300, dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fill(store: Store, vectors: np.ndarray, per_article: int = 50) -> list[list[int]]:
    """Articles of ``per_article`` passages each; returns each article's chunk ids."""
    out = []
    first = store.counts()["articles"]
    for a, start in enumerate(range(0, len(vectors), per_article), first):
        block = vectors[start : start + per_article]
        article = {"title": f"A{a}", "url": None, "source": "test", "text": f"article {a}", "language": "de"}
        chunks = [{"position": i, "text": f"p{i}", "start": 0, "end": 1} for i in range(len(block))]
        _, ids = store.add_article(article, chunks, block, MODEL, [("", "")] * len(block))
        out.append(ids)
    return out


@pytest.fixture(autouse=True)
def one_openmp_thread():
    # On a loaded 2-core machine OpenMP's spinning threads make tiny searches 50x slower.
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "db.sqlite")
    yield s
    s.close()


def open_index(tmp_path: Path, store: Store, **settings) -> VectorIndex:
    tmp_path.mkdir(parents=True, exist_ok=True)
    index = VectorIndex(tmp_path, SearchSettings(**settings), MODEL, DIM)
    index.load_or_rebuild(store)
    return index


def test_auto_chooses_flat_below_and_hnsw_from_the_threshold(tmp_path, store):
    fill(store, clustered(300))
    assert open_index(tmp_path / "a", store, hnsw_threshold=400).kind == "flat"
    assert open_index(tmp_path / "b", store, hnsw_threshold=300).kind == "hnsw"
    assert open_index(tmp_path / "c", store, index="hnsw", hnsw_threshold=10_000).kind == "hnsw"
    assert open_index(tmp_path / "d", store, index="flat", hnsw_threshold=10).kind == "flat"


def test_saved_index_is_rebuilt_when_the_corpus_outgrows_it(tmp_path, store):
    fill(store, clustered(200))
    index = open_index(tmp_path, store, hnsw_threshold=300)
    assert index.kind == "flat"
    index.save()
    fill(store, clustered(200, seed=1))
    reopened = VectorIndex(tmp_path, SearchSettings(hnsw_threshold=300), MODEL, DIM)
    assert reopened.load_or_rebuild(store) in ("rebuilt", "synced")  # synced: converted while adding
    assert reopened.kind == "hnsw" and reopened.count == 400
    reopened.save()
    small = VectorIndex(tmp_path, SearchSettings(hnsw_threshold=1000), MODEL, DIM)
    assert small.load_or_rebuild(store) == "rebuilt"  # 400 < 1000 / 2: back to exact search
    assert small.kind == "flat"


def test_hysteresis_keeps_hnsw_until_half_the_threshold(tmp_path, store):
    articles = fill(store, clustered(400))
    index = open_index(tmp_path, store, hnsw_threshold=300)
    assert index.kind == "hnsw"
    store.remove_article(store.articles()[0].id)  # 350 left: below the threshold, above half of it
    index.sync(store)
    index.save()
    reopened = VectorIndex(tmp_path, SearchSettings(hnsw_threshold=300), MODEL, DIM)
    reopened.load_or_rebuild(store)
    assert reopened.kind == "hnsw" and reopened.count == 400 - len(articles[-1])


def test_adding_past_the_threshold_converts_in_memory(tmp_path, store):
    fill(store, clustered(250))
    index = open_index(tmp_path, store, hnsw_threshold=300)
    assert index.kind == "flat"
    extra = clustered(100, seed=2)
    index.add(np.arange(10_000, 10_100), extra)
    assert index.kind == "hnsw" and index.count == 350
    (hit, score), *_ = index.search(extra[7], 1)
    assert hit == 10_007 and score == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("float16", [False, True])
def test_hnsw_recall_at_10_against_exact(tmp_path, store, float16):
    vectors = clustered(6000)
    fill(store, vectors, per_article=500)
    exact = open_index(tmp_path / "exact", store, index="flat")
    approx = open_index(tmp_path / "approx", store, index="hnsw", float16=float16)
    assert approx.float16 is float16
    queries = clustered(200, seed=7)
    recall = np.mean(
        [len({i for i, _ in approx.search(q, 10)} & {i for i, _ in exact.search(q, 10)}) / 10 for q in queries]
    )
    assert recall >= 0.95


def test_ef_search_grows_with_the_corpus_beyond_the_scale_point(tmp_path, store):
    fill(store, clustered(400))
    index = open_index(tmp_path, store, index="hnsw", hnsw_ef_search=64, hnsw_ef_scale_passages=100)
    assert index.ef_search() == 256  # 64 * 400 / 100
    index.settings.hnsw_ef_scale_passages = 1000  # below the scale point: the configured value
    assert index.ef_search() == 64
    index.settings.hnsw_ef_scale_passages = 0  # 0: fixed
    assert index.ef_search() == 64


def _distances_computed(index: VectorIndex, query: np.ndarray) -> int:
    faiss.cvar.hnsw_stats.reset()
    index.search(query, 10)
    return faiss.cvar.hnsw_stats.ndis


def test_search_uses_the_configured_ef_search_not_the_one_saved_with_the_index(tmp_path, store):
    vectors = clustered(2000)
    fill(store, vectors, per_article=500)
    open_index(tmp_path, store, index="hnsw", hnsw_ef_search=16).save()
    narrow = VectorIndex(tmp_path, SearchSettings(index="hnsw", hnsw_ef_search=16), MODEL, DIM)
    wide = VectorIndex(tmp_path, SearchSettings(index="hnsw", hnsw_ef_search=400), MODEL, DIM)
    assert narrow.load_or_rebuild(store) == wide.load_or_rebuild(store) == "loaded"
    assert _distances_computed(wide, vectors[0]) > 3 * _distances_computed(narrow, vectors[0])


def test_float16_halves_the_index_and_keeps_the_ranking(tmp_path, store):
    vectors = clustered(2000)
    fill(store, vectors, per_article=500)
    full = open_index(tmp_path / "fp32", store, index="flat")
    half = open_index(tmp_path / "fp16", store, index="flat", float16=True)
    assert half.float16 and not full.float16
    full.save()
    half.save()
    ratio = (tmp_path / "fp16" / "faiss.index").stat().st_size / (tmp_path / "fp32" / "faiss.index").stat().st_size
    assert 0.45 < ratio < 0.7  # vectors halve; the id map does not
    queries = clustered(100, seed=3)
    agree = np.mean(
        [len({i for i, _ in half.search(q, 10)} & {i for i, _ in full.search(q, 10)}) / 10 for q in queries]
    )
    assert agree >= 0.99


def test_float16_auto_halves_hnsw_and_keeps_flat_exact(tmp_path, store):
    # The default: float16 where the index is big (HNSW), fp32 exact search while small.
    assert SearchSettings().float16 == "auto"
    fill(store, clustered(300))
    flat = open_index(tmp_path / "flat", store, hnsw_threshold=400)
    hnsw = open_index(tmp_path / "hnsw", store, hnsw_threshold=300)
    assert flat.kind == "flat" and not flat.float16
    assert hnsw.kind == "hnsw" and hnsw.float16
    assert open_index(tmp_path / "off", store, index="hnsw", float16=False).float16 is False
    assert open_index(tmp_path / "on", store, index="flat", float16=True).float16 is True


def test_float16_auto_converts_to_half_precision_when_crossing_the_threshold(tmp_path, store):
    fill(store, clustered(250))
    index = open_index(tmp_path, store, hnsw_threshold=300)
    assert (index.kind, index.float16) == ("flat", False)
    index.add(np.arange(10_000, 10_100), clustered(100, seed=2))
    assert (index.kind, index.float16) == ("hnsw", True)


def test_saved_float16_hnsw_index_loads_under_auto(tmp_path, store):
    fill(store, clustered(300))
    open_index(tmp_path, store, index="hnsw", float16=True).save()
    reopened = VectorIndex(tmp_path, SearchSettings(index="hnsw"), MODEL, DIM)
    assert reopened.load_or_rebuild(store) == "loaded"
    explicit_fp32 = VectorIndex(tmp_path, SearchSettings(index="hnsw", float16=False), MODEL, DIM)
    assert explicit_fp32.load_or_rebuild(store) == "rebuilt" and not explicit_fp32.float16


def test_changing_float16_rebuilds_the_saved_index(tmp_path, store):
    fill(store, clustered(100))
    open_index(tmp_path, store).save()
    reopened = VectorIndex(tmp_path, SearchSettings(float16=True), MODEL, DIM)
    assert reopened.load_or_rebuild(store) == "rebuilt"
    assert reopened.float16


def test_hnsw_removal_leaves_tombstones_until_rebuild(tmp_path, store):
    vectors = clustered(600)
    articles = fill(store, vectors)
    index = open_index(tmp_path, store, index="hnsw")
    gone = articles[0]
    index.remove(gone)
    assert index.count == 600 - len(gone)
    for q in vectors[: len(gone)]:
        assert not {i for i, _ in index.search(q, 10)} & set(gone)
    assert len(index.search(vectors[0], 10)) == 10
    assert set(gone).isdisjoint(index.ids().tolist())
    # A tombstoned HNSW index is not persisted; the next open rebuilds it from SQLite without them.
    store.remove_article(store.articles()[-1].id)  # the first article added (newest first)
    index.save()
    reopened = VectorIndex(tmp_path, SearchSettings(index="hnsw"), MODEL, DIM)
    reopened.load_or_rebuild(store)
    assert reopened.count == 600 - len(gone)
    assert set(gone).isdisjoint(reopened.ids().tolist())


def test_flat_removal_deletes(tmp_path, store):
    articles = fill(store, clustered(200))
    index = open_index(tmp_path, store, index="flat")
    index.remove(articles[1])
    assert index.count == 150 and set(articles[1]).isdisjoint(index.ids().tolist())


def test_lexical_search_leaves_out_terms_common_in_a_big_corpus(store):
    import index.search as search
    from index.lexical import analyze

    texts = [f"Bericht {i} über die Wahl" for i in range(8)] + ["Die Wahl in Ulmenhagen"]
    for i, text in enumerate(texts):
        article = {"title": f"T{i}", "url": None, "source": "t", "text": text, "language": "de"}
        chunk = [{"position": 0, "text": text, "start": 0, "end": len(text)}]
        store.add_article(article, chunk, clustered(1, seed=i), MODEL, [("", " ".join(analyze(text)))])
    assert store.document_frequencies(["wahl", "ulmenhag", "nirgends"]) == {"wahl": 9, "ulmenhag": 1, "nirgends": 0}
    question = "Wahl in Ulmenhagen?"
    assert len(search.lexical_search(store, question, 20)) == 9  # below the threshold: every term counts
    assert [c for c, _ in search.lexical_search(store, question, 20, 5)] == [9]  # "wahl" left out
    # When every term is common, the rarest one stays.
    assert len(search.lexical_search(store, "Bericht Wahl", 20, 5)) == 8
