"""Logistic regression against gradient-boosted trees for the "not found" model, at equal false answers.

    .venv/bin/python -m bench.answers             # records the rows and their relevance features
    .venv/bin/python -m bench.relevance_models    # both model kinds, the same held-out protocol

Same rows, features and article-grouped folds as ``bench/answers.py --fit`` (bench/calibrate.py): each
fold is scored by a model fitted on the other three, with that model's threshold chosen in sample (the
rule of the logistic model; the shipped trees choose theirs on out-of-fold scores instead, since in
sample they look better than they are) and mapped to 0.5. Then, on the held-out scores, the answer-hit
each model keeps at the lowest threshold whose held-out false-answer rates stay within a pair of
limits (news questions with their article removed, out of domain), so the kinds are compared at equal
false answers, not at their own thresholds. The trees come from scikit-learn (the test extra).
Results: ``bench/results/relevance-models.json``; BENCHMARKS.md, "What was measured, and kept or not".
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from bench import calibrate
from bench.answers import FOLDS, RESULTS, Row, figures, load_rows, rows_path
from bot.config import Config

# (removed-article limit, out-of-domain limit) per question language: the targets, and looser ones.
LIMITS = {"de": [(0.10, 0.10), (0.13, 0.10), (0.155, 0.10)], "en": [(0.15, 0.15), (0.17, 0.15), (0.20, 0.15)]}
Scorer = Callable[[np.ndarray], np.ndarray]


def logistic(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> Scorer:
    w = calibrate.fit_logistic(x, y, weight)
    return lambda rows: 1.0 / (1.0 + np.exp(-np.clip(rows @ w[:-1] + w[-1], -60, 60)))


def boosted(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> Scorer:
    model = calibrate.fit_trees(x, y, weight)
    return lambda rows: model.predict_proba(rows)[:, 1] if len(rows) else np.zeros(0)


def scored(sets: dict[str, list[Row]], names: list[str], score: Scorer, shift: float = 0.0) -> dict[str, list[Row]]:
    out = {}
    for name, rows in sets.items():
        p = np.clip(score(calibrate.matrix(rows, names)), 1e-9, 1 - 1e-9) if rows else np.zeros(0)
        z = np.log(p / (1 - p)) - shift
        out[name] = [
            replace(r, relevance=float(1 / (1 + math.exp(-v))) if r.features else 0.0)
            for r, v in zip(rows, z, strict=True)
        ]
    return out


def held_out(sets: dict[str, list[Row]], lang: str, names: list[str], fit) -> dict[str, list[Row]]:
    ours = calibrate.language_sets(sets, lang)
    out: dict[str, list[Row]] = {name: [] for name in ours}
    for fold in range(FOLDS):
        train = calibrate.language_sets(ours, lang, lambda r, f=fold: r.fold != f)
        rows, y, weight = calibrate.training_data(train, lang)
        score = fit(calibrate.matrix(rows, names), y, weight)
        threshold = calibrate.choose_threshold(scored(train, names, score), lang)
        test = calibrate.language_sets(ours, lang, lambda r, f=fold: r.fold == f)
        for name, rows_ in scored(test, names, score, calibrate.logit(threshold)).items():
            out[name] += rows_
    return out


def at_limits(rows: dict[str, list[Row]], lang: str) -> list[dict]:
    sweep = [figures(rows, float(t)) for t in np.arange(0.20, 0.90, 0.02)]
    out = []
    for removed, ood in LIMITS[lang]:
        ok = [f for f in sweep if f[f"news_removed_false_{lang}"] <= removed and f[f"ood_false_{lang}"] <= ood]
        best = ok[0] if ok else None
        out.append(
            {
                "limits": [removed, ood],
                "xquad_hit": round(best[f"xquad_hit_{lang}"], 3) if best else None,
                "news_hit": round(best[f"news_hit_{lang}"], 3) if best else None,
                "removed_false": round(best[f"news_removed_false_{lang}"], 3) if best else None,
                "ood_false": round(best[f"ood_false_{lang}"], 3) if best else None,
            }
        )
    return out


def main() -> int:
    sets, _, _ = load_rows(rows_path(Config()))
    results = {}
    for kind, fit in (("logistic", logistic), ("gradient-boosted trees", boosted)):
        german = held_out(sets, "de", calibrate.SAME_FEATURES, fit)
        english = held_out(sets, "en", calibrate.CROSS_FEATURES, fit)
        results[kind] = {
            "own_thresholds": {k: round(v, 3) for k, v in figures({**german, **english}, 0.5).items()},
            "de": at_limits(german, "de"),
            "en": at_limits(english, "en"),
        }
    (RESULTS / "relevance-models.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    for kind, found in results.items():
        print(kind)
        for lang in ("de", "en"):
            for row in found[lang]:
                print(f"  {lang} {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
