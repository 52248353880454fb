"""The generative path against a real OpenAI-compatible HTTP server on 127.0.0.1 (tests/llm_server.py)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import pytest
from answer_articles import ALL, FERRY
from llm_server import Behaviour, start_server

from bot.answer import NOT_FOUND, Answerer
from bot.config import AnswerSettings, LLMSettings
from bot.llm import ChatClient, FairSlots, LLMError
from bot.llm_answer import best_quote, normalize_markers, split_statements
from index.chunking import sentence_spans

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
    config.storage.data_dir = str(loaded_kb.data_dir)  # the knowledge base's own, not ./data
    config.answer.mode = "llm"
    config.llm = LLMSettings(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout=2.0)
    monkeypatch.setattr(cli, "open_kb", lambda _: loaded_kb)
    monkeypatch.setattr(cli, "load_config", lambda *args: config)
    assert cli.main(["ask", QUESTION]) == 0
    out = capsys.readouterr().out
    assert "4,2 Millionen Euro" in out and "keine Antwort vom Sprachmodell" in out


def test_refused_connection_falls_back_to_extractive(loaded_kb, caplog):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    answer = llm_answerer(loaded_kb, f"http://127.0.0.1:{port}/v1").answer(QUESTION)
    assert answer.mode == "extractive-fallback" and answer.found
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]  # one line, with the cause
    message = warning.getMessage()  # said as what it is: no stream ever started, so none "broke off"
    assert (
        "LLM failed, answering extractively" in message and f"cannot connect to http://127.0.0.1:{port}/v1" in message
    )
    assert "\n" not in warning.getMessage() and warning.exc_info is None


def test_llm_mode_needs_settings(loaded_kb):
    with pytest.raises(ValueError):
        Answerer(loaded_kb, AnswerSettings(mode="llm"))
    with pytest.raises(LLMError):
        ChatClient(LLMSettings())


def test_normalize_markers_and_split_statements():
    assert normalize_markers("**Ja**, das stimmt. [1, 3] Weiter [2].") == "Ja, das stimmt. [1][3] Weiter [2]."
    statements = split_statements(normalize_markers("Erster Satz. [1] Zweiter Satz [2][4]. Baujahr 1956 [3]. Ohne."))
    assert statements == [("Erster Satz.", [1]), ("Zweiter Satz.", [2, 4]), ("Baujahr 1956.", [3]), ("Ohne.", [])]


# --- streaming (the loopback server's timing is under the test's control) ---------------------


def stream_answerer(kb, base_url: str, **llm_settings) -> Answerer:
    llm = LLMSettings(base_url=base_url, model="test-model", **{"timeout": 5.0, **llm_settings})
    return Answerer(kb, AnswerSettings(mode="llm"), llm=llm)


def piped_chat(kb, base_url: str) -> str:
    """What the terminal chat prints, piped, for QUESTION answered by the model at ``base_url``."""
    import io

    from bot.chat import run_chat
    from bot.config import TelegramSettings
    from bot.conversation import Conversation
    from bot.feedback import FeedbackStore
    from index.settings import FetchSettings

    feedback = FeedbackStore(kb.answer_log())
    answerer = stream_answerer(kb, base_url)
    conversation = Conversation(kb, answerer, feedback, TelegramSettings(), FetchSettings(), admins=[0])
    out = io.StringIO()
    run_chat(conversation, [QUESTION + "\n"], out, io.StringIO(), "de")
    feedback.close()
    return out.getvalue()


def ferry_passage(request: dict) -> int:
    return next(n for n, text in passage_numbers(request).items() if "4,2 Millionen Euro" in text)


FERRY_REPLY = "Die Fähre kostete 4,2 Millionen Euro [{n}]. Gebaut wurde sie in zwei Jahren [{n}]."


def test_stream_shows_the_growing_reply_then_the_checked_answer(server, loaded_kb):
    server.behaviour = Behaviour(reply=lambda request: FERRY_REPLY.format(n=ferry_passage(request)))
    shown: list[str] = []
    answer = stream_answerer(loaded_kb, server.base_url).answer_stream(QUESTION, shown.append)
    assert server.requests[0]["stream"] is True
    assert len(shown) >= 5, shown  # word by word
    assert all(later.startswith(earlier) for earlier, later in zip(shown, shown[1:], strict=False))
    assert shown[-1].startswith("Die Fähre kostete 4,2 Millionen Euro")
    assert answer.mode == "llm" and answer.found
    assert answer.body == "Die Fähre kostete 4,2 Millionen Euro. [1] Gebaut wurde sie in zwei Jahren. [1]"
    assert answer.citations[0].url == FERRY.url


def test_stream_never_shows_not_found_or_markers_to_missing_passages(server, loaded_kb):
    shown: list[str] = []
    answerer = stream_answerer(loaded_kb, server.base_url)
    server.behaviour = Behaviour(reply="NOT_FOUND")
    answer = answerer.answer_stream(QUESTION, shown.append)
    assert shown == [] and not answer.found and answer.body == NOT_FOUND["de"]
    server.behaviour = Behaviour(reply="Die Fähre kostete viel [42]. Mehr weiß ich nicht [1, 99].")
    answerer.answer_stream(QUESTION, shown.append)
    assert shown and not any("42" in text or "99" in text for text in shown), shown


def test_stream_without_a_valid_marker_ends_as_not_found(server, loaded_kb):
    shown: list[str] = []
    server.behaviour = Behaviour(reply="Die Fähre war ziemlich teuer, glaube ich.")
    answer = stream_answerer(loaded_kb, server.base_url).answer_stream(QUESTION, shown.append)
    assert shown[-1] == "Die Fähre war ziemlich teuer, glaube ich."  # shown while it was written …
    assert not answer.found and answer.body == NOT_FOUND["de"] and answer.mode == "llm"  # … replaced after


def test_stream_cut_off_midway_keeps_what_was_shown_and_falls_back(server, loaded_kb):
    shown: list[str] = []
    server.behaviour = Behaviour(reply="Die Fähre kostete nach Angaben der Gemeinde 4,2 Millionen [1].", break_after=4)
    answer = stream_answerer(loaded_kb, server.base_url).answer_stream(QUESTION, shown.append)
    assert shown[-1] == "Die Fähre kostete nach"
    assert answer.mode == "extractive-fallback" and answer.cut_off == shown[-1]
    assert answer.found and "4,2 Millionen Euro" in answer.body and answer.citations


def test_stream_silent_before_the_first_words_falls_back_in_time(server, loaded_kb):
    answerer = stream_answerer(loaded_kb, server.base_url, first_token_timeout=0.5, timeout=30.0)
    answerer.answer(QUESTION)  # warm caches, so the timing below is the first-token limit's
    shown: list[str] = []
    server.behaviour = Behaviour(reply="Zu spät [1].", delay=6.0)
    started = time.monotonic()
    answer = answerer.answer_stream(QUESTION, shown.append)
    assert time.monotonic() - started < 3.0
    assert shown == [] and answer.mode == "extractive-fallback" and answer.cut_off == ""
    assert "4,2 Millionen Euro" in answer.body


def test_stream_stalling_or_too_slow_is_cut_off(server, loaded_kb):
    reply = "Die Fähre kostete 4,2 Millionen Euro und fuhr im Mai zum ersten Mal über den See [1]."
    stalling = stream_answerer(loaded_kb, server.base_url, first_token_timeout=0.5, timeout=30.0)
    server.behaviour = Behaviour(reply=reply, piece_delay=2.0)
    answer = stalling.answer_stream(QUESTION, lambda text: None)
    assert answer.mode == "extractive-fallback" and answer.cut_off == "Die"
    slow = stream_answerer(loaded_kb, server.base_url, first_token_timeout=5.0, timeout=1.0)
    server.behaviour = Behaviour(reply=reply, piece_delay=0.3)
    started = time.monotonic()
    answer = slow.answer_stream(QUESTION, lambda text: None)
    assert time.monotonic() - started < 2.5
    assert answer.mode == "extractive-fallback" and answer.cut_off.startswith("Die Fähre")


@pytest.mark.parametrize(
    "events",
    [
        ['data: {"error": {"message": "out of memory"}}'],
        ["data: {not json"],
        ['data: {"choices": [{"delta": {"content": "Die [1]"}, "finish_reason": null}]}'],  # no end
    ],
    ids=["error-event", "bad-json", "no-end"],
)
def test_malformed_stream_falls_back(server, loaded_kb, events):
    server.behaviour = Behaviour(raw_events=events)
    answer = stream_answerer(loaded_kb, server.base_url).answer_stream(QUESTION, lambda text: None)
    assert answer.mode == "extractive-fallback" and "4,2 Millionen Euro" in answer.body


def test_max_concurrent_requests_wait_in_turn(server, loaded_kb):
    answerer = stream_answerer(loaded_kb, server.base_url, max_concurrent=1)
    answerer.answer(QUESTION)  # warm
    server.spans.clear()
    server.behaviour = Behaviour(reply=cite_passage_with("4,2 Millionen Euro"), piece_delay=0.1)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(answerer.answer(QUESTION))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a.mode for a in answers] == ["llm"] * 3
    spans = sorted(server.spans)
    assert len(spans) == 3
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)), spans


def test_waiters_get_their_slot_in_order_of_arrival():
    slots = FairSlots(1)
    order: list[int] = []
    with slots.slot(5.0):
        threads = []
        for i in range(5):
            thread = threading.Thread(target=lambda i=i: _take(slots, i, order))
            thread.start()
            threads.append(thread)
            while slots.waiting < i + 1:  # each waiter queued before the next arrives
                time.sleep(0.005)
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]
    with slots.slot(5.0), pytest.raises(LLMError, match="no free slot"):
        _take(slots, 9, order, wait=0.2)


def _take(slots: FairSlots, i: int, order: list[int], wait: float = 5.0) -> None:
    with slots.slot(wait):
        order.append(i)


def test_streamed_cli_ask_prints_the_stream_then_the_answer(server, loaded_kb, monkeypatch, capsys):
    from bot import cli
    from bot.config import Config

    config = Config()
    config.storage.data_dir = str(loaded_kb.data_dir)  # the knowledge base's own, not ./data
    config.answer.mode = "llm"
    config.llm = LLMSettings(base_url=server.base_url, model="m", timeout=5.0)
    server.behaviour = Behaviour(reply=cite_passage_with("4,2 Millionen Euro"))
    monkeypatch.setattr(cli, "open_kb", lambda _: loaded_kb)
    monkeypatch.setattr(cli, "load_config", lambda *args: config)
    assert cli.main(["ask", QUESTION]) == 0
    streamed, _, final = capsys.readouterr().out.partition("\n\n")
    assert streamed.startswith("Die Fähre kostete 4,2 Millionen Euro [")  # the model's own marker numbers
    assert final.startswith("Die Fähre kostete 4,2 Millionen Euro. [1]") and "Quellen:" in final
    assert cli.main(["ask", "--json", QUESTION]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["answer"] == "Die Fähre kostete 4,2 Millionen Euro. [1]"  # one line: the answer only


def test_cli_shows_a_cut_off_answer_and_the_fallback(server, loaded_kb, monkeypatch, capsys):
    from bot import cli
    from bot.config import Config

    config = Config()
    config.storage.data_dir = str(loaded_kb.data_dir)  # the knowledge base's own, not ./data
    config.answer.mode = "llm"
    config.llm = LLMSettings(base_url=server.base_url, model="m", timeout=5.0)
    server.behaviour = Behaviour(reply="Die Fähre kostete nach Angaben der Gemeinde viel [1].", break_after=3)
    monkeypatch.setattr(cli, "open_kb", lambda _: loaded_kb)
    monkeypatch.setattr(cli, "load_config", lambda *args: config)
    assert cli.main(["ask", QUESTION]) == 0
    out = capsys.readouterr().out
    # Piped, the streamed words stay where they were printed and are not repeated under them.
    assert out.startswith("Die Fähre kostete\n\n(Hier brach die Antwort des Sprachmodells ab")
    assert out.count("Die Fähre kostete") == 1
    assert "4,2 Millionen Euro" in out and "keine Antwort vom Sprachmodell" in out
    # On a terminal the stream is wiped (nothing kept above): the answer then shows the cut-off words itself.
    answer = stream_answerer(loaded_kb, server.base_url).answer_stream(QUESTION, lambda text: None)
    assert answer.cut_off == "Die Fähre kostete"
    assert cli.format_answer_text(answer).startswith("Die Fähre kostete …\n(Hier brach")
    assert cli.format_answer_text(answer, kept="Die Fähre kostete").startswith("(Hier brach")


def test_terminal_chat_prints_the_stream_then_the_checked_answer(server, loaded_kb, tmp_path):
    server.behaviour = Behaviour(reply=cite_passage_with("4,2 Millionen Euro"))
    printed = piped_chat(loaded_kb, server.base_url)
    streamed, _, final = printed[printed.index("Die Fähre") :].partition("\n\n")  # after the greeting
    assert streamed.startswith("Die Fähre kostete 4,2 Millionen Euro [")
    assert final.startswith("Die Fähre kostete 4,2 Millionen Euro. [1]") and "Quellen:" in final


def test_quote_is_the_sentence_that_supports_the_statement_even_without_shared_words(server, loaded_kb):
    def reply(request: dict) -> str:
        n = next(n for n, text in passage_numbers(request).items() if "Pennick" in text)
        return f"Pupils had long wanted a quiet place to revise [{n}]."  # no word in common with the article

    server.behaviour = Behaviour(reply=reply)
    answer = llm_answerer(loaded_kb, server.base_url).answer("Why does Brackenford library open on Sundays?")
    assert answer.found, answer
    (citation,) = answer.citations
    assert (
        citation.quote
        == "Head librarian Oliver Pennick said that students had asked for weekend study space for years."
    )


def test_best_quote_prefers_shared_terms_then_similarity():
    text = "Die Fähre kostete 4,2 Millionen Euro. Sie fährt ab Mai. Der Akku wird nachts geladen."
    assert best_quote(text, "Der Preis lag bei 4,2 Millionen") == "Die Fähre kostete 4,2 Millionen Euro."
    spans = sentence_spans(text)
    closest_to_third = [0.1, 0.2, 0.9]
    assert best_quote(text, "Strom tankt sie im Dunkeln", spans, closest_to_third.__getitem__) == (
        "Der Akku wird nachts geladen."
    )
    # One shared term outweighs any similarity.
    assert best_quote(text, "Im Mai geht es los", spans, closest_to_third.__getitem__) == "Sie fährt ab Mai."


# --- an admin's mistakes in [llm], and endpoints that answer in their own way ------------------


@pytest.mark.parametrize(
    ("llm_lines", "pattern"),
    [
        ('base_url = "127.0.0.1:8080"\nmodel = "m"', r"llm\.base_url: must be an http\(s\) URL .*'127\.0\.0\.1:8080'"),
        ('base_url = "htp://127.0.0.1:8080/v1"\nmodel = "m"', r"llm\.base_url: must be an http\(s\) URL"),
        ('base_url = "http://[::1/v1"\nmodel = "m"', r"llm\.base_url: not a valid URL"),
        ('base_url = "http://127.0.0.1:80a/v1"\nmodel = "m"', r"llm\.base_url: not a valid URL"),
        ('model = "m"', r'answer\.mode = "llm" needs llm\.base_url and llm\.model'),
        ('base_url = "http://127.0.0.1:8080/v1"', r'answer\.mode = "llm" needs llm\.base_url and llm\.model'),
    ],
    ids=["no-scheme", "bad-scheme", "unparsable", "bad-port", "no-base-url", "no-model"],
)
def test_a_bad_llm_section_is_one_line_naming_the_key_before_anything_opens(llm_lines, pattern, tmp_path, capsys):
    from bot import cli

    path = tmp_path / "llm.toml"
    path.write_text(f'[answer]\nmode = "llm"\n[llm]\n{llm_lines}\n')
    code = cli.main(["--config", str(path), "--data-dir", str(tmp_path / "data"), "ask", QUESTION])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err  # one line, no traceback
    assert re.match(rf"articlebot: config error: {re.escape(str(path))}: {pattern}", err), err
    assert not (tmp_path / "data").exists()


def test_the_client_refuses_a_base_url_it_could_not_send_to():
    # Settings built in code skip the config file's checks; an unparsable URL used to escape as a traceback.
    with pytest.raises(LLMError, match="base_url: not a valid URL"):
        ChatClient(LLMSettings(base_url="http://[::1/v1", model="m"))
    with pytest.raises(LLMError, match=r"base_url: must be an http\(s\) URL"):
        ChatClient(LLMSettings(base_url="localhost:11434/v1", model="m"))


def test_a_server_that_ignores_stream_still_answers(server, loaded_kb):
    # Some endpoints answer "stream": true with one JSON completion; that is a whole reply, not a broken stream.
    server.behaviour = Behaviour(reply=cite_passage_with("4,2 Millionen Euro"))
    answerer = stream_answerer(loaded_kb, server.base_url)
    answerer.answer(QUESTION)  # one request to learn the ferry passage's number
    n = ferry_passage(server.requests[0])
    server.behaviour = Behaviour(
        raw=json.dumps(_completion_body(f"Die Fähre kostete 4,2 Millionen Euro [{n}].")).encode()
    )
    shown: list[str] = []
    answer = answerer.answer_stream(QUESTION, shown.append)
    assert server.requests[-1]["stream"] is True
    assert answer.mode == "llm" and answer.found and answer.body == "Die Fähre kostete 4,2 Millionen Euro. [1]"


def _completion_body(content: str) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


def test_a_page_that_is_no_stream_is_named_and_falls_back(server, loaded_kb, caplog):
    server.behaviour = Behaviour(raw=b"<html><body>Welcome to nginx!</body></html>", content_type="text/html")
    client = ChatClient(LLMSettings(base_url=server.base_url, model="m", timeout=5.0))
    with pytest.raises(LLMError, match=r"not a chat-completions stream: '<html><body>Welcome to nginx!"):
        list(client.stream([{"role": "user", "content": "hi"}]))
    client.close()
    answer = stream_answerer(loaded_kb, server.base_url).answer_stream(QUESTION, lambda text: None)
    assert answer.mode == "extractive-fallback" and "4,2 Millionen Euro" in answer.body
    assert "not a chat-completions stream" in caplog.text


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_refusals_say_what_to_check(server, monkeypatch, stream):
    refusal = b'{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}'
    messages = [{"role": "user", "content": "hi"}]

    def failure(api_key_env: str) -> str:
        client = ChatClient(LLMSettings(base_url=server.base_url, model="m", api_key_env=api_key_env, stream=stream))
        try:
            with pytest.raises(LLMError) as caught:
                list(client.stream(messages)) if stream else client.complete(messages)
        finally:
            client.close()
        return str(caught.value)

    monkeypatch.delenv("ARTICLEBOT_UNSET_KEY", raising=False)
    monkeypatch.setenv("ARTICLEBOT_WRONG_KEY", "sk-wrong")
    server.behaviour = Behaviour(status=401, raw=refusal)
    assert failure("ARTICLEBOT_UNSET_KEY").startswith(
        "HTTP 401 (the endpoint wants an API key: $ARTICLEBOT_UNSET_KEY, which [llm] api_key_env names, is not set)"
    )
    assert failure("ARTICLEBOT_WRONG_KEY").startswith(
        "HTTP 401 (the endpoint refused the API key in $ARTICLEBOT_WRONG_KEY)"
    )
    assert "Incorrect API key provided" in failure("")
    assert "name its environment variable in [llm] api_key_env" in failure("")
    server.behaviour = Behaviour(status=404, raw=b'{"detail": "Not Found"}')
    assert failure("") == (
        f"HTTP 404 (no chat-completions API at {server.base_url}/chat/completions: check [llm] base_url, e.g. …/v1, "
        'and model): {"detail": "Not Found"}'
    )


def test_an_unset_key_for_a_remote_endpoint_is_said_once_at_start(monkeypatch, caplog):
    monkeypatch.delenv("ARTICLEBOT_UNSET_KEY", raising=False)
    for local in ("http://127.0.0.1:8080/v1", "http://localhost:11434/v1", "http://192.168.1.20:8000/v1"):
        ChatClient(LLMSettings(base_url=local, model="m", api_key_env="ARTICLEBOT_UNSET_KEY")).close()
    ChatClient(LLMSettings(base_url="https://llm.example.org/v1", model="m", api_key_env="")).close()
    assert caplog.records == []  # a server of one's own needs no key, and "" says none is wanted
    ChatClient(
        LLMSettings(base_url="https://llm.example.org/v1", model="m", api_key_env="ARTICLEBOT_UNSET_KEY")
    ).close()
    (record,) = caplog.records
    assert record.levelname == "WARNING" and "$ARTICLEBOT_UNSET_KEY, which is not set" in record.getMessage()
    assert "llm.example.org" in record.getMessage()


def test_a_terminal_wipes_the_stream_before_the_checked_answer(monkeypatch):
    import io
    import os

    from bot.chat import TerminalStream

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("shutil.get_terminal_size", lambda *args: os.terminal_size((20, 24)))
    screen = Terminal()
    stream = TerminalStream(screen)
    for shown in ("Die Fähre", "Die Fähre kostete 4,2 Millionen", "Die Fähre kostete 4,2 Millionen Euro.\n\nSie"):
        stream(shown)
    stream.finish()
    # 37 + 0 + 3 characters on lines 20 wide: rows 2, 1 and 1; the cursor goes up 3 and clears to the end.
    assert screen.getvalue() == "Die Fähre kostete 4,2 Millionen Euro.\n\nSie\r\x1b[3A\x1b[J"
    piped = io.StringIO()
    stream = TerminalStream(piped)
    stream("Die Fähre")
    stream.finish()
    assert piped.getvalue() == "Die Fähre\n\n"  # a transcript keeps what was shown, the answer follows


def test_piped_chat_shows_a_cut_off_stream_once(server, loaded_kb):
    server.behaviour = Behaviour(reply="Die Fähre kostete nach Angaben der Gemeinde viel [1].", break_after=3)
    printed = piped_chat(loaded_kb, server.base_url)
    assert printed.count("Die Fähre kostete") == 1, printed  # streamed once, not repeated above the note
    assert "Die Fähre kostete\n\n(Hier brach die Antwort des Sprachmodells ab" in printed
    assert "4,2 Millionen Euro" in printed and "keine Antwort vom Sprachmodell" in printed


def test_piped_words_that_cite_nothing_are_said_not_to_count(server, loaded_kb, monkeypatch, capsys, caplog):
    import logging

    from bot import cli
    from bot.config import Config

    server.behaviour = Behaviour(reply="Die Fähre war ziemlich teuer, glaube ich.")  # no marker: "not found"
    note = "(Die Antwort des Sprachmodells oben belegt nichts mit den Artikeln und gilt nicht.)"
    config = Config()
    config.storage.data_dir = str(loaded_kb.data_dir)
    config.answer.mode = "llm"
    config.llm = LLMSettings(base_url=server.base_url, model="m", timeout=5.0)
    monkeypatch.setattr(cli, "open_kb", lambda _: loaded_kb)
    monkeypatch.setattr(cli, "load_config", lambda *args: config)
    assert cli.main(["ask", QUESTION]) == 0
    assert capsys.readouterr().out == f"Die Fähre war ziemlich teuer, glaube ich.\n\n{note}\n\n{NOT_FOUND['de']}\n"
    with caplog.at_level(logging.INFO, logger="articlebot"):
        assert cli.main(["ask", "-v", QUESTION]) == 0  # -v says why an answer above the threshold is "not found"
    assert "not found (relevant enough, but the language model's reply cited no passage)" in caplog.text
    capsys.readouterr()
    assert cli.main(["ask", "--json", QUESTION]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed)["found"] is False and "glaube ich" not in printed and "Sprachmodells" not in printed

    printed = piped_chat(loaded_kb, server.base_url)
    assert f"Die Fähre war ziemlich teuer, glaube ich.\n\n{note}\n\n{NOT_FOUND['de']}" in printed
    # Nothing was streamed for a question the articles do not answer, so nothing is said about it.
    assert cli.main(["ask", "What is the boiling point of mercury?"]) == 0
    assert capsys.readouterr().out == "I found nothing about this in the articles.\n"
