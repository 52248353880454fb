"""The "not found" decision on news: questions asked against the 1,028 10kGNAD test articles.

    .venv/bin/python -m bench.news [--config FILE] [--rebuild] [--limit N]

Three sets, each asked in German and in English (``../shared/data``; skipped cleanly without it):
- out of domain: the XQuAD-de dev questions (Wikipedia topics) against the news articles, none of
  which answers them. Every ``found`` answer is a false answer.
- news questions, article present: our own questions about single 10kGNAD articles
  (``bench/news_questions.json``), scored by their answer strings (answer-hit).
- news questions, article removed: the same questions against the articles without the ones the
  questions are about. A ``found`` answer without an answer string is a false answer (quoting the
  same fact from another article is fine).

The answerer runs with ``min_relevance = 0`` and records every answer's relevance and features, so
``bench/answers.py --fit`` can fit the relevance model on these rows together with XQuAD's, grouped
by article, and report every figure held out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from bench.answers import (
    FOLDS,
    THRESHOLDS,
    Row,
    ask,
    chunk_reader,
    english_questions,
    figures,
    index_settings,
    kb_root,
    print_sweep,
)
from bench.newsdata import GnadArticle, NewsQuestion, documents, load_gnad, load_news_questions
from bench.xquad import SharedDataMissing, load_articles
from bot.answer import Answerer
from bot.config import Config, parse_config
from index.kb import KnowledgeBase

RESULTS = Path(__file__).parent / "results"


def build(articles: list[GnadArticle], data_dir: Path, config: Config, threads: int, embedder=None) -> KnowledgeBase:
    settings = index_settings(config, threads)
    settings.data_dir = str(data_dir)
    kb = KnowledgeBase(settings, embedder=embedder)
    if kb.counts()["articles"] < len(articles):
        kb.add_many(documents(articles))
    return kb


def news_kb_root(config: Config) -> Path:
    root = kb_root(None if config.source == "defaults" else config.source)
    # Named after the backend too: the defaults changed model once, and vectors of two models never mix.
    return root.with_name(root.name.replace("answers-kb", f"news-kb-{config.embedding.backend}"))


def open_news_kbs(config: Config, rebuild: bool, threads: int, asked_rows: set[int]):
    """(all articles, all but the ones the news questions are about); one embedder for both."""
    root = news_kb_root(config)
    if rebuild and root.exists():
        shutil.rmtree(root)
    articles = load_gnad()
    full = build(articles, root / "full", config, threads)
    kept = [a for a in articles if a.row not in asked_rows]
    removed = build(kept, root / "removed", config, threads, embedder=full.embedder)
    return full, removed


def news_row(answerer: Answerer, question: NewsQuestion, english: bool, chunk_text) -> Row:
    from bench.xquad import Question

    asked = Question(
        id=f"news-{question.row}",
        question=question.question_en if english else question.question_de,
        answers=question.answers,
        answer_start=0,
        answer_end=0,
        article=question.row,
    )
    row = ask(answerer, asked, chunk_text)
    return replace(row, fold=fold_of_news(question.row))


def fold_of_news(row: int) -> int:
    return row % FOLDS


def collect(
    config: Config, rebuild: bool = False, threads: int = 1, limit: int | None = None
) -> tuple[dict[str, list[Row]], float]:
    """Every news-domain row, answered at min_relevance 0 (relevance and features recorded), and the
    threshold the configured answerer would apply."""
    questions = load_news_questions()
    full, removed = open_news_kbs(config, rebuild, threads, {q.row for q in questions})
    probe = replace(config.answer, min_relevance=0.0)
    xquad = [q for a in load_articles() for q in a.questions]
    if limit:
        xquad = xquad[:: max(1, len(xquad) // limit)][:limit]
    xquad_en = english_questions(xquad)
    on_full, on_removed = Answerer(full, probe), Answerer(removed, probe)
    full_text, removed_text = chunk_reader(full), chunk_reader(removed)
    rows = {
        "ood_de": [ask(on_full, q, full_text) for q in xquad],
        "ood_en": [ask(on_full, q, full_text) for q in xquad_en],
        "news_present_de": [news_row(on_full, q, False, full_text) for q in questions],
        "news_present_en": [news_row(on_full, q, True, full_text) for q in questions],
        "news_removed_de": [news_row(on_removed, q, False, removed_text) for q in questions],
        "news_removed_en": [news_row(on_removed, q, True, removed_text) for q in questions],
    }
    threshold = Answerer(full, config.answer).min_relevance
    full.close()
    removed.close()
    return rows, threshold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="a config file whose settings are measured (default: the defaults)")
    parser.add_argument("--rebuild", action="store_true", help="delete and rebuild the news knowledge bases")
    parser.add_argument("--limit", type=int, help="ask only N of the XQuAD questions")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    config = parse_config(Path(args.config).read_text(encoding="utf-8"), args.config) if args.config else Config()
    try:
        rows, threshold = collect(config, args.rebuild, args.threads, args.limit)
    except SharedDataMissing as exc:
        print(exc)
        return 0
    result = {"configured": figures(rows, threshold), "sweep": [figures(rows, t) for t in THRESHOLDS]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "news.json" if not args.config else f"news-{Path(args.config).stem}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result["configured"], indent=2))
    print_sweep(result["sweep"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
