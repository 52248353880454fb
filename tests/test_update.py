"""Refreshing an article whose page changed: one transaction, same id, new passage ids, no half states."""

from __future__ import annotations

import re
import threading

from util_cli import CLI
from util_kb import ZERO_INTEGRITY, article_problems, index_problems
from util_pages import FETCH

from bot.answer import Answer, Citation
from bot.config import TelegramSettings
from bot.conversation import Conversation, Incoming, Press, User
from bot.feedback import FeedbackStore
from index.extract import Document
from index.fetch import fetch_document


def paragraphs(version: int, count: int = 4) -> list[str]:
    """Long paragraphs in which every sentence names its version, so every passage does too."""
    topics = ["Pegel", "Damm", "Fischtreppe", "Uferweg", "Turbine", "Schleuse"]
    out = []
    for i in range(count):
        topic = topics[(i + version) % len(topics)]
        sentences = [
            f"Fassung{version} berichtet über den Stausee Wendelbach und seinen {topic}.",
            f"Laut Fassung{version} prüfte der Wasserverband im Abschnitt {i + 1} die {topic}-Messungen.",
            f"In Fassung{version} verfolgten Anwohner die Arbeiten am Ufer mit großem Interesse.",
            f"Fassung{version}: Der {topic} soll bis zum Herbst fertig sein, sagte eine Sprecherin.",
        ] * 3
        out.append(" ".join(sentences))
    return out


def test_update_refreshes_a_changed_page_keeping_id_and_never_reusing_passage_ids(kb_net, site):
    url = site.html("/stausee", "Stausee Wendelbach", paragraphs(1))
    added = kb_net.add(fetch_document(url, FETCH))
    old_ids = {c.id for c in kb_net.store.article_chunks(added.article_id)}

    version = kb_net.version()
    assert kb_net.update(added.article_id).changed is False  # same page: nothing written (README) …
    assert kb_net.version() == version  # … not even a new store version
    assert {c.id for c in kb_net.store.article_chunks(added.article_id)} == old_ids

    site.html("/stausee", "Stausee Wendelbach (neu)", paragraphs(2))
    result = kb_net.update(added.article_id)
    assert result.changed and result.article_id == added.article_id
    assert result.title == "Stausee Wendelbach"  # the stored title stays
    assert kb_net.version() == version + 1
    new = kb_net.store.article_chunks(added.article_id)
    assert new and min(c.id for c in new) > max(old_ids)
    assert all("Fassung2" in c.text for c in new)
    assert kb_net.counts()["articles"] == 1
    assert kb_net.store.integrity() == ZERO_INTEGRITY
    assert not article_problems(kb_net) and not index_problems(kb_net)
    hits = kb_net.search("Fassung1 Stausee Wendelbach", k=10)
    assert hits and all("Fassung2" in h.text for h in hits)
    assert not set(h.chunk_id for h in hits) & old_ids


def test_refresh_while_a_reader_searches_never_shows_half_an_article(kb_net, site, embedder):
    """Every search during ten refreshes finds the article, and only ever one whole version of it."""
    url = site.html("/stausee", "Stausee Wendelbach", paragraphs(0))
    article_id = kb_net.add(fetch_document(url, FETCH)).article_id
    kb_net.add(fetch_document(site.html("/andere", "Marktplatz", ["Der Wochenmarkt zieht um. " * 30]), FETCH))
    # The next versions, chunked and embedded up front, so the refreshes come quickly one after another.
    docs = []
    for version in range(1, 11):
        site.html("/stausee", "Stausee Wendelbach", paragraphs(version))
        docs.append(fetch_document(url, FETCH))
    done = threading.Event()
    bad: list[str] = []
    searches = [0]

    def read() -> None:
        while not done.is_set():
            hits = [h for h in kb_net.search("Stausee Wendelbach Wasserverband", k=8) if h.article_id == article_id]
            versions = {re.search(r"Fassung(\d+)", h.text).group(1) for h in hits}
            if len(versions) != 1:
                bad.append(f"search {searches[0]} saw versions {sorted(versions)}")
            searches[0] += 1

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for doc in docs:
            assert kb_net.refresh(article_id, doc).changed
    finally:
        done.set()
        reader.join()
    assert not bad, bad[:5]
    assert searches[0] > 10, "the reader should have searched during the refreshes"
    assert not article_problems(kb_net) and not index_problems(kb_net)
    assert kb_net.store.integrity() == ZERO_INTEGRITY


def test_cli_update_to_one_passage_says_1_passage(monkeypatch, capsys, embedder, tmp_path, site):
    # It said '(1 passages)'.
    path = tmp_path / "config.toml"
    path.write_text("[fetch]\nallow_private_addresses = true\ntimeout = 5.0\n")
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    try:
        url = site.html("/stausee", "Stausee Wendelbach", paragraphs(3))
        assert cli("add", url, config=str(path)).code == 0
        site.html("/stausee", "Stausee Wendelbach", paragraphs(2, count=1))
        updated = cli("update", "1", config=str(path))
        assert updated.code == 0 and updated.out.strip() == "updated #1: Stausee Wendelbach (1 passage)", updated
    finally:
        cli.close()


def test_cli_update_and_add_of_a_changed_url(monkeypatch, capsys, embedder, tmp_path, site):
    path = tmp_path / "config.toml"
    path.write_text("[fetch]\nallow_private_addresses = true\ntimeout = 5.0\n")
    config = str(path)
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    try:
        url = site.html("/stausee", "Stausee Wendelbach", paragraphs(1))
        assert cli("add", url, config=config).code == 0
        same = cli("add", url + "?utm_source=feed", config=config)
        assert "already present as #1" in same.out

        unchanged = cli("update", "1", config=config)
        assert (unchanged.code, unchanged.out.strip()) == (0, "#1 unchanged: Stausee Wendelbach")

        site.html("/stausee", "Stausee Wendelbach", paragraphs(3))
        changed = cli("add", url, config=config)
        assert changed.code == 0
        assert "#1 has this URL, but its text has changed since; 'articlebot update 1' refreshes it" in changed.out
        before = cli.counts()
        updated = cli("update", "#1", config=config)
        assert updated.code == 0 and updated.out.startswith("updated #1: Stausee Wendelbach (")
        after = cli.counts()
        assert after["articles"] == 1 and after["version"] == before["version"] + 1
        assert after["integrity"] == ZERO_INTEGRITY

        for argv, message in [
            (("update", "7"), "no article with id 7"),
            (("update", "abc"), "not an article id"),
        ]:
            result = cli(*argv, config=config)
            assert result.code == 1 and message in result.err and len(result.err.strip().splitlines()) == 1
        site.pages.pop("/stausee")
        gone = cli("update", "1", config=config)
        assert gone.code == 1 and "HTTP 404" in gone.err
        assert cli.counts() == after

        local = tmp_path / "notiz.txt"
        local.write_text("Notiz ohne Link\n\n" + " ".join(paragraphs(4, 1)), encoding="utf-8")
        assert cli("add", str(local), config=config).code == 0
        no_url = cli("update", "2", config=config)
        assert (no_url.code, no_url.err.strip()) == (1, "articlebot: article #2 has no http(s) URL to fetch again")
    finally:
        cli.close()


class _Answerer:
    def __init__(self, answer: Answer):
        self.reply = answer

    def answer(self, question: str, conversation: str = "") -> Answer:
        return self.reply


def test_bot_update_is_for_admins_and_old_citations_stay_readable(kb_net, site, tmp_path):
    """/update refreshes; a quote button of an answer given before the refresh still shows the old quote,
    because the answers table keeps each citation's quote text, not only its passage id."""
    url = site.html("/stausee", "Stausee Wendelbach", paragraphs(1))
    article_id = kb_net.add(fetch_document(url, FETCH)).article_id
    old = kb_net.store.article_chunks(article_id)[0]
    citation = Citation(1, article_id, "Stausee Wendelbach", url, old.id, old.text[:80])
    answer = Answer("Was ist mit dem Stausee?", "Fassung1 berichtet [1].", True, [citation], "de")
    feedback = FeedbackStore(kb_net.answer_log())
    conversation = Conversation(kb_net, _Answerer(answer), feedback, TelegramSettings(admins=[1]), FETCH)
    try:
        admin, other = User(1, "admin", "en"), User(2, "reader", "en")
        conversation.handle(Incoming(other, 2, "Was ist mit dem Stausee?"))

        def say(user: User, text: str) -> str:
            replies = conversation.handle(Incoming(user, user.id, text))
            return " ".join(span.text for r in replies for block in r.blocks for span in block.spans)

        assert "only this bot's admins" in say(other, f"/update {article_id}")
        assert say(admin, "/update") == "Please give the number: /update <id>"
        assert say(admin, "/update 99") == "There is no article #99."
        assert say(admin, f"/update {article_id}") == f"Unchanged: #{article_id} “Stausee Wendelbach”."
        site.html("/stausee", "Stausee Wendelbach", paragraphs(2))
        assert say(admin, f"/add {url}") == (
            f"Not added: #{article_id} has this link, but its text has changed since. "
            f"/update {article_id} refreshes it."
        )
        assert say(admin, f"/update {article_id}").startswith(f"Updated #{article_id} “Stausee Wendelbach” (")
        assert kb_net.store.chunks_by_id([old.id]) == {}
        pressed = conversation.press(Press(other, 2, "q:1:1"))
        assert pressed.replies and pressed.replies[0].blocks[-1].text == " ".join(old.text[:80].split())
    finally:
        feedback.close()


def test_bot_update_counts_passages_and_says_plainly_when_there_is_no_link(kb_net, site):
    """'(1 passages)' / '(1 Abschnitte)' after /update; for a pasted article 'Fetching #2 …', then
    'Not updated: #2: article #2 has no http(s) URL …': now no fetching is announced and #2 is named once."""
    url = site.html("/stausee", "Stausee Wendelbach", paragraphs(1))
    article_id = kb_net.add(fetch_document(url, FETCH)).article_id
    pasted = kb_net.add(Document("Notiz ohne Link", " ".join(paragraphs(5, 1)))).article_id
    conversation = Conversation(kb_net, _Answerer(None), None, TelegramSettings(admins=[1]), FETCH)

    def say(text: str, language: str) -> tuple[str, list[str]]:
        progress: list[str] = []
        replies = conversation.handle(Incoming(User(1, "admin", language), 1, text), progress=progress.append)
        return " ".join(span.text for r in replies for block in r.blocks for span in block.spans), progress

    site.html("/stausee", "Stausee Wendelbach", paragraphs(2, count=1))
    assert say(f"/update {article_id}", "en")[0] == f"Updated #{article_id} “Stausee Wendelbach” (1 passage)."
    site.html("/stausee", "Stausee Wendelbach", paragraphs(3, count=1))
    assert say(f"/update {article_id}", "de")[0] == f"Aktualisiert: #{article_id} „Stausee Wendelbach“ (1 Abschnitt)."
    for language, expected in [
        ("en", f"Not updated: #{pasted} has no http(s) link to fetch again (it was added as text or a file)."),
        (
            "de",
            f"Nicht aktualisiert: #{pasted}: Der Artikel hat keinen http- oder https-Link, von dem ich ihn neu "
            "laden könnte.",
        ),
    ]:
        reply, progress = say(f"/update {pasted}", language)
        assert (reply, progress) == (expected, [])
