"""Embedding speed (issue 6): torch fp32 against ONNX int8 side by side, and a full ingest.

    .venv/bin/python -m bench.embed_speed [--chunks 600] [--rounds 3] [--skip-ingest] [--ingest-runtimes onnx-int8]

1. Throughput: passages of the 10kGNAD test articles (chunked exactly as the knowledge base
   chunks them) are embedded by each runtime in alternating rounds (torch, onnx, use, torch, ...),
   so every runtime sees the same machine load; the median of the rounds is reported, with the
   ratio to torch computed per round. Threads: the machine's cores for every runtime.
2. Quality: XQuAD de→de and en→de R@1/R@5 of the default configuration with each runtime
   (bench/multilingual.py's metric), dense side alone and hybrid.
3. Ingest: ``articlebot import`` of all 1,028 articles of ``10kgnad/test.csv`` into a fresh
   data dir, end to end (process start, model load, extraction, chunking, embedding, SQLite, FTS,
   FAISS, progress bar on stderr), timed from outside.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.xquad import SharedDataMissing, shared_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
GNAD = Path("data/10kgnad/test.csv")


def gnad_texts() -> list[str]:
    with open(shared_file(GNAD), encoding="utf-8", newline="") as f:
        return [row[1] for row in csv.reader(f, delimiter=";", quotechar="'") if len(row) >= 2 and row[1].strip()]


def write_jsonl(texts: list[str], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for text in texts:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")


def embedders() -> dict:
    from index.embedding import load_embedder
    from index.settings import EmbeddingSettings

    return {
        "torch": load_embedder(EmbeddingSettings(backend="sentence-transformers", runtime="torch")),
        "onnx-int8": load_embedder(EmbeddingSettings(backend="sentence-transformers", runtime="onnx-int8")),
        "use-multilingual": load_embedder(EmbeddingSettings(backend="use-multilingual")),
    }


def passages(texts: list[str], embedder, limit: int) -> tuple[list[str], list[str]]:
    from index.chunking import chunk_text
    from index.extract import from_text

    chunks, titles = [], []
    for text in texts:
        doc = from_text(text)
        for chunk in chunk_text(
            doc.text,
            max_tokens=embedder.passage_budget(doc.title),
            count_tokens=embedder.count_tokens,
        ):
            chunks.append(chunk.text)
            titles.append(doc.title)
        if len(chunks) >= limit:
            break
    return chunks[:limit], titles[:limit]


def throughput(models: dict, chunks: list[str], titles: list[str], rounds: int) -> dict:
    import numpy as np

    times: dict[str, list[float]] = {name: [] for name in models}
    reference = None
    agreement = {}
    for model in models.values():  # warm-up: first call pays lazy loading
        model.embed_passages(chunks[:8], titles[:8])
    for _ in range(rounds):
        for name, model in models.items():
            started = time.perf_counter()
            vectors = model.embed_passages(chunks, titles)
            times[name].append(time.perf_counter() - started)
            if name == "torch":
                reference = vectors
            elif name == "onnx-int8" and reference is not None:
                agreement = {
                    "cosine_to_fp32_mean": float(np.mean(np.sum(vectors * reference, axis=1))),
                    "cosine_to_fp32_min": float(np.min(np.sum(vectors * reference, axis=1))),
                }
    out = {}
    for name, values in times.items():
        ratios = [t / o for t, o in zip(times["torch"], values, strict=True)]
        out[name] = {
            "chunks_per_s_median": len(chunks) / statistics.median(values),
            "chunks_per_s_rounds": [round(len(chunks) / v, 1) for v in values],
            "speedup_vs_torch_median": statistics.median(ratios),
        }
    out["onnx-int8"].update(agreement)
    return out


def quality() -> dict:
    from bench import multilingual as ml

    articles = ml.load_articles()
    queries = ml.load_queries(articles)
    out = {}
    for runtime in ("torch", "onnx-int8"):
        info, _ = ml.evaluate("default", articles, queries, rebuild=False, overrides=[f'embedding.runtime="{runtime}"'])
        out[runtime] = info["rows"]
    return out


def ingest(runtime: str, texts: list[str]) -> dict:
    work = Path(tempfile.mkdtemp(prefix="ingest-"))
    try:
        source = work / "10kgnad-test.jsonl"
        write_jsonl(texts, source)
        config = work / "config.toml"
        config.write_text(f'[embedding]\nruntime = "{runtime}"\n')
        command = [
            str(Path(sys.executable)),
            "-m",
            "bot.cli",
            "--config",
            str(config),
            "--data-dir",
            str(work / "data"),
            "import",
            str(source),
        ]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        stats = subprocess.run(
            [*command[:7], "stats", "--json"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        counts = json.loads(stats)
        return {
            "seconds": round(seconds, 1),
            "exit": done.returncode,
            "summary": done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "",
            "articles": counts.get("articles"),
            "chunks": counts.get("chunks"),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure_throughput(result: dict, texts: list[str], args) -> None:
    models = embedders()
    chunks, titles = passages(texts, models["torch"], args.chunks)
    result["passages"] = len(chunks)
    result["mean_passage_chars"] = round(statistics.mean(len(c) for c in chunks))
    result["throughput"] = throughput(models, chunks, titles, args.rounds)
    for name, row in result["throughput"].items():
        print(
            f"{name:<18} {row['chunks_per_s_median']:7.1f} passages/s  ×{row['speedup_vs_torch_median']:.2f} vs torch"
            f"  rounds {row['chunks_per_s_rounds']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=600, help="passages per throughput round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--only-ingest", action="store_true", help="skip throughput and quality")
    parser.add_argument("--ingest-runtimes", default="onnx-int8", help="comma-separated runtimes to ingest with")
    args = parser.parse_args(argv)
    try:
        texts = gnad_texts()
    except SharedDataMissing as exc:
        print(exc)
        return 0
    result = {
        "machine": f"{platform.machine()} {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if args.only_ingest:
        args.skip_quality = True
    else:
        measure_throughput(result, texts, args)
    if not args.skip_quality:
        result["quality"] = quality()
        for runtime, rows in result["quality"].items():
            for mode in ("dense", "hybrid"):
                de, en = rows[mode]["de"], rows[mode]["en"]
                print(
                    f"{runtime:<10} {mode:<7} de→de R@1 {de['R@1']:.3f} R@5 {de['R@5']:.3f}"
                    f"  en→de R@1 {en['R@1']:.3f} R@5 {en['R@5']:.3f}"
                )
    if not args.skip_ingest:
        result["ingest"] = {}
        for runtime in args.ingest_runtimes.split(","):
            result["ingest"][runtime] = ingest(runtime, texts)
            print(f"ingest {runtime}: {result['ingest'][runtime]}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "embed_speed_ingest.json" if args.only_ingest else "embed_speed.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
