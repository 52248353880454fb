"""Evidence sentences: split the retrieved passages into sentences and score each against the question.

Sentence score (weights in ``Weights``, chosen by bench/answers.py on German XQuAD):
- lexical: the share of the question's IDF mass whose (stemmed, folded) terms occur in the sentence;
  a German compound counts 0.7 when one word ends or starts the other ("Fähre" / "Elektrofähre").
- dense: cosine between the question and the sentence embedded with its article title.
- answer type: "wie viele", "wann", "how many", ... want a number or a date in the sentence.
- passage: the retrieval rank and fused score of the passage the sentence comes from.
Measured and left out: the neighbouring sentences' match and the position in the passage (no gain).

``relevance`` says whether the passages answer the question at all: a logistic combination of the
best sentence, the dense similarities and how much of the question the passages cover, fitted on
questions asked with and without their article in the knowledge base.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from index.chunking import paragraph_spans, sentence_spans
from index.kb import KnowledgeBase
from index.lexical import analyze
from index.search import SearchHit

# Question openings that want a number, or a date, in the answer (German and English).
_WANTS_NUMBER = re.compile(
    r"\b(wie (viele?|hoch|lang|groß|gross|alt|weit|schwer|breit|tief|oft|lange)|wieviele?|"
    r"how (many|much|long|old|far|high|large|big|often|tall)|what (percentage|number|amount))\b",
    re.IGNORECASE,
)
_WANTS_DATE = re.compile(
    r"\b(wann|seit wann|bis wann|in welchem jahr|welches jahr|in welchem jahrhundert|when|what year|which year|"
    r"in what year|what century)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"\d|\b(eins?|eine[mnrs]?|zwei|drei|vier|fünf|sechs|sieben|acht|neun|zehn|elf|zwölf|zwanzig|dreißig|hundert|"
    r"tausend|million(en)?|milliarde(n)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|"
    r"hundred|thousand|million|billion|dutzend|dozen|half|halb)\b",
    re.IGNORECASE,
)
_MONTH = (
    r"januar|februar|märz|april|mai|juni|juli|august|september|oktober|november|dezember|january|february|"
    r"march|may|june|july|october|december"
)
_DATE = re.compile(rf"\b(\d{{3,4}}|\d{{1,2}}\.|{_MONTH}|jahrhundert(s)?|century|jahre?n?|years?)\b", re.IGNORECASE)

# Passages whose sentence vectors are kept (~8 sentences x 384-512 floats each: about 30 MB).
SENTENCE_CACHE_SIZE = 2048


@dataclass
class Weights:
    lexical: float = 1.0
    dense: float = 0.3
    answer_type: float = 0.1
    passage_rank: float = 0.05
    passage_score: float = 0.3


# Logistic relevance models, refitted by ``bench/answers.py --fit`` (article-grouped cross-validation):
# one for a question in the language of its passages, one for a question in another language
# (English about German articles), where words rarely match and the embedding has to carry it.
RELEVANCE_COEFFICIENTS = {"best": 5.7, "sentence_dense": 3.5, "passage_dense": 4.0, "chunk": 4.2, "union": 1.9}
RELEVANCE_INTERCEPT = -10.9
# Fitted alike for the bundled model and the multilingual USE (averaged); the intercept is moved down
# by 0.9 so that one min_relevance (0.25) keeps false answers near 10% in both cases.
CROSS_LANGUAGE_COEFFICIENTS = {"best": 3.8, "sentence_dense": 8.0, "passage_dense": 6.5, "chunk": 2.4, "union": 0.2}
CROSS_LANGUAGE_INTERCEPT = -8.3
# Compound parts shorter than this match too much ("Bau" in "Ausbau", "Haus" in "Rathaus" is fine).
MIN_COMPOUND_PART = 5
COMPOUND_CREDIT = 0.7


@dataclass
class Sentence:
    hit: SearchHit
    rank: int  # rank of the passage in the retrieval result
    index: int  # position of the sentence in its passage
    start: int  # offsets in hit.text
    end: int
    lexical: float = 0.0
    dense: float = 0.0
    answer_type: float = 0.0
    score: float = 0.0

    @property
    def text(self) -> str:
        return self.hit.text[self.start : self.end]


class TermWeights:
    """IDF of analysed terms over the knowledge base's passages, from FTS5 document counts."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        self._cache: dict[str, float] = {}
        self._version = -1
        self._total = 0
        self._lock = threading.Lock()

    def idf(self, terms: list[str]) -> dict[str, float]:
        with self._lock:
            version = self.kb.version()
            if version != self._version:
                self._cache.clear()
                self._version = version
                self._total = self.kb.counts()["chunks"]
            missing = [t for t in dict.fromkeys(terms) if t not in self._cache]
            for term, df in self.kb.term_passages(missing).items():
                self._cache[term] = self._idf(df)
            return {t: self._cache[t] for t in terms}

    def _idf(self, df: int) -> float:
        # BM25's idf, floored: a term in every passage still says a little.
        return max(0.1, math.log(1 + (self._total - df + 0.5) / (df + 0.5)))


class SentenceVectors:
    """Sentence embeddings per passage, cached: follow-ups and repeated questions hit the same passages."""

    def __init__(self, kb: KnowledgeBase, size: int = SENTENCE_CACHE_SIZE):
        self.kb = kb
        self.size = size
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def for_hits(self, hits: list[SearchHit], spans: list[list[tuple[int, int]]]) -> list[np.ndarray]:
        keys = [(h.chunk_id, hash(h.text)) for h in hits]
        with self._lock:
            found = {k: self._cache[k] for k in keys if k in self._cache}
        todo = [i for i, k in enumerate(keys) if k not in found and spans[i]]
        if todo:
            texts = [hits[i].text[s:e] for i in todo for s, e in spans[i]]
            titles = [hits[i].title for i in todo for _ in spans[i]]
            vectors = self.kb.embedder.embed_passages(texts, titles)
            offset = 0
            with self._lock:
                for i in todo:
                    found[keys[i]] = vectors[offset : offset + len(spans[i])]
                    offset += len(spans[i])
                    self._cache[keys[i]] = found[keys[i]]
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        empty = np.zeros((0, self.kb.embedder.dim), dtype=np.float32)
        return [found.get(k, empty) for k in keys]


def question_terms(question: str, topic: str | None = None) -> dict[str, float]:
    """Content terms of the question (weight 1) and of a follow-up's topic question (weight 0.5).

    Function words never count: "Und wo?" on its own has nothing to match, so nothing is found.
    """
    weights = {t: 0.5 for t in analyze(topic or "", drop_stopwords=True)}
    weights.update({t: 1.0 for t in analyze(question, drop_stopwords=True)})
    return weights


def answer_type(question: str, sentence: str) -> float:
    """1 when the question wants a number or a date and the sentence has one, else 0."""
    if _WANTS_DATE.search(question):
        return 1.0 if _DATE.search(sentence) else 0.0
    if _WANTS_NUMBER.search(question):
        return 1.0 if _NUMBER.search(sentence) else 0.0
    return 0.0


def split_hits(hits: list[SearchHit]) -> list[list[tuple[int, int]]]:
    """Sentence spans per passage, never across a paragraph break (a heading is not half a sentence)."""
    return [[span for p in paragraph_spans(h.text) for span in sentence_spans(h.text, *p)] for h in hits]


def term_match(term: str, tokens: set[str]) -> float:
    """1 for the same stem; partial credit when one is a compound part of the other."""
    if term in tokens:
        return 1.0
    if len(term) < MIN_COMPOUND_PART:
        return 0.0
    for token in tokens:
        if len(token) >= MIN_COMPOUND_PART and (
            token.endswith(term) or token.startswith(term) or term.endswith(token) or term.startswith(token)
        ):
            return COMPOUND_CREDIT
    return 0.0


def score_sentences(
    question: str,
    mass: dict[str, float],
    query_vector: np.ndarray,
    hits: list[SearchHit],
    spans: list[list[tuple[int, int]]],
    vectors: list[np.ndarray],
    weights: Weights,
) -> list[Sentence]:
    """Every sentence of every hit, scored; ``mass`` is each question term's weight times its IDF."""
    total = sum(mass.values()) or 1.0
    top_score = max((h.score for h in hits), default=0.0) or 1.0
    sentences: list[Sentence] = []
    for rank, (hit, hit_spans, hit_vectors) in enumerate(zip(hits, spans, vectors, strict=True)):
        passage = weights.passage_rank / (1 + rank) + weights.passage_score * hit.score / top_score
        for index, (start, end) in enumerate(hit_spans):
            sentence = Sentence(hit, rank, index, start, end)
            tokens = set(analyze(sentence.text))
            sentence.lexical = sum(m * term_match(t, tokens) for t, m in mass.items()) / total
            sentence.dense = max(0.0, float(hit_vectors[index] @ query_vector)) if len(hit_vectors) else 0.0
            sentence.answer_type = answer_type(question, sentence.text)
            sentence.score = (
                weights.lexical * sentence.lexical
                + weights.dense * sentence.dense
                + weights.answer_type * sentence.answer_type
                + passage
            )
            sentences.append(sentence)
    return sentences


def coverage(mass: dict[str, float], hits: list[SearchHit]) -> tuple[float, float]:
    """Share of the question's IDF mass in the best single passage (with its title), and in all of them."""
    total = sum(mass.values()) or 1.0
    passages = [set(analyze(f"{h.title} {h.text}")) for h in hits]
    union = set().union(*passages) if passages else set()
    best = max((sum(m for t, m in mass.items() if t in terms) for terms in passages), default=0.0)
    return best / total, sum(m for t, m in mass.items() if t in union) / total


def relevance_features(
    best: Sentence | None, sentences: list[Sentence], hits: list[SearchHit], mass: dict[str, float]
) -> dict[str, float]:
    """The inputs of ``relevance``: how well the best sentence and the passages match the question."""
    if best is None or not mass:  # no content word in the question: nothing to be relevant to
        return dict.fromkeys(RELEVANCE_COEFFICIENTS, 0.0)
    chunk, union = coverage(mass, hits)
    return {
        "best": best.score,
        "sentence_dense": max(s.dense for s in sentences),
        "passage_dense": max((h.dense_score or 0.0) for h in hits),
        "chunk": chunk,
        "union": union,
    }


def relevance(features: dict[str, float], cross_language: bool = False) -> float:
    """Probability-like 0..1 that the passages answer the question (threshold: min_relevance)."""
    if not any(features.values()):
        return 0.0
    coefficients, intercept = (
        (CROSS_LANGUAGE_COEFFICIENTS, CROSS_LANGUAGE_INTERCEPT)
        if cross_language
        else (RELEVANCE_COEFFICIENTS, RELEVANCE_INTERCEPT)
    )
    z = intercept + sum(coefficients[k] * features[k] for k in coefficients)
    return 1.0 / (1.0 + math.exp(-z))
