"""bench.losses: the stages at which an answerable question is lost, counted from recorded rows."""

from __future__ import annotations

from bench.answers import Row
from bench.losses import STAGES, stages


def candidate(text: str, article: int) -> dict:
    return {"text": text, "article": article}


def row(candidates: list[dict], hit: bool, relevance: float) -> Row:
    return Row("Wie viele Wale?", hit, 100, True, relevance, 0.1, {}, 0, candidates=candidates, answers=["30 Wale"])


def test_right_article_but_answer_in_the_fourth_sentence_and_not_found():
    r = row(
        [candidate("Pottwale strandeten.", 7), candidate("Andere Wale.", 3), candidate("Noch einer.", 7)]
        + [candidate("Die Strandung der 30 Wale.", 7)],
        hit=False,
        relevance=0.3,
    )
    got = dict(zip(STAGES, stages(r, gold=7, threshold=0.64, held=r), strict=True))
    assert got["article among the ten best sentences"] and got["best sentence from that article"]
    assert got["answer in the ten best sentences"]
    assert not got["answer in the three best"] and not got["answer in the best sentence"]
    assert not got["answered with it, in sample"] and not got["answered with it, held out"]


def test_answered_in_sample_but_not_held_out():
    r = row([candidate("Die Strandung der 30 Wale.", 2)], hit=True, relevance=0.7)
    held = row(r.candidates, hit=True, relevance=0.4)  # the fold's own model says "not found"
    got = dict(zip(STAGES, stages(r, gold=5, threshold=0.64, held=held), strict=True))
    assert not got["article among the ten best sentences"]  # the same fact, quoted from another article
    assert got["answer in the best sentence"] and got["answered with it, in sample"]
    assert not got["answered with it, held out"]


def test_an_answer_string_is_found_with_other_thousands_separators_case_and_spacing():
    from bench.answers import holds_answer

    assert holds_answer("… den Transfer von 3300 Mitarbeitern …", ["3.300"])
    assert holds_answer("Es waren 12 500 Kilometer.", ["12.500 Kilometer"])
    assert holds_answer("rund  61.000 Menschen", ["rund 61.000 Menschen"])
    assert holds_answer("THE SLITS spielten", ["The Slits"])
    # A decimal comma or a date is not a thousands separator: 1,4 is not 14, 19.05 not 1905.
    assert not holds_answer("14 Patente pro Tag", ["1,4 Patente"])
    assert not holds_answer("im Jahr 1905", ["19.05"])
    assert not holds_answer("3300 Mitarbeiter", ["33.000"])
