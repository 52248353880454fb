"""The KnowledgeBase facade: add, deduplicate, search, remove, reindex — real model, on both engines
(SQLite with FAISS, PostgreSQL with pgvector: ``settings`` is the parametrized ``engine_settings``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from util_cli import CLI

from index.embedding import SentenceTransformerEmbedder
from index.extract import Document, from_text
from index.kb import AddResult, DuplicateArticle, KnowledgeBase
from index.lexical import analyze
from index.settings import EmbeddingSettings


@pytest.fixture
def settings(engine_settings):
    """Every test here that takes ``settings`` (or ``kb``, built from it) runs once per engine."""
    return engine_settings


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
    kb.add_many(docs, batch_size=2, on_result=lambda doc, result: outcomes.append((doc, result)))
    assert len(outcomes) == len(docs), "one report per document, duplicates included"
    # A duplicate found before embedding is reported at once, ahead of its batch: compare as multisets.
    assert sorted(doc.title for doc, _ in outcomes) == sorted(doc.title for doc in docs)
    duplicates = [result for _, result in outcomes if isinstance(result, DuplicateArticle)]
    added = [result for _, result in outcomes if isinstance(result, AddResult)]
    assert len(duplicates) == 1 and len(added) == 5
    assert duplicates[0].article_id == added[0].article_id
    assert sorted(a.article_id for a in added) == sorted(a.id for a in kb.articles())
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
    if kb.engine.name == "sqlite":
        assert kb.state_path.is_file()


BUDGET = Document(
    title="Lindenau beschließt Haushalt mit Klärwerk-Ausbau",
    text=(
        "Der Gemeinderat von Lindenau hat am Dienstagabend nach einer mehr als fünfstündigen Sitzung den Haushalt "
        "für das kommende Jahr beschlossen. Das Zahlenwerk sieht Ausgaben von 412 Millionen Euro vor, davon fließen "
        "rund 96 Millionen Euro in Schulen, Kindertagesstätten und die Sanierung der städtischen Turnhallen. "
        "Kämmerin Dr. Petra Vogelsang sprach von einem Haushalt der Verantwortung, der trotz steigender Zinsen ohne "
        "neue Schulden auskomme. Die Opposition kritisierte dagegen, dass die Grundsteuer zum zweiten Mal in Folge "
        "angehoben werde und viele Familien die Mehrbelastung kaum noch schultern könnten.\n\n"
        "Besonders umstritten war die geplante Erweiterung des Klärwerks am Mühlbach, die allein 38 Millionen Euro "
        "kosten soll. Die Stadtwerke verweisen auf strengere Grenzwerte für Phosphor und Spurenstoffe, die ab 2028 "
        "gelten, und auf die wachsende Einwohnerzahl in den Neubaugebieten im Norden der Stadt. Mehrere Stadträte "
        "forderten, zunächst ein unabhängiges Gutachten einzuholen, weil die Kostenschätzung seit dem ersten Entwurf "
        "um fast ein Drittel gestiegen sei. Der Antrag auf Vertagung fand jedoch keine Mehrheit.\n\n"
        "Für den Nahverkehr stellt die Stadt im kommenden Jahr zusätzlich elf Millionen Euro bereit. Damit sollen "
        "die Buslinien 12 und 14 künftig auch am Wochenende im Zehn-Minuten-Takt fahren, und an der Haltestelle "
        "Alter Schlachthof entsteht ein überdachter Fahrradparkplatz mit 240 Stellplätzen. Der Verkehrsausschuss "
        "hatte die Maßnahmen bereits im Frühjahr empfohlen, die Finanzierung war bislang aber offen geblieben."
    ),
)


# Window changes are pinned to the sentence-transformers backend: its bundled MiniLM reads 384 tokens by
# default and can be narrowed to 128 under the same model id, so only the passage length changes. The
# default embedder (USE, 256 SentencePiece pieces) would make every pair below a model change as well.
@pytest.fixture(scope="module")
def wide_embedder() -> SentenceTransformerEmbedder:
    """The bundled sentence-transformers model with its own 384-token window."""
    return SentenceTransformerEmbedder(EmbeddingSettings(backend="sentence-transformers"))


@pytest.fixture(scope="module")
def narrow_embedder(wide_embedder) -> SentenceTransformerEmbedder:
    """The same model with a 128-token window: the same model id, so only the passage length changed."""
    narrow = SentenceTransformerEmbedder(EmbeddingSettings(backend="sentence-transformers", max_tokens=128))
    assert narrow.model_id == wide_embedder.model_id and narrow.max_tokens < wide_embedder.max_tokens
    return narrow


def _over_budget(kb: KnowledgeBase, article_id: int) -> list[int]:
    title = kb.article(article_id).title
    budget = kb.embedder.passage_budget(title)
    return [c.id for c in kb.store.article_chunks(article_id) if kb.embedder.count_tokens(c.text) > budget]


def test_reindex_rechunks_passages_over_a_smaller_window(settings, wide_embedder, narrow_embedder):
    """Re-embedding a 384-token passage with a 128-token window would silently truncate it."""
    wide = KnowledgeBase(settings, embedder=wide_embedder)
    long_id = wide.add(BUDGET).article_id
    wide.add(BAKERY)
    old_ids = {c.id for c in wide.store.article_chunks(long_id)}
    highest_old = int(wide.store.chunk_ids().max())
    wide.close()

    narrow = KnowledgeBase(settings, embedder=narrow_embedder)
    assert narrow_embedder.model_id == wide_embedder.model_id
    assert _over_budget(narrow, long_id), "the test article must not fit the narrow window as stored"
    result = narrow.reindex()
    assert result["rechunked"] == 1
    article = narrow.article(long_id)
    chunks = narrow.store.article_chunks(long_id)
    assert _over_budget(narrow, long_id) == []
    assert len(chunks) > len(old_ids)
    assert all(article.text[c.start : c.end] == c.text for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    new_ids = {c.id for c in chunks}
    assert min(new_ids) > highest_old  # never an id some stale index or citation still holds
    assert not old_ids & set(narrow.store.chunk_ids().tolist())
    assert not old_ids & set(narrow.vectors.ids().tolist())
    assert np.array_equal(np.sort(narrow.vectors.ids()), narrow.store.chunk_ids())
    assert narrow.store.integrity() == dict.fromkeys(narrow.store.integrity(), 0)
    hit = narrow.search("Wie teuer ist die Erweiterung des Klärwerks am Mühlbach?", k=1)[0]
    assert hit.article_id == long_id and "38 Millionen Euro" in hit.text
    assert narrow.search("Klärwerk Mühlbach", k=1, mode="lexical")[0].article_id == long_id
    assert narrow.reindex()["rechunked"] == 0  # fresh passages pass the same test the chunker applies
    narrow.close()


def test_reindex_keeps_passages_that_fit(settings, wide_embedder, narrow_embedder):
    wide = KnowledgeBase(settings, embedder=wide_embedder)
    tram = wide.add(TRAM).article_id
    bakery = wide.add(BAKERY).article_id
    before = {a: [c.id for c in wide.store.article_chunks(a)] for a in (tram, bakery)}
    wide.close()
    narrow = KnowledgeBase(settings, embedder=narrow_embedder)
    result = narrow.reindex()
    assert result["rechunked"] == 0 and result["reembedded"] == 0
    assert {a: [c.id for c in narrow.store.article_chunks(a)] for a in (tram, bakery)} == before
    narrow.close()


def test_model_change_to_a_smaller_window_rechunks_and_reembeds(settings, wide_embedder, narrow_embedder):
    """Both at once: the re-chunked article's new vectors survive the re-embedding of the others."""
    wide = KnowledgeBase(settings, embedder=wide_embedder)
    long_id = wide.add(BUDGET).article_id
    tram = wide.add(TRAM).article_id
    tram_ids = [c.id for c in wide.store.article_chunks(tram)]
    wide.close()
    switched = KnowledgeBase(settings, embedder=_OtherModel(narrow_embedder))
    result = switched.reindex()
    assert result["rechunked"] == 1
    assert result["reembedded"] == switched.counts()["chunks"]
    assert [c.id for c in switched.store.article_chunks(tram)] == tram_ids
    assert _over_budget(switched, long_id) == []
    assert switched.store.embedding_models() == [("test/other-model", narrow_embedder.dim)]
    assert switched.store.integrity() == dict.fromkeys(switched.store.integrity(), 0)
    assert switched.search("Klärwerk Mühlbach Kosten", k=1)[0].article_id == long_id
    switched.close()


def test_cli_reindex_reports_rechunked_articles(monkeypatch, capsys, settings, wide_embedder, narrow_embedder):
    wide = KnowledgeBase(settings, embedder=wide_embedder)
    wide.add(BUDGET)
    wide.close()
    run = CLI(monkeypatch, capsys, narrow_embedder, settings.data_dir, settings.storage)
    try:
        result = run("reindex")
    finally:
        run.close()
    assert result.code == 0, result
    assert "1 article re-chunked" in result.out


def test_reindex_rechunk_recuts_short_passages_with_a_wider_window(
    monkeypatch, capsys, settings, wide_embedder, narrow_embedder
):
    """A data dir from a narrower window keeps its short passages until asked: --rechunk widens them."""
    narrow = KnowledgeBase(settings, embedder=narrow_embedder)
    long_id = narrow.add(BUDGET).article_id
    short_ids = {c.id for c in narrow.store.article_chunks(long_id)}
    narrow.close()
    run = CLI(monkeypatch, capsys, wide_embedder, settings.data_dir, settings.storage)
    try:
        assert "re-chunked" not in run("reindex").out  # they fit the wider window: left alone
        result = run("reindex", "--rechunk")
        again = run("reindex", "--rechunk")
    finally:
        run.close()
    assert result.code == 0 and "1 article re-chunked with the current settings" in result.out, result
    assert "re-chunked" not in again.out  # already cut as the settings cut: idempotent
    wide = KnowledgeBase(settings, embedder=wide_embedder)
    chunks = wide.store.article_chunks(long_id)
    assert len(chunks) < len(short_ids) and not short_ids & {c.id for c in chunks}
    assert [(c.start, c.end) for c in chunks] == [(c.start, c.end) for c in wide.chunk(wide.article(long_id))]
    assert wide.store.integrity() == dict.fromkeys(wide.store.integrity(), 0)
    wide.close()


class _CountingModel(_OtherModel):
    """The bundled model, counting the questions it embeds."""

    def __init__(self, inner):
        super().__init__(inner)
        self.model_id = inner.model_id
        self.queries: list[str] = []

    def embed_passages(self, texts, titles):
        return self.inner.embed_passages(texts, titles)

    def embed_queries(self, texts):
        self.queries.extend(texts)
        return self.inner.embed_queries(texts)


def test_search_and_answer_embed_the_question_once(settings, embedder):
    from bot.answer import Answerer
    from bot.config import AnswerSettings

    counting = _CountingModel(embedder)
    kb = KnowledgeBase(settings, embedder=counting)
    kb.add(TRAM)
    kb.add(BAKERY)
    answer = Answerer(kb, AnswerSettings()).answer("Wie hoch waren die Baukosten der Straßenbahn?")
    assert "88 Millionen Euro" in answer.body
    assert counting.queries.count("Wie hoch waren die Baukosten der Straßenbahn?") == 1
    # Both sides still take part when they run side by side: BM25 alone finds the bakery's word,
    # the dense side alone returns passages for a query with no indexed term.
    assert kb.search("Unterschriften", k=1, mode="lexical")[0].title == BAKERY.title
    assert kb.search("Unterschriften", k=1)[0].title == BAKERY.title
    assert kb.search("zzzunbekannt", k=2, mode="dense")
    kb.close()
