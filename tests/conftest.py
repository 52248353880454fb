"""Shared fixtures: the real default embedding model (loaded once per session), real SQLite in tmp dirs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from index.embedding import Embedder, load_embedder  # noqa: E402
from index.kb import KnowledgeBase  # noqa: E402
from index.settings import EmbeddingSettings, IndexSettings  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLES = Path(__file__).resolve().parents[1] / "bot" / "samples"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return load_embedder(EmbeddingSettings())


@pytest.fixture
def settings(tmp_path: Path) -> IndexSettings:
    return IndexSettings(data_dir=str(tmp_path / "data"))


@pytest.fixture
def kb(settings: IndexSettings, embedder) -> KnowledgeBase:
    knowledge_base = KnowledgeBase(settings, embedder=embedder)
    yield knowledge_base
    knowledge_base.close()


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the checkout")
    return SHARED


@pytest.fixture
def site():
    """A loopback site whose pages a test can add, change and remove (tests/util_pages.py)."""
    from util_pages import Site

    s = Site()
    yield s
    s.close()


@pytest.fixture
def kb_net(tmp_path: Path, embedder) -> KnowledgeBase:
    """A knowledge base that may fetch from the loopback site."""
    from util_pages import FETCH

    knowledge_base = KnowledgeBase(IndexSettings(data_dir=str(tmp_path / "data"), fetch=FETCH), embedder=embedder)
    yield knowledge_base
    knowledge_base.close()


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL with pgvector for the whole session (tests/pg_server.py)."""
    from pg_server import LocalPostgres

    server = LocalPostgres().start()
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(postgres_server) -> str:
    """A fresh, empty database on the session's PostgreSQL."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgres"])
def engine_settings(request, tmp_path: Path) -> IndexSettings:
    """Settings for a new knowledge base on each engine: the shared suites run once per engine."""
    settings = IndexSettings(data_dir=str(tmp_path / "data"))
    if request.param == "postgres":
        settings.storage.engine = "postgres"
        settings.storage.dsn = request.getfixturevalue("pg_dsn")
    return settings
