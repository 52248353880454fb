"""The bot's conversation, free of any transport: the Telegram adapter and the terminal chat share it.

An adapter turns what arrives into an ``Incoming`` and calls ``parse`` (instant, no I/O) to learn
whether and how the bot is addressed; then ``run`` (blocking: search, answering, ingestion) off the
event loop, and renders the ``Reply`` objects it gets back. Replies are plain data: paragraphs of
text, bold and link spans, quotes and buttons; escaping is the renderer's job.

Admin rights are checked on every call, button presses included.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from index.extract import SUPPORTED_SUFFIXES, Document, ExtractionError, from_bytes, from_text, require_length
from index.feeds import FeedError, FeedRecord, Feeds, FeedsBusy, PollResult
from index.fetch import FetchError, fetch_document
from index.kb import ArticleNotFound, DuplicateArticle, KnowledgeBase
from index.records import ArticleRecord
from index.settings import FetchSettings

from . import protocol
from .answer import Answer, Citation
from .config import TelegramSettings
from .feedback import FeedbackStore
from .protocol import ADMIN_BUTTONS, ADMIN_ONLY, ALIASES, COMMANDS, QUOTE, SOURCES_PAGE, VOTE, parse_button, tg_len
from .texts import counted, reason_text, say, shortened

log = logging.getLogger(__name__)
# What a running bot always tells its operator, even without -v: that it runs, and who was refused
# an admin command (with the user id to put in [telegram] admins, which Telegram shows nowhere).
status = logging.getLogger("articlebot.status")

PAGE_SIZE = 10
LATEST_IN_HELP = 3
QUOTE_BUTTONS_PER_ROW = 4
# "Indexing …" names the article in one line.
PROGRESS_TITLE_CHARS = 80
# Pasted text shorter than this on a single line is almost always a mistyped command, not an article.
MIN_PASTED_CHARS = 200
# Telegram holds at most 4,096 characters (UTF-16 units) in a message, and its apps split a longer
# paste into several, at a word near that limit: an article pasted with this much may be cut short.
NEARLY_FULL_MESSAGE = 3900

# --- replies: plain data ----------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Bold:
    text: str


@dataclass(frozen=True)
class Link:
    """Rendered as a link only when ``url`` is http(s); otherwise as its text."""

    text: str
    url: str | None


Span = Text | Bold | Link


@dataclass(frozen=True)
class Paragraph:
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class Quote:
    text: str


Block = Paragraph | Quote


@dataclass(frozen=True)
class Button:
    label: str
    data: str


@dataclass
class Reply:
    blocks: list[Block]
    buttons: list[list[Button]] = field(default_factory=list)
    # Replace the message whose button was pressed instead of sending a new one.
    edit: bool = False


@dataclass
class Pressed:
    """The outcome of a button press: replies, and a short notice shown by the client."""

    replies: list[Reply] = field(default_factory=list)
    notice: str = ""
    alert: bool = False


def para(*spans: Span | str) -> Paragraph:
    return Paragraph(tuple(Text(s) if isinstance(s, str) else s for s in spans))


def text_reply(text: str, buttons: list[list[Button]] | None = None, edit: bool = False) -> Reply:
    return Reply([para(p) for p in text.split("\n\n") if p.strip()], buttons or [], edit)


class Refusal(ExtractionError):
    """Why something cannot be added, already phrased in the user's language."""


# --- what arrives -----------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: int
    name: str = ""
    # "de" or "en": the language of everything the bot says that is not an answer.
    language: str = "en"


@dataclass
class Attachment:
    """A file sent to the bot; ``load`` fetches its bytes only once the sender may add it."""

    filename: str
    size: int | None
    load: Callable[[], bytes]
    local: bool = False  # a file on this machine (the terminal's /add PATH): read, not downloaded


@dataclass
class Incoming:
    user: User
    chat_id: int
    text: str
    private: bool = True
    # Mentions the bot or replies to one of its messages (what makes a group message a question).
    addressed: bool = False
    bot_username: str = ""
    attachment: Attachment | None = None
    # The message this one replies to, for ``/add`` on a forwarded article.
    replied_text: str | None = None
    replied_attachment: Attachment | None = None
    # What the message holds instead of text, when the bot cannot read it ("sticker", "voice", "photo" …).
    media: str = ""
    # The message says the bot itself was just added to this group.
    joined: bool = False


@dataclass
class Request:
    command: str
    args: str
    message: Incoming
    # Called with the growing text of an answer a language model is still writing (adapters show it).
    on_text: Callable[[str], None] | None = None

    @property
    def language(self) -> str:
        return self.message.user.language

    @property
    def is_question(self) -> bool:
        return self.command == "ask"


@dataclass
class Press:
    user: User
    chat_id: int
    data: str


Progress = Callable[[str], None]


def _no_progress(_: str) -> None:
    pass


_COMMAND = re.compile(r"^/([A-Za-z0-9_]+)(?:@([A-Za-z0-9_]+))?(?=\s|$)(.*)\Z", re.S)
_LINK_ONLY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
# A link typed without its scheme ("example.org/artikel", as an address bar shows it): fetched over https.
_BARE_LINK = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}(?::[0-9]{1,5})?(?:[/?#]\S*)?$", re.I)
_BARE_ADDRESS = re.compile(r"^[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?::[0-9]{1,5})?(?:[/?#]\S*)?$")
# "/add" and a line break: what follows was pasted as an article, however short.
_PASTED_AFTER_ADD = re.compile(r"/add(@\w+)?[ \t]*\n", re.IGNORECASE)


def parse_command(text: str) -> tuple[str, str | None, str] | None:
    """``/name@bot args`` → (name, bot or None, args); None when the text is no command."""
    match = _COMMAND.match(text.strip())
    if not match:
        return None
    return match.group(1).lower(), match.group(2), match.group(3).strip()


# A greeting or a thanks on its own is answered as one: searched for in the articles it only got
# "nothing found" and the feedback buttons, often as a reader's very first reply from the bot.
_GREETING = re.compile(
    r"(hi|hallo|hello|hey|moin|servus|grüß gott|guten (morgen|tag|abend)|good (morning|afternoon|evening))"
    r"( zusammen| alle| there| everyone)?",
    re.I,
)
_THANKS = re.compile(r"(danke|danke schön|dankeschön|danke sehr|vielen dank|thanks|thank you|thanks a lot|thx)", re.I)


def small_talk(text: str) -> str | None:
    """ "hello" or "thanks" when the whole message is a greeting or a thanks (punctuation and emoji aside)."""
    words = " ".join(re.sub(r"[^\w\s]", " ", text).split())
    if _GREETING.fullmatch(words):
        return "hello"
    if _THANKS.fullmatch(words):
        return "thanks_reply"
    return None


def strip_mention(text: str, username: str) -> str:
    if not username:
        return text.strip()
    return re.sub(rf"@{re.escape(username)}\b", " ", text, flags=re.I).strip()


# --- rate limiting ----------------------------------------------------------------------------


class RateLimiter:
    """A sliding window of questions per user; thread-safe (questions are answered in parallel)."""

    def __init__(self, per_minute: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.window = window
        self.clock = clock
        self._hits: dict[int, deque[float]] = {}
        self._notified_until: dict[int, float] = {}
        self._lock = threading.Lock()

    def hit(self, key: int) -> float:
        """Count one question; 0 when allowed, else the seconds until the next one is."""
        if self.per_minute <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return max(hits[0] + self.window - now, 0.01)
            hits.append(now)
            self._forget_idle(now)
        return 0.0

    def notify_once(self, key: int, wait: float) -> bool:
        """True the first time a user is refused in a blocked period: the rest are ignored silently."""
        now = self.clock()
        with self._lock:
            if self._notified_until.get(key, 0.0) > now:
                return False
            self._notified_until[key] = now + wait
            return True

    def _forget_idle(self, now: float) -> None:
        if len(self._hits) < 10_000:
            return
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]:
            del self._hits[key]
        for key in [k for k, until in self._notified_until.items() if until <= now]:
            del self._notified_until[key]


# --- the conversation -------------------------------------------------------------------------


class Conversation:
    def __init__(
        self,
        kb: KnowledgeBase,
        answerer,
        feedback: FeedbackStore,
        settings: TelegramSettings,
        fetch: FetchSettings,
        admins: Iterable[int] | None = None,
        origin: str = "telegram",
        clock: Callable[[], float] = time.monotonic,
        page_size: int = PAGE_SIZE,
        feeds: Feeds | None = None,
        feed_interval_minutes: float = 15.0,
    ):
        self.kb = kb
        self.answerer = answerer
        self.feedback = feedback
        self.settings = settings
        self.fetch = fetch
        self.admins = frozenset(settings.admins if admins is None else admins)
        self.origin = origin
        self.page_size = page_size
        # Subscribed feeds; the Telegram adapter polls them every feed_interval_minutes (None: no feeds).
        self.feeds = feeds
        self.feed_interval_minutes = feed_interval_minutes
        self.limiter = RateLimiter(settings.rate_limit_per_minute, clock=clock)
        # Writes (add, remove, reindex) one at a time; questions never wait for it.
        self._write_lock = threading.Lock()
        self._handlers: dict[str, Callable[[Request, Progress], list[Reply]]] = {
            "start": self._help,
            "help": self._help,
            "ask": self._ask,
            "sources": self._sources,
            "add": self._add,
            "remove": self._remove,
            "list": self._list,
            "stats": self._stats,
            "reindex": self._reindex,
            "update": self._update,
            "subscribe": self._subscribe,
            "feeds": self._feeds,
            "unsubscribe": self._unsubscribe,
            "unknown": lambda req, _: [text_reply(say("unknown_command", req.language))],
            "document_hint": self._document_hint,
            "text_only": lambda req, _: [text_reply(say("text_only", req.language))],
            "hello": lambda req, _: [text_reply(say("hello", req.language))],
            "thanks_reply": lambda req, _: [text_reply(say("thanks_reply", req.language))],
        }

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admins

    # --- routing (instant) --------------------------------------------------------------------

    def parse(self, msg: Incoming) -> Request | None:
        """What the message asks for, or None when the bot should stay quiet."""
        text = (msg.text or "").strip()
        if msg.joined:
            return Request("help", "", msg)  # added to a group: say how to ask there, once
        command = parse_command(text)
        if command:
            name, target, args = command
            if target and target.lower() != msg.bot_username.lower():
                return None  # addressed to another bot in the group
            name = ALIASES.get(name, name)
            if name not in COMMANDS:
                return Request("unknown", args, msg) if msg.private else None
            return Request(name, args, msg)
        if msg.attachment is not None and not msg.addressed:
            return Request("document_hint", "", msg) if msg.private else None
        if not text and msg.media:
            # A voice message or a sticker in a private chat is someone trying to talk to the bot.
            return Request("text_only", "", msg) if msg.private else None
        if not text or not (msg.private or msg.addressed):
            return None
        question = strip_mention(text, msg.bot_username)
        reply = small_talk(question) if question else "hello"  # a bare "@bot" is a hello too
        if reply:
            return Request(reply, "", msg)
        return Request("ask", question, msg)

    # --- handling (blocking: call it off the event loop) --------------------------------------

    def run(self, request: Request, progress: Progress = _no_progress) -> list[Reply]:
        if request.command in ADMIN_ONLY and not self.is_admin(request.message.user.id):
            user = request.message.user
            status.info("/%s refused: user %s (%s) is not in [telegram] admins", request.command, user.id, user.name)
            return [text_reply(say("admins_only", request.language))]
        try:
            return self._handlers[request.command](request, progress)
        except Exception:
            log.exception("handling /%s failed", request.command)
            return [text_reply(say("failed", request.language))]

    def handle(
        self, msg: Incoming, progress: Progress = _no_progress, on_text: Callable[[str], None] | None = None
    ) -> list[Reply]:
        """``parse`` and ``run`` in one call, for adapters without an event loop."""
        request = self.parse(msg)
        if request is None:
            return []
        request.on_text = on_text
        return self.run(request, progress)

    # --- for everyone -------------------------------------------------------------------------

    def _help(self, req: Request, _: Progress) -> list[Reply]:
        lang = req.language
        total = self._article_count()
        greeting = (
            say("greeting", lang, articles=counted(total, "article", lang)) if total else say("greeting_empty", lang)
        )
        blocks: list[Block] = [para(Bold(greeting))]
        latest = self.kb.articles(limit=LATEST_IN_HELP)
        if latest:
            spans: list[Span | str] = [say("latest", lang)]
            for article in latest:
                spans += ["\n• ", Link(article.title, article.url), _date_suffix(article)]
            blocks.append(para(*spans))
        # In a group the bot is quiet unless addressed: "just write your question" would be wrong there.
        how = self._here("how_to_ask") if req.message.private else "how_to_ask_group"
        blocks += [para(p) for p in say(how, lang).split("\n\n")]
        if self.is_admin(req.message.user.id):
            blocks.append(para(say(self._here("admin_help"), lang)))
        return [Reply(blocks)]

    def _document_hint(self, req: Request, _: Progress) -> list[Reply]:
        # Only admins can add one: telling a reader to caption it /add only leads to a refusal.
        key = "document_hint" if self.is_admin(req.message.user.id) else "document_not_admin"
        return [text_reply(say(key, req.language))]

    def _here(self, key: str) -> str:
        """The terminal's version of a text where it has one: it has no groups, captions or replies to messages."""
        return f"{key}_chat" if self.origin == "chat" else key

    def _ask(self, req: Request, _: Progress) -> list[Reply]:
        question, lang, user = req.args.strip(), req.language, req.message.user
        if not question:
            return [text_reply(say("ask_usage", lang))]
        limit = self.settings.max_question_chars
        if limit and len(question) > limit:
            text = say("too_long", lang, length=len(question), limit=limit)
            if self.is_admin(user.id):  # most likely a forwarded article
                text += "\n\n" + say(self._here("add_by_reply"), lang)
            return [text_reply(text)]
        if not self.is_admin(user.id):
            wait = self.limiter.hit(user.id)
            if wait:
                if not self.limiter.notify_once(user.id, wait):
                    return []
                return [text_reply(say("rate_limited", lang, limit=self.limiter.per_minute, seconds=round(wait + 0.5)))]
        if not self.kb.articles(limit=1):  # "nothing found" would blame the question, and ask for feedback
            return [text_reply(say("nothing_to_ask", lang))]
        conversation = f"{self.origin}:{req.message.chat_id}:{user.id}"
        stream = getattr(self.answerer, "answer_stream", None)
        if req.on_text is not None and stream is not None:
            answer = stream(question, req.on_text, conversation=conversation)
        else:
            answer = self.answerer.answer(question, conversation=conversation)
        answer_id = self.feedback.record_answer(answer, req.message.chat_id)
        return answer_replies(answer, answer_id)

    def _sources(self, req: Request, _: Progress) -> list[Reply]:
        return [self._page(0, req.language, admin_view=False)]

    # --- for admins ---------------------------------------------------------------------------

    def _list(self, req: Request, _: Progress) -> list[Reply]:
        return [self._page(0, req.language, admin_view=True)]

    def _add(self, req: Request, progress: Progress) -> list[Reply]:
        lang = req.language
        try:
            doc = self._document(req, progress)
            if doc is None:
                return [text_reply(say(self._here("add_usage"), lang))]
            require_length(doc, self.kb.settings.ingest.min_chars)
            progress(say("indexing", lang, title=shortened(doc.title, PROGRESS_TITLE_CHARS)))
            with self._exclusive(progress, lang):
                result = self.kb.add(doc, added_by=f"{self.origin}:{req.message.user.id}")
        except DuplicateArticle as exc:
            key = "changed_use_update" if exc.reason == "same URL" else "duplicate"
            return [text_reply(say(key, lang, id=exc.article_id))]
        except ExtractionError as exc:
            reason = str(exc) if isinstance(exc, Refusal) else reason_text(str(exc), lang)
            return [text_reply(say("not_added", lang, reason=reason))]
        log.info("user %s added article #%s (%s passages)", req.message.user.id, result.article_id, result.chunks)
        passages = counted(result.chunks, "passage", lang)
        text = say("added", lang, id=result.article_id, title=result.title, passages=passages)
        if self._maybe_cut(req):
            text += "\n\n" + say("paste_maybe_cut", lang, id=result.article_id)
        return [text_reply(text)]

    def _maybe_cut(self, req: Request) -> bool:
        """The article was a Telegram message as long as one may be: the app may have split it, and this is
        only its first part (the terminal has no such limit)."""
        if self.origin == "chat" or req.message.attachment is not None:
            return False
        pasted = req.message.text if req.args else req.message.replied_text
        return bool(pasted) and tg_len(pasted) >= NEARLY_FULL_MESSAGE and not _LINK_ONLY.match(req.args)

    def _document(self, req: Request, progress: Progress) -> Document | None:
        """The article an /add names: a document, a link, pasted text, or the message replied to."""
        msg, lang = req.message, req.language
        if msg.attachment is not None:
            # The caption after /add is the title, as `articlebot add FILE --title` (in the terminal it is the path).
            title = " ".join(req.args.split()) if self.origin != "chat" else ""
            return self._from_attachment(msg.attachment, progress, lang, title or None)
        if not req.args and msg.replied_attachment is not None:
            return self._from_attachment(msg.replied_attachment, progress, lang)
        text = (req.args or msg.replied_text or "").strip()
        # "/add LINK Its title" on one line: the title, as `articlebot add URL --title` gives it.
        link, _, title = text.partition(" ") if "\n" not in text else (text, "", "")
        if _BARE_LINK.match(link) or _BARE_ADDRESS.match(link):
            return self._fetch_bare(link, title.strip() or None, progress, lang)
        if _LINK_ONLY.match(link):
            progress(say("fetching", lang, url=link))
            return fetch_document(link, self.fetch, title.strip() or None)
        if not text:
            return None
        # A short single line right after "/add" is most likely not meant as an article (usage); after
        # "/add" and a line break it was pasted as one, and is judged as one (too short).
        pasted = bool(_PASTED_AFTER_ADD.match(msg.text.strip()))
        if "\n" not in text and len(text) < MIN_PASTED_CHARS and not msg.replied_text and not pasted:
            return None
        return from_text(text, source="text")

    def _fetch_bare(self, link: str, title: str | None, progress: Progress, lang: str) -> Document:
        """A link typed without its scheme: https, and plain http when the server does not speak TLS or
        refuses the connection there (as an address bar falls back)."""
        progress(say("fetching", lang, url="https://" + link))
        try:
            return fetch_document("https://" + link, self.fetch, title)
        except FetchError as exc:
            if not str(exc).startswith(("TLS error", "cannot fetch")):
                raise
        progress(say("fetching", lang, url="http://" + link))
        return fetch_document("http://" + link, self.fetch, title)

    def _from_attachment(
        self, attachment: Attachment, progress: Progress, lang: str, title: str | None = None
    ) -> Document:
        name, limit = attachment.filename or "document", self.settings.max_file_bytes
        if not name.lower().endswith(SUPPORTED_SUFFIXES):
            raise Refusal(say("file_type", lang, name=name))
        if limit and attachment.size and attachment.size > limit:
            raise Refusal(say("file_size", lang, name=name, size=_mb(attachment.size), limit=_mb(limit)))
        progress(say("reading" if attachment.local else "downloading", lang, name=name))
        data = attachment.load()
        if limit and len(data) > limit:
            raise Refusal(say("file_size", lang, name=name, size=_mb(len(data)), limit=_mb(limit)))
        return from_bytes(data, name, title)

    def _remove(self, req: Request, _: Progress) -> list[Reply]:
        lang = req.language
        article_id = protocol.parse_id(req.args)
        if article_id is None:
            return [text_reply(say("remove_usage", lang))]
        try:
            article = self.kb.article(article_id)
        except ArticleNotFound:
            return [text_reply(say("no_such_article", lang, id=article_id))]
        confirm = Button(say("remove_button", lang), protocol.remove(article_id))
        cancel = Button(say("cancel_button", lang), protocol.keep(article_id))
        return [text_reply(say("confirm_remove", lang, id=article_id, title=article.title), [[confirm, cancel]])]

    def _update(self, req: Request, progress: Progress) -> list[Reply]:
        lang = req.language
        article_id = protocol.parse_id(req.args)
        if article_id is None:
            return [text_reply(say("update_usage", lang))]
        try:
            article = self.kb.article(article_id)
            if not (article.url or "").startswith(("http://", "https://")):
                return [text_reply(say("update_no_link", lang, id=article_id))]
            progress(say("fetching", lang, url=article.url))
            with self._exclusive(progress, lang):
                result = self.kb.update(article_id)
        except ArticleNotFound:
            return [text_reply(say("no_such_article", lang, id=article_id))]
        except DuplicateArticle as exc:
            return [text_reply(say("update_is_duplicate", lang, id=article_id, other=exc.article_id))]
        except ExtractionError as exc:
            return [text_reply(say("not_updated", lang, id=article_id, reason=reason_text(str(exc), lang)))]
        if not result.changed:
            return [text_reply(say("unchanged", lang, id=article_id, title=result.title))]
        passages = counted(result.chunks, "passage", lang)
        return [text_reply(say("updated", lang, id=article_id, title=result.title, passages=passages))]

    def _stats(self, req: Request, _: Progress) -> list[Reply]:
        return [Reply([para(say("stats", req.language, **index_facts(self.kb, self.feedback)))])]

    def _reindex(self, req: Request, progress: Progress) -> list[Reply]:
        lang = req.language
        progress(say("reindexing", lang))
        with self._exclusive(progress, lang):
            result = self.kb.reindex(lambda done, total: progress(say("reembedding", lang, done=done, total=total)))
        vectors = counted(result["vectors"], "vector", lang)
        return [text_reply(say("reindexed", lang, vectors=vectors, kind=result["kind"]))]

    # --- feeds --------------------------------------------------------------------------------

    def _subscribe(self, req: Request, progress: Progress) -> list[Reply]:
        lang, url = req.language, req.args.strip()
        if self.feeds is None:
            return [text_reply(say("feeds_unavailable", lang))]
        if not url:
            return [text_reply(say("subscribe_usage", lang))]
        try:
            feed = self.feeds.add(url)
        except FeedError as exc:
            return [text_reply(say("not_subscribed", lang, reason=reason_text(str(exc), lang, about="feed")))]
        progress(say("polling_feed", lang, url=feed.url))

        def item_progress(n: int, total: int) -> None:
            progress(say("polling_feed_item", lang, url=feed.url, n=n, total=total))

        with self._exclusive(progress, lang):
            result = self.feeds.poll(feed.id, item_progress)
        text = say("subscribed", lang, id=feed.id, url=feed.url) + "\n\n" + poll_summary(result, lang)
        return [text_reply(text)]

    def _feeds(self, req: Request, _: Progress) -> list[Reply]:
        lang = req.language
        if self.feeds is None:
            return [text_reply(say("feeds_unavailable", lang))]
        records = self.feeds.list()
        if not records:
            return [text_reply(say("no_feeds", lang))]
        spans: list[Span | str] = [Bold(say("feeds_header", lang, count=len(records)))]
        for feed in records:
            spans += [f"\n\n#{feed.id} ", Link(feed.title or feed.url, feed.url), "\n", _feed_status(feed, lang)]
        return [Reply([para(*spans)])]

    def _unsubscribe(self, req: Request, _: Progress) -> list[Reply]:
        lang = req.language
        if self.feeds is None:
            return [text_reply(say("feeds_unavailable", lang))]
        feed_id = protocol.parse_id(req.args)
        if feed_id is None:
            return [text_reply(say("unsubscribe_usage", lang))]
        try:
            feed = self.feeds.remove(feed_id)
        except FeedError:
            return [text_reply(say("no_such_feed", lang, id=feed_id))]
        return [text_reply(say("unsubscribed", lang, id=feed.id, url=feed.url))]

    def poll_feeds(self, lang: str = "en") -> list[Reply]:
        """Poll every due feed (blocking; the adapter calls it on a timer). Returns what the admins must
        hear: one message per feed that has just been failing for a day."""
        if self.feeds is None:
            return []
        with self._exclusive(_no_progress, lang):
            try:
                results = self.feeds.poll_due()
            except FeedsBusy:
                log.info("another process is polling the feeds: this round is theirs")
                return []
        self.kb.save_index()
        for result in results:
            if result.status == "failed":
                log.warning("feed #%s (%s) failed: %s", result.feed_id, result.url, result.error)
            elif result.added or result.refreshed:
                log.info("feed #%s: %s", result.feed_id, poll_summary(result, "en"))
        return [
            text_reply(say("feed_failing", lang, id=r.feed_id, url=r.url, since=_when(r.failing_since), error=r.error))
            for r in results
            if r.alert
        ]

    @contextmanager
    def _exclusive(self, progress: Progress, lang: str) -> Iterator[None]:
        if not self._write_lock.acquire(blocking=False):
            progress(say("busy", lang))
            self._write_lock.acquire()
        try:
            yield
        finally:
            self._write_lock.release()

    # --- buttons ------------------------------------------------------------------------------

    def press(self, press: Press) -> Pressed:
        """A button was pressed. Blocking; admin rights are checked again here, not trusted from before."""
        button = parse_button(press.data)
        lang = press.user.language
        if button is None:
            return Pressed(notice=say("expired", lang))
        kind, args = button.kind, button.args
        try:
            if kind == QUOTE:
                return self._quote(int(args[0]), int(args[1]), lang)
            if kind == VOTE:
                return self._vote(int(args[0]), press.user, 1 if args[1] == protocol.UP else -1)
            if kind == SOURCES_PAGE:
                return Pressed([self._page(int(args[0]), lang, admin_view=False, edit=True)])
            if kind in ADMIN_BUTTONS:
                if not self.is_admin(press.user.id):
                    return Pressed(notice=say("admins_only", lang), alert=True)
                return self._admin_press(kind, int(args[0]), lang)
        except ValueError:
            pass
        except Exception:
            log.exception("button %r failed", press.data)
            return Pressed(notice=say("failed", lang), alert=True)
        return Pressed(notice=say("expired", lang))

    def _admin_press(self, action: str, number: int, lang: str) -> Pressed:
        if action == protocol.LIST_PAGE:
            return Pressed([self._page(number, lang, admin_view=True, edit=True)])
        if action == protocol.KEEP:
            return Pressed([text_reply(say("remove_cancelled", lang, id=number), edit=True)])
        try:
            with self._exclusive(_no_progress, lang):
                article = self.kb.remove(number)
        except ArticleNotFound:
            return Pressed([text_reply(say("no_such_article", lang, id=number), edit=True)])
        log.info("article #%s removed", number)
        return Pressed([text_reply(say("removed", lang, id=article.id, title=article.title), edit=True)])

    def _quote(self, answer_id: int, n: int, lang: str) -> Pressed:
        stored = self.feedback.answer(answer_id)
        citation = next((c for c in stored.citations if c.n == n), None) if stored else None
        if citation is None:
            return Pressed(notice=say("expired", lang))
        heading = para(Bold(f"[{n}]"), " ", Link(citation.title, citation.url), self._place(citation, lang))
        return Pressed([Reply([heading, Quote(" ".join(citation.quote.split()))])])

    def _place(self, citation: Citation, lang: str) -> str:
        """ " – Abschnitt 3 von 7": where the quote sits in its article, while that passage is still stored."""
        place = self.kb.passage_numbers([citation.chunk_id]).get(citation.chunk_id)
        if place is None or place.article_id != citation.article_id:
            return ""
        return " – " + say("passage_of", lang, number=place.number, total=place.total)

    def _vote(self, answer_id: int, user: User, vote: int) -> Pressed:
        if not self.feedback.vote(answer_id, user.id, vote):
            return Pressed(notice=say("expired", user.language))
        return Pressed(notice=say("thanks", user.language))

    # --- pages of articles --------------------------------------------------------------------

    def _article_count(self) -> int:
        return self.kb.counts()["articles"]

    def _page(self, offset: int, lang: str, admin_view: bool, edit: bool = False) -> Reply:
        total = self._article_count()
        if not total:
            return text_reply(say("no_articles", lang), edit=edit)
        size = self.page_size
        offset = min(max(offset, 0), (total - 1) // size * size)
        articles = self.kb.articles(limit=size, offset=offset)
        last = offset + len(articles)
        spans: list[Span | str] = [Bold(say("articles_header", lang, first=offset + 1, last=last, total=total))]
        for article in articles:
            spans += [f"\n#{article.id} ", Link(article.title, article.url), _date_suffix(article)]
            if admin_view:
                spans.append(f" · {counted(article.chunk_count, 'passage', lang)} · {article.added_by or '–'}")
        row = []
        if offset > 0:
            row.append(Button(say("previous", lang), protocol.page(max(offset - size, 0), admin_view)))
        if last < total:
            row.append(Button(say("next", lang), protocol.page(last, admin_view)))
        return Reply([para(*spans)], [row] if row else [], edit)


def index_facts(kb: KnowledgeBase, feedback: FeedbackStore) -> dict[str, object]:
    """The fields of the "stats" text: what /stats in a chat and ``articlebot stats`` both show."""
    kb.open()  # the index's kind, size and state are facts only once it is loaded
    stats, votes = kb.stats(), feedback.counts()
    index = stats.get("index") or {}
    return {
        "articles": stats["articles"],
        "chunks": stats["chunks"],
        "model": stats["model"],
        "index": f"{index.get('kind', '–')}, {index.get('vectors', '–')} ({index.get('status', 'not loaded')})",
        "db_mb": _mb(stats["db_bytes"]),
        **votes,
    }


def answer_replies(answer: Answer, answer_id: int) -> list[Reply]:
    """The answer; after a model that broke off mid-answer, first what it had said, marked as cut off."""
    replies = [answer_reply(answer, answer_id)]
    if answer.cut_off:
        shown = [para(p.strip()) for p in answer.cut_off.split("\n\n") if p.strip()]
        shown[-1] = Paragraph((*shown[-1].spans, Text(" …")))
        replies.insert(0, Reply([*shown, para(say("llm_cut_off", answer.language))]))
    return replies


def answer_reply(answer: Answer, answer_id: int) -> Reply:
    """The answer's paragraphs, a sources block, and buttons for each quote and for feedback."""
    blocks: list[Block] = [para(p.strip()) for p in answer.body.split("\n\n") if p.strip()]
    if answer.mode == "extractive-fallback":
        blocks.append(para(say("llm_fallback", answer.language)))
    buttons: list[list[Button]] = []
    if answer.citations:
        spans: list[Span | str] = [Bold(say("sources_label", answer.language))]
        by_article: dict[tuple[int, str, str | None], list[Citation]] = {}
        for c in answer.citations:
            by_article.setdefault((c.article_id, c.title, c.url), []).append(c)
        for citations in by_article.values():  # one title per article, however many of its passages are quoted
            markers = " ".join(f"[{c.n}]" for c in citations)
            spans += [f"\n{markers} ", Link(citations[0].title, citations[0].url)]
        blocks.append(para(*spans))
        quotes = [
            Button(say("quote_button", answer.language, n=c.n), protocol.quote(answer_id, c.n))
            for c in answer.citations
        ]
        buttons = [quotes[i : i + QUOTE_BUTTONS_PER_ROW] for i in range(0, len(quotes), QUOTE_BUTTONS_PER_ROW)]
    buttons.append([Button("👍", protocol.vote(answer_id, up=True)), Button("👎", protocol.vote(answer_id, up=False))])
    return Reply(blocks, buttons)


def poll_summary(result: PollResult, lang: str) -> str:
    if result.status == "failed":
        return say("poll_failed", lang, error=_sentence(reason_text(result.error or "", lang, about="feed")))
    if result.status == "not modified":
        return say("poll_not_modified", lang)
    text = say(
        "poll_done", lang, added=len(result.added), refreshed=len(result.refreshed), duplicates=result.duplicates
    )
    if result.skipped:
        text += " " + say("poll_skipped", lang, skipped=result.skipped)
    if result.deferred:
        text += " " + say("poll_deferred", lang, deferred=result.deferred)
    if result.item_errors:
        text += " " + say("poll_item_errors", lang, count=len(result.item_errors))
    return text


def _feed_status(feed: FeedRecord, lang: str) -> str:
    text = say(
        "feed_status",
        lang,
        check=_when(feed.last_check),
        success=_when(feed.last_success),
        added=feed.items_added,
    )
    if feed.last_error:
        text += "\n" + say("feed_error", lang, error=reason_text(feed.last_error, lang, about="feed"))
    if feed.failures:  # the timed polls leave it alone until then
        text += "\n" + say("feed_retry", lang, next=_when(feed.next_try), failures=feed.failures)
    return text


def _sentence(text: str) -> str:
    """``text`` ending as a sentence does, for a message that goes on after it."""
    return text if text.endswith((".", "!", "?")) else text + "."


def _when(stamp: str | None) -> str:
    return stamp.replace("T", " ").replace("+00:00", " UTC") if stamp else "–"


def _date_suffix(article: ArticleRecord) -> str:
    return f" ({article.published})" if article.published else ""


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f}"
