"""Where answerable questions are lost: retrieval, the choice of sentence, the body, or "not found".

    .venv/bin/python -m bench.answers     # records every question's ten best sentences (rows.json)
    .venv/bin/python -m bench.losses      # the stages below, from those rows and the two knowledge bases

For each set of answerable questions (XQuAD German and English over the German articles, the news
questions in both languages), the share that is still right after each stage:

1. the article holding the answer supplies one of the ten best sentences (retrieval);
2. the best sentence comes from that article;
3. one of the ten best sentences holds the answer string;
4. one of the three best does; 5. the best one does;
6. the body holds it, whatever the relevance (how the body is composed);
7. the body holds it and the answer is given: in sample, at the shipped calibration and threshold;
8. the same, held out (each article fold scored by a model and threshold fitted without it).

The stages are not strictly nested (a body can quote a sentence from outside the best three), but each
gap says where most answers go. Results: ``bench/results/losses.json``; BENCHMARKS.md, "Where answers
are lost".
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from bench import calibrate
from bench.answers import RESULTS, Row, holds_answer, kb_root, load_rows, rescore, rows_path
from bench.news import news_kb_root
from bench.newsdata import article_url, load_news_questions
from bench.xquad import load_articles
from bot import calibration
from bot.config import Config

SETS = ("present_de", "present_en", "news_present_de", "news_present_en")
STAGES = (
    "article among the ten best sentences",
    "best sentence from that article",
    "answer in the ten best sentences",
    "answer in the three best",
    "answer in the best sentence",
    "answer in the body, any relevance",
    "answered with it, in sample",
    "answered with it, held out",
)


def article_ids(database: Path, key: str) -> dict[str, int]:
    """Knowledge-base article ids by title (XQuAD) or by URL (news)."""
    with closing(sqlite3.connect(database)) as db:
        return dict(db.execute(f"SELECT {key}, id FROM articles").fetchall())  # noqa: S608 (a column name of ours)


def gold_articles(config: Config) -> dict[str, list[int | None]]:
    """Per set, the knowledge-base id of each question's own article (row order of ``bench.answers``)."""
    by_title = article_ids(kb_root(None) / "full" / "articlebot.db", "title")
    articles = load_articles()
    xquad = [by_title.get(articles[q.article].title) for a in articles for q in a.questions]
    by_url = article_ids(news_kb_root(config) / "full" / "articlebot.db", "url")
    news = [by_url.get(article_url(q.row)) for q in load_news_questions()]
    return {"present_de": xquad, "present_en": xquad, "news_present_de": news, "news_present_en": news}


def holds(candidate: dict, row: Row) -> bool:
    return holds_answer(candidate["text"], row.answers)


def stages(row: Row, gold: int | None, threshold: float, held: Row) -> list[bool]:
    best = row.candidates[:1]
    return [
        any(c["article"] == gold for c in row.candidates),
        bool(best) and best[0]["article"] == gold,
        any(holds(c, row) for c in row.candidates),
        any(holds(c, row) for c in row.candidates[:3]),
        any(holds(c, row) for c in best),
        row.hit,
        row.hit and row.relevance >= threshold,
        held.hit and held.relevance >= 0.5,
    ]


def held_out(sets: dict[str, list[Row]]) -> dict[str, list[Row]]:
    """Rows with the relevance of the model fitted without their fold, its threshold moved to 0.5."""
    german = calibrate.fit_language(sets, "de", calibrate.SAME_FEATURES, calibrate.SAME_KIND)[2]
    english = calibrate.fit_language(sets, "en", calibrate.CROSS_FEATURES, calibrate.CROSS_KIND)[2]
    return {**german, **english}


def losses(sets: dict[str, list[Row]], gold: dict[str, list[int | None]], threshold: float) -> dict:
    held = held_out(sets)
    out = {}
    for name in SETS:
        rows = sets[name]
        counts = [0] * len(STAGES)
        for row, article, other in zip(rows, gold[name], held[name], strict=True):
            for i, ok in enumerate(stages(row, article, threshold, other)):
                counts[i] += ok
        out[name] = {stage: round(n / len(rows), 3) for stage, n in zip(STAGES, counts, strict=True)}
    return out


def main() -> int:
    config = Config()
    sets, _, model_id = load_rows(rows_path(config))
    shipped = calibration.load(model_id)
    sets = rescore(sets, shipped)
    result = losses(sets, gold_articles(config), shipped.min_relevance)
    (RESULTS / "losses.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print("stage".ljust(40) + "".join(f"{name:>18}" for name in SETS))
    for stage in STAGES:
        print(stage.ljust(40) + "".join(f"{result[name][stage]:>18.3f}" for name in SETS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
