"""Sentence splitting (German and English news usage) and chunk packing with the real tokenizer."""

from __future__ import annotations

import time

import pytest

from index.chunking import chunk_text, split_sentences
from index.embedding import load_embedder
from index.extract import clean_text
from index.settings import EmbeddingSettings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Es gibt viele Städte, z. B. Berlin und Hamburg. Das ist gut.",
            ["Es gibt viele Städte, z. B. Berlin und Hamburg.", "Das ist gut."],
        ),
        ("Dr. Müller sagte das. Er ging dann.", ["Dr. Müller sagte das.", "Er ging dann."]),
        (
            "Prof. Dr. Schmidt lehrt in Bonn. Sie ist Expertin.",
            ["Prof. Dr. Schmidt lehrt in Bonn.", "Sie ist Expertin."],
        ),
        (
            "Es kamen u. a. Vertreter der Stadt. Danach war Ruhe.",
            ["Es kamen u. a. Vertreter der Stadt.", "Danach war Ruhe."],
        ),
        (
            "Am 12. Februar 2025 beginnt der Bau. Er dauert lange.",
            ["Am 12. Februar 2025 beginnt der Bau.", "Er dauert lange."],
        ),
        ("Sie wurde am 1. Januar geboren. Er am 2. März.", ["Sie wurde am 1. Januar geboren.", "Er am 2. März."]),
        ("Im 19. Jahrhundert war das anders. Heute nicht.", ["Im 19. Jahrhundert war das anders.", "Heute nicht."]),
        ("Er sagte: „Wir bauen die Bahn.“ Dann ging er.", ["Er sagte: „Wir bauen die Bahn.“", "Dann ging er."]),
        ("„Das ist gut.“ Die Stadt stimmte zu.", ["„Das ist gut.“", "Die Stadt stimmte zu."]),
        ("Das ist „gut“. Aber nicht sehr.", ["Das ist „gut“.", "Aber nicht sehr."]),
        ("Das kostet ca. 5 Euro. Er zahlt.", ["Das kostet ca. 5 Euro.", "Er zahlt."]),
        (
            "Die Kosten stiegen um 3.5 Prozent. Das war zu viel.",
            ["Die Kosten stiegen um 3.5 Prozent.", "Das war zu viel."],
        ),
        (
            "Was ist das? Niemand weiß es! Vielleicht morgen.",
            ["Was ist das?", "Niemand weiß es!", "Vielleicht morgen."],
        ),
        # A number that closes a score or a grouped figure ends the sentence; it is no ordinal.
        ("Das Spiel endete 2:1. Die Fans jubelten.", ["Das Spiel endete 2:1.", "Die Fans jubelten."]),
        ("Die Zahl stieg auf 1.000. Das ist neu.", ["Die Zahl stieg auf 1.000.", "Das ist neu."]),
        ("Mr. Smith went to Washington. He stayed.", ["Mr. Smith went to Washington.", "He stayed."]),
        (
            "Many cities, e.g. Berlin, have trams. Others do not.",
            ["Many cities, e.g. Berlin, have trams.", "Others do not."],
        ),
        ('He said "yes." Then he left.', ['He said "yes."', "Then he left."]),
        ("U.S. officials said so. They left.", ["U.S. officials said so.", "They left."]),
        ("Erste Zeile ohne Punkt\nZweite Zeile.", ["Erste Zeile ohne Punkt", "Zweite Zeile."]),
    ],
)
def test_sentence_splitting(text, expected):
    assert split_sentences(text) == expected


def _check_chunks(text: str, chunks, budget: int, count) -> None:
    assert chunks, "non-empty text must give at least one chunk"
    covered = bytearray(len(text))
    for position, c in enumerate(chunks):
        assert c.position == position
        assert text[c.start : c.end] == c.text
        assert count(c.text) <= budget, (count(c.text), budget, c.text[:80])
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not missing, f"characters outside every chunk at {missing[:10]}"


def test_chunks_respect_real_token_budget_for_long_german_text(embedder):
    paragraph = (
        "Die Stadtverwaltung von Ulmenhagen hat am 12. Februar beschlossen, die Straßenbahnlinie 4 bis "
        "zum Jahr 2027 zu verlängern. Dr. Anna Weber, die Leiterin des Verkehrsamts, sagte: „Wir "
        "rechnen mit u. a. 12.000 Fahrgästen pro Tag.“ Die Kosten liegen bei ca. 84 Mio. Euro. "
    )
    text = clean_text("\n\n".join(paragraph * (i % 3 + 1) for i in range(12)))
    budget = embedder.passage_budget("Straßenbahn")
    chunks = chunk_text(text, max_chars=1000, min_chars=200, max_tokens=budget, count_tokens=embedder.count_tokens)
    _check_chunks(text, chunks, budget, embedder.count_tokens)
    assert all(len(c.text) <= 1000 for c in chunks)


def _best_time_to_chunk(text: str, embedder, tries: int = 3) -> tuple[float, list]:
    """The fastest of a few runs: noise from other processes only ever adds time."""
    budget = embedder.passage_budget("x")
    best, chunks = float("inf"), []
    for _ in range(tries):
        started = time.perf_counter()
        chunks = chunk_text(text, max_chars=1000, min_chars=200, max_tokens=budget, count_tokens=embedder.count_tokens)
        best = min(best, time.perf_counter() - started)
    return best, chunks


def test_long_single_word_is_chunked_in_linear_time():
    """A 'word' the tokenizer splits into one token per character must not cost quadratic time.

    200 KB of "x-" took about 4 minutes before the fix (every cut re-tokenized the whole rest). Four
    times the text must take about four times as long (quadratic would be sixteen); 8 is the midpoint
    on a log scale, so noise alone does not decide. The bundled MiniLM's WordPiece tokenizer is the one
    that cuts such a word into one token per character (the default USE counts it in a few pieces).
    """
    embedder = load_embedder(EmbeddingSettings(backend="sentence-transformers"))
    budget = embedder.passage_budget("x")
    for unit, small in (("x-", 25_000), ("a", 125_000)):
        short, _ = _best_time_to_chunk(unit * small, embedder)
        text = unit * (4 * small)
        long, chunks = _best_time_to_chunk(text, embedder)
        assert long / short < 8, f"4x the text ({len(text):,} chars) took {long / short:.1f}x as long ({long:.2f} s)"
        assert "".join(c.text for c in chunks) == text  # one word: the pieces are contiguous
        for c in chunks:
            assert text[c.start : c.end] == c.text
            # Wordpiece reads any run over 100 characters as one [UNK]: only max_chars bounds it.
            assert len(c.text) <= 1000
        for c in chunks[:: max(1, len(chunks) // 25)]:  # counting every piece would be the slow part
            assert embedder.count_tokens(c.text) <= budget


def test_long_sentence_without_punctuation_is_split_at_words(embedder):
    text = " ".join(f"Wort{i}" for i in range(3000))
    budget = embedder.passage_budget("t")
    chunks = chunk_text(text, max_chars=1000, min_chars=200, max_tokens=budget, count_tokens=embedder.count_tokens)
    _check_chunks(text, chunks, budget, embedder.count_tokens)
    for c in chunks:  # cut between words, never inside one
        assert c.start == 0 or text[c.start - 1] == " "
        assert c.end == len(text) or text[c.end] == " "


def test_short_tail_merges_into_previous_chunk():
    body = "Ein Satz über die Stadt und ihre Pläne für das nächste Jahr. " * 12
    text = body.strip() + "\n\n[OM/KN]"
    chunks = chunk_text(text, max_chars=1000, min_chars=200)
    assert chunks[-1].text.endswith("[OM/KN]")
    assert chunks[-1].text != "[OM/KN]"
