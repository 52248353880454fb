"""Streaming against a real llama.cpp server (llama-cpp-python, SmolLM2-135M on one thread).

The model is far too small to cite reliably, which is the point of the checks: whatever it writes,
the final answer is either "not found" or cites only passages that exist with verbatim quotes. The
deterministic cases (a reply that does cite, malformed replies) run against tests/llm_server.py.
"""

from __future__ import annotations

import re
import time

import pytest
from answer_articles import ALL
from botapi_server import BotApiServer
from llama_server import MODEL_NAME, LlamaServer, llama_available, start_llama
from test_llm import QUESTION
from test_telegram import TOKEN, BotThread

from bot.answer import NOT_FOUND, Answer, Answerer
from bot.config import AnswerSettings, LLMSettings, TelegramSettings
from bot.conversation import Conversation
from bot.feedback import FeedbackStore
from bot.llm import ChatClient
from bot.telegram_app import protect_token
from index.kb import KnowledgeBase
from index.settings import FetchSettings, IndexSettings

pytestmark = pytest.mark.skipif(
    not llama_available(), reason="llama-cpp-python is not installed (bash .ci/llama.sh installs it and the model)"
)

# The shared machine may be busy: the real server's first token can take seconds (the prompt is read
# on one thread), so these limits are generous; the fallback tests set tight ones of their own.
PATIENT = {"first_token_timeout": 90.0, "timeout": 180.0}
SHORT_PROMPT = [
    {"role": "system", "content": "You are a helpful assistant. Answer in English."},
    {"role": "user", "content": "Describe a ferry crossing a lake in a few sentences."},
]


@pytest.fixture(scope="session")
def llama():
    server = start_llama()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def articles(tmp_path_factory, embedder):
    kb = KnowledgeBase(IndexSettings(data_dir=str(tmp_path_factory.mktemp("llama"))), embedder=embedder)
    for doc in ALL:
        kb.add(doc)
    yield kb
    kb.close()


def real_answerer(kb, base_url: str, **llm) -> Answerer:
    settings = LLMSettings(base_url=base_url, model=MODEL_NAME, **{"max_tokens": 48, **PATIENT, **llm})
    # Two passages keep the prompt (and so the wait for the first token) short on one thread.
    return Answerer(kb, AnswerSettings(mode="llm", passages=2), llm=settings)


def assert_checked(answer: Answer, kb) -> None:
    """Whatever the model wrote: not found, or valid markers with verbatim quotes."""
    if not answer.found:
        assert answer.body == NOT_FOUND[answer.language] and answer.citations == []
        return
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.body)}
    assert numbers == {c.n for c in answer.citations}
    chunks = kb.store.chunks_by_id([c.chunk_id for c in answer.citations])
    assert all(c.quote in chunks[c.chunk_id].text for c in answer.citations)


def test_real_server_streams_in_several_pieces_and_honours_max_tokens(llama):
    client = ChatClient(LLMSettings(base_url=llama.base_url, model=MODEL_NAME, max_tokens=24, **PATIENT))
    try:
        pieces = list(client.stream(SHORT_PROMPT))
        assert len(pieces) >= 5, pieces
        assert 1 <= len(pieces) <= 24  # one token per event at most: the stream ended at max_tokens
        short = ChatClient(LLMSettings(base_url=llama.base_url, model=MODEL_NAME, max_tokens=3, **PATIENT))
        assert 1 <= len(list(short.stream(SHORT_PROMPT))) <= 3
        short.close()
    finally:
        client.close()


def test_real_answer_streams_then_is_checked(llama, articles):
    answerer = real_answerer(articles, llama.base_url)
    shown: list[str] = []
    answer = answerer.answer_stream(QUESTION, shown.append)
    answerer.close()
    assert len(shown) >= 3, shown
    assert all(later.startswith(earlier[:-1]) for earlier, later in zip(shown, shown[1:], strict=False))
    assert answer.mode == "llm"
    assert_checked(answer, articles)


def test_real_server_killed_mid_stream_keeps_the_shown_text_and_falls_back(articles):
    server = LlamaServer().wait_ready()
    shown: list[str] = []

    def show_then_kill(text: str) -> None:
        shown.append(text)
        if len(shown) == 3:
            server.kill()  # SIGKILL while it is streaming to us

    try:
        answerer = real_answerer(articles, server.base_url, max_tokens=200)
        answer = answerer.answer_stream(QUESTION, show_then_kill)
        answerer.close()
    finally:
        server.stop()
    assert server.process.returncode == -9
    assert len(shown) >= 3
    assert answer.mode == "extractive-fallback" and answer.cut_off == shown[-1]
    assert answer.found and "4,2 Millionen Euro" in answer.body and answer.citations


def test_real_server_slower_than_the_first_token_limit_falls_back(llama, articles):
    # 1 ms: llama.cpp caches the prompt's shared prefix (the passages), so after the warm-up its first token
    # can come within a few tens of milliseconds; no server answers within one.
    answerer = real_answerer(articles, llama.base_url, first_token_timeout=0.001)
    answerer.answer("Wie viel kostete die Fähre?")  # warm the retrieval side: the clock below is the model's
    shown: list[str] = []
    started = time.monotonic()
    answer = answerer.answer_stream(QUESTION, shown.append)
    answerer.close()
    assert time.monotonic() - started < 5.0
    assert shown == [] and answer.mode == "extractive-fallback" and answer.cut_off == ""
    assert "4,2 Millionen Euro" in answer.body


def test_real_server_through_telegram_grows_one_message_at_the_configured_pace(llama, articles):
    # How long the model writes is its own choice (often about a second): a short edit interval makes
    # several edits likely; the once-a-second default is checked with the loopback model
    # (test_llm_telegram.py), whose timing the test controls.
    api = BotApiServer(TOKEN).start()
    answerer = real_answerer(articles, llama.base_url, max_tokens=96, edit_interval=0.25)
    feedback = FeedbackStore(articles.answer_log())
    settings = TelegramSettings(base_url=api.base_url, rate_limit_per_minute=0, poll_timeout=1.0)
    protect_token(TOKEN)
    conversation = Conversation(articles, answerer, feedback, settings, FetchSettings())
    runner = BotThread(settings, conversation, llm=answerer.chat.settings).start(api)
    try:
        user = BotApiServer.user(8301, "Jo", "de")
        chat = api.private_chat(user)
        question = api.send_text(user, chat, QUESTION)
        since = time.monotonic()

        def final() -> dict | None:
            later = api.replies_after(question)
            return later[-1] if later and "reply_markup" in later[-1] else None

        message = api.wait_for(final, 240.0, "the final answer")
        assert api.replies_after(question) == [message]  # one message: the stream, edited into the answer
        calls = [
            c
            for c in api.calls_to("sendMessage") + api.calls_to("editMessageText")
            if c.params.get("chat_id") == chat["id"] and c.at >= since
        ]
        calls.sort(key=lambda c: c.at)
        assert calls[0].method == "sendMessage" and "reply_markup" not in calls[0].params  # the model's words
        assert calls[-1].method == "editMessageText" and calls[-1].params.get("reply_markup")  # the checked answer
        assert message["text"].startswith(NOT_FOUND["de"]) or "Quellen:" in message["text"]
        gaps = [later.at - earlier.at for earlier, later in zip(calls, calls[1:], strict=False)]
        assert min(gaps) >= 0.24, gaps
    finally:
        runner.stop()
        api.stop()
        answerer.close()
        feedback.close()
