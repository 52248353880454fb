"""Shared loaders for the German XQuAD benchmark data (``../shared/data/xquad-de``).

Each of the 36 Wikipedia articles becomes ONE article: title = the article title with underscores
as spaces, text = its paragraphs' contexts joined by blank lines. Every question keeps its gold
answer strings and the answer's character offset in that article text, so a benchmark can score
either "the chunk contains an answer string" or "the chunk covers the answer span".

    from bench.xquad import load_articles, build_kb, shared_dir
    articles = load_articles()              # raises SharedDataMissing if ../shared is absent
    kb = build_kb(articles, "/tmp/xq-kb")   # re-uses the data dir when it already holds them
    for q in questions(articles): kb.search(q.question)

Nothing here reads the gold answers on the system side: they are only for scoring.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
XQUAD_DE = Path("data/xquad-de/xquad.de.dev.json")
PARAGRAPH_SEPARATOR = "\n\n"


class SharedDataMissing(RuntimeError):
    """../shared (or the requested file in it) is not there: benchmarks print this and exit 0."""


def shared_dir() -> Path:
    """The shared data directory (``$ARTICLEBOT_SHARED`` or ``../shared`` beside the checkout)."""
    path = Path(os.environ.get("ARTICLEBOT_SHARED", SHARED))
    if not path.is_dir():
        raise SharedDataMissing(f"skipped: shared data directory {path} is absent")
    return path


def shared_file(relative: Path | str) -> Path:
    path = shared_dir() / relative
    if not path.is_file():
        raise SharedDataMissing(f"skipped: {path} is absent")
    return path


@dataclass
class Question:
    id: str
    question: str
    answers: list[str]  # gold answer strings (deduplicated, for scoring only)
    answer_start: int  # offset of the first gold answer in the *article* text
    answer_end: int
    article: int  # index into the article list


@dataclass
class Article:
    title: str
    text: str
    questions: list[Question] = field(default_factory=list)


def load_articles(path: Path | str | None = None) -> list[Article]:
    """The XQuAD file (German by default) as one Article per Wikipedia article, with its questions."""
    data = json.loads(Path(path or shared_file(XQUAD_DE)).read_text(encoding="utf-8"))["data"]
    articles = []
    for index, entry in enumerate(data):
        parts: list[str] = []
        offset = 0
        article = Article(title=entry["title"].replace("_", " "), text="")
        for paragraph in entry["paragraphs"]:
            if parts:
                offset += len(PARAGRAPH_SEPARATOR)
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                first = qa["answers"][0]
                start = offset + first["answer_start"]
                article.questions.append(
                    Question(
                        id=qa["id"],
                        question=qa["question"],
                        answers=list(dict.fromkeys(a["text"] for a in qa["answers"])),
                        answer_start=start,
                        answer_end=start + len(first["text"]),
                        article=index,
                    )
                )
            parts.append(context)
            offset += len(context)
        article.text = PARAGRAPH_SEPARATOR.join(parts)
        articles.append(article)
    return articles


def questions(articles: list[Article]) -> list[Question]:
    return [q for a in articles for q in a.questions]


def documents(articles: list[Article]):
    """The articles as ``index.extract.Document`` objects, ready for ``KnowledgeBase.add_many``."""
    from index.extract import Document

    return [Document(title=a.title, text=a.text, source="xquad") for a in articles]


def build_kb(articles: list[Article], data_dir: Path | str, settings=None, embedder=None):
    """A KnowledgeBase in ``data_dir`` holding the articles (added only if not there yet).

    ``settings`` is an ``IndexSettings`` (its data_dir is replaced); a data dir built with other
    chunk settings or another model should be deleted first, since nothing is re-chunked here.
    """
    from index.kb import KnowledgeBase
    from index.settings import IndexSettings

    settings = settings or IndexSettings()
    settings.data_dir = str(data_dir)
    kb = KnowledgeBase(settings, embedder=embedder)
    if kb.store.counts()["articles"] != len(articles):
        kb.add_many(documents(articles))  # duplicates of a partial earlier build are skipped
    return kb
