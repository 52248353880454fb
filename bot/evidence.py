"""Evidence sentences: split the retrieved passages into sentences and score each against the question.

Sentence score (weights in ``Weights``, chosen by bench/answers.py on German XQuAD):
- lexical: the share of the question's IDF mass whose (stemmed, folded) terms occur in the sentence;
  a German compound counts 0.7 when one word ends or starts the other ("Fähre" / "Elektrofähre"), a
  past participle fully ("gekostet" / "kostete").
- dense: cosine between the question and the sentence embedded with its article title.
- answer type: "wie viele", "wann", "how many", ... want a number or a date in the sentence; a price
  question ("Wie viel hat X gekostet?") an amount of money.
- passage: the retrieval rank and fused score of the passage the sentence comes from.
- word match (only for a sentence in another language than the question, e.g. an English question
  about a German article, where stems rarely match): each question word is compared with the
  sentence's words through the embedder ("election" / "Wahl" 0.69, "founded" / "gegründet" 0.88 with
  the multilingual USE), weighted by the IDF of its best counterpart in the passages.
Measured and left out: the neighbouring sentences' match and the position in the passage (no gain).

``relevance`` says whether the passages answer the question at all: a logistic combination of the
best sentence, the dense similarities, how much of the question the passages cover and how much the
best sentences agree on one article, fitted on questions asked with and without their article in the
knowledge base.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from index.cache import LRU
from index.chunking import answer_spans
from index.kb import KnowledgeBase
from index.lexical import STOPWORDS, analyze, term, words
from index.search import SearchHit

# Question openings that want a number, or a date, in the answer (German and English).
# The dative asks for a count too ("In wie vielen Ländern ...?"), as do a share and a distance.
_WANTS_NUMBER = re.compile(
    r"\b(wie ?viel(e|en|er|es)?|wievielt\w*|"
    r"wie (hoch|lang|groß|gross|alt|weit|schwer|breit|tief|oft|lange|nah|schnell|stark|dick|klein|kurz)|"
    r"welche[rnms]? (prozentsatz|prozentzahl|anteil|anzahl)|zu welchem anteil|"
    r"how (many|much|long|old|far|high|large|big|often|tall|close|fast|heavy|deep|wide)|"
    r"what (percentage|percent|percentile|number|amount|share|proportion|fraction))\b",
    re.IGNORECASE,
)
_WANTS_DATE = re.compile(
    r"\b(wann|seit wann|bis wann|in welchem jahr|welches jahr|in welchen jahren|welche jahre|in welchem jahrhundert|"
    r"when|what years?|which years?|in what years?|what century)\b",
    re.IGNORECASE,
)
# Not "ein", "eine", "einen" ...: German's indefinite article, in most sentences, made nearly every one
# count as holding a number ("Die Gemeinde setzt eine Fähre ein" for "Wie oft fährt die Fähre?").
_NUMBER = re.compile(
    r"\d|\b(eins|zwei|drei|vier|fünf|sechs|sieben|acht|neun|zehn|elf|zwölf|zwanzig|dreißig|hundert|"
    r"tausend|million(en)?|milliarde(n)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|"
    r"hundred|thousand|million|billion|dutzend|dozen|half|halb|hälfte|drittel|viertel|third|quarter)\b",
    re.IGNORECASE,
)
# "Wie viel hat X gekostet?" wants an amount of money, not any number ("nach zwei Jahren Bauzeit").
_WANTS_MONEY = re.compile(
    r"\b(kost\w*|gekostet|preis\w*|teuer\w*|bezahl\w*|zahlt\w*|gezahlt|investier\w*|ausgegeben|"
    r"cost\w*|price\w*|pa(y|id|ys)|spen[dt]\w*|charge[sd]?|worth)\b",
    re.IGNORECASE,
)
# A price asked without "wie viel" ("Was kostet die Fähre?", "Wie teuer ist das Stadion?", "What did it
# cost?"): it wants an amount of money as much as "Wie viel kostet ...?" does.
_ASKS_PRICE = re.compile(
    r"\b(was (kostet|kosten|kostete|kosteten)|wie teuer|was (hat|haben|wird|werden|soll|sollen|würde|würden)\b"
    r".{0,80}\b(kosten|gekostet)|how expensive|what (does|did|do|will|would|could)\b.{0,80}\bcost)\b",
    re.IGNORECASE,
)
_MONEY = re.compile(
    r"[€$£¥]|\b(euros?|eur|cents?|dollars?|usd|franken|chf|pfund|pounds?|schilling|yen|yuan|rubel|kronen|"
    r"rupien|pence)\b",
    re.IGNORECASE,
)
_MONTH = (
    r"januar|februar|märz|april|mai|juni|juli|august|september|oktober|november|dezember|january|february|"
    r"march|may|june|july|october|december"
)
_DATE = re.compile(rf"\b(\d{{3,4}}|\d{{1,2}}\.|{_MONTH}|jahrhundert(s)?|century|jahre?n?|years?)\b", re.IGNORECASE)

# The best sentences whose articles say whether the evidence agrees (``agreement``).
AGREEMENT_SENTENCES = 10
# Passages whose sentence vectors are kept (~8 sentences x 384-512 floats each: about 30 MB).
SENTENCE_CACHE_SIZE = 2048
# Single words whose vectors are kept for the cross-language word match (float16: about 20 MB).
WORD_CACHE_SIZE = 20_000
# A question word and a sentence word below this cosine do not match; credit grows linearly above it.
WORD_MATCH_FLOOR = 0.5
# A passage word at least this close counts as the question word's translation (its IDF is used).
WORD_TRANSLATION = 0.6
# A capitalised question word this close to another passage word is a translated noun, not a name (a
# name has no translation: "Scholz" is at most 0.58 from any word of an English article, "Studie" 0.92
# from "studies").
NOUN_TRANSLATION = 0.65
# The IDF of a question word with no translation in the passages: weighted like a rare word.
UNMATCHED_WORD_IDF = 3.0


@dataclass
class Weights:
    lexical: float = 1.0
    dense: float = 0.3
    answer_type: float = 0.1
    passage_rank: float = 0.05
    passage_score: float = 0.3
    word_match: float = 0.0


# Compound parts shorter than this match too much ("Bau" in "Ausbau", "Haus" in "Rathaus" is fine).
MIN_COMPOUND_PART = 5
COMPOUND_CREDIT = 0.7
# The analyser keeps a participle's "ge-" ("gekostet" -> "gekost", "kostete" -> "kost"); a stem this long
# starting with it is taken for a participle (shorter ones are words of their own: "gern", "geld").
MIN_PARTICIPLE = 6


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
    word_match: float = 0.0
    score: float = 0.0
    # The part of ``score`` that a number or date in the sentence earned: it helps pick the best
    # sentence for "wie viel" or "wann", but never earns a further sentence its place in the body.
    type_credit: float = 0.0

    @property
    def support(self) -> float:
        """What the sentence says about the question's subject: its score without the type credit."""
        return self.score - self.type_credit

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
        self._cache: LRU[tuple[int, int], np.ndarray] = LRU(size)

    def for_hits(
        self, hits: list[SearchHit], spans: list[list[tuple[int, int]]], split: bool = False
    ) -> list[np.ndarray]:
        """Each hit's sentence vectors; with ``split`` half of them embedded on the helper thread."""
        keys = [(h.chunk_id, hash(h.text)) for h in hits]
        found = self._cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in found and spans[i]]
        if todo:
            texts = [hits[i].text[s:e] for i in todo for s, e in spans[i]]
            titles = [hits[i].title for i in todo for _ in spans[i]]
            embed = self.kb.embedder.embed_passages
            vectors = embed_in_two(embed, texts, titles) if split else embed(texts, titles)
            offset = 0
            for i in todo:
                found[keys[i]] = vectors[offset : offset + len(spans[i])]
                offset += len(spans[i])
            self._cache.put_many((keys[i], found[keys[i]]) for i in todo)
        empty = np.zeros((0, self.kb.embedder.dim), dtype=np.float32)
        return [found.get(k, empty) for k in keys]


# One helper thread for every answerer of the process: a question's sentences are embedded half here,
# half on the asking thread (the embedders release the GIL in their matrix work), so one question
# uses both cores of an idle 2-core machine (60 sentences: 75 → 45 ms).
_HELPER = ThreadPoolExecutor(1, thread_name_prefix="sentence-vectors")
# Below this many sentences a second thread costs about what it saves.
SPLIT_FROM = 8


def embed_in_two(
    embed: Callable[[list[str], list[str]], np.ndarray], texts: list[str], titles: list[str]
) -> np.ndarray:
    """``embed(texts, titles)``, the second half on the helper thread when it is free.

    When other questions keep the helper busy, the asking thread embeds the second half too, so a
    loaded bot waits no longer than it did with one thread.
    """
    if len(texts) < SPLIT_FROM:
        return embed(texts, titles)
    half = len(texts) // 2
    pending = _HELPER.submit(embed, texts[half:], titles[half:])
    first = embed(texts[:half], titles[:half])
    second = embed(texts[half:], titles[half:]) if pending.cancel() else pending.result()
    return np.vstack([first, second])


class WordVectors:
    """Vectors of single words, cached: the cross-language word match needs one per passage word."""

    def __init__(self, kb: KnowledgeBase, size: int = WORD_CACHE_SIZE):
        self.kb = kb
        self._cache: LRU[str, np.ndarray] = LRU(size)

    def for_words(self, items: list[str]) -> np.ndarray:
        """One row per word, in order (float32)."""
        if not items:
            return np.zeros((0, self.kb.embedder.dim), dtype=np.float32)
        found = self._cache.get_many(items)
        todo = [w for w in dict.fromkeys(items) if w not in found]
        if todo:
            vectors = self.kb.embedder.embed_queries(todo).astype(np.float16)
            found.update(zip(todo, vectors, strict=True))
            self._cache.put_many(zip(todo, vectors, strict=True))
        return np.vstack([found[w] for w in items]).astype(np.float32)


def content_words(text: str) -> list[str]:
    """Lower-cased words without stop words, each once (what the word match compares)."""
    return list(dict.fromkeys(w.lower() for w in words(text) if len(w) >= 2 and w.lower() not in STOPWORDS))


@dataclass
class WordMatcher:
    """One question's words against sentences in another language, through single-word vectors."""

    language: str  # the question's: sentences in any other language get the word match
    vectors: np.ndarray  # question words x dim
    weights: np.ndarray  # per question word: IDF of its translation in the passages
    words: WordVectors
    names: float  # share of the question's capitalised words (not the first) found in the passages

    def score(self, sentence: str) -> float:
        """IDF-weighted share of the question words that have a close word in the sentence."""
        found = content_words(sentence)
        if not found or not len(self.vectors):
            return 0.0
        closest = (self.vectors @ self.words.for_words(found).T).max(axis=1)
        credit = np.clip((closest - WORD_MATCH_FLOOR) / (1 - WORD_MATCH_FLOOR), 0.0, 1.0)
        return float(credit @ self.weights / self.weights.sum())


def word_matcher(
    question: str, language: str, hits: list[SearchHit], vectors: WordVectors, term_weights: TermWeights
) -> WordMatcher:
    """The question's words with their weights, from the words of the retrieved passages."""
    asked = content_words(question)
    passage_words = content_words(" ".join(h.text for h in hits))
    asked_vectors = vectors.for_words(asked)
    weights = np.full(len(asked), UNMATCHED_WORD_IDF)
    translated: set[str] = set()
    if asked and passage_words:
        similarity = asked_vectors @ vectors.for_words(passage_words).T
        translations = [passage_words[i] for i in similarity.argmax(axis=1)]
        idf = term_weights.idf([term(w) for w in translations])
        for i, (word, cosine) in enumerate(zip(translations, similarity.max(axis=1), strict=True)):
            if cosine >= WORD_TRANSLATION:
                weights[i] = idf[term(word)]
            if cosine >= NOUN_TRANSLATION and word != asked[i]:
                translated.add(asked[i])
    return WordMatcher(language, asked_vectors, weights, vectors, name_share(question, hits, translated))


def name_share(question: str, hits: list[SearchHit], translated: set[str] = frozenset()) -> float:
    """Names are spelt alike across languages: how many of the question's capitalised words the
    passages hold (1 when it has none). The first word is skipped: it is capitalised anyway.

    German capitalises every noun, so a German question about English articles would count "Hummeln"
    as a missing name: a capitalised word that the passages hold only ``translated`` ("Hummelstudie"
    / "study") is a noun, and does not count.
    """
    text = " ".join(f"{h.title} {h.text}" for h in hits).lower()
    names = [w.lower() for w in words(question)[1:] if w[:1].isupper()]
    names = [name for name in names if name in text or name not in translated]
    if not names:
        return 1.0
    return sum(name in text for name in names) / len(names)


def question_terms(question: str, topic: str | None = None) -> dict[str, float]:
    """Content terms of the question (weight 1) and of a follow-up's topic question (weight 0.5).

    Function words never count: "Und wo?" on its own has nothing to match, so nothing is found.
    """
    weights = {t: 0.5 for t in analyze(topic or "", drop_stopwords=True)}
    weights.update({t: 1.0 for t in analyze(question, drop_stopwords=True)})
    return weights


def type_missing(question: str, best: Sentence) -> float:
    """1 when the question wants a number or a date and the best sentence has none ("Wie nah kam die
    Sonde dem Pluto?" answered with a sentence about its photos), else 0."""
    wants = _WANTS_DATE.search(question) or _WANTS_NUMBER.search(question) or _ASKS_PRICE.search(question)
    return 1.0 if wants and not best.answer_type else 0.0


def answer_type(question: str, sentence: str) -> float:
    """1 when the question wants a number or a date (an amount of money for a price) and the sentence
    has one, else 0."""
    if _WANTS_DATE.search(question):
        return 1.0 if _DATE.search(sentence) else 0.0
    wants_number = _WANTS_NUMBER.search(question)
    if _ASKS_PRICE.search(question) or (wants_number and _WANTS_MONEY.search(question)):
        return 1.0 if _NUMBER.search(sentence) and _MONEY.search(sentence) else 0.0
    if wants_number:
        return 1.0 if _NUMBER.search(sentence) else 0.0
    return 0.0


def split_hits(hits: list[SearchHit]) -> list[list[tuple[int, int]]]:
    """Sentence spans per passage, never across a paragraph break, never a heading line, never inside a quotation."""
    return [answer_spans(h.text) for h in hits]


def participle_of(term: str, tokens: set[str]) -> bool:
    """The tokens hold the same verb with or without a participle's "ge-" ("gekost" / "kost"), the longer
    form at least ``MIN_PARTICIPLE`` long either way ("ende" must not find "gend")."""
    if term.startswith("ge") and len(term) >= MIN_PARTICIPLE and term[2:] in tokens:
        return True
    return len(term) + 2 >= MIN_PARTICIPLE and f"ge{term}" in tokens


def term_match(term: str, tokens: set[str]) -> float:
    """1 for the same stem, also across a German past participle's "ge-" ("gekostet" / "kostete");
    partial credit when one is a compound part of the other."""
    if term in tokens or participle_of(term, tokens):
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
    matcher: WordMatcher | None = None,
    cross_weights: Weights | None = None,
) -> list[Sentence]:
    """Every sentence of every hit, scored; ``mass`` is each question term's weight times its IDF.

    With a ``matcher``, sentences in another language than the question are scored with
    ``cross_weights`` and the word match instead of ``weights``.
    """
    total = sum(mass.values()) or 1.0
    top_score = max((h.score for h in hits), default=0.0) or 1.0
    sentences: list[Sentence] = []
    for rank, (hit, hit_spans, hit_vectors) in enumerate(zip(hits, spans, vectors, strict=True)):
        cross = matcher is not None and hit.language != matcher.language
        w = (cross_weights or weights) if cross else weights
        passage = w.passage_rank / (1 + rank) + w.passage_score * hit.score / top_score
        for index, (start, end) in enumerate(hit_spans):
            sentence = Sentence(hit, rank, index, start, end)
            tokens = set(analyze(sentence.text))
            sentence.lexical = sum(m * term_match(t, tokens) for t, m in mass.items()) / total
            sentence.dense = max(0.0, float(hit_vectors[index] @ query_vector)) if len(hit_vectors) else 0.0
            sentence.answer_type = answer_type(question, sentence.text)
            if cross:
                sentence.word_match = matcher.score(sentence.text)
            sentence.type_credit = w.answer_type * sentence.answer_type
            sentence.score = (
                w.lexical * sentence.lexical
                + w.dense * sentence.dense
                + w.answer_type * sentence.answer_type
                + w.word_match * sentence.word_match
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


def missing_term(mass: dict[str, float], hit: SearchHit) -> float:
    """The heaviest question term the passage (with its title) lacks, as a share of the question's mass.

    News articles share many words with a question they do not answer ("Weltmeister 2014" in a rally
    report for a football question): one specific term missing says more than the share covered.
    """
    total = sum(mass.values()) or 1.0
    terms = set(analyze(f"{hit.title} {hit.text}"))
    return max((m for t, m in mass.items() if term_match(t, terms) == 0.0), default=0.0) / total


def names_found(question: str, hit: SearchHit) -> float:
    """Share of the question's names, nouns and numbers (capitalised words but the first, digits) in
    the passage with its title; 1 when the question has none."""
    asked = words(question)
    names = {w.lower() for w in asked[1:] if w[:1].isupper() or w[:1].isdigit()}
    if not names:
        return 1.0
    found = {w.lower() for w in words(f"{hit.title} {hit.text}")}
    return sum(any(n == f or (len(n) >= MIN_COMPOUND_PART and n in f) for f in found) for n in names) / len(names)


def agreement(sentences: list[Sentence]) -> dict[str, float]:
    """How much the best sentences agree on one article (``sentences`` best first).

    With the answering article in the knowledge base its sentences crowd the top; without it, on news,
    the best sentences come from several neighbouring articles, each sharing some of the question's words.
    """
    top = sentences[:AGREEMENT_SENTENCES]
    total = sum(s.score for s in top) or 1.0
    best_article = top[0].hit.article_id
    return {
        "best_article_share": sum(s.score for s in top if s.hit.article_id == best_article) / total,
        "articles_in_three": len({s.hit.article_id for s in top[:3]}) / 3,
    }


def relevance_features(
    question: str,
    best: Sentence | None,
    sentences: list[Sentence],
    hits: list[SearchHit],
    mass: dict[str, float],
    matcher: WordMatcher | None = None,
    judged: list[float] | None = None,
) -> dict[str, float]:
    """The inputs of ``relevance``: how well the best sentence and the passages match the question.

    With a ``matcher`` (passages in another language) also the best word match and the names found;
    ``judged`` holds e5's question–sentence similarity of the best few sentences.
    """
    if best is None or not mass:  # no content word in the question: nothing to be relevant to
        return {}
    chunk, union = coverage(mass, hits)
    features = {
        "best": best.score,
        "sentence_dense": max(s.dense for s in sentences),
        "passage_dense": max((h.dense_score or 0.0) for h in hits),
        "chunk": chunk,
        "union": union,
        "missing": missing_term(mass, best.hit),
        "best_names": names_found(question, best.hit),
        "type_missing": type_missing(question, best),
        **agreement(sentences),
    }
    if judged:
        features["e5"] = max(judged)
        features["e5_best"] = judged[0]
    if matcher is not None:
        features["word_match"] = max(s.word_match for s in sentences)
        features["names"] = matcher.names
        # e5's and USE's similarities run lower for a German question about English passages than the
        # other way round; the cross-language model is fitted on both directions and told which it is.
        features["asked_in_german"] = float(matcher.language == "de")
    return features
