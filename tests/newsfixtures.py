"""The news regression fixtures (tests/fixtures/news): invented German articles and the cases they reproduce.

    from newsfixtures import news_articles, news_cases
    for path in news_articles():
        kb.add(from_markdown(path.read_text(encoding="utf-8")))
    for case in news_cases():
        answer = answerer.answer(case.question)
        ...  # case.expect is "answer" (any of case.answer_strings in the body) or "not_found"

See tests/fixtures/news/README.md for what each article and case is for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

NEWS = Path(__file__).resolve().parent / "fixtures" / "news"
EXPECTATIONS = ("answer", "not_found")


@dataclass(frozen=True)
class NewsCase:
    question: str
    expect: str  # "answer" or "not_found"
    file: str  # the fixture article the case is about (for not_found: the article that must not answer it)
    lang: str  # the question's language, "de" or "en"
    answer_strings: list[str] = field(default_factory=list)  # any one of them in the body is a correct answer
    must_not_contain: list[str] = field(default_factory=list)  # none of them may be in the body
    note: str = ""

    @property
    def path(self) -> Path:
        return NEWS / self.file


def news_articles() -> list[Path]:
    """The fixture articles (Markdown with title/url/published front matter), sorted by name."""
    return sorted(p for p in NEWS.glob("*.md") if p.name != "README.md")


def news_cases() -> list[NewsCase]:
    """The cases from cases.json; a malformed one raises ValueError naming it."""
    cases = []
    for index, entry in enumerate(json.loads((NEWS / "cases.json").read_text(encoding="utf-8"))):
        try:
            case = NewsCase(**entry)
        except TypeError as error:
            raise ValueError(f"cases.json entry {index} is malformed: {error}") from None
        if case.expect not in EXPECTATIONS:
            raise ValueError(f"cases.json entry {index}: expect is {case.expect!r}, not one of {EXPECTATIONS}")
        if (case.expect == "answer") != bool(case.answer_strings):
            raise ValueError(f"cases.json entry {index}: answer_strings go with expect 'answer', and only with it")
        if not case.path.is_file():
            raise ValueError(f"cases.json entry {index}: no fixture article {case.file}")
        cases.append(case)
    return cases
