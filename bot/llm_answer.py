"""Generative answers: numbered passages to the model, its ``[n]`` markers checked on the way back.

The reply is never trusted: markers that point to no passage are removed, a sentence without a
marker takes the marker of the next cited sentence (else of the one before), a reply with no valid
marker at all is "not found", and each cited passage is quoted verbatim by its sentence that best
matches what the model said. The model's own words are the body; the quotes are the article's.
"""

from __future__ import annotations

import re

from index.chunking import answer_spans, sentence_spans
from index.lexical import analyze

from .answer_types import Answer, Citation, Evidence, not_found
from .config import AnswerSettings
from .llm import ChatClient

NOT_FOUND_TOKEN = "NOT_FOUND"
LANGUAGE_NAMES = {"de": "German", "en": "English"}

SYSTEM_PROMPT = (
    "You answer questions about news articles using only the numbered passages you are given. "
    "After every sentence put the number of the passage that supports it in square brackets, like [1] "
    "or [1][3]. Never state anything the passages do not say. If the passages do not answer the "
    f"question, reply with exactly {NOT_FOUND_TOKEN} and nothing else. Answer in {{language}}, in at most "
    "three short sentences, as plain text without Markdown."
)

_MARKER_GROUP = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
_MARKER = re.compile(r"\[(\d+)\]")
_MARKER_WITH_SPACE = re.compile(r"\s*\[(\d+)\]")
_MARKDOWN = re.compile(r"(\*\*|__|`|^#{1,6}\s*|^\s*[-*]\s+)", re.MULTILINE)


def build_messages(question: str, language: str, passages: list) -> list[dict[str, str]]:
    numbered = "\n\n".join(f"[{i}] {hit.title}\n{hit.text}" for i, hit in enumerate(passages, 1))
    system = SYSTEM_PROMPT.format(language=LANGUAGE_NAMES[language])
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Passages:\n\n{numbered}\n\nQuestion: {question}"},
    ]


def normalize_markers(reply: str) -> str:
    """``[1, 2]`` → ``[1][2]``; Markdown emphasis, headings and bullets go (the body is plain text)."""
    reply = _MARKDOWN.sub("", reply)
    return _MARKER_GROUP.sub(lambda m: "".join(f"[{n}]" for n in re.split(r"\s*[,;]\s*", m.group(1))), reply)


def split_statements(reply: str) -> list[tuple[str, list[int]]]:
    """(sentence without markers, its marker numbers) for each sentence of the reply.

    Markers are taken out before splitting ("… 1956 [2]. Danach" would read as an ordinal), and
    each goes to the sentence it stood in or, after a full stop, to the sentence it followed.
    """
    text = " ".join(reply.split())
    pieces: list[str] = []
    marks: list[tuple[int, int]] = []  # (offset in the plain text, passage number)
    length, pos = 0, 0
    for match in _MARKER_WITH_SPACE.finditer(text):
        pieces.append(text[pos : match.start()])
        length += match.start() - pos
        marks.append((length, int(match.group(1))))
        pos = match.end()
    pieces.append(text[pos:])
    plain = "".join(pieces)
    spans = sentence_spans(plain)
    statements: list[tuple[str, list[int]]] = [(plain[s:e], []) for s, e in spans]
    for offset, number in marks:
        owner = max((i for i, (s, _) in enumerate(spans) if s <= offset), default=0)
        if statements:
            statements[owner][1].append(number)
    return [(sentence, numbers) for sentence, numbers in statements if any(c.isalnum() for c in sentence)]


def valid_statements(statements: list[tuple[str, list[int]]], passages: int) -> list[tuple[str, list[int]]]:
    """Markers outside 1..passages go; a sentence that cited only such passages goes with them."""
    result = []
    for sentence, numbers in statements:
        valid = [n for n in dict.fromkeys(numbers) if 1 <= n <= passages]
        if numbers and not valid:
            continue
        result.append((sentence, valid))
    return result


def inherit_markers(statements: list[tuple[str, list[int]]]) -> list[tuple[str, list[int]]]:
    """An unmarked sentence takes the markers of the next marked one, else of the one before."""
    result = []
    for i, (sentence, numbers) in enumerate(statements):
        if not numbers:
            later = next((n for _, n in statements[i + 1 :] if n), None)
            earlier = next((n for _, n in reversed(statements[:i]) if n), None)
            numbers = later or earlier or []
        result.append((sentence, numbers))
    return result


def best_quote(passage_text: str, said: str) -> str:
    """The passage sentence sharing the most terms with what the model said it supports."""
    said_terms = set(analyze(said, drop_stopwords=True))
    spans = answer_spans(passage_text) or [(0, len(passage_text))]

    def overlap(span: tuple[int, int]) -> int:
        return len(said_terms & set(analyze(passage_text[span[0] : span[1]], drop_stopwords=True)))

    start, end = max(spans, key=overlap)
    return passage_text[start:end]


def is_not_found(reply: str) -> bool:
    return NOT_FOUND_TOKEN in reply.upper().replace(" ", "_") and not _MARKER.search(reply)


def generate(chat: ChatClient, question: str, language: str, evidence: Evidence, settings: AnswerSettings) -> Answer:

    passages = evidence.hits[: settings.passages]
    reply = chat.complete(build_messages(question, language, passages))
    if is_not_found(reply):
        return not_found(question, language, "llm", evidence.relevance)
    statements = valid_statements(split_statements(normalize_markers(reply)), len(passages))
    if not any(numbers for _, numbers in statements):
        return not_found(question, language, "llm", evidence.relevance)
    renumber: dict[int, int] = {}
    said: dict[int, list[str]] = {}
    parts = []
    for sentence, numbers in inherit_markers(statements):
        for n in numbers:
            renumber.setdefault(n, len(renumber) + 1)
            said.setdefault(n, []).append(sentence)
        marks = "".join(f"[{renumber[n]}]" for n in numbers)
        parts.append(f"{sentence} {marks}")
    citations = []
    for n, new in renumber.items():
        hit = passages[n - 1]
        quote = best_quote(hit.text, " ".join(said[n]))
        citations.append(Citation(new, hit.article_id, hit.title, hit.url, hit.chunk_id, quote))
    return Answer(question, " ".join(parts), True, citations, language, "llm", evidence.relevance)
