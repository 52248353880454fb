"""The news regression fixtures are well-formed data (the answering behaviour on them is tested elsewhere)."""

from __future__ import annotations

from newsfixtures import news_articles, news_cases

from index.extract import from_markdown


def test_every_article_reads_with_title_url_and_date():
    articles = news_articles()
    assert len(articles) == 9
    for path in articles:
        doc = from_markdown(path.read_text(encoding="utf-8"))
        assert doc.title and doc.url and doc.url.startswith("https://example.org/") and doc.published, path.name
        assert 150 <= len(doc.text.split()) <= 400, path.name


def test_every_case_names_an_article_and_its_answers_are_in_it():
    cases = news_cases()
    assert {c.file for c in cases} == {p.name for p in news_articles()}
    for case in cases:
        text = from_markdown(case.path.read_text(encoding="utf-8")).text
        assert all(a in text for a in case.answer_strings), case.question
        assert not any(a in s for a in case.answer_strings for s in case.must_not_contain), case.question


def test_every_question_is_asked_in_german_and_in_english():
    cases = news_cases()
    for file in {c.file for c in cases}:
        assert {c.lang for c in cases if c.file == file} == {"de", "en"}, file
    assert sum(c.expect == "not_found" for c in cases) == 8
