"""Plain records and errors of the knowledge base, shared by every storage engine and by its users.

Nothing here knows SQL or FAISS: the bot may import these freely.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit


@dataclass
class ArticleRecord:
    id: int
    title: str
    url: str | None
    source: str
    published: str | None
    added_by: str | None
    added_at: str
    content_hash: str
    text: str
    language: str
    chunk_count: int = 0


@dataclass
class ChunkRecord:
    id: int
    article_id: int
    position: int
    text: str
    start: int
    end: int
    title: str
    url: str | None
    language: str


class DuplicateArticle(Exception):
    def __init__(self, article_id: int, reason: str):
        super().__init__(f"already present as #{article_id} ({reason})")
        self.article_id = article_id
        # "same text" or "same URL": a known URL with other text means the page changed since.
        self.reason = reason


class ArticleNotFound(Exception):
    def __init__(self, article_id: object):
        super().__init__(f"no article with id {article_id}")
        self.article_id = article_id


def content_hash(text: str) -> str:
    normal = unicodedata.normalize("NFKC", text).casefold()
    normal = re.sub(r"\s+", " ", normal).strip()
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def normalize_url(url: str | None) -> str | None:
    """Same article, same key: no fragment, no tracking parameters, lower-case host, no trailing slash."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    query = "&".join(p for p in parts.query.split("&") if p and not p.lower().startswith(("utm_", "fbclid=", "gclid=")))
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, query, ""))


def article_row(article: ArticleRecord) -> dict:
    """An article's stored columns as a row, its id included (what a copy into another store inserts)."""
    return {
        "id": article.id,
        "title": article.title,
        "url": article.url,
        "url_key": normalize_url(article.url),
        "source": article.source,
        "published": article.published,
        "added_by": article.added_by,
        "added_at": article.added_at,
        "content_hash": article.content_hash,
        "text": article.text,
        "language": article.language,
    }


def now() -> str:
    """The moment as stored in articles, answers and votes: UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def stamp(moment: datetime | None = None) -> str:
    """A moment as the update ledger stores it: UTC, to the millisecond (sorts as text)."""
    return (moment or datetime.now(UTC)).isoformat(timespec="milliseconds")


def new_article_row(article: dict) -> dict:
    """A new article's row before its id: the columns given, with its content hash, URL key and time added."""
    record = dict(article)
    record["content_hash"] = content_hash(record["text"])
    record["url_key"] = normalize_url(record.get("url"))
    record.setdefault("added_at", now())
    return record


def answer_from_row(row: Sequence) -> dict:
    """(id, question, answer, language, citations JSON) as the answer log hands it out."""
    keys = ("id", "question", "answer", "language")
    return {**dict(zip(keys, row[:4], strict=True)), "citations": json.loads(row[4] or "[]")}


def vote_from_row(row: Sequence) -> dict:
    """(answer_id, user_id, vote, created_at, question, answer, citations JSON) as ``feedback()`` hands it out."""
    keys = ("answer_id", "user_id", "vote", "created_at", "question", "answer", "citations")
    return {**dict(zip(keys, row, strict=True)), "citations": json.loads(row[6] or "[]")}
