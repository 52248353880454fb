"""Feeds through the real bot and our Bot API server: /subscribe, /feeds, /unsubscribe, the timed poll."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from botapi_server import BotApiServer
from test_telegram import TOKEN, WAIT, BotThread, ask, finished, reply_to
from util_feeds import publish, rss2, serve_stories, story
from util_pages import Page, Site

from bot.answer import Answerer
from bot.config import AnswerSettings, TelegramSettings
from bot.conversation import Conversation
from bot.feedback import FeedbackStore
from bot.telegram_app import protect_token
from index.feeds import Feeds
from index.kb import KnowledgeBase
from index.settings import FetchSettings, IndexSettings

ADMIN = BotApiServer.user(1101, "Ada", "de")
READER = BotApiServer.user(2202, "Rita", "en")
FETCH = FetchSettings(allow_private_addresses=True, timeout=10)


class ShiftedClock:
    """Real time plus an offset a test can push forward (a day of failures in a second)."""

    def __init__(self):
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine_name(request) -> str:
    """The whole module runs once per storage engine, each time with a Telegram and a site of its own."""
    return request.param


@pytest.fixture(scope="module")
def api(engine_name):
    server = BotApiServer(TOKEN).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site(engine_name):
    s = Site()
    yield s
    s.close()


@pytest.fixture(scope="module")
def clock(engine_name):
    return ShiftedClock()


@pytest.fixture(scope="module")
def feed_kb(request, engine_name, tmp_path_factory, embedder):
    settings = IndexSettings(data_dir=str(tmp_path_factory.mktemp("telegram_feeds")), fetch=FETCH)
    if engine_name == "postgres":
        settings.storage.engine = "postgres"
        settings.storage.dsn = request.getfixturevalue("postgres_server").create_database()
    kb = KnowledgeBase(settings, embedder=embedder)
    yield kb
    kb.close()


@pytest.fixture(scope="module")
def bot(api, feed_kb, clock):
    protect_token(TOKEN)
    settings = TelegramSettings(base_url=api.base_url, admins=[ADMIN["id"]], poll_timeout=1.0)
    feedback = FeedbackStore(feed_kb.answer_log())
    feeds = Feeds(feed_kb, clock=clock)
    conversation = Conversation(
        feed_kb,
        Answerer(feed_kb, AnswerSettings()),
        feedback,
        settings,
        FETCH,
        feeds=feeds,
        feed_interval_minutes=0.02,  # a poll every 1.2 s
    )
    runner = BotThread(settings, conversation).start(api)
    yield runner
    runner.stop()
    feeds.close()
    feedback.close()


def test_feed_commands_are_for_admins_only(api, bot, feed_kb, site):
    url = publish(site, "/refused", rss2(serve_stories(site, [50], prefix="/refused/")))
    for command in (f"/subscribe {url}", "/feeds", "/unsubscribe 1"):
        _, reply = ask(api, READER, command)
        assert reply["text"] == "Sorry, only this bot's admins can do that."
    assert bot.conversation.feeds.list() == []
    assert feed_kb.counts()["articles"] == 0


def test_subscribe_list_and_timed_polls(api, bot, feed_kb, site):
    entries = serve_stories(site, [1, 2])
    url = publish(site, "/feed", rss2(entries))
    question, _ = ask(api, ADMIN, f"/subscribe {url}")
    done = reply_to(api, question, finished("Abonniert"))
    assert done["text"].startswith(f"Abonniert: Feed #1 ({url}).")
    api.wait_for(lambda: feed_kb.counts()["articles"] == 2, WAIT, "the feed's two articles")

    # A new item appears: the timed poll adds it, no command needed.
    entries += serve_stories(site, [3])
    publish(site, "/feed", rss2(entries))
    api.wait_for(lambda: feed_kb.counts()["articles"] == 3, WAIT, "the timed poll")
    assert {a.added_by for a in feed_kb.articles()} == {"feed:1"}

    _, listing = ask(api, ADMIN, "/feeds")
    assert listing["text"].startswith("Feeds (1):\n\n#1 Lindenfurter Nachrichten")
    assert f'<a href="{url}">Lindenfurter Nachrichten</a>' in listing["html"]
    assert "Artikel hinzugefügt: 3" in listing["text"] and "zuletzt erfolgreich: 20" in listing["text"]

    _, again = ask(api, ADMIN, f"/subscribe {url}?utm_source=tg")
    assert again["text"] == "Nicht abonniert: Schon abonniert als Feed #1."
    _, usage = ask(api, ADMIN, "/subscribe")
    assert usage["text"] == "Bitte den Link des Feeds angeben: /subscribe <Link>"


def test_subscribing_to_what_is_no_feed_is_refused_in_one_line(api, bot, site):
    before = bot.conversation.feeds.list()
    missing = site.url + "/nothing.xml"
    _, refused = ask(api, ADMIN, f"/subscribe {missing}")
    assert refused["text"] == "Nicht abonniert: Die Seite antwortete mit dem Fehler HTTP 404."

    site.pages["/home"] = Page(
        b'<html><head><link rel="alternate" type="application/rss+xml" href="/feed"></head><body>Start</body></html>'
    )
    _, page = ask(api, ADMIN, f"/subscribe {site.url}/home")
    assert page["text"] == (
        f"Nicht abonniert: {site.url}/home ist kein RSS- oder Atom-Feed, sondern eine HTML-Seite. "
        f"Sie nennt ihren Feed: /subscribe {site.url}/feed"
    )
    assert bot.conversation.feeds.list() == before


def test_a_feed_failing_for_a_day_is_reported_to_the_admins_once(api, bot, site, clock):
    url = publish(site, "/gone.xml", rss2([]))
    question, _ = ask(api, ADMIN, f"/subscribe {url}")
    done = reply_to(api, question, finished("Abonniert"))
    feed_id = int(done["text"].split("#")[1].split()[0])
    del site.pages["/gone.xml"]  # gone after subscribing: the timed polls fail from now on
    feeds = bot.conversation.feeds
    api.wait_for(lambda: feeds.get(feed_id).failing_since, WAIT, "the first failed poll")

    def alerts() -> list[dict]:
        return [m for m in api.bot_messages(ADMIN["id"]) if m["text"].startswith(f"Feed #{feed_id} (")]

    clock.offset += timedelta(days=2)  # the back-off is over and the feed has failed for a day
    first = api.wait_for(alerts, WAIT, "the alert")
    assert first[0]["text"].startswith(f"Feed #{feed_id} ({url}) has been failing since ")
    assert "HTTP 404" in first[0]["text"]
    for _ in range(3):  # further failed polls over the next days: no second message
        clock.offset += timedelta(days=1, minutes=1)
        polls = site.hits.get("/gone.xml", 0)
        api.wait_for(lambda polls=polls: site.hits.get("/gone.xml", 0) > polls, WAIT, "another poll")
    assert len(alerts()) == 1

    _, listing = ask(api, ADMIN, "/feeds")
    assert "letzter Fehler:" in listing["text"] and "HTTP 404" in listing["text"]
    _, gone = ask(api, ADMIN, f"/unsubscribe {feed_id}")
    assert gone["text"] == f"Abbestellt: Feed #{feed_id} ({url}). Seine Artikel bleiben."
    _, missing = ask(api, ADMIN, f"/unsubscribe {feed_id}")
    assert missing["text"] == f"Es gibt keinen Feed #{feed_id}."
    _, usage = ask(api, ADMIN, "/unsubscribe")
    assert usage["text"] == "Bitte die Nummer des Feeds angeben: /unsubscribe <id>"


def test_update_through_the_bot(api, bot, feed_kb, site):
    (article,) = [a for a in feed_kb.articles() if a.url == site.url + "/news/1"]
    _, refused = ask(api, READER, f"/update {article.id}")
    assert refused["text"] == "Sorry, only this bot's admins can do that."
    question, _ = ask(api, ADMIN, f"/update {article.id}")
    assert reply_to(api, question, finished("Unverändert"))["text"] == f"Unverändert: #{article.id} „{article.title}“."

    site.html("/news/1", "Projekt 1", story(1, version=5))
    question, _ = ask(api, ADMIN, f"/update {article.id}")
    done = reply_to(api, question, finished("Aktualisiert"))
    assert done["text"].startswith(f"Aktualisiert: #{article.id} „{article.title}“ (")
    assert "Stand 5" in feed_kb.article(article.id).text


def test_questions_are_answered_while_a_slow_feed_is_polled(api, bot, feed_kb, site):
    """The timed poll works in the admin lane: a question asked meanwhile does not wait for it."""
    before = feed_kb.counts()["articles"]
    site.delay = 3.0  # every article page takes 3 s
    try:
        bot.conversation.feeds.add(publish(site, "/slow.xml", rss2(serve_stories(site, [20, 21], prefix="/slow/"))))
        api.wait_for(lambda: site.hits.get("/slow/20", 0) + site.hits.get("/slow/21", 0) >= 1, WAIT, "the slow poll")
        started = time.monotonic()
        _, answer = ask(api, READER, "How much does project 2 in Lindenfurt cost?")
        assert time.monotonic() - started < 3.0 and answer["text"]
        assert feed_kb.counts()["articles"] < before + 2, "the poll should still be running"
    finally:
        site.delay = 0.0
    api.wait_for(lambda: feed_kb.counts()["articles"] == before + 2, WAIT, "the slow feed's articles")
