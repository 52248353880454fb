"""Follow-up questions walked through as readers ask them, over the bundled samples and an invented ferry article
(real knowledge base, real embedding model): a follow-up answers its own question, not the previous one again."""

from __future__ import annotations

import itertools

import pytest
from answer_articles import FERRY

from bot.answer import NOTHING_MORE, Answer, Answerer
from bot.cli import load_samples
from bot.config import AnswerSettings
from bot.followup import Resolved, asks_more, asks_why, changes_subject, follow_on, gives_reason
from index.kb import KnowledgeBase
from index.settings import IndexSettings

TRAM = "Wie viel kostet die neue Straßenbahn in Ulmenhagen?"
_conversations = itertools.count()


@pytest.fixture(scope="module")
def walk_kb(tmp_path_factory, embedder):
    kb = KnowledgeBase(IndexSettings(data_dir=str(tmp_path_factory.mktemp("walk"))), embedder=embedder)
    load_samples(kb)
    kb.ferry = kb.add(FERRY).article_id
    yield kb
    kb.close()


@pytest.fixture(scope="module")
def answerer(walk_kb) -> Answerer:
    return Answerer(walk_kb, AnswerSettings())


def ask_in_turn(answerer: Answerer, *questions: str) -> list[Answer]:
    """The questions asked one after the other in a conversation of their own."""
    conversation = f"reader-{next(_conversations)}"
    return [answerer.answer(q, conversation=conversation) for q in questions]


def quotes(answer: Answer) -> set[str]:
    return {c.quote for c in answer.citations}


def test_why_gives_the_reason_instead_of_the_previous_answer_again(answerer):
    first, why = ask_in_turn(answerer, TRAM, "Und warum so teuer?")
    assert "118 Millionen Euro" in first.body
    assert why.found and "Stahlpreisen" in why.body
    assert not any(quote in why.body for quote in quotes(first))


def test_an_english_why_about_german_articles_gives_the_reason_too(answerer):
    first, why = ask_in_turn(answerer, TRAM, "and why?")
    assert why.found and why.language == "en"
    assert "Stahlpreisen" in why.body
    assert not any(quote in why.body for quote in quotes(first))


def test_why_asked_again_says_plainly_that_the_articles_say_nothing_more(answerer):
    _, why, again = ask_in_turn(answerer, TRAM, "Und warum so teuer?", "Und warum?")
    assert "Stahlpreisen" in why.body
    assert again.body == NOTHING_MORE["de"]
    assert not again.found and again.citations == []


@pytest.mark.parametrize(
    ("followup", "expected"),
    [("Wie viele Haltestellen hat sie?", "14 Haltestellen"), ("Wann wurde sie eröffnet?", "13. März")],
)
def test_a_followup_whose_answer_was_quoted_already_gets_that_sentence_alone(answerer, followup, expected):
    # The tram's stops and opening day were in the first answer; no other sentence says them.
    first, again = ask_in_turn(answerer, TRAM, followup)
    assert expected in first.body
    assert len(again.citations) == 1 and expected in again.citations[0].quote
    assert again.body.count("[") == 1


def test_more_pages_through_sentences_not_shown_yet_and_then_says_so(answerer):
    answers = ask_in_turn(answerer, TRAM, "mehr dazu", *["mehr"] * 8)
    seen: set[str] = set()
    for answer in answers:
        for citation in answer.citations:
            assert not any(citation.quote in s or s in citation.quote for s in seen), citation.quote
        seen |= quotes(answer)
    assert answers[1].found and answers[2].found
    assert "Stahlpreisen" in " ".join(seen)  # "mehr" reaches sentences far below the first answer's
    assert answers[-1].body == NOTHING_MORE["de"]


def test_a_change_of_subject_is_not_glued_to_the_old_topic(answerer, walk_kb):
    _, ferry = ask_in_turn(answerer, TRAM, "Und die Fähre?")
    assert ferry.found
    assert {c.article_id for c in ferry.citations} == {walk_kb.ferry}
    # ... and it is the new topic: its follow-ups are about the ferry.
    _, _, said = ask_in_turn(answerer, TRAM, "Und die Fähre?", "Wer hat das gesagt?")
    assert {c.article_id for c in said.citations} == {walk_kb.ferry}


def test_a_question_on_its_own_is_answered_as_without_a_conversation(answerer):
    (in_conversation,) = ask_in_turn(answerer, TRAM)
    alone = answerer.answer(TRAM)
    assert in_conversation.body == alone.body and in_conversation.citations == alone.citations
    # Without a conversation nothing is resolved, remembered or left out.
    assert answerer.memory.resolve(None, "Und warum?") == Resolved("Und warum?")
    assert answerer.answer(TRAM).body == alone.body


@pytest.mark.parametrize(
    ("question", "known", "expected"),
    [
        ("Und die Fähre?", TRAM + " Die Fahrgäste fahren mit der Bahn.", True),
        ("What about the ferry?", "How much did the library's new wing cost?", True),
        ("Und die Kosten?", TRAM + " Die Baukosten beliefen sich auf 118 Millionen Euro.", False),
        ("Wie viele Haltestellen hat sie?", "Die Strecke hat 14 Haltestellen.", False),
        ("Und was sagte Selenskyj dazu?", "Die Ukraine bekommt neue Waffen.", False),  # leans on "dazu"
        ("Und warum so teuer?", TRAM, False),
        ("Wer hat das gesagt?", TRAM, False),
    ],
)
def test_changes_subject(question, known, expected):
    assert changes_subject(question, known) is expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Die Mehrkosten begründete die UVB mit gestiegenen Stahlpreisen.", True),
        ("Die Linie fährt seltener, weil Fahrer fehlen.", True),
        ("Wegen des Streiks fielen Züge aus.", True),
        ("The bridge closed because of the storm.", True),
        ("Die Halle bleibt zu, da das Dach undicht ist.", True),
        ("Die Fähre hat 4,2 Millionen Euro gekostet, davon trägt das Land zwei Drittel.", False),
        ("Die Strecke hat 14 Haltestellen.", False),
    ],
)
def test_gives_reason(sentence, expected):
    assert gives_reason(sentence) is expected


def test_why_and_more_are_told_apart():
    assert asks_why("Und warum so teuer?") and asks_why("and why?") and not asks_why("Wann wurde sie eröffnet?")
    assert asks_more("mehr dazu") and asks_more("Tell me more") and not asks_more("Wie viele Haltestellen?")
    assert follow_on("Und warum?", [], Resolved("x", "x", ("a",)), 0.5) == []
