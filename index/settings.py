"""Settings of the knowledge base. Plain dataclasses: the config loader in ``bot.config`` fills them.

Each default is written here once, and a field's validation rule sits with it (``choice``,
``positive``, ``between``, ``bool_or``, ``number_or``): the loader reads the rules from the fields, so a
new setting cannot get its default in one place and its check in another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def choice(default: str, *others: str) -> Any:
    """A setting that takes one of these words (the default first)."""
    return field(default=default, metadata={"choices": frozenset((default, *others))})


def positive(default: int | float) -> Any:
    """A number that must be greater than 0 (zero would mean a batch of nothing, an empty result list)."""
    return field(default=default, metadata={"positive": True})


def between(default: int | float, low: int | float, high: int | float) -> Any:
    """A number from low to high inclusive: a share (0..1), a port; outside it the setting silently breaks."""
    return field(default=default, metadata={"within": (low, high)})


def bool_or(default: bool | str, *keywords: str) -> Any:
    """true, false, or one of these words: TOML gives them as bool or str, so a typo ("yes", 1) is caught."""
    return field(default=default, metadata={"keywords": keywords})


def number_or(default: float | str, *keywords: str, within: tuple[float, float] | None = None) -> Any:
    """A non-negative number (in ``within`` if given) or one of these words: a word outside them ("fast") is
    caught, not taken as a number."""
    rules: dict[str, Any] = {"number_keywords": keywords}
    if within is not None:
        rules["within"] = within
    return field(default=default, metadata=rules)


@dataclass
class EmbeddingSettings:
    # "use-multilingual" (the Universal Sentence Encoder multilingual v3, bundled: German and English
    # questions about German and English articles; BENCHMARKS.md, "Choosing the default embedding") or
    # "sentence-transformers" (any hub name or local path).
    backend: str = choice("use-multilingual", "sentence-transformers")
    # Empty: the backend's bundled model (all-MiniLM-L6-v2 for "sentence-transformers").
    model: str = ""
    query_prefix: str = ""
    passage_prefix: str = ""
    # Texts per model call with runtime "torch". The int8 ONNX runtime (the default) uses at most 8
    # (onnx_runtime.MAX_BATCH, measured faster) and "use-multilingual" embeds a call's texts at once,
    # so with either of them a larger value changes nothing.
    batch_size: int = positive(32)
    # "onnx-int8" (the model exported to ONNX locally and quantised to int8: ~2.8x faster, within a
    # point of R@5; BENCHMARKS.md) or "torch" (fp32). Models it cannot run fall back to torch.
    runtime: str = choice("onnx-int8", "torch")
    # Threads for the model: 0 = all cores for torch and ONNX, 1 for the USE backend.
    threads: int = 0
    # Longest input the model embeds, in its own tokens; passages are cut to fit it (never truncated).
    # 0 = the model's own choice: 384 for the bundled model (see index/embedding.py), else the
    # model's max_seq_length (256 pieces for the USE backend).
    max_tokens: int = 0


@dataclass
class ChunkSettings:
    max_chars: int = positive(1000)
    min_chars: int = 200


@dataclass
class SearchSettings:
    k: int = positive(5)
    dense_k: int = positive(50)
    lexical_k: int = positive(50)
    # "score": dense_weight * cosine + lexical_weight * bm25 / best bm25 of the query;
    # "rrf": weighted reciprocal rank fusion, weight / (rrf_k + rank). Chosen on German XQuAD
    # (BENCHMARKS.md, "Retrieval (issue 3)"): with the bundled English model, score fusion at
    # 0.4 / 0.6 beats both BM25 alone and every RRF weighting tried. RRF was measured only then (the
    # first model, the 256-token passages) and never since: kept for experiments, not a tuned choice.
    fusion: str = choice("score", "rrf")
    rrf_k: int = 60
    # Chosen with the default multilingual USE (BENCHMARKS.md, "Cross-lingual retrieval"): it carries
    # more weight than the bundled English MiniLM could (0.4 / 0.6 there, config.minilm.example.toml).
    dense_weight: float = 0.7
    lexical_weight: float = 0.3
    # Applied to the lexical weight when question and article languages differ.
    cross_language_lexical_factor: float = 0.2
    # "flat" (exact), "hnsw", or "auto" (flat below hnsw_threshold passages).
    index: str = choice("auto", "flat", "hnsw")
    hnsw_threshold: int = 200_000
    hnsw_m: int = positive(32)
    # Recall@10 vs exact at 512: 0.98 at 100k, 0.95 at 250k on realistic vectors (bench/scale.py recall-realistic).
    hnsw_ef_search: int = positive(512)
    # Beyond this many passages efSearch grows in proportion (0 = fixed): recall at a fixed efSearch
    # falls as the graph grows (bench/scale.py recall-realistic).
    hnsw_ef_scale_passages: int = 200_000
    # Vectors in the index as float16: true, false, or "auto" (float16 for HNSW, where it halves the
    # 1M index to 1.0 GB with the same recall and keeps memory under 2.5 GB; exact fp32 while flat).
    float16: bool | str = bool_or("auto", "auto")
    # Query terms found in more passages than this are left out of the FTS query (the rarest term
    # always stays). FTS5 scores every passage in a term's posting list before it can sort, so one
    # such term cost up to 500 ms at 1M passages, while BM25 gives it little weight (idf < 3 at 5 %
    # of the passages). Never happens below this corpus size, so smaller corpora are unchanged; at
    # 1M passages 50k costs 0.8 points of lexical R@1 and cuts lexical p95 from 340 to 73 ms, 20k
    # costs 2.7 points for 37 ms (bench/scale.py, BENCHMARKS.md "Scale (issue 6)").
    common_term_passages: int = 50_000


@dataclass
class FetchSettings:
    timeout: float = positive(15.0)
    max_bytes: int = positive(10_000_000)
    allow_private_addresses: bool = False
    user_agent: str = "articlebot/0.1 (+https://github.com/articlebot)"
    max_redirects: int = 5


@dataclass
class IngestSettings:
    # Shortest article body accepted, in characters (URL, file, pasted and imported text alike):
    # shorter is a fragment, an error page or a teaser, not an article.
    min_chars: int = 200


@dataclass
class StorageSettings:
    # Local files: the SQLite database (with engine "sqlite") and the derived FAISS index.
    data_dir: str = "data"
    # "sqlite" (one file in data_dir, FAISS beside it) or "postgres" (PostgreSQL with pgvector at dsn,
    # shared by several bot processes; README "Beyond one machine").
    engine: str = choice("sqlite", "postgres")
    # postgresql://user@host:port/database, without the password (it is read from password_env).
    dsn: str = ""
    # The environment variable holding the database password ("" = none, or from ~/.pgpass).
    password_env: str = "ARTICLEBOT_DB_PASSWORD"
    # With engine "postgres": "pgvector" (an HNSW index in the database, exact below
    # [search] hnsw_threshold passages like FAISS's "auto") or "faiss" (a FAISS replica in each
    # process's data_dir, synced from the database by its version).
    vector_search: str = choice("pgvector", "faiss")


@dataclass
class IndexSettings:
    data_dir: str = "data"
    storage: StorageSettings = field(default_factory=StorageSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
