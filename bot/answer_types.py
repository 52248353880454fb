"""What an answer is: the types the answering core and the LLM answerer share (no logic, no cycle).

``bot.answer`` re-exports them; import them from either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from index.search import SearchHit

from .evidence import Sentence

NOT_FOUND = {
    "de": "Dazu habe ich in den Artikeln nichts gefunden.",
    "en": "I found nothing about this in the articles.",
}

# A follow-up whose answer was quoted already, or that nothing new answers ("Und warum?" twice).
NOTHING_MORE = {
    "de": "Mehr steht dazu nicht in den Artikeln.",
    "en": "The articles say nothing more about this.",
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
    # How well the best passage matches the question (0..1); below min_relevance: not found.
    relevance: float = 0.0
    # The model's words shown before it failed mid-answer (mode "extractive-fallback" only).
    cut_off: str = ""

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "answer": self.body,
            "found": self.found,
            "citations": [asdict(c) for c in self.citations],
        }


@dataclass
class Evidence:
    """What retrieval and sentence scoring found for one question."""

    hits: list[SearchHit]
    sentences: list[Sentence]  # best first
    relevance: float
    features: dict[str, float] = field(default_factory=dict)  # what relevance was computed from


def not_found(question: str, language: str, mode: str = "extractive", relevance: float = 0.0) -> Answer:
    return Answer(question, NOT_FOUND[language], False, [], language, mode, relevance)


def nothing_more(question: str, language: str, mode: str = "extractive", relevance: float = 0.0) -> Answer:
    return Answer(question, NOTHING_MORE[language], False, [], language, mode, relevance)
