"""The answering core: question in, Answer with numbered citations out. No transport in here.

The Telegram bot, the console chat and the CLI all call ``Answerer.answer``. Every statement in
``Answer.body`` carries a ``[n]`` marker that points to ``citations[n-1]``; every quote is a
verbatim substring of its chunk. The body is plain text (adapters escape it for their medium).

Modes: "extractive" (default, offline) quotes one to three evidence sentences; "llm" asks an
OpenAI-compatible endpoint to answer from numbered passages and checks its markers; when that
endpoint fails the answer is the extractive one, with mode "extractive-fallback".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from index.e5 import E5Judge
from index.kb import KnowledgeBase
from index.lexical import ENGLISH_STOPWORDS, GERMAN_STOPWORDS, detect_language, words
from index.records import ArticleNotFound
from index.search import SearchHit

from . import calibration
from .answer_types import NOT_FOUND, NOTHING_MORE, Answer, Citation, Evidence, not_found, nothing_more
from .config import AnswerSettings, LLMSettings
from .evidence import (
    Sentence,
    SentenceVectors,
    TermWeights,
    Weights,
    WordVectors,
    question_terms,
    relevance_features,
    score_sentences,
    split_hits,
    word_matcher,
)
from .followup import FollowupMemory, Resolved, follow_on, without_more
from .llm import ChatClient, LLMError
from .llm_answer import TextSink, best_quote, generate

log = logging.getLogger(__name__)

# The answer types live in answer_types (shared with llm_answer without a cycle); callers import them from here.
__all__ = ["NOT_FOUND", "NOTHING_MORE", "Answer", "Answerer", "Citation", "Evidence", "compose", "not_found"]

# Said before verbatim quotes whose language is not the question's, so the body still opens in it.
FOREIGN_LEAD = {
    ("de", "en"): "Aus englischsprachigen Artikeln:",
    ("en", "de"): "From German-language articles:",
}
SEPARATOR = " "
# Sentences e5 judges per question (~15 ms each on one thread, cached): the relevance model reads
# the best and the highest of them.
JUDGED_SENTENCES = 3


def question_language(question: str, topic: str | None) -> str:
    """The question's language; a follow-up without any function word ("Selenskyj?") keeps its topic's."""
    tokens = {w.lower() for w in words(question)}
    if topic and not tokens & (GERMAN_STOPWORDS | ENGLISH_STOPWORDS):
        return detect_language(topic)
    return detect_language(question)


def compose(sentences: list[Sentence], settings: AnswerSettings, cross_language: bool = False) -> list[Sentence]:
    """The best sentence, then the next best ones while they fit the sentence and character budget.

    A clear winner (ahead of the runner-up by ``confident_margin``) gets the short budget; otherwise
    more context goes in, since the answer is then as likely in the second or third sentence. Quotes
    in another language than the question get a budget of their own. A further sentence needs
    ``min_support`` of the best one's score from what it says about the question (a shared number or
    date earns nothing), and one from another article needs ``other_article_support``: a different
    article must make nearly as strong a case as the best one, or it does not pad the answer.
    """
    if not sentences:
        return []
    best = sentences[0]
    runner_up = sentences[1].score if len(sentences) > 1 else 0.0
    if cross_language:
        max_sentences, max_chars = settings.cross_language_sentences, settings.cross_language_chars
    elif best.score - runner_up >= settings.confident_margin:
        max_sentences, max_chars = settings.confident_sentences, settings.confident_chars
    else:
        max_sentences, max_chars = settings.max_sentences, settings.max_chars
    chosen = [best]
    used = len(best.text)
    seen = {best.text}
    for sentence in sentences[1:]:
        if len(chosen) >= max_sentences:
            break
        other_article = sentence.hit.article_id != best.hit.article_id
        needed = settings.other_article_support if other_article else settings.min_support
        size = len(sentence.text) + len(" [n] ")
        if sentence.support < needed * best.score or sentence.text in seen or used + size > max_chars:
            continue
        chosen.append(sentence)
        seen.add(sentence.text)
        used += size
    return reading_order(chosen)


def reading_order(chosen: list[Sentence]) -> list[Sentence]:
    """Passages in the order of their best sentence; sentences of one passage in text order."""
    first_seen: dict[int, int] = {}
    for i, sentence in enumerate(chosen):
        first_seen.setdefault(sentence.hit.chunk_id, i)
    return sorted(chosen, key=lambda s: (first_seen[s.hit.chunk_id], s.start))


def cite(chosen: list[Sentence]) -> tuple[list[tuple[str, int]], list[Citation]]:
    """(sentence, marker) pairs and their citations: adjacent sentences of one passage share one."""
    parts: list[tuple[str, int]] = []
    citations: list[Citation] = []
    quote_start = 0
    previous: Sentence | None = None
    for sentence in chosen:
        hit = sentence.hit
        if previous is not None and adjacent(previous, sentence):
            citations[-1].quote = hit.text[quote_start : sentence.end]  # still one verbatim span
        else:
            quote_start = sentence.start
            citations.append(
                Citation(len(citations) + 1, hit.article_id, hit.title, hit.url, hit.chunk_id, sentence.text)
            )
        parts.append((sentence.text, citations[-1].n))
        previous = sentence
    return parts, citations


def adjacent(previous: Sentence, sentence: Sentence) -> bool:
    """Next to each other in one passage, with nothing between (a heading left out is something)."""
    return (
        previous.hit.chunk_id == sentence.hit.chunk_id
        and previous.index + 1 == sentence.index
        and not sentence.hit.text[previous.end : sentence.start].strip()
    )


def extractive(question: str, language: str, evidence: Evidence, settings: AnswerSettings, mode: str) -> Answer:
    cross_language = bool(evidence.sentences) and evidence.sentences[0].hit.language != language
    chosen = compose(evidence.sentences, settings, cross_language)
    if not chosen:
        return not_found(question, language, mode, evidence.relevance)
    parts, citations = cite(chosen)
    body = SEPARATOR.join(f"{text} [{n}]" for text, n in parts)
    sources = {s.hit.language for s in chosen}
    lead = FOREIGN_LEAD.get((language, sources.pop())) if len(sources) == 1 else None
    if lead:
        body = f"{lead} {body}"
    return Answer(question, body, True, citations, language, mode, evidence.relevance)


class Answerer:
    """Answers questions from a knowledge base; the transport-free core every adapter calls."""

    def __init__(
        self,
        kb: KnowledgeBase,
        settings: AnswerSettings | None = None,
        *,
        llm: LLMSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        weights: Weights | None = None,
    ):
        self.kb = kb
        self.settings = settings or AnswerSettings()
        self.calibration = calibration.load(kb.embedder.model_id)
        self.weights = weights or self.calibration.weights
        self.min_relevance = (
            self.calibration.min_relevance if self.settings.min_relevance == "auto" else self.settings.min_relevance
        )
        self.judge = E5Judge()
        self.judge.load()  # once per process, here rather than on the first question (bot start-up)
        self.memory = FollowupMemory(self.settings.followup_minutes, clock)
        self.term_weights = TermWeights(kb)
        self.sentence_vectors = SentenceVectors(kb)
        self.word_vectors = WordVectors(kb)
        self.chat: ChatClient | None = None
        self.stream = False
        # Questions being answered right now: one alone gets both cores (its sentences split over two
        # threads); with several at once the cores are busy anyway, and more threads would only make
        # the bot's event loop wait longer for the GIL (tests/test_load.py).
        self._answering = 0
        self._answering_lock = threading.Lock()
        if self.settings.mode == "llm":
            if llm is None:
                raise ValueError("answer mode 'llm' needs the [llm] settings (base_url, model)")
            self.chat = ChatClient(llm)
            self.stream = llm.stream

    def answer(self, question: str, conversation: str | None = None) -> Answer:
        return self.answer_with_evidence(question, conversation)[0]

    def answer_stream(self, question: str, on_text: TextSink, conversation: str | None = None) -> Answer:
        """The answer, with ``on_text`` called with the growing text while a model writes it.

        Only a streaming model calls ``on_text`` (never with the final answer, which may differ:
        markers renumbered, or "not found" after all); an extractive answer comes back at once.
        """
        return self.answer_with_evidence(question, conversation, on_text)[0]

    def answer_with_evidence(
        self, question: str, conversation: str | None = None, on_text: TextSink | None = None
    ) -> tuple[Answer, Evidence]:
        """The answer and what it was built from (for benchmarks, logs and debugging)."""
        question = " ".join(question.split())
        if not question:
            return not_found(question, "de"), Evidence([], [], 0.0)
        resolved = self.memory.resolve(conversation, question, self._articles_text)
        language = question_language(question, resolved.topic)
        asked = without_more(question) if resolved.topic is not None else question
        evidence = self.gather(asked, resolved, language)
        if resolved.topic is not None and resolved.shown:
            answer, evidence = self._respond_followup(question, language, evidence, resolved, on_text)
        else:
            answer = self._respond(question, language, evidence, on_text)
        self.memory.remember(
            conversation, [c.quote for c in answer.citations], [c.article_id for c in answer.citations]
        )
        return answer, evidence

    def _respond_followup(
        self, question: str, language: str, evidence: Evidence, resolved: Resolved, on_text: TextSink | None
    ) -> tuple[Answer, Evidence]:
        """A follow-up whose earlier answers are known: what it asks, from sentences not quoted yet."""
        mode = "llm" if self.chat else "extractive"
        if not evidence.sentences or evidence.relevance < self.min_relevance:
            return not_found(question, language, mode, evidence.relevance), evidence
        sentences = follow_on(question, evidence.sentences, resolved, self.settings.min_support)
        if not sentences:
            return nothing_more(question, language, mode, evidence.relevance), evidence
        evidence = Evidence(evidence.hits, sentences, evidence.relevance, evidence.features)
        return self._respond(question, language, evidence, on_text), evidence

    def _articles_text(self, article_ids: tuple[int, ...]) -> str:
        """The titles and texts of these articles (those gone since are left out)."""
        texts = []
        for article_id in article_ids:
            try:
                article = self.kb.article(article_id)
            except ArticleNotFound:  # removed since it was quoted
                continue
            texts.append(f"{article.title} {article.text}")
        return " ".join(texts)

    def _respond(self, question: str, language: str, evidence: Evidence, on_text: TextSink | None = None) -> Answer:
        if not evidence.sentences or evidence.relevance < self.min_relevance:
            return not_found(question, language, "llm" if self.chat else "extractive", evidence.relevance)
        if self.chat is None:
            return extractive(question, language, evidence, self.settings, "extractive")
        try:
            return generate(
                self.chat, question, language, evidence, self.settings, on_text, self.stream, self._pick_quote
            )
        except LLMError as exc:
            log.warning("LLM failed, answering extractively: %s", exc)
            answer = extractive(question, language, evidence, self.settings, "extractive-fallback")
            answer.cut_off = getattr(exc, "shown", "")
            return answer

    def _pick_quote(self, hit: SearchHit, said: str) -> str:
        """The sentence of ``hit`` that best supports ``said``: shared terms, then embedding similarity."""
        spans = split_hits([hit])[0]
        if len(spans) < 2:
            return best_quote(hit.text, said, spans or None)
        vectors = self.sentence_vectors.for_hits([hit], [spans])[0]
        similarity = vectors @ self.kb.embedder.embed_queries([said])[0]
        # Cosine stays below 1, so it only orders sentences sharing as many terms.
        return best_quote(hit.text, said, spans, lambda i: 0.99 * float(similarity[i]))

    def gather(self, question: str, resolved: Resolved, language: str) -> Evidence:
        with self._answering_lock:
            self._answering += 1
            alone = self._answering == 1
        try:
            return self._gather(question, resolved, language, alone)
        finally:
            with self._answering_lock:
                self._answering -= 1

    def _gather(self, question: str, resolved: Resolved, language: str, alone: bool) -> Evidence:
        # e5 reads what the search reads: a follow-up ("Und was hat sie gekostet?") with its topic question,
        # since alone it names nothing to be relevant to. A question alone has it embedded on another
        # thread while the search runs; among others everything stays on this thread, as each of them
        # keeps a core busy already.
        if alone:
            self.judge.prepare(resolved.query)
        hits = self.kb.search(resolved.query, k=self.settings.passages)
        if not hits:
            return Evidence([], [], 0.0)
        terms = question_terms(question, resolved.topic)
        idf = self.term_weights.idf(list(terms))
        mass = {t: w * idf[t] for t, w in terms.items()}
        query_vector = self.kb.embed_query(resolved.query)
        spans = split_hits(hits)
        vectors = self.sentence_vectors.for_hits(hits, spans, split=alone)
        matcher = None
        if any(h.language != language for h in hits):  # stems rarely match across languages: words do
            matcher = word_matcher(question, language, hits, self.word_vectors, self.term_weights)
        sentences = score_sentences(
            question,
            mass,
            query_vector,
            hits,
            spans,
            vectors,
            self.weights,
            matcher,
            self.calibration.cross_language_weights,
        )
        sentences.sort(key=lambda s: -s.score)
        best = sentences[0] if sentences else None
        judged = self.judged(resolved.query, sentences, split=alone)
        features = relevance_features(question, best, sentences, hits, mass, matcher, judged)
        cross_language = best is not None and best.hit.language != language
        model = self.calibration.cross_language_relevance if cross_language else self.calibration.relevance
        return Evidence(hits, sentences, model.probability(features), features)

    def judged(self, question: str, sentences: list[Sentence], split: bool = True) -> list[float]:
        """e5's similarity of the question to the best few sentences (each with its article's title)."""
        top = sentences[:JUDGED_SENTENCES]
        texts = [f"{s.hit.title}. {s.text}" for s in top]
        return [float(v) for v in self.judge.similarity(question, texts, split)]

    def close(self) -> None:
        if self.chat is not None:
            self.chat.close()
