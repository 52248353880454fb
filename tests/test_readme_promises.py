"""README promises that named no test, or a test that checked less than the sentence said."""

from __future__ import annotations

import re

import pytest
from newsroom import add_ferry_and_solar
from util_cli import CLI
from util_http import RawServer, respond

from bot import cli
from bot.answer import Answerer
from bot.config import AnswerSettings, TelegramSettings
from bot.conversation import Conversation, Incoming, User
from bot.feedback import FeedbackStore
from bot.render import plain_text
from index.settings import FetchSettings

ADMIN = User(1, "Ada", "en")


def test_cli_stats_shows_what_the_bots_stats_shows(  # README, "Using it"
    kb, settings, capsys, monkeypatch
):
    monkeypatch.delenv("ARTICLEBOT_CONFIG", raising=False)
    add_ferry_and_solar(kb)
    feedback = FeedbackStore(kb.answer_log())
    conversation = Conversation(
        kb, Answerer(kb, AnswerSettings()), feedback, TelegramSettings(admins=[ADMIN.id]), FetchSettings()
    )
    try:
        answered = conversation.handle(Incoming(ADMIN, ADMIN.id, "How often does the ferry run?"))
        assert answered  # one answer in the answers table, so the counts are not all zero
        feedback.vote(feedback.counts()["answers"], ADMIN.id, 1)
        in_chat = "\n\n".join(plain_text(r) for r in conversation.handle(Incoming(ADMIN, ADMIN.id, "/stats")))
    finally:
        feedback.close()
    kb.close()
    assert cli.main(["--data-dir", settings.data_dir, "stats"]) == 0
    printed = capsys.readouterr().out.splitlines()
    shown = [line for line in in_chat.splitlines() if line.strip()]
    assert len(shown) >= 5 and "Answers: 1 (👍 1, 👎 0)" in shown, shown
    # The same facts under the same labels. Two values are of the moment: how this process came by its index
    # (the bot's built it, the CLI's loaded the saved file) and the file's size (the WAL is folded in on close).
    cli_lines = printed[: len(shown)]
    assert [line.split(":")[0] for line in cli_lines] == [line.split(":")[0] for line in shown]
    of_the_moment = re.compile(r" \((loaded|rebuilt|synced)\)$|^Database: .*")
    assert [of_the_moment.sub("", line) for line in cli_lines] == [of_the_moment.sub("", line) for line in shown]
    assert any(line.startswith("Database: ") for line in shown)  # not left out of the comparison unseen
    assert printed[len(shown)].startswith("Storage: ") and printed[len(shown) + 1].startswith("Data dir: ")


@pytest.fixture
def settings(tmp_path):
    from index.settings import IndexSettings

    return IndexSettings(data_dir=str(tmp_path / "data"))


SHORT = "Die Brücke in Ostend ist seit Montag wieder für den Verkehr offen, sagte die Stadt. Die Umleitung entfällt."


def test_a_short_page_from_a_url_is_refused_like_a_short_file(tmp_path, monkeypatch, capsys, embedder):
    # README, "What is not an article": under [ingest] min_chars "from a URL, a file, stdin, Telegram or an
    # import"; test_ingest.py checks a file, stdin and an import, test_chat.py a pasted /add, this one a URL.
    page = (
        "<!doctype html><html><head><title>Ostend</title></head><body><article><h1>Brücke offen</h1>"
        f"<p>{SHORT}</p></article></body></html>"
    )
    config = tmp_path / "c.toml"
    config.write_text("[fetch]\nallow_private_addresses = true\ntimeout = 2\n")
    run = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    try:
        with RawServer(respond(body=page.encode(), content_type="text/html; charset=utf-8")) as server:
            result = run("add", server.url + "/bruecke", config=str(config))
        assert result.code == 1 and result.err.count("\n") == 1, result
        # The count is the extracted text's: the heading and the paragraph.
        assert re.search(r"too short to be an article \(1[0-9]{2} characters; at least 200 are needed", result.err)
        assert run.counts()["articles"] == 0
    finally:
        run.close()


def test_the_quick_start_questions_are_answered_by_demo_over_the_samples_alone(tmp_path, monkeypatch, capsys, embedder):
    # README, "Quick start": `bash dev.sh demo QUESTION` (articlebot --data-dir data-demo demo QUESTION) over the
    # eight bundled samples; test_news_answers.py asks the same over the samples and its own news articles.
    monkeypatch.chdir(tmp_path)
    run = CLI(monkeypatch, capsys, embedder, tmp_path / "data-demo")
    try:
        result = run(
            "demo", "Wie viel kostet der Kubikmeter Trinkwasser ab dem 1. April?", "Who led the bumblebee study?"
        )
    finally:
        run.close()
    assert result.code == 0 and result.out.startswith(f"8 articles in {tmp_path / 'data-demo'} (8 sample articles")
    german, english = result.out.split("\n> ")[1:]
    assert "2,74 Euro" in german.split("Quellen:")[0], german  # in the answer's body, not only in a quote
    assert "Threlkeld" in english.split("Sources:")[0], english
