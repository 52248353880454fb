"""The shipped example configs parse, and document every setting there is."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from bot.config import Config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def _documented_keys(path: Path) -> set[str]:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return {f"{section}.{key}" for section, values in raw.items() for key in values}


def _all_keys() -> set[str]:
    config = Config()
    return {
        f"{section.name}.{f.name}"
        for section in dataclasses.fields(Config)
        if section.name != "source"
        for f in dataclasses.fields(getattr(config, section.name))
    }


def test_example_config_documents_every_setting():
    documented = _documented_keys(ROOT / "config.example.toml")
    assert _all_keys() - documented == set(), "settings missing from config.example.toml"


@pytest.mark.parametrize("name", sorted(p.name for p in ROOT.glob("config*.example.toml")))
def test_example_configs_parse(name):
    path = ROOT / name
    config = parse_config(path.read_text(encoding="utf-8"), name)
    assert config.source == name


def test_example_values_are_the_defaults():
    # The example documents defaults; a drift would mislead whoever copies it.
    parsed = parse_config((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    defaults = Config()
    for section in dataclasses.fields(Config):
        if section.name != "source":
            assert getattr(parsed, section.name) == getattr(defaults, section.name), section.name
