"""A question's sentences are embedded and judged on two threads: the vectors must not change."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bot import evidence
from bot.evidence import embed_in_two
from index.e5 import E5Judge, split_by_length
from index.embedding import load_embedder
from index.settings import EmbeddingSettings

SENTENCES = [
    "Die Studie wurde von einer Doktorandin an der Queen Mary University in London geleitet.",
    "Am Dienstag traf sich der Kanzler mit dem französischen Präsidenten in Paris.",
    "Die Inflation stieg im Oktober auf 3,2 Prozent, wie das Statistische Bundesamt mitteilte.",
    "The bumblebees learned to pull a string to reach a sugar reward.",
    "Der Verein gewann das Finale nach Verlängerung mit 2:1.",
    "Die neue Kamera kommt im Frühjahr in den Handel.",
    "Ein Sprecher der Stadtwerke sagte, die Leitung sei bis Freitag repariert.",
    "Nach Angaben der Polizei wurde niemand verletzt.",
    "Die Gewerkschaft kündigte weitere Warnstreiks an.",
]


@pytest.fixture(scope="module")
def use():
    return load_embedder(EmbeddingSettings(backend="use-multilingual"))


def test_sentences_split_over_two_threads_get_the_vectors_of_one_call(use):
    titles = ["Nachrichten"] * len(SENTENCES)
    together = use.embed_passages(SENTENCES, titles)
    split = embed_in_two(use.embed_passages, SENTENCES, titles)
    assert split.shape == together.shape
    assert np.allclose(split, together, atol=1e-5)


def test_the_asking_thread_embeds_both_halves_when_the_helper_is_busy(use, monkeypatch):
    release = threading.Event()
    busy = evidence._HELPER.submit(release.wait)  # another question holds the helper
    try:
        calls: list[str] = []

        def embed(texts, titles):
            calls.append(threading.current_thread().name)
            return use.embed_passages(texts, titles)

        split = embed_in_two(embed, SENTENCES, ["t"] * len(SENTENCES))
        assert len(split) == len(SENTENCES)
        assert calls == [threading.current_thread().name] * 2
    finally:
        release.set()
        busy.result()


def test_few_sentences_stay_on_the_asking_thread(use):
    calls: list[str] = []

    def embed(texts, titles):
        calls.append(threading.current_thread().name)
        return use.embed_passages(texts, titles)

    embed_in_two(embed, SENTENCES[:3], ["t"] * 3)
    assert calls == [threading.current_thread().name]


def test_split_by_length_keeps_every_text_and_balances_the_groups():
    texts = ["a" * n for n in (90, 10, 50, 40, 30)]
    groups = split_by_length(texts, 2)
    assert sorted(t for g in groups for t in g) == sorted(texts)
    sizes = [sum(map(len, g)) for g in groups]
    assert abs(sizes[0] - sizes[1]) <= 30
    # An answer's three judged sentences: the longest on one model, the other two on the other.
    assert split_by_length(["a" * 50, "b" * 30, "c" * 25], 2) == [["a" * 50], ["b" * 30, "c" * 25]]
    assert split_by_length(["x"], 2) == [["x"]]
    assert split_by_length([], 2) == []


def test_two_e5_threads_judge_as_one_does():
    question = "Wer leitete die Studie über Hummeln?"
    one = E5Judge(workers=1).similarity(question, SENTENCES[:4])
    two = E5Judge(workers=2).similarity(question, SENTENCES[:4])
    assert np.array_equal(one, two)
    assert int(np.argmax(two)) == 0  # the sentence that answers is the one e5 prefers


def test_concurrent_questions_share_the_judge_safely():
    judge = E5Judge(workers=2)
    expected = {s: judge.similarity("Wer wurde verletzt?", [s])[0] for s in SENTENCES}
    fresh = E5Judge(workers=2)
    results: dict[str, float] = {}

    def ask(sentence: str) -> None:
        results[sentence] = float(fresh.similarity("Wer wurde verletzt?", [sentence, SENTENCES[0]])[0])

    threads = [threading.Thread(target=ask, args=(s,)) for s in SENTENCES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == pytest.approx({s: float(v) for s, v in expected.items()}, abs=1e-6)


def test_two_judges_on_four_threads_share_the_model_safely():
    """Two answerers (a bench's folds, tests) and several questions at once embed with the one model."""
    questions = ["Wer wurde verletzt?", "Wann wird die Leitung repariert?", "Was kündigte die Gewerkschaft an?"]
    alone = E5Judge(workers=2)
    expected = [[float(v) for v in alone.similarity(q, SENTENCES)] for q in questions]
    judges = [E5Judge(workers=2, cache_size=1), E5Judge(workers=2, cache_size=1)]  # no cache: every call embeds
    results: dict[tuple[int, int], list[float]] = {}

    def ask(j: int, i: int) -> None:
        for _ in range(3):
            results[j, i] = [float(v) for v in judges[j].similarity(questions[i], SENTENCES)]

    threads = [threading.Thread(target=ask, args=(j, i)) for j in range(2) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (j, i), found in results.items():
        assert found == pytest.approx(expected[i], abs=1e-6), (j, i)


def test_a_question_alone_uses_two_threads_and_one_among_others_does_not(kb, monkeypatch):
    from answer_articles import ALL

    from bot.answer import Answerer
    from bot.config import AnswerSettings

    for doc in ALL:
        kb.add(doc)
    answerer = Answerer(kb, AnswerSettings())
    splits: list[bool] = []
    judged = answerer.judge.similarity

    def record(question, sentences, split=True):
        splits.append(split)
        return judged(question, sentences, split)

    monkeypatch.setattr(answerer.judge, "similarity", record)
    sentence_splits: list[bool] = []
    for_hits = answerer.sentence_vectors.for_hits

    def record_sentences(hits, spans, split=False):
        sentence_splits.append(split)
        return for_hits(hits, spans, split)

    monkeypatch.setattr(answerer.sentence_vectors, "for_hits", record_sentences)

    alone = answerer.answer("Ab wann fährt die neue Elektrofähre auf dem Kellersee?")
    answerer._answering = 1  # another question is being answered meanwhile
    among_others = answerer.answer("Wie lange schließt das Hallenbad Ostheim?")
    answerer._answering = 0
    assert alone.found and among_others.found
    assert splits == [True, False]
    assert sentence_splits == [True, False]
