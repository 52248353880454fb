"""The bot's tables on each engine (update ledger, answer log, portable SQL, polling lock), and several processes.

Every test of the first part runs against SQLite and against a real PostgreSQL (``engine``); the
two-process tests run real Python processes on one PostgreSQL database and kill one with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from telegram import Update

from bot.updates import ABANDONED, ANSWERED, FAILED, MAX_ATTEMPTS, PROCESSING, RECEIVED, UpdateLedger
from index.engine import StorageError
from index.engines import open_engine
from index.settings import StorageSettings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def engine(engine_settings):
    Path(engine_settings.data_dir).mkdir(parents=True, exist_ok=True)
    return open_engine(engine_settings)


@pytest.fixture
def ledger(engine):
    opened = UpdateLedger(engine.update_ledger())
    opened.open()
    yield opened
    opened.close()


def _update(update_id: int) -> Update:
    message = {"message_id": update_id, "date": 0, "chat": {"id": 7, "type": "private"}, "text": f"q{update_id}"}
    return Update.de_json({"update_id": update_id, "message": message}, None)


# --- the update ledger ------------------------------------------------------------------------


def test_the_ledger_records_once_claims_once_and_recovers(ledger):
    assert ledger.record([_update(1), _update(2), _update(3)]) == [1, 2, 3]
    assert ledger.record([_update(2), _update(4)]) == [4], "a repeated update is not new"
    assert ledger.record([]) == []
    assert ledger.begin(1) and not ledger.begin(1), "claimed once"
    ledger.finish(1, ANSWERED)
    assert ledger.begin(2)
    ledger.finish(2, FAILED)
    ledger.finish(2, ANSWERED)  # the first outcome stays
    assert ledger.begin(3)  # then the process dies
    assert ledger.begin(99), "an update that never went through the queue is still handled"
    assert ledger.states() == {1: ANSWERED, 2: FAILED, 3: PROCESSING, 4: RECEIVED}
    assert ledger.recover() == [], "what this process holds (queued, being answered) is not handed out again"
    ledger.close()  # the process is gone
    ledger.open()
    recovered = ledger.recover()
    assert [update_id for update_id, _ in recovered] == [3, 4]
    assert Update.de_json(json.loads(recovered[0][1]), None).message.text == "q3"
    assert ledger.states()[3] == RECEIVED


def test_the_ledger_gives_up_on_an_update_that_kills_the_bot_and_forgets_old_ones(ledger):
    ledger.record([_update(1), _update(2)])
    for _ in range(MAX_ATTEMPTS):  # each time the bot dies while handling update 1
        ledger.close()
        ledger.open()
        assert [i for i, _ in ledger.recover()] == [1, 2]
        assert ledger.begin(1)
    ledger.close()
    ledger.open()
    assert [i for i, _ in ledger.recover()] == [2]
    assert ledger.states()[1] == ABANDONED
    ledger.table.conn.execute("UPDATE updates SET received_at = '2000-01-01T00:00:00.000+00:00'")
    ledger.recover()
    assert ledger.states() == {2: RECEIVED}, "finished rows older than Telegram's 24 hours go; unfinished stay"


def test_the_ledger_is_closed_until_opened(engine):
    table = engine.update_ledger()
    with pytest.raises(RuntimeError, match="not open"):
        table.states()


def test_a_postgres_error_is_one_line_and_a_dropped_connection_is_replaced(pg_dsn):
    table = open_engine_pg(pg_dsn).update_ledger()
    table.open()
    try:
        with pytest.raises(StorageError, match="^recording updates failed: .*0x00"):
            table.record([(1, "nul \x00 in JSON")])
        assert table.states() == {}, "nothing of the failed batch was recorded"
        first = table.instance
        assert table.record([(3, "{}")]) == [3]  # queued in this process when the connection drops
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'articlebot%'"
            )
        with pytest.raises(StorageError, match="^recording updates failed"):
            table.record([(2, "{}")])
        assert table.record([(2, "{}")]) == [2], "the next call connects again"
        assert table.instance != first, "as a new instance: the old session's claims are no longer ours"
        assert table.recover(3, timedelta(days=2)) == ([], [(3, "{}")]), "recovery picks up what the old one held"
    finally:
        table.close()


def open_engine_pg(dsn: str):
    from index.settings import IndexSettings

    settings = IndexSettings()
    settings.storage = StorageSettings(engine="postgres", dsn=dsn)
    return open_engine(settings)


# --- the answer log ---------------------------------------------------------------------------


def test_the_answer_log_keeps_answers_and_one_vote_per_person(engine):
    log = engine.answer_log()
    try:
        citation = {"article_id": 3, "title": "Möwe II", "quote": "9,2 Millionen Euro"}
        first = log.record_answer(
            {"chat_id": -1001234567890, "question": "Was kostete?", "answer": "9,2 Mio.", "found": 1,
             "language": "de", "mode": "extract", "citations": [citation]}
        )  # fmt: skip
        second = log.record_answer({"chat_id": 5, "question": "q", "answer": "a", "found": 0, "citations": []})
        assert second > first
        assert log.answer(first) == {
            "id": first, "question": "Was kostete?", "answer": "9,2 Mio.", "language": "de", "citations": [citation]
        }  # fmt: skip
        assert log.answer(second + 100) is None
        assert log.vote(first, 9, 1) and log.vote(first, 10, -1) and log.vote(second, 9, -1)
        assert log.vote(first, 9, -1), "pressing again changes the vote"
        assert not log.vote(second + 100, 9, 1), "an unknown answer takes no vote"
        assert log.counts() == {"answers": 2, "up": 0, "down": 3}
        votes = log.feedback()
        assert [(v["answer_id"], v["user_id"], v["vote"]) for v in votes] == [
            (second, 9, -1),
            (first, 10, -1),
            (first, 9, -1),
        ]
        assert votes[-1]["citations"] == [citation] and votes[-1]["question"] == "Was kostete?"
    finally:
        log.close()


# --- portable SQL -----------------------------------------------------------------------------


def test_portable_sql_runs_the_same_statements_on_both_engines(engine):
    sql = engine.portable_sql()
    try:
        insert = "INSERT INTO feeds (url, url_key) VALUES (?, ?) ON CONFLICT (url_key) DO NOTHING RETURNING id"
        with sql.transaction() as tx:
            (first,) = tx.execute(insert, ("https://a.example/feed", "a.example/feed"))
            assert tx.execute(insert, ("https://a.example/feed?x", "a.example/feed")) == []
            tx.executemany(
                "INSERT INTO feed_items (feed_id, guid, status) VALUES (?, ?, ?) "
                "ON CONFLICT (feed_id, guid) DO NOTHING",
                [(first[0], "g1", "added"), (first[0], "g1", "failed"), (first[0], "g2", "skipped")],
            )
        assert sql.query("SELECT guid, status FROM feed_items ORDER BY guid") == [("g1", "added"), ("g2", "skipped")]
        assert sql.query("SELECT count(*) FROM feeds WHERE url LIKE '%a.example%'") == [(1,)], "a literal % stays"
        with pytest.raises(ZeroDivisionError), sql.transaction() as tx:
            tx.execute("DELETE FROM feed_items")
            raise ZeroDivisionError
        assert len(sql.query("SELECT * FROM feed_items")) == 2, "a transaction that raised changed nothing"
        with sql.transaction() as tx:
            (again,) = tx.execute(insert, ("https://b.example/feed", "b.example/feed"))
        assert again[0] > first[0]
    finally:
        sql.close()


# --- the run lock ---------------------------------------------------------------------------


def test_a_long_polling_process_runs_alone(engine):
    me = f"articlebot pid {os.getpid()} on "
    poller, other = engine.run_lock(), engine.run_lock()
    assert poller.acquire(polling=True) is None
    try:
        refused = other.acquire(polling=True)
        assert me in refused and "(long polling)" in refused and "webhook_url" in refused
        assert "\n" not in refused
        refused = other.acquire(polling=False)
        assert me in refused and "(long polling)" in refused
    finally:
        poller.release()
    assert other.acquire(polling=True) is None, "released: the next process may poll"
    other.release()


def test_webhook_processes_run_together_on_postgres_and_alone_on_sqlite(engine):
    first, second, poller = engine.run_lock(), engine.run_lock(), engine.run_lock()
    assert first.acquire(polling=False) is None
    try:
        if engine.name == "postgres":
            assert second.acquire(polling=False) is None, "webhook processes share a PostgreSQL database"
            refused = poller.acquire(polling=True)
            assert refused.count(f"articlebot pid {os.getpid()} on ") == 2 and "(webhook)" in refused
        else:
            refused = second.acquire(polling=False)
            assert "(webhook)" in refused and "A SQLite data dir serves one bot process" in refused
    finally:
        first.release()
        second.release()


_HOLD_RUN_LOCK = """
import sys, time
from index.engines import open_engine
from index.settings import IndexSettings
settings = IndexSettings(data_dir=sys.argv[1])
settings.storage.engine, settings.storage.dsn = sys.argv[2], sys.argv[3]
lock = open_engine(settings).run_lock()
assert lock.acquire(polling=True) is None
print("holding", flush=True)
time.sleep(600)
"""


def test_a_killed_pollers_lock_is_free_at_once(engine, engine_settings):
    storage = engine_settings.storage
    args = [engine_settings.data_dir, storage.engine, storage.dsn or ""]
    proc = _python(_HOLD_RUN_LOCK, *args)
    try:
        assert proc.stdout.readline().strip() == "holding", proc.stderr.read()
        lock = engine.run_lock()
        assert f"articlebot pid {proc.pid} on " in lock.acquire(polling=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert _eventually(lambda: lock.acquire(polling=True) is None), "the dead poller's lock was not freed"
        lock.release()
    finally:
        _stop(proc)


# --- several processes on one PostgreSQL ------------------------------------------------------

_WORKER = """
import json, sys, time
from index.engines import open_engine
from index.settings import IndexSettings
settings = IndexSettings()
settings.storage.engine, settings.storage.dsn = "postgres", sys.argv[1]
table = open_engine(settings).update_ledger()
table.open()
ids = list(range(1, int(sys.argv[3]) + 1))
print("ready", flush=True)
sys.stdin.readline()  # both start at once
new = table.record([(i, json.dumps({"update_id": i})) for i in ids])
if sys.argv[2] == "race":
    claimed = [i for i in ids if table.begin(i)]
    print(json.dumps({"new": new, "claimed": claimed}), flush=True)
else:  # hold: claim update 1 and keep handling it until killed
    assert table.begin(1)
    print("claimed", flush=True)
    time.sleep(600)
"""


def _python(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)


def _eventually(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_two_processes_record_and_claim_every_update_exactly_once(pg_dsn):
    count = 300
    workers = [_python(_WORKER, pg_dsn, "race", str(count)) for _ in range(2)]
    try:
        for proc in workers:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for proc in workers:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [json.loads(proc.stdout.readline()) for proc in workers]
    finally:
        for proc in workers:
            _stop(proc)
    everything = set(range(1, count + 1))
    for key in ("new", "claimed"):
        a, b = (set(r[key]) for r in results)
        assert not a & b, f"{key} twice: {sorted(a & b)[:10]}"
        assert a | b == everything, f"{key} by nobody: {sorted(everything - a - b)[:10]}"


def test_recovery_takes_over_only_what_a_dead_process_held(pg_dsn):
    holder = _python(_WORKER, pg_dsn, "hold", "3")
    other = UpdateLedger(open_engine_pg(pg_dsn).update_ledger())
    try:
        assert holder.stdout.readline().strip() == "ready", holder.stderr.read()
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "claimed", holder.stderr.read()
        other.open()  # a second bot process starts while the first is answering update 1 (2 and 3 queued)
        assert other.recover() == [], "what a live process holds stays its own"
        assert other.states() == {1: PROCESSING, 2: RECEIVED, 3: RECEIVED}
        assert not other.begin(1)

        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
        started = time.monotonic()
        assert _eventually(lambda: [i for i, _ in other.recover()] == [1, 2, 3]), "the dead process's claim stayed"
        assert time.monotonic() - started < 5
        assert other.states()[1] == RECEIVED
        assert other.recover() == [], "taken over once: now this process's"
        assert other.begin(1)
        other.finish(1, ANSWERED)
        assert other.states() == {1: ANSWERED, 2: RECEIVED, 3: RECEIVED}
    finally:
        _stop(holder)
        other.close()
