"""Generative answers: numbered passages to the model, its ``[n]`` markers checked on the way back.

The reply is never trusted: markers that point to no passage are removed, a sentence without a
marker takes the marker of the next cited sentence (else of the one before), a reply with no valid
marker at all is "not found", and each cited passage is quoted verbatim by its sentence that best
matches what the model said. The model's own words are the body; the quotes are the article's.

Streamed, the reply is shown while it is written (``shown_text``: no marker to a missing passage,
nothing that may yet become NOT_FOUND); the checks run on the whole reply, so the final answer may
differ from what was shown. A failure after words were shown raises ``CutOff`` carrying them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from index.chunking import answer_spans, sentence_spans
from index.lexical import analyze

from .answer_types import Answer, Citation, Evidence, not_found
from .config import AnswerSettings
from .llm import ChatClient, LLMError

if TYPE_CHECKING:
    from index.search import SearchHit

TextSink = Callable[[str], None]

NOT_FOUND_TOKEN = "NOT_FOUND"

# The instructions in the question's language, which is the language the answer must be in.
SYSTEM_PROMPT = {
    "de": (
        "Du beantwortest Fragen zu Nachrichtenartikeln, und zwar nur mit dem, was in den nummerierten "
        "Textstellen steht. Setze hinter jeden Satz die Nummer der Textstelle, die ihn belegt, in eckigen "
        "Klammern, etwa [1] oder [1][3]. Schreibe nichts, was nicht in den Textstellen steht. Wenn die "
        f"Textstellen die Frage nicht beantworten, antworte genau mit {NOT_FOUND_TOKEN} und sonst nichts. "
        "Antworte auf Deutsch, in höchstens drei kurzen Sätzen, als reiner Text ohne Markdown."
    ),
    "en": (
        "You answer questions about news articles using only the numbered passages you are given. "
        "After every sentence put the number of the passage that supports it in square brackets, like [1] "
        "or [1][3]. Never state anything the passages do not say. If the passages do not answer the "
        f"question, reply with exactly {NOT_FOUND_TOKEN} and nothing else. Answer in English, in at most "
        "three short sentences, as plain text without Markdown."
    ),
}
LABELS = {"de": ("Textstellen", "Frage"), "en": ("Passages", "Question")}

_MARKER_GROUP = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
_MARKER = re.compile(r"\[(\d+)\]")
_MARKER_WITH_SPACE = re.compile(r"\s*\[(\d+)\]")
_MARKDOWN = re.compile(r"(\*\*|__|`|^#{1,6}\s*|^\s*[-*]\s+)", re.MULTILINE)


def build_messages(question: str, language: str, passages: list) -> list[dict[str, str]]:
    numbered = "\n\n".join(f"[{i}] {hit.title}\n{hit.text}" for i, hit in enumerate(passages, 1))
    passages_label, question_label = LABELS[language]
    return [
        {"role": "system", "content": SYSTEM_PROMPT[language]},
        {"role": "user", "content": f"{passages_label}:\n\n{numbered}\n\n{question_label}: {question}"},
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


QuotePicker = Callable[["SearchHit", str], str]


def best_quote(
    passage_text: str,
    said: str,
    spans: list[tuple[int, int]] | None = None,
    similarity: Callable[[int], float] | None = None,
) -> str:
    """The passage sentence that best supports what the model said, verbatim.

    Shared terms decide; ``similarity(i)`` (the cosine of sentence i with what was said, below 1)
    breaks ties, which matters when the reply is in another language than the passage.
    """
    said_terms = set(analyze(said, drop_stopwords=True))
    spans = spans or answer_spans(passage_text) or [(0, len(passage_text))]

    def support(i: int) -> float:
        start, end = spans[i]
        overlap = len(said_terms & set(analyze(passage_text[start:end], drop_stopwords=True)))
        return overlap + (similarity(i) if similarity else 0.0)

    start, end = spans[max(range(len(spans)), key=support)]
    return passage_text[start:end]


def is_not_found(reply: str) -> bool:
    return NOT_FOUND_TOKEN in reply.upper().replace(" ", "_") and not _MARKER.search(reply)


_OPEN_MARKER = re.compile(r"\[[\d\s,;]*$")


def shown_text(reply: str, passages: int) -> str:
    """What a reader may see of a reply still being written: no Markdown, no marker to a missing
    passage, no half-written marker, and nothing while it may still turn out to be NOT_FOUND."""
    text = normalize_markers(reply).strip()
    folded = text.upper().replace(" ", "_")
    if folded and (NOT_FOUND_TOKEN.startswith(folded) or NOT_FOUND_TOKEN in folded):
        return ""
    text = _MARKER.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= passages else "", text)
    return _OPEN_MARKER.sub("", text).rstrip()


class CutOff(LLMError):
    """The model failed after part of its reply was shown; ``shown`` is that part."""

    def __init__(self, message: str, shown: str):
        super().__init__(message)
        self.shown = shown


def stream_reply(chat: ChatClient, messages: list[dict[str, str]], passages: int, on_text: TextSink | None) -> str:
    """The whole reply, read as a stream; ``on_text`` gets the growing visible text whenever it changes."""
    reply, shown = "", ""
    try:
        for piece in chat.stream(messages):
            reply += piece
            visible = shown_text(reply, passages)
            if on_text is not None and visible and visible != shown:
                shown = visible
                on_text(visible)
    except LLMError as exc:
        if shown:
            raise CutOff(str(exc), shown) from exc
        raise
    if not reply.strip():
        raise LLMError("the reply has no text")
    return reply.strip()


def generate(
    chat: ChatClient,
    question: str,
    language: str,
    evidence: Evidence,
    settings: AnswerSettings,
    on_text: TextSink | None = None,
    stream: bool = False,
    pick_quote: QuotePicker | None = None,
) -> Answer:

    passages = evidence.hits[: settings.passages]
    messages = build_messages(question, language, passages)
    reply = stream_reply(chat, messages, len(passages), on_text) if stream else chat.complete(messages)
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
        statement = " ".join(said[n])
        quote = pick_quote(hit, statement) if pick_quote else best_quote(hit.text, statement)
        citations.append(Citation(new, hit.article_id, hit.title, hit.url, hit.chunk_id, quote))
    return Answer(question, " ".join(parts), True, citations, language, "llm", evidence.relevance)
