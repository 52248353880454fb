"""Would e5 choose the answer sentence better than the sentence score? Measured from the recorded rows.

    .venv/bin/python -m bench.answers            # records every question's best sentences (rows.json)
    .venv/bin/python -m bench.e5_rerank          # e5 on each row's best six, then the held-out fits

For every row of the last ``bench.answers`` run, e5 judges the six best recorded sentences (as the
answerer judges its best three). Then, with the article-grouped 4-fold fits and threshold rule of
``bench/answers.py --fit`` (bench/calibrate.py; the logistic model in both directions, as before the trees):

* **re-rank**: the sentences are re-ordered by score + λ·e5 before the body is composed, and the
  relevance features follow the new best sentence (``best``, ``e5_best``; ``e5`` is the highest of n);
* **more e5 features** for the "not found" model: whether e5's favourite is the best sentence, its lead
  over the others, the mean of the best three, products with the name and coverage features;
* **e5 with context** (``--context``): e5 of the question against the best sentence's whole passage
  (with its title), and against the sentence with its neighbours, as features of the "not found" model
  (the passages are read from the benchmark knowledge bases).

Held-out answer-hit and false-answer rates of each variant are printed beside the same replayed
baseline (bodies re-composed from the recorded sentences under today's settings), so a difference is
the variant's alone. Results: BENCHMARKS.md, "What was measured, and kept or not".
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from contextlib import closing
from dataclasses import replace

import numpy as np

from bench import calibrate
from bench.answers import RESULTS, Row, figures, kb_root, load_rows, rows_path
from bench.calibrate import replay_body
from bench.news import news_kb_root
from bot.config import Config
from index.chunking import answer_spans
from index.e5 import E5Judge

JUDGED = 6
SIMS = RESULTS / "e5-rerank-sims.json"
CONTEXT_SIMS = RESULTS / "e5-context-sims.json"
KEYS = {
    "xquad_hit_de": "XQuAD hit de",
    "xquad_hit_en": "XQuAD hit en",
    "news_hit_de": "news hit de",
    "news_hit_en": "news hit en",
    "news_removed_false_de": "removed false de",
    "news_removed_false_en": "removed false en",
    "ood_false_de": "out of domain false de",
    "ood_false_en": "out of domain false en",
}


def judge_rows(sets: dict[str, list[Row]]) -> dict[str, list[list[float]]]:
    judge = E5Judge()
    return {
        name: [
            [float(v) for v in judge.similarity(r.question, [c["text"] for c in r.candidates[:JUDGED]])] for r in rows
        ]
        for name, rows in sets.items()
    }


def passages(config: Config) -> dict[str, tuple[str, str, int, int]]:
    """Every quotable sentence of the XQuAD and news knowledge bases: (title, passage, start, end)."""
    found: dict[str, tuple[str, str, int, int]] = {}
    for root in (kb_root(None), news_kb_root(config)):
        with closing(sqlite3.connect(root / "full" / "articlebot.db")) as db:
            for title, text in db.execute(
                "SELECT a.title, c.text FROM chunks c JOIN articles a ON a.id = c.article_id"
            ):
                for start, end in answer_spans(text):
                    found.setdefault(text[start:end], (title, text, start, end))
    return found


def in_context(sentence: str, found: dict) -> list[str]:
    """[title + whole passage, title + the sentence with its neighbours]; [] when it is not found."""
    if sentence not in found:
        return []
    title, text, start, end = found[sentence]
    spans = answer_spans(text)
    i = next(k for k, span in enumerate(spans) if span == (start, end))
    window = text[spans[max(0, i - 1)][0] : spans[min(len(spans) - 1, i + 1)][1]]
    return [f"{title}. {text}", f"{title}. {window}"]


def judge_context(sets: dict[str, list[Row]], config: Config) -> dict[str, list[list[float]]]:
    judge, found = E5Judge(), passages(config)
    out = {}
    for name, rows in sets.items():
        texts = [in_context(r.candidates[0]["text"], found) if r.candidates else [] for r in rows]
        out[name] = [
            [float(v) for v in judge.similarity(r.question, t)] if t else [] for r, t in zip(rows, texts, strict=True)
        ]
    return out


def with_context(sets: dict[str, list[Row]], sims: dict[str, list[list[float]]]) -> dict[str, list[Row]]:
    """Rows with ``e5_passage`` and ``e5_window`` (e5 of the best sentence alone when its passage is unknown)."""
    out = {}
    for name, rows in sets.items():
        out[name] = []
        for row, pair in zip(rows, sims[name], strict=True):
            features = dict(row.features)
            if features:
                passage, window = pair or [features.get("e5_best", 0.0)] * 2
                features.update(e5_passage=passage, e5_window=window)
            out[name].append(replace(row, features=features))
    return out


def cached(path, sets: dict[str, list[Row]], reuse: bool, judge) -> dict[str, list[list[float]]]:
    """e5's similarities per set: with ``reuse`` those of the last run, and ``judge`` only for sets it lacks."""
    sims = json.loads(path.read_text(encoding="utf-8")) if reuse and path.exists() else {}
    missing = {name: rows for name, rows in sets.items() if len(sims.get(name, [])) != len(rows)}
    if missing:
        sims.update(judge(missing))
        path.write_text(json.dumps(sims), encoding="utf-8")
    return sims


def context_results(sets: dict[str, list[Row]], config: Config, reuse: bool) -> dict[str, dict[str, float]]:
    sims = cached(CONTEXT_SIMS, sets, reuse, lambda missing: judge_context(missing, config))
    rows, shipped = with_context(sets, sims), (calibrate.SAME_KIND, calibrate.CROSS_KIND)
    return {
        "as shipped": held_out(rows, [], shipped),
        "+ e5 of the best sentence's passage": held_out(rows, ["e5_passage"], shipped),
        "+ e5 of the sentence with its neighbours": held_out(rows, ["e5_window"], shipped),
        "+ both": held_out(rows, ["e5_passage", "e5_window"], shipped),
    }


def replayed(row: Row, settings) -> Row:
    hit, chars = replay_body(row, settings)
    return replace(row, hit=hit, chars=chars)


def variant(sets, sims, settings, lam: float, judged: int, extra: bool = False) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for name, rows in sets.items():
        out[name] = [one_row(r, s, name, settings, lam, judged, extra) for r, s in zip(rows, sims[name], strict=True)]
    return out


def one_row(row: Row, sims: list[float], name: str, settings, lam: float, judged: int, extra: bool) -> Row:
    if not row.candidates or not row.features or not sims:
        return row
    k = min(judged, len(sims))
    order = sorted(range(k), key=lambda i: -(row.candidates[i]["score"] + lam * sims[i]))
    features = dict(row.features)
    features.update(e5=max(sims[:k]), e5_best=sims[order[0]], best=row.candidates[order[0]]["score"])
    if extra:
        features.update(extra_features(sims[:k], features))
    new = replace(row, candidates=[row.candidates[i] for i in order] + row.candidates[k:], features=features)
    return replayed(new, settings) if "present" in name or "removed" in name else new


def extra_features(sims: list[float], features: dict[str, float]) -> dict[str, float]:
    names = features.get("best_names", features.get("names", 0.0))
    return {
        "e5_agree": float(int(np.argmax(sims)) == 0),
        "e5_gap": sims[0] - max(sims[1:] or [0.0]),
        "e5_mean3": float(np.mean(sims[:3])),
        "e5_x_names": features.get("e5_best", 0.0) * names,
        "e5_x_cover": features.get("e5_best", 0.0) * features.get("chunk", 0.0),
    }


def held_out(sets: dict[str, list[Row]], extra: list[str], kinds: tuple[str, str] = ("logistic", "logistic")) -> dict:
    """Held-out figures with ``extra`` features; ``kinds`` are the German and the English model's."""
    _, _, german = calibrate.fit_language(sets, "de", calibrate.SAME_FEATURES + extra, kinds[0])
    _, _, english = calibrate.fit_language(sets, "en", calibrate.CROSS_FEATURES + extra, kinds[1])
    found = figures({**german, **english}, 0.5)
    return {label: round(found[key], 3) for key, label in KEYS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reuse", action="store_true", help="reuse the e5 similarities of the last run")
    parser.add_argument("--context", action="store_true", help="e5 of the best sentence's passage and window")
    args = parser.parse_args(argv)
    config = Config()
    sets, _, _ = load_rows(rows_path(config))
    if args.context:
        results, name = context_results(sets, config, args.reuse), "e5-context.json"
    else:
        results, name = rerank_results(sets, config, args.reuse), "e5-rerank.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    print("variant".ljust(34) + " ".join(f"{label[-16:]:>16}" for label in KEYS.values()))
    for variant_name, row in results.items():
        print(variant_name[:34].ljust(34) + " ".join(f"{row[label]:>16.3f}" for label in KEYS.values()))
    return 0


def rerank_results(sets: dict[str, list[Row]], config: Config, reuse: bool) -> dict[str, dict[str, float]]:
    sims = cached(SIMS, sets, reuse, judge_rows)
    settings = config.answer
    results = {"replayed baseline (judged 3)": held_out(variant(sets, sims, settings, 0.0, 3), [])}
    for lam in (1.0, 3.0, 5.0):
        for judged in (3, 6):
            results[f"re-rank λ={lam:g}, best {judged} judged"] = held_out(
                variant(sets, sims, settings, lam, judged), []
            )
    extended = variant(sets, sims, settings, 0.0, 3, extra=True)
    for name in ("e5_agree", "e5_gap", "e5_mean3", "e5_x_names", "e5_x_cover"):
        results[f"+ {name}"] = held_out(extended, [name])
    return results


if __name__ == "__main__":
    raise SystemExit(main())
