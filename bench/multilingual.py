"""Cross-lingual retrieval on XQuAD: German articles, German and English questions (issue 6).

    .venv/bin/python -m bench.multilingual [--configs default,multilingual] [--sweep] [--rebuild]

The 36 German XQuAD articles are indexed once per configuration (data dirs under
``bench/results/multilingual-kb/``, keyed by the embedding and chunking settings). Every question
is asked twice: in German (``xquad.de.dev.json``) and in English (``xquad.en.dev.json``, the same
ids), always against the German articles.

Metric: a retrieved passage is *relevant* when it lies within the question's gold paragraph, or
(for a passage that crosses a paragraph boundary) covers the gold answer span. R@k is the share of
questions with a relevant passage among the first k; MRR@10 likewise. With one passage per
paragraph this is exactly the issue's "gold paragraph" metric.

Rows: each configuration in hybrid mode (what the bot does), plus its dense side and its lexical
side alone. ``--sweep`` re-fuses the cached dense and lexical lists of the multilingual
configuration over lexical weights and cross-language factors (no re-embedding), which is how the
shipped values in ``config.multilingual.example.toml`` were chosen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.xquad import (  # noqa: E402
    PARAGRAPH_SEPARATOR,
    XQUAD_DE,
    Article,
    SharedDataMissing,
    build_kb,
    load_articles,
    shared_file,
)
from bot.config import Config, parse_config  # noqa: E402
from index.lexical import query_terms  # noqa: E402
from index.search import hybrid_search, lexical_search  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
KB_ROOT = RESULTS / "multilingual-kb"
XQUAD_EN = Path("data/xquad-de/xquad.en.dev.json")
CONFIGS = {
    "default": ROOT / "config.example.toml",
    "multilingual": ROOT / "config.multilingual.example.toml",
}
DEPTH = 10


@dataclass
class Gold:
    article: int
    paragraph: tuple[int, int]
    answer: tuple[int, int]


@dataclass
class Query:
    id: str
    de: str
    en: str
    gold: Gold


def load_config(name: str, overrides: list[str] = ()) -> Config:
    """A shipped config by name (or a TOML path), with ``section.key=value`` overrides (TOML values)."""
    import tomllib

    path = CONFIGS.get(name, Path(name))
    config = parse_config(path.read_text(encoding="utf-8"), path.name)
    for override in overrides:
        key, value = override.split("=", 1)
        section, field = key.split(".")
        setattr(getattr(config, section), field, tomllib.loads(f"v = {value}")["v"])
    return config


def paragraph_spans(article: Article) -> list[tuple[int, int]]:
    spans, offset = [], 0
    for part in article.text.split(PARAGRAPH_SEPARATOR):
        spans.append((offset, offset + len(part)))
        offset += len(part) + len(PARAGRAPH_SEPARATOR)
    return spans


def load_queries(articles: list[Article]) -> list[Query]:
    english = {
        qa["id"]: qa["question"]
        for entry in json.loads(shared_file(XQUAD_EN).read_text(encoding="utf-8"))["data"]
        for paragraph in entry["paragraphs"]
        for qa in paragraph["qas"]
    }
    queries = []
    for index, article in enumerate(articles):
        spans = paragraph_spans(article)
        for q in article.questions:
            paragraph = next(s for s in spans if s[0] <= q.answer_start < s[1])
            gold = Gold(index, paragraph, (q.answer_start, q.answer_end))
            queries.append(Query(q.id, q.question, english[q.id], gold))
    return queries


def relevant(gold: Gold, article_index: int, start: int, end: int) -> bool:
    if article_index != gold.article:
        return False
    inside = gold.paragraph[0] <= start and end <= gold.paragraph[1]
    covers = start <= gold.answer[0] and gold.answer[1] <= end
    return inside or covers


def kb_dir(config: Config) -> Path:
    key = json.dumps({"embedding": asdict(config.embedding), "chunking": asdict(config.chunking)}, sort_keys=True)
    slug = config.embedding.backend + "-" + hashlib.sha256(key.encode()).hexdigest()[:10]
    return KB_ROOT / slug


def open_kb(config: Config, articles: list[Article], rebuild: bool):
    directory = kb_dir(config)
    if rebuild and directory.exists():
        shutil.rmtree(directory)
    settings = config.index_settings()
    started = time.perf_counter()
    kb = build_kb(articles, directory, settings)
    kb.open()
    return kb, time.perf_counter() - started


class Evaluator:
    """Runs every question once per side and caches the dense and lexical lists for re-fusion."""

    def __init__(self, kb, config: Config, articles: list[Article], queries: list[Query]):
        self.kb, self.config, self.queries = kb, config, queries
        self.position: dict[int, tuple[int, int, int]] = {}  # chunk id -> (article index, start, end)
        titles = {a.title: i for i, a in enumerate(articles)}
        for record in kb.store.articles():
            for chunk in kb.store.article_chunks(record.id):
                self.position[chunk.id] = (titles[record.title], chunk.start, chunk.end)
        self.dense: dict[tuple[str, str], list[tuple[int, float]]] = {}
        self.lexical: dict[tuple[str, str], list[tuple[int, float]]] = {}
        self.fts_cache: dict = {}
        search = config.search
        started = time.perf_counter()
        for lang in ("de", "en"):
            texts = [getattr(q, lang) for q in queries]
            vectors = kb.embedder.embed_queries(texts)
            for q, text, vector in zip(queries, texts, vectors, strict=True):
                self.dense[(q.id, lang)] = kb.vectors.search(vector, search.dense_k)
                self.lexical[(q.id, lang)] = lexical_search(kb.store, text, search.lexical_k)
        self.seconds = time.perf_counter() - started

    def ranked(self, query: Query, lang: str, mode: str, search) -> list[int]:
        if mode == "dense":
            return [c for c, _ in self.dense[(query.id, lang)][:DEPTH]]
        if mode == "lexical":
            return [c for c, _ in self.lexical[(query.id, lang)][:DEPTH]]
        text = getattr(query, lang)
        hits = _fuse(self.kb.store, self.dense[(query.id, lang)], text, search, self.fts_cache)
        return [h.chunk_id for h in hits]

    def score(self, mode: str, lang: str, search=None) -> dict:
        search = search or self.config.search
        ranks = []
        for q in self.queries:
            rank = next(
                (i for i, c in enumerate(self.ranked(q, lang, mode, search), 1) if relevant(q.gold, *self.position[c])),
                None,
            )
            ranks.append(rank)
        n = len(ranks)
        return {
            "R@1": sum(1 for r in ranks if r == 1) / n,
            "R@5": sum(1 for r in ranks if r and r <= 5) / n,
            "R@10": sum(1 for r in ranks if r and r <= 10) / n,
            "MRR@10": sum(1 / r for r in ranks if r) / n,
        }


class _CachedLexical:
    """The store, with its lexical search memoised (fusion sweeps re-run the same FTS queries)."""

    def __init__(self, store, cache: dict):
        self._store, self._cache = store, cache

    def lexical_search(self, terms, k: int) -> list[tuple[int, float]]:
        key = (tuple(terms), k)
        if key not in self._cache:
            self._cache[key] = self._store.lexical_search(terms, k)
        return self._cache[key]

    def __getattr__(self, name: str):
        return getattr(self._store, name)


def _fuse(store, dense, text, search, cache: dict):
    return hybrid_search(_CachedLexical(store, cache), dense, text, DEPTH, search, "hybrid")


def evaluate(name: str, articles, queries, rebuild: bool, overrides=()) -> tuple[dict, Evaluator]:
    config = load_config(name, overrides)
    kb, build_seconds = open_kb(config, articles, rebuild)
    evaluator = Evaluator(kb, config, articles, queries)
    rows = {}
    for mode in ("hybrid", "dense", "lexical"):
        rows[mode] = {lang: evaluator.score(mode, lang) for lang in ("de", "en")}
    info = {
        "model": kb.embedder.model_id,
        "chunks": kb.store.counts()["chunks"],
        "build_seconds": round(build_seconds, 1),
        "search_seconds_for_all_queries": round(evaluator.seconds, 1),
        "rows": rows,
    }
    return info, evaluator


def sweep(evaluator: Evaluator) -> list[dict]:
    base = evaluator.config.search
    grid = []
    for dense_weight in (0.3, 0.4, 0.5, 0.6):
        for factor in (0.0, 0.1, 0.2, 0.3, 0.5):
            grid.append(
                {
                    "fusion": "score",
                    "dense_weight": dense_weight,
                    "lexical_weight": 1 - dense_weight,
                    "cross_language_lexical_factor": factor,
                }
            )
    for lexical_weight in (1.0, 2.0, 3.0):
        for factor in (0.05, 0.1, 0.25, 0.5):
            for rrf_k in (10, 60):
                grid.append(
                    {
                        "fusion": "rrf",
                        "dense_weight": 1.0,
                        "lexical_weight": lexical_weight,
                        "cross_language_lexical_factor": factor,
                        "rrf_k": rrf_k,
                    }
                )
    out = []
    for params in grid:
        search = replace(base, **params)
        de, en = evaluator.score("hybrid", "de", search), evaluator.score("hybrid", "en", search)
        out.append({**params, "de": de, "en": en})
    return out


def names_and_numbers(question: str) -> str:
    """The question's capitalised non-function words (not the first word) and anything with a digit."""
    from index.lexical import STOPWORDS, words

    tokens = words(question)
    kept = [
        t
        for i, t in enumerate(tokens)
        if any(c.isdigit() for c in t) or (i > 0 and t[0].isupper() and t.lower() not in STOPWORDS)
    ]
    return " ".join(kept)


class _NamesOnly(_CachedLexical):
    """Answers every lexical search with the names-and-numbers query of one question."""

    def __init__(self, store, cache: dict, question: str):
        super().__init__(store, cache)
        self._terms = query_terms(names_and_numbers(question)) if names_and_numbers(question) else []

    def lexical_search(self, _terms, k: int) -> list[tuple[int, float]]:
        return super().lexical_search(self._terms, k) if self._terms else []


def ablation(evaluator: Evaluator) -> dict:
    """English questions, German articles: what the lexical side should contribute across languages."""
    base = evaluator.config.search
    factor = base.cross_language_lexical_factor
    out = {
        "full question, weight 1 (language-blind)": evaluator.score(
            "hybrid", "en", replace(base, cross_language_lexical_factor=1.0)
        ),
        "no lexical evidence across languages": evaluator.score(
            "hybrid", "en", replace(base, cross_language_lexical_factor=0.0)
        ),
    }
    ranks = []
    for q in evaluator.queries:
        store = _NamesOnly(evaluator.kb.store, evaluator.fts_cache, q.en)
        hits = hybrid_search(store, evaluator.dense[(q.id, "en")], q.en, DEPTH, base, "hybrid")
        ids = [h.chunk_id for h in hits]
        ranks.append(next((i for i, c in enumerate(ids, 1) if relevant(q.gold, *evaluator.position[c])), None))
    n = len(ranks)
    out[f"names and numbers only, weight {factor}"] = {
        "R@1": sum(1 for r in ranks if r == 1) / n,
        "R@5": sum(1 for r in ranks if r and r <= 5) / n,
    }
    out[f"full question, weight {factor} (shipped)"] = evaluator.score("hybrid", "en", base)
    return out


def fmt(row: dict) -> str:
    return f"{row['R@1']:.3f} / {row['R@5']:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="default,multilingual", help="names or TOML paths, comma-separated")
    parser.add_argument("--sweep", action="store_true", help="re-fuse the last config over fusion weights")
    parser.add_argument("--rebuild", action="store_true", help="re-index the articles")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a setting")
    args = parser.parse_args(argv)
    try:
        shared_file(XQUAD_DE)
        articles = load_articles()
        queries = load_queries(articles)
    except SharedDataMissing as exc:
        print(exc)
        return 0
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "questions": len(queries),
        "configs": {},
    }
    evaluator = None
    print(f"{len(queries)} questions per language, German articles; R@1 / R@5")
    print(f"{'config':<28} {'mode':<8} {'de→de':>15} {'en→de':>15}")
    for name in args.configs.split(","):
        info, evaluator = evaluate(name, articles, queries, args.rebuild, args.set)
        result["configs"][name] = info
        for mode, row in info["rows"].items():
            print(f"{name:<28} {mode:<8} {fmt(row['de']):>15} {fmt(row['en']):>15}")
        print(f"  ({info['model']}, {info['chunks']} passages, built in {info['build_seconds']} s)")
    if evaluator is not None and evaluator.config.embedding.backend == "use-multilingual":
        result["ablation_en"] = ablation(evaluator)
        print("cross-language lexical side (last config, en→de R@1 / R@5):")
        for name, row in result["ablation_en"].items():
            print(f"  {name:<55} {fmt(row)}")
    if args.sweep and evaluator is not None:
        result["sweep"] = sweep(evaluator)
        print("fusion  dense lexical factor rrf_k   de R@1/R@5      en R@1/R@5")
        for row in result["sweep"]:
            print(
                f"{row['fusion']:<6} {row['dense_weight']:>6} {row['lexical_weight']:>7.2f}"
                f" {row['cross_language_lexical_factor']:>6} {row.get('rrf_k', '-'):>5}"
                f"  {fmt(row['de'])}  {fmt(row['en'])}"
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "multilingual.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
