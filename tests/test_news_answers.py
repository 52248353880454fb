"""Regression cases from real news, on invented articles written like them (tests/fixtures/news).

Each case is a question the bot once answered wrongly: quoting a rally driver for the football World
Cup, the 500-euro note for the key interest rate, padding the U9's cost with a camera's price. The
knowledge base holds the fixture articles and the bundled samples (German and English), so every
question has neighbours that share its words without answering it.
"""

from __future__ import annotations

import pytest
from newsfixtures import NewsCase, news_articles, news_cases

from bot.answer import Answerer
from bot.cli import load_samples
from bot.config import AnswerSettings
from index.extract import from_markdown
from index.kb import KnowledgeBase
from index.settings import IndexSettings

CASES = news_cases()


@pytest.fixture(scope="module")
def answerer(tmp_path_factory, embedder) -> Answerer:
    kb = KnowledgeBase(IndexSettings(data_dir=str(tmp_path_factory.mktemp("news"))), embedder=embedder)
    for path in news_articles():
        kb.add(from_markdown(path.read_text(encoding="utf-8")))
    load_samples(kb)
    yield Answerer(kb, AnswerSettings())
    kb.close()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.lang}-{c.expect}-{c.question[:40]}" for c in CASES])
def test_news_case_is_answered_correctly_or_not_at_all(answerer: Answerer, case: NewsCase):
    """The issue's promise: each example gives a correct answer or "nothing found", never a wrong one."""
    answer = answerer.answer(case.question)
    if case.expect == "not_found":
        assert not answer.found, f"{case.note}: answered {answer.body!r}"
    elif answer.found:
        assert any(s in answer.body for s in case.answer_strings), f"{case.note}: wrong answer {answer.body!r}"
    for text in case.must_not_contain:
        assert text not in answer.body, f"{case.note}: {text!r} in {answer.body!r}"


# Of the questions these articles do answer, at least this share is answered (not "nothing found"):
# the calibration prefers abstaining to quoting a neighbour, but must not abstain on everything.
# 21 of 22 at the shipped calibration (min_relevance 0.46, with the agreement features; 20 at 0.57 before them).
MIN_ANSWERED = 0.7


def test_most_answerable_news_questions_are_answered(answerer: Answerer):
    answerable = [c for c in CASES if c.expect == "answer"]
    answered = [c for c in answerable if answerer.answer(c.question).found]
    assert len(answered) >= MIN_ANSWERED * len(answerable), [c.question for c in answerable if c not in answered]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Who led the bumblebee study?", "Threlkeld"),
        ("Wie viel kostet der Kubikmeter Trinkwasser ab dem 1. April?", "2,74 Euro"),
    ],
)
def test_the_readme_examples_are_answered(answerer: Answerer, question: str, expected: str):
    # README, quick start: `bash dev.sh demo QUESTION` over the bundled samples.
    answer = answerer.answer(question)
    assert answer.found and expected in answer.body, answer.body
