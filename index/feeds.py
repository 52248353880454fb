"""Feeds (RSS 2.0, RSS 1.0, Atom): subscriptions, and one poll of a feed that adds its new items.

Subscribing fetches the feed once and refuses a link that is not one (an error status, an HTML page:
then naming the feed the page advertises, if any); the items are left for the first poll.

The ``feeds`` and ``feed_items`` tables live in the knowledge base's database (SQLite: ``index.schema``
migration 4; PostgreSQL: ``index.postgres``), behind a connection of their own from the engine
(``PortableSQL``: one set of SQL for both engines). A poll is a conditional GET (an unchanged feed costs
one request and a 304) through the same SSRF-safe fetcher as ``/add``; each new item's page is fetched
and added like ``/add <url>``, with the item's title, link, date and summary filling in what the page
lacks.

Durable item by item: an article is committed first, then its ``feed_items`` row. A poll killed
between the two finds the article again by URL or text on the next run and records it then, so an
item is neither lost nor added twice. The feed's ETag is stored only once a whole poll has finished.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_tz
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit
from xml.sax import SAXException

import feedparser

from .extract import Document, ExtractionError, clean_text, require_length, sniff
from .fetch import FEED_TYPES, Fetched, FetchError, fetch, fetch_document
from .kb import KnowledgeBase
from .records import ArticleNotFound, DuplicateArticle, normalize_url

log = logging.getLogger(__name__)

BACKFILL = 20
# A failing feed waits 5 minutes, then twice as long after each further failure, at most a day.
FIRST_BACKOFF = timedelta(minutes=5)
MAX_BACKOFF = timedelta(days=1)
# Admins hear about a feed once it has failed for this long (once per failing spell).
NOTIFY_AFTER = timedelta(days=1)
# An item whose page cannot be fetched is tried again on this many polls, then left alone.
MAX_ITEM_ATTEMPTS = 3
# New items one poll fetches at most (newest first); the rest wait for the next polls. After an outage a
# busy feed can hold hundreds, and a poll holds the bot's admin lane while it fetches their pages.
MAX_NEW_PER_POLL = 50

# feed_items.status: what became of an item.
ADDED, DUPLICATE, SKIPPED, FAILED = "added", "duplicate", "skipped", "failed"


class FeedError(Exception):
    """A feed problem, phrased for the person who asked."""


class FeedsBusy(FeedError):
    """Another process is polling the feeds right now (a second bot process, a cron job)."""


@dataclass
class FeedRecord:
    id: int
    url: str
    title: str | None
    added_at: str | None
    last_check: str | None
    last_success: str | None
    items_added: int
    last_error: str | None
    failures: int
    next_try: str | None
    failing_since: str | None
    notified: bool
    etag: str | None = None
    last_modified: str | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("etag", "last_modified")}


@dataclass
class PollResult:
    feed_id: int
    url: str
    title: str | None
    # "ok", "not modified" or "failed"
    status: str
    added: list[int] = field(default_factory=list)
    refreshed: list[int] = field(default_factory=list)
    # Items already known as articles (same URL or text), and items left out by the first poll's backfill.
    duplicates: int = 0
    skipped: int = 0
    # New items beyond max_new, left for the next poll.
    deferred: int = 0
    item_errors: list[str] = field(default_factory=list)
    error: str | None = None
    # True once per failing spell, when the feed has failed for NOTIFY_AFTER: tell the admins.
    alert: bool = False
    failing_since: str | None = None


@dataclass
class Item:
    guid: str
    url: str | None
    title: str
    summary: str
    published: str | None
    # Changes when the feed changes the entry (title, summary, update time): then its page is re-read.
    content_hash: str
    order: int = 0
    timestamp: float | None = None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _strip_html(fragment: str) -> str:
    text = re.sub(r"(?i)<\s*(br|/p|/div|/li|/h[1-6])\s*/?>", "\n", fragment or "")
    text = html.unescape(re.sub(r"<[^>]*>", " ", text))
    # A tag gave way to a space: no doubled spaces, and no paragraph opening with one.
    return clean_text("\n".join(" ".join(line.split()) for line in text.split("\n")))


def _one_line(fragment: str) -> str:
    """A title: pretty-printed XML breaks it across lines and markup leaves gaps; neither belongs in it."""
    return " ".join(_strip_html(fragment).split())


def _entry_item(entry: dict, order: int) -> Item | None:
    link = (entry.get("link") or "").strip() or None
    title = _one_line(entry.get("title") or "")
    texts = [_strip_html(c.get("value", "")) for c in entry.get("content") or []]
    texts.append(_strip_html(entry.get("summary") or ""))
    summary = max(texts, key=len)
    if not (link or summary):
        return None
    published, timestamp = _entry_date(entry)
    # The link as its article is known (no utm_*, no fragment): feeds that stamp each fetch with fresh
    # tracking parameters would otherwise make every item new or changed at every poll.
    key = normalize_url(link) or ""
    guid = (entry.get("id") or "").strip() or key
    fingerprint = "\n".join([title, summary, dict.get(entry, "updated") or "", key])
    digest = hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()
    return Item(guid or f"sha256:{digest}", link, title, summary, published, digest, order, timestamp)


def _entry_date(entry: dict) -> tuple[str | None, float | None]:
    """The item's day as the feed wrote it, and its moment (for ordering); (None, None) without one."""
    for key in ("published", "updated"):
        # dict.get: feedparser's own get() maps a missing "updated" to "published", with a warning.
        parsed = dict.get(entry, f"{key}_parsed")
        if parsed:
            return _written_day(dict.get(entry, key) or "", parsed), float(calendar.timegm(parsed))
    return None, None


def _written_day(raw: str, parsed: time.struct_time) -> str:
    """The day in the feed's own time zone, as a page's metadata date keeps it: feedparser's parsed
    time is in UTC, which moves an item of 00:30 in Berlin to the day before."""
    utc_day = datetime(*parsed[:3], tzinfo=UTC).date()
    rfc822 = parsedate_tz(raw)
    try:
        written = datetime(*rfc822[:3]).date() if rfc822 else datetime.fromisoformat(raw.strip()).date()
    except ValueError:  # a spelling only feedparser reads: its UTC day
        return utc_day.isoformat()
    return (written if abs(written - utc_day) <= timedelta(days=1) else utc_day).isoformat()


def parse_feed(body: bytes, url: str, content_type: str = "") -> tuple[str | None, list[Item]]:
    """The feed's title and its items, in the feed's order; FeedError when it is no feed at all."""
    # The feed's address resolves relative links; its declared type helps with the encoding.
    headers = {"content-location": url, **({"content-type": content_type} if content_type else {})}
    parsed = feedparser.parse(body, response_headers=headers)
    if not parsed.get("version") and not parsed.entries:
        raise FeedError(_not_a_feed(body, url, content_type, parsed.get("bozo_exception")))
    entries = [item for order, entry in enumerate(parsed.entries) if (item := _entry_item(entry, order))]
    shared = Counter(item.guid for item in entries)
    items, seen = [], set()
    for item in entries:
        if shared[item.guid] > 1 and item.url:
            # A GUID the feed gives several items (the site's address, say) tells none of them apart.
            item.guid = normalize_url(item.url)
        if item.guid not in seen:  # the same item twice in one feed
            seen.add(item.guid)
            items.append(item)
    reason = parsed.get("bozo_exception")
    if not items and isinstance(reason, SAXException):
        # Read leniently, a cut-off feed still yields the items before the cut; none at all is no empty feed.
        raise FeedError(f"{url} is a broken feed: no item could be read ({str(reason).splitlines()[0][:120]})")
    title = _one_line(parsed.feed.get("title") or "") or None
    return title, items


def _not_a_feed(body: bytes, url: str, content_type: str, reason: Exception | None) -> str:
    """Why ``body`` is no feed. An HTML page is the common mistake (a site's front page instead of
    its feed), and such a page often names its feed: then the message says which URL to use."""
    if content_type in ("text/html", "application/xhtml+xml") or sniff(body) == "html":
        message = f"{url} is not an RSS or Atom feed (it looks like an HTML page)"
        advertised = _advertised_feed(body, url)
        return message + (f"; the page names its feed: subscribe to {advertised}" if advertised else "")
    detail = f" ({str(reason).splitlines()[0][:120]})" if reason else ""
    return f"{url} is not an RSS or Atom feed{detail}"


_FEED_LINK_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml")


class _FeedLinks(HTMLParser):
    """Collects the hrefs of <link rel="alternate" type="application/rss+xml" (or Atom, RDF)>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "link":
            return
        attributes = {name: (value or "") for name, value in attrs}
        rel = attributes.get("rel", "").lower().split()
        kind = attributes.get("type", "").split(";")[0].strip().lower()
        href = attributes.get("href", "").strip()
        if "alternate" in rel and kind in _FEED_LINK_TYPES and href:
            self.hrefs.append(href)


def _advertised_feed(page: bytes, url: str) -> str | None:
    """The first feed an HTML page advertises, as an absolute http(s) URL; None if it names none."""
    parser = _FeedLinks()
    try:
        parser.feed(page.decode("utf-8", errors="replace"))
        parser.close()
    except AssertionError:  # html.parser's answer to some malformed markup ("<![bogus[ …"): keep what it found
        log.debug("could not read all of the feed links of %s", url, exc_info=True)
    for href in parser.hrefs:
        absolute = urljoin(url, href)
        if urlsplit(absolute).scheme in ("http", "https") and absolute != url:
            return absolute
    return None


def check_feed_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FeedError(f"not an http(s) feed URL: {url!r}")
    return url


class Feeds:
    """Subscriptions and polls. Thread-safe: the bot polls in a worker thread while admins subscribe."""

    def __init__(
        self,
        kb: KnowledgeBase,
        backfill: int = BACKFILL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_new: int = MAX_NEW_PER_POLL,
    ):
        self.kb = kb
        self.backfill = backfill
        self.max_new = max_new
        self.clock = clock
        self._sql = kb.engine.portable_sql()
        # The response that showed a new subscription is a feed, kept for its first poll in this process
        # (the bot's /subscribe polls at once) so that the feed's server is not asked twice.
        self._checked: dict[int, tuple[str, Fetched]] = {}

    def close(self) -> None:
        self._sql.close()

    # --- subscriptions ------------------------------------------------------------------------

    def add(self, url: str) -> FeedRecord:
        """Subscribe to ``url`` once it has answered with an RSS or Atom feed: a wrong link is refused
        here, in one line, rather than stored and failing at every poll. Its items are left for the poll."""
        url = check_feed_url(url)
        key = normalize_url(url)
        subscribed = self._sql.query("SELECT id FROM feeds WHERE url_key = ?", (key,))
        if subscribed:  # said before fetching: a second subscription costs the feed's server nothing
            raise FeedError(f"already subscribed as feed #{subscribed[0][0]}")
        checked = self._check_is_feed(url)
        with self._sql.transaction() as tx:
            created = []
            existing = tx.execute("SELECT id FROM feeds WHERE url_key = ?", (key,))
            if not existing:  # (looked up first: on PostgreSQL a conflicting INSERT still uses up an id)
                # ON CONFLICT: two admins subscribing at once (in two processes) get one feed.
                created = tx.execute(
                    "INSERT INTO feeds (url, url_key, added_at) VALUES (?, ?, ?) ON CONFLICT (url_key) DO NOTHING "
                    "RETURNING id",
                    (url, key, _iso(self.clock())),
                )
                existing = created or tx.execute("SELECT id FROM feeds WHERE url_key = ?", (key,))
            if not created:
                raise FeedError(f"already subscribed as feed #{existing[0][0]}")
        feed_id = int(created[0][0])
        self._checked[feed_id] = (url, checked)
        return self.get(feed_id)

    def _check_is_feed(self, url: str) -> Fetched:
        """Fetch ``url`` once, as a poll would, and raise FeedError unless it is a feed.

        Its items are imported by the first poll (one import path, the backfill applies), from this
        response when that poll runs in this process; the ETag is stored only then, or the first poll
        would get a 304 and never import them.
        """
        try:
            fetched = fetch(url, self.kb.settings.fetch, types=FEED_TYPES)
        except FetchError as exc:
            raise FeedError(str(exc)) from None
        parse_feed(fetched.body, fetched.url, fetched.content_type)
        return fetched

    def get(self, feed_id: int) -> FeedRecord:
        rows = self._sql.query(f"SELECT {_COLUMNS} FROM feeds WHERE id = ?", (feed_id,))
        if not rows:
            raise FeedError(f"no feed with id {feed_id}")
        return _feed(rows[0])

    def list(self) -> list[FeedRecord]:
        return [_feed(r) for r in self._sql.query(f"SELECT {_COLUMNS} FROM feeds ORDER BY id")]

    def remove(self, feed_id: int) -> FeedRecord:
        """Unsubscribe; the articles it brought stay."""
        feed = self.get(feed_id)
        with self._sql.transaction() as tx:
            tx.execute("DELETE FROM feed_items WHERE feed_id = ?", (feed_id,))
            tx.execute("DELETE FROM feeds WHERE id = ?", (feed_id,))
        return feed

    # --- polling ------------------------------------------------------------------------------

    def due(self) -> list[FeedRecord]:
        now = _iso(self.clock())
        return [f for f in self.list() if f.next_try is None or f.next_try <= now]

    def poll_due(
        self, on_result: Callable[[PollResult], None] | None = None, feed_ids: list[int] | None = None
    ) -> list[PollResult]:
        """One pass over every feed that is not waiting out a back-off; one feed's trouble stops no other.
        ``feed_ids``: those feeds instead, now, back-off or not (an admin who has seen the feed fixed).

        One process at a time: FeedsBusy while another (a second bot process on the same database, a
        cron job) is polling, so two never fetch and embed the same new items at once.
        """
        named = [self.get(feed_id) for feed_id in feed_ids or []]  # FeedError for an unknown id, before any poll
        with self._sql.hold("feed polling") as ours:
            if not ours:
                raise FeedsBusy("another process is polling the feeds right now")
            return self._poll_due(on_result, named if feed_ids else None)

    def _poll_due(
        self, on_result: Callable[[PollResult], None] | None, feeds: list[FeedRecord] | None = None
    ) -> list[PollResult]:
        results = []
        for feed in self.due() if feeds is None else feeds:
            try:
                result = self.poll(feed.id)
            except FeedError:
                continue  # unsubscribed meanwhile
            except Exception as exc:
                log.exception("polling feed #%s failed", feed.id)
                result = self._failed(feed, f"{type(exc).__name__}: {exc}")
            results.append(result)
            if on_result:
                on_result(result)
        return results

    def poll(self, feed_id: int, on_item: Callable[[int, int], None] | None = None) -> PollResult:
        """``on_item(n, total)`` before each item is looked at (its page may take seconds to fetch)."""
        feed = self.get(feed_id)
        headers = {}
        if feed.etag:
            headers["If-None-Match"] = feed.etag
        if feed.last_modified:
            headers["If-Modified-Since"] = feed.last_modified
        try:
            fetched = self._first_response(feed) or fetch(feed.url, self.kb.settings.fetch, headers, FEED_TYPES)
            if fetched.status == 304:
                self._succeeded(feed, None, None, None)
                return PollResult(feed.id, feed.url, feed.title, "not modified")
            title, items = parse_feed(fetched.body, fetched.url, fetched.content_type)
        except (FetchError, FeedError) as exc:
            return self._failed(feed, str(exc))
        result = PollResult(feed.id, feed.url, title or feed.title, "ok")
        to_process = self._to_process(feed, items, result)
        for n, item in enumerate(to_process, 1):
            if on_item:
                on_item(n, len(to_process))
            self._process(feed, item, result)
        etag, last_modified = fetched.headers.get("etag"), fetched.headers.get("last-modified")
        # With items left over the next poll must get the feed again, not a 304: no validators then.
        self._succeeded(feed, title, etag, last_modified, keep_validators=not result.deferred)
        return result

    def _first_response(self, feed: FeedRecord) -> Fetched | None:
        url, fetched = self._checked.pop(feed.id, (None, None))
        return fetched if url == feed.url else None  # (a feed removed since, its id given to another)

    def _to_process(self, feed: FeedRecord, items: list[Item], result: PollResult) -> list[Item]:
        """The items to look at, oldest first; on the first poll only the newest ``backfill``."""
        known = self._sql.query("SELECT count(*) FROM feed_items WHERE feed_id = ?", (feed.id,))[0][0]
        newest_first = sorted(items, key=lambda i: (-(i.timestamp or 0), i.order))
        if feed.last_success is None and not known and len(items) > self.backfill:
            left_out = newest_first[self.backfill :]
            now = _iso(self.clock())
            with self._sql.transaction() as tx:
                tx.executemany(
                    "INSERT INTO feed_items (feed_id, guid, url, url_key, content_hash, status, seen_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (feed_id, guid) DO NOTHING",
                    [(feed.id, i.guid, i.url, normalize_url(i.url), i.content_hash, SKIPPED, now) for i in left_out],
                )
            result.skipped = len(left_out)
            newest_first = newest_first[: self.backfill]
        return list(reversed(self._bounded(feed, newest_first, result)))

    def _bounded(self, feed: FeedRecord, newest_first: list[Item], result: PollResult) -> list[Item]:
        """At most ``max_new`` items this feed has never recorded, the newest; the others wait."""
        recorded = {row[0] for row in self._sql.query("SELECT guid FROM feed_items WHERE feed_id = ?", (feed.id,))}
        later = {i.guid for i in [i for i in newest_first if i.guid not in recorded][self.max_new :]}
        result.deferred = len(later)
        return [i for i in newest_first if i.guid not in later]

    def _process(self, feed: FeedRecord, item: Item, result: PollResult) -> None:
        rows = self._sql.query(
            "SELECT article_id, content_hash, status, attempts FROM feed_items WHERE feed_id = ? AND guid = ?",
            (feed.id, item.guid),
        )
        if rows:
            article_id, digest, status, attempts = rows[0]
            if status == SKIPPED or (status == FAILED and attempts >= MAX_ITEM_ATTEMPTS):
                return
            if status in (ADDED, DUPLICATE):
                if digest != item.content_hash:
                    self._refresh(feed, item, article_id, result, ours=status == ADDED)
                return
        try:
            known = self._known_article(item)
            if known is not None:
                self._record(feed, item, known, result)
                return
            doc = self._document(item)
            try:
                article_id = self.kb.add(doc, added_by=f"feed:{feed.id}").article_id
            except DuplicateArticle as exc:
                article_id = exc.article_id
            self._record(feed, item, article_id, result)
        except ExtractionError as exc:
            self._item_failed(feed, item, str(exc), result)

    def _known_article(self, item: Item) -> int | None:
        """An article this item already is: by its link (tracking parameters aside)."""
        return self.kb.article_id_for_url(item.url) if item.url else None

    def _document(self, item: Item) -> Document:
        if item.url:
            try:
                doc = fetch_document(item.url, self.kb.settings.fetch, title=item.title or None)
            except FetchError:
                raise  # gone or unreachable: tried again on the next polls
            except ExtractionError:
                # Refused as a paywall teaser or a page of short lines: the feed may carry the whole text.
                if len(item.summary) < self.kb.settings.ingest.min_chars:
                    raise
                doc = Document(item.title or item.summary[:80], "", url=item.url)
            if len(doc.text) < len(item.summary):
                doc.text = item.summary  # a teaser page, a paywall: the feed said more
        elif item.summary:
            doc = Document(item.title or item.summary[:80], item.summary)
        else:
            raise ExtractionError("the item has neither a link nor a text")
        doc.published = doc.published or item.published
        doc.source = "feed"
        return require_length(doc, self.kb.settings.ingest.min_chars)

    def _record(self, feed: FeedRecord, item: Item, article_id: int, result: PollResult) -> None:
        """The item is this article: ours if this feed added it (also in a poll killed before it got here)."""
        try:
            ours = self.kb.article(article_id).added_by == f"feed:{feed.id}"
        except ArticleNotFound:
            ours = False
        with self._sql.transaction() as tx:
            # Locks the feed's row first (SQLite's BEGIN IMMEDIATE already serialises): two processes
            # polling the same feed check and record its items one after the other.
            tx.execute("UPDATE feeds SET items_added = items_added WHERE id = ?", (feed.id,))
            recorded = tx.execute(
                "SELECT 1 FROM feed_items WHERE feed_id = ? AND guid = ? AND status IN (?, ?)",
                (feed.id, item.guid, ADDED, DUPLICATE),
            )
            if recorded:  # another process polling the same feed got here first
                result.duplicates += 1
                return
            claimed = tx.execute(
                "SELECT 1 FROM feed_items WHERE feed_id = ? AND article_id = ? AND status = ?",
                (feed.id, article_id, ADDED),
            )
            status = ADDED if ours and not claimed else DUPLICATE
            tx.execute(
                "INSERT INTO feed_items (feed_id, guid, url, url_key, article_id, content_hash, status, "
                "attempts, error, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL, ?) ON CONFLICT (feed_id, guid) "
                "DO UPDATE SET url = excluded.url, url_key = excluded.url_key, article_id = excluded.article_id, "
                "content_hash = excluded.content_hash, status = excluded.status, attempts = 0, error = NULL, "
                "seen_at = excluded.seen_at",
                (feed.id, item.guid, item.url, normalize_url(item.url), article_id, item.content_hash, status,
                 _iso(self.clock())),
            )  # fmt: skip
            if status == ADDED:
                tx.execute("UPDATE feeds SET items_added = items_added + 1 WHERE id = ?", (feed.id,))
        if status == ADDED:
            result.added.append(article_id)
        else:
            result.duplicates += 1

    def _refresh(self, feed: FeedRecord, item: Item, article_id: int, result: PollResult, ours: bool) -> None:
        """The feed changed a known entry: read its page again and refresh the article if its text changed.
        The feed's new title only for an article the feed added (``ours``); another keeps its title, as by update."""
        try:
            doc = self._document(item)
            if not ours:
                doc.title = self.kb.article(article_id).title
            if self.kb.refresh(article_id, doc).changed:
                result.refreshed.append(article_id)
        except ArticleNotFound:
            pass  # removed by an admin: not brought back
        except DuplicateArticle:
            pass  # its new text is another article's: leave both as they are
        except ExtractionError as exc:
            result.item_errors.append(f"{item.url or item.guid}: {exc}")
            self._refresh_failed(feed, item, str(exc))
            return
        with self._sql.transaction() as tx:
            tx.execute(
                "UPDATE feed_items SET content_hash = ?, attempts = 0, error = NULL WHERE feed_id = ? AND guid = ?",
                (item.content_hash, feed.id, item.guid),
            )

    def _refresh_failed(self, feed: FeedRecord, item: Item, error: str) -> None:
        """The old hash stays, so the next polls try again; after MAX_ITEM_ATTEMPTS tries the change is
        given up (the hash taken), as a new item's page is, until the feed changes the entry again."""
        with self._sql.transaction() as tx:
            tx.execute(
                "UPDATE feed_items SET attempts = attempts + 1, error = ? WHERE feed_id = ? AND guid = ?",
                (error, feed.id, item.guid),
            )
            tx.execute(
                "UPDATE feed_items SET content_hash = ?, attempts = 0 WHERE feed_id = ? AND guid = ? AND attempts >= ?",
                (item.content_hash, feed.id, item.guid, MAX_ITEM_ATTEMPTS),
            )

    def _item_failed(self, feed: FeedRecord, item: Item, error: str, result: PollResult) -> None:
        result.item_errors.append(f"{item.url or item.guid}: {error}")
        with self._sql.transaction() as tx:
            tx.execute(
                "INSERT INTO feed_items (feed_id, guid, url, url_key, content_hash, status, attempts, error, seen_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (feed_id, guid) DO UPDATE SET "
                "attempts = feed_items.attempts + 1, error = excluded.error, seen_at = excluded.seen_at",
                (feed.id, item.guid, item.url, normalize_url(item.url), item.content_hash, FAILED, error,
                 _iso(self.clock())),
            )  # fmt: skip

    def _succeeded(
        self,
        feed: FeedRecord,
        title: str | None,
        etag: str | None,
        last_modified: str | None,
        keep_validators: bool = True,
    ) -> None:
        now = _iso(self.clock())
        validators = "etag = coalesce(?, etag), last_modified = coalesce(?, last_modified)"
        if not keep_validators:
            etag = last_modified = None
            validators = "etag = ?, last_modified = ?"
        with self._sql.transaction() as tx:
            tx.execute(
                f"UPDATE feeds SET title = coalesce(?, title), {validators}, last_check = ?, last_success = ?, "
                "last_error = NULL, failures = 0, next_try = NULL, failing_since = NULL, notified = 0 WHERE id = ?",
                (title, etag, last_modified, now, now, feed.id),
            )

    def _failed(self, feed: FeedRecord, error: str) -> PollResult:
        now = self.clock()
        with self._sql.transaction() as tx:
            # Counted from the stored row, not from ``feed``: another poller (a second bot process, an
            # admin's /feeds poll) may have failed the feed since it was read. The row is ours until commit.
            rows = tx.execute(
                "UPDATE feeds SET last_check = ?, last_error = ?, failures = failures + 1, "
                "failing_since = coalesce(failing_since, ?) WHERE id = ? RETURNING failures, failing_since, notified",
                (_iso(now), error, _iso(now), feed.id),
            )
            if not rows:  # unsubscribed meanwhile
                return PollResult(feed.id, feed.url, feed.title, "failed", error=error)
            ((failures, since, notified),) = rows
            wait = min(FIRST_BACKOFF * 2 ** min(failures - 1, 20), MAX_BACKOFF)
            tx.execute("UPDATE feeds SET next_try = ? WHERE id = ?", (_iso(now + wait), feed.id))
            alert = not notified and now - datetime.fromisoformat(since) >= NOTIFY_AFTER
            if alert:  # once per failing spell: whoever flips the flag tells the admins
                alert = bool(
                    tx.execute("UPDATE feeds SET notified = 1 WHERE id = ? AND notified = 0 RETURNING id", (feed.id,))
                )
        return PollResult(feed.id, feed.url, feed.title, "failed", error=error, alert=alert, failing_since=since)


_COLUMNS = (
    "id, url, title, added_at, last_check, last_success, items_added, last_error, failures, next_try, "
    "failing_since, notified, etag, last_modified"
)


def _feed(row: tuple) -> FeedRecord:
    feed = FeedRecord(*row)
    feed.notified = bool(feed.notified)
    return feed
