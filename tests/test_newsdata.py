"""The news evaluation set (bench/news_questions.json) against the 10kGNAD articles in ../shared.

The title and question-file checks run everywhere; the ones needing the CSV skip without ../shared.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench.newsdata import (
    QUESTIONS,
    FingerprintMismatch,
    SharedDataMissing,
    load_gnad,
    load_news_questions,
    title_of,
)


@pytest.fixture(scope="module")
def articles():
    try:
        return load_gnad()
    except SharedDataMissing as missing:
        pytest.skip(str(missing))


def test_title_is_the_first_sentence_shortened():
    assert title_of("Kurzer Satz. Danach mehr Text.") == "Kurzer Satz."
    long = "Ein " + "sehr " * 30 + "langer Satz. Rest."
    title = title_of(long)
    assert len(title) <= 80 and title.endswith("…") and title.startswith("Ein sehr")
    assert title_of("Kein Satzende und kurz") == "Kein Satzende und kurz"


def test_question_file_is_well_formed():
    entries = json.loads(QUESTIONS.read_text(encoding="utf-8"))
    assert len(entries) >= 64
    assert len({e["row"] for e in entries}) == len(entries)  # one question per article
    assert len(Counter(e["label"] for e in entries)) == 9  # every category of the data set
    for entry in entries:
        assert entry["question_de"].endswith("?") and entry["question_en"].endswith("?")
        assert 1 <= len(entry["answers"]) <= 3 and all(a.strip() == a and a for a in entry["answers"])
        assert len(entry["fingerprint"]) == 60


def test_gnad_rows_load_whole(articles):
    assert len(articles) == 1028
    assert [a.row for a in articles] == list(range(1028))
    assert all(a.text and a.title and len(a.title) <= 80 for a in articles)
    assert articles[0].text.startswith(articles[0].title.rstrip("…"))


def test_every_answer_occurs_in_its_article(articles):
    questions = load_news_questions(articles=articles)
    missing = [(q.row, a) for q in questions for a in q.answers if a not in articles[q.row].text]
    assert missing == []


def test_also_in_rows_lists_exactly_the_other_articles_holding_an_answer(articles):
    for q in load_news_questions(articles=articles):
        others = [a.row for a in articles if a.row != q.row and any(s in a.text for s in q.answers)]
        assert q.also_in_rows == others, q.row


def test_a_shifted_row_is_reported(articles, tmp_path: Path):
    entries = json.loads(QUESTIONS.read_text(encoding="utf-8"))
    entries[0]["row"] += 1
    path = tmp_path / "shifted.json"
    path.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(FingerprintMismatch, match=f"question 0: row {entries[0]['row']} starts"):
        load_news_questions(path, articles=articles)


def test_missing_shared_data_raises_the_skip_error(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("ARTICLEBOT_SHARED", str(tmp_path / "absent"))
    with pytest.raises(SharedDataMissing, match="absent"):
        load_gnad()
