"""The KnowledgeBase facade: add, deduplicate, search, remove, reindex — real model, SQLite, FAISS."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from index.extract import Document, from_text
from index.kb import DuplicateArticle, KnowledgeBase
from index.lexical import analyze

TRAM = Document(
    title="Neue Straßenbahn in Lindenau",
    text=(
        "Die Stadt Lindenau hat am 3. Mai die neue Straßenbahnlinie 4 eröffnet. Die Strecke ist 7,2 Kilometer lang.\n\n"
        "Oberbürgermeister Dr. Jens Falk sagte, die Bahn entlaste u. a. die Innenstadt vom Autoverkehr. "
        "Die Baukosten lagen bei 88 Millionen Euro."
    ),
    url="https://example.org/lindenau/tram?utm_source=feed",
)
BAKERY = Document(
    title="Bäckerei Morgenrot schließt nach 90 Jahren",
    text=(
        "Die Bäckerei Morgenrot in der Altstadt schließt Ende Juni. Die Inhaberin findet keinen Nachfolger.\n\n"
        "Stammkunden sammelten 1.200 Unterschriften für den Erhalt des Geschäfts."
    ),
)


def test_added_article_is_found_with_all_fields(kb: KnowledgeBase):
    result = kb.add(TRAM, added_by="test")
    kb.add(BAKERY)
    hits = kb.search("Wie lang ist die Straßenbahnstrecke in Lindenau?", k=3)
    top = hits[0]
    assert top.article_id == result.article_id
    assert top.title == TRAM.title and top.url == TRAM.url
    assert "7,2 Kilometer" in top.text
    assert top.score > 0
    article = kb.article(result.article_id)
    assert article.text[top.start : top.end] == top.text
    assert article.added_by == "test" and article.language == "de"


def test_title_is_embedding_context_not_chunk_text(kb: KnowledgeBase):
    kb.add(TRAM)
    for chunk in kb.store.article_chunks(1):
        assert not chunk.text.startswith(TRAM.title)
    # The title still helps: a query naming only the title topic finds the passage without that word.
    hits = kb.search("Straßenbahn Lindenau Oberbürgermeister", k=1)
    assert "Dr. Jens Falk" in hits[0].text


def test_duplicate_by_text_and_by_url(kb: KnowledgeBase):
    first = kb.add(TRAM)
    with pytest.raises(DuplicateArticle, match=f"already present as #{first.article_id}"):
        kb.add(Document(title="Other title", text="  " + TRAM.text.upper() + "\n"))
    same_url = Document(
        title="Updated", text="Ganz anderer Text über die Linie 4.", url="https://EXAMPLE.org/lindenau/tram/"
    )
    with pytest.raises(DuplicateArticle, match="same URL"):
        kb.add(same_url)
    assert kb.stats()["articles"] == 1


def test_remove_takes_chunks_vectors_and_fts_rows(kb: KnowledgeBase):
    tram = kb.add(TRAM)
    kb.add(BAKERY)
    chunk_ids = [c.id for c in kb.store.article_chunks(tram.article_id)]
    kb.remove(tram.article_id)
    assert not set(chunk_ids) & set(kb.vectors.ids().tolist())
    assert all(h.article_id != tram.article_id for h in kb.search("Straßenbahn Lindenau", k=5))
    assert kb.search("Straßenbahn Lindenau", k=5, mode="lexical") == []
    assert kb.store.integrity() == dict.fromkeys(kb.store.integrity(), 0)


def test_index_survives_reopen_without_reembedding(settings, embedder):
    kb = KnowledgeBase(settings, embedder=embedder)
    kb.add(TRAM)
    kb.close()
    reopened = KnowledgeBase(settings, embedder=embedder)
    assert reopened.open() == "loaded"
    assert reopened.search("Baukosten Straßenbahn", k=1)[0].title == TRAM.title
    reopened.close()


class _OtherModel:
    """The bundled model under another name and with a changed vector: what a model switch looks like."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id = "test/other-model"
        self.dim = inner.dim
        self.max_tokens = inner.max_tokens
        self.count_tokens = inner.count_tokens
        self.passage_budget = inner.passage_budget

    def embed_passages(self, texts, titles):
        return self.inner.embed_passages(texts, titles)[:, ::-1].copy()

    def embed_queries(self, texts):
        return self.inner.embed_queries(texts)[:, ::-1].copy()


def test_model_change_is_refused_until_reindex_reembeds(settings, embedder):
    kb = KnowledgeBase(settings, embedder=embedder)
    kb.add(TRAM)
    kb.close()
    switched = KnowledgeBase(settings, embedder=_OtherModel(embedder))
    with pytest.raises(RuntimeError, match="reindex"):
        switched.open()
    result = switched.reindex()
    assert result["reembedded"] == len(switched.store.article_chunks(1))
    assert switched.store.embedding_models() == [("test/other-model", embedder.dim)]
    assert switched.search("Baukosten der Straßenbahn", k=1)[0].title == TRAM.title
    switched.close()


def test_add_many_batches_and_reports_each(kb: KnowledgeBase):
    docs = [from_text(f"Meldung {i}\nDer Gemeinderat von Ort{i} beschloss {i} neue Bänke.") for i in range(5)]
    docs.append(docs[0])
    outcomes = []
    kb.add_many(docs, batch_size=2, on_result=lambda doc, result: outcomes.append(result))
    assert sum(isinstance(o, DuplicateArticle) for o in outcomes) == 1
    assert kb.stats()["articles"] == 5
    ids = kb.vectors.ids()
    assert np.array_equal(np.sort(ids), kb.store.chunk_ids())


def _cli(data_dir, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_search_reads_queries_from_stdin_as_json_lines(tmp_path):
    article = tmp_path / "tram.txt"
    article.write_text(f"{TRAM.title}\n{TRAM.text}", encoding="utf-8")
    assert _cli(tmp_path / "d", "add", str(article), "--url", "https://example.org/t").returncode == 0
    out = _cli(tmp_path / "d", "search", "-", "-k", "2", "--json", stdin="Baukosten\n\nWer ist Oberbürgermeister?\n")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["Baukosten", "Wer ist Oberbürgermeister?"]
    result = lines[0]["results"][0]
    assert set(result) == {"chunk_id", "article_id", "title", "url", "text", "score"}
    assert result["url"] == "https://example.org/t" and "88 Millionen Euro" in result["text"]


def test_reindex_reanalyses_the_lexical_index(kb: KnowledgeBase):
    """Analyzer improvements must reach articles added before them; reindex rewrites every FTS row."""
    kb.add(TRAM)
    kb.store.replace_fts([])  # as if analysed by an analyzer that matched nothing
    assert kb.search("Straßenbahnlinie", k=1, mode="lexical") == []
    result = kb.reindex()
    assert result["analyzed"] == len(kb.store.article_chunks(1))
    assert kb.search("Straßenbahnlinie", k=1, mode="lexical")[0].title == TRAM.title


def test_facade_counts_terms_and_versions_for_the_bot(kb: KnowledgeBase):
    before = kb.version()
    kb.add(TRAM)
    kb.add(BAKERY)
    assert kb.version() > before
    assert kb.counts()["articles"] == 2
    # "Straßenbahnlinie" and "Straßenbahn" meet in one analysed term; the bakery never mentions it.
    [term] = analyze("Straßenbahn")
    assert kb.term_passages([term, "zzzunbekannt"]) == {term: 1, "zzzunbekannt": 0}
    assert kb.state_path.is_file()
