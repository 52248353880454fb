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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if not __package__:  # run as a file (`python bench/answers.py`, as the README says): find the bench package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.xquad import (  # noqa: E402
    Article,
    Question,
    SharedDataMissing,
    build_kb,
    load_articles,
    shared_file,
)
from bot import calibration  # noqa: E402
from bot.answer import Answer, Answerer  # noqa: E402
from bot.config import Config, parse_config  # noqa: E402
from index.settings import IndexSettings  # noqa: E402

RESULTS = Path(__file__).parent / "results"
KB_ROOT = RESULTS / "answers-kb"
FOLDS = 4
XQUAD_EN = Path("data/xquad-de/xquad.en.dev.json")
WARM_SAMPLE = 200
CANDIDATES = 10
THRESHOLDS = [round(0.05 * i, 2) for i in range(0, 21)]
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
    cross: bool = False  # judged by the cross-language relevance model (best passage in another language)
    # The best sentences as scored (text, score, article, passage, answer-type credit), for offline
    # experiments with how a body is composed.
    candidates: list[dict] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)  # the gold answer strings


def fold_of(article_index: int) -> int:
    return article_index % FOLDS


def index_settings(config: Config, threads: int) -> IndexSettings:
    settings = config.index_settings()
    settings.embedding.threads = threads
    return settings


def kb_root(config_path: str | None) -> Path:
    """One set of benchmark KBs per config file: vectors of different models never mix."""
    return KB_ROOT if not config_path else KB_ROOT.with_name(f"{KB_ROOT.name}-{Path(config_path).stem}")


def open_kbs(
    articles: list[Article],
    rebuild: bool,
    config: Config | None = None,
    threads: int = 1,
    embedder=None,
    root: Path | None = None,
):
    """(full KB, {fold: held-out KB}) under ``root`` (default: this config's XQuAD KBs); the embedder is
    shared so the model loads once."""
    config = config or Config()
    root = root or kb_root(None if config.source == "defaults" else config.source)
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


# A thousands separator between digits ("3.300", "3,300", "3 300", "3'300"): dropped before matching.
_DIGIT_GROUP = re.compile(r"(?<=\d)[.,\u00a0\u202f' ](?=\d{3}(?!\d))")


def _comparable(text: str) -> str:
    return " ".join(_DIGIT_GROUP.sub("", text).casefold().split())


def holds_answer(text: str, answers: list[str]) -> bool:
    """The text holds one of the answer strings, also with other case, spacing or thousands separators:
    "3300 Mitarbeitern" holds "3.300" (the same fact from another article is a right answer)."""
    comparable = _comparable(text)
    return any(a in text or _comparable(a) in comparable for a in answers)


def ask(answerer: Answerer, question: Question, chunk_text) -> Row:
    started = time.perf_counter()
    answer, evidence = answerer.answer_with_evidence(question.question)
    seconds = time.perf_counter() - started
    hit = answer.found and holds_answer(answer.body, question.answers)
    return Row(
        question=question.question,
        hit=hit,
        chars=len(answer.body),
        valid=citations_valid(answer, chunk_text),
        relevance=answer.relevance,
        seconds=seconds,
        features=evidence.features,
        fold=fold_of(question.article),
        cross=bool(evidence.sentences) and evidence.sentences[0].hit.language != answer.language,
        candidates=[
            {
                "text": s.text,
                "score": round(s.score, 4),
                "article": s.hit.article_id,
                "chunk": s.hit.chunk_id,
                "index": s.index,
                "answer_type": s.answer_type,
                "support": round(s.support, 4),
                "start": s.start,
                "lexical": round(s.lexical, 4),
                "dense": round(s.dense, 4),
                "language": s.hit.language,
            }
            for s in evidence.sentences[:CANDIDATES]
        ],
        answers=question.answers,
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


def at_threshold(answered: list[Row], absent: list[Row], threshold: float, excuse_hits: bool = False) -> dict:
    """Figures at one threshold; with ``excuse_hits`` an absent-article answer that still holds the
    answer string (the same fact from another article) is not a false answer."""
    found = [r for r in answered if r.relevance >= threshold]
    false = [r for r in absent if r.relevance >= threshold and not (excuse_hits and r.hit)]
    return {
        "min_relevance": threshold,
        "answer_hit": sum(r.hit for r in found) / len(answered) if answered else 0.0,
        "found_rate": len(found) / len(answered) if answered else 0.0,
        "median_chars": statistics.median(r.chars for r in found) if found else 0,
        "false_answer_rate": len(false) / len(absent) if absent else 0.0,
    }


def collect(limit: int | None, rebuild: bool, config: Config, threads: int) -> tuple[dict[str, list[Row]], dict, str]:
    """XQuAD rows by set (German and English questions; article present, and absent), timings, model id."""
    articles = load_articles()
    full, heldout = open_kbs(articles, rebuild, config, threads)
    probe = replace(config.answer, min_relevance=0.0)
    questions = [q for a in articles for q in a.questions]
    if limit:
        questions = questions[:: max(1, len(questions) // limit)][:limit]
    english = english_questions(questions)
    answerer = Answerer(full, probe)
    answerer.answer("Warm-up: wie viele Artikel gibt es?")  # model and caches loaded before timing
    sets = {"present_de": [ask(answerer, q, chunk_reader(full)) for q in questions]}
    # The same questions again: passages' sentence vectors are cached, as for a follow-up or a repeat.
    warm = [ask(answerer, q, chunk_reader(full)).seconds for q in questions[:WARM_SAMPLE]]
    # The same questions in English against the German articles, scored on the German gold answers.
    sets["present_en"] = [ask(answerer, q, chunk_reader(full)) for q in english]
    sets["absent_de"], sets["absent_en"] = [], []
    for fold, kb in heldout.items():
        fold_answerer = Answerer(kb, probe)
        for name, asked in (("absent_de", questions), ("absent_en", english)):
            sets[name] += [ask(fold_answerer, q, chunk_reader(kb)) for q in asked if fold_of(q.article) == fold]
    cold = [r.seconds for r in sets["present_de"]]
    english_seconds = [r.seconds for r in sets["present_en"]]
    timings = {
        "latency_cold_p50_ms": 1000 * percentile(cold, 0.5),
        "latency_cold_p95_ms": 1000 * percentile(cold, 0.95),
        "latency_warm_p50_ms": 1000 * percentile(warm, 0.5),
        "latency_warm_p95_ms": 1000 * percentile(warm, 0.95),
        # Cold for the word match (each passage's words embedded once), warm for the sentence vectors.
        "english_latency_p50_ms": 1000 * percentile(english_seconds, 0.5),
        "english_latency_p95_ms": 1000 * percentile(english_seconds, 0.95),
    }
    return sets, timings, full.embedder.model_id


def figures(sets: dict[str, list[Row]], threshold: float) -> dict:
    """Every target's figure at one threshold (sets missing from ``sets`` are left out)."""
    out: dict[str, float] = {"min_relevance": round(threshold, 3)}
    for lang in ("de", "en"):
        if sets.get(f"present_{lang}"):
            xq = at_threshold(sets[f"present_{lang}"], sets[f"absent_{lang}"], threshold)
            out[f"xquad_hit_{lang}"] = xq["answer_hit"]
            out[f"xquad_found_{lang}"] = xq["found_rate"]
            out[f"xquad_absent_false_{lang}"] = xq["false_answer_rate"]
            out[f"xquad_median_chars_{lang}"] = xq["median_chars"]
        if sets.get(f"news_present_{lang}"):
            news = at_threshold(sets[f"news_present_{lang}"], sets[f"news_removed_{lang}"], threshold, True)
            out[f"news_hit_{lang}"] = news["answer_hit"]
            out[f"news_removed_false_{lang}"] = news["false_answer_rate"]
            out[f"news_median_chars_{lang}"] = news["median_chars"]
        if sets.get(f"ood_{lang}"):
            out[f"ood_false_{lang}"] = at_threshold([], sets[f"ood_{lang}"], threshold)["false_answer_rate"]
    if sets.get("reverse_present_en"):  # German questions about the English articles
        reverse = at_threshold(sets["reverse_present_en"], sets["reverse_absent_en"], threshold)
        out["english_articles_hit_de"] = reverse["answer_hit"]
        out["english_articles_absent_false_de"] = reverse["false_answer_rate"]
    return out


def rescore(sets: dict[str, list[Row]], fitted: calibration.Calibration) -> dict[str, list[Row]]:
    """Every row's relevance under another calibration, from the features it recorded."""

    def relevance(row: Row) -> float:
        model = fitted.cross_language_relevance if row.cross else fitted.relevance
        return model.probability(row.features)

    return {name: [replace(r, relevance=relevance(r)) for r in rows] for name, rows in sets.items()}


def collect_reverse(limit: int | None, rebuild: bool, config: Config) -> dict[str, list[Row]]:
    """German questions about the English XQuAD articles, with the article present and absent: the
    direction of the cross-language model that English questions about German articles do not show."""
    from bench.english_articles import collect as collect_english

    asked = collect_english(limit, rebuild, config, languages=("de",))[0]
    return {"reverse_present_en": asked["present_de"], "reverse_absent_en": asked["absent_de"]}


def rows_path(config: Config) -> Path:
    return RESULTS / ("rows.json" if config.source == "defaults" else f"rows-{Path(config.source).stem}.json")


def save_rows(path: Path, sets: dict[str, list[Row]], timings: dict, embedder_id: str) -> None:
    data = {"model_id": embedder_id, "timings": timings, "sets": {k: [asdict(r) for r in v] for k, v in sets.items()}}
    path.write_text(json.dumps(data), encoding="utf-8")


def load_rows(path: Path) -> tuple[dict[str, list[Row]], dict, str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: [Row(**r) for r in v] for k, v in data["sets"].items()}, data["timings"], data["model_id"]


def run(
    limit: int | None,
    rebuild: bool,
    config: Config,
    threads: int,
    fit: bool = False,
    news: bool = True,
    reuse: bool = False,
) -> dict:
    """Answers every question (or, with ``reuse``, reads the rows the last run saved) and reports;
    with ``fit`` the relevance models are refitted first and the rows re-scored with them."""
    if reuse:
        sets, timings, embedder_id = load_rows(rows_path(config))
    else:
        sets, timings, embedder_id = collect(limit, rebuild, config, threads)
        if news:
            from bench.news import collect as collect_news

            sets.update(collect_news(config, rebuild, threads, limit)[0])
        sets.update(collect_reverse(limit, rebuild, config))
        RESULTS.mkdir(parents=True, exist_ok=True)
        save_rows(rows_path(config), sets, timings, embedder_id)
    current = calibration.load(embedder_id)
    before = current.min_relevance if config.answer.min_relevance == "auto" else config.answer.min_relevance
    result_before = figures(sets, before)
    fitted = None
    if fit:
        from bench.calibrate import fit_calibration

        fitted = fit_calibration(sets, embedder_id, current, config.source)
        current = calibration.load(embedder_id)
        sets = rescore(sets, current)
    threshold = current.min_relevance if config.answer.min_relevance == "auto" else config.answer.min_relevance
    result = {
        "model_id": embedder_id,
        "calibration": current.source,
        "questions": len(sets["present_de"]),
        "valid_citation_rate": statistics.mean(r.valid for rows in sets.values() for r in rows),
        "hit_ignoring_threshold_de": statistics.mean(r.hit for r in sets["present_de"]),
        "hit_ignoring_threshold_en": statistics.mean(r.hit for r in sets["present_en"]),
        **timings,
        "configured": figures(sets, threshold),
        "sweep": [figures(sets, t) for t in sorted({*THRESHOLDS, threshold})],
    }
    if fitted:
        result["fit"] = fitted
        result["before_fit"] = result_before
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


def print_sweep(sweep: list[dict]) -> None:
    keys = [k for k in sweep[0] if k != "min_relevance"]
    print("min_rel " + " ".join(f"{k[-14:]:>14}" for k in keys))
    for row in sweep:
        print(f"{row['min_relevance']:>7.2f} " + " ".join(f"{row[k]:>14.3f}" for k in keys))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="ask only N questions (spread over the articles)")
    parser.add_argument("--rebuild", action="store_true", help="delete and rebuild the benchmark knowledge bases")
    parser.add_argument("--min-relevance", type=float, help="threshold to report (default: the configured one)")
    parser.add_argument("--config", help="a config file whose embedding, search and answer settings are measured")
    parser.add_argument("--fit", action="store_true", help="refit the relevance models into bot/calibration/")
    parser.add_argument("--no-news", action="store_true", help="XQuAD only (no 10kGNAD knowledge bases)")
    parser.add_argument("--reuse", action="store_true", help="fit/report from the rows the last run saved")
    parser.add_argument("--threads", type=int, default=1, help="embedding threads (1: stable latency on a shared box)")
    args = parser.parse_args(argv)
    config = parse_config(Path(args.config).read_text(encoding="utf-8"), args.config) if args.config else Config()
    if args.min_relevance is not None:
        config.answer.min_relevance = args.min_relevance
    try:
        result = run(args.limit, args.rebuild, config, args.threads, args.fit, not args.no_news, args.reuse)
    except SharedDataMissing as exc:
        print(exc)
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "answers.json" if not args.config else f"answers-{Path(args.config).stem}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k not in ("sweep", "fit", "before_fit")}, indent=2))
    print_sweep(result["sweep"])
    if "fit" in result:
        print("before the fit, at the threshold then:")
        print_sweep([result["before_fit"]])
        print("fitted and written to", result["fit"]["written"], "min_relevance", result["fit"]["min_relevance"])
        print("held out (article-grouped 4-fold; each fold's model and threshold fitted on the other three):")
        print_sweep([result["fit"]["held_out"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
