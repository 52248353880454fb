"""Lexical search on PostgreSQL ranks as FTS5 does: same passages, same order, same BM25 scores.

Both engines get the same articles (the bundled samples, cut into passages, and generated text with
umlauts, accents, digits, other scripts and words FTS5 splits) and the same terms per passage
(``kb.fts_terms``); then many queries (the sample questions, random term sets, common and absent
terms) are run on both, also after removals, a re-chunking and a re-analysis.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest

from index.chunking import chunk_text
from index.kb import fts_terms
from index.lexical import query_terms
from index.pg_store import PgStore
from index.settings import StorageSettings
from index.store import Store
from index.unicode61 import tokens, word_tokens

SAMPLES = Path(__file__).resolve().parents[1] / "bot" / "samples"
DIM = 8
RELATIVE = 1e-4
VOCABULARY = (
    "Straße Strasse Größe Äpfel Öl Übermut Zölle Café naïve façade São Paulo Kraków Øresund Łódź Ἀθήνα Москва "
    "東京 İstanbul 2026 7,5 38,6 £420,000 x² ½ ﬁsch e\u0301te Haus Häuser Bahn Bahnhof Straßenbahn Linie 9 "
    "Stadtrat Brunnen Wasser Preis Hitze Bienen bees verges library pages"
).split()


def _articles() -> list[tuple[str, list[str]]]:
    """(title, passages) of every sample article and of generated ones."""
    out = []
    for path in sorted(SAMPLES.glob("0*.md")):
        head, body = path.read_text(encoding="utf-8").split("---\n", 2)[1:]
        title = re.search(r"^title: (.*)$", head, re.M).group(1)
        chunks = chunk_text(body.strip(), max_chars=400, min_chars=100)
        out.append((title, [c.text for c in chunks]))
    rng = random.Random(14)
    for n in range(40):
        passages = [" ".join(rng.choices(VOCABULARY, k=rng.randint(3, 60))) for _ in range(rng.randint(1, 6))]
        out.append((" ".join(rng.choices(VOCABULARY, k=rng.randint(0, 4))) or f"Meldung {n}", passages))
    return out


def _add(store, title: str, passages: list[str], n: int) -> tuple[int, list[int]]:
    article = {"title": title, "url": None, "source": "test", "text": f"{n} " + "\n\n".join(passages), "language": "de"}
    chunks = [{"position": i, "text": t, "start": 0, "end": len(t)} for i, t in enumerate(passages)]
    vectors = np.random.default_rng(n).standard_normal((len(passages), DIM)).astype(np.float32)
    return store.add_article(article, chunks, vectors, "m", fts_terms(title, passages))


@pytest.fixture
def twins(tmp_path, pg_dsn):
    sqlite = Store(tmp_path / "store.db")
    pg = PgStore(StorageSettings(engine="postgres", dsn=pg_dsn))
    for n, (title, passages) in enumerate(_articles()):
        assert _add(sqlite, title, passages, n) == _add(pg, title, passages, n)
    yield sqlite, pg
    sqlite.close()
    pg.close()


def _queries(sqlite: Store, count: int, seed: int) -> list[list[str]]:
    """The sample questions' terms, and random sets of the stored terms (single-token terms: a term
    FTS5 splits is a phrase there and separate tokens in PostgreSQL, see pg_store.query_tokens)."""
    questions = [line.split("|")[1] for line in (SAMPLES / "QUESTIONS.md").read_text().splitlines() if "|" in line]
    queries = [query_terms(q) for q in questions[1:]]
    rows = sqlite.reader().execute("SELECT title_terms || ' ' || terms FROM chunks_fts").fetchall()
    stored = sorted({t for (text,) in rows for t in text.split() if len(word_tokens(t)) == 1})
    rng = random.Random(seed)
    queries += [rng.sample(stored, rng.randint(1, 8)) for _ in range(count)]
    queries += [["nirgendwo"], ["nirgendwo", stored[0]], [stored[0], stored[0]]]
    return [[t for t in q if len(word_tokens(t)) == 1] for q in queries]


def _groups(hits: list[tuple[int, float]]) -> list[tuple[float, set[int]]]:
    """Hits grouped by equal score (ties may come in any order)."""
    groups: list[tuple[float, set[int]]] = []
    for chunk_id, score in hits:
        if groups and abs(groups[-1][0] - score) <= RELATIVE * abs(score):
            groups[-1][1].add(chunk_id)
        else:
            groups.append((score, {chunk_id}))
    return groups


def _assert_same_ranking(sqlite: Store, pg: PgStore, terms: list[str]) -> int:
    expected, got = sqlite.lexical_search(terms, 10_000), pg.lexical_search(terms, 10_000)
    assert len(got) == len(expected), terms
    for (want_score, want_ids), (score, ids) in zip(_groups(expected), _groups(got), strict=True):
        assert score == pytest.approx(want_score, rel=RELATIVE), terms
        assert ids == want_ids, terms
    # The top k as the search asks for it: the same scores, and the same passages but for ties at the cut.
    top, top_pg = sqlite.lexical_search(terms, 20), pg.lexical_search(terms, 20)
    assert [s for _, s in top_pg] == pytest.approx([s for _, s in top], rel=RELATIVE)
    return len(expected)


def test_bm25_ranks_as_fts5(twins):
    sqlite, pg = twins
    matched = [_assert_same_ranking(sqlite, pg, terms) for terms in _queries(sqlite, 300, 1)]
    assert sum(1 for m in matched if m > 1) > 250, "most queries should match several passages"


def test_bm25_ranks_as_fts5_after_removals_rechunking_and_reanalysis(twins):
    sqlite, pg = twins
    for article_id in (2, 9, 17, 30):
        assert sqlite.remove_article(article_id) == pg.remove_article(article_id)
    passages = ["Neue Passage über die Straßenbahn und den Bahnhof.", "Noch eine: Wasser, Preis, Öl."]
    chunks = [{"position": i, "text": t, "start": 0, "end": len(t)} for i, t in enumerate(passages)]
    vectors = np.ones((2, DIM), dtype=np.float32)
    for store in (sqlite, pg):
        store.replace_chunks(5, chunks, vectors, fts_terms("Neuer Titel", passages), "m")
    for terms in _queries(sqlite, 80, 2):
        _assert_same_ranking(sqlite, pg, terms)
    # A new analyzer's terms for every passage (reindex): here, the title terms dropped.
    rows = [
        (c, "", terms) for c, _, terms in sqlite.reader().execute("SELECT rowid, title_terms, terms FROM chunks_fts")
    ]
    for store in (sqlite, pg):
        store.replace_fts(rows)
    for terms in _queries(sqlite, 80, 3):
        _assert_same_ranking(sqlite, pg, terms)


def test_document_frequencies_agree(twins):
    sqlite, pg = twins
    rows = sqlite.reader().execute("SELECT title_terms || ' ' || terms FROM chunks_fts").fetchall()
    terms = sorted({t for (text,) in rows for t in tokens(text)})
    assert len(terms) > 500
    assert pg.document_frequencies(terms + ["nirgendwo"]) == sqlite.document_frequencies(terms + ["nirgendwo"])


def test_tokens_are_fts5s():
    """The Python side of the tokenizer: the same tokens FTS5 makes of the same stored strings."""
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='unicode61 remove_diacritics 2')")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    rng = random.Random(5)
    alphabet = "abcXYZ019_-/.,äöüßÄéèñøłæ\u0301\u0308ἀθήνα日本語ИЖ²½ﬁ⁄'’ \t"
    texts = ["".join(rng.choices(alphabet, k=rng.randint(1, 30))) for _ in range(300)] + VOCABULARY
    for i, text in enumerate(texts, 1):
        conn.execute("INSERT INTO t (rowid, x) VALUES (?, ?)", (i, text))
    want: dict[int, list[str]] = {}
    for term, doc, _col, _offset in conn.execute('SELECT term, doc, col, "offset" FROM v ORDER BY doc, "offset"'):
        want.setdefault(doc, []).append(term)
    for i, text in enumerate(texts, 1):
        assert tokens(text) == want.get(i, []), text
