"""Answer benchmark on German XQuAD: answer-hit, body length, citation validity, abstention, latency.

    .venv/bin/python -m bench.answers [--limit N] [--rebuild] [--min-relevance X]

Knowledge bases (built once, reused; ``--rebuild`` after a change to chunking, analysis or model):
- ``full``: all 36 articles; every question is asked against it (answer-hit, length, citations).
- ``heldout-F`` for F in 0..3: all articles except those with index % 4 == F; the questions of the
  held-out articles are asked against it, so every question is asked once with its article absent.
  A ``found`` answer there is a false answer.

The answerer runs with ``min_relevance = 0`` and records each answer's relevance, so one run gives
the whole threshold sweep; the figures at the configured threshold are what the bot would do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.xquad import Article, Question, SharedDataMissing, build_kb, load_articles  # noqa: E402
from bot.answer import Answer, Answerer  # noqa: E402
from bot.config import AnswerSettings  # noqa: E402
from index.settings import IndexSettings  # noqa: E402

RESULTS = Path(__file__).parent / "results"
KB_ROOT = RESULTS / "answers-kb"
FOLDS = 4
_MARKER = re.compile(r"\[(\d+)\]")


@dataclass
class Row:
    question: str
    hit: bool
    chars: int
    valid: bool
    relevance: float
    seconds: float


def fold_of(article_index: int) -> int:
    return article_index % FOLDS


def index_settings(threads: int) -> IndexSettings:
    settings = IndexSettings()
    settings.embedding.threads = threads
    return settings


def open_kbs(articles: list[Article], rebuild: bool, threads: int = 1, embedder=None):
    """(full KB, {fold: held-out KB}); the embedder is shared so the model loads once."""
    if rebuild and KB_ROOT.exists():
        shutil.rmtree(KB_ROOT)
    full = build_kb(articles, KB_ROOT / "full", settings=index_settings(threads), embedder=embedder)
    embedder = full.embedder
    heldout = {}
    for fold in range(FOLDS):
        kept = [a for i, a in enumerate(articles) if fold_of(i) != fold]
        heldout[fold] = build_kb(kept, KB_ROOT / f"heldout-{fold}", settings=index_settings(threads), embedder=embedder)
    return full, heldout


def citations_valid(answer: Answer, chunk_text) -> bool:
    """A found body has >= 1 citation, every marker resolves, every quote is in its chunk."""
    if not answer.found:
        return True
    numbers = {c.n for c in answer.citations}
    markers = {int(m) for m in _MARKER.findall(answer.body)}
    if not markers or not markers <= numbers:
        return False
    return all(c.quote and c.quote in chunk_text(c.chunk_id) for c in answer.citations)


def ask(answerer: Answerer, question: Question, chunk_text) -> Row:
    started = time.perf_counter()
    answer = answerer.answer(question.question)
    seconds = time.perf_counter() - started
    hit = answer.found and any(a in answer.body for a in question.answers)
    return Row(
        question=question.question,
        hit=hit,
        chars=len(answer.body),
        valid=citations_valid(answer, chunk_text),
        relevance=answer.relevance,
        seconds=seconds,
    )


def chunk_reader(kb):
    def chunk_text(chunk_id: int) -> str:
        record = kb.store.chunks_by_id([chunk_id]).get(chunk_id)
        return record.text if record else ""

    return chunk_text


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def at_threshold(answered: list[Row], absent: list[Row], threshold: float) -> dict:
    found = [r for r in answered if r.relevance >= threshold]
    return {
        "min_relevance": threshold,
        "answer_hit": sum(r.hit for r in found) / len(answered),
        "found_rate": len(found) / len(answered),
        "median_chars": statistics.median(r.chars for r in found) if found else 0,
        "false_answer_rate": sum(r.relevance >= threshold for r in absent) / len(absent) if absent else 0.0,
    }


def run(limit: int | None, rebuild: bool, settings: AnswerSettings, threads: int) -> dict:
    articles = load_articles()
    full, heldout = open_kbs(articles, rebuild, threads)
    probe = replace(settings, min_relevance=0.0)
    questions = [q for a in articles for q in a.questions]
    if limit:
        questions = questions[:: max(1, len(questions) // limit)][:limit]
    answerer = Answerer(full, probe)
    answerer.answer("Warm-up: wie viele Artikel gibt es?")  # model and caches loaded before timing
    answered = [ask(answerer, q, chunk_reader(full)) for q in questions]
    absent = []
    for fold, kb in heldout.items():
        fold_answerer = Answerer(kb, probe)
        absent += [ask(fold_answerer, q, chunk_reader(kb)) for q in questions if fold_of(q.article) == fold]
    thresholds = sorted({round(0.05 * i, 2) for i in range(0, 21)} | {settings.min_relevance})
    latencies = [r.seconds for r in answered]
    return {
        "questions": len(answered),
        "absent_questions": len(absent),
        "valid_citation_rate": sum(r.valid for r in answered + absent) / len(answered + absent),
        "hit_ignoring_threshold": sum(r.hit for r in answered) / len(answered),
        "median_chars_all": statistics.median(r.chars for r in answered),
        "latency_p50_ms": 1000 * percentile(latencies, 0.5),
        "latency_p95_ms": 1000 * percentile(latencies, 0.95),
        "configured": at_threshold(answered, absent, settings.min_relevance),
        "sweep": [at_threshold(answered, absent, t) for t in thresholds],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="ask only N questions (spread over the articles)")
    parser.add_argument("--rebuild", action="store_true", help="delete and rebuild the benchmark knowledge bases")
    parser.add_argument("--min-relevance", type=float, help="threshold to report (default: the configured one)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable latency on a shared box)")
    args = parser.parse_args(argv)
    settings = AnswerSettings()
    if args.min_relevance is not None:
        settings.min_relevance = args.min_relevance
    try:
        result = run(args.limit, args.rebuild, settings, args.threads)
    except SharedDataMissing as exc:
        print(exc)
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "answers.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "sweep"}, indent=2))
    print("min_relevance  answer_hit  found  median_chars  false_answer")
    for row in result["sweep"]:
        print(
            f"{row['min_relevance']:>13.2f}  {row['answer_hit']:>10.3f}  {row['found_rate']:>5.3f}"
            f"  {row['median_chars']:>12.0f}  {row['false_answer_rate']:>12.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
