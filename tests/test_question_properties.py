"""Property-based: any question of any length, through the conversation core and the real answerer,
gets an answer or a limit message (never the "something went wrong" of a swallowed exception), and
the reply renders as strict Telegram HTML."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from newsroom import add_ferry_and_solar
from test_render_properties import TRICKY, parse_strict

from bot.answer import Answer, Answerer
from bot.config import AnswerSettings, TelegramSettings
from bot.conversation import Conversation, Incoming, Reply, User, parse_command, small_talk, strip_mention
from bot.feedback import FeedbackStore
from bot.render import plain_text, to_html
from bot.texts import say
from index.kb import KnowledgeBase
from index.settings import FetchSettings, IndexSettings

LIMIT = 1000
BOT = "articles_test_bot"
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

safe_chars = st.characters(blacklist_categories=("Cs",))
QUESTION_WORDS = ["Was kostete die Fähre?", "Who leads the project?", "Möwe II", "Harbourton", "?", "@" + BOT]
pieces = st.one_of(st.sampled_from(TRICKY + QUESTION_WORDS), st.text(safe_chars, max_size=30))
short = st.lists(pieces, max_size=30).map("".join)
questions = st.one_of(
    short,
    st.sampled_from(["", " ", "\n\t ", "\u200b", "\u00a0", "\u3000", "?", "/", "/ask", "@" + BOT]),
    st.builds(lambda t, n: (t or "x ") * n, short, st.integers(1, 3)).map(lambda t: t[: LIMIT + 5]),
    st.builds(lambda t, n: (t or "Frage ") * n, short, st.integers(50, 5000)),  # huge: up to ~150,000 characters
)


@pytest.fixture(scope="module")
def kb(tmp_path_factory, embedder):
    knowledge_base = KnowledgeBase(IndexSettings(data_dir=str(tmp_path_factory.mktemp("questions"))), embedder=embedder)
    add_ferry_and_solar(knowledge_base)
    yield knowledge_base
    knowledge_base.close()


@pytest.fixture(scope="module")
def answerer(kb):
    return Answerer(kb, AnswerSettings())


@pytest.fixture(scope="module")
def conversation(kb, answerer):
    feedback = FeedbackStore(kb.answer_log())
    settings_ = TelegramSettings(rate_limit_per_minute=0, max_question_chars=LIMIT)
    yield Conversation(kb, answerer, feedback, settings_, FetchSettings())
    feedback.close()


def _failed(replies: list[Reply]) -> bool:
    texts = {plain_text(r) for r in replies}
    return bool(texts & {say("failed", "de"), say("failed", "en")})


def _is_answer(reply: Reply) -> bool:
    return any(b.data.startswith("fb:") for row in reply.buttons for b in row)


def _check_renders(replies: list[Reply]) -> None:
    for reply in replies:
        for part in to_html(reply):
            parse_strict(part)


def _assert_answer_or_limit(reply: Reply, question: str, language: str) -> None:
    """The reply to ``question`` (as the conversation sees it): usage hint, too long, or an answer."""
    if not question:
        assert plain_text(reply) == say("ask_usage", language)
    elif len(question) > LIMIT:
        assert plain_text(reply) == say("too_long", language, length=len(question), limit=LIMIT)
    else:
        assert _is_answer(reply), plain_text(reply)[:300]


@PROPERTY
@given(questions, st.sampled_from(["de", "en"]))
def test_any_message_gets_an_answer_or_a_limit_message(conversation, text, language):
    user = User(4242, "Reader", language)
    replies = conversation.handle(Incoming(user, 4242, text, private=True, bot_username=BOT))
    assert not _failed(replies), f"an exception was swallowed for {text[:200]!r}"
    _check_renders(replies)
    command = parse_command(text)
    if not text.strip():
        assert replies == [], "nothing to answer: the bot stays quiet"
    elif command:
        assert replies or (command[1] and command[1] != BOT), "a command gets a reply unless it is another bot's"
    else:
        (reply,) = replies
        question = strip_mention(text.strip(), BOT)
        talk = small_talk(question) if question else "hello"  # a greeting, a thanks, a bare mention
        if talk:
            assert plain_text(reply) == say(talk, language)
        else:
            _assert_answer_or_limit(reply, question, language)


@PROPERTY
@given(questions, st.sampled_from(["de", "en"]))
def test_ask_command_with_any_text(conversation, text, language):
    user = User(4343, "Reader", language)
    replies = conversation.handle(Incoming(user, 4343, "/ask " + text, private=True, bot_username=BOT))
    assert not _failed(replies), f"an exception was swallowed for {text[:200]!r}"
    _check_renders(replies)
    (reply,) = replies
    _assert_answer_or_limit(reply, text.strip(), language)


@PROPERTY
@given(questions)
def test_the_answerer_answers_any_text(answerer, text):
    answer = answerer.answer(text, conversation="properties")
    assert isinstance(answer, Answer) and answer.body.strip()
    assert all(1 <= c.n <= len(answer.citations) for c in answer.citations)
    if answer.found:
        assert answer.citations and all(f"[{c.n}]" in answer.body for c in answer.citations)
