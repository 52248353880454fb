"""The Telegram adapter: one python-telegram-bot ``Application``, built in ``build_application``.

Handlers translate updates into ``bot.conversation`` calls and render what comes back. Everything
that blocks (search, answering, fetching, embedding, SQLite) runs in worker threads, so the event
loop only ever waits on the network. Calls that only make the bot nicer (setMyCommands,
sendChatAction, answerCallbackQuery) are best effort: a failure is logged and nothing else.

The bot token is a secret: it is in every Bot API URL, so request logging is silenced, every log
record is scrubbed of it, and errors shown to people are reworded without it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import logging
import os
import re
import secrets
import signal
import traceback
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

# Opt in to PTB's coming time periods (timedelta, not int) now: otherwise every flood-control error
# it builds warns about the change. We read either form.
os.environ.setdefault("PTB_TIMEDELTA", "1")

from telegram import (  # noqa: E402
    BotCommand,
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
from telegram.error import BadRequest, InvalidToken, RetryAfter, TelegramError  # noqa: E402
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler, ContextTypes, MessageHandler, filters  # noqa: E402

from index.extract import ExtractionError  # noqa: E402

from .config import TelegramSettings  # noqa: E402
from .conversation import Attachment, Button, Conversation, Incoming, Press, Reply, User  # noqa: E402
from .render import to_html  # noqa: E402
from .texts import ui_language  # noqa: E402

log = logging.getLogger(__name__)

T = TypeVar("T")

CONVERSATION = "conversation"
ALLOWED_UPDATES = ["message", "callback_query"]
# Updates handled at once: enough that questions are answered while an article is being added.
CONCURRENT_UPDATES = 16
# Telegram shows "typing…" for about five seconds per sendChatAction.
TYPING_EVERY = 4.5
# Intermediate progress edits closer together than this are skipped (the final text always lands).
PROGRESS_INTERVAL = 1.5
# Flood control: wait as long as Telegram asks, up to this, and at most this many times per call.
MAX_RETRY_AFTER = 120.0
MAX_RETRIES = 3
DOWNLOAD_TIMEOUT = 300.0
WORKER_THREADS = 16
MIME_SUFFIXES = {"application/pdf": ".pdf", "text/html": ".html", "text/markdown": ".md", "text/plain": ".txt"}

MENU = {
    "en": [("help", "What I know and how to ask"), ("ask", "Ask a question"), ("sources", "The articles I know")],
    "de": [("help", "Was ich weiß und wie man fragt"), ("ask", "Eine Frage stellen"), ("sources", "Meine Artikel")],
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
    except (TelegramError, OSError, RuntimeError) as exc:
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

    async def send(self, replies: list[Reply], replace: int | None = None) -> None:
        """Send each reply; the first may replace message ``replace`` (a progress message, a page)."""
        for reply in replies:
            await self.send_reply(reply, replace)
            replace = None

    async def send_reply(self, reply: Reply, replace: int | None = None) -> None:
        parts = to_html(reply)
        for i, part in enumerate(parts):
            markup = keyboard(reply.buttons) if i == len(parts) - 1 else None
            if i == 0 and replace is not None and await self.edit_part(replace, part, markup):
                continue
            await self.send_part(part, markup, reply_to=self.reply_to if i == 0 else None)

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


@asynccontextmanager
async def typing(bot: Any, chat_id: int, enabled: bool = True) -> AsyncIterator[None]:
    """Show "typing…" while the body runs; stops at the first failure (it is only decoration)."""

    async def keep_typing() -> None:
        while await best_effort(lambda: bot.send_chat_action(chat_id, ChatAction.TYPING), "sendChatAction"):
            await asyncio.sleep(TYPING_EVERY)

    task = asyncio.create_task(keep_typing()) if enabled else None
    try:
        yield
    finally:
        if task:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


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
    chat = Chat(context.bot, message.chat_id, None if request.message.private else message.message_id)
    progress = ProgressMessage(chat, asyncio.get_running_loop())
    async with typing(context.bot, message.chat_id, enabled=request.is_question):
        replies = await asyncio.to_thread(conversation.run, request, progress)
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
    chat = Chat(context.bot, chat_id)
    for reply in pressed.replies:
        await chat.send_reply(reply, replace=query.message.message_id if reply.edit and query.message else None)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("handling update %s failed: %s", update_id, context.error, exc_info=context.error)


async def set_menu(app: Application) -> None:
    for language, commands in MENU.items():
        await best_effort(
            lambda commands=commands, language=language: app.bot.set_my_commands(
                [BotCommand(name, description) for name, description in commands],
                language_code=None if language == "en" else language,
            ),
            "setMyCommands",
        )


def build_application(settings: TelegramSettings, conversation: Conversation, token: str) -> Application:
    """The one Application: connection settings, then every handler, registered here and only here."""
    builder = ApplicationBuilder().token(token).concurrent_updates(CONCURRENT_UPDATES)
    if settings.base_url:
        builder = builder.base_url(settings.base_url)
    file_url = settings.base_file_url or file_url_for(settings.base_url)
    if file_url:
        builder = builder.base_file_url(file_url)
    app = builder.build()
    app.bot_data[CONVERSATION] = conversation
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & (filters.TEXT | filters.CAPTION), on_message))
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.Document.ALL, on_message))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_error_handler(on_error)
    return app


# --- running ----------------------------------------------------------------------------------


async def start_updates(app: Application, settings: TelegramSettings) -> str:
    """Long polling, or a webhook when one is configured. Pending updates are never dropped."""
    assert app.updater is not None
    if not settings.webhook_url:
        await app.updater.start_polling(
            timeout=dt.timedelta(seconds=settings.poll_timeout),
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=False,
        )
        return "long polling"
    # Without a secret anyone who finds the port could post updates as any user, admins included.
    secret = settings.secret_token or secrets.token_urlsafe(32)
    await app.updater.start_webhook(
        listen=settings.listen,
        port=settings.port,
        url_path=urlsplit(settings.webhook_url).path.lstrip("/"),
        webhook_url=settings.webhook_url,
        secret_token=secret,
        allowed_updates=ALLOWED_UPDATES,
        drop_pending_updates=False,
    )
    return f"webhook on {settings.listen}:{settings.port}"


async def serve(app: Application, settings: TelegramSettings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set; then finish every update already fetched before returning."""
    # Room for slow jobs (ingestion) without making questions queue behind them.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(WORKER_THREADS, "articlebot"))
    async with app:
        await app.start()
        try:
            await set_menu(app)
            mode = await start_updates(app, settings)
            log.info("@%s is running (%s)", app.bot.username, mode)
            try:
                await stop.wait()
            finally:
                if app.updater and app.updater.running:
                    await app.updater.stop()
        finally:
            await app.stop()


async def _serve_until_signal(app: Application, settings: TelegramSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await serve(app, settings, stop)


def resolve_token(settings: TelegramSettings, environ: dict[str, str]) -> str:
    token = (environ.get("TELEGRAM_BOT_TOKEN") or settings.token).strip()
    if not token:
        raise RuntimeError(
            "no Telegram bot token: set $TELEGRAM_BOT_TOKEN or [telegram] token (try 'articlebot chat' without one)"
        )
    return token


def run_bot(settings: TelegramSettings, conversation: Conversation, token: str) -> int:
    """Serve until SIGINT/SIGTERM. Errors come back as RuntimeError with the token taken out."""
    protect_token(token)
    if settings.webhook_url and urlsplit(settings.webhook_url).scheme != "https":
        raise RuntimeError("[telegram] webhook_url must be an https:// URL")
    app = build_application(settings, conversation, token)
    try:
        asyncio.run(_serve_until_signal(app, settings))
    except InvalidToken:
        raise RuntimeError("Telegram rejected the bot token ([telegram] token or $TELEGRAM_BOT_TOKEN)") from None
    except TelegramError as exc:
        raise RuntimeError(f"Telegram: {redact(str(exc))}") from None
    return 0
