"""Retrieval quality on German XQuAD: dense, lexical and hybrid side by side (issue 3).

    .venv/bin/python -m bench.retrieval [--data-dir DIR] [--rebuild] [--sweep] [--backend NAME]

The 36 German XQuAD articles are indexed once, with the default settings (``--backend`` picks
another embedding backend, e.g. ``use-multilingual``), into a data dir (default
``bench/results/retrieval-kb-<backend>``) that later runs reuse: the FTS rows are re-analysed
when ``index/lexical.py`` changed (no re-embedding), everything is rebuilt when the chunking
code, chunk settings or model changed. All 925 questions are asked in every mode.

Metric: a result is a hit when its chunk text contains one of the question's gold answer
strings (R@k: share of questions with a hit among the first k). "span" columns are stricter:
the chunk must cover the gold answer's position in the gold article. Nothing in the system sees
the answers.

Rows: the three modes of ``KnowledgeBase.search`` with the shipped settings; plain FTS5 BM25
(unicode61 tokenizer, no stemming or compound splitting) over the same chunks as the floor; and
hybrid with equal-weight RRF (the earlier default). ``--sweep`` re-fuses the cached lists over
fusion methods and weights, and checks the choice on held-out articles (2 folds, odd/even
article index): weights picked on one half, reported on the other.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.xquad import Article, Question, SharedDataMissing, build_kb, load_articles, questions  # noqa: E402
from index import chunking, embedding, lexical  # noqa: E402
from index.search import fuse, hybrid_search, lexical_search  # noqa: E402
from index.settings import IndexSettings, SearchSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
KEY_FILE = "bench-key.json"
DEPTH = 10


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build_key(settings: IndexSettings) -> dict:
    return {
        # The embedder decides the passage budget (its window), so its code is part of the key too.
        "chunking": _digest(Path(chunking.__file__), Path(embedding.__file__)),
        "chunk_settings": [settings.chunking.max_chars, settings.chunking.min_chars],
        "embedding": [settings.embedding.backend, settings.embedding.model, settings.embedding.runtime],
    }


def open_kb(articles: list[Article], data_dir: Path, rebuild: bool, backend: str):
    """The benchmark KB, rebuilt when stale; FTS rows refreshed when only the analyzer changed."""
    settings = IndexSettings()
    settings.embedding.backend = backend
    key = build_key(settings)
    lexical_key = _digest(Path(lexical.__file__))
    key_path = data_dir / KEY_FILE
    stored = json.loads(key_path.read_text()) if key_path.exists() else None
    if data_dir.exists() and (rebuild or stored is None or stored.get("build") != key):
        if stored is None and any(data_dir.iterdir()):
            sys.exit(f"{data_dir} holds something else than a benchmark KB; remove it or pass another --data-dir")
        shutil.rmtree(data_dir)
        stored = None
    started = time.perf_counter()
    kb = build_kb(articles, data_dir, settings)
    build_seconds = time.perf_counter() - started
    if stored is None or stored.get("lexical") != lexical_key:
        refresh_fts(kb)
    key_path.write_text(json.dumps({"build": key, "lexical": lexical_key}))
    return kb, build_seconds


def refresh_fts(kb) -> None:
    """Re-analyse every chunk into FTS5 with the current analyzer (what a fresh import would write)."""
    conn = kb.store._write_conn
    rows = conn.execute(
        "SELECT c.id, c.text, a.title FROM chunks c JOIN articles a ON a.id = c.article_id ORDER BY c.id"
    ).fetchall()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM chunks_fts")
    conn.executemany(
        "INSERT INTO chunks_fts (rowid, title_terms, terms) VALUES (?, ?, ?)",
        [(cid, " ".join(lexical.analyze(title)), " ".join(lexical.analyze(text))) for cid, text, title in rows],
    )
    conn.execute("COMMIT")


class Evaluation:
    """Cached dense and lexical candidate lists per question, and the scoring of rankings."""

    def __init__(self, kb, articles: list[Article], qs: list[Question]):
        self.kb, self.qs = kb, qs
        self.settings = kb.settings.search
        conn = kb.store.reader()
        self.chunks = {
            cid: (text, title, start, end)
            for cid, text, title, start, end in conn.execute(
                "SELECT c.id, c.text, a.title, c.start, c.end FROM chunks c JOIN articles a ON a.id = c.article_id"
            )
        }
        self.titles = [a.title for a in articles]
        started = time.perf_counter()
        vectors = kb.embedder.embed_queries([q.question for q in qs])
        index = kb.vectors
        self.dense = [index.search(v, self.settings.dense_k) for v in vectors]
        self.dense_seconds = time.perf_counter() - started
        started = time.perf_counter()
        self.lexical = [lexical_search(kb.store, q.question, self.settings.lexical_k) for q in qs]
        self.lexical_seconds = time.perf_counter() - started

    def hit(self, q: Question, chunk_id: int) -> bool:
        text = self.chunks[chunk_id][0]
        return any(answer in text for answer in q.answers)

    def covers(self, q: Question, chunk_id: int) -> bool:
        _, title, start, end = self.chunks[chunk_id]
        return title == self.titles[q.article] and start <= q.answer_start and q.answer_end <= end

    def score(self, rankings: list[list[int]], subset=None) -> dict:
        pairs = [
            (q, r) for i, (q, r) in enumerate(zip(self.qs, rankings, strict=True)) if subset is None or i in subset
        ]
        n = len(pairs)

        def first(q, ranking, test):
            return next((rank for rank, c in enumerate(ranking[:DEPTH], 1) if test(q, c)), None)

        ranks = [first(q, r, self.hit) for q, r in pairs]
        spans = [first(q, r, self.covers) for q, r in pairs]
        return {
            "R@1": sum(r == 1 for r in ranks) / n,
            "R@5": sum(bool(r) and r <= 5 for r in ranks) / n,
            "R@10": sum(bool(r) for r in ranks) / n,
            "MRR@10": sum(1 / r for r in ranks if r) / n,
            "span R@1": sum(r == 1 for r in spans) / n,
            "span R@5": sum(bool(r) and r <= 5 for r in spans) / n,
        }

    def mode(self, mode: str, settings: SearchSettings | None = None) -> list[list[int]]:
        """Rankings exactly as ``KnowledgeBase.search`` makes them (the query embedding is batched)."""
        settings = settings or self.settings
        out = []
        for q, dense, lex in zip(self.qs, self.dense, self.lexical, strict=True):
            store = _CachedLexical(self.kb.store, lex)
            hits = hybrid_search(store, dense if mode != "lexical" else [], q.question, DEPTH, settings, mode)
            out.append([h.chunk_id for h in hits])
        return out

    def fused(self, settings: SearchSettings) -> list[list[int]]:
        """Fusion only (same language throughout, so no cross-language factor applies)."""
        return [[c for c, _ in fuse(d, lx, settings)[:DEPTH]] for d, lx in zip(self.dense, self.lexical, strict=True)]


class _CachedLexical:
    """The store, except that its lexical search answers from the cached list (same results)."""

    def __init__(self, store, lexical_list):
        self._store, self._lexical = store, lexical_list

    def lexical_search(self, _terms, k: int):
        return self._lexical[:k]

    def __getattr__(self, name: str):
        return getattr(self._store, name)


def plain_bm25(ev: Evaluation) -> list[list[int]]:
    """The floor: FTS5 BM25 over the raw chunk texts (unicode61, diacritics removed, no stemming)."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5(title, body, tokenize='unicode61 remove_diacritics 2')")
    db.executemany(
        "INSERT INTO f (rowid, title, body) VALUES (?, ?, ?)", [(c, v[1], v[0]) for c, v in ev.chunks.items()]
    )
    out = []
    for q in ev.qs:
        words = [w for w in lexical.words(q.question.lower()) if w not in lexical.STOPWORDS] or lexical.words(
            q.question
        )
        match = " OR ".join(f'"{w}"' for w in dict.fromkeys(words))
        rows = db.execute(
            "SELECT rowid FROM f WHERE f MATCH ? ORDER BY bm25(f, 0.5, 1.0) LIMIT ?", (match, DEPTH)
        ).fetchall()
        out.append([r[0] for r in rows])
    return out


def sweep(ev: Evaluation) -> list[dict]:
    base = ev.settings
    configs = [
        replace(base, fusion="score", dense_weight=a, lexical_weight=round(1 - a, 2)) for a in (0.2, 0.3, 0.4, 0.5, 0.6)
    ]
    configs += [
        replace(base, fusion="rrf", dense_weight=wd, lexical_weight=1.0, rrf_k=k)
        for wd in (1.0, 0.5, 0.3, 0.2)
        for k in (60, 10, 2)
    ]
    folds = [{i for i, q in enumerate(ev.qs) if q.article % 2 == f} for f in (0, 1)]
    rows = []
    for s in configs:
        ranking = ev.fused(s)
        rows.append({"settings": s, "all": ev.score(ranking), "folds": [ev.score(ranking, f) for f in folds]})
    return rows


def heldout(rows: list[dict], metric: str = "R@1") -> list[tuple[str, float]]:
    """Per fold: the configuration best on the other fold, and its score on this one."""
    out = []
    for fold in (0, 1):
        best = max(rows, key=lambda r: r["folds"][1 - fold][metric])
        out.append((describe(best["settings"]), best["folds"][fold][metric]))
    return out


def describe(s: SearchSettings) -> str:
    if s.fusion == "rrf":
        return f"rrf dense {s.dense_weight} / lexical {s.lexical_weight}, k={s.rrf_k}"
    return f"score dense {s.dense_weight} / lexical {s.lexical_weight}"


def fmt(m: dict) -> str:
    return " | ".join(f"{m[k]:.3f}" for k in ("R@1", "R@5", "R@10", "MRR@10", "span R@1", "span R@5"))


HEADER = "| rows | R@1 | R@5 | R@10 | MRR@10 | span R@1 | span R@5 |\n|---|---|---|---|---|---|---|"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="benchmark KB (built if missing)")
    parser.add_argument("--backend", default="sentence-transformers", help="embedding backend (default: bundled model)")
    parser.add_argument("--rebuild", action="store_true", help="re-import and re-embed everything")
    parser.add_argument("--sweep", action="store_true", help="also sweep fusion methods and weights")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    try:
        articles = load_articles()
    except SharedDataMissing as exc:
        print(exc)
        return 0
    qs = questions(articles)
    data_dir = args.data_dir or RESULTS / f"retrieval-kb-{args.backend}"
    kb, build_seconds = open_kb(articles, data_dir, args.rebuild, args.backend)
    try:
        ev = Evaluation(kb, articles, qs)
        lengths = [len(v[0]) for v in ev.chunks.values()]
        default = ev.settings
        rows = {
            f"dense ({kb.embedder.model_id.split('/')[-1]})": ev.score(ev.mode("dense")),
            "lexical (FTS5 BM25, German analyzer)": ev.score(ev.mode("lexical")),
            f"**hybrid ({describe(default)})**": ev.score(ev.mode("hybrid")),
            "floor: plain FTS5 BM25 (unicode61, no stemming)": ev.score(plain_bm25(ev)),
            "hybrid, equal-weight RRF (k=60, earlier default)": ev.score(
                ev.mode("hybrid", replace(default, fusion="rrf", dense_weight=1.0, lexical_weight=1.0, rrf_k=60))
            ),
        }
        print(
            f"German XQuAD: {len(articles)} articles, {len(qs)} questions; {len(lengths)} chunks, "
            f"median {statistics.median(lengths):.0f} chars (min {min(lengths)}, max {max(lengths)}); "
            f"index build {build_seconds:.1f} s (0 when reused)\n"
        )
        print(HEADER)
        for name, m in rows.items():
            print(f"| {name} | {fmt(m)} |")
        print(
            f"\nquery time per question: dense {1000 * ev.dense_seconds / len(qs):.1f} ms (batched embedding), "
            f"lexical {1000 * ev.lexical_seconds / len(qs):.1f} ms"
        )
        result = {
            "machine": platform.processor() or platform.machine(),
            "chunks": len(lengths),
            "median_chunk_chars": statistics.median(lengths),
            "rows": rows,
        }
        if args.sweep:
            swept = sweep(ev)
            print("\nFusion sweep (cached lists; all 925 questions, then odd / even articles):\n")
            print("| fusion | R@1 | R@5 | R@1 even | R@1 odd |\n|---|---|---|---|---|")
            for r in swept:
                a, f0, f1 = r["all"], r["folds"][0], r["folds"][1]
                cells = [a["R@1"], a["R@5"], f0["R@1"], f1["R@1"]]
                print(f"| {describe(r['settings'])} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
            print("\nHeld out: weights chosen on one half of the articles, R@1 on the other half:")
            for fold, (name, value) in zip(("even", "odd"), heldout(swept), strict=True):
                print(f"- {fold} articles: {name} -> R@1 {value:.3f}")
            result["sweep"] = [{"fusion": describe(r["settings"]), **r["all"]} for r in swept]
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    finally:
        kb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
