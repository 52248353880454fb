"""The real ``articlebot run`` process: restarts lose no update and repeat none; bad starts fail clearly.

The module runs once per engine (SQLite, PostgreSQL); the ledger's own tests are in test_side_tables.py.

The Bot API server runs in this process and outlives the bot processes, as Telegram does. Holds
on the server freeze the bot at known points: replies in flight (a slow answer) and the getUpdates
call that would confirm a batch. Then the bot is killed (SIGKILL) or stopped (SIGTERM).
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from botapi_server import BotApiServer
from newsroom import FERRY, SOLAR

from bot.updates import ANSWERED, PROCESSING
from index.extract import from_text
from index.kb import DB_FILE, KnowledgeBase
from index.settings import IndexSettings, StorageSettings
from index.side_tables import read_states

pytestmark = pytest.mark.slow

TOKEN = "5151515151:AAFrestartRestartRestartRestart0001"
ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 180.0  # the process loads the model: slow on a busy machine
WAIT = 90.0
QUESTIONS = [
    ("Was kostete der Bau der Möwe II?", "9,2 Millionen Euro"),
    ("How many solar panels will Harbourton fit on school roofs?", "1,240"),
    ("Für wie viele Fahrgäste bietet die Fähre Platz?", "180"),
    ("Who leads the Harbourton solar project?", "Priya Castellane"),
]
_user_ids = iter(range(20_000, 21_000))


class BotProcess:
    """``articlebot run`` in a subprocess, against the test server."""

    def __init__(self, api: BotApiServer, config: Path, log_dir: Path):
        self.api = api
        self.config = config
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        polls = len(self.api.calls_to("getUpdates"))
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        self.stderr = self.log_dir / f"run{self.runs}.err"
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "--config", str(self.config), "run"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.api.wait_for(
            lambda: len(self.api.calls_to("getUpdates")) > polls or self.proc.poll() is not None,
            START_TIMEOUT,
            "the bot to poll",
        )
        assert self.proc.poll() is None, self.stderr.read_text()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(WAIT)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture(scope="module")
def api():
    server = BotApiServer(TOKEN).start()
    yield server
    server.drop_all()
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def storage(request) -> StorageSettings:
    """The engine the bot processes of this module run on (the whole module runs once per engine)."""
    if request.param == "postgres":
        return StorageSettings(engine="postgres", dsn=request.getfixturevalue("postgres_server").create_database())
    return StorageSettings()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, embedder, storage) -> Path:
    path = tmp_path_factory.mktemp("restart")
    settings = IndexSettings(data_dir=str(path))
    settings.storage = dataclasses.replace(storage, data_dir=str(path))
    kb = KnowledgeBase(settings, embedder=embedder)
    for text in (FERRY, SOLAR):
        kb.add(from_text(text))
    kb.close()
    return path


@pytest.fixture(scope="module")
def bot(api, data_dir, storage, tmp_path_factory, embedder):
    config = data_dir / "config.toml"
    # The runtime that embedded the articles, whatever today's default is (USE has only one).
    embedding = f'[embedding]\nruntime = "{embedder.runtime}"\n\n' if hasattr(embedder, "runtime") else ""
    config.write_text(
        f'[storage]\ndata_dir = "{data_dir}"\nengine = "{storage.engine}"\ndsn = "{storage.dsn}"\n\n'
        + embedding
        + f'[telegram]\nbase_url = "{api.base_url}"\npoll_timeout = 1.0\nrate_limit_per_minute = 0\n',
        encoding="utf-8",
    )
    runner = BotProcess(api, config, tmp_path_factory.mktemp("logs"))
    yield runner
    runner.close()


def reader() -> dict:
    return BotApiServer.user(next(_user_ids), "Reader", "de")


def ask(api: BotApiServer, n: int, user: dict | None = None) -> tuple[dict, str]:
    """Someone asks question ``n`` (cycling); returns the message and what its answer must say."""
    user = user or reader()
    question, expected = QUESTIONS[n % len(QUESTIONS)]
    return api.send_text(user, api.private_chat(user), question), expected


def read_ledger(data_dir: Path) -> dict[int, str]:
    """The update ledger of the module's knowledge base, read from outside the bot, on either engine."""
    config = (data_dir / "config.toml").read_text(encoding="utf-8")
    dsn = re.search(r'^dsn = "(.+)"$', config, re.M)
    if dsn is None:
        return read_states(data_dir / DB_FILE)
    with psycopg.connect(dsn.group(1)) as conn:
        return dict(conn.execute("SELECT update_id, state FROM updates").fetchall())


def states(data_dir: Path, api: BotApiServer, messages: list[dict]) -> list[str | None]:
    found = read_ledger(data_dir)
    return [found.get(api.update_id_of(m)) for m in messages]


def replies(api: BotApiServer, message: dict) -> list[dict]:
    return api.bot_messages(message["chat"]["id"])


def all_answered(data_dir: Path, api: BotApiServer, messages: list[dict]) -> bool:
    return states(data_dir, api, messages) == [ANSWERED] * len(messages) and all(replies(api, m) for m in messages)


def assert_one_answer_each(api: BotApiServer, asked: list[tuple[dict, str]]) -> None:
    for message, expected in asked:
        got = [r["text"] for r in replies(api, message)]
        assert len(got) == 1, f"{message['text']!r} got {len(got)} replies: {got}"
        assert expected in got[0]


def test_sigkill_mid_conversation_loses_nothing_and_repeats_nothing(api, bot, data_dir):
    # Batch A waits before the bot starts; the getUpdates after it confirms it to "Telegram".
    batch_a = [ask(api, n) for n in range(3)]
    first = batch_a[0][0]
    users_b = [reader() for _ in range(3)]
    slow_chats = {m["chat"]["id"] for m, _ in batch_a[1:]} | {u["id"] for u in users_b}
    api.hold("sendMessage", lambda p: p.get("chat_id") in slow_chats)  # answers "in flight"
    confirms_a = api.update_id_of(batch_a[-1][0]) + 1
    api.hold("getUpdates", lambda p: (p.get("offset") or 0) > confirms_a)  # would confirm batch B
    bot.start()
    api.wait_for(lambda: any(c.params.get("offset") == confirms_a for c in api.calls_to("getUpdates")), WAIT)
    with api.cond:  # batch B arrives at once, during the long poll that confirmed A
        batch_b = [ask(api, n, user) for n, user in enumerate(users_b, 3)]
    asked = batch_a + batch_b
    api.wait_for(
        lambda: (
            states(data_dir, api, [first]) == [ANSWERED]
            and len(api.waiting("sendMessage")) == len(asked) - 1
            and api.waiting("getUpdates")
        ),
        WAIT,
        "the first answer, the others in flight",
    )
    bot.kill()  # every other handler is held before its reply: none is between reply and "answered"
    api.drop_all()
    assert [len(replies(api, m)) for m, _ in asked] == [1, 0, 0, 0, 0, 0]
    assert states(data_dir, api, [m for m, _ in asked[1:]]) == [PROCESSING] * (len(asked) - 1)
    # Telegram forgot A (only the ledger has it) and will send B again (the ledger must skip it).
    assert [api.is_confirmed(api.update_id_of(m)) for m, _ in asked] == [True] * 3 + [False] * 3

    while_down = [ask(api, n) for n in range(6, 8)]
    bot.start()
    everything = asked + while_down
    api.wait_for(lambda: all_answered(data_dir, api, [m for m, _ in everything]), WAIT, "every answer")
    assert bot.terminate() == 0
    assert_one_answer_each(api, everything)
    assert all(api.is_confirmed(api.update_id_of(m)) for m, _ in everything)


def test_graceful_restart_finishes_what_is_in_flight(api, bot, data_dir):
    bot.start()
    asked = [ask(api, n) for n in range(4)]
    first, *slow = [m for m, _ in asked]
    slow_chats = {m["chat"]["id"] for m in slow}
    api.hold("sendMessage", lambda p: p.get("chat_id") in slow_chats)
    api.wait_for(
        lambda: replies(api, first) and len(api.waiting("sendMessage")) == len(slow), WAIT, "answers in flight"
    )
    polls = len(api.calls_to("getUpdates"))
    bot.proc.send_signal(signal.SIGTERM)
    # Polling stops first (its last call, without waiting, only confirms); the answers in flight still go out.
    api.wait_for(
        lambda: any(c.params.get("timeout") == 0 for c in api.calls_to("getUpdates")[polls:]),
        WAIT,
        "the confirming getUpdates",
    )
    while_down = [ask(api, n) for n in range(4, 6)]
    api.release_all()
    assert bot.proc.wait(WAIT) == 0, bot.stderr.read_text()
    assert states(data_dir, api, [m for m, _ in asked]) == [ANSWERED] * len(asked)
    assert [len(replies(api, m)) for m, _ in while_down] == [0, 0]

    bot.start()
    everything = asked + while_down
    api.wait_for(lambda: all_answered(data_dir, api, [m for m, _ in everything]), WAIT, "every answer")
    bot.proc.send_signal(signal.SIGINT)  # Ctrl-C: the same clean stop (README), not a KeyboardInterrupt
    assert bot.proc.wait(WAIT) == 0
    assert_one_answer_each(api, everything)
    assert "Traceback" not in bot.stderr.read_text() and "KeyboardInterrupt" not in bot.stderr.read_text()


def test_a_second_process_is_refused_in_one_line_while_one_polls(api, bot, data_dir, tmp_path):
    bot.start()
    try:
        asked = [ask(api, 0)]
        api.wait_for(lambda: all_answered(data_dir, api, [m for m, _ in asked]), WAIT, "the answer")
        result = _run_once(bot.config, tmp_path, TOKEN)
        assert bot.proc.poll() is None, "the first process runs on"
        later = [ask(api, 1)]
        api.wait_for(lambda: all_answered(data_dir, api, [m for m, _ in later]), WAIT, "the next answer")
    finally:
        assert bot.terminate() == 0
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("articlebot: "), lines
    assert "already run on" in lines[0] or "another bot process runs on" in lines[0]
    assert f"articlebot pid {bot.proc.pid} on " in lines[0] and "(long polling)" in lines[0]
    assert "webhook_url" in lines[0]
    assert_one_answer_each(api, asked + later)


def test_the_log_says_the_bot_runs_and_names_whoever_is_refused_an_admin_command(api, bot):
    # Without -v: a new admin sees that the bot runs, that nobody may add articles yet, and their user id.
    bot.start()
    try:
        lines = bot.stderr.read_text().splitlines()
        running = [line for line in lines if "@articles_test_bot is running (long polling) with 2 article(s)" in line]
        assert len(running) == 1, lines
        assert "no admins yet: set [telegram] admins = [your user id]" in running[0]
        newcomer = BotApiServer.user(31337, "Ada Newcomer", "de")
        command = api.send_text(newcomer, api.private_chat(newcomer), "/add https://example.org/artikel")
        api.wait_for(lambda: replies(api, command), WAIT, "the refusal")
        assert replies(api, command)[0]["text"] == "Das dürfen leider nur die Admins dieses Bots."
        api.wait_for(lambda: "user 31337 (Ada Newcomer)" in bot.stderr.read_text(), WAIT, "the log line")
    finally:
        assert bot.terminate() == 0
    refused = [line for line in bot.stderr.read_text().splitlines() if "31337" in line]
    assert len(refused) == 1 and "/add refused: user 31337 (Ada Newcomer) is not in [telegram] admins" in refused[0]
    assert "Traceback" not in bot.stderr.read_text()


def _run_once(config: Path, cwd: Path, token: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "ARTICLEBOT_CONFIG")}
    if token is not None:
        env["TELEGRAM_BOT_TOKEN"] = token
    command = [sys.executable, "-m", "bot", "--config", str(config), "run"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=START_TIMEOUT)


BAD_TOKENS = ["1111111111:AAwrongwrongwrongwrongwrongwrong", "12345:secret with spaces/and/slashes"]


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_a_bad_token_fails_in_one_line_without_showing_it(bot, tmp_path, token):
    result = _run_once(bot.config, tmp_path, token)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("articlebot: "), result.stderr
    assert "token" in lines[0] and "Traceback" not in result.stderr
    output = result.stdout + result.stderr
    assert token not in output and token.split(":")[1] not in output


def test_no_token_fails_in_one_line(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    result = _run_once(config, tmp_path, None)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "articlebot: no Telegram bot token: set $TELEGRAM_BOT_TOKEN or [telegram] token "
        "(try 'articlebot chat' without one)"
    ]
