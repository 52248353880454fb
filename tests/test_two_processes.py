"""Two real ``articlebot run`` processes in webhook mode on one PostgreSQL database, as behind a load balancer.

The Bot API emulator plays Telegram's API; the test plays Telegram's webhook deliveries: it takes the
updates people send and POSTs each to one of the two processes (one to both at once, one again later,
as Telegram repeats a delivery it thinks failed). Every update must be answered exactly once, an
article added through one process must be answered from by the other within seconds, and a removal
through one must be seen by the other.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from botapi_server import BotApiServer
from newsroom import FERRY, SOLAR
from util_webhook import HOOK, ROOT, START_TIMEOUT, WAIT, WebhookBot, free_port

from bot.updates import ANSWERED, PROCESSING, RECOVER_EVERY
from index.extract import from_text
from index.kb import KnowledgeBase
from index.settings import IndexSettings

pytestmark = pytest.mark.slow

TOKEN = "6262626262:AAFtwoTwoTwoTwoTwoTwoTwoTwoTwo0002"
ADMIN = BotApiServer.user(4242, "Admin", "de")
CABLE_CAR = (
    "Bergheim eröffnet neue Seilbahn auf den Hohen Kamm\n\n"
    "Die Gemeinde Bergheim hat am Samstag ihre neue Seilbahn auf den Hohen Kamm eröffnet. Die Kabinenbahn "
    "überwindet 640 Höhenmeter und bringt bis zu 1.200 Fahrgäste pro Stunde auf den Gipfel. Gebaut wurde sie "
    "in nur vierzehn Monaten; die alte Sesselbahn aus dem Jahr 1968 wird abgerissen."
)
CABLE_QUESTION = "Wie viele Höhenmeter überwindet die neue Seilbahn in Bergheim?"
QUESTIONS = [
    ("Was kostete der Bau der Möwe II?", "9,2 Millionen Euro"),
    ("How many solar panels will Harbourton fit on school roofs?", "1,240"),
    ("Für wie viele Fahrgäste bietet die Fähre Platz?", "180"),
    ("Who leads the Harbourton solar project?", "Priya Castellane"),
]
_user_ids = iter(range(30_000, 31_000))


@pytest.fixture(scope="module")
def api():
    server = BotApiServer(TOKEN).start()
    yield server
    server.drop_all()
    server.stop()


@pytest.fixture(scope="module")
def dsn(postgres_server, embedder) -> str:
    dsn = postgres_server.create_database()
    settings = IndexSettings(data_dir=str(Path(postgres_server.root) / "unused"))
    settings.storage.engine, settings.storage.dsn = "postgres", dsn
    kb = KnowledgeBase(settings, embedder=embedder)
    for text in (FERRY, SOLAR):
        kb.add(from_text(text))
    kb.close()
    return dsn


@pytest.fixture(scope="module")
def bots(api, dsn, tmp_path_factory, embedder):
    """Two processes, started together (each loads the model), on one database."""
    runtime = f'[embedding]\nruntime = "{embedder.runtime}"\n\n' if hasattr(embedder, "runtime") else ""
    # One config for both, as two systemd instances of one unit would share it: each gets its port from
    # `run --port`, the rest (data dir unused on PostgreSQL, the database, the webhook) is the same.
    home = tmp_path_factory.mktemp("bots")
    config = home / "config.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{home / "data"}"\nengine = "postgres"\ndsn = "{dsn}"\n\n'
        + runtime
        + f'[telegram]\nbase_url = "{api.base_url}"\nadmins = [{ADMIN["id"]}]\nrate_limit_per_minute = 0\n'
        f'webhook_url = "https://bot.example.org{HOOK}"\n',
        encoding="utf-8",
    )
    started = [WebhookBot(api, config, free_port(), home / f"run-{name}.err", TOKEN).start() for name in ("a", "b")]
    try:
        for bot in started:
            bot.wait_ready()
        yield started
    finally:
        for bot in started:
            bot.stop()


def states(dsn: str, update_ids: list[int]) -> list[str | None]:
    with psycopg.connect(dsn) as conn:
        found = dict(conn.execute("SELECT update_id, state FROM updates").fetchall())
    return [found.get(i) for i in update_ids]


def reader(language: str = "de") -> dict:
    return BotApiServer.user(next(_user_ids), "Reader", language)


def say(api: BotApiServer, user: dict, text: str) -> tuple[dict, dict]:
    """Someone writes to the bot; (their message, the update Telegram would deliver)."""
    message = api.send_text(user, api.private_chat(user), text)
    (update,) = api.take_updates()
    return message, update


def texts(api: BotApiServer, message: dict) -> list[str]:
    return [m["text"] for m in api.replies_after(message)]


def test_every_update_is_answered_exactly_once_by_either_process(api, bots, dsn):
    a, b = bots
    asked = [(*say(api, reader(), q), expected) for q, expected in QUESTIONS * 2]
    for n, (_, update, _) in enumerate(asked):
        assert (a, b)[n % 2].post(update) == 200
    both_message, both_update = say(api, reader(), QUESTIONS[0][0])
    codes = []
    posts = [threading.Thread(target=lambda bot=bot: codes.append(bot.post(both_update))) for bot in (a, b)]
    for post in posts:
        post.start()
    for post in posts:
        post.join()
    assert codes == [200, 200], "both processes take the delivery (one of them as a repeat)"
    asked.append((both_message, both_update, QUESTIONS[0][1]))
    ids = [update["update_id"] for _, update, _ in asked]
    api.wait_for(lambda: states(dsn, ids) == [ANSWERED] * len(ids), WAIT, "every update answered")
    with psycopg.connect(dsn) as conn:
        (answerers,) = conn.execute(
            "SELECT count(DISTINCT claimed_by) FROM updates WHERE update_id = ANY(%s)", (ids,)
        ).fetchone()
    assert answerers == 2, "both processes answered some"
    # Telegram repeats a delivery it thinks failed, to the other process: it is recorded already.
    assert b.post(asked[0][1]) == 200 and a.post(asked[1][1]) == 200
    time.sleep(2)
    for message, _, expected in asked:
        got = texts(api, message)
        assert len(got) == 1, f"{message['text']!r} got {len(got)} replies: {got}"
        assert expected in got[0]


def _added(api: BotApiServer, progress_key: tuple[int, int]) -> int | None:
    found = re.match(r"Hinzugefügt: #(\d+) ", api.messages[progress_key]["text"])
    return int(found.group(1)) if found else None


def test_an_article_added_through_one_is_answered_from_by_the_other_and_a_removal_seen(api, bots, dsn):
    a, b = bots
    command, update = say(api, ADMIN, "/add " + CABLE_CAR)
    assert a.post(update) == 200
    (progress,) = api.wait_for(lambda: api.replies_after(command), WAIT, "the progress message")
    key = (ADMIN["id"], progress["message_id"])
    article_id = api.wait_for(lambda: _added(api, key), WAIT, "the article added through process a")
    added_at = time.monotonic()

    # The other process answers from it: asked again until it does, to measure how soon.
    while True:
        question, update = say(api, reader(), CABLE_QUESTION)
        assert b.post(update) == 200
        (answer,) = api.wait_for(lambda q=question: texts(api, q), WAIT, "b's answer")
        if "640" in answer:
            break
        assert time.monotonic() - added_at < 10, f"process b still answers without the new article: {answer!r}"
        time.sleep(0.2)
    print(f"process b answered from the new article {time.monotonic() - added_at:.2f} s after a added it")

    # /remove through b, confirmed by a button press delivered to a.
    command, update = say(api, ADMIN, f"/remove {article_id}")
    assert b.post(update) == 200
    (confirm,) = api.wait_for(lambda: api.replies_after(command), WAIT, "the confirmation")
    remove = next(
        button["callback_data"]
        for row in confirm["reply_markup"]["inline_keyboard"]
        for button in row
        if button["text"] == "🗑 Entfernen"
    )
    api.press(ADMIN, confirm, remove)
    (press,) = api.take_updates()
    assert a.post(press) == 200
    key = (ADMIN["id"], confirm["message_id"])
    api.wait_for(lambda: api.messages[key]["text"].startswith(f"Entfernt: #{article_id}"), WAIT, "the removal")
    removed_at = time.monotonic()
    for bot in (b, a):
        question, update = say(api, reader(), CABLE_QUESTION)
        assert bot.post(update) == 200
        (answer,) = api.wait_for(lambda q=question: texts(api, q), WAIT, "an answer after the removal")
        assert "640" not in answer, f"the removed article still answers: {answer!r}"
    assert time.monotonic() - removed_at < 30


def test_long_polling_is_refused_while_webhook_processes_run(bots, tmp_path):
    a, b = bots
    config = tmp_path / "polling.toml"
    webhook = re.compile(r"^(webhook_url|port) = .*\n", re.M)
    config.write_text(webhook.sub("", a.config.read_text(encoding="utf-8")), encoding="utf-8")
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), "run"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=START_TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("articlebot: bot processes already run on ") and "Telegram gives updates to one" in line
    for bot in (a, b):
        assert f"articlebot pid {bot.proc.pid} on " in line
    assert line.count("(webhook)") == 2 and "webhook_url" in line
    assert a.proc.poll() is None and b.proc.poll() is None


def test_the_other_process_takes_over_what_a_killed_one_was_answering(api, bots, dsn):
    """Last in the module: process a is SIGKILLed while its answer is in flight and stays down."""
    a, b = bots
    user = reader("en")
    api.hold("sendMessage", lambda params: params.get("chat_id") == user["id"])
    question, update = say(api, user, QUESTIONS[3][0])
    assert a.post(update) == 200
    api.wait_for(lambda: api.waiting("sendMessage"), WAIT, "a's answer in flight")
    assert states(dsn, [update["update_id"]]) == [PROCESSING]
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(30)
    api.drop_all()  # the reply a was sending never reached Telegram
    killed_at = time.monotonic()
    (answer,) = api.wait_for(lambda: texts(api, question), RECOVER_EVERY + WAIT, "b to take the update over")
    print(f"process b answered the killed process's update {time.monotonic() - killed_at:.1f} s after the kill")
    assert QUESTIONS[3][1] in answer
    api.wait_for(lambda: states(dsn, [update["update_id"]]) == [ANSWERED], WAIT, "the update answered")
    time.sleep(1)
    assert len(texts(api, question)) == 1
