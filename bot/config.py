"""Configuration: one TOML file, every key checked, errors name the key.

Looked up in order: ``--config PATH``, ``$ARTICLEBOT_CONFIG``, ``./config.toml``, else defaults.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from index.settings import (
    ChunkSettings,
    EmbeddingSettings,
    FetchSettings,
    IndexSettings,
    IngestSettings,
    SearchSettings,
    StorageSettings,
    between,
    choice,
    number_or,
    positive,
)


class ConfigError(Exception):
    """A config problem, phrased for the person who wrote the file."""


@dataclass
class AnswerSettings:
    # "extractive" (offline) or "llm" (needs [llm]).
    mode: str = choice("extractive", "llm")
    # An extractive body holds at most max_sentences verbatim sentences within max_chars (the best
    # sentence always goes in). When the best sentence leads the runner-up by confident_margin, the
    # body stops at confident_sentences / confident_chars: sure answers stay short on a phone.
    max_sentences: int = 3
    # 450 / 400 (cross-language) keep the median body under 400 characters on XQuAD and on news, at 2
    # points of German answer-hit against 600 (BENCHMARKS.md, "... and answers on news").
    max_chars: int = 450
    confident_sentences: int = 2
    confident_chars: int = 350
    confident_margin: float = 0.4
    # A further sentence goes in only when it scores at least this share of the best one: a weak
    # match from another article (a date, a number) would otherwise fill the budget. At 0.5 on XQuAD
    # it halves bodies quoting another article (17% -> 8.5%) for 0.1 points of answer-hit.
    min_support: float = between(0.5, 0.0, 1.0)
    # A sentence from another article than the best one's needs this share of the best score: a
    # different article must make nearly as strong a case, or it does not pad the answer.
    other_article_support: float = between(0.9, 0.0, 1.0)
    # Quotes in another language than the question (English question, German article): the sentence
    # choice is less sure there, so the body may hold more of them.
    cross_language_sentences: int = 3
    cross_language_chars: int = 400
    # Below this relevance (0..1) the bot says the articles do not hold the answer. "auto": the
    # threshold fitted with the embedding model's calibration (bot/calibration/, bench/answers.py --fit).
    # Above 1 nothing is ever answered, so it is refused.
    min_relevance: float | str = number_or("auto", "auto", within=(0.0, 1.0))
    # Retrieved passages whose sentences are scored (and that the LLM sees in mode "llm").
    passages: int = positive(5)
    # A follow-up ("Und warum?") is resolved against the conversation's last question this long.
    followup_minutes: float = 10.0


@dataclass
class LLMSettings:
    base_url: str = ""
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    # Seconds for the whole answer, and for its first words (a model that is loading or overloaded
    # says nothing for long: the extractive answer is better than a wait).
    timeout: float = positive(30.0)
    first_token_timeout: float = positive(15.0)
    # The range OpenAI-compatible endpoints accept.
    temperature: float = between(0.0, 0.0, 2.0)
    max_tokens: int = positive(500)
    # Read the reply as it is written (server-sent events) and show it growing.
    stream: bool = True
    # Requests to the endpoint at once; the others wait in order of arrival.
    max_concurrent: int = positive(2)
    # Telegram: seconds between edits of a streamed answer in one chat (groups: at least 3).
    edit_interval: float = 1.0


@dataclass
class TelegramSettings:
    token: str = ""
    base_url: str = ""
    base_file_url: str = ""
    admins: list[int] = field(default_factory=list)
    webhook_url: str = ""
    listen: str = "127.0.0.1"
    port: int = between(8443, 1, 65535)
    secret_token: str = ""
    rate_limit_per_minute: int = 10
    max_question_chars: int = positive(1000)
    max_file_bytes: int = positive(20_000_000)
    poll_timeout: float = 10.0


@dataclass
class FeedSettings:
    # How often 'articlebot run' polls the subscribed feeds (a feed that keeps failing waits longer).
    interval_minutes: float = positive(15.0)
    # A feed's first poll adds at most this many of its newest items; the older ones are left out.
    backfill: int = 20


@dataclass
class Config:
    storage: StorageSettings = field(default_factory=StorageSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    feeds: FeedSettings = field(default_factory=FeedSettings)
    source: str = "defaults"

    def index_settings(self) -> IndexSettings:
        return IndexSettings(
            data_dir=self.storage.data_dir,
            storage=self.storage,
            embedding=self.embedding,
            chunking=self.chunking,
            search=self.search,
            fetch=self.fetch,
            ingest=self.ingest,
        )


def find_config_path(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get("ARTICLEBOT_CONFIG")
    if env:
        return Path(env)
    local = Path("config.toml")
    return local if local.exists() else None


def load_config(explicit: str | None = None, data_dir: str | None = None) -> Config:
    path = find_config_path(explicit)
    config = Config()
    if path is not None:
        config = parse_config(_read(path), str(path))
    if data_dir:
        config.storage.data_dir = data_dir
    return config


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        # A new admin's first --config usually names the copy of config.example.toml not made yet.
        raise ConfigError(f"config file not found: {path} (start from a copy of config.example.toml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def parse_config(text: str, source: str = "<config>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    config = Config(source=source)
    sections = {f.name for f in dataclasses.fields(Config) if f.name != "source"}
    for name, values in raw.items():
        if not isinstance(values, dict):
            owners = [s for s in sorted(sections) if name in {f.name for f in dataclasses.fields(getattr(config, s))}]
            hint = f" (it belongs under [{owners[0]}])" if owners else ""
            raise ConfigError(f"{source}: '{name}' is not inside a [section]{hint}")
        if name not in sections:
            raise ConfigError(f"{source}: unknown section [{name}] (known: {', '.join(sorted(sections))})")
        setattr(config, name, _fill(getattr(config, name), values, name, source))
    if config.llm.base_url and (problem := base_url_problem(config.llm.base_url)):
        raise ConfigError(f"{source}: llm.base_url: {problem}")
    if config.answer.mode == "llm" and not (config.llm.base_url and config.llm.model):
        raise ConfigError(f'{source}: answer.mode = "llm" needs llm.base_url and llm.model')
    return config


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an [llm] base_url, or None. Checked when the config is read: a typo here
    would otherwise turn every answer into the extractive fallback (or a crash, for an unparsable URL)."""
    import httpx  # here: most commands never read an [llm] section

    example = "http://127.0.0.1:11434/v1"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        return f"not a valid URL ({exc}): {url!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http(s) URL such as {example}, not {url!r}"
    return None


def _fill(instance: object, values: dict, section: str, source: str) -> object:
    hints = typing.get_type_hints(type(instance))
    known = {f.name: f for f in dataclasses.fields(instance)}
    for key, value in values.items():
        where = f"{source}: {section}.{key}"
        if key not in known:
            raise ConfigError(f"{where}: unknown setting (known: {', '.join(sorted(known))})")
        # The field's own rules (index.settings: choice, positive, between, bool_or, number_or).
        rules = known[key].metadata
        if "keywords" in rules:
            setattr(instance, key, _bool_or_keyword(value, rules["keywords"], where))
            continue
        if "number_keywords" in rules and isinstance(value, str):
            setattr(instance, key, _number_or_keyword(value, rules["number_keywords"], where))
            continue
        value = _coerce(value, hints[key], where)
        choices = rules.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{where}: must be one of {', '.join(sorted(choices))}, not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: must be a finite number, not {value}")
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{where}: must not be negative")
        if rules.get("positive") and value <= 0:
            raise ConfigError(f"{where}: must be greater than 0")
        if "within" in rules and not rules["within"][0] <= value <= rules["within"][1]:
            low, high = rules["within"]
            raise ConfigError(f"{where}: must be between {low:g} and {high:g}, not {value!r}")
        setattr(instance, key, value)
    return instance


def _bool_or_keyword(value: object, keywords: tuple[str, ...], where: str) -> bool | str:
    if isinstance(value, bool) or (isinstance(value, str) and value in keywords):
        return value
    allowed = ", ".join(["true", "false", *(f'"{k}"' for k in keywords)])
    raise ConfigError(f"{where}: must be one of {allowed}, not {type(value).__name__} {value!r}")


def _number_or_keyword(value: str, keywords: tuple[str, ...], where: str) -> str:
    if value in keywords:
        return value
    allowed = " or ".join(f'"{k}"' for k in keywords)
    raise ConfigError(f"{where}: must be a number or {allowed}, not {value!r}")


def _coerce(value: object, hint: object, where: str) -> object:
    origin = typing.get_origin(hint)
    if origin is list:
        (item_type,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: must be a list")
        return [_coerce(v, item_type, where) for v in value]
    if isinstance(hint, types.UnionType):
        hint = typing.get_args(hint)[0]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{where}: must be {hint.__name__}, not {type(value).__name__} {value!r}")
    return value
