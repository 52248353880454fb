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
def test_news_case(answerer: Answerer, case: NewsCase):
    answer = answerer.answer(case.question)
    if case.expect == "not_found":
        assert not answer.found, f"{case.note}: answered {answer.body!r}"
    else:
        assert answer.found, f"{case.note}: nothing found (relevance {answer.relevance:.2f})"
        assert any(s in answer.body for s in case.answer_strings), answer.body
    for text in case.must_not_contain:
        assert text not in answer.body, f"{case.note}: {text!r} in {answer.body!r}"


def test_the_readme_example_is_answered(answerer: Answerer):
    # README, quick start: a German question about an English sample article.
    answer = answerer.answer("Wer leitete die Hummelstudie?")
    assert answer.found
    assert "Threlkeld" in answer.body
