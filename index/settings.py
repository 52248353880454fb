"""Settings of the knowledge base. Plain dataclasses: the config loader in ``bot.config`` fills them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EmbeddingSettings:
    # "use-multilingual" (the Universal Sentence Encoder multilingual v3, bundled: German and English
    # questions about German and English articles; BENCHMARKS.md, "Choosing the default embedding") or
    # "sentence-transformers" (any hub name or local path).
    backend: str = "use-multilingual"
    # Empty: the backend's bundled model (all-MiniLM-L6-v2 for "sentence-transformers").
    model: str = ""
    query_prefix: str = ""
    passage_prefix: str = ""
    batch_size: int = 32
    # "onnx-int8" (the model exported to ONNX locally and quantised to int8: ~2.8x faster, within a
    # point of R@5; BENCHMARKS.md) or "torch" (fp32). Models it cannot run fall back to torch.
    runtime: str = "onnx-int8"
    # Threads for the model: 0 = all cores for torch and ONNX, 1 for the USE backend.
    threads: int = 0
    # Longest input the model embeds, in its own tokens; passages are cut to fit it (never truncated).
    # 0 = the model's own choice: 384 for the bundled model (see index/embedding.py), else the
    # model's max_seq_length (256 pieces for the USE backend).
    max_tokens: int = 0


@dataclass
class ChunkSettings:
    max_chars: int = 1000
    min_chars: int = 200


@dataclass
class SearchSettings:
    k: int = 5
    dense_k: int = 50
    lexical_k: int = 50
    # "score": dense_weight * cosine + lexical_weight * bm25 / best bm25 of the query;
    # "rrf": weighted reciprocal rank fusion, weight / (rrf_k + rank). Chosen on German XQuAD
    # (BENCHMARKS.md, "Retrieval (issue 3)"): score fusion beats BM25 alone and every RRF weighting tried.
    fusion: str = "score"
    rrf_k: int = 60
    # Chosen with the default multilingual USE (BENCHMARKS.md, "Cross-lingual retrieval"): it carries
    # more weight than the bundled English MiniLM could (0.4 / 0.6 there, config.minilm.example.toml).
    dense_weight: float = 0.7
    lexical_weight: float = 0.3
    # Applied to the lexical weight when question and article languages differ.
    cross_language_lexical_factor: float = 0.2
    # "flat" (exact), "hnsw", or "auto" (flat below hnsw_threshold passages).
    index: str = "auto"
    hnsw_threshold: int = 200_000
    hnsw_m: int = 32
    # Recall@10 vs exact at 512: 0.98 at 100k, 0.95 at 250k on realistic vectors (bench/scale.py recall-realistic).
    hnsw_ef_search: int = 512
    # Beyond this many passages efSearch grows in proportion (0 = fixed): recall at a fixed efSearch
    # falls as the graph grows (bench/scale.py recall-realistic).
    hnsw_ef_scale_passages: int = 200_000
    # Vectors in the index as float16: true, false, or "auto" (float16 for HNSW, where it halves the
    # 1M index to 1.0 GB with the same recall and keeps memory under 2.5 GB; exact fp32 while flat).
    float16: bool | str = "auto"
    # Query terms found in more passages than this are left out of the FTS query (BENCHMARKS.md,
    # "Scale"): never happens below this corpus size; at 1M passages 50k costs 0.8 points of
    # lexical R@1 and cuts lexical p95 from 340 to 73 ms, 20k costs 2.7 points for 37 ms.
    common_term_passages: int = 50_000


@dataclass
class FetchSettings:
    timeout: float = 15.0
    max_bytes: int = 10_000_000
    allow_private_addresses: bool = False
    user_agent: str = "articlebot/0.1 (+https://github.com/articlebot)"
    max_redirects: int = 5


@dataclass
class IndexSettings:
    data_dir: str = "data"
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
