"""Scale (issue 6): search and ask latency, memory, index build and start-up at 10k, 100k and 1M passages.

    .venv/bin/python -m bench.scale build --size 100k      # writes the store (minutes at 1M)
    .venv/bin/python -m bench.scale index --size 100k      # (re)builds the FAISS index, timed
    .venv/bin/python -m bench.scale measure --size 100k    # fresh process: start-up, latency, memory
    .venv/bin/python -m bench.scale all --sizes 10k,100k   # the three steps per size
    .venv/bin/python -m bench.scale recall                 # ANN recall@10 vs exact, per index setting
    .venv/bin/python -m bench.scale recall-clustered --size 100k --spread 0.5   # real vector + noise
    .venv/bin/python -m bench.scale recall-realistic --size 1m [--noise 0.3]    # sentence mixtures

``recall-realistic`` measures HNSW recall@10 against exact search on vectors shaped like real
passage embeddings, built in memory only (no store; ~15 min and ~4 GB at 1M on 2 cores): the real
passage vectors of the 10kGNAD test articles, and for the rest, passage-like vectors made of the
articles' real sentences, each embedded by the configured model: the normalised sum of 3-6
consecutive sentence vectors of one article with random start, length and weights (0.5-1.5),
optionally plus Gaussian noise (``--noise``, times the sentence vectors' covariance). The index is
the shipped one (``VectorIndex`` with the configured M, efConstruction and float16 setting).

Corpus: the 10kGNAD test articles, chunked and embedded for real by the configured model (cached
in the work dir), then repeated until the size is reached. Copy 0 of each article keeps its real
vectors; further copies (title and text marked "[Kopie k]", so they are distinct articles) get
synthetic vectors drawn from a Gaussian with the real vectors' mean and covariance, normalised:
the same anisotropy as real embeddings without their cluster structure, which makes approximate
search *harder* than on real text. Repeated text makes every FTS5 posting list as long as in a
corpus of that size made of the same vocabulary, the worst case for the lexical side.

Queries: XQuAD questions (German and English), embedded by the real model in the measuring
process. Work dir: ``$ARTICLEBOT_SCALE_DIR`` or ``/tmp/articlebot-scale`` (about 3.5 GB at 1M).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if not __package__:  # run as a file (`python bench/scale.py`, as the README says): find the bench package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.xquad import SharedDataMissing, load_articles, shared_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
WORK = Path(os.environ.get("ARTICLEBOT_SCALE_DIR", "/tmp/articlebot-scale"))
GNAD = Path("data/10kgnad/test.csv")
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
QUERIES = 200
# Raised whenever index/chunking.py or index/sentences.py cut passages differently.
CHUNKER_VERSION = 2


def size_of(label: str) -> int:
    return SIZES.get(label.lower()) or int(label)


def load_config(path: str | None):
    from bot.config import Config, parse_config

    if not path:
        return Config()
    return parse_config(Path(path).read_text(encoding="utf-8"), path)


def rss_mb() -> dict:
    status = Path("/proc/self/status").read_text()
    values = {}
    for line in status.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, amount, _unit = line.split()
            values[key.rstrip(":")] = round(int(amount) / 1024)
    # Proportional: pages shared with other processes, or mapped twice in this one (the two e5 models
    # map one weights file), count once.
    rollup = Path("/proc/self/smaps_rollup").read_text()
    pss = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return {"rss_mb": values.get("VmRSS"), "peak_rss_mb": values.get("VmHWM"), "pss_mb": round(pss / 1024)}


def server_pss_mb() -> int:
    """Proportional set size of every PostgreSQL process (shared buffers counted once), in MB."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/comm"):
        try:
            if status.read_text().strip() != "postgres":
                continue
            rollup = (status.parent / "smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return round(total / 1024)


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50_ms": round(1000 * at(0.5), 1), "p95_ms": round(1000 * at(0.95), 1)}


# --- the real base corpus ---------------------------------------------------------------------


def base(config) -> dict:
    """Chunks, FTS terms and real vectors of the 10kGNAD test articles (cached per model)."""
    from index.embedding import load_embedder
    from index.extract import from_text
    from index.kb import KnowledgeBase

    embedder = load_embedder(config.embedding)
    # Keyed by everything that cuts the passages, not only the model: the 10k/100k figures of
    # 2026-11-26 came from a cache made before the 384-token window (5,895 short passages instead of
    # 3,674), and their `ask` was half as slow as on a fresh machine, with fewer sentences per passage.
    cut = f"{embedder.max_tokens}t-{config.chunking.max_chars}c-{config.chunking.min_chars}m-{CHUNKER_VERSION}"
    cache = WORK / f"base-{embedder.model_id.replace('/', '_')}-{cut}.npz"
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        return {
            "model": embedder.model_id,
            "articles": json.loads(str(data["articles"])),
            "vectors": data["vectors"],
            "embedder": embedder,
        }
    from index.lexical import analyze, detect_language

    WORK.mkdir(parents=True, exist_ok=True)
    settings = config.index_settings()
    settings.data_dir = str(WORK / "base-kb")
    kb = KnowledgeBase(settings, embedder=embedder)
    with open(shared_file(GNAD), encoding="utf-8", newline="") as f:
        rows = [r[1] for r in csv.reader(f, delimiter=";", quotechar="'") if len(r) >= 2 and r[1].strip()]
    articles, texts, titles = [], [], []
    for raw in rows:
        doc = from_text(raw)
        chunks = kb.chunk(doc)
        articles.append(
            {
                "title": doc.title,
                "text": doc.text,
                "language": detect_language(doc.text[:5000]),
                "title_terms": " ".join(analyze(doc.title)),
                "chunks": [
                    {
                        "position": c.position,
                        "text": c.text,
                        "start": c.start,
                        "end": c.end,
                        "terms": " ".join(analyze(c.text)),
                    }
                    for c in chunks
                ],
            }
        )
        texts += [c.text for c in chunks]
        titles += [doc.title] * len(chunks)
    print(f"embedding {len(texts)} real passages of {len(articles)} articles", file=sys.stderr)
    vectors = embedder.embed_passages(texts, titles).astype(np.float32)
    np.savez(cache, articles=json.dumps(articles), vectors=vectors)
    kb.close()
    return {"model": embedder.model_id, "articles": articles, "vectors": vectors, "embedder": embedder}


class Synthetic:
    """Vectors from N(mean, cov) of the real ones, normalised (seeded, so reproducible)."""

    def __init__(self, real: np.ndarray, seed: int = 0):
        self.mean = real.mean(axis=0)
        centered = real - self.mean
        cov = centered.T @ centered / max(1, len(real) - 1)
        values, vectors = np.linalg.eigh(cov)
        self.transform = (vectors * np.sqrt(np.clip(values, 0, None))).T.astype(np.float32)
        self.rng = np.random.default_rng(seed)
        self._pool = np.zeros((0, len(self.mean)), dtype=np.float32)

    def sample(self, n: int) -> np.ndarray:
        # Drawn 20k at a time: one small matrix product per article wakes every BLAS thread, and on
        # a loaded machine that made writing the store ten times slower.
        if len(self._pool) < n:
            z = self.rng.standard_normal((max(n, 20_000), len(self.mean)), dtype=np.float32)
            x = z @ self.transform + self.mean
            self._pool = np.vstack([self._pool, x / np.linalg.norm(x, axis=1, keepdims=True)])
        out, self._pool = self._pool[:n], self._pool[n:]
        return np.ascontiguousarray(out, dtype=np.float32)


# --- steps ------------------------------------------------------------------------------------


def data_dir(label: str) -> Path:
    return WORK / label.lower()


def build(label: str, config) -> dict:
    """Write a store of ``size`` passages (no FAISS index yet)."""
    from index.store import Store

    directory = data_dir(label)
    if directory.exists():
        import shutil

        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    store = Store(directory / "articlebot.db")
    started = time.perf_counter()
    written, copies = fill(store, size_of(label), base(config))
    store.close()
    seconds = time.perf_counter() - started
    db_bytes = (directory / "articlebot.db").stat().st_size
    return {"passages": written, "copies": copies, "write_seconds": round(seconds, 1), "db_mb": round(db_bytes / 2**20)}


def fill(store, size: int, corpus: dict) -> tuple[int, int]:
    """Add the corpus's articles, then marked copies of them, until ``size`` passages: (passages, copies)."""
    synthetic = Synthetic(corpus["vectors"])
    offsets = np.cumsum([0] + [len(a["chunks"]) for a in corpus["articles"]])
    started = time.perf_counter()
    written, copy = 0, 0
    while written < size:
        for index, article in enumerate(corpus["articles"]):
            if written >= size:
                break
            chunks = article["chunks"][: size - written]
            if copy == 0:
                vectors = corpus["vectors"][offsets[index] : offsets[index] + len(chunks)]
                title, text = article["title"], article["text"]
            else:
                vectors = synthetic.sample(len(chunks))
                title = f"{article['title']} [Kopie {copy}]"
                text = f"{article['text']}\n\n[Kopie {copy}]"
            record = {"title": title, "url": None, "source": "scale", "text": text, "language": article["language"]}
            fts = [(article["title_terms"] + (f" kopie {copy}" if copy else ""), c["terms"]) for c in chunks]
            rows = [{k: c[k] for k in ("position", "text", "start", "end")} for c in chunks]
            store.add_article(record, rows, vectors, corpus["model"], fts)
            written += len(chunks)
        copy += 1
        print(f"  {written} passages written ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return written, copy


def build_index(label: str, config) -> dict:
    from index.embedding import load_embedder
    from index.store import Store
    from index.vectors import VectorIndex

    embedder = load_embedder(config.embedding)
    directory = data_dir(label)
    store = Store(directory / "articlebot.db")
    index = VectorIndex(directory, config.search, embedder.model_id, embedder.dim)
    started = time.perf_counter()
    index.rebuild(store)
    built = time.perf_counter() - started
    index.save()
    saved = time.perf_counter() - started - built
    store.close()
    size = (directory / "faiss.index").stat().st_size
    return {
        "kind": index.kind,
        "float16": index.float16,
        "build_seconds": round(built, 1),
        "save_seconds": round(saved, 1),
        "index_mb": round(size / 2**20),
    }


def questions() -> list[str]:
    mixed = all_questions()
    return mixed[:: max(1, len(mixed) // QUERIES)][:QUERIES]


def all_questions() -> list[str]:
    """Every German XQuAD question and its English version, alternating."""
    german = [q.question for a in load_articles() for q in a.questions]
    english_file = shared_file("data/xquad-de/xquad.en.dev.json")
    english = [
        qa["question"]
        for entry in json.loads(english_file.read_text(encoding="utf-8"))["data"]
        for p in entry["paragraphs"]
        for qa in p["qas"]
    ]
    return [q for pair in zip(german, english, strict=False) for q in pair]


def measure_here(label: str, config, spawned_at: float) -> dict:
    """Runs inside a fresh process: start-up, warm latencies, memory (the parent times the spawn)."""
    from bot.answer import Answerer
    from index.kb import KnowledgeBase
    from index.search import lexical_search

    settings = config.index_settings()
    if config.storage.data_dir == "data":  # the default: this size's work dir (bench.engines names its own)
        settings.data_dir = str(data_dir(label))
    kb = KnowledgeBase(settings)
    status = kb.open()
    ready = time.time() - spawned_at
    answerer = Answerer(kb, config.answer)
    first = time.perf_counter()
    answerer.answer("Wie viele Artikel gibt es?")
    first_answer = time.perf_counter() - first
    asked = questions()
    parts = {"embed": [], "faiss": [], "lexical": [], "search": [], "ask": []}
    for question in asked:
        t0 = time.perf_counter()
        (vector,) = kb.embedder.embed_queries([question])
        t1 = time.perf_counter()
        kb.vectors.search(vector, config.search.dense_k)
        t2 = time.perf_counter()
        lexical_search(kb.store, question, config.search.lexical_k, config.search.common_term_passages)
        t3 = time.perf_counter()
        kb.search(question)
        t4 = time.perf_counter()
        answerer.answer(question)
        t5 = time.perf_counter()
        for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            parts[name].append(seconds)
    memory = rss_mb()
    if kb.engine.name == "postgres":  # the server's memory while this process is connected to it
        memory["database_pss_mb"] = server_pss_mb()
    total = parts["search"] + parts["ask"]
    out = {
        "passages": kb.vectors.count,
        "index": kb.vectors.kind,
        "float16": getattr(kb.vectors, "float16", None),
        "ef_search": kb.vectors.ef_search() if kb.vectors.kind == "hnsw" and hasattr(kb.vectors, "ef_search") else None,
        "index_status": status,
        "startup_ready_s": round(ready, 2),
        "first_answer_s": round(first_answer, 2),
        "questions": len(asked),
        **{name: percentiles(values) for name, values in parts.items()},
        "search_qps_single_thread": round(len(parts["search"]) / sum(parts["search"]), 1),
        "ask_qps_single_thread": round(len(parts["ask"]) / sum(parts["ask"]), 1),
        **memory,
        "_total_s": round(sum(total), 1),
    }
    kb.close()
    return out


def measure(label: str, config_path: str | None) -> dict:
    command = [sys.executable, "-m", "bench.scale", "_measure", "--size", label, "--spawned", repr(time.time())]
    if config_path:
        command += ["--config", config_path]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def recall(label: str, config, settings_list: list[dict], ef_values: list[int]) -> list[dict]:
    """recall@10 of each index setting against exact search on the same stored vectors."""
    import faiss

    from index.embedding import load_embedder
    from index.store import Store
    from index.vectors import VectorIndex

    embedder = load_embedder(config.embedding)
    store = Store(data_dir(label) / "articlebot.db")
    queries = embedder.embed_queries(questions())
    exact = faiss.IndexFlatIP(embedder.dim)
    all_ids = []
    for ids, vectors, _model in store.iter_vectors():
        exact.add(vectors)
        all_ids.append(ids)
    id_of = np.concatenate(all_ids)
    _, truth = exact.search(queries, 10)
    truth_ids = [set(id_of[row]) for row in truth]
    del exact
    out = []
    from dataclasses import replace

    for overrides in settings_list:
        saved = overrides.pop("saved", False)
        search = replace(config.search, **overrides)
        started = time.perf_counter()
        if saved:  # the index the `index` step saved (no second build)
            index = VectorIndex(data_dir(label), search, embedder.model_id, embedder.dim)
            index.load_or_rebuild(store)
        else:
            index = VectorIndex(data_dir(label) / "recall-tmp", search, embedder.model_id, embedder.dim)
            index.rebuild(store)
        built = time.perf_counter() - started
        efs = ef_values if index.kind == "hnsw" else [None]
        for ef in efs:
            if ef is not None:  # VectorIndex.search passes its efSearch per call
                index.settings.hnsw_ef_search, index.settings.hnsw_ef_scale_passages = ef, 0
            times, hits = [], 0.0
            for query, expected in zip(queries, truth_ids, strict=True):
                t0 = time.perf_counter()
                found = index.search(query, 10)
                times.append(time.perf_counter() - t0)
                hits += len({i for i, _ in found} & expected) / 10
            out.append(
                {
                    **overrides,
                    **({"hnsw_ef_search": ef} if ef is not None else {}),
                    "kind": index.kind,
                    "recall_at_10": round(hits / len(queries), 4),
                    "build_seconds": round(built, 1),
                    **percentiles(times),
                }
            )
            print(json.dumps(out[-1]), file=sys.stderr)
        del index
    store.close()
    return out


def dilute(label: str, config) -> dict:
    """XQuAD's 36 German articles inside the big corpus: lexical R@1/R@5 and latency per pruning level.

    The only way to see what leaving common terms out of the FTS query does at 1M passages with
    real questions: the gold passages are real, the other 1M passages are distractors.
    """
    import index.search as search_module
    from bench.multilingual import load_queries, relevant
    from index.kb import KnowledgeBase

    articles = load_articles()
    settings = config.index_settings()
    settings.data_dir = str(data_dir(label))
    kb = KnowledgeBase(settings)
    titles = {a.title: i for i, a in enumerate(articles)}
    present = {r.title for r in kb.store.articles() if r.title in titles}
    from bench.xquad import documents

    missing = [d for d in documents(articles) if d.title not in present]
    if missing:
        kb.add_many(missing)
    position = {}
    for record in kb.store.articles(limit=len(articles) + 50):
        if record.title in titles:
            for chunk in kb.store.article_chunks(record.id):
                position[chunk.id] = (titles[record.title], chunk.start, chunk.end)
    queries = load_queries(articles)
    out = []
    try:
        for threshold in (10**12, 50_000, 20_000, 10_000):
            ranks, times = [], []
            for q in queries:
                t0 = time.perf_counter()
                hits = search_module.lexical_search(kb.store, q.de, 10, threshold)
                times.append(time.perf_counter() - t0)
                ranks.append(
                    next(
                        (i for i, (c, _) in enumerate(hits, 1) if c in position and relevant(q.gold, *position[c])),
                        None,
                    )
                )
            n = len(ranks)
            out.append(
                {
                    "common_term_passages": threshold if threshold < 10**12 else None,
                    "R@1": round(sum(1 for r in ranks if r == 1) / n, 3),
                    "R@5": round(sum(1 for r in ranks if r and r <= 5) / n, 3),
                    **percentiles(times),
                }
            )
            print(json.dumps(out[-1]), file=sys.stderr)
    finally:
        kb.close()
    return {"rows": out}


def recall_clustered(config, size: int, spread: float, ef_values: list[int]) -> dict:
    """HNSW recall@10 on vectors with topic structure: each a real passage vector plus Gaussian noise
    (real covariance, scaled by ``spread``), the way near-duplicate and same-topic news cluster."""
    import faiss

    corpus = base(config)
    real = corpus["vectors"]
    noise = Synthetic(real, seed=1)
    rng = np.random.default_rng(2)
    centres = real[rng.integers(0, len(real), size)]
    x = centres + spread * (noise.sample(size) - noise.mean)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    queries = corpus["embedder"].embed_queries(questions())
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    _, truth = exact.search(queries, 10)
    index = faiss.IndexHNSWSQ(
        x.shape[1], faiss.ScalarQuantizer.QT_fp16, config.search.hnsw_m, faiss.METRIC_INNER_PRODUCT
    )
    index.hnsw.efConstruction = 80
    started = time.perf_counter()
    index.add(x)
    built = time.perf_counter() - started
    rows = []
    for ef in ef_values:
        index.hnsw.efSearch = ef
        times, hits = [], 0.0
        for query, expected in zip(queries, truth, strict=True):
            t0 = time.perf_counter()
            _, found = index.search(query[None, :], 10)
            times.append(time.perf_counter() - t0)
            hits += len(set(found[0]) & set(expected)) / 10
        rows.append({"hnsw_ef_search": ef, "recall_at_10": round(hits / len(queries), 4), **percentiles(times)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    cosine = float(np.mean(np.sum(x * centres, axis=1) / np.linalg.norm(centres, axis=1)))
    return {
        "vectors": size,
        "spread": spread,
        "mean_cos_to_centre": round(cosine, 3),
        "build_s": round(built, 1),
        "rows": rows,
    }


def sentence_vectors(config) -> dict:
    """Every sentence of the 10kGNAD test articles embedded by the configured model (cached), with
    the row range of each article, for building passage-like vectors out of real sentences."""
    from index.chunking import split_sentences
    from index.embedding import load_embedder

    embedder = load_embedder(config.embedding)
    cache = WORK / f"sentences-{embedder.model_id.replace('/', '_')}.npz"
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        return {"vectors": data["vectors"], "bounds": data["bounds"], "embedder": embedder}
    with open(shared_file(GNAD), encoding="utf-8", newline="") as f:
        texts = [r[1] for r in csv.reader(f, delimiter=";", quotechar="'") if len(r) >= 2 and r[1].strip()]
    sentences, bounds = [], []
    for text in texts:
        found = [s for s in split_sentences(text) if len(s) >= 20]
        bounds.append((len(sentences), len(sentences) + len(found)))
        sentences += found
    print(f"embedding {len(sentences)} sentences of {len(texts)} articles", file=sys.stderr)
    vectors = embedder.embed_passages(sentences, [""] * len(sentences)).astype(np.float32)
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=vectors, bounds=np.asarray(bounds, dtype=np.int64))
    return {"vectors": vectors, "bounds": np.asarray(bounds, dtype=np.int64), "embedder": embedder}


def xquad_vectors(config, embedder) -> dict:
    """The XQuAD articles the questions are about: their paragraphs as real passages (title as
    context, as the knowledge base embeds them) and their sentences with each article's row range."""
    from bench.xquad import PARAGRAPH_SEPARATOR
    from index.chunking import split_sentences

    cache = WORK / f"xquad-{embedder.model_id.replace('/', '_')}.npz"
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        return {k: data[k] for k in ("passages", "sentences", "bounds")}
    paragraphs, titles, sentences, bounds = [], [], [], []
    for article in load_articles():
        for paragraph in article.text.split(PARAGRAPH_SEPARATOR):
            paragraphs.append(paragraph)
            titles.append(article.title)
        found = [s for s in split_sentences(article.text) if len(s) >= 20]
        bounds.append((len(sentences), len(sentences) + len(found)))
        sentences += found
    print(f"embedding {len(paragraphs)} XQuAD paragraphs and {len(sentences)} sentences", file=sys.stderr)
    out = {
        "passages": embedder.embed_passages(paragraphs, titles).astype(np.float32),
        "sentences": embedder.embed_passages(sentences, [""] * len(sentences)).astype(np.float32),
        "bounds": np.asarray(bounds, dtype=np.int64),
    }
    np.savez(cache, **out)
    return out


def sentence_mixtures(sentences: np.ndarray, bounds: np.ndarray, n: int, noise: float, seed: int = 3) -> np.ndarray:
    """``n`` passage-like vectors: the normalised weighted sum of 3-6 consecutive sentence vectors of
    one article (random start, length and weights 0.5-1.5), optionally plus Gaussian noise with the
    sentence vectors' covariance scaled by ``noise``. Neighbouring windows share sentences, the way
    overlapping passages, follow-up reports and near-duplicates of one story do."""
    rng = np.random.default_rng(seed)
    article_of = np.repeat(np.arange(len(bounds)), bounds[:, 1] - bounds[:, 0])
    jitter = Synthetic(sentences, seed=seed + 1) if noise else None
    out = np.empty((n, sentences.shape[1]), dtype=np.float32)
    for begin in range(0, n, 100_000):
        m = min(100_000, n - begin)
        first = rng.integers(0, len(sentences), m)  # every sentence equally likely to open a passage
        lo, hi = bounds[article_of[first], 0], bounds[article_of[first], 1]
        length = np.minimum(rng.integers(3, 7, m), hi - lo)
        start = np.maximum(lo, np.minimum(first, hi - length))
        weights = rng.uniform(0.5, 1.5, (m, 6)).astype(np.float32)
        x = np.zeros((m, sentences.shape[1]), dtype=np.float32)
        for j in range(6):
            used = j < length
            x[used] += weights[used, j, None] * sentences[start[used] + j]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        if jitter is not None:
            x += noise * (jitter.sample(m) - jitter.mean)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[begin : begin + m] = x
    return out


def recall_realistic(config, size: int, noise: float, in_corpus: bool, ef_values: list[int]) -> dict:
    """HNSW recall@10 against exact search on passage-like vectors made from real sentence
    embeddings (``sentence_mixtures``) plus the real passage vectors, built in memory exactly as the
    shipped index (``VectorIndex`` settings: M, efConstruction, float16) without a store.

    ``in_corpus`` adds the XQuAD articles the questions are about (paragraphs and sentences), so a
    question has its answer's passages in the corpus, as when users ask about imported articles;
    without it every question is about something the corpus does not hold."""
    import faiss

    from index.vectors import VectorIndex, _one_thread_search

    real = base(config)["vectors"]
    found = sentence_vectors(config)
    sentences, bounds = found["vectors"], found["bounds"]
    if in_corpus:
        xquad = xquad_vectors(config, found["embedder"])
        real = np.vstack([real, xquad["passages"]])
        bounds = np.vstack([bounds, xquad["bounds"] + len(sentences)])
        sentences = np.vstack([sentences, xquad["sentences"]])
    x = np.vstack([real, sentence_mixtures(sentences, bounds, size - len(real), noise)])
    queries = found["embedder"].embed_queries(questions())
    started = time.perf_counter()
    _, truth = faiss.knn(queries, x, 10, metric=faiss.METRIC_INNER_PRODUCT)
    exact_s = (time.perf_counter() - started) / len(queries)
    index = VectorIndex(WORK / "unused", config.search, found["embedder"].model_id, x.shape[1])._empty("hnsw")
    started = time.perf_counter()
    for begin in range(0, size, 50_000):
        stop = min(size, begin + 50_000)
        index.add_with_ids(x[begin:stop], np.arange(begin, stop, dtype=np.int64))
        print(f"  {stop} vectors in HNSW ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    built = time.perf_counter() - started
    # How clustered the set is: cosine of each query's 1st and 10th exact neighbour.
    top = np.einsum("qd,qd->q", queries, x[truth[:, 0]])
    tenth = np.einsum("qd,qd->q", queries, x[truth[:, 9]])
    inner = faiss.downcast_index(index.index)
    rows = []
    for ef in ef_values:
        inner.hnsw.efSearch = ef
        times, hits, close = [], 0.0, 0.0
        for query, expected in zip(queries, truth, strict=True):
            t0 = time.perf_counter()
            _, got = _one_thread_search(index, query[None, :], 10, None)  # as VectorIndex.search
            times.append(time.perf_counter() - t0)
            hits += len(set(got[0]) & set(expected)) / 10
            # ann-benchmarks' k-nn recall: a hit whose exact score is within 1e-3 of the 10th best
            # counts (near-duplicates tie; which of them is returned does not matter to a reader).
            close += np.sum(x[got[0][got[0] >= 0]] @ query >= query @ x[expected[9]] - 1e-3) / 10
        rows.append(
            {
                "hnsw_ef_search": ef,
                "recall_at_10": round(hits / len(queries), 4),
                "recall_at_10_eps": round(close / len(queries), 4),
                **percentiles(times),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {
        "vectors": size,
        "real_passages": len(real),
        "sentences": len(sentences),
        "noise": noise,
        "in_corpus": in_corpus,
        "hnsw_m": config.search.hnsw_m,
        "float16": isinstance(faiss.downcast_index(inner.storage), faiss.IndexScalarQuantizer),
        "query_cos_top1_mean": round(float(top.mean()), 3),
        "query_cos_top10_mean": round(float(tenth.mean()), 3),
        "exact_ms_per_query": round(1000 * exact_s, 1),
        "build_s": round(built, 1),
        "rows": rows,
    }


def save(name: str, payload: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "scale.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = {
        "machine": f"{platform.machine()} {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        **payload,
    }
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "step",
        choices=[
            "build",
            "index",
            "measure",
            "all",
            "recall",
            "recall-clustered",
            "recall-realistic",
            "dilute",
            "_measure",
        ],
    )
    parser.add_argument("--spread", type=float, default=0.5, help="recall-clustered: noise scale")
    parser.add_argument("--noise", type=float, default=0.0, help="recall-realistic: noise scale")
    parser.add_argument(
        "--in-corpus", action="store_true", help="recall-realistic: add the articles the questions are about"
    )
    parser.add_argument("--size", default="10k")
    parser.add_argument("--sizes", default="10k,100k,1m")
    parser.add_argument("--config", help="TOML config (default: built-in defaults)")
    parser.add_argument("--spawned", type=float, default=0.0)
    parser.add_argument("--ef", default="64,128,256,512", help="recall: HNSW efSearch values to try")
    parser.add_argument("--set", action="append", default=[], help="recall: SEARCH_KEY=VALUE,... per setting")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    try:
        shared_file(GNAD)
    except SharedDataMissing as exc:
        print(exc)
        return 0
    if args.step == "_measure":
        print(json.dumps(measure_here(args.size, config, args.spawned)))
        return 0
    labels = args.sizes.split(",") if args.step == "all" else [args.size]
    for label in labels:
        result = {}
        if args.step in ("build", "all"):
            result["store"] = build(label, config)
            print(label, "store", result["store"], flush=True)
        if args.step in ("index", "all"):
            result["index"] = build_index(label, config)
            print(label, "index", result["index"], flush=True)
        if args.step in ("measure", "all"):
            result["measure"] = measure(label, args.config)
            print(label, "measure", json.dumps(result["measure"]), flush=True)
        if args.step == "recall-clustered":
            result["recall_clustered"] = recall_clustered(
                config, size_of(label), args.spread, [int(e) for e in args.ef.split(",")]
            )
        if args.step == "recall-realistic":
            for spec in args.set:  # e.g. --set hnsw_m=48 (search settings of the index built)
                for key, value in (pair.split("=", 1) for pair in spec.split(",")):
                    setattr(config.search, key, json.loads(value))
            result["recall_realistic"] = recall_realistic(
                config, size_of(label), args.noise, args.in_corpus, [int(e) for e in args.ef.split(",")]
            )
        if args.step == "dilute":
            result["dilute"] = dilute(label, config)
        if args.step == "recall":
            settings = [
                {k: json.loads(v) for k, v in (pair.split("=", 1) for pair in spec.split(","))} for spec in args.set
            ] or [{"index": "hnsw", "float16": False}, {"index": "hnsw", "float16": True}]
            result["recall"] = recall(label, config, settings, [int(e) for e in args.ef.split(",")])
        suffix = ""
        if args.step == "recall-realistic":
            suffix = (
                f"-noise{args.noise:g}" + ("-in-corpus" if args.in_corpus else "") + "".join(f"-{s}" for s in args.set)
            )
        save(f"{label}-{args.step}{suffix}", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
