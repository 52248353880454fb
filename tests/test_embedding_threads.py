"""The embedder is called from several worker threads at once in the bot."""

from __future__ import annotations

import threading

import pytest

from index.embedding import load_embedder
from index.settings import EmbeddingSettings


def test_counting_tokens_while_embedding_does_not_corrupt_batches(embedder):
    # Before counting had its own tokenizer, ~1 in 4 of these embeds failed with an unpadded batch.
    stop = threading.Event()
    errors: list[Exception] = []

    def count_forever() -> None:
        while not stop.is_set():
            embedder.count_tokens("Die Stadt Lindenau eröffnet eine neue Straßenbahnlinie. " * 20)

    counters = [threading.Thread(target=count_forever) for _ in range(2)]
    for thread in counters:
        thread.start()
    try:
        for i in range(60):
            texts = ["kurz", "eine etwas längere Frage zur Straßenbahn " * (1 + i % 5)]
            try:
                vectors = embedder.embed_queries(texts)
                assert vectors.shape == (2, embedder.dim)
            except Exception as exc:  # noqa: BLE001 - any failure here is the race
                errors.append(exc)
    finally:
        stop.set()
        for thread in counters:
            thread.join()
    assert errors == []


@pytest.fixture(scope="module")
def minilm():
    """The sentence-transformers backend, whose counting uses a private copy of the model's HF tokenizer.

    The default USE backend counts with its SentencePiece model (tests/test_embedders.py checks that).
    """
    return load_embedder(EmbeddingSettings(backend="sentence-transformers"))


def test_token_counts_match_the_model_tokenizer(minilm):
    text = "Oberbürgermeisterin Dr. Sabine Kettelhut eröffnete am 13. März die Linie 9."
    expected = len(minilm.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert minilm.count_tokens(text) == expected
    assert minilm.count_tokens("x" * 5000) >= 1  # no truncation warning or error on long input
