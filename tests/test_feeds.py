"""Feeds: one poll adds new items like /add <url>; dedup, backfill, 304, back-off, refreshes, kills.

On both engines: ``kb_net`` here is a knowledge base on SQLite and on PostgreSQL (``engine_settings``).
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from util_cli import CLI
from util_feeds import Entry, atom, publish, rss1, rss2, serve_stories, story
from util_kb import ZERO_INTEGRITY, article_problems, index_problems
from util_pages import FETCH, Page, Site

from bot.cli import format_poll
from bot.config import TelegramSettings
from bot.conversation import Conversation, Incoming, User, poll_summary
from bot.texts import reason_text
from index.engines import SQLiteEngine
from index.feeds import FeedError, Feeds, FeedsBusy, parse_feed
from index.fetch import fetch_document
from index.kb import DB_FILE, KnowledgeBase
from index.settings import IndexSettings


class Clock:
    def __init__(self):
        self.now = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def kb_net(engine_settings, embedder):
    """A knowledge base on each engine that may fetch from the loopback site."""
    engine_settings.fetch = FETCH
    knowledge_base = KnowledgeBase(engine_settings, embedder=embedder)
    yield knowledge_base
    knowledge_base.close()


@pytest.fixture
def feeds(kb_net, clock):
    f = Feeds(kb_net, backfill=20, clock=clock)
    yield f
    f.close()


@pytest.mark.parametrize("kind, render", [("rss", rss2), ("atom", atom), ("rdf", rss1)])
def test_each_feed_format_adds_its_items_as_articles(feeds, kb_net, site, kind, render):
    entries = serve_stories(site, [1, 2, 3])
    feed = feeds.add(publish(site, "/feed", render(entries), kind))

    result = feeds.poll(feed.id)
    assert result.status == "ok" and len(result.added) == 3 and not result.item_errors
    articles = sorted(kb_net.articles(), key=lambda a: a.id)
    assert [a.title for a in articles] == [
        "Projekt 1 in Lindenfurt",
        "Projekt 2 in Lindenfurt",
        "Projekt 3 in Lindenfurt",
    ]
    assert [a.published for a in articles] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert all("Lindenfurt plant Projekt" in a.text and a.added_by == f"feed:{feed.id}" for a in articles)
    assert kb_net.search("Projekt 2 Radweg Gemeinderat", k=1)[0].article_id == articles[1].id

    again = feeds.poll(feed.id)
    assert (again.added, again.duplicates) == ([], 0)
    assert kb_net.counts()["articles"] == 3
    (listed,) = feeds.list()
    assert listed.items_added == 3 and listed.last_success and listed.last_error is None
    assert listed.title.startswith("Lindenfurter Nachrichten")


def test_duplicates_by_guid_url_without_tracking_and_text(feeds, kb_net, site):
    entries = serve_stories(site, [1, 2])
    manual = kb_net.add(fetch_document(entries[0].link, FETCH)).article_id  # added by hand before
    # The same story under a second address (same text), and the first one with tracking parameters.
    copy = site.html("/copy/2", "Projekt 2", story(2))
    other = [
        Entry("other:1", "Projekt 1", entries[0].link + "?utm_source=rss&fbclid=abc", "x", "2026-03-10"),
        Entry("other:2", "Projekt 2 (Kopie)", copy, "y", "2026-03-11"),
    ]
    first = feeds.add(publish(site, "/a", rss2(entries)))
    second = feeds.add(publish(site, "/b", rss2(other)))

    a = feeds.poll(first.id)
    assert (len(a.added), a.duplicates) == (1, 1)  # story 1 was there already
    b = feeds.poll(second.id)
    assert (b.added, b.duplicates) == ([], 2)
    assert kb_net.counts()["articles"] == 2
    assert site.hits.get("/news/1", 0) == 1  # the known link was not fetched again for feed b
    assert {f.id: f.items_added for f in feeds.list()} == {first.id: 1, second.id: 0}
    assert manual in {a.id for a in kb_net.articles()}


def test_first_poll_takes_only_the_backfill_of_500_items(kb_net, site, clock):
    feeds = Feeds(kb_net, backfill=3, clock=clock)
    try:
        entries = [
            Entry(
                f"urn:big:{n}",
                f"Meldung {n}",
                f"{site.url}/big/{n}",
                f"Meldung {n}",
                f"2026-0{1 + n % 3}-{1 + n % 28:02d}",
            )
            for n in range(500)
        ]
        newest = sorted(range(500), key=lambda n: (1 + n % 3, 1 + n % 28, -n), reverse=True)[:3]
        for n in newest:
            site.html(f"/big/{n}", f"Meldung {n}", story(n))
        feed = feeds.add(publish(site, "/big.xml", rss2(entries)))
        result = feeds.poll(feed.id)
        assert (len(result.added), result.skipped, result.item_errors) == (3, 497, [])
        assert sum(site.hits.get(f"/big/{n}", 0) for n in range(500)) == 3  # only the newest were fetched
        assert feeds.poll(feed.id).added == []
        # A new item on top of the 500: the next poll takes exactly that one.
        entries.insert(
            0, Entry("urn:big:new", "Meldung neu", site.html("/big/new", "Meldung neu", story(600)), "n", "2026-04-01")
        )
        publish(site, "/big.xml", rss2(entries))
        again = feeds.poll(feed.id)
        assert (len(again.added), again.skipped) == (1, 0)
        assert kb_net.counts()["articles"] == 4
    finally:
        feeds.close()


def test_unchanged_feed_costs_one_request_answered_304(feeds, site):
    entries = serve_stories(site, [1])
    url = publish(site, "/feed", rss2(entries), etag='"v1"', last_modified="Mon, 30 Mar 2026 08:00:00 GMT")
    feed = feeds.add(url)
    assert len(feeds.poll(feed.id).added) == 1
    before = dict(site.hits)
    result = feeds.poll(feed.id)
    assert result.status == "not modified"
    assert site.hits["/feed"] == before["/feed"] + 1 and sum(site.hits.values()) == sum(before.values()) + 1
    assert feeds.get(feed.id).etag == '"v1"'


def test_malformed_feed_is_read_leniently_and_garbage_is_refused(feeds, kb_net, site):
    serve_stories(site, [4])
    broken = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Kaputt & Co</title>'
        f"<item><title>Projekt 4</title><link>{site.url}/news/4</link><guid>g4</guid></item>"
        "<item><title>abgeschnitten"
    )
    feed = feeds.add(publish(site, "/broken", broken))
    result = feeds.poll(feed.id)
    assert result.status == "ok" and len(result.added) == 1

    # A feed that turns into garbage after subscribing (subscribing to garbage is refused: see below).
    bad = feeds.add(publish(site, "/garbage", rss2([])))
    assert feeds.poll(bad.id).status == "ok"  # (the first poll reads the response the subscription checked)
    site.pages["/garbage"] = Page(b"Dies ist kein Feed, sondern einfach Text.", "text/plain")
    failed = feeds.poll(bad.id)
    assert failed.status == "failed" and "is not an RSS or Atom feed" in failed.error
    assert feeds.get(bad.id).last_error == failed.error
    assert kb_net.counts()["articles"] == 1


def test_relative_item_links_resolve_against_the_feed(feeds, kb_net, site):
    serve_stories(site, [9])
    document = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Relativ</title>'
        '<entry><id>urn:rel:9</id><title>Projekt 9</title><link href="/news/9"/>'
        "<updated>2026-03-09T08:00:00Z</updated></entry></feed>"
    )
    feed = feeds.add(publish(site, "/feeds/relative.xml", document, "atom"))
    (article_id,) = feeds.poll(feed.id).added
    assert kb_net.article(article_id).url == site.url + "/news/9"
    assert kb_net.article(article_id).published == "2026-03-09"


def test_failing_feed_backs_off_and_alerts_the_admins_once_after_a_day(feeds, site, clock):
    feed = feeds.add(publish(site, "/missing", rss2([])))
    assert feeds.poll(feed.id).status == "ok"  # the first poll reads the response the subscription checked
    del site.pages["/missing"]  # gone after subscribing
    results = [feeds.poll(feed.id)]
    stored = feeds.get(feed.id)
    assert results[0].status == "failed" and "HTTP 404" in results[0].error and not results[0].alert
    assert stored.failures == 1 and stored.next_try == (clock.now + timedelta(minutes=5)).isoformat()
    assert feeds.due() == []
    clock.advance(minutes=6)
    assert [f.id for f in feeds.due()] == [feed.id]
    results.append(feeds.poll(feed.id))
    assert feeds.get(feed.id).next_try == (clock.now + timedelta(minutes=10)).isoformat()
    for _ in range(12):  # polls keep failing for more than a day: one alert, not one per poll
        clock.advance(hours=3)
        results.append(feeds.poll(feed.id))
    assert [r.alert for r in results].count(True) == 1
    assert feeds.get(feed.id).next_try <= (clock.now + timedelta(days=1)).isoformat()

    publish(site, "/missing", rss2(serve_stories(site, [5])))
    clock.advance(days=1)
    assert feeds.poll(feed.id).status == "ok"
    healthy = feeds.get(feed.id)
    assert (healthy.failures, healthy.last_error, healthy.next_try, healthy.notified) == (0, None, None, False)


def test_two_pollers_seeing_one_failure_at_once_alert_the_admins_once(feeds, kb_net, site, clock):
    """Two processes (or the timed job and an admin's poll) that read the feed before either wrote."""
    feed = feeds.add(publish(site, "/down", rss2([])))
    assert feeds.poll(feed.id).status == "ok"  # the first poll reads the response the subscription checked
    site.pages["/down"] = Page(b"down for maintenance", status="503 Service Unavailable")
    assert not feeds.poll(feed.id).alert
    clock.advance(days=2)
    site.delay = 0.5  # both read the feed's record, then both wait for the failing server
    other = Feeds(kb_net, backfill=20, clock=clock)
    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda poller: poller.poll(feed.id), [feeds, other]))
    finally:
        other.close()
    assert [r.status for r in results] == ["failed", "failed"]
    assert [r.alert for r in results].count(True) == 1
    assert feeds.get(feed.id).notified and feeds.get(feed.id).failures == 3


def test_changed_entry_refreshes_its_article_and_broken_item_pages_are_retried(feeds, kb_net, site):
    entries = serve_stories(site, [6, 7])
    entries.append(Entry("urn:broken", "Kaputt", site.url + "/nowhere", "", "2026-03-20"))
    feed = feeds.add(publish(site, "/feed", atom(entries), "atom"))
    first = feeds.poll(feed.id)
    assert len(first.added) == 2 and len(first.item_errors) == 1
    article_id = first.added[0]

    site.html("/news/6", "Projekt 6", story(6, version=2))
    entries[0].updated = "2026-03-29T10:00:00Z"
    publish(site, "/feed", atom(entries), "atom")
    second = feeds.poll(feed.id)
    assert second.refreshed == [article_id] and second.added == []
    assert "Stand 2" in kb_net.article(article_id).text
    assert kb_net.counts()["articles"] == 2
    for _ in range(3):
        feeds.poll(feed.id)
    assert site.hits["/nowhere"] == 3  # tried on three polls, then left alone


def test_one_process_polls_the_feeds_at_a_time(feeds, kb_net, site):
    feed = feeds.add(publish(site, "/feed", rss2(serve_stories(site, [1]))))
    subscribed = dict(site.hits)  # the subscription's one look at the feed
    other = kb_net.engine.portable_sql()  # as another process (a second bot, a cron job) holds it
    try:
        with other.hold("feed polling") as ours:
            assert ours
            with pytest.raises(FeedsBusy, match="another process is polling the feeds"):
                feeds.poll_due()
            assert site.hits == subscribed and kb_net.counts()["articles"] == 0
            with other.hold("something else") as theirs:
                assert theirs, "holds of other names are independent"
    finally:
        other.close()
    assert [(r.feed_id, len(r.added)) for r in feeds.poll_due()] == [(feed.id, 1)]


def test_feed_subscriptions_refuse_bad_input(feeds, site):
    with pytest.raises(FeedError, match="not an http"):
        feeds.add("ftp://example.org/feed")
    publish(site, "/feed.xml", rss2([]))
    feed = feeds.add(f"http://localhost:{site.server.port}/feed.xml?utm_source=x")
    hits = dict(site.hits)
    with pytest.raises(FeedError, match=f"already subscribed as feed #{feed.id}"):
        feeds.add(f"http://LOCALHOST:{site.server.port}/feed.xml")
    assert site.hits == hits  # known without asking the feed's server again
    with pytest.raises(FeedError, match="no feed with id 99"):
        feeds.remove(99)
    assert [f.id for f in feeds.list()] == [feed.id]
    feeds.remove(feed.id)  # the newest feed's id is not given to the next one (its items may linger)
    assert feeds.add(publish(site, "/other.xml", rss2([]))).id == feed.id + 1


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HOME_PAGE = "<!doctype html><html><head><title>Lindenfurter Nachrichten</title>{link}</head><body>Start</body></html>"


@pytest.mark.parametrize(
    "case, page, message",
    [
        ("missing", None, "{url} answered HTTP 404 Not Found"),
        (
            "html",
            Page(HOME_PAGE.format(link="").encode()),
            "{url} is not an RSS or Atom feed (it looks like an HTML page)",
        ),
        (
            "html naming its feed",
            Page(
                HOME_PAGE.format(
                    link='<link rel="alternate" type="application/atom+xml" href="/feeds/all.atom">'
                ).encode()
            ),
            "{url} is not an RSS or Atom feed (it looks like an HTML page); "
            "the page names its feed: subscribe to {site}/feeds/all.atom",
        ),
        ("json", Page(b'{"items": []}', "application/json"), "{url} is application/json, not a feed"),
    ],
)
def test_subscribing_refuses_what_is_not_a_feed_and_stores_nothing(feeds, kb_net, site, case, page, message):
    url = site.url + "/start"
    if page is not None:
        site.pages["/start"] = page
    with pytest.raises(FeedError) as refused:
        feeds.add(url)
    assert str(refused.value) == message.format(url=url, site=site.url)
    assert site.hits["/start"] == 1 and feeds.list() == []
    assert kb_net.counts()["articles"] == 0


def test_subscribing_to_an_unreachable_server_is_refused(feeds):
    url = f"http://127.0.0.1:{_closed_port()}/feed.xml"
    with pytest.raises(FeedError, match=f"^cannot fetch {url}: ConnectionRefusedError"):
        feeds.add(url)
    assert feeds.list() == []


@pytest.mark.parametrize("kind, render", [("rss", rss2), ("atom", atom)])
def test_subscribing_reads_the_feed_once_and_leaves_its_items_to_the_first_poll(feeds, kb_net, site, kind, render):
    url = publish(site, "/feed", render(serve_stories(site, [1, 2, 3])), kind, etag='"v1"')
    feed = feeds.add(url)
    assert site.hits == {"/feed": 1}  # the feed itself, none of its articles
    assert kb_net.counts()["articles"] == 0 and feed.last_success is None and feed.etag is None
    # The first poll imports each item once from that same response (the bot's /subscribe polls at
    # once): the feed's server is not asked again, and its ETag is stored only now.
    first = feeds.poll(feed.id)
    assert first.status == "ok" and len(first.added) == 3
    assert site.hits["/feed"] == 1
    assert feeds.poll(feed.id).status == "not modified" and site.hits["/feed"] == 2
    assert kb_net.counts()["articles"] == 3 and feeds.get(feed.id).items_added == 3


def test_a_first_poll_in_another_process_fetches_the_feed_itself(feeds, kb_net, site, clock):
    url = publish(site, "/feed", rss2(serve_stories(site, [1, 2])), etag='"v1"')
    feed = feeds.add(url)  # `articlebot feeds add`; the poll comes later, from cron or the bot
    other = Feeds(kb_net, backfill=20, clock=clock)
    try:
        # The check's ETag was not kept: the first poll gets the feed, not a 304, and imports its items.
        first = other.poll(feed.id)
        assert first.status == "ok" and len(first.added) == 2 and site.hits["/feed"] == 2
    finally:
        other.close()


def test_feeds_cli(monkeypatch, capsys, embedder, tmp_path, site):
    path = tmp_path / "config.toml"
    path.write_text("[fetch]\nallow_private_addresses = true\ntimeout = 5.0\n\n[feeds]\nbackfill = 2\n")
    config = str(path)
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    try:
        fresh = cli("feeds", "list", config=config)  # nothing there yet: maybe a mistyped data dir
        assert fresh.code == 1 and fresh.err.startswith("articlebot: no knowledge base in ")
        url = publish(site, "/feed", rss2(serve_stories(site, [1, 2, 3])))
        added = cli("feeds", "add", url, config=config)
        assert added.code == 0 and added.out.startswith("subscribed feed #1: ")
        again = cli("feeds", "add", url, config=config)
        assert (again.code, again.err.strip()) == (1, "articlebot: already subscribed as feed #1")
        other = SQLiteEngine(tmp_path / "data").portable_sql()  # a running bot's poll, say
        try:
            with other.hold("feed polling"):
                busy = cli("feeds", "poll", config=config)
        finally:
            other.close()
        assert (busy.code, busy.out) == (0, "another process is polling the feeds right now: nothing to do here\n")
        polled = cli("feeds", "poll", config=config)
        assert polled.code == 0, polled.err
        assert polled.out.strip() == (
            "feed #1 Lindenfurter Nachrichten: 2 added, 0 refreshed, 0 already present, 1 older ones left out"
        )
        (row,) = [json.loads(line) for line in cli("feeds", "list", "--json", config=config).out.splitlines()]
        assert row["items_added"] == 2 and row["last_error"] is None and row["last_success"]
        assert "2 items added" in cli("feeds", "list", config=config).out

        bad = cli("feeds", "add", "file:///etc/passwd", config=config)
        assert bad.code == 1 and "not an http(s) feed URL" in bad.err
        for argv, message in [
            (("feeds", "remove", "x"), "not a feed id"),
            (("feeds", "remove", "²"), "not a feed id"),  # a digit to str.isdigit, not to int()
            (("feeds", "remove", "9"), "no feed with id 9"),
            (("feeds", "remove", "9" * 40), "not a feed id"),  # beyond any SQLite integer
        ]:
            result = cli(*argv, config=config)
            assert result.code == 1 and message in result.err and len(result.err.strip().splitlines()) == 1
        removed = cli("feeds", "remove", "1", config=config)
        assert removed.out.strip() == f"unsubscribed feed #1: {url} (its articles stay)"
        assert cli.counts()["articles"] == 2
        assert cli("feeds", "poll", config=config).out.startswith("no feed is due")
    finally:
        cli.close()


def test_feeds_cli_add_refuses_a_link_that_is_no_feed_in_one_line(monkeypatch, capsys, embedder, tmp_path, site):
    loopback = tmp_path / "loopback.toml"
    loopback.write_text("[fetch]\nallow_private_addresses = true\ntimeout = 5.0\n")
    default = tmp_path / "default.toml"  # private addresses refused, as in a deployment
    default.write_text("[fetch]\ntimeout = 5.0\n")
    site.pages["/"] = Page(
        HOME_PAGE.format(link='<link rel="alternate" type="application/rss+xml" href="rss">').encode()
    )
    feed = publish(site, "/rss", rss2([]))
    unreachable = f"http://127.0.0.1:{_closed_port()}/feed.xml"
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    try:
        for url, config, message in [
            (site.url + "/feed.xml", loopback, f"{site.url}/feed.xml answered HTTP 404 Not Found"),
            (
                site.url + "/",
                loopback,
                f"{site.url}/ is not an RSS or Atom feed (it looks like an HTML page); "
                f"the page names its feed: subscribe to {feed}",
            ),
            (unreachable, loopback, f"cannot fetch {unreachable}: ConnectionRefusedError"),
            (feed, default, "refusing to fetch 127.0.0.1: it resolves to a non-public address (127.0.0.1)"),
        ]:
            refused = cli("feeds", "add", url, config=str(config))
            assert (refused.code, refused.out) == (1, ""), url
            assert refused.err.startswith(f"articlebot: {message}") and len(refused.err.splitlines()) == 1
        assert cli("feeds", "list", config=str(loopback)).out.startswith("no feeds yet")
        added = cli("feeds", "add", feed, config=str(loopback))
        assert (added.code, added.out) == (
            0,
            f"subscribed feed #1: {feed} (polled by 'articlebot feeds poll' or the running bot)\n",
        )
    finally:
        cli.close()


def _articles(settings: IndexSettings) -> list[tuple[int, str]]:
    """(id, url) of every article, read from outside the process that adds them."""
    if settings.storage.engine == "postgres":
        with psycopg.connect(settings.storage.dsn) as conn:
            if conn.execute("SELECT to_regclass('articles')").fetchone()[0] is None:
                return []
            return conn.execute("SELECT id, url FROM articles ORDER BY id").fetchall()
    db = Path(settings.data_dir) / DB_FILE
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT id, url FROM articles ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def test_poll_killed_mid_way_loses_and_duplicates_nothing(tmp_path, embedder, engine_settings):
    """A real ``articlebot feeds poll`` process, SIGKILLed after its second article, then run again."""
    site = Site(delay=0.4)
    try:
        entries = serve_stories(site, range(1, 9))
        url = publish(site, "/feed", rss2(entries), etag='"e1"')
        config = tmp_path / "config.toml"
        storage = engine_settings.storage
        config.write_text(
            f'[storage]\nengine = "{storage.engine}"\ndsn = "{storage.dsn}"\n\n'
            "[fetch]\nallow_private_addresses = true\ntimeout = 10.0\n"
        )
        data = Path(engine_settings.data_dir)
        script = Path(sys.executable).with_name("articlebot")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "bot"]
        base = [*command, "--config", str(config), "--data-dir", str(data)]
        subprocess.run([*base, "feeds", "add", url], check=True, capture_output=True, cwd=tmp_path)

        proc = subprocess.Popen([*base, "feeds", "poll"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
        deadline = time.monotonic() + 120
        while len(_articles(engine_settings)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        killed_with = len(_articles(engine_settings))
        assert proc.returncode == -signal.SIGKILL and 2 <= killed_with < 8

        done = subprocess.run([*base, "feeds", "poll"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
        articles = _articles(engine_settings)
        assert sorted(u for _, u in articles) == sorted(e.link for e in entries)  # each item once
        engine_settings.fetch = FETCH
        kb = KnowledgeBase(engine_settings, embedder=embedder)
        feeds = Feeds(kb)
        sql = kb.engine.portable_sql()
        try:
            assert kb.store.integrity() == ZERO_INTEGRITY
            assert not article_problems(kb) and not index_problems(kb)
            (feed,) = feeds.list()
            assert feed.items_added == 8 and feed.etag == '"e1"'
            statuses = sql.query("SELECT status, count(*) FROM feed_items GROUP BY status")
            assert [tuple(r) for r in statuses] == [("added", 8)]
        finally:
            sql.close()
            feeds.close()
            kb.close()
    finally:
        site.close()


def test_item_dates_are_the_days_the_feed_wrote_and_none_is_invented(feeds, kb_net, site):
    """An item's date is the day in the feed's own time zone (as a page's metadata date is), not in UTC."""
    for n in (1, 2, 3, 4, 5):
        site.html(f"/news/{n}", f"Projekt {n}", story(n))
    dates = {
        1: "<pubDate>Mon, 30 Mar 2026 23:30:00 -0500</pubDate>",  # 04:30 on the 31st in UTC
        2: "<pubDate>2026-03-31T00:30:00+02:00</pubDate>",  # 22:30 on the 30th in UTC
        3: "<pubDate>Tue, 31 Mar 2026 10:00:00 GMT</pubDate>",
        4: "",  # no date at all
        5: "<pubDate>Di, 31 Mär 2026 10:00:00 MESZ</pubDate>",  # unreadable: no date rather than a guess
    }
    items = "".join(
        f"<item><title>Projekt {n}</title><link>{site.url}/news/{n}</link><guid>d{n}</guid>{date}</item>"
        for n, date in dates.items()
    )
    document = f'<?xml version="1.0"?><rss version="2.0"><channel><title>Daten</title>{items}</channel></rss>'
    feed = feeds.add(publish(site, "/dates.xml", document))
    assert len(feeds.poll(feed.id).added) == 5
    published = {a.url.rsplit("/", 1)[1]: a.published for a in kb_net.articles()}
    assert published == {"1": "2026-03-30", "2": "2026-03-31", "3": "2026-03-31", "4": None, "5": None}


TEASER = (
    "<html><head><title>Projekt {n}</title></head><body><article><h1>Projekt {n}</h1>"
    "<p>Die Stadt Lindenfurt plant ein großes Vorhaben am Nordufer.</p><p>{end}</p></article></body></html>"
)


def test_a_teaser_or_paywall_page_takes_the_text_the_feed_carries(feeds, kb_net, site):
    """The page says less than the feed (a paywall, a teaser): the item's full text is added under its link."""
    site.pages["/news/1"] = Page(TEASER.format(n=1, end="Jetzt abonnieren und weiterlesen!").encode())
    site.pages["/news/2"] = Page(TEASER.format(n=2, end="Mehr morgen.").encode())
    site.pages["/news/3"] = Page(TEASER.format(n=3, end="Jetzt abonnieren und weiterlesen!").encode())
    full = {n: " ".join(story(n)) for n in (1, 2, 4)}
    items = "".join(
        f"<item><title>Projekt {n}</title><link>{site.url}/news/{n}</link><guid>t{n}</guid>"
        f"<description>{description}</description></item>"
        for n, description in [
            (1, "Kurz gefasst."),  # the whole text is in content:encoded
            (2, full[2]),
            (3, "Nur ein Anreißer."),  # the feed says no more than the page: nothing to add
            (4, full[4]),  # its page is gone: tried again later, not added from the feed
        ]
    )
    items = items.replace(
        "Kurz gefasst.</description>",
        f"Kurz gefasst.</description><content:encoded>&lt;p&gt;{full[1]}&lt;/p&gt;</content:encoded>",
    )
    document = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Voll</title>'
        f"{items}</channel></rss>"
    )
    feed = feeds.add(publish(site, "/full.xml", document))
    result = feeds.poll(feed.id)
    assert len(result.added) == 2
    errors = dict(e.split(": ", 1) for e in result.item_errors)
    assert set(errors) == {f"{site.url}/news/3", f"{site.url}/news/4"}
    assert "paywall" in errors[f"{site.url}/news/3"] and "HTTP 404" in errors[f"{site.url}/news/4"]
    by_url = {a.url: a for a in kb_net.articles()}
    assert set(by_url) == {f"{site.url}/news/1", f"{site.url}/news/2"}
    for n in (1, 2):
        article = by_url[f"{site.url}/news/{n}"]
        assert article.title == f"Projekt {n}" and article.text == full[n] and article.added_by == f"feed:{feed.id}"
    assert kb_net.search("Projekt 2 Gemeinderat Kosten", k=1)[0].article_id == by_url[f"{site.url}/news/2"].id


def test_a_feed_that_breaks_so_that_no_item_can_be_read_fails_instead_of_passing_as_empty(feeds, kb_net, site):
    """A cut-off or broken document with no readable item is an error to see and retry, not an empty feed."""
    entries = serve_stories(site, [1])
    feed = feeds.add(publish(site, "/feed", rss2(entries)))
    assert len(feeds.poll(feed.id).added) == 1
    publish(site, "/feed", '<?xml version="1.0"?><rss version="2.0"><channel><title>Lindenfurt</title><item><tit')
    broken = feeds.poll(feed.id)
    assert broken.status == "failed"
    assert broken.error.startswith(f"{site.url}/feed is a broken feed: no item could be read (")
    stored = feeds.get(feed.id)
    assert (stored.last_error, stored.failures, stored.items_added) == (broken.error, 1, 1)
    assert kb_net.counts()["articles"] == 1
    assert reason_text(broken.error, "de", about="feed") == (
        f"{site.url}/feed ist ein kaputter Feed: kein Eintrag ließ sich lesen."
    )

    publish(site, "/feed", rss2([]))  # a well-formed feed with no items is fine
    assert feeds.poll(feed.id).status == "ok" and feeds.get(feed.id).last_error is None
    with pytest.raises(FeedError, match="is a broken feed: no item could be read"):
        feeds.add(publish(site, "/cut", '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry><ti'))


def test_titles_are_one_line_whatever_the_feeds_markup(feeds, kb_net, site):
    """Pretty-printed XML, markup and entities in titles: the article's title is one clean line."""
    serve_stories(site, [1, 2])
    document = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0">
  <channel>
    <title>
      Lindenfurter
      Nachrichten
    </title>
    <item>
      <title><![CDATA[Bürger &amp; „Räte“ <b>streiten</b> über Projekt 1]]></title>
      <link>{site.url}/news/1</link>
    </item>
    <item>
      <title>
        Projekt 2:   Caf&#233; am
        Nordufer
      </title>
      <link>{site.url}/news/2</link>
    </item>
  </channel>
</rss>"""
    feed = feeds.add(publish(site, "/pretty.xml", document))
    assert len(feeds.poll(feed.id).added) == 2
    assert sorted(a.title for a in kb_net.articles()) == [
        "Bürger & „Räte“ streiten über Projekt 1",
        "Projekt 2: Café am Nordufer",
    ]
    assert feeds.get(feed.id).title == "Lindenfurter Nachrichten"


def test_a_changed_entry_whose_page_is_gone_is_tried_on_three_polls_then_left_until_it_changes_again(
    feeds, kb_net, site
):
    entries = serve_stories(site, [6])
    feed = feeds.add(publish(site, "/feed", atom(entries), "atom"))
    (article_id,) = feeds.poll(feed.id).added
    text = kb_net.article(article_id).text
    del site.pages["/news/6"]
    entries[0].updated = "2026-03-29T10:00:00Z"
    publish(site, "/feed", atom(entries), "atom")
    results = [feeds.poll(feed.id) for _ in range(5)]
    assert [len(r.item_errors) for r in results] == [1, 1, 1, 0, 0]
    assert "HTTP 404" in results[0].item_errors[0]
    assert site.hits["/news/6"] == 1 + 3  # added once, then three tries at the change
    assert kb_net.article(article_id).text == text

    site.html("/news/6", "Projekt 6", story(6, version=2))  # back, and the feed changes the entry again
    entries[0].updated = "2026-03-30T10:00:00Z"
    publish(site, "/feed", atom(entries), "atom")
    assert feeds.poll(feed.id).refreshed == [article_id]
    assert "Stand 2" in kb_net.article(article_id).text


def test_feeds_cli_says_when_a_failing_feed_is_tried_next_and_polls_it_now_when_named(
    monkeypatch, capsys, embedder, tmp_path, site
):
    """'no feed is due … see feeds list' pointed to a list that did not say when; and a fixed feed
    waited out its back-off (up to a day) with no way to try it now."""
    path = tmp_path / "config.toml"
    path.write_text("[fetch]\nallow_private_addresses = true\ntimeout = 5.0\n")
    config = str(path)
    url = publish(site, "/feed", rss2(serve_stories(site, [1])))
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    try:
        assert cli("feeds", "add", url, config=config).code == 0
        page = site.pages.pop("/feed")
        assert cli("feeds", "poll", config=config).code == 1
        waiting = cli("feeds", "poll", config=config).out
        assert waiting.startswith("no feed is due") and "'articlebot feeds poll ID' polls one now" in waiting
        (row,) = [json.loads(line) for line in cli("feeds", "list", "--json", config=config).out.splitlines()]
        listed = cli("feeds", "list", config=config).out
        assert f"last error: {url} answered HTTP 404 Not Found" in listed
        assert f"failed 1 time in a row, next try {row['next_try']}" in listed
        assert listed.startswith(f"#1    (never read)  {url}\n")  # tried, so no longer "(not polled yet)"

        site.pages["/feed"] = page  # fixed: the admin need not wait
        other = SQLiteEngine(tmp_path / "data").portable_sql()  # unless a running bot polls right now
        try:
            with other.hold("feed polling"):
                busy = cli("feeds", "poll", "1", config=config)
        finally:
            other.close()
        assert (busy.code, busy.err) == (
            1,
            "articlebot: another process is polling the feeds right now; "
            "try 'articlebot feeds poll 1' again in a moment\n",
        )
        for argv, message in [(("feeds", "poll", "7"), "no feed with id 7"), (("feeds", "poll", "x"), "not a feed id")]:
            refused = cli(*argv, config=config)
            assert refused.code == 1 and message in refused.err and len(refused.err.splitlines()) == 1
        now = cli("feeds", "poll", "#1", config=config)
        assert (now.code, now.out.strip()) == (
            0,
            "feed #1 Lindenfurter Nachrichten: 1 added, 0 refreshed, 0 already present",
        )
        assert "next try" not in cli("feeds", "list", config=config).out
        assert cli.counts()["articles"] == 1
    finally:
        cli.close()


def test_tracking_parameters_that_change_with_every_fetch_are_no_change(feeds, kb_net, site):
    """Feeds that stamp their links with a fresh utm_* per fetch, with or without a GUID: no page is read
    again and no item counted again, poll after poll."""
    entries = serve_stories(site, [1, 2])
    entries[1].guid = ""  # an item without a GUID: known by its link

    def stamped(day: int) -> str:
        document = rss2(
            [Entry(e.guid, e.title, f"{e.link}?utm_campaign=rss-{day}", e.summary, e.date) for e in entries]
        )
        return document.replace('<guid isPermaLink="false"></guid>', "")

    feed = feeds.add(publish(site, "/feed", stamped(1)))
    assert len(feeds.poll(feed.id).added) == 2
    for day in (2, 3):
        publish(site, "/feed", stamped(day))
        again = feeds.poll(feed.id)
        assert (again.added, again.refreshed, again.duplicates, again.item_errors) == ([], [], 0, [])
    assert site.hits["/news/1"] == site.hits["/news/2"] == 1
    assert feeds.get(feed.id).items_added == 2


def test_subscribe_in_the_bot_shows_its_progress_item_by_item(kb_net, site, clock):
    """A first poll fetches up to `backfill` pages (a minute on a slow site): the admin sees how far it is,
    and how many older items were left out."""
    feeds = Feeds(kb_net, backfill=3, clock=clock)
    conversation = Conversation(kb_net, None, None, TelegramSettings(admins=[1]), FETCH, feeds=feeds)
    try:
        url = publish(site, "/feed", rss2(serve_stories(site, range(1, 6))))
        progress: list[str] = []
        replies = conversation.handle(Incoming(User(1, "admin", "en"), 1, f"/subscribe {url}"), progress.append)
        items = [f"Reading the feed {url}: item {n} of 3 …" for n in (1, 2, 3)]
        assert progress == [f"Reading the feed {url} …", *items]
        text = " ".join(span.text for r in replies for block in r.blocks for span in block.spans)
        assert text == (
            f"Subscribed to feed #1 ({url}). New: 3, updated: 0, already present: 0. 2 older items left out."
        )
    finally:
        feeds.close()


def test_an_items_html_text_becomes_clean_paragraphs_with_its_entities_and_quotes(site):
    """The feed's own text stands in for a teaser page, so it is stored: no markup, no stray spaces."""
    description = (
        "&lt;p&gt;&amp;bdquo;Zitat&amp;ldquo; &amp;ndash; Stra&amp;szlig;e &amp;amp; &lt;b&gt;Co&lt;/b&gt;&lt;/p&gt;"
        "&lt;p&gt;Zweiter Absatz mit &amp;uuml;&lt;/p&gt;"
    )
    document = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>x</title>'
        f"<item><title>Eins</title><link>{site.url}/1</link><description>{description}</description></item>"
        f"<item><title>Zwei</title><link>{site.url}/2</link><description><![CDATA[<p>„Grüße“ &amp; mehr<br/>"
        "neue Zeile</p><script>alert(1)</script>]]></description></item></channel></rss>"
    )
    _, items = parse_feed(document.encode("utf-8"), site.url + "/feed")
    assert [i.summary for i in items] == [
        "„Zitat“ – Straße & Co\nZweiter Absatz mit ü",
        "„Grüße“ & mehr\nneue Zeile",
    ]


def test_a_poll_adds_a_bounded_number_of_new_items_and_leaves_the_rest_for_the_next(kb_net, site, clock):
    """After an outage a busy feed may hold hundreds of new items: one poll would fetch every page while
    the bot's admin lane waits. Each poll takes the newest few; the next polls take the rest."""
    feeds = Feeds(kb_net, backfill=20, clock=clock, max_new=2)
    try:
        entries = serve_stories(site, [1])
        url = publish(site, "/feed", rss2(entries), etag='"v1"')
        feed = feeds.add(url)
        assert len(feeds.poll(feed.id).added) == 1
        entries += serve_stories(site, [2, 3, 4, 5, 6])  # dated the 3rd to the 7th of March
        publish(site, "/feed", rss2(entries), etag='"v2"')
        polls = [feeds.poll(feed.id) for _ in range(4)]
        assert [(len(p.added), p.deferred) for p in polls] == [(2, 3), (2, 1), (1, 0), (0, 0)]
        assert polls[-1].status == "not modified"  # the ETag was stored only once nothing was left over
        published = [kb_net.article(i).published for p in polls for i in p.added]
        assert published == ["2026-03-06", "2026-03-07", "2026-03-04", "2026-03-05", "2026-03-03"]
        assert format_poll(polls[0]).endswith("2 added, 0 refreshed, 0 already present, 3 left for the next poll")
        assert poll_summary(polls[0], "de").endswith("3 weitere beim nächsten Abruf.")
        assert kb_net.counts()["articles"] == feeds.get(feed.id).items_added == 6
    finally:
        feeds.close()


def test_bot_feeds_list_says_when_a_failing_feed_is_tried_next_and_alerts_give_a_readable_time(kb_net, site, clock):
    feeds = Feeds(kb_net, clock=clock)
    conversation = Conversation(kb_net, None, None, TelegramSettings(admins=[1]), FETCH, feeds=feeds)
    try:
        url = publish(site, "/feed", rss2([]))
        feed = feeds.add(url)
        assert feeds.poll(feed.id).status == "ok"
        del site.pages["/feed"]
        assert feeds.poll(feed.id).status == "failed"

        def listing(language: str) -> str:
            replies = conversation.handle(Incoming(User(1, "admin", language), 1, "/feeds"))
            return "".join(span.text for r in replies for block in r.blocks for span in block.spans)

        assert listing("en").endswith(
            f"last error: {url} answered HTTP 404 Not Found\nnext try: 2026-03-30 08:05:00 UTC (failed 1× in a row)"
        )
        assert listing("de").endswith("nächster Versuch: 2026-03-30 08:05:00 UTC (1× in Folge fehlgeschlagen)")

        clock.advance(days=1, minutes=1)
        (alert,) = conversation.poll_feeds("en")
        text = "".join(span.text for block in alert.blocks for span in block.spans)
        assert text.startswith(f"Feed #{feed.id} ({url}) has been failing since 2026-03-30 08:00:00 UTC: ")
    finally:
        feeds.close()


def test_a_guid_the_feed_gives_every_item_does_not_hide_all_but_one(feeds, kb_net, site):
    """Some feeds put the site's address in every <guid>: the items are told apart by their links."""
    entries = serve_stories(site, [1, 2, 3])
    for entry in entries:
        entry.guid = "http://example.invalid/"
    feed = feeds.add(publish(site, "/feed", rss2(entries)))
    assert len(feeds.poll(feed.id).added) == 3
    entries += serve_stories(site, [4])
    entries[-1].guid = "http://example.invalid/"
    publish(site, "/feed", rss2(entries))
    again = feeds.poll(feed.id)
    assert (len(again.added), again.refreshed, again.item_errors) == (1, [], [])
    assert sorted(a.url for a in kb_net.articles()) == sorted(e.link for e in entries)
    assert [feeds.poll(feed.id).added for _ in range(2)] == [[], []]
    assert site.hits["/news/1"] == 1


def test_a_feed_refreshing_an_article_it_did_not_add_keeps_the_admins_title(feeds, kb_net, site):
    """'refreshed as by update' (which keeps the stored title); only a feed's own article takes its new title."""
    entries = serve_stories(site, [6, 7])
    by_hand = kb_net.add(fetch_document(entries[0].link, FETCH, title="Mein Titel für Projekt 6")).article_id
    feed = feeds.add(publish(site, "/feed", atom(entries), "atom"))
    first = feeds.poll(feed.id)
    (own,) = first.added
    assert first.duplicates == 1

    for n, entry in zip((6, 7), entries, strict=True):
        site.html(f"/news/{n}", f"Projekt {n}", story(n, version=2))
        entry.title = f"Projekt {n} in Lindenfurt (korrigiert)"
        entry.updated = "2026-03-29T10:00:00Z"
    publish(site, "/feed", atom(entries), "atom")
    assert sorted(feeds.poll(feed.id).refreshed) == sorted([by_hand, own])
    assert kb_net.article(by_hand).title == "Mein Titel für Projekt 6"
    assert kb_net.article(own).title == "Projekt 7 in Lindenfurt (korrigiert)"
    assert "Stand 2" in kb_net.article(by_hand).text and "Stand 2" in kb_net.article(own).text
