"""The "not found" model as the bot evaluates it: trees fitted by scikit-learn, stored node by node."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.calibrate import fit_trees, trees_model
from bot import calibration
from bot.calibration import RelevanceModel, TreesModel

NAMES = ["best", "e5", "missing"]


def synthetic(n: int = 600, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, len(NAMES)))
    y = (x[:, 0] + 2 * x[:, 1] - x[:, 2] + rng.normal(0, 0.3, n) > 1.0).astype(float)
    return x, y


def test_stored_trees_give_scikit_learns_probabilities():
    x, y = synthetic()
    fitted = fit_trees(x, y, np.ones(len(y)))
    model = trees_model(NAMES, fitted)
    ours = [model.probability(dict(zip(NAMES, row, strict=True))) for row in x[:200]]
    theirs = fitted.predict_proba(x[:200])[:, 1]
    assert np.allclose(ours, theirs, atol=1e-9)
    assert len(model.trees) == 50 and all(len(t["feature"]) <= 7 for t in model.trees)  # 4 leaves each


def test_the_offset_moves_the_threshold_and_a_json_round_trip_changes_nothing(tmp_path):
    x, y = synthetic()
    model = trees_model(NAMES, fit_trees(x, y, np.ones(len(y))))
    features = dict(zip(NAMES, x[0], strict=True))
    p = model.probability(features)
    shifted = TreesModel(model.features, model.baseline, model.trees, offset=-math.log(0.7 / 0.3))
    # A question at this model's threshold 0.7 lands on 0.5 once the offset takes the threshold's logit off.
    at = 1 / (1 + math.exp(-(math.log(p / (1 - p)) - math.log(0.7 / 0.3))))
    assert shifted.probability(features) == pytest.approx(at)
    saved = calibration.Calibration(
        "test/model", calibration.Weights(), calibration.Weights(), model, shifted, min_relevance=0.7
    )
    loaded = calibration.from_json(saved.to_json(), "test")
    assert isinstance(loaded.relevance, TreesModel)
    assert loaded.relevance.probability(features) == p
    assert loaded.cross_language_relevance.probability(features) == shifted.probability(features)


def test_no_features_is_no_relevance():
    x, y = synthetic()
    model = trees_model(NAMES, fit_trees(x, y, np.ones(len(y))))
    assert model.probability({}) == 0.0
    assert model.probability(dict.fromkeys(NAMES, 0.0)) == 0.0


def test_the_default_embedders_calibration_has_trees_across_languages_and_logistic_within():
    from index.embedding import load_embedder
    from index.settings import EmbeddingSettings

    shipped = calibration.load(load_embedder(EmbeddingSettings()).model_id)
    assert isinstance(shipped.relevance, RelevanceModel)
    assert isinstance(shipped.cross_language_relevance, TreesModel)
    assert set(shipped.cross_language_relevance.features) >= {"e5", "e5_best", "word_match"}
    assert set(shipped.relevance.coefficients) >= {"e5", "best_article_share", "articles_in_three"}
    assert 0.3 < shipped.min_relevance < 0.95
    # Written back and read again, the file gives the same relevance for the same features.
    again = calibration.from_json(shipped.to_json(), "again")
    features = {"best": 1.2, "e5": 0.86, "e5_best": 0.85, "word_match": 0.6, "names": 1.0, "passage_dense": 0.4}
    assert again.cross_language_relevance.probability(features) == shipped.cross_language_relevance.probability(
        features
    )
    assert again.relevance.probability(features) == shipped.relevance.probability(features)
