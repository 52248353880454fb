"""A small ``bench.load``: the real ``articlebot run`` process, users asking while an admin imports.

Every question must be answered exactly once, every article added, and the bot's event loop never
blocked for 100 ms or more by the bot's own work (its LoopWatch: a 20 ms heartbeat measuring how late
it wakes, each stall bounded by the CPU the process got meanwhile, since on a shared machine the OS
may run other processes; the wall-clock figure is in the failure message).
"""

from __future__ import annotations

import pytest

from bench.load import run_load
from bot.cli import load_samples
from index.kb import KnowledgeBase
from index.settings import IndexSettings

pytestmark = pytest.mark.slow

USERS, QUESTIONS, ARTICLES = 20, 2, 20
MAX_LAG_MS = 100.0


@pytest.fixture
def data_dir(tmp_path, embedder):
    kb = KnowledgeBase(IndexSettings(data_dir=str(tmp_path)), embedder=embedder)
    load_samples(kb)
    kb.close()
    return tmp_path


def test_users_asking_during_an_import_all_get_one_answer_and_the_loop_stays_free(data_dir, embedder):
    result = run_load(
        data_dir, USERS, QUESTIONS, ARTICLES, getattr(embedder, "runtime", None), data_dir / "bot.log", timeout=180.0
    )
    log = (data_dir / "bot.log").read_text()
    assert result.exit_code == 0
    assert result.unanswered == 0, f"{result.unanswered} of {result.questions} questions got no answer"
    assert result.replies_per_user == [QUESTIONS] * USERS, "every question answered exactly once"
    assert result.added == ARTICLES
    assert result.max_own_stall_ms is not None, "the bot reports its event loop's longest stall when it stops"
    stalls = [line for line in log.splitlines() if "event loop" in line]
    assert result.max_own_stall_ms < MAX_LAG_MS, stalls
    assert result.errors == []
