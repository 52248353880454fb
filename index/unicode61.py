"""FTS5's ``unicode61 remove_diacritics 2`` tokenizer, for the PostgreSQL engine's lexical index.

The SQLite engine stores each passage's analysed terms (``kb.fts_terms``) in an FTS5 table, which
tokenizes them once more: it splits at characters it does not count as word characters ("_", "⁄"),
folds case and removes diacritics by its own tables ("Ä" → "a", "a" + U+0301 → "a", but "ø" and
Greek accents stay). PostgreSQL must see the same tokens, or BM25 would differ between the engines.

Plain ASCII terms (nearly all of them: ``index.lexical`` stems and folds) are split here in Python;
any other word is handed to SQLite's own tokenizer once (an in-memory FTS5 table, per thread) and
remembered, so the two engines agree by construction rather than by a re-implemented Unicode table.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from functools import lru_cache

_ASCII_TOKEN = re.compile(r"[a-z0-9]+")
_local = threading.local()


def _probe() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.execute("CREATE VIRTUAL TABLE probe USING fts5(x, tokenize='unicode61 remove_diacritics 2')")
        conn.execute("CREATE VIRTUAL TABLE probe_tokens USING fts5vocab(probe, 'instance')")
        _local.conn = conn
    return conn


@lru_cache(maxsize=262_144)
def word_tokens(word: str) -> tuple[str, ...]:
    """The tokens FTS5 makes of one whitespace-free word."""
    if word.isascii():
        return tuple(_ASCII_TOKEN.findall(word.lower()))
    conn = _probe()
    with conn:
        conn.execute("DELETE FROM probe")
        conn.execute("INSERT INTO probe (rowid, x) VALUES (1, ?)", (word,))
        rows = conn.execute('SELECT term FROM probe_tokens ORDER BY "offset"').fetchall()
    return tuple(r[0] for r in rows)


def tokens(text: str) -> list[str]:
    """The tokens FTS5 makes of a stored column (space-separated terms), in order."""
    out: list[str] = []
    for word in text.split():
        out.extend(word_tokens(word))
    return out
