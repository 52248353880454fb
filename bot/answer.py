"""The answering core: question in, Answer with numbered citations out. No transport in here.

Every statement in ``Answer.body`` carries a ``[n]`` marker that points to ``citations[n-1]``;
every quote is a verbatim substring of its chunk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from index.chunking import sentence_spans
from index.kb import KnowledgeBase
from index.lexical import analyze, detect_language
from index.search import SearchHit

from .config import AnswerSettings

NOT_FOUND = {
    "de": "Dazu habe ich in den Artikeln nichts gefunden.",
    "en": "I found nothing about this in the articles.",
}


@dataclass
class Citation:
    n: int
    article_id: int
    title: str
    url: str | None
    chunk_id: int
    quote: str


@dataclass
class Answer:
    question: str
    body: str
    found: bool
    citations: list[Citation] = field(default_factory=list)
    language: str = "de"
    mode: str = "extractive"

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "answer": self.body,
            "found": self.found,
            "citations": [asdict(c) for c in self.citations],
        }


def not_found(question: str, language: str) -> Answer:
    return Answer(question=question, body=NOT_FOUND[language], found=False, language=language)


def _overlap(question_terms: set[str], sentence: str) -> float:
    terms = set(analyze(sentence, drop_stopwords=True))
    return len(question_terms & terms) / (len(question_terms) or 1)


def extractive_answer(question: str, hits: list[SearchHit], settings: AnswerSettings) -> Answer:
    language = detect_language(question)
    if not hits:
        return not_found(question, language)
    question_terms = set(analyze(question, drop_stopwords=True))
    scored = []
    for rank, hit in enumerate(hits[: settings.passages]):
        for start, end in sentence_spans(hit.text):
            sentence = hit.text[start:end]
            scored.append((_overlap(question_terms, sentence) - 0.05 * rank, rank, start, sentence, hit))
    scored.sort(key=lambda s: -s[0])
    if not scored or scored[0][0] <= 0:
        return not_found(question, language)
    citations: list[Citation] = []
    parts: list[str] = []
    for _, _, _, sentence, hit in scored[: settings.max_sentences]:
        n = next((c.n for c in citations if c.chunk_id == hit.chunk_id), len(citations) + 1)
        if n > len(citations):
            citations.append(Citation(n, hit.article_id, hit.title, hit.url, hit.chunk_id, sentence))
        parts.append(f"{sentence} [{n}]")
        if sum(len(p) for p in parts) >= settings.max_chars:
            break
    return Answer(question=question, body=" ".join(parts), found=True, citations=citations, language=language)


class Answerer:
    """Answers questions from a knowledge base; the transport-free core every adapter calls."""

    def __init__(self, kb: KnowledgeBase, settings: AnswerSettings | None = None):
        self.kb = kb
        self.settings = settings or AnswerSettings()

    def answer(self, question: str, conversation: str | None = None) -> Answer:
        question = question.strip()
        hits = self.kb.search(question, k=self.settings.passages)
        return extractive_answer(question, hits, self.settings)
