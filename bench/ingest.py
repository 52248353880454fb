"""Ingestion throughput, peak memory and search latency on 10kGNAD (issue 3).

    .venv/bin/python -m bench.ingest [--data-dir DIR] [--limit N] [--queries 200] [--rounds 3]

The 1,028 German news articles of the 10kGNAD test split (``../shared/data/10kgnad/test.csv``,
``label;'text'``) are imported through ``KnowledgeBase.add_many`` into a fresh data dir (default
``bench/results/ingest-kb``, emptied first), one article per row: title = the first sentence
(or its first 10 words when longer), text = the whole row. Reported: wall time, articles/s,
chunks/s, and the process's peak RSS (model included; the RSS after loading the model is given
for comparison).

Then, in the same warm process, ``KnowledgeBase.search`` is timed on ``--queries`` questions made
from article sentences (a random non-first sentence of a random article, at most 14 words; fixed
seed) in hybrid, dense and lexical mode, ``--rounds`` times; p50/p95 are medians over rounds.
"Found" is the share of those queries whose source article is among the first 5 hits: a sanity
check, not a quality measure (the query is copied from the article).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.xquad import SharedDataMissing, shared_file  # noqa: E402
from index.chunking import split_sentences  # noqa: E402
from index.extract import Document  # noqa: E402
from index.kb import KnowledgeBase  # noqa: E402
from index.settings import IndexSettings  # noqa: E402

GNAD = Path("data/10kgnad/test.csv")
DEFAULT_DIR = Path(__file__).parent / "results" / "ingest-kb"
TITLE_WORDS = 10
QUERY_WORDS = 14


def load_documents(limit: int | None = None) -> list[Document]:
    with shared_file(GNAD).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";", quotechar="'"))
    docs = []
    for label, text in rows[:limit]:
        text = text.strip()
        first = split_sentences(text)[0] if text else ""
        words = first.split()
        title = first if len(words) <= TITLE_WORDS else " ".join(words[:TITLE_WORDS]) + " …"
        docs.append(Document(title=title, text=text, source=f"10kgnad:{label}"))
    return docs


def make_queries(docs: list[Document], n: int, seed: int = 3) -> list[tuple[str, str]]:
    """(query, source title) pairs: a random non-first sentence of a random article."""
    rng = random.Random(seed)
    queries = []
    for doc in rng.sample(docs, min(n, len(docs))):
        sentences = [s for s in split_sentences(doc.text)[1:] if len(s.split()) >= 5] or split_sentences(doc.text)
        words = rng.choice(sentences).split()
        queries.append((" ".join(words[:QUERY_WORDS]), doc.title))
    return queries


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_searches(kb: KnowledgeBase, queries: list[tuple[str, str]], mode: str) -> tuple[list[float], float]:
    times, found = [], 0
    for query, title in queries:
        started = time.perf_counter()
        hits = kb.search(query, k=5, mode=mode)
        times.append(1000 * (time.perf_counter() - started))
        found += any(h.title == title for h in hits)
    return times, found / len(queries)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DIR, help="emptied, then filled")
    parser.add_argument("--limit", type=int, help="only the first N articles")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds (medians reported)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    try:
        docs = load_documents(args.limit)
    except SharedDataMissing as exc:
        print(exc)
        return 0
    load_start = os.getloadavg()[0]  # other processes on the machine skew every timing below
    if args.data_dir.exists():
        shutil.rmtree(args.data_dir)
    kb = KnowledgeBase(IndexSettings(data_dir=str(args.data_dir)))
    try:
        started = time.perf_counter()
        kb.open()  # model and (empty) index, so ingestion time is ingestion only
        load_seconds = time.perf_counter() - started
        rss_model = current_rss_mb()
        model_id = kb.embedder.model_id
        from index.lexical import lexicon

        started = time.perf_counter()
        lexicon()  # the compound lexicon (cached on disk after its first build)
        lexicon_seconds = time.perf_counter() - started

        results: dict[str, int] = {"added": 0, "duplicates": 0, "rejected": 0}

        def count(_doc, result) -> None:
            key = "added" if not isinstance(result, Exception) else type(result).__name__
            results[key] = results.get(key, 0) + 1

        started = time.perf_counter()
        kb.add_many(docs, on_result=count)
        ingest_seconds = time.perf_counter() - started
        peak_ingest = rss_mb()
        stats = kb.stats()
        chunks, articles = stats["chunks"], stats["articles"]

        queries = make_queries(docs, args.queries)
        for query, _ in queries[:10]:  # warm-up: first calls pay lazy set-up
            kb.search(query, mode="hybrid")
        latency: dict[str, dict] = {}
        for mode in ("hybrid", "dense", "lexical"):
            rounds = [time_searches(kb, queries, mode) for _ in range(args.rounds)]
            latency[mode] = {
                "p50_ms": statistics.median(percentile(t, 0.50) for t, _ in rounds),
                "p95_ms": statistics.median(percentile(t, 0.95) for t, _ in rounds),
                "found@5": rounds[0][1],
            }
        peak_total = rss_mb()
    finally:
        kb.close()

    print(f"10kGNAD test split: {len(docs)} articles, {sum(len(d.text) for d in docs):,} characters")
    print("load average (1 min) at start / end: " + " / ".join(f"{x:.1f}" for x in (load_start, os.getloadavg()[0])))
    print(
        f"model {model_id}; load {load_seconds:.1f} s, compound lexicon {lexicon_seconds:.2f} s; "
        f"RSS after load {rss_model:.0f} MB\n"
    )
    print("| ingestion | value |\n|---|---|")
    print(f"| articles added / other | {results['added']} / {len(docs) - results['added']} |")
    print(f"| chunks | {chunks} (median {median_chunk(args.data_dir):.0f} chars) |")
    print(f"| wall time | {ingest_seconds:.1f} s |")
    print(f"| articles/s | {articles / ingest_seconds:.2f} |")
    print(f"| chunks/s | {chunks / ingest_seconds:.1f} |")
    print(f"| peak RSS during ingestion | {peak_ingest:.0f} MB |")
    print(f"| peak RSS incl. searches | {peak_total:.0f} MB |")
    print(f"\nsearch latency, warm, {len(queries)} queries x {args.rounds} rounds, k=5, {chunks} chunks:\n")
    print("| mode | p50 ms | p95 ms | source article in top 5 |\n|---|---|---|---|")
    for mode, m in latency.items():
        print(f"| {mode} | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} | {m['found@5']:.3f} |")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": platform.processor() or platform.machine(),
                    "model": model_id,
                    "articles": articles,
                    "chunks": chunks,
                    "ingest_seconds": ingest_seconds,
                    "peak_rss_mb": peak_total,
                    "latency": latency,
                },
                indent=2,
            )
        )
    return 0


def median_chunk(data_dir: Path) -> float:
    import sqlite3

    from index.kb import DB_FILE

    with sqlite3.connect(data_dir / DB_FILE) as conn:
        return statistics.median(r[0] for r in conn.execute("SELECT length(text) FROM chunks"))


if __name__ == "__main__":
    sys.exit(main())
