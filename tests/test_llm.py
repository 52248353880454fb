"""The generative path against a real OpenAI-compatible HTTP server on 127.0.0.1 (tests/llm_server.py)."""

from __future__ import annotations

import re
import socket
import time

import pytest
from answer_articles import ALL, FERRY
from llm_server import Behaviour, start_server

from bot.answer import NOT_FOUND, Answerer
from bot.config import AnswerSettings, LLMSettings
from bot.llm import ChatClient, LLMError
from bot.llm_answer import normalize_markers, split_statements

QUESTION = "Wie viel hat die Elektrofähre auf dem Kellersee gekostet?"
# Across languages only names and numbers match lexically (the bundled model is English-only).
ENGLISH_QUESTION = "How much did the Elektrofähre between Seedorf and Hollwig on the Kellersee cost?"


@pytest.fixture
def server():
    llm = start_server()
    yield llm
    llm.stop()


@pytest.fixture
def loaded_kb(kb):
    for doc in ALL:
        kb.add(doc)
    return kb


def llm_answerer(kb, base_url: str, timeout: float = 5.0) -> Answerer:
    llm = LLMSettings(base_url=base_url, model="test-model", api_key_env="ARTICLEBOT_TEST_KEY", timeout=timeout)
    return Answerer(kb, AnswerSettings(mode="llm"), llm=llm)


def passage_numbers(request: dict) -> dict[int, str]:
    """The numbered passages as the answerer sent them: {n: text}."""
    user = request["messages"][-1]["content"]
    found = re.findall(r"^\[(\d+)\] (.*?)(?=^\[\d+\] |\n\n(?:Question|Frage):)", user, re.S | re.M)
    return {int(n): text for n, text in found}


def cite_passage_with(fact: str, template: str = "Die Fähre kostete {fact} [{n}]."):
    def reply(request: dict) -> str:
        n = next(n for n, text in passage_numbers(request).items() if fact in text)
        return template.format(fact=fact, n=n)

    return reply


def test_llm_answer_is_checked_and_renumbered(server, loaded_kb, monkeypatch):
    monkeypatch.setenv("ARTICLEBOT_TEST_KEY", "sk-test")
    server.behaviour = Behaviour(reply=cite_passage_with("4,2 Millionen Euro"))
    answer = llm_answerer(loaded_kb, server.base_url).answer(QUESTION)
    assert answer.mode == "llm" and answer.found
    assert answer.body == "Die Fähre kostete 4,2 Millionen Euro. [1]"
    (citation,) = answer.citations
    chunk = loaded_kb.store.chunks_by_id([citation.chunk_id])[citation.chunk_id]
    assert citation.n == 1 and citation.quote in chunk.text and "4,2 Millionen Euro" in citation.quote
    assert citation.url == FERRY.url
    request = server.requests[0]
    assert request["model"] == "test-model"
    assert QUESTION in request["messages"][-1]["content"]
    assert "Antworte auf Deutsch" in request["messages"][0]["content"]
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


def test_english_question_asks_for_an_english_reply(server, loaded_kb):
    server.behaviour = Behaviour(reply=cite_passage_with("4,2 Millionen Euro", "The ferry cost {fact} [{n}]."))
    answer = llm_answerer(loaded_kb, server.base_url).answer(ENGLISH_QUESTION)
    assert answer.language == "en" and answer.found and answer.body.endswith("[1]")
    assert "Answer in English" in server.requests[0]["messages"][0]["content"]


def test_marker_to_a_missing_passage_is_removed(server, loaded_kb):
    def reply(request: dict) -> str:
        n = next(n for n, text in passage_numbers(request).items() if "4,2 Millionen" in text)
        return f"Die Fähre kostete 4,2 Millionen Euro [{n}][42]. Sie fährt mit Wasserstoff [17]."

    server.behaviour = Behaviour(reply=reply)
    answer = llm_answerer(loaded_kb, server.base_url).answer(QUESTION)
    assert answer.found
    assert answer.body == "Die Fähre kostete 4,2 Millionen Euro. [1]"  # the sentence citing only [17] is gone
    assert [c.n for c in answer.citations] == [1]


def test_reply_citing_only_missing_passages_is_not_found(server, loaded_kb):
    server.behaviour = Behaviour(reply="Die Fähre kostete 4,2 Millionen Euro [9].")
    answer = llm_answerer(loaded_kb, server.base_url).answer(QUESTION)
    assert answer.mode == "llm" and not answer.found
    assert answer.body == NOT_FOUND["de"] and answer.citations == []


def test_reply_without_markers_is_not_found(server, loaded_kb):
    server.behaviour = Behaviour(reply="Die Fähre kostete etwa vier Millionen Euro.")
    answer = llm_answerer(loaded_kb, server.base_url).answer(QUESTION)
    assert not answer.found and answer.body == NOT_FOUND["de"]


def test_model_saying_not_found_is_not_found(server, loaded_kb):
    server.behaviour = Behaviour(reply="NOT_FOUND")
    answer = llm_answerer(loaded_kb, server.base_url).answer(QUESTION)
    assert answer.mode == "llm" and not answer.found and answer.body == NOT_FOUND["de"]


def test_irrelevant_question_does_not_reach_the_model(server, loaded_kb):
    answer = llm_answerer(loaded_kb, server.base_url).answer("What is the boiling point of mercury?")
    assert not answer.found and answer.body == NOT_FOUND["en"]
    assert server.requests == []


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour(raw=b"this is not json"),
        Behaviour(raw=b'{"choices": []}'),
        Behaviour(raw=b'{"choices": [{"message": {"role": "assistant", "content": null}}]}'),
        Behaviour(status=500, raw=b'{"error": "model crashed"}'),
    ],
    ids=["not-json", "no-choices", "null-content", "http-500"],
)
def test_malformed_reply_falls_back_to_extractive(server, loaded_kb, behaviour):
    server.behaviour = behaviour
    answer = llm_answerer(loaded_kb, server.base_url).answer(QUESTION)
    assert answer.mode == "extractive-fallback"
    assert answer.found and "4,2 Millionen Euro" in answer.body and answer.citations


def test_timeout_falls_back_to_extractive(server, loaded_kb):
    answerer = llm_answerer(loaded_kb, server.base_url, timeout=0.5)
    answerer.answer(QUESTION)  # warm: model and sentence cache, so the timing below is the timeout's
    server.behaviour = Behaviour(reply="zu spät [1].", delay=10.0)
    started = time.monotonic()
    answer = answerer.answer(QUESTION)
    assert time.monotonic() - started < 6.0  # did not wait for the 10 s reply
    assert answer.mode == "extractive-fallback" and "4,2 Millionen Euro" in answer.body


def test_cli_marks_the_fallback(loaded_kb, monkeypatch, capsys):
    from bot import cli
    from bot.config import Config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = Config()
    config.answer.mode = "llm"
    config.llm = LLMSettings(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout=2.0)
    monkeypatch.setattr(cli, "open_kb", lambda _: loaded_kb)
    monkeypatch.setattr(cli, "load_config", lambda *args: config)
    assert cli.main(["ask", QUESTION]) == 0
    out = capsys.readouterr().out
    assert "4,2 Millionen Euro" in out and "Sprachmodell nicht erreichbar" in out


def test_refused_connection_falls_back_to_extractive(loaded_kb):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    answer = llm_answerer(loaded_kb, f"http://127.0.0.1:{port}/v1").answer(QUESTION)
    assert answer.mode == "extractive-fallback" and answer.found


def test_llm_mode_needs_settings(loaded_kb):
    with pytest.raises(ValueError):
        Answerer(loaded_kb, AnswerSettings(mode="llm"))
    with pytest.raises(LLMError):
        ChatClient(LLMSettings())


def test_normalize_markers_and_split_statements():
    assert normalize_markers("**Ja**, das stimmt. [1, 3] Weiter [2].") == "Ja, das stimmt. [1][3] Weiter [2]."
    statements = split_statements(normalize_markers("Erster Satz. [1] Zweiter Satz [2][4]. Baujahr 1956 [3]. Ohne."))
    assert statements == [("Erster Satz.", [1]), ("Zweiter Satz.", [2, 4]), ("Baujahr 1956.", [3]), ("Ohne.", [])]
