"""Loaders for the in-domain news evaluation set: 10kGNAD test articles and hand-written questions.

The articles are ``../shared/data/10kgnad/test.csv`` (der Standard, 1,028 rows of ``label;'text'``);
the questions are ``bench/news_questions.json`` (see ``bench/news_questions.md`` for how they were made).
Only the row index and a 60-character fingerprint of each article are stored here, never its text.

    from bench.newsdata import load_gnad, load_news_questions
    articles = load_gnad()                  # raises SharedDataMissing if ../shared is absent
    for q in load_news_questions():         # fingerprints checked against the CSV
        article = articles[q.row]

The answer strings are for scoring only (``any(a in answer for a in q.answers)``).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.xquad import SharedDataMissing, shared_file

GNAD_TEST = Path("data/10kgnad/test.csv")
QUESTIONS = Path(__file__).with_name("news_questions.json")
FINGERPRINT_CHARS = 60
TITLE_CHARS = 80
# A sentence ends at . ! ? (optionally closed by a quote or bracket) followed by whitespace.
SENTENCE_END = re.compile(r"[.!?][\"'“”»«)]?(?=\s)")

__all__ = [
    "FingerprintMismatch",
    "GnadArticle",
    "NewsQuestion",
    "SharedDataMissing",
    "article_url",
    "documents",
    "load_gnad",
    "load_news_questions",
    "title_of",
]


class FingerprintMismatch(ValueError):
    """A question's stored fingerprint is not the start of the article in its row: the CSV differs."""


@dataclass
class GnadArticle:
    row: int  # 0-based row index in the CSV
    label: str  # the category (Web, Panorama, International, Wirtschaft, Sport, Inland, Etat, Wissenschaft, Kultur)
    title: str  # the first sentence, shortened: the data set has no separate titles
    text: str  # the whole article text, as in the CSV


@dataclass
class NewsQuestion:
    row: int
    label: str
    fingerprint: str
    question_de: str
    question_en: str
    answers: list[str]  # exact substrings of the article text, for scoring only
    also_in_rows: list[int] = field(default_factory=list)  # other rows containing an answer string


def title_of(text: str, limit: int = TITLE_CHARS) -> str:
    """The first sentence of ``text``, cut at a word boundary with an ellipsis when longer than ``limit``."""
    text = " ".join(text.split())
    end = SENTENCE_END.search(text)
    sentence = text[: end.end()] if end else text
    if len(sentence) <= limit:
        return sentence
    cut = sentence[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:–-") + "…"


def load_gnad(path: Path | str | None = None) -> list[GnadArticle]:
    """Every row of the 10kGNAD CSV (the test split by default) as a GnadArticle, in file order."""
    path = Path(path) if path is not None else shared_file(GNAD_TEST)
    # Another split or a bigger corpus may hold an article beyond csv's default 128 KiB field limit.
    csv.field_size_limit(max(csv.field_size_limit(), 10_000_000))
    articles = []
    with path.open(encoding="utf-8", newline="") as f:
        for row, record in enumerate(csv.reader(f, delimiter=";", quotechar="'")):
            if len(record) != 2:
                raise ValueError(f"{path}: row {row} has {len(record)} fields, expected label;'text'")
            label, text = record
            articles.append(GnadArticle(row=row, label=label, title=title_of(text), text=text))
    return articles


def load_news_questions(
    path: Path | str | None = QUESTIONS, articles: list[GnadArticle] | None = None
) -> list[NewsQuestion]:
    """The hand-written questions, each checked to point at the article it was written for.

    ``path`` None means the bundled ``news_questions.json``; ``articles`` defaults to ``load_gnad()``
    (so this raises SharedDataMissing without ../shared).
    """
    path = Path(path) if path is not None else QUESTIONS
    articles = articles if articles is not None else load_gnad()
    questions = []
    for index, entry in enumerate(json.loads(Path(path).read_text(encoding="utf-8"))):
        try:
            question = NewsQuestion(**entry)
        except TypeError as error:  # a missing or unknown field
            raise ValueError(f"{path}: question {index} is malformed: {error}") from None
        if not 0 <= question.row < len(articles):
            raise FingerprintMismatch(f"question {index}: row {question.row} is outside the CSV's {len(articles)} rows")
        start = articles[question.row].text[:FINGERPRINT_CHARS]
        if start != question.fingerprint:
            raise FingerprintMismatch(
                f"question {index}: row {question.row} starts {start!r}, expected {question.fingerprint!r}"
            )
        questions.append(question)
    return questions


def article_url(row: int) -> str:
    """The made-up address of a 10kGNAD article in the benchmark knowledge bases (the data set has none)."""
    return f"https://10kgnad.invalid/test/{row}"


def documents(articles: list[GnadArticle]):
    """The articles as ``index.extract.Document`` objects, ready for ``KnowledgeBase.add_many``."""
    from index.extract import Document

    return [Document(title=a.title, text=a.text, url=article_url(a.row), source="10kgnad") for a in articles]
