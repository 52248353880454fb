"""Answer benchmark on German XQuAD: answer-hit, body length, citation validity, abstention, latency.

    .venv/bin/python -m bench.answers [--limit N] [--rebuild] [--min-relevance X] [--fit] [--config FILE]

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

import numpy as np  # noqa: E402

from bench.xquad import (  # noqa: E402
    Article,
    Question,
    SharedDataMissing,
    build_kb,
    load_articles,
    shared_file,
)
from bot.answer import Answer, Answerer  # noqa: E402
from bot.config import AnswerSettings, Config, parse_config  # noqa: E402
from bot.evidence import CROSS_LANGUAGE_COEFFICIENTS, RELEVANCE_COEFFICIENTS  # noqa: E402
from index.settings import IndexSettings  # noqa: E402

RESULTS = Path(__file__).parent / "results"
KB_ROOT = RESULTS / "answers-kb"
FOLDS = 4
XQUAD_EN = Path("data/xquad-de/xquad.en.dev.json")
WARM_SAMPLE = 200
_MARKER = re.compile(r"\[(\d+)\]")


@dataclass
class Row:
    question: str
    hit: bool
    chars: int
    valid: bool
    relevance: float
    seconds: float
    features: dict[str, float]
    fold: int


def fold_of(article_index: int) -> int:
    return article_index % FOLDS


def index_settings(config: Config, threads: int) -> IndexSettings:
    settings = config.index_settings()
    settings.embedding.threads = threads
    return settings


def kb_root(config_path: str | None) -> Path:
    """One set of benchmark KBs per config file: vectors of different models never mix."""
    return KB_ROOT if not config_path else KB_ROOT.with_name(f"{KB_ROOT.name}-{Path(config_path).stem}")


def open_kbs(articles: list[Article], rebuild: bool, config: Config | None = None, threads: int = 1, embedder=None):
    """(full KB, {fold: held-out KB}); the embedder is shared so the model loads once."""
    config = config or Config()
    root = kb_root(None if config.source == "defaults" else config.source)
    if rebuild and root.exists():
        shutil.rmtree(root)
    full = build_kb(articles, root / "full", settings=index_settings(config, threads), embedder=embedder)
    embedder = full.embedder
    heldout = {}
    for fold in range(FOLDS):
        kept = [a for i, a in enumerate(articles) if fold_of(i) != fold]
        heldout[fold] = build_kb(
            kept, root / f"heldout-{fold}", settings=index_settings(config, threads), embedder=embedder
        )
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
    answer, evidence = answerer.answer_with_evidence(question.question)
    seconds = time.perf_counter() - started
    hit = answer.found and any(a in answer.body for a in question.answers)
    return Row(
        question=question.question,
        hit=hit,
        chars=len(answer.body),
        valid=citations_valid(answer, chunk_text),
        relevance=answer.relevance,
        seconds=seconds,
        features=evidence.features,
        fold=fold_of(question.article),
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


def run(limit: int | None, rebuild: bool, config: Config, threads: int, fit: bool = False) -> dict:
    settings = config.answer
    articles = load_articles()
    full, heldout = open_kbs(articles, rebuild, config, threads)
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
    cold = [r.seconds for r in answered]
    # The same questions again: passages' sentence vectors are cached, as for a follow-up or a repeat.
    warm = [ask(answerer, q, chunk_reader(full)).seconds for q in questions[:WARM_SAMPLE]]
    # The same questions in English against the German articles, scored on the German gold answers.
    english = english_questions(questions)
    en_answered = [ask(answerer, q, chunk_reader(full)) for q in english]
    en_absent = []
    for fold, kb in heldout.items():
        fold_answerer = Answerer(kb, probe)
        en_absent += [ask(fold_answerer, q, chunk_reader(kb)) for q in english if fold_of(q.article) == fold]
    result = {
        "questions": len(answered),
        "absent_questions": len(absent),
        "valid_citation_rate": sum(r.valid for r in answered + absent) / len(answered + absent),
        "hit_ignoring_threshold": sum(r.hit for r in answered) / len(answered),
        "median_chars_all": statistics.median(r.chars for r in answered),
        "latency_cold_p50_ms": 1000 * percentile(cold, 0.5),
        "latency_cold_p95_ms": 1000 * percentile(cold, 0.95),
        "latency_warm_p50_ms": 1000 * percentile(warm, 0.5),
        "latency_warm_p95_ms": 1000 * percentile(warm, 0.95),
        "configured": at_threshold(answered, absent, settings.min_relevance),
        "english_hit_ignoring_threshold": sum(r.hit for r in en_answered) / len(en_answered),
        # Cold for the word match (each passage's words embedded once), warm for the sentence vectors.
        "english_latency_p50_ms": 1000 * percentile([r.seconds for r in en_answered], 0.5),
        "english_latency_p95_ms": 1000 * percentile([r.seconds for r in en_answered], 0.95),
        "english_configured": at_threshold(en_answered, en_absent, settings.min_relevance),
        "sweep": [at_threshold(answered, absent, t) for t in thresholds],
        "english_sweep": [at_threshold(en_answered, en_absent, t) for t in thresholds],
    }
    if fit:
        result["fit"] = refit_relevance(answered, absent, settings, list(RELEVANCE_COEFFICIENTS))
        result["fit_cross_language"] = refit_relevance(
            en_answered, en_absent, settings, list(CROSS_LANGUAGE_COEFFICIENTS)
        )
    return result


def english_questions(questions: list[Question]) -> list[Question]:
    """The XQuAD English wording of each question, keeping the German gold answers and article."""
    german = {q.id: q for q in questions}
    return [
        replace(german[q.id], question=q.question)
        for article in load_articles(shared_file(XQUAD_EN))
        for q in article.questions
        if q.id in german
    ]


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 100) -> np.ndarray:
    """L2-regularised logistic regression by Newton steps; the last weight is the intercept."""
    x1 = np.c_[x, np.ones(len(x))]
    w = np.zeros(x1.shape[1])
    penalty = np.diag(np.r_[np.full(x.shape[1], l2), 0.0])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-x1 @ w))
        gradient = x1.T @ (p - y) + penalty @ w
        hessian = (x1.T * (p * (1 - p))) @ x1 + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def refit_relevance(answered: list[Row], absent: list[Row], settings: AnswerSettings, names: list[str]) -> dict:
    """Refit the relevance model: article-grouped cross-validated figures, then the fit on everything.

    Label 1: a question asked with its article present; 0: asked with it absent. Paste the printed
    coefficients into bot/evidence.py (RELEVANCE_COEFFICIENTS and RELEVANCE_INTERCEPT for ``fit``,
    CROSS_LANGUAGE_COEFFICIENTS and CROSS_LANGUAGE_INTERCEPT for ``fit_cross_language``).
    """
    rows = answered + absent
    x = np.array([[r.features.get(n, 0.0) for n in names] for r in rows])
    y = np.r_[np.ones(len(answered)), np.zeros(len(absent))]
    folds = np.array([r.fold for r in rows])
    predicted = np.zeros(len(rows))
    for fold in range(FOLDS):
        w = fit_logistic(x[folds != fold], y[folds != fold])
        predicted[folds == fold] = 1.0 / (1.0 + np.exp(-(x[folds == fold] @ w[:-1] + w[-1])))
    cv_answered = [replace(r, relevance=float(p)) for r, p in zip(answered, predicted[: len(answered)], strict=True)]
    cv_absent = [replace(r, relevance=float(p)) for r, p in zip(absent, predicted[len(answered) :], strict=True)]
    w = fit_logistic(x, y)
    thresholds = sorted({round(0.05 * i, 2) for i in range(0, 21)} | {settings.min_relevance})
    return {
        "coefficients": {n: round(float(v), 2) for n, v in zip(names, w[:-1], strict=True)},
        "intercept": round(float(w[-1]), 2),
        "cross_validated_sweep": [at_threshold(cv_answered, cv_absent, t) for t in thresholds],
    }


def print_sweep(sweep: list[dict]) -> None:
    print("min_relevance  answer_hit  found  median_chars  false_answer")
    for row in sweep:
        print(
            f"{row['min_relevance']:>13.2f}  {row['answer_hit']:>10.3f}  {row['found_rate']:>5.3f}"
            f"  {row['median_chars']:>12.0f}  {row['false_answer_rate']:>12.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="ask only N questions (spread over the articles)")
    parser.add_argument("--rebuild", action="store_true", help="delete and rebuild the benchmark knowledge bases")
    parser.add_argument("--min-relevance", type=float, help="threshold to report (default: the configured one)")
    parser.add_argument("--config", help="a config file whose embedding, search and answer settings are measured")
    parser.add_argument("--fit", action="store_true", help="refit the relevance model (prints its coefficients)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable latency on a shared box)")
    args = parser.parse_args(argv)
    config = parse_config(Path(args.config).read_text(encoding="utf-8"), args.config) if args.config else Config()
    if args.min_relevance is not None:
        config.answer.min_relevance = args.min_relevance
    try:
        result = run(args.limit, args.rebuild, config, args.threads, args.fit)
    except SharedDataMissing as exc:
        print(exc)
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "answers.json" if not args.config else f"answers-{Path(args.config).stem}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if "sweep" not in k and "fit" not in k}, indent=2))
    print_sweep(result["sweep"])
    print("English questions, German articles:")
    print_sweep(result["english_sweep"])
    for key in ("fit", "fit_cross_language"):
        if key in result:
            print(f"{key}: refitted", result[key]["coefficients"], "intercept", result[key]["intercept"])
            print("cross-validated (article-grouped) with the refitted model:")
            print_sweep(result[key]["cross_validated_sweep"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
