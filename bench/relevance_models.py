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

import numpy as np

from bench import calibrate
from bench.answers import RESULTS, Row, figures, load_rows, rows_path
from bot.config import Config

# (removed-article limit, out-of-domain limit) per question language: the targets, and looser ones.
LIMITS = {"de": [(0.10, 0.10), (0.13, 0.10), (0.155, 0.10)], "en": [(0.15, 0.15), (0.17, 0.15), (0.20, 0.15)]}


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
    for kind, label in (("logistic", "logistic"), ("trees", "gradient-boosted trees")):
        # Both with the in-sample threshold rule, as the comparison was made (the shipped trees use out-of-fold).
        german = calibrate.fit_language(sets, "de", calibrate.SAME_FEATURES, kind, out_of_fold=False)[2]
        english = calibrate.fit_language(sets, "en", calibrate.CROSS_FEATURES, kind, out_of_fold=False)[2]
        results[label] = {
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
