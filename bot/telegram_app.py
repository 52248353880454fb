"""The Telegram adapter: one python-telegram-bot ``Application``, built in ``build_application``.

Handlers translate updates into ``bot.conversation`` calls and render what comes back. Everything
that blocks (search, answering, fetching, embedding, SQLite) runs in worker threads, so the event
loop only ever waits on the network. Calls that only make the bot nicer (setMyCommands,
sendChatAction, answerCallbackQuery) are best effort: a failure is logged and nothing else.

Updates are durable (``bot.updates``): our own polling loop confirms an update to Telegram only once
it is recorded in the database, and a restarted bot handles what its predecessor left unanswered.

The bot token is a secret: it is in every Bot API URL, so request logging is silenced, every log
record is scrubbed of it, and errors shown to people are reworded without it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import hashlib
import hmac
import html
import logging
import os
import re
import signal
import sys
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, nullcontext, suppress
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

# Opt in to PTB's coming time periods (timedelta, not int) now: otherwise every flood-control error
# it builds warns about the change. We read either form.
os.environ.setdefault("PTB_TIMEDELTA", "1")

from telegram import (  # noqa: E402
    BotCommand,
    BotCommandScopeChat,
    Document,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram import User as TgUser  # noqa: E402
from telegram.constants import ChatAction, ChatType, ParseMode  # noqa: E402
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError  # noqa: E402
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler, ContextTypes, MessageHandler, filters  # noqa: E402

from index.engine import StorageError  # noqa: E402
from index.errors import SetupError  # noqa: E402
from index.extract import ExtractionError  # noqa: E402

from .config import LLMSettings, TelegramSettings  # noqa: E402
from .conversation import (  # noqa: E402
    Attachment,
    Button,
    Conversation,
    Incoming,
    Paragraph,
    Press,
    Reply,
    Text,
    User,
    parse_command,
    status,
)
from .protocol import ADMIN_JOB_COMMANDS, ALIASES, is_admin_job  # noqa: E402
from .render import to_html  # noqa: E402
from .texts import ui_language  # noqa: E402
from .updates import FAILED, LedgerProcessor, LedgerQueue, UpdateLedger  # noqa: E402

log = logging.getLogger(__name__)

T = TypeVar("T")

CONVERSATION = "conversation"
LEDGER = "ledger"
PACE = "pace"
QUESTIONS = "questions"
ADMIN_LANE = "admin_lane"
ADMIN_MENUS = "admin_menus"
# The feeds are first polled this many seconds after start (or after one interval, if shorter).
FIRST_FEED_POLL = 30.0
ALLOWED_UPDATES = ["message", "callback_query"]
# Updates handled at once, by lane: admin jobs (adding, re-indexing, removing: minutes of work that
# queue for one write lock) never take the slots of everything else (questions, buttons, help).
CONCURRENT_UPDATES = 16
ADMIN_JOBS = 2
# Telegram shows "typing…" for about five seconds per sendChatAction.
TYPING_EVERY = 4.5
TYPING_FIRST_WAIT = 1.0
# Intermediate progress edits closer together than this are skipped (the final text always lands).
PROGRESS_INTERVAL = 1.5
# A streamed answer is edited at most once per this many seconds per chat ([llm] edit_interval); in
# groups Telegram allows about 20 messages a minute, so at most every GROUP_EDIT_INTERVAL there.
EDIT_INTERVAL = 1.0
GROUP_EDIT_INTERVAL = 3.0
# Flood control: wait as long as Telegram asks, up to this, and at most this many times per call.
MAX_RETRY_AFTER = 120.0
MAX_RETRIES = 3
DOWNLOAD_TIMEOUT = 300.0
# Threads for blocking work. Answering is CPU-bound Python: threads beyond the cores only contend
# for the GIL with the event loop (16 threads let it stall 150-300 ms under bench.load; 4: < 100 ms).
# Admin jobs may hold two of them while they wait (a download, the write lock).
WORKER_THREADS = 4
# getUpdates batch: PTB parses a batch on the event loop (100 forwarded articles took 200 ms).
POLL_LIMIT = 20
# Polling after a failed getUpdates: first wait, doubling up to the last.
POLL_RETRY_FIRST, POLL_RETRY_MAX = 1.0, 30.0
# The event loop watch: how often it wakes, and the stall worth a warning.
WATCH_EVERY, STALL_WARNING = 0.02, 0.1
# Messages the bot cannot read; in a private chat they get a hint to write instead (service messages get nothing).
MEDIA_KINDS = (
    "sticker", "voice", "audio", "video_note", "video", "animation", "photo", "location", "venue", "contact",
    "poll", "dice",
)  # fmt: skip
MEDIA = (
    filters.Sticker.ALL | filters.VOICE | filters.AUDIO | filters.VIDEO_NOTE | filters.VIDEO | filters.ANIMATION
    | filters.PHOTO | filters.LOCATION | filters.VENUE | filters.CONTACT | filters.POLL | filters.Dice.ALL
)  # fmt: skip
MIME_SUFFIXES = {"application/pdf": ".pdf", "text/html": ".html", "text/markdown": ".md", "text/plain": ".txt"}

MENU = {
    "en": [("help", "What I know and how to ask"), ("ask", "Ask a question"), ("sources", "The articles I know")],
    "de": [("help", "Was ich weiß und wie man fragt"), ("ask", "Eine Frage stellen"), ("sources", "Meine Artikel")],
}
# What an admin's own chat with the bot lists after MENU, so a new admin finds /add without reading /help.
ADMIN_MENU = {
    "en": [
        ("add", "Add an article: a link, text, or a document with this caption"),
        ("list", "All articles with their ids"),
        ("remove", "Remove an article: /remove <id>"),
        ("update", "Fetch an article again: /update <id>"),
        ("stats", "Figures of the index and the feedback"),
        ("feeds", "Subscribed feeds"),
    ],
    "de": [
        ("add", "Artikel hinzufügen: Link, Text oder Dokument mit dieser Beschriftung"),
        ("list", "Alle Artikel mit ihren Nummern"),
        ("remove", "Artikel entfernen: /remove <id>"),
        ("update", "Artikel neu laden: /update <id>"),
        ("stats", "Zahlen zu Index und Rückmeldungen"),
        ("feeds", "Abonnierte Feeds"),
    ],
}


# --- the token: never logged, never shown --------------------------------------------------------

_SECRETS: set[str] = set()
_factory_installed = False


def redact(text: str) -> str:
    for value in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(value, "<token>")
    return text


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is the logging module's problem, not ours
        return
    if any(value in message for value in _SECRETS):
        record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if any(value in text for value in _SECRETS):
            record.exc_info, record.exc_text = None, redact(text)


def protect_token(token: str) -> None:
    """Scrub the token from every log record from now on, whoever logs it (PTB logs its URLs at DEBUG)."""
    global _factory_installed
    if token:
        # The secret half alone too: file URLs carry the token percent-encoded ("123%3AAbc…").
        _SECRETS.update({token, quote(token, safe=""), token.partition(":")[2] or token})
    # httpx logs every request URL, token included, at INFO.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if _factory_installed:
        return
    base = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        if _SECRETS:
            _scrub(record)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def file_url_for(base_url: str) -> str:
    """The file download URL that belongs to a Bot API URL ("…/bot" → "…/file/bot")."""
    head, sep, tail = base_url.rpartition("/bot")
    return f"{head}/file/bot{tail}" if sep else ""


# --- calling the Bot API ----------------------------------------------------------------------


def _retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB 22 warns that the int form is deprecated
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


async def with_retry(call: Callable[[], Awaitable[T]], what: str) -> T:
    """Make a Bot API call, waiting out flood control (RetryAfter) as Telegram asks."""
    attempt = 0
    while True:
        try:
            return await call()
        except RetryAfter as exc:
            attempt += 1
            wait = _retry_seconds(exc)
            if attempt > MAX_RETRIES or wait > MAX_RETRY_AFTER:
                raise
            log.warning("flood control on %s: retrying in %.0f s", what, wait)
            await asyncio.sleep(wait)


async def best_effort(call: Callable[[], Awaitable[Any]], what: str) -> bool:
    """A call the bot can do without: failures are logged, never raised."""
    try:
        await call()
    except (TelegramError, OSError, RuntimeError, TimeoutError) as exc:
        log.warning("%s failed (ignored): %s", what, exc)
        return False
    return True


def keyboard(rows: list[list[Button]]) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, callback_data=b.data) for b in row] for row in rows])


def _plain(part: str) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", part))


class Chat:
    """Sends replies to one chat: HTML parts in order, buttons under the last part."""

    def __init__(self, bot: Any, chat_id: int, reply_to: int | None = None):
        self.bot = bot
        self.chat_id = chat_id
        self.reply_to = reply_to

    async def send(self, replies: list[Reply], replace: int | list[int] | None = None) -> None:
        """Send each reply, its parts into the messages ``replace`` names first, in order (a progress
        message, a page, the messages a streamed answer grew in); those left over are deleted."""
        reuse = [replace] if isinstance(replace, int) else list(replace or [])
        for reply in replies:
            reuse = await self._send_reply(reply, reuse)
        for message_id in reuse:
            await best_effort(lambda m=message_id: self.bot.delete_message(self.chat_id, m), "deleteMessage")

    async def send_reply(self, reply: Reply, replace: int | None = None) -> None:
        await self._send_reply(reply, [] if replace is None else [replace])

    async def _send_reply(self, reply: Reply, reuse: list[int]) -> list[int]:
        parts = to_html(reply)
        reuse = list(reuse)
        for i, part in enumerate(parts):
            markup = keyboard(reply.buttons) if i == len(parts) - 1 else None
            if reuse and await self.edit_part(reuse.pop(0), part, markup):
                continue
            await self.send_part(part, markup, reply_to=self.reply_to if i == 0 else None)
        return reuse

    async def send_part(self, part: str, markup: InlineKeyboardMarkup | None, reply_to: int | None) -> Message | None:
        reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None

        def send(text: str, mode: str | None) -> Callable[[], Awaitable[Message]]:
            return lambda: self.bot.send_message(
                self.chat_id, text, parse_mode=mode, reply_markup=markup, reply_parameters=reply
            )

        try:
            return await with_retry(send(part, ParseMode.HTML), "sendMessage")
        except BadRequest as exc:
            if "parse" not in str(exc).lower():
                raise
            # Should never happen (everything is escaped), but an answer beats a perfect one.
            log.error("Telegram refused our HTML (%s); sending plain text", exc)
            return await with_retry(send(_plain(part), None), "sendMessage")

    async def edit_part(self, message_id: int, part: str, markup: InlineKeyboardMarkup | None) -> bool:
        try:
            await with_retry(
                lambda: self.bot.edit_message_text(
                    part, chat_id=self.chat_id, message_id=message_id, parse_mode=ParseMode.HTML, reply_markup=markup
                ),
                "editMessageText",
            )
        except BadRequest as exc:
            if "not modified" in str(exc).lower():
                return True
            log.warning("editing message %s failed (%s); sending a new one", message_id, exc)
            return False
        return True


class ProgressMessage:
    """One message that a long job edits as it goes; called from the job's worker thread."""

    def __init__(self, chat: Chat, loop: asyncio.AbstractEventLoop):
        self.chat = chat
        self.loop = loop
        self.message_id: int | None = None
        self._text = ""
        self._at = 0.0

    def __call__(self, text: str) -> None:
        future = asyncio.run_coroutine_threadsafe(self.update(text), self.loop)
        try:
            future.result(timeout=60)
        except Exception as exc:  # progress is decoration: the job goes on without it
            log.warning("progress message failed: %s", exc)

    async def update(self, text: str) -> None:
        now = self.loop.time()
        if text == self._text or (self.message_id and now - self._at < PROGRESS_INTERVAL):
            return
        self._text, self._at = text, now
        part = html.escape(text)
        if self.message_id is None:
            message = await self.chat.send_part(part, None, self.chat.reply_to)
            self.message_id = message.message_id if message else None
        else:
            await self.chat.edit_part(self.message_id, part, None)


class ChatPace:
    """When each chat may see its next edit of a streamed answer: Telegram limits messages per chat."""

    def __init__(self, interval: float = EDIT_INTERVAL):
        self.interval = interval
        self._next: dict[int, float] = {}

    def interval_for(self, chat_id: int) -> float:
        return self.interval if chat_id > 0 else max(self.interval, GROUP_EDIT_INTERVAL)

    async def turn(self, chat_id: int) -> None:
        """Wait until the chat may get another edit, and take that turn."""
        loop = asyncio.get_running_loop()
        while (wait := self._next.get(chat_id, 0.0) - loop.time()) > 0:
            await asyncio.sleep(wait)
        self._next[chat_id] = loop.time() + self.interval_for(chat_id)
        if len(self._next) > 10_000:  # forget chats whose turn has long passed
            now = loop.time()
            self._next = {c: t for c, t in self._next.items() if t > now}

    def hold_off(self, chat_id: int, seconds: float) -> None:
        """Flood control: nothing more for this chat for ``seconds``."""
        until = asyncio.get_running_loop().time() + seconds
        self._next[chat_id] = max(self._next.get(chat_id, 0.0), until)


class StreamedAnswer:
    """The answer a language model is writing, shown in messages that grow with it.

    Called with the whole visible text so far from the answering worker thread; never blocks it.
    The event loop shows only the newest text whenever the chat's pace allows an edit, so a fast
    model costs no more edits than a slow one. Text beyond 4,096 characters goes on in a second
    message. ``finish`` stops it; the final answer then replaces ``message_ids``.
    """

    def __init__(self, chat: Chat, pace: ChatPace, typing: Typing | None = None):
        self.chat = chat
        self.pace = pace
        self.typing = typing
        self.loop = asyncio.get_running_loop()
        self.message_ids: list[int] = []
        self._parts: list[str] = []
        self._text = ""
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._sending = False
        self._closed = False

    def __call__(self, text: str) -> None:
        self.loop.call_soon_threadsafe(self._offer, text)

    def _offer(self, text: str) -> None:
        if self._closed:
            return
        self._text = text
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            await self.pace.turn(self.chat.chat_id)
            if self._closed:
                return
            self._sending = True
            try:
                await self._show(self._text)
            except RetryAfter as exc:
                self.pace.hold_off(self.chat.chat_id, _retry_seconds(exc))
                self._wake.set()  # the newest text, once Telegram allows it
            except BadRequest as exc:
                if "not modified" in str(exc).lower():
                    continue
                log.warning("showing a streamed answer failed (the final answer still comes): %s", exc)
                return
            except (TelegramError, OSError) as exc:
                log.warning("showing a streamed answer failed (the final answer still comes): %s", exc)
                return
            finally:
                self._sending = False

    async def _show(self, text: str) -> None:
        parts = to_html(
            Reply([Paragraph((Text(p),)) for p in text.split("\n\n") if p.strip()] or [Paragraph((Text("…"),))])
        )
        for i, part in enumerate(parts):
            if i < len(self._parts) and self._parts[i] == part:
                continue
            if i < len(self.message_ids):
                await self.chat.bot.edit_message_text(
                    part, chat_id=self.chat.chat_id, message_id=self.message_ids[i], parse_mode=ParseMode.HTML
                )
            else:
                reply = self.chat.reply_to if i == 0 else None
                message = await self.chat.bot.send_message(
                    self.chat.chat_id,
                    part,
                    parse_mode=ParseMode.HTML,
                    reply_parameters=ReplyParameters(reply, allow_sending_without_reply=True) if reply else None,
                )
                self.message_ids.append(message.message_id)
                if self.typing is not None:
                    self.typing.stop()  # the words are there: no more "typing…"
            self._parts[i:] = [part]

    async def finish(self) -> None:
        """Stop showing the stream; an edit already on its way is let through."""
        self._closed = True
        if self._task is None:
            return
        if self._sending:
            self._wake.set()
            with suppress(Exception):
                await self._task
        else:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task


class Typing:
    """The "typing…" indicator kept up in the background; ``stop`` ends it early."""

    def __init__(self) -> None:
        self.task: asyncio.Task | None = None

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


@asynccontextmanager
async def typing(bot: Any, chat_id: int, enabled: bool = True) -> AsyncIterator[Typing]:
    """Show "typing…" while the body runs; stops at the first failure (it is only decoration).

    The first action is awaited before the work starts, as in python-telegram-bot's own
    ``send_action`` example: a background-only task was cancelled unsent whenever an answer came
    from cache in a few milliseconds. A slow Bot API delays the answer by at most TYPING_FIRST_WAIT.
    """

    def send() -> Awaitable[Any]:
        return asyncio.wait_for(bot.send_chat_action(chat_id, ChatAction.TYPING), TYPING_FIRST_WAIT)

    async def keep_typing() -> None:
        while True:
            await asyncio.sleep(TYPING_EVERY)
            if not await best_effort(lambda: bot.send_chat_action(chat_id, ChatAction.TYPING), "sendChatAction"):
                return

    handle = Typing()
    if enabled and await best_effort(send, "sendChatAction"):
        handle.task = asyncio.create_task(keep_typing())
    try:
        yield handle
    finally:
        if handle.task:
            handle.task.cancel()
            with suppress(asyncio.CancelledError):
                await handle.task


# --- updates → conversation -------------------------------------------------------------------


def to_user(user: TgUser) -> User:
    return User(id=user.id, name=user.full_name, language=ui_language(user.language_code))


def _mentions_bot(message: Message, bot: Any) -> bool:
    kinds = [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
    found = {**message.parse_entities(kinds), **message.parse_caption_entities(kinds)}
    username = (bot.username or "").lower()
    for entity, text in found.items():
        if entity.type == MessageEntity.MENTION and username and text[1:].lower() == username:
            return True
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == bot.id:
            return True
    return False


async def _download(bot: Any, file_id: str) -> bytes:
    try:
        file = await with_retry(lambda: bot.get_file(file_id), "getFile")
        return bytes(await file.download_as_bytearray())
    except (TelegramError, OSError) as exc:
        log.warning("downloading a document failed: %s", exc)
        raise ExtractionError("the file could not be downloaded from Telegram") from None


def to_attachment(document: Document | None, bot: Any, loop: asyncio.AbstractEventLoop) -> Attachment | None:
    if document is None:
        return None
    name = document.file_name or "document" + MIME_SUFFIXES.get(document.mime_type or "", "")

    def load() -> bytes:
        # Runs in the job's worker thread; the download itself belongs to the event loop.
        future = asyncio.run_coroutine_threadsafe(_download(bot, document.file_id), loop)
        try:
            return future.result(timeout=DOWNLOAD_TIMEOUT)
        except TimeoutError:
            future.cancel()
            raise ExtractionError("downloading the file took too long") from None

    return Attachment(name, document.file_size, load)


def to_incoming(message: Message, user: TgUser, bot: Any) -> Incoming:
    loop = asyncio.get_running_loop()
    replied = message.reply_to_message
    replied_to_bot = bool(replied and replied.from_user and replied.from_user.id == bot.id)
    return Incoming(
        user=to_user(user),
        chat_id=message.chat_id,
        text=message.text or message.caption or "",
        private=message.chat.type == ChatType.PRIVATE,
        addressed=replied_to_bot or _mentions_bot(message, bot),
        bot_username=bot.username or "",
        attachment=to_attachment(message.document, bot, loop),
        replied_text=(replied.text or replied.caption) if replied else None,
        replied_attachment=to_attachment(replied.document, bot, loop) if replied else None,
        media=next((kind for kind in MEDIA_KINDS if getattr(message, kind, None)), ""),
        joined=any(member.id == bot.id for member in message.new_chat_members or ()),
    )


# --- handlers ---------------------------------------------------------------------------------


async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    conversation: Conversation = context.bot_data[CONVERSATION]
    request = conversation.parse(to_incoming(message, user, context.bot))
    if request is None:
        return
    if request.command in ("start", "help") and request.message.private and conversation.is_admin(user.id):
        await set_admin_menu(context.application, user.id)
    chat = Chat(context.bot, message.chat_id, None if request.message.private else message.message_id)
    progress = ProgressMessage(chat, asyncio.get_running_loop())
    stream = None
    async with typing(context.bot, message.chat_id, enabled=request.is_question) as typer:
        if request.is_question:
            stream = request.on_text = StreamedAnswer(chat, context.bot_data[PACE], typer)
        executor = context.bot_data.get(QUESTIONS) if request.is_question else None
        try:
            replies = await asyncio.get_running_loop().run_in_executor(executor, conversation.run, request, progress)
        finally:
            if stream is not None:
                await stream.finish()
    if stream is not None and stream.message_ids:
        await context.bot_data[PACE].turn(chat.chat_id)  # the final edit keeps the pace too
        await chat.send(replies, replace=stream.message_ids)
    else:
        await chat.send(replies, replace=progress.message_id)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:
        return
    conversation: Conversation = context.bot_data[CONVERSATION]
    chat_id = query.message.chat.id if query.message else query.from_user.id
    press = Press(to_user(query.from_user), chat_id, query.data or "")
    pressed = await asyncio.to_thread(conversation.press, press)
    await best_effort(lambda: query.answer(pressed.notice or None, show_alert=pressed.alert), "answerCallbackQuery")
    # In a group a quote sent on its own is lost among the others' messages: it replies to its answer.
    group = query.message is not None and query.message.chat.type != ChatType.PRIVATE
    chat = Chat(context.bot, chat_id, query.message.message_id if group and query.message else None)
    for reply in pressed.replies:
        await chat.send_reply(reply, replace=query.message.message_id if reply.edit and query.message else None)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    update_id = update.update_id if isinstance(update, Update) else None
    if isinstance(context.error, Forbidden):
        # The user blocked the bot, or it was removed from the group: their choice, not a bug to trace.
        log.warning("update %s: no reply possible (%s)", update_id, context.error)
    else:
        log.error("handling update %s failed: %s", update_id, context.error, exc_info=context.error)
    ledger: UpdateLedger | None = context.bot_data.get(LEDGER)
    if ledger is not None and update_id is not None:
        # Not retried: the reply may be half sent, and the error is in the log.
        await ledger.run(ledger.finish, update_id, FAILED)


async def poll_feeds(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The timed job: poll the due feeds in the admin lane; tell every admin about a feed failing for a day."""
    conversation: Conversation = context.bot_data[CONVERSATION]
    async with context.bot_data.get(ADMIN_LANE) or nullcontext():
        alerts = await asyncio.to_thread(conversation.poll_feeds)
    for admin in sorted(conversation.admins):
        chat = Chat(context.bot, admin)
        for reply in alerts:
            await best_effort(lambda chat=chat, reply=reply: chat.send_reply(reply), "sending a feed alert")


async def set_menu(app: Application) -> None:
    for language, commands in MENU.items():
        await best_effort(
            lambda commands=commands, language=language: app.bot.set_my_commands(
                [BotCommand(name, description) for name, description in commands],
                language_code=None if language == "en" else language,
            ),
            "setMyCommands",
        )
    conversation: Conversation = app.bot_data[CONVERSATION]
    for admin in sorted(conversation.admins):
        await set_admin_menu(app, admin)


async def set_admin_menu(app: Application, admin: int) -> None:
    """The admin commands in the menu of an admin's own chat; Telegram refuses it until they wrote to the
    bot, so an admin's /start or /help tries again."""
    done: set[int] = app.bot_data.setdefault(ADMIN_MENUS, set())
    if admin in done:
        return
    for language, commands in MENU.items():
        try:
            await with_retry(
                lambda commands=commands, language=language: app.bot.set_my_commands(
                    [BotCommand(name, description) for name, description in commands + ADMIN_MENU[language]],
                    scope=BotCommandScopeChat(admin),
                    language_code=None if language == "en" else language,
                ),
                "setMyCommands",
            )
        except (TelegramError, OSError) as exc:
            log.info("the admin menu for user %s waits for their /start (%s)", admin, exc)
            return
    done.add(admin)


def lane_of(update: object) -> str:
    """The update's lane: "admin" for a long admin job (``ADMIN_JOB_COMMANDS``, a document, a removal's button)."""
    if not isinstance(update, Update):
        return "other"
    if update.callback_query is not None:
        return "admin" if is_admin_job(update.callback_query.data or "") else "other"
    message = update.message
    if message is None:
        return "other"
    command = parse_command(message.text or message.caption or "")
    name = ALIASES.get(command[0], command[0]) if command else ""
    return "admin" if message.document is not None or name in ADMIN_JOB_COMMANDS else "other"


def build_application(
    settings: TelegramSettings, conversation: Conversation, token: str, llm: LLMSettings | None = None
) -> Application:
    """The one Application: connection settings, then every handler, registered here and only here."""
    # Updates pass through the ledger in the knowledge base's file (see bot.updates).
    ledger = UpdateLedger(conversation.kb.update_ledger())
    processor = LedgerProcessor(ledger, {"admin": ADMIN_JOBS, "other": CONCURRENT_UPDATES}, lane_of)
    builder = ApplicationBuilder().token(token).update_queue(LedgerQueue(ledger)).concurrent_updates(processor)
    if settings.base_url:
        builder = builder.base_url(settings.base_url)
    file_url = settings.base_file_url or file_url_for(settings.base_url)
    if file_url:
        builder = builder.base_file_url(file_url)
    app = builder.build()
    app.bot_data[CONVERSATION] = conversation
    app.bot_data[LEDGER] = ledger
    app.bot_data[PACE] = ChatPace(llm.edit_interval if llm else EDIT_INTERVAL)
    if llm is not None:
        # A question waits on the model for seconds, holding its thread idle the while: questions get
        # threads of their own, so buttons and /help never queue behind answers being written.
        app.bot_data[QUESTIONS] = ThreadPoolExecutor(WORKER_THREADS + llm.max_concurrent, "articlebot-questions")
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & (filters.TEXT | filters.CAPTION), on_message))
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.Document.ALL, on_message))
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & MEDIA, on_message))
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.StatusUpdate.NEW_CHAT_MEMBERS, on_message))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_error_handler(on_error)
    app.bot_data[ADMIN_LANE] = processor.lane("admin")
    if conversation.feeds is not None and app.job_queue is not None:
        interval = conversation.feed_interval_minutes * 60
        app.job_queue.run_repeating(poll_feeds, interval=interval, first=min(FIRST_FEED_POLL, interval), name="feeds")
    return app


# --- running ----------------------------------------------------------------------------------


async def _until_stopped(stop: asyncio.Event, call: Awaitable[T]) -> T | None:
    """The call's result, or None when ``stop`` is set first (the call is then cancelled)."""
    task = asyncio.ensure_future(call)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


async def poll(app: Application, settings: TelegramSettings, stop: asyncio.Event) -> None:
    """Long polling that acknowledges an update to Telegram only once it is recorded, until ``stop``.

    The offset of a getUpdates call confirms every update below it, and Telegram then forgets them:
    it only ever moves past a batch after ``put_batch`` committed that batch to the ledger. A call
    cut short by ``stop`` (or a kill) confirms nothing, so Telegram sends its updates again.
    """
    queue: LedgerQueue = app.update_queue  # type: ignore[assignment]
    timeout = dt.timedelta(seconds=settings.poll_timeout)
    # getUpdates is refused while a webhook is set (Telegram answers 409).
    await with_retry(lambda: app.bot.delete_webhook(drop_pending_updates=False), "deleteWebhook")
    offset, failures = 0, 0
    while not stop.is_set():
        try:
            fetch = app.bot.get_updates(
                offset=offset or None, timeout=timeout, allowed_updates=ALLOWED_UPDATES, limit=POLL_LIMIT
            )
            updates = await _until_stopped(stop, fetch)
            if updates is None:
                break
            await queue.put_batch(list(updates))
        except InvalidToken:
            raise
        except RetryAfter as exc:
            wait = _retry_seconds(exc)
            log.warning("flood control on getUpdates: retrying in %.0f s", wait)
        except (TelegramError, StorageError, OSError) as exc:
            # Nothing of this batch is acknowledged: Telegram sends it again on the next call.
            failures += 1
            wait = min(POLL_RETRY_FIRST * 2 ** (failures - 1), POLL_RETRY_MAX)
            log.warning("getting updates failed (%s); retrying in %.0f s", redact(str(exc)), wait)
        else:
            failures = 0
            if updates:
                offset = max(u.update_id for u in updates) + 1
            continue
        await _until_stopped(stop, asyncio.sleep(wait))
    if offset:  # confirm the last batch now, or Telegram repeats it to the next run (which skips it)
        await best_effort(
            lambda: app.bot.get_updates(offset=offset, timeout=dt.timedelta(0), allowed_updates=ALLOWED_UPDATES),
            "confirming the last updates",
        )


def webhook_secret(token: str) -> str:
    """The secret Telegram sends with each webhook update when [telegram] secret_token is unset.

    Derived from the bot token, so every process of one bot expects the same one: a random secret
    per process would let the last one started (its setWebhook) lock the others out.
    """
    return hmac.new(token.encode(), b"articlebot webhook secret", hashlib.sha256).hexdigest()


async def start_webhook(app: Application, settings: TelegramSettings) -> None:
    """PTB's webhook server; it awaits the ledger's put before answering Telegram (see bot.updates)."""
    assert app.updater is not None
    # Without a secret anyone who finds the port could post updates as any user, admins included.
    secret = settings.secret_token or webhook_secret(app.bot.token)
    await app.updater.start_webhook(
        listen=settings.listen,
        port=settings.port,
        url_path=urlsplit(settings.webhook_url).path.lstrip("/"),
        webhook_url=settings.webhook_url,
        secret_token=secret,
        allowed_updates=ALLOWED_UPDATES,
        drop_pending_updates=False,
    )


class LoopWatch:
    """How late the event loop wakes a sleeping task: the longest time anything blocked it.

    On a shared machine part of that is the OS running other processes, which the bot cannot
    change. So each stall is also bounded by the CPU time the whole process got meanwhile: a stall
    our own code caused (a long callback, a thread holding the GIL, our threads taking the cores)
    costs the process at least as much CPU as it lasts, so ``max_own_lag`` bounds it from above.
    """

    def __init__(self, every: float = WATCH_EVERY, warn_after: float = STALL_WARNING):
        self.every = every
        self.warn_after = warn_after
        self.max_lag = 0.0
        self.max_own_lag = 0.0
        self.wakeups = 0
        self.stalls = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu_before = loop.time(), time.process_time()
            await asyncio.sleep(self.every)
            lag = loop.time() - before - self.every
            cpu = time.process_time() - cpu_before
            own = min(lag, cpu)
            self.wakeups += 1
            self.max_lag = max(self.max_lag, lag)
            self.max_own_lag = max(self.max_own_lag, own)
            if lag > self.warn_after:
                self.stalls += 1
                log.warning(
                    "the event loop was blocked for %.0f ms (%.0f ms of CPU for this process)", lag * 1e3, cpu * 1e3
                )

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[LoopWatch]:
        task = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            log.info(self.summary())

    def summary(self) -> str:
        return (
            f"event loop: longest stall {self.max_lag * 1e3:.1f} ms "
            f"(own work at most {self.max_own_lag * 1e3:.1f} ms), "
            f"{self.stalls} over {self.warn_after * 1e3:.0f} ms, in {self.wakeups} wake-ups"
        )


async def announce(app: Application, how: str) -> None:
    """The one line that says the bot runs, and whether anyone may add articles through it."""
    conversation: Conversation = app.bot_data[CONVERSATION]
    count = (await asyncio.to_thread(conversation.kb.counts))["articles"]
    admins = ", ".join(str(a) for a in sorted(conversation.admins))
    who = (
        f"admins: {admins}"
        if admins
        else "no admins yet: set [telegram] admins = [your user id] (send the bot /add and this log shows your id)"
    )
    status.info("@%s is running (%s) with %d article(s); %s", app.bot.username, how, count, who)


async def serve(
    app: Application, settings: TelegramSettings, stop: asyncio.Event, watch: LoopWatch | None = None
) -> None:
    """Run until ``stop`` is set; then finish every update already received before returning."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(WORKER_THREADS, "articlebot"))
    recovering: asyncio.Task | None = None
    async with (watch or LoopWatch()).watching(), app:
        await app.start()
        try:
            await set_menu(app)
            queue: LedgerQueue = app.update_queue  # type: ignore[assignment]
            await queue.recover(app.bot)
            recovering = asyncio.create_task(queue.keep_recovering(app.bot, stop))
            if settings.webhook_url:
                await start_webhook(app, settings)
                await announce(app, f"webhook on {settings.listen}:{settings.port}")
                await stop.wait()
            else:
                await announce(app, "long polling")
                await poll(app, settings, stop)
        finally:
            if recovering is not None:
                recovering.cancel()
                with suppress(asyncio.CancelledError):
                    await recovering
            if app.updater and app.updater.running:
                await app.updater.stop()
            await app.stop()  # waits for every queued update to be handled
            questions = app.bot_data.get(QUESTIONS)
            if questions is not None:
                questions.shutdown(wait=False)


async def _serve_until_signal(app: Application, settings: TelegramSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await serve(app, settings, stop)


def freeze_startup_objects() -> None:
    """Exempt everything loaded so far (the model, the index: ~300,000 objects) from garbage collection.

    A full collection walks every tracked object while holding the GIL: with them it took 300-500 ms
    under bench.load, a stall of the event loop whenever one runs; without them, under 100 ms.
    """
    gc.collect()
    gc.freeze()


def resolve_token(settings: TelegramSettings, environ: dict[str, str]) -> str:
    token = (environ.get("TELEGRAM_BOT_TOKEN") or settings.token).strip()
    if not token:
        raise SetupError(
            "no Telegram bot token: set $TELEGRAM_BOT_TOKEN or [telegram] token (try 'articlebot chat' without one)"
        )
    return token


# What @BotFather hands out: the bot's numeric id, a colon, and a secret of URL-safe characters.
TOKEN_SHAPE = re.compile(r"\d+:[A-Za-z0-9_-]+")


def check_token_shape(token: str) -> None:
    """Refuse a token that cannot be one before any request: it goes into every URL (never print it)."""
    if not TOKEN_SHAPE.fullmatch(token):
        raise SetupError(
            "the Telegram bot token is malformed: it looks like 123456789:AAE… (digits, a colon, letters) "
            "as @BotFather gives it; check $TELEGRAM_BOT_TOKEN or [telegram] token"
        )


DEFAULT_API_HOST = "api.telegram.org"


def unreachable(settings: TelegramSettings, exc: NetworkError) -> SetupError:
    """One line for a Bot API that cannot be reached: where we tried, why, and what to check."""
    host = (urlsplit(settings.base_url).netloc or settings.base_url) if settings.base_url else DEFAULT_API_HOST
    # PTB prefixes the httpx class ("httpx.ConnectError: [Errno -2] Name or service not known").
    reason = re.sub(r"^httpx\.\w+: ", "", str(exc)) or type(exc).__name__
    return SetupError(
        redact(f"cannot reach Telegram at {host}: {reason}; check the token, [telegram] base_url and the network")
    )


# How long a thread may hold the GIL while another waits for it (Python's default is 5 ms).
GIL_SWITCH_SECONDS = 0.001


def run_bot(settings: TelegramSettings, conversation: Conversation, token: str, llm: LLMSettings | None = None) -> int:
    """Serve until SIGINT/SIGTERM. Errors come back as one-line SetupError with the token taken out."""
    protect_token(token)
    if settings.webhook_url and urlsplit(settings.webhook_url).scheme != "https":
        raise SetupError("[telegram] webhook_url must be an https:// URL")
    freeze_startup_objects()
    # Worker threads run pure-Python work (the USE tokenizer) that holds the GIL; at the default 5 ms switch
    # interval the event loop waited its turn behind a dozen of them for 100-260 ms (tests/test_load.py).
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    app = build_application(settings, conversation, token, llm)
    try:
        asyncio.run(_serve_until_signal(app, settings))
    except InvalidToken:
        raise SetupError("Telegram rejected the bot token ([telegram] token or $TELEGRAM_BOT_TOKEN)") from None
    except NetworkError as exc:  # offline, bad DNS, a wrong base_url, a timeout (TimedOut is one too)
        raise unreachable(settings, exc) from None
    except TelegramError as exc:
        # Telegram refused a start-up call (a webhook URL it will not take): the user's setting, one line.
        raise SetupError(f"Telegram: {redact(str(exc))}") from None
    return 0
