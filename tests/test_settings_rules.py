"""Each setting's default lives in one place (its dataclass field) and its validation rule beside it."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from bot.config import Config, ConfigError, parse_config
from index import search
from index.settings import SearchSettings

ROOT = Path(__file__).resolve().parents[1]


def _fields() -> list[tuple[str, dataclasses.Field]]:
    config = Config()
    return [
        (section.name, f)
        for section in dataclasses.fields(Config)
        if section.name != "source"
        for f in dataclasses.fields(getattr(config, section.name))
    ]


def _with_rule(rule: str) -> list[str]:
    return [f"{section}.{f.name}" for section, f in _fields() if rule in f.metadata]


def test_the_example_config_shows_the_defaults_the_code_has():
    raw = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    defaults = Config()
    differ = {
        f"{section}.{key}": (value, getattr(getattr(defaults, section), key))
        for section, values in raw.items()
        for key, value in values.items()
        if value != getattr(getattr(defaults, section), key)
    }
    assert differ == {}, f"config.example.toml and the dataclass defaults disagree (example, code): {differ}"


def test_no_second_copy_of_the_common_term_default():
    assert not hasattr(search, "COMMON_TERM_PASSAGES"), "the default lives in SearchSettings only"
    assert SearchSettings.common_term_passages == SearchSettings().common_term_passages


@pytest.mark.parametrize("key", _with_rule("choices"))
def test_a_word_setting_refuses_a_word_it_does_not_know(key):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"{section}\.{name}: must be one of .*, not 'nonsense'"):
        parse_config(f'[{section}]\n{name} = "nonsense"\n')


@pytest.mark.parametrize("key", _with_rule("positive"))
def test_a_positive_setting_refuses_zero(key):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"{section}\.{name}: must be greater than 0"):
        parse_config(f"[{section}]\n{name} = 0\n")


@pytest.mark.parametrize("key", _with_rule("keywords"))
def test_a_bool_or_keyword_setting_refuses_a_typo(key):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"{section}\.{name}: must be one of true, false"):
        parse_config(f'[{section}]\n{name} = "yes"\n')


def test_the_rules_are_where_they_were():
    assert set(_with_rule("choices")) == {
        "embedding.backend",
        "embedding.runtime",
        "search.index",
        "search.fusion",
        "answer.mode",
        "storage.engine",
        "storage.vector_search",
    }
    assert {"embedding.batch_size", "search.k", "fetch.timeout", "fetch.max_bytes"} <= set(_with_rule("positive"))
    assert _with_rule("keywords") == ["search.float16"]


@pytest.mark.parametrize("key", _with_rule("number_keywords"))
def test_a_number_or_keyword_setting_refuses_another_word(key):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"{section}\.{name}: must be a number or .*, not 'fast'"):
        parse_config(f'[{section}]\n{name} = "fast"\n')


def test_min_relevance_takes_a_number_or_auto():
    assert _with_rule("number_keywords") == ["answer.min_relevance"]
    assert parse_config("[answer]\nmin_relevance = 0.3\n").answer.min_relevance == 0.3
    assert parse_config("[answer]\nmin_relevance = 0\n").answer.min_relevance == 0.0
    assert parse_config('[answer]\nmin_relevance = "auto"\n').answer.min_relevance == "auto"
    with pytest.raises(ConfigError, match=r"answer\.min_relevance: must be a number or \"auto\", not 'fast'"):
        parse_config('[answer]\nmin_relevance = "fast"\n')
    with pytest.raises(ConfigError, match=r"answer\.min_relevance: must not be negative"):
        parse_config("[answer]\nmin_relevance = -0.1\n")
    with pytest.raises(ConfigError, match=r"answer\.min_relevance: must be float, not bool"):
        parse_config("[answer]\nmin_relevance = true\n")


def test_the_bounded_settings():
    assert set(_with_rule("within")) == {
        "answer.min_relevance",
        "answer.min_support",
        "answer.other_article_support",
        "llm.temperature",
        "telegram.port",
    }
    assert {"answer.passages", "telegram.max_question_chars", "telegram.max_file_bytes"} <= set(_with_rule("positive"))


@pytest.mark.parametrize("key", _with_rule("within"))
def test_a_bounded_setting_takes_its_ends_and_refuses_beyond_them(key):
    section, name = key.split(".")
    field = next(f for s, f in _fields() if f"{s}.{f.name}" == key)
    low, high = field.metadata["within"]
    kind = int if isinstance(field.default, int) else float
    for value in (low, high):
        assert getattr(getattr(parse_config(f"[{section}]\n{name} = {kind(value)!r}\n"), section), name) == value
    beyond = kind(high) + (1 if kind is int else 0.5)
    with pytest.raises(ConfigError, match=rf"{section}\.{name}: must be between {low:g} and {high:g}, not {beyond!r}"):
        parse_config(f"[{section}]\n{name} = {beyond!r}\n")
    if low > 0:
        with pytest.raises(ConfigError, match=rf"{section}\.{name}: must be between"):
            parse_config(f"[{section}]\n{name} = {kind(low) - 1!r}\n")
