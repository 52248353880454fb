"""Questions about English articles: German questions (de→en) and English ones (en→en), report only.

    .venv/bin/python -m bench.english_articles [--limit N] [--rebuild]

``bench/answers.py`` asks about the German XQuAD articles, in German and in English. A collection can
hold English articles too (one of the bundled samples is English), so this asks the same 925
questions about the *English* XQuAD articles (the same 36 Wikipedia articles in their English
original): in German (scored on the English gold answers) and in English. Each question is asked with
its article present (answer-hit) and with its article's fold removed (false answers), at the shipped
calibration and threshold. The English questions are in no fit: their figures are held out by
construction. The German ones are: since 2026-11-29 ``bench/answers.py --fit`` collects them too and fits
the cross-language model on both directions, so their figures here are in sample; the held-out ones
are in its output ("english_articles_hit_de").
Results: ``bench/results/english-articles.json``; BENCHMARKS.md, "Questions about English articles".
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from bench.answers import (
    RESULTS,
    XQUAD_EN,
    ask,
    at_threshold,
    chunk_reader,
    fold_of,
    open_kbs,
    save_rows,
)
from bench.xquad import Question, SharedDataMissing, load_articles, shared_file
from bot.answer import Answerer
from bot.config import Config

KB_ROOT = RESULTS / "english-articles-kb"


def german_wording(english: list[Question]) -> list[Question]:
    """Each English question in its German XQuAD wording, scored on the English gold answers."""
    german = {q.id: q.question for article in load_articles() for q in article.questions}
    return [replace(q, question=german[q.id]) for q in english if q.id in german]


def collect(
    limit: int | None, rebuild: bool, config: Config, languages: tuple[str, ...] = ("de", "en")
) -> tuple[dict[str, list], float]:
    """Rows by set, answered without a threshold (as bench/answers.py does), and the shipped threshold."""
    articles = load_articles(shared_file(XQUAD_EN))
    full, heldout = open_kbs(articles, rebuild, config, root=KB_ROOT)
    english = [q for a in articles for q in a.questions]
    if limit:
        english = english[:: max(1, len(english) // limit)][:limit]
    asked = {lang: qs for lang, qs in (("de", german_wording(english)), ("en", english)) if lang in languages}
    probe = replace(config.answer, min_relevance=0.0)
    answerer = Answerer(full, probe)
    setting = config.answer.min_relevance
    shipped = answerer.calibration.min_relevance if setting == "auto" else setting
    sets = {f"present_{lang}": [ask(answerer, q, chunk_reader(full)) for q in qs] for lang, qs in asked.items()}
    for lang in asked:
        sets[f"absent_{lang}"] = []
    for fold, kb in heldout.items():
        fold_answerer = Answerer(kb, probe)
        for lang, qs in asked.items():
            sets[f"absent_{lang}"] += [
                ask(fold_answerer, q, chunk_reader(kb)) for q in qs if fold_of(q.article) == fold
            ]
    return sets, shipped


def report(sets: dict[str, list], threshold: float) -> dict:
    out = {"min_relevance": threshold}
    for lang in ("de", "en"):
        present, absent = sets[f"present_{lang}"], sets[f"absent_{lang}"]
        shipped = at_threshold(present, absent, threshold)
        out[f"{lang}→en"] = {
            "answer_hit": round(shipped["answer_hit"], 3),
            "found": round(shipped["found_rate"], 3),
            "false_answers_article_absent": round(shipped["false_answer_rate"], 3),
            "median_chars": shipped["median_chars"],
            "answer_hit_ignoring_threshold": round(sum(r.hit for r in present) / len(present), 3),
            "best_sentence_in_another_language": round(sum(r.cross for r in present) / len(present), 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="ask only N questions (spread over the articles)")
    parser.add_argument("--rebuild", action="store_true", help="delete and rebuild the knowledge bases")
    args = parser.parse_args(argv)
    config = Config()
    try:
        sets, threshold = collect(args.limit, args.rebuild, config)
    except SharedDataMissing as exc:
        print(exc)
        return 0
    result = report(sets, threshold)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "english-articles.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    save_rows(RESULTS / "english-articles-rows.json", sets, {}, "")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
