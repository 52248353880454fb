"""Plain records and errors of the knowledge base, shared by every storage engine and by its users.

Nothing here knows SQL or FAISS: the bot may import these freely.
"""

from __future__ import annotations

from dataclasses import dataclass


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
