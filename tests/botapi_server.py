"""A Bot API server for tests: real HTTP on 127.0.0.1, Telegram's JSON protocol, stdlib only.

It holds the updates that "users" send (``send_text``, ``send_document``, ``press``) until the bot
confirms them with getUpdates' offset, records everything the bot sends, edits (each message's
``history``) and deletes, and checks it the way Telegram does: HTML must parse with Telegram's tags
and entities, a message holds at most 4,096 characters, callback data at most 64 bytes. Unknown
methods get Telegram's 404 error; any method can be made to fail (``fail``), including with flood
control (429 with retry_after), and any method can be held (``hold``): its requests wait, as if in
flight, until released or dropped, so a test can kill the bot at a known moment. The server
outlives any number of bot processes.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

T = TypeVar("T")

MAX_TEXT = 4096
ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre",
    "blockquote", "tg-emoji",
}  # fmt: skip
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
INT_FIELDS = {"chat_id", "message_id", "offset", "limit", "timeout", "cache_time", "max_connections"}
JSON_FIELDS = {
    "reply_markup", "reply_parameters", "allowed_updates", "commands", "entities", "link_preview_options", "scope",
}  # fmt: skip


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _TelegramHtml(HTMLParser):
    """Telegram's HTML subset: the visible text, or ApiError like "can't parse entities"."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.visible: list[str] = []

    def fail(self, why: str) -> None:
        raise ApiError(400, f"Bad Request: can't parse entities: {why}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.fail(f'Unsupported start tag "{tag}"')
        if tag == "a":
            href = dict(attrs).get("href") or ""
            if urlsplit(href).scheme not in ("http", "https", "tg", "mailto"):
                self.fail(f"Unsupported URL protocol in {href!r}")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.fail(f'Can\'t find end tag corresponding to start tag "{self.stack[-1] if self.stack else tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "<" in data or ">" in data:
            self.fail("Unexpected '<' or '>'")
        self.visible.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in NAMED_ENTITIES:
            self.fail(f'Unsupported HTML entity "&{name};"')
        self.visible.append(NAMED_ENTITIES[name])

    def handle_charref(self, name: str) -> None:
        self.visible.append(chr(int(name[1:], 16) if name[:1] in "xX" else int(name)))

    def unknown_decl(self, data: str) -> None:
        self.fail("Unsupported declaration")

    def handle_comment(self, data: str) -> None:
        self.fail("Unsupported comment")


def parse_html(text: str) -> str:
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.stack:
        parser.fail(f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"')
    return "".join(parser.visible)


@dataclass
class Failure:
    code: int
    description: str
    times: int | None  # None: every call until cleared
    retry_after: int | None = None


@dataclass
class Hold:
    method: str
    when: Callable[[dict], bool]


@dataclass
class Held:
    """A request waiting at a hold: ``outcome`` becomes "release" (handle it) or "drop" (never arrived)."""

    method: str
    params: dict[str, Any]
    outcome: str = ""


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A bot killed or stopped mid-request resets its connections: expected here, not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class BotApiServer:
    def __init__(self, token: str, username: str = "articles_test_bot", bot_id: int = 990001):
        self.token = token
        self.bot = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Articles",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.cond = threading.Condition()
        self.calls: list[Call] = []
        self.pending: list[dict] = []  # updates not yet confirmed by an offset
        self.delivered: set[int] = set()
        self.messages: dict[tuple[int, int], dict] = {}  # every message, users' and the bot's
        self.chats: dict[int, dict] = {}
        self.files: dict[str, tuple[str, bytes]] = {}
        self.callbacks: dict[str, dict] = {}
        self.failures: dict[str, Failure] = {}
        self.webhook: dict[str, Any] = {}
        self.holds: list[Hold] = []
        # Called with each message the bot sends or edits (in the server's thread, no lock held).
        self.listeners: list[Callable[[dict], None]] = []
        self.held: list[Held] = []
        self.update_ids: dict[int, int] = {}  # message id → id of the update that brought it
        self.deleted: list[tuple[int, int]] = []  # (chat id, message id) the bot deleted
        # The command menus the bot set: (scope as JSON, language code or "") → [(command, description)].
        self.menus: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(5000)
        self._stopping = False
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="botapi", daemon=True)

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/bot"

    def start(self) -> BotApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self._stopping = True
            self.cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- what users do ------------------------------------------------------------------------

    @staticmethod
    def user(user_id: int, first_name: str, language_code: str | None = "de") -> dict:
        user = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            user["language_code"] = language_code
        return user

    def private_chat(self, user: dict) -> dict:
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        self.chats[chat["id"]] = chat
        return chat

    def group_chat(self, chat_id: int, title: str = "Redaktion") -> dict:
        chat = {"id": chat_id, "type": "supergroup", "title": title}
        self.chats[chat_id] = chat
        return chat

    def send_text(
        self, user: dict, chat: dict, text: str, reply_to: dict | None = None, entities: list[dict] | None = None
    ) -> dict:
        message = self._user_message(user, chat, reply_to)
        message["text"] = text
        found = list(entities or []) + _command_entities(text)
        if found:
            message["entities"] = sorted(found, key=lambda e: e["offset"])
        self._push({"message": message})
        return message

    def update_id_of(self, message: dict) -> int:
        with self.cond:
            return self.update_ids[message["message_id"]]

    def mention(self, text: str) -> list[dict]:
        """The mention entity Telegram adds for "@bot" in ``text`` (offsets in UTF-16 units)."""
        handle = "@" + self.bot["username"]
        start = text.index(handle)
        return [{"type": "mention", "offset": utf16_len(text[:start]), "length": utf16_len(handle)}]

    def send_document(
        self, user: dict, chat: dict, data: bytes, filename: str, caption: str = "", mime_type: str = "text/plain"
    ) -> dict:
        file_id = f"doc{next(self._ids)}"
        self.files[file_id] = (f"documents/{file_id}_{filename}", data)
        message = self._user_message(user, chat, None)
        message["document"] = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": filename,
            "mime_type": mime_type,
            "file_size": len(data),
        }
        if caption:
            message["caption"] = caption
            entities = _command_entities(caption)
            if entities:
                message["caption_entities"] = entities
        self._push({"message": message})
        return message

    def send_media(self, user: dict, chat: dict, kind: str) -> dict:
        """A message with no text: a "sticker", "photo" or "voice" message, as Telegram describes each."""
        file = {"file_id": f"{kind}{next(self._ids)}", "file_unique_id": f"u{kind}"}
        sticker = {"type": "regular", "width": 512, "height": 512, "is_animated": False, "is_video": False}
        content = {
            "sticker": {**file, **sticker},
            "photo": [{**file, "width": 320, "height": 240}],
            "voice": {**file, "duration": 3, "mime_type": "audio/ogg"},
        }
        message = self._user_message(user, chat, None)
        message[kind] = content[kind]
        self._push({"message": message})
        return message

    def add_members(self, user: dict, chat: dict, members: list[dict]) -> dict:
        """``user`` adds ``members`` (users, or ``self.bot``) to a group: Telegram's service message."""
        message = self._user_message(user, chat, None)
        message["new_chat_members"] = members
        self._push({"message": message})
        return message

    def press(self, user: dict, message: dict, data: str) -> str:
        """Press an inline button under one of the bot's messages; returns the callback query id."""
        query_id = str(next(self._ids) * 7919)
        query = {"id": query_id, "from": user, "chat_instance": "ci1", "data": data, "message": _public(message)}
        with self.cond:
            self.callbacks[query_id] = {"answered": False}
        self._push({"callback_query": query})
        return query_id

    def _user_message(self, user: dict, chat: dict, reply_to: dict | None) -> dict:
        message = {"message_id": next(self._ids), "date": int(time.time()), "chat": chat, "from": user}
        if reply_to is not None:
            message["reply_to_message"] = _public(reply_to)
        with self.cond:
            self.messages[(chat["id"], message["message_id"])] = message
        return message

    def _push(self, update: dict) -> int:
        with self.cond:
            update["update_id"] = next(self._update_ids)
            if "message" in update:
                self.update_ids[update["message"]["message_id"]] = update["update_id"]
            self.pending.append(update)
            self.cond.notify_all()
        return update["update_id"]

    # --- test control -------------------------------------------------------------------------

    def fail(self, method: str, code: int = 500, description: str = "Internal Server Error", **kwargs: Any) -> None:
        """Make ``method`` fail ``times`` times (default: until ``clear``); ``retry_after`` makes it a 429."""
        retry_after = kwargs.get("retry_after")
        if retry_after is not None:
            code, description = 429, f"Too Many Requests: retry after {retry_after}"
        with self.cond:
            self.failures[method] = Failure(code, description, kwargs.get("times"), retry_after)

    def hold(self, method: str, when: Callable[[dict], bool] = lambda params: True) -> None:
        """From now on, requests to ``method`` whose parameters satisfy ``when`` wait (see ``held``)."""
        with self.cond:
            self.holds.append(Hold(method, when))

    def waiting(self, method: str | None = None) -> list[Held]:
        with self.cond:
            return [h for h in self.held if not h.outcome and (method is None or h.method == method)]

    def release_all(self) -> None:
        """Lift every hold; waiting requests are handled now."""
        self._end_holds("release")

    def drop_all(self) -> None:
        """Lift every hold; waiting requests fail without effect (the bot died before they got through)."""
        self._end_holds("drop")

    def _end_holds(self, outcome: str) -> None:
        with self.cond:
            self.holds.clear()
            for held in self.held:
                held.outcome = held.outcome or outcome
            self.held.clear()
            self.cond.notify_all()

    def _wait_if_held(self, method: str, params: dict) -> bool:
        """Block while a hold matches this request; False when it is dropped."""
        with self.cond:
            if not any(h.method == method and h.when(params) for h in self.holds):
                return True
            held = Held(method, params)
            self.held.append(held)
            self.cond.notify_all()
            while not held.outcome and not self._stopping:
                self.cond.wait(0.5)
            return held.outcome == "release"

    def clear(self, method: str) -> None:
        with self.cond:
            self.failures.pop(method, None)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
                self.cond.wait(min(left, 0.5))

    def calls_to(self, method: str) -> list[Call]:
        with self.cond:
            return [c for c in self.calls if c.method == method]

    def bot_messages(self, chat_id: int) -> list[dict]:
        """The bot's messages in a chat, oldest first, as they are now (after edits)."""
        with self.cond:
            found = [m for (c, _), m in self.messages.items() if c == chat_id and m["from"]["id"] == self.bot["id"]]
        return sorted(found, key=lambda m: m["message_id"])

    def replies_after(self, message: dict) -> list[dict]:
        return [m for m in self.bot_messages(message["chat"]["id"]) if m["message_id"] > message["message_id"]]

    def is_confirmed(self, update_id: int) -> bool:
        with self.cond:
            return all(u["update_id"] != update_id for u in self.pending)

    def take_updates(self) -> list[dict]:
        """Every pending update, now the test's to deliver (in webhook mode it POSTs them, as Telegram would)."""
        with self.cond:
            taken, self.pending = self.pending, []
            self.delivered.update(u["update_id"] for u in taken)
            return taken

    # --- the protocol -------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
                pass

            def do_GET(self) -> None:  # noqa: N802
                status, body = server._download(self.path)
                self._reply(status, body, "application/octet-stream")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, payload = server._dispatch(self.path, self.headers.get("Content-Type") or "", raw)
                self._reply(status, json.dumps(payload).encode(), "application/json")

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the bot hung up (a long poll cut short by its shutdown)

        return Handler

    def _download(self, path: str) -> tuple[int, bytes]:
        prefix = f"/file/bot{self.token}/"
        path = unquote(path)
        if not path.startswith(prefix):
            return 404, b"Not Found"
        wanted = unquote(path[len(prefix) :])
        for file_path, data in list(self.files.values()):
            if file_path == wanted:
                return 200, data
        return 404, b"Not Found"

    def _dispatch(self, path: str, content_type: str, raw: bytes) -> tuple[int, dict]:
        prefix = "/bot"
        token, _, method = path[len(prefix) :].partition("/") if path.startswith(prefix) else ("", "", "")
        if token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        try:
            params = _params(content_type, raw)
        except ValueError as exc:
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"}
        if not self._wait_if_held(method, params):
            return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
        with self.cond:
            self.calls.append(Call(method, params))
            self.cond.notify_all()
        handler = getattr(self, f"api_{method}", None)
        try:
            self._injected_failure(method)
            if handler is None:
                raise ApiError(404, "Not Found")
            result = handler(params)
        except ApiError as exc:
            payload: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.retry_after is not None:
                payload["parameters"] = {"retry_after": exc.retry_after}
            return exc.code, payload
        return 200, {"ok": True, "result": result}

    def _injected_failure(self, method: str) -> None:
        with self.cond:
            failure = self.failures.get(method)
            if failure is None:
                return
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    del self.failures[method]
        raise ApiError(failure.code, failure.description, failure.retry_after)

    # --- methods ------------------------------------------------------------------------------

    def api_setMyCommands(self, params: dict) -> bool:  # noqa: N802
        scope = params.get("scope") or {"type": "default"}
        if scope.get("chat_id") is not None and scope["chat_id"] not in self.chats:
            raise ApiError(400, "Bad Request: chat not found")  # the user never wrote to the bot
        commands = [(c["command"], c["description"]) for c in params["commands"]]
        with self.cond:
            self.menus[(json.dumps(scope, sort_keys=True), params.get("language_code") or "")] = commands
            self.cond.notify_all()
        return True

    def menu(self, chat_id: int | None = None, language: str = "") -> list[str]:
        """The commands of the menu set for one chat (or everyone), in a language ("" for the default)."""
        scope = {"type": "chat", "chat_id": chat_id} if chat_id is not None else {"type": "default"}
        with self.cond:
            return [name for name, _ in self.menus.get((json.dumps(scope, sort_keys=True), language), [])]

    def api_getMe(self, params: dict) -> dict:  # noqa: N802
        return self.bot

    def api_deleteWebhook(self, params: dict) -> bool:  # noqa: N802
        with self.cond:
            self.webhook = {}
        return True

    def api_setWebhook(self, params: dict) -> bool:  # noqa: N802
        with self.cond:
            self.webhook = dict(params)
        return True

    def api_getUpdates(self, params: dict) -> list[dict]:  # noqa: N802
        offset, limit = params.get("offset") or 0, params.get("limit") or 100
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        with self.cond:
            if self.webhook:
                raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
            if offset:
                self.pending = [u for u in self.pending if u["update_id"] >= offset]
            while not self.pending and not self._stopping and time.monotonic() < deadline:
                self.cond.wait(min(deadline - time.monotonic(), 0.25))
            batch = self.pending[:limit]
            self.delivered.update(u["update_id"] for u in batch)
            return batch

    def api_sendMessage(self, params: dict) -> dict:  # noqa: N802
        chat_id = params["chat_id"]
        text, markup = self._checked_text(params), self._checked_markup(params.get("reply_markup"))
        message = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": self.chats.get(chat_id, {"id": chat_id, "type": "private"}),
            "from": self.bot,
            "text": text,
            # What the test inspects (not Bot API fields): the markup as sent.
            "html": params.get("text"),
            "parse_mode": params.get("parse_mode"),
        }
        if markup:
            message["reply_markup"] = markup
        reply = params.get("reply_parameters") or {}
        if reply.get("message_id"):
            message["reply_to_message_id"] = reply["message_id"]
        with self.cond:
            self.messages[(chat_id, message["message_id"])] = message
            self.cond.notify_all()
        self._tell(message)
        return _public(message)

    def _tell(self, message: dict) -> None:
        for listener in self.listeners:
            listener(dict(message))

    def api_editMessageText(self, params: dict) -> dict:  # noqa: N802
        key = (params.get("chat_id"), params.get("message_id"))
        text, markup = self._checked_text(params), self._checked_markup(params.get("reply_markup"))
        with self.cond:
            message = self.messages.get(key)
            if message is None or message["from"]["id"] != self.bot["id"]:
                raise ApiError(400, "Bad Request: message to edit not found")
            if message.get("html") == params.get("text") and message.get("reply_markup") == markup:
                raise ApiError(400, NOT_MODIFIED)
            message.update(text=text, html=params.get("text"), parse_mode=params.get("parse_mode"))
            message["edits"] = message.get("edits", 0) + 1
            message.setdefault("history", []).append(text)
            if markup:
                message["reply_markup"] = markup
            else:
                message.pop("reply_markup", None)
            self.cond.notify_all()
        self._tell(message)
        return _public(message)

    def api_deleteMessage(self, params: dict) -> bool:  # noqa: N802
        key = (params.get("chat_id"), params.get("message_id"))
        with self.cond:
            message = self.messages.get(key)
            if message is None or message["from"]["id"] != self.bot["id"]:
                raise ApiError(400, "Bad Request: message to delete not found")
            del self.messages[key]
            self.deleted.append(key)
            self.cond.notify_all()
        return True

    def api_answerCallbackQuery(self, params: dict) -> bool:  # noqa: N802
        with self.cond:
            query = self.callbacks.get(str(params.get("callback_query_id")))
            if query is None or query["answered"]:
                raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
            query.update(answered=True, text=params.get("text"), show_alert=params.get("show_alert") == "true")
            self.cond.notify_all()
        return True

    def api_getFile(self, params: dict) -> dict:  # noqa: N802
        file_id = params.get("file_id")
        if file_id not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, data = self.files[file_id]
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data), "file_path": path}

    def api_sendChatAction(self, params: dict) -> bool:  # noqa: N802
        if params.get("action") not in ("typing", "upload_document", "upload_photo", "record_voice"):
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _checked_text(self, params: dict) -> str:
        text = params.get("text") or ""
        visible = parse_html(text) if (params.get("parse_mode") or "").lower() == "html" else text
        if not visible.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(visible.strip()) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        return visible

    @staticmethod
    def _checked_markup(markup: dict | None) -> dict | None:
        for row in (markup or {}).get("inline_keyboard", []):
            for button in row:
                if len(button.get("callback_data", "").encode()) > 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup


def _public(message: dict) -> dict:
    return {k: v for k, v in message.items() if k not in ("html", "parse_mode", "edits", "history")}


def _command_entities(text: str) -> list[dict]:
    if not text.startswith("/"):
        return []
    command = text.split()[0]
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]


def _params(content_type: str, raw: bytes) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        return json.loads(raw or b"{}")
    if content_type.startswith("multipart/"):
        raise ValueError("this test server takes no file uploads")
    params: dict[str, Any] = {}
    for key, values in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items():
        value: Any = values[-1]
        if key in INT_FIELDS:
            value = int(float(value))
        elif key in JSON_FIELDS:
            value = json.loads(value)
        params[key] = value
    return params


class PageServer:
    """Serves fixed pages on loopback (the articles an admin adds by URL); a page may be slow."""

    def __init__(self, pages: dict[str, tuple[str, bytes]], delays: dict[str, float] | None = None):
        self.pages = pages
        self.delays = delays or {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                time.sleep(outer.delays.get(self.path, 0.0))
                content_type, body = outer.pages.get(self.path, ("text/plain", b""))
                self.send_response(200 if self.path in outer.pages else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="pages", daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
