"""Streamed LLM answers end to end in Telegram: the real bot against tests/botapi_server.py, the model
being tests/llm_server.py on loopback (its timing is the test's to choose). One bot serves the module."""

from __future__ import annotations

from time import monotonic as time_now

import pytest
from answer_articles import ALL, FERRY
from botapi_server import BotApiServer
from llm_server import Behaviour, start_server
from test_llm import QUESTION, passage_numbers
from test_telegram import TOKEN, BotThread

from bot.answer import Answerer
from bot.config import AnswerSettings, LLMSettings, TelegramSettings
from bot.conversation import Conversation
from bot.feedback import FeedbackStore
from bot.render import MAX_MESSAGE
from bot.telegram_app import protect_token
from index.kb import KnowledgeBase
from index.settings import FetchSettings, IndexSettings

WAIT = 60.0
_user_ids = iter(range(8100, 8200))


def reader() -> dict:
    return BotApiServer.user(next(_user_ids), "Lea", "de")


def ferry(request: dict) -> int:
    return next(n for n, text in passage_numbers(request).items() if "4,2 Millionen Euro" in text)


# About 40 words: at 0.1 s a word the model writes for ~4 s.
SLOW_REPLY = (
    "Die neue Elektrofähre auf dem Kellersee hat nach Angaben der Gemeinde insgesamt 4,2 Millionen Euro "
    "gekostet [{n}]. Sie verbindet Seedorf und Hollwig und fährt ohne Diesel, leise und ohne Abgase über den "
    "See, so dass die Anwohner am Ufer kaum noch etwas von ihr hören [{n}]."
)


@pytest.fixture(scope="module")
def llm():
    server = start_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api():
    server = BotApiServer(TOKEN).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bot(api, llm, tmp_path_factory, embedder):
    kb = KnowledgeBase(IndexSettings(data_dir=str(tmp_path_factory.mktemp("llm-telegram"))), embedder=embedder)
    for doc in ALL:
        kb.add(doc)
    llm_settings = LLMSettings(base_url=llm.base_url, model="m", first_token_timeout=3.0)
    answerer = Answerer(kb, AnswerSettings(mode="llm"), llm=llm_settings)
    feedback = FeedbackStore(kb.answer_log())
    settings = TelegramSettings(base_url=api.base_url, rate_limit_per_minute=0, poll_timeout=1.0)
    conversation = Conversation(kb, answerer, feedback, settings, FetchSettings())
    protect_token(TOKEN)
    runner = BotThread(settings, conversation, llm=llm_settings).start(api)
    yield runner
    runner.stop()
    answerer.close()
    feedback.close()
    kb.close()


def final_answer(api: BotApiServer, question: dict, count: int = 1) -> list[dict]:
    """The bot's ``count`` messages after ``question``, once the last carries the answer's buttons."""

    def done() -> list[dict] | None:
        later = api.replies_after(question)
        return later if len(later) >= count and "reply_markup" in later[count - 1] else None

    return api.wait_for(done, WAIT, "the final answer")


def calls_in(api: BotApiServer, chat_id: int, method: str, since: float) -> list:
    return [c for c in api.calls_to(method) if c.params.get("chat_id") == chat_id and c.at >= since]


def test_answer_grows_in_one_message_then_gets_its_sources(api, bot, llm):
    llm.behaviour = Behaviour(reply=lambda request: SLOW_REPLY.format(n=ferry(request)), piece_delay=0.1)
    user = reader()
    chat = api.private_chat(user)
    question = api.send_text(user, chat, QUESTION)
    since = api.calls_to("getUpdates")[-1].at
    (message,) = final_answer(api, question)
    assert api.replies_after(question) == [message]  # one message, edited, nothing else sent
    history = message["history"]
    assert len(history) >= 3, history  # several edits while the model wrote
    assert history[0].startswith("Die neue Elektrofähre") and not history[0].startswith("Quellen")
    assert all("Quellen:" not in text for text in history[:-1])
    assert "Quellen:" in message["text"] and "[1]" in message["text"] and FERRY.title in message["text"]
    assert any(
        label.startswith("Zitat [1]")
        for row in message["reply_markup"]["inline_keyboard"]
        for label in [b["text"] for b in row]
    )
    # "typing…" came before the first words, and the chat saw at most one message or edit per second.
    actions = calls_in(api, chat["id"], "sendChatAction", since)
    sends = calls_in(api, chat["id"], "sendMessage", since) + calls_in(api, chat["id"], "editMessageText", since)
    sends.sort(key=lambda c: c.at)
    assert actions and actions[0].at <= sends[0].at
    gaps = [later.at - earlier.at for earlier, later in zip(sends, sends[1:], strict=False)]
    assert min(gaps) >= 0.9, gaps  # 1 s apart when sent; arrival at the server may jitter a little


def test_answer_longer_than_a_message_continues_in_a_second(api, bot, llm):
    sentence = "Die Fähre kostete laut Gemeinde genau 4,2 Millionen Euro und wurde in Hollwig gebaut [{n}]. "
    llm.behaviour = Behaviour(reply=lambda request: (sentence * 60).format(n=ferry(request)))
    user = reader()
    question = api.send_text(user, api.private_chat(user), QUESTION)
    first, second = final_answer(api, question, count=2)
    assert len(first["text"]) <= MAX_MESSAGE and len(second["text"]) <= MAX_MESSAGE
    assert first["text"].startswith("Die Fähre kostete") and "Quellen:" in second["text"]
    assert len(api.replies_after(question)) == 2


def test_model_dying_mid_answer_leaves_its_words_marked_and_the_extractive_answer(api, bot, llm):
    llm.behaviour = Behaviour(
        reply=lambda request: SLOW_REPLY.format(n=ferry(request)), piece_delay=0.1, break_after=25
    )
    user = reader()
    question = api.send_text(user, api.private_chat(user), QUESTION)
    cut, fallback = final_answer(api, question, count=2)
    assert cut["text"].startswith("Die neue Elektrofähre") and "…\n\n(Hier brach die Antwort" in cut["text"]
    assert "reply_markup" not in cut and len(cut["history"]) >= 1
    assert "4,2 Millionen Euro" in fallback["text"] and "Quellen:" in fallback["text"]
    assert "keine Antwort vom Sprachmodell" in fallback["text"]


def test_reply_without_valid_marker_becomes_not_found(api, bot, llm):
    llm.behaviour = Behaviour(reply="Die Fähre war wohl teuer, aber genau weiß das niemand so recht.", piece_delay=0.1)
    user = reader()
    question = api.send_text(user, api.private_chat(user), QUESTION)
    (message,) = final_answer(api, question)
    assert message["text"].startswith("Dazu habe ich in den Artikeln nichts gefunden.")
    assert message.get("history") and message["history"][0].startswith("Die Fähre war")


def test_flood_control_on_an_edit_is_waited_out(api, bot, llm):
    llm.behaviour = Behaviour(reply=lambda request: SLOW_REPLY.format(n=ferry(request)), piece_delay=0.1)
    api.fail("editMessageText", retry_after=2, times=1)
    user = reader()
    chat = api.private_chat(user)
    question = api.send_text(user, chat, QUESTION)
    since = api.calls_to("getUpdates")[-1].at
    (message,) = final_answer(api, question)
    assert "Quellen:" in message["text"]
    edits = calls_in(api, chat["id"], "editMessageText", since)
    gaps = [later.at - earlier.at for earlier, later in zip(edits, edits[1:], strict=False)]
    assert gaps and gaps[0] >= 1.9, gaps  # nothing more until Telegram's retry_after had passed


def test_groups_get_fewer_edits_than_private_chats():
    from bot.telegram_app import GROUP_EDIT_INTERVAL, ChatPace

    pace = ChatPace(1.0)
    assert pace.interval_for(4242) == 1.0
    assert pace.interval_for(-1001234) == GROUP_EDIT_INTERVAL == 3.0  # Telegram: ~20 messages a minute in a group
    assert ChatPace(5.0).interval_for(-1001234) == 5.0


def test_questions_waiting_for_the_model_never_hold_up_help(api, bot, llm):
    """Six answers being written (two at a time, [llm] max_concurrent) while someone asks for /help."""
    llm.behaviour = Behaviour(reply=lambda request: SLOW_REPLY.format(n=ferry(request)), piece_delay=0.05)
    llm.spans.clear()
    asked = len(llm.requests)
    questions = []
    for _ in range(6):
        user = reader()
        questions.append(api.send_text(user, api.private_chat(user), QUESTION))
    api.wait_for(lambda: len(llm.requests) >= asked + 2, WAIT, "the model to be busy")
    user = reader()
    started = time_now()
    help_request = api.send_text(user, api.private_chat(user), "/help")
    api.wait_for(lambda: api.replies_after(help_request), WAIT, "the help text")
    # Not behind the answers (they wait on threads of their own): otherwise /help waits ~4 s for a thread.
    assert time_now() - started < 2.5
    for question in questions:
        (message,) = final_answer(api, question)
        assert "Quellen:" in message["text"]
    events = sorted([(start, 1) for start, _ in llm.spans] + [(end, -1) for _, end in llm.spans])
    running = [sum(delta for _, delta in events[: i + 1]) for i in range(len(events))]
    assert len(llm.spans) == 6 and max(running) == 2, llm.spans  # two at a time, never more


def test_long_stream_that_ends_without_a_valid_marker_shrinks_to_one_message(api, bot, llm):
    # ~7,000 characters over ~4 s: shown in two messages before the check turns it into "not found".
    llm.behaviour = Behaviour(
        reply="Die Fähre kostete vermutlich eine Menge Geld, sagen die Leute am Ufer. " * 100, piece_delay=0.004
    )
    user = reader()
    chat = api.private_chat(user)
    question = api.send_text(user, chat, QUESTION)
    message = final_answer(api, question)[0]
    assert message["text"].startswith("Dazu habe ich in den Artikeln nichts gefunden.")
    api.wait_for(lambda: len(api.replies_after(question)) == 1, WAIT, "the second message to go")
    streamed_second = [key for key in api.deleted if key[0] == chat["id"]]
    assert len(streamed_second) == 1 and streamed_second[0][1] > message["message_id"]
    assert api.replies_after(question) == [message]
