"""End to end over loopback: the real bot (python-telegram-bot, via ``base_url``) against our Bot API
server, with a real SQLite store and the real model. One bot serves the whole module.

Every test sets up the articles it needs and reads counts and ids from the store, so the tests pass
in any order and alone (``pytest -p randomly tests/test_telegram.py``, ``-k NAME``). The whole-run
checks (no stall of the event loop, no token in the logs) also run when the module ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace

import pytest
from botapi_server import BotApiServer, PageServer, utf16_len
from newsroom import FORWARDED, GYM_TXT, LIBRARY_HTML, MARKET_TEXT, POOL_TXT, SOLAR, add_ferry_and_solar
from telegram import Update
from telegram.ext import Application, TypeHandler

from bot.answer import Answer, Answerer
from bot.config import AnswerSettings, LLMSettings, TelegramSettings
from bot.conversation import Conversation
from bot.feedback import FeedbackStore
from bot.telegram_app import (
    ADMIN_JOBS,
    CONCURRENT_UPDATES,
    LoopWatch,
    build_application,
    file_url_for,
    freeze_startup_objects,
    lane_of,
    protect_token,
    resolve_token,
    run_bot,
    serve,
)
from bot.updates import ANSWERED, FAILED
from index.extract import from_text
from index.kb import DuplicateArticle, KnowledgeBase
from index.settings import FetchSettings, IndexSettings

TOKEN = "4242424242:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
ADMIN = BotApiServer.user(1001, "Ada", "de")
READER_DE = BotApiServer.user(2002, "Rolf", "de")
READER_EN = BotApiServer.user(3003, "Rita", "en-GB")
STRANGER = BotApiServer.user(4004, "Sam", None)
WAIT = 60.0
_user_ids = iter(range(7000, 8000))


def someone(language: str | None = "en") -> dict:
    """A new reader, so no test eats into another's rate limit (3 questions a minute here)."""
    return BotApiServer.user(next(_user_ids), "Reader", language)


class LongAnswers:
    """The real answerer; a question starting with "LONG " gets its real answer spun out to > 4,096 characters."""

    def __init__(self, inner: Answerer):
        self.inner = inner

    def answer(self, question: str, conversation: str | None = None) -> Answer:
        if not question.startswith("LONG "):
            return self.inner.answer(question, conversation)
        answer = self.inner.answer(question[5:], conversation)
        answer.body = "\n\n".join(f"Absatz {i}: {answer.body} " + "Lorem ipsum dolor sit. " * 10 for i in range(1, 26))
        return answer


class BotThread:
    """The bot's own event loop in a thread, in asyncio debug mode so slow callbacks get reported.

    ``hook`` may add test-only handlers to the application before it starts; ``watch`` is the bot's
    own LoopWatch (its heartbeat) of the latest start. ``llm``: the [llm] settings run_bot would get.
    """

    def __init__(
        self,
        settings: TelegramSettings,
        conversation: Conversation,
        hook: Callable[[Application], None] | None = None,
        llm: LLMSettings | None = None,
    ):
        self.settings = settings
        self.conversation = conversation
        self.hook = hook
        self.llm = llm
        self.thread: threading.Thread | None = None

    def start(self, api: BotApiServer) -> BotThread:
        polls = len(api.calls_to("getUpdates")) if not self.settings.webhook_url else 0
        ready = threading.Event()
        self.error: BaseException | None = None
        app = build_application(self.settings, self.conversation, TOKEN, self.llm)
        if self.hook:
            self.hook(app)
        self.watch = LoopWatch()
        # As run_bot does at start-up: without it a full collection of the test process's heap (the
        # model, every test module) stalls the loop for 300+ ms at random.
        freeze_startup_objects()

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.loop.slow_callback_duration = 0.1
            self.stop_event = asyncio.Event()
            ready.set()
            await serve(app, self.settings, self.stop_event, self.watch)

        def run() -> None:
            try:
                asyncio.run(main(), debug=True)
            except BaseException as exc:  # reported by stop()
                self.error = exc

        self.thread = threading.Thread(target=run, name="bot", daemon=True)
        self.thread.start()
        ready.wait(10)
        if self.settings.webhook_url:
            api.wait_for(lambda: api.webhook, what="setWebhook")
            api.wait_for(lambda: _listening(self.settings.port), what="the webhook server")
        else:
            api.wait_for(lambda: len(api.calls_to("getUpdates")) > polls, what="polling")
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the bot did not stop"
        assert self.error is None, self.error


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class SlowCallbacks(logging.Handler):
    """asyncio's debug mode reports every callback that held the event loop for more than 100 ms."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "took" in message and "seconds" in message:
            self.reports.append(message)


class AllLogs(logging.Handler):
    """Every record of the module's run, formatted as a log file would hold it (tracebacks too)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture(scope="module")
def all_logs():
    handler, root = AllLogs(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # PTB logs its request URLs, token included, at DEBUG
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)
    # Whatever ran after test_the_token_never_appears_in_the_whole_runs_logs is checked here.
    assert TOKEN.split(":")[1] not in handler.text, "the token appeared in the module's logs"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine_name(request) -> str:
    """The whole module runs once per storage engine, each time with a Telegram of its own."""
    return request.param


@pytest.fixture(scope="module")
def api(engine_name):
    server = BotApiServer(TOKEN).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pages():
    html = ("text/html; charset=utf-8", LIBRARY_HTML.encode())
    server = PageServer({"/wernau": html, "/slow": ("text/plain; charset=utf-8", GYM_TXT.encode())}, {"/slow": 4.0})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bot_kb(request, engine_name, tmp_path_factory, embedder):
    settings = IndexSettings(data_dir=str(tmp_path_factory.mktemp("telegram")))
    if engine_name == "postgres":
        settings.storage.engine = "postgres"
        settings.storage.dsn = request.getfixturevalue("postgres_server").create_database()
    kb = KnowledgeBase(settings, embedder=embedder)
    add_ferry_and_solar(kb)
    yield kb
    kb.close()


@pytest.fixture(scope="module")
def tg_settings(api):
    return TelegramSettings(
        base_url=api.base_url,
        admins=[ADMIN["id"]],
        rate_limit_per_minute=3,
        max_question_chars=300,
        poll_timeout=1.0,
    )


@pytest.fixture(scope="module")
def conversation(bot_kb, tg_settings):
    feedback = FeedbackStore(bot_kb.answer_log())
    answerer = LongAnswers(Answerer(bot_kb, AnswerSettings()))
    fetch = FetchSettings(allow_private_addresses=True, timeout=10)  # the article pages are on loopback
    yield Conversation(bot_kb, answerer, feedback, tg_settings, fetch, page_size=2)
    feedback.close()


@pytest.fixture(scope="module")
def slow_callbacks():
    handler = SlowCallbacks()
    logging.getLogger("asyncio").addHandler(handler)
    yield handler
    logging.getLogger("asyncio").removeHandler(handler)
    # Whatever ran after test_the_event_loop_never_blocked is checked here.
    assert handler.reports == [], "the event loop was blocked during the module's run"


@pytest.fixture(scope="module")
def bot(api, tg_settings, conversation, slow_callbacks, all_logs):
    protect_token(TOKEN)
    runner = BotThread(tg_settings, conversation).start(api)
    yield runner
    if runner.thread and runner.thread.is_alive():
        runner.stop()


# --- helpers ----------------------------------------------------------------------------------


def reply_to(api: BotApiServer, message: dict, done: Callable[[dict], bool] = lambda m: True, n: int = 1) -> dict:
    """The n-th bot message after ``message`` in its chat, once ``done`` holds for it (after edits)."""

    def found() -> dict | None:
        later = api.replies_after(message)
        return later[n - 1] if len(later) >= n and done(later[n - 1]) else None

    return api.wait_for(found, WAIT, f"reply to {message.get('text') or message.get('caption')!r}")


def buttons(message: dict) -> dict[str, str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return {b["text"]: b["callback_data"] for row in rows for b in row}


def answered(api: BotApiServer, query_id: str) -> dict:
    return api.wait_for(lambda: api.callbacks[query_id] if api.callbacks[query_id]["answered"] else None, WAIT)


def ask(api: BotApiServer, user: dict, text: str) -> tuple[dict, dict]:
    chat = api.private_chat(user)
    question = api.send_text(user, chat, text)
    return question, reply_to(api, question)


def finished(prefix: str) -> Callable[[dict], bool]:
    return lambda m: m["text"].startswith(prefix)


def add_note(kb: KnowledgeBase, place: str) -> int:
    """A short article of its own for a test that changes or needs one; its id."""
    doc = from_text(
        f"Neue Sitzbänke für {place}\n\nDie Gemeinde {place} stellt am Seeufer zwölf neue Sitzbänke auf. "
        f"Der Ortsbeirat von {place} hatte sie im Frühjahr beantragt."
    )
    return kb.add(doc).article_id


def ensure_articles(kb: KnowledgeBase, at_least: int) -> int:
    """Add notes until the store holds ``at_least`` articles, whichever tests ran before; the count."""
    places = iter(f"Feldhausen-{n}" for n in range(1000))
    while kb.stats()["articles"] < at_least:
        try:
            add_note(kb, next(places))
        except DuplicateArticle:
            continue
    return kb.stats()["articles"]


def ledger_states(kb: KnowledgeBase) -> dict[int, str]:
    """The update ledger's states, read through a ledger of its own (as another process would)."""
    table = kb.update_ledger()
    table.open()
    try:
        return table.states()
    finally:
        table.close()


def fail_one_handler(api: BotApiServer, kb: KnowledgeBase) -> dict:
    """A question whose answer Telegram refuses with a 500: the handler fails. The question."""
    api.fail("sendMessage", 500, "Internal Server Error", times=1)  # 500 is no flood control: not retried
    reader = someone()
    question = api.send_text(reader, api.private_chat(reader), "Who leads the Harbourton solar project?")
    update_id = api.update_id_of(question)
    api.wait_for(lambda: ledger_states(kb).get(update_id) == FAILED, WAIT, "the failure")
    return question


# --- scenarios --------------------------------------------------------------------------------


def test_start_and_help_in_the_users_language(api, bot, bot_kb):
    total = bot_kb.stats()["articles"]
    newest = max(bot_kb.articles(), key=lambda a: a.id)
    _, german = ask(api, READER_DE, "/start")
    assert german["text"].startswith(f"Ich beantworte Fragen zu {total} Artikeln")
    if newest.url:  # the latest articles are listed, linked when they have a URL
        assert f'<a href="{newest.url}">{newest.title}</a>' in german["html"]
    else:
        assert f"• {newest.title}" in german["text"]
    _, english = ask(api, READER_EN, "/help")
    assert english["text"].startswith(f"I answer questions about {total} articles")
    assert "/ask <question>" in english["text"]
    assert "For admins" not in english["text"]


def test_help_in_a_group_says_how_to_address_the_bot_there(api, bot):
    group, member = api.group_chat(-100779), someone("en")
    command = api.send_text(member, group, "/help@articles_test_bot")
    help_text = reply_to(api, command)["text"]
    assert "In this group I answer /ask <question>, a message that mentions me, or a reply" in help_text
    assert "Just write your question" not in help_text
    german = someone("de")
    command = api.send_text(german, group, "/help")
    assert "In dieser Gruppe antworte ich auf /ask <Frage>" in reply_to(api, command)["text"]


def test_an_admins_own_menu_lists_the_admin_commands(api, bot):
    assert api.menu() == ["help", "ask", "sources"] and api.menu(language="de") == ["help", "ask", "sources"]
    # Telegram refuses a chat's menu until its user wrote to the bot: an admin's /start sets it at the latest.
    ask(api, ADMIN, "/start")
    assert api.menu(ADMIN["id"]) == ["help", "ask", "sources", "add", "list", "remove", "update", "stats", "feeds"]
    assert api.menu(ADMIN["id"], "de")[3] == "add"
    ask(api, READER_DE, "/start")
    assert api.menu(READER_DE["id"]) == [], "a reader's menu stays the everyone's one"


def test_added_to_a_group_the_bot_says_how_to_ask_there_once(api, bot, bot_kb):
    group, member = api.group_chat(-100780), someone("de")
    joined = api.add_members(member, group, [api.bot])
    hello = reply_to(api, joined)
    assert hello["text"].startswith(f"Ich beantworte Fragen zu {bot_kb.stats()['articles']} Artikeln")
    assert "In dieser Gruppe antworte ich auf /ask <Frage>" in hello["text"]
    others = api.add_members(member, group, [someone("de")])
    question = api.send_text(member, group, "/ask Wie viele Fahrgäste passen auf die Möwe II?")
    first = api.wait_for(lambda: api.replies_after(others), WAIT, "the answer")[0]
    assert first["reply_to_message_id"] == question["message_id"], "the bot greeted someone else's arrival"


def test_admin_adds_an_article_by_url(api, bot, pages, bot_kb):
    question, progress = ask(api, ADMIN, "/add " + pages.url("/wernau"))
    done = reply_to(api, question, finished("Hinzugefügt"))
    assert done["message_id"] == progress["message_id"], "the progress message is edited into the result"
    assert done["edits"] >= 1
    added = re.match(r"Hinzugefügt: #(\d+) „Stadtbibliothek Wernau öffnet künftig sonntags“ \(", done["text"])
    assert added, done["text"]
    article = bot_kb.article(int(added.group(1)))
    assert article.url == pages.url("/wernau") and article.id == max(a.id for a in bot_kb.articles())


def test_admin_adds_an_article_by_text_and_by_reply(api, bot, bot_kb):
    _, progress = ask(api, ADMIN, "/add " + MARKET_TEXT)
    chat = api.private_chat(ADMIN)
    done = api.wait_for(lambda: finished("Hinzugefügt")(api.messages[(chat["id"], progress["message_id"])]), WAIT)
    assert done
    market = [a for a in bot_kb.articles() if a.title.startswith("Wochenmarkt in Grauwinkel")]
    assert len(market) == 1 and market[0].added_by == f"telegram:{ADMIN['id']}"

    forwarded = api.send_text(ADMIN, chat, FORWARDED)  # a forwarded article is just a message to the bot
    reply_to(api, forwarded)
    command = api.send_text(ADMIN, chat, "/add", reply_to=forwarded)
    result = reply_to(api, command, finished("Hinzugefügt"))
    assert "„Eulenbrück bekommt einen Trinkwasserbrunnen am Marktplatz“" in result["text"]


def test_admin_adds_a_document(api, bot, bot_kb):
    chat = api.private_chat(ADMIN)
    downloads = len(api.calls_to("getFile"))
    message = api.send_document(ADMIN, chat, POOL_TXT.encode(), "freibad.txt", caption="/add")
    done = reply_to(api, message, finished("Hinzugefügt"))
    assert "„Birkhain saniert das Freibad am Mühlteich“" in done["text"]
    assert len(api.calls_to("getFile")) == downloads + 1
    unsupported = api.send_document(ADMIN, chat, b"MZ\x00\x00", "tool.exe", caption="/add", mime_type="application/x")
    refused = reply_to(api, unsupported, finished("Nicht hinzugefügt"))
    assert "tool.exe" in refused["text"] and len(api.calls_to("getFile")) == downloads + 1


def test_non_admin_add_is_refused_and_nothing_changes(api, bot, pages, bot_kb):
    before = bot_kb.stats()["articles"]
    _, reply = ask(api, READER_EN, "/add " + pages.url("/wernau?again"))
    assert reply["text"] == "Sorry, only this bot's admins can do that."
    _, reply = ask(api, STRANGER, "/reindex")
    assert reply["text"] == "Sorry, only this bot's admins can do that."
    assert bot_kb.stats()["articles"] == before


def test_questions_in_german_and_english_get_cited_answers(api, bot):
    question, answer = ask(api, READER_DE, "Was kostete der Bau der Möwe II?")
    assert "9,2 Millionen Euro" in answer["text"] and "[1]" in answer["text"]
    link = '<a href="https://example.org/faehre">Neue Elektrofähre verbindet Lindholm und Quernsee</a>'
    # Quotes from one article share its title: "[1] [2] <a …>title</a>", the title once.
    assert re.search(rf"<b>Quellen:</b>\n\[1\]( \[\d\])* {re.escape(link)}", answer["html"])
    assert answer["html"].count(link) == 1
    assert {"Zitat [1]", "👍", "👎"} <= set(buttons(answer))
    assert any(c.params["chat_id"] == READER_DE["id"] for c in api.calls_to("sendChatAction"))

    _, answer = ask(api, READER_EN, "How many solar panels will Harbourton fit on school roofs?")
    assert "1,240" in answer["text"] and "<b>Sources:</b>" in answer["html"]
    assert '<a href="https://example.org/solar">' in answer["html"]

    query = api.press(READER_EN, answer, buttons(answer)["Quote [1]"])
    quote = reply_to(api, answer)
    assert quote["html"].startswith('<b>[1]</b> <a href="https://example.org/solar">')
    assert "<blockquote>" in quote["html"] and "1,240" in quote["text"]
    assert answered(api, query)["answered"]


def test_feedback_buttons_are_recorded(api, bot, bot_kb):
    reader = someone("de")
    _, answer = ask(api, reader, "Für wie viele Fahrgäste bietet die Möwe II Platz?")
    query = api.press(reader, answer, buttons(answer)["👍"])
    assert answered(api, query)["text"] == "Danke für die Rückmeldung!"
    store = FeedbackStore(bot_kb.answer_log())
    try:
        votes = [v for v in store.feedback() if v["user_id"] == reader["id"]]
    finally:
        store.close()
    assert len(votes) == 1 and votes[0]["vote"] == 1
    assert votes[0]["question"] == "Für wie viele Fahrgäste bietet die Möwe II Platz?"
    assert "180 Fahrgäste" in votes[0]["answer"]
    assert votes[0]["citations"] and votes[0]["citations"][0]["title"].startswith("Neue Elektrofähre")


def test_group_answers_only_when_addressed(api, bot):
    group, member = api.group_chat(-100777), someone()
    ignored = api.send_text(member, group, "Who leads the Harbourton solar project?")
    other_bot = api.send_text(member, group, "/help@some_other_bot")
    text = "@articles_test_bot Who leads the Harbourton solar project?"
    mentioned = api.send_text(member, group, text, entities=api.mention(text))
    answer = api.wait_for(lambda: [m for m in api.bot_messages(group["id"]) if m.get("reply_to_message_id")], WAIT)[0]
    assert answer["reply_to_message_id"] == mentioned["message_id"]
    assert "Priya Castellane" in answer["text"]

    follow_up = api.send_text(member, group, "How much will the Harbourton scheme cost?", reply_to=answer)
    second = api.wait_for(
        lambda: [m for m in api.bot_messages(group["id"]) if m.get("reply_to_message_id") == follow_up["message_id"]],
        WAIT,
    )[0]
    assert "£3.8 million" in second["text"]
    command = api.send_text(member, group, "/ask@articles_test_bot How many schools get solar panels?")
    api.wait_for(
        lambda: [m for m in api.bot_messages(group["id"]) if m.get("reply_to_message_id") == command["message_id"]],
        WAIT,
    )
    replied_to = {m.get("reply_to_message_id") for m in api.bot_messages(group["id"])}
    assert ignored["message_id"] not in replied_to and other_bot["message_id"] not in replied_to
    assert len(api.bot_messages(group["id"])) == 3

    # A quote asked for in the group answers the answer it comes from, not the group at large.
    query = api.press(member, answer, buttons(answer)["Quote [1]"])
    answered(api, query)
    quote = api.wait_for(lambda: api.bot_messages(group["id"])[3:], WAIT, "the quote")[0]
    assert quote["text"].startswith("[1] Harbourton council") and quote["reply_to_message_id"] == answer["message_id"]


def test_a_long_answer_arrives_in_parts(api, bot):
    reader = someone()
    question = api.send_text(reader, api.private_chat(reader), "LONG Who leads the Harbourton solar project?")
    first = reply_to(api, question)
    api.wait_for(lambda: any(buttons(m) for m in api.replies_after(question)), WAIT, "the last part")
    parts = api.replies_after(question)
    assert len(parts) >= 2
    assert parts[0]["text"].startswith("Absatz 1:")
    assert all(utf16_len(p["text"]) <= 4096 for p in parts)
    assert [bool(buttons(p)) for p in parts] == [False] * (len(parts) - 1) + [True]
    joined = "\n\n".join(p["text"] for p in parts)
    assert [f"Absatz {i}:" in joined for i in range(1, 26)] == [True] * 25
    assert "Sources:" in parts[-1]["text"]
    assert first is parts[0] or first["message_id"] == parts[0]["message_id"]


def test_keeps_answering_when_send_chat_action_fails(api, bot):
    api.fail("sendChatAction", 500, "Internal Server Error")
    try:
        tried = len(api.calls_to("sendChatAction"))
        _, answer = ask(api, someone("de"), "Was kostete der Bau der Möwe II?")
        assert "9,2 Millionen Euro" in answer["text"]
        assert len(api.calls_to("sendChatAction")) > tried
    finally:
        api.clear("sendChatAction")


def test_flood_control_is_respected(api, bot):
    api.fail("sendMessage", retry_after=1, times=1)
    question, answer = ask(api, STRANGER, "/sources")
    assert answer["text"].startswith("Articles 1–2 of")
    sends = [c for c in api.calls_to("sendMessage") if c.params["chat_id"] == STRANGER["id"]]
    assert len(sends) >= 2 and sends[-1].at - sends[-2].at >= 0.9


def test_sources_are_paged(api, bot, bot_kb):
    total = ensure_articles(bot_kb, 5)  # page 2 of 2 per page has both buttons from 5 on
    _, page = ask(api, READER_DE, "/articles")
    assert page["text"].startswith(f"Artikel 1–2 von {total}")
    query = api.press(READER_DE, page, buttons(page)["Ältere ▶"])
    answered(api, query)
    key = (READER_DE["id"], page["message_id"])
    api.wait_for(lambda: api.messages[key]["text"].startswith(f"Artikel 3–4 von {total}"), WAIT, "page 2")
    assert set(buttons(api.messages[key])) == {"◀ Neuere", "Ältere ▶"}


def test_remove_needs_an_admin_at_every_press(api, bot, bot_kb):
    victim = bot_kb.article(add_note(bot_kb, "Kleinberg"))
    _, confirm = ask(api, ADMIN, f"/remove {victim.id}")
    assert confirm["text"] == f"Artikel #{victim.id} „{victim.title}“ entfernen?"
    remove = buttons(confirm)["🗑 Entfernen"]
    key = (ADMIN["id"], confirm["message_id"])
    before = dict(api.messages[key])
    query = api.press(READER_DE, confirm, remove)
    refusal = answered(api, query)
    assert refusal["show_alert"] and refusal["text"] == "Das dürfen leider nur die Admins dieses Bots."
    assert bot_kb.article(victim.id).title == victim.title
    assert api.messages[key] == before, "the confirmation is neither edited nor used up"
    assert api.replies_after(confirm) == []
    assert not any(m["text"].startswith("Entfernt") for m in api.bot_messages(READER_DE["id"]))
    query = api.press(ADMIN, confirm, remove)
    api.wait_for(lambda: api.messages[key]["text"].startswith(f"Entfernt: #{victim.id}"), WAIT, "removal")
    assert not buttons(api.messages[key])
    assert all(a.id != victim.id for a in bot_kb.articles())


def test_admin_list_stats_and_reindex(api, bot, bot_kb):
    total = bot_kb.stats()["articles"]
    _, listing = ask(api, ADMIN, "/list")
    assert listing["text"].startswith(f"Artikel 1–2 von {total}\n#")
    assert re.search(r"\n#\d+ .+ · \d+ Abschnitte? · ", listing["text"])  # admins see passages and who added it
    _, stats = ask(api, ADMIN, "/stats")
    assert stats["text"].startswith(f"Artikel: {total}\nAbschnitte: ")
    question, progress = ask(api, ADMIN, "/reindex")
    done = reply_to(api, question, finished("Index neu aufgebaut"))
    assert done["message_id"] == progress["message_id"]
    stats = bot_kb.stats()
    assert done["text"] == f"Index neu aufgebaut: {stats['chunks']} Vektoren ({stats['index']['kind']})."
    assert stats["index"]["kind"] in ("flat", "pgvector-flat")


def test_question_limits_are_friendly(api, bot):
    _, reply = ask(api, READER_EN, "x" * 301)
    assert reply["text"] == "That question is too long (301 characters; at most 300). Please shorten it."
    user = someone("de")
    for _ in range(3):
        ask(api, user, "Wann öffnet die Stadtbibliothek Wernau sonntags?")
    _, reply = ask(api, user, "Und am Samstag?")
    assert reply["text"].startswith("Einen Moment bitte: höchstens 3 Fragen pro Minute.")


def test_a_sticker_photo_or_voice_message_gets_a_hint_in_private_and_nothing_in_a_group(api, bot):
    reader = someone("de")
    chat = api.private_chat(reader)
    for kind in ("sticker", "photo", "voice"):
        sent = api.send_media(reader, chat, kind)
        assert reply_to(api, sent)["text"].startswith("Ich lese nur Text: Bitte schreiben Sie Ihre Frage")
    english = someone("en")
    sent = api.send_media(english, api.private_chat(english), "voice")
    assert reply_to(api, sent)["text"].startswith("I can only read text: please type your question.")

    group = api.group_chat(-100778)
    sticker = api.send_media(english, group, "sticker")
    question = api.send_text(english, group, "/ask How many schools get solar panels?")
    first = api.wait_for(lambda: api.replies_after(sticker), WAIT, "the answer in the group")[0]
    assert first.get("reply_to_message_id") == question["message_id"], "the bot answered the sticker"


def test_questions_are_answered_while_an_article_is_added(api, bot, pages):
    add = api.send_text(ADMIN, api.private_chat(ADMIN), "/add " + pages.url("/slow"))  # the page takes 4 s
    progress = reply_to(api, add)
    assert progress["text"].startswith("Lade http://127.0.0.1")
    _, answer = ask(api, someone(), "How many solar panels will Harbourton fit on school roofs?")
    assert "1,240" in answer["text"]
    key = (ADMIN["id"], progress["message_id"])
    assert not api.messages[key]["text"].startswith("Hinzugefügt"), "the answer waited for the article"
    api.wait_for(lambda: api.messages[key]["text"].startswith("Hinzugefügt"), WAIT, "the slow article")


def test_questions_never_wait_behind_a_burst_of_admin_jobs(api, bot):
    chat = api.private_chat(ADMIN)
    before = len(api.bot_messages(ADMIN["id"]))
    api.hold("sendMessage", lambda p: p.get("chat_id") == ADMIN["id"])  # every admin job gets stuck
    try:
        jobs = [api.send_text(ADMIN, chat, f"/add x{i}") for i in range(CONCURRENT_UPDATES + 4)]
        api.wait_for(lambda: len(api.waiting("sendMessage")) == ADMIN_JOBS, WAIT, "the admin lane to fill")
        _, answer = ask(api, someone(), "How many solar panels will Harbourton fit on school roofs?")
        assert "1,240" in answer["text"]
        assert len(api.waiting("sendMessage")) == ADMIN_JOBS, "no more admin jobs than their lane holds"
    finally:
        api.release_all()
    api.wait_for(lambda: len(api.bot_messages(ADMIN["id"])) == before + len(jobs), WAIT, "every job's reply")


def test_updates_are_routed_to_lanes(api):
    def update(message: dict | None = None, data: str | None = None) -> Update:
        raw: dict = {"update_id": 1}
        if message is not None:
            chat = {"id": 5, "type": "private"}
            raw["message"] = {"message_id": 1, "date": 0, "chat": chat, "from": READER_EN, **message}
        if data is not None:
            raw["callback_query"] = {"id": "1", "from": READER_EN, "chat_instance": "c", "data": data}
        return Update.de_json(raw, None)

    admin = [{"text": "/add https://e.org"}, {"text": "/reindex"}, {"text": "/remove 3"}, {"text": "/add@bot x"}]
    admin.append({"caption": "/add", "document": {"file_id": "f", "file_unique_id": "u"}})
    admin.append({"document": {"file_id": "f", "file_unique_id": "u"}})
    assert [lane_of(update(m)) for m in admin] == ["admin"] * len(admin)
    other = [{"text": "What is /add?"}, {"text": "/help"}, {"text": "/sources"}, {"text": "/additional"}]
    assert [lane_of(update(m)) for m in other] == ["other"] * len(other)
    assert [lane_of(update(data=d)) for d in ["rm:3", "rmx:3", "q:1:1", "fb:1:+"]] == ["admin"] + ["other"] * 3
    assert lane_of(object()) == "other"


def test_a_failed_handler_is_logged_and_marked_failed(api, bot, bot_kb, all_logs):
    logged = len(all_logs.lines)
    question = fail_one_handler(api, bot_kb)
    assert not api.replies_after(question)
    since = "\n".join(all_logs.lines[logged:])
    assert "handling update" in since and "Traceback" in since and "Internal Server Error" in since


def test_a_user_who_blocked_the_bot_costs_one_log_line_not_a_traceback(api, bot, bot_kb, all_logs):
    logged = len(all_logs.lines)
    api.fail("sendMessage", 403, "Forbidden: bot was blocked by the user", times=1)
    reader = someone()
    question = api.send_text(reader, api.private_chat(reader), "Who leads the Harbourton solar project?")
    update_id = api.update_id_of(question)
    api.wait_for(lambda: ledger_states(bot_kb).get(update_id) == FAILED, WAIT, "the update to be given up")
    since = all_logs.lines[logged:]
    problems = [line for line in since if line.startswith(("WARNING", "ERROR")) and str(update_id) in line]
    assert problems == [
        f"WARNING bot.telegram_app: update {update_id}: no reply possible (Forbidden: bot was blocked by the user)"
    ]
    assert not any("Traceback" in line for line in since)


def test_the_token_is_never_logged(api, bot, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # it logs every request URL, token included
    chat = api.private_chat(ADMIN)
    message = api.send_document(ADMIN, chat, SOLAR.encode(), "solar.md", caption="/add")
    reply_to(api, message, finished("Nicht hinzugefügt"))  # already there: downloaded, then refused
    ask(api, someone(), "Who leads the Harbourton solar project?")
    assert "/bot<token>/getFile" in caplog.text
    assert TOKEN not in caplog.text and TOKEN.split(":")[1] not in caplog.text


def test_restart_loses_no_update_and_answers_none_twice(api, bot):
    reader = someone("de")
    chat = api.private_chat(reader)
    first = api.send_text(reader, chat, "Was kostete der Bau der Möwe II?")
    api.wait_for(lambda: api.update_id_of(first) in api.delivered, WAIT, "delivery")
    bot.stop()  # graceful: what was fetched is still answered
    assert len(api.replies_after(first)) == 1
    waiting = [api.send_text(reader, chat, "/sources"), api.send_text(reader, chat, "/help")]
    bot.start(api)
    api.wait_for(lambda: len(api.replies_after(first)) == 3, WAIT, "the updates sent while stopped")
    time.sleep(1.5)  # a second poll would bring any repeated update
    replies = api.replies_after(first)
    assert len(replies) == 3
    # Updates are handled concurrently, so the two replies may come in either order.
    assert sorted(r["text"][:14] for r in replies[1:]) == ["Artikel 1–2 vo", "Ich beantworte"]
    assert all(api.is_confirmed(api.update_id_of(m)) for m in [first, *waiting])


def test_webhook_mode(api, bot, tg_settings, conversation, bot_kb):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = replace(tg_settings, webhook_url="https://bot.example.org/hook/abc", port=port, secret_token="s3")
    bot.stop()
    webhook = BotThread(settings, conversation).start(api)
    try:
        assert api.webhook["url"] == "https://bot.example.org/hook/abc" and api.webhook["secret_token"] == "s3"
        reader = someone()
        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": api.private_chat(reader),
                "from": reader,
                "text": "/help",
            },
        }
        assert _post(port, update, "wrong") == 403
        assert _post(port, update, "s3") == 200  # recorded in the ledger before this 200
        assert ledger_states(bot_kb).get(1) is not None
        (reply,) = api.wait_for(lambda: api.bot_messages(reader["id"]), WAIT, "the answer to a webhook update")
        assert reply["text"].startswith("I answer questions about")
        api.wait_for(lambda: ledger_states(bot_kb).get(1) == ANSWERED, WAIT, "the update answered")
        assert _post(port, update, "s3") == 200  # Telegram repeating a delivery it thinks failed
        webhook.stop()  # finishes whatever was received
        assert len(api.bot_messages(reader["id"])) == 1, "a repeated update is not answered again"
    finally:
        if webhook.thread and webhook.thread.is_alive():
            webhook.stop()
        bot.start(api)  # polling again: PTB deletes the webhook first
    assert not api.webhook


def _post(port: int, update: dict, secret: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/hook/abc",
        data=json.dumps(update).encode(),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_unknown_methods_fail_like_telegram(api, bot):
    request = urllib.request.Request(f"{api.base_url}{TOKEN}/frobnicate", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(request, timeout=10)
    assert failure.value.code == 404
    assert json.loads(failure.value.read()) == {"ok": False, "error_code": 404, "description": "Not Found"}


def test_a_rejected_token_is_not_repeated(api, tg_settings, conversation):
    wrong = "1111111111:AAwrongwrongwrongwrongwrongwrongwrong"
    with pytest.raises(RuntimeError) as failure:
        run_bot(tg_settings, conversation, wrong)
    assert "rejected the bot token" in str(failure.value) and wrong not in str(failure.value)


def test_token_and_urls():
    assert resolve_token(TelegramSettings(token=" a:b "), {}) == "a:b"
    assert resolve_token(TelegramSettings(token="a:b"), {"TELEGRAM_BOT_TOKEN": "c:d"}) == "c:d"
    with pytest.raises(RuntimeError, match="no Telegram bot token"):
        resolve_token(TelegramSettings(), {})
    assert file_url_for("http://127.0.0.1:8081/bot") == "http://127.0.0.1:8081/file/bot"
    assert file_url_for("http://h/bot{token}/x") == "http://h/file/bot{token}/x"
    assert file_url_for("") == ""


def test_the_event_loop_never_blocked(api, bot, bot_kb, slow_callbacks):
    """Everything the module did so far, and (run alone or first) a question, an /add and a page of sources."""
    _, answer = ask(api, someone(), "How many solar panels will Harbourton fit on school roofs?")
    assert "1,240" in answer["text"]
    place = f"Moorhusen-{time.time_ns()}"  # new on every run: always added, never "already present"
    text = (
        f"/add Sitzbänke für {place}\nDie Gemeinde {place} stellt zwölf neue Sitzbänke am Seeufer auf."
        " Der Ortsbeirat hatte sie im Frühjahr beantragt, weil ältere Spaziergänger auf dem langen Weg"
        " um den See bisher keinen Platz zum Ausruhen fanden."  # at least [ingest] min_chars
    )
    question = api.send_text(ADMIN, api.private_chat(ADMIN), text)
    reply_to(api, question, finished("Hinzugefügt"))
    ask(api, someone(), "/sources")
    assert slow_callbacks.reports == []


def _block_the_loop_on_stall(app: Application) -> None:
    """A deliberately bad handler: on "/stall" it computes for 300 ms of CPU on the event loop itself."""

    async def stall(update: Update, context) -> None:
        if update.message and update.message.text == "/stall":
            started = time.process_time()
            while time.process_time() - started < 0.3:
                pass

    app.add_handler(TypeHandler(Update, stall), group=-1)


def test_the_loop_watchers_report_a_handler_that_blocks_the_loop(api, bot, tg_settings, conversation, slow_callbacks):
    """The measures behind test_the_event_loop_never_blocked do see a stall when there is one."""
    bot.stop()
    reports = len(slow_callbacks.reports)
    stalling = BotThread(tg_settings, conversation, hook=_block_the_loop_on_stall).start(api)
    try:
        ask(api, someone(), "/stall")
        watch = stalling.watch
        stalling.stop()
        caught = slow_callbacks.reports[reports:]
        assert caught and all(re.search(r"took 0\.[3-9]\d* seconds|took [1-9]", r) for r in caught), caught
        assert watch.stalls >= 1 and watch.max_own_lag >= 0.25, watch.summary()
    finally:
        del slow_callbacks.reports[reports:]  # the stall was made on purpose: not the bot's
        if stalling.thread and stalling.thread.is_alive():
            stalling.stop()
        bot.start(api)


def test_the_token_never_appears_in_the_whole_runs_logs(api, bot, bot_kb, all_logs, caplog):
    """Everything the module logged so far; and (run alone or first) a failed handler's traceback and
    httpx's request log, which the bot silences and a debugging user might turn on."""
    caplog.set_level(logging.DEBUG, logger="httpx")
    fail_one_handler(api, bot_kb)
    text = all_logs.text
    assert "/bot<token>/" in text, "request URLs were logged (and scrubbed)"
    assert "handling update" in text and "Traceback" in text, "the run included a handler error"
    assert TOKEN not in text and TOKEN.split(":")[1] not in text
