"""The transport-free conversation and the terminal chat (piped input), on a real store and model."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from string import Formatter

import pytest
from botapi_server import PageServer
from newsroom import FERRY, MARKET_TEXT, add_ferry_and_solar
from util_http import RawServer
from util_pages import Page

from bot.answer import Answer, Answerer, Citation
from bot.chat import CONSOLE_USER_ID, messages, run_chat
from bot.config import AnswerSettings, TelegramSettings
from bot.conversation import Attachment, Conversation, Incoming, Press, Quote, RateLimiter, User, answer_reply
from bot.feedback import FeedbackStore
from bot.protocol import ADMIN_ONLY
from bot.render import plain_text
from bot.texts import TEXTS, counted, reason_text
from index.extract import from_text
from index.feeds import Feeds
from index.settings import FetchSettings

ADMIN = User(1, "Ada", "de")
READER = User(2, "Rolf", "de")
READER_EN = User(3, "Rita", "en")
READER_EN_ADMIN = User(ADMIN.id, "Ada", "en")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def conversation(kb):
    add_ferry_and_solar(kb)
    feedback = FeedbackStore(kb.answer_log())
    settings = TelegramSettings(admins=[ADMIN.id], rate_limit_per_minute=3, max_question_chars=120)
    conv = Conversation(kb, Answerer(kb, AnswerSettings()), feedback, settings, FetchSettings(), page_size=1)
    yield conv
    feedback.close()


def say(conv: Conversation, user: User, text: str, **kwargs) -> list:
    return conv.handle(Incoming(user, chat_id=user.id, text=text, bot_username="articles_bot", **kwargs))


def text_of(replies: list) -> str:
    return "\n\n".join(plain_text(r) for r in replies)


def test_routing_private_group_and_commands(conversation):
    def parse(text: str, private: bool = True, addressed: bool = False):
        msg = Incoming(READER, 5, text, private=private, addressed=addressed, bot_username="articles_bot")
        request = conversation.parse(msg)
        return (request.command, request.args) if request else None

    assert parse("Wie lang ist die Strecke?") == ("ask", "Wie lang ist die Strecke?")
    assert parse("Wie lang ist die Strecke?", private=False) is None
    assert parse("@articles_bot wie lang?", private=False, addressed=True) == ("ask", "wie lang?")
    assert parse("@articles_bot", private=False, addressed=True) == ("hello", "")
    assert parse("@articles_bot Danke!", private=False, addressed=True) == ("thanks_reply", "")
    assert parse("/ask@articles_bot Wie lang?", private=False) == ("ask", "Wie lang?")
    assert parse("/ask@other_bot Wie lang?", private=False) is None
    assert parse("/articles") == ("sources", "")
    assert parse("/frobnicate") == ("unknown", "")
    assert parse("/frobnicate", private=False) is None
    assert parse("/add https://example.org/x") == ("add", "https://example.org/x")
    assert parse("/add\nTitel\nText") == ("add", "Titel\nText")


def test_a_greeting_or_a_thanks_is_answered_as_one_not_searched_for(conversation):
    answers = conversation.feedback.counts()["answers"]
    (hello,) = say(conversation, READER, "Hallo!")
    assert plain_text(hello).startswith("Hallo! Fragen Sie mich etwas zu den Artikeln") and not hello.buttons
    (hello,) = say(conversation, READER_EN, "hi there 👋")
    assert plain_text(hello).startswith("Hello! Ask me something about the articles")
    assert plain_text(say(conversation, READER, "Vielen Dank.")[0]) == "Gern geschehen!"
    assert plain_text(say(conversation, READER_EN, "Thanks!")[0]) == "You're welcome!"
    assert conversation.feedback.counts()["answers"] == answers, "no answer was given or stored"
    (answer,) = say(conversation, READER, "Hallo, was kostete der Bau der Möwe II?")
    assert "9,2 Millionen Euro" in plain_text(answer)


def test_help_names_the_articles_in_the_users_language(conversation):
    german = text_of(say(conversation, READER, "/start"))
    assert "Ich beantworte Fragen zu 2 Artikeln" in german and "Harbourton council" in german
    assert "Für Admins" not in german
    english = text_of(say(conversation, READER_EN, "/help"))
    assert "I answer questions about 2 articles" in english and "/sources" in english
    assert "Für Admins" in text_of(say(conversation, ADMIN, "/help"))


def test_question_gets_a_cited_answer_and_feedback_is_stored(conversation):
    (reply,) = say(conversation, READER_EN, "How many solar panels will Harbourton fit on school roofs?")
    text = plain_text(reply)
    assert "1,240" in text and "[1]" in text
    assert "Sources:" in text and "https://example.org/solar" in text
    buttons = {b.label: b.data for row in reply.buttons for b in row}
    quote = conversation.press(Press(READER_EN, 3, buttons["Quote [1]"]))
    assert isinstance(quote.replies[0].blocks[1], Quote)
    assert conversation.press(Press(READER_EN, 3, buttons["👍"])).notice == "Thanks for the feedback!"
    conversation.press(Press(READER_EN, 3, buttons["👎"]))  # changing one's mind replaces the vote
    (vote,) = conversation.feedback.feedback()
    assert vote["vote"] == -1 and vote["user_id"] == READER_EN.id
    assert vote["question"].startswith("How many solar panels") and "1,240" in vote["answer"]
    assert vote["citations"][0]["url"] == "https://example.org/solar"
    assert conversation.press(Press(READER, 2, "fb:999:+")).notice == "Dieser Knopf ist nicht mehr gültig."


def test_admin_commands_are_refused_to_others_and_nothing_changes(conversation):
    before = conversation.kb.stats()["articles"]
    for command in ("/add " + MARKET_TEXT, "/remove 1", "/list", "/stats", "/reindex"):
        assert text_of(say(conversation, READER, command)) == "Das dürfen leider nur die Admins dieses Bots."
    # The admin's confirmation button, pressed by someone else, changes nothing either.
    (confirm,) = say(conversation, ADMIN, "/remove 1")
    remove = confirm.buttons[0][0].data
    refused = conversation.press(Press(READER, 1, remove))
    assert refused.alert and not refused.replies
    assert conversation.press(Press(READER, 1, "lst:0")).alert
    assert conversation.kb.stats()["articles"] == before
    done = conversation.press(Press(ADMIN, 1, remove))
    assert plain_text(done.replies[0]).startswith("Entfernt: #1") and done.replies[0].edit
    assert conversation.kb.stats()["articles"] == before - 1


def test_add_by_text_duplicate_and_usage(conversation):
    progress: list[str] = []
    replies = conversation.handle(Incoming(ADMIN, 1, "/add " + MARKET_TEXT), progress.append)
    assert text_of(replies).startswith("Hinzugefügt: #3 „Wochenmarkt in Grauwinkel zieht auf den Kirchplatz“")
    assert progress == ["Verarbeite „Wochenmarkt in Grauwinkel zieht auf den Kirchplatz“ …"]
    assert text_of(say(conversation, ADMIN, "/add " + MARKET_TEXT)) == "Nicht hinzugefügt: schon vorhanden als #3."
    assert text_of(say(conversation, ADMIN, "/add 12")).startswith("So fügen Sie einen Artikel hinzu")
    short = say(conversation, ADMIN, "/add", replied_text="Kurzmeldung: Die Brücke in Ostend ist wieder offen.")
    # [ingest] min_chars, explained in German
    assert (
        text_of(short)
        == "Nicht hinzugefügt: Der Text ist zu kurz für einen Artikel (51 Zeichen, nötig sind mindestens 200)."
    )
    news = (
        "Kurzmeldung: Die Brücke in Ostend ist wieder offen. Nach vier Monaten Bauzeit dürfen Autos, Räder und "
        "Fußgänger sie seit Montag wieder nutzen; die Umleitung über den Hafen entfällt, die Busse fahren wieder "
        "ihre gewohnte Strecke."
    )
    assert "Hinzugefügt: #4" in text_of(say(conversation, ADMIN, "/add", replied_text=news))


def test_a_long_title_in_the_progress_line_is_cut_with_a_mark_that_touches_its_last_word(conversation):
    """Cut at 80 characters; a space left before the "…" would make the mark read as a word of its own."""
    title = "Neue Buslinie 12 verbindet ab Mai den Bahnhof von Kesselbrunn mit dem Südhafen am Ostrand der Stadt"
    assert title[78] == " "  # the cut falls right after a word
    body = (
        "Vom 2. Mai an fährt die neue Buslinie 12 alle zwanzig Minuten vom Bahnhof in Kesselbrunn zum Südhafen. "
        "Die Stadtwerke setzen dafür drei elektrische Busse ein, die am Hafen an einer eigenen Ladestation laden."
    )
    progress: list[str] = []
    conversation.handle(Incoming(ADMIN, 1, f"/add {title}\n\n{body}"), progress.append)
    assert progress == [f"Verarbeite „{title[:78]}…“ …"]


def test_documents_are_checked_before_download(conversation):
    def never() -> bytes:
        raise AssertionError("downloaded a file that should have been refused")

    exe = Attachment("tool.exe", 10, never)
    assert "Format, das ich nicht lesen kann" in text_of(say(conversation, ADMIN, "/add", attachment=exe))
    big = Attachment("huge.pdf", 30_000_000, never)
    assert "zu groß (30.0 MB; höchstens 20.0 MB)" in text_of(say(conversation, ADMIN, "/add", attachment=big))
    assert "nur die Admins" in text_of(say(conversation, READER, "/add", attachment=Attachment("a.txt", 5, never)))
    ok = Attachment("markt.md", None, lambda: MARKET_TEXT.encode())
    assert "Hinzugefügt" in text_of(say(conversation, ADMIN, "/add", attachment=ok))


def test_a_document_without_caption_gets_advice_that_fits_the_sender(conversation):
    def never() -> bytes:
        raise AssertionError("downloaded a document nobody asked to add")

    letter = Attachment("brief.txt", 10, never)
    assert text_of(say(conversation, ADMIN, "", attachment=letter)) == (
        "Dokumente füge ich nur hinzu, wenn sie die Beschriftung /add tragen."
    )
    assert text_of(say(conversation, READER, "", attachment=letter)) == (
        "Dokumente nehme ich nur von den Admins dieses Bots an. Fragen schreiben Sie einfach als Text."
    )


def test_a_documents_caption_after_add_is_its_title(conversation):
    report = Attachment("bericht.txt", None, lambda: FERRY.replace("Möwe II", "Möwe III").encode())
    added = text_of(say(conversation, ADMIN, "/add Jahresbericht der Fähre\n 2026", attachment=report))
    assert added.startswith("Hinzugefügt: #3 „Jahresbericht der Fähre 2026“"), added
    assert conversation.kb.article(3).title == "Jahresbericht der Fähre 2026"


def test_sources_are_paged_newest_first(conversation):
    (first,) = say(conversation, READER, "/sources")
    assert plain_text(first).startswith("Artikel 1–1 von 2\n#2 Harbourton council")
    assert [[b.data for b in row] for row in first.buttons] == [["src:1"]]
    (second,) = conversation.press(Press(READER, 2, "src:1")).replies
    assert second.edit and "#1 Neue Elektrofähre" in plain_text(second)
    assert [b.data for b in second.buttons[0]] == ["src:0"]


def test_question_limits(conversation):
    assert "zu lang (121 Zeichen; höchstens 120)" in text_of(say(conversation, READER, "x" * 121))
    for _ in range(3):
        say(conversation, READER, "Was kostete der Bau der Möwe II?")
    assert "höchstens 3 Fragen pro Minute" in text_of(say(conversation, READER, "Noch eine Frage?"))
    assert say(conversation, READER, "Und noch eine?") == []  # told once; the rest is ignored quietly
    assert say(conversation, ADMIN, "Was kostete der Bau der Möwe II?")  # admins are not limited
    assert "mit /add auf die Nachricht" in text_of(say(conversation, ADMIN, FERRY))  # a forwarded article


def test_every_text_speaks_both_languages_with_the_same_fields():
    for key, versions in TEXTS.items():
        assert set(versions) == {"de", "en"}, key
        fields = [{f for _, f, _, _ in Formatter().parse(v) if f} for v in versions.values()]
        assert fields[0] == fields[1], key


def test_rate_limiter_window():
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.hit(1) == 0 and limiter.hit(1) == 0
    assert limiter.hit(1) == pytest.approx(60.0)
    assert limiter.hit(2) == 0
    now[0] = 30.0
    assert limiter.hit(1) == pytest.approx(30.0)
    now[0] = 60.5
    assert limiter.hit(1) == 0


def test_chat_session_with_piped_input(conversation):
    lines = [
        "/start\n",
        "/add\n",
        *(line + "\n" for line in MARKET_TEXT.splitlines()),
        ".\n",
        "Wo findet der Wochenmarkt in Grauwinkel statt?\n",
        "1\n",  # the first button: the quote of source [1]
        "/remove 3\n",
        "1\n",
        "/quit\n",
        "/help\n",
    ]
    conversation.admins = frozenset({CONSOLE_USER_ID})  # the person at the terminal
    out, err = io.StringIO(), io.StringIO()
    assert run_chat(conversation, lines, out, err, "de") == 0
    text = out.getvalue()
    added = "Hinzugefügt: #3 „Wochenmarkt in Grauwinkel zieht auf den Kirchplatz“"
    assert added in text
    answer = text.split(added)[1]
    assert "auf dem Kirchplatz statt. [1]" in answer and "Quellen:" in answer and "1) Zitat [1]" in answer
    assert "\n│ " in answer.split("1) Zitat [1]")[1]
    assert "Entfernt: #3" in text
    assert "… Verarbeite" in err.getvalue()
    assert text.count("Ich beantworte") == 1  # nothing after /quit


def test_messages_gather_pasted_articles():
    assert list(messages(["a\n", "\n", "/add\n", "T\n", "\n", "x\n", ".\n", "b\n", "/add\n", "y"])) == [
        "a",
        "/add\nT\n\nx",
        "b",
        "/add\ny",
    ]


def test_articlebot_chat_command(tmp_path):
    article = tmp_path / "faehre.txt"
    article.write_text(FERRY, encoding="utf-8")
    script = f"/add {article}\nWas kostete der Bau der Möwe II?\n/sources\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ARTICLEBOT_CONFIG": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--data-dir", str(tmp_path / "data"), "chat", "--lang", "de"],
        input=script,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Hinzugefügt: #1 „Neue Elektrofähre verbindet Lindholm und Quernsee“" in result.stdout
    assert "9,2 Millionen Euro" in result.stdout and "[1]" in result.stdout
    assert "#1 Neue Elektrofähre" in result.stdout


# --- the terminal chat -------------------------------------------------------------------------------


def _chat(conversation, lines: list[str], language: str = "de") -> str:
    conversation.admins = frozenset({CONSOLE_USER_ID})
    conversation.origin = "chat"
    out, err = io.StringIO(), io.StringIO()
    assert run_chat(conversation, [line + "\n" for line in lines], out, err, language) == 0
    return out.getvalue()


@pytest.mark.parametrize("language", ["de", "en"])
def test_chat_greets_and_its_help_describes_the_terminal(conversation, language):
    text = _chat(conversation, ["/help"], language)
    greeting, rest = text.split("\n\n", 1)
    if language == "de":
        assert "Admin" in greeting and "/quit" in greeting and "„.“" in greeting and "Nummer" in greeting
        assert "/add <Pfad>" in rest and "Strg-D" in rest and "Eine Zahl allein drückt den Knopf" in rest
    else:
        assert "admin" in greeting and "/quit" in greeting and "“.”" in greeting and "number" in greeting
        assert "/add <path>" in rest and "Ctrl-D" in rest and "A number on its own presses" in rest
    for telegram_only in ("Gruppen", "groups", "Beschriftung", "caption", "Antwort auf eine", "reply to"):
        assert telegram_only not in rest


def test_a_number_that_is_no_button_says_so_and_asks_nothing(conversation):
    answers = conversation.feedback.counts()["answers"]
    text = _chat(conversation, ["7", "Was kostete der Bau der Möwe II?", "9", "0"])
    assert "Gerade gibt es keinen Knopf 7 zu drücken." in text
    assert "Einen Knopf 9 gibt es nicht (Knöpfe 1–3)." in text and "Einen Knopf 0 gibt es nicht" in text
    assert conversation.feedback.counts()["answers"] == answers + 1  # only the real question was answered
    english = _chat(conversation, ["3"], "en")
    assert "There is no button 3 to press just now." in english


def test_add_of_a_missing_file_or_a_directory_says_so(conversation, tmp_path):
    before = conversation.kb.counts()
    text = _chat(conversation, [f"/add {tmp_path}/nope.md", f"/add {tmp_path}", "/add ./notes.txt"])
    assert f"Die Datei {tmp_path}/nope.md gibt es nicht." in text
    assert f"{tmp_path} ist ein Ordner, keine Datei." in text
    assert "Die Datei ./notes.txt gibt es nicht." in text
    assert conversation.kb.counts() == before


def test_quote_names_its_passage_within_the_article_and_is_not_prompt_styled(conversation):
    text = _chat(conversation, ["Was kostete der Bau der Möwe II?", "1"])
    quote = text.split("1) Zitat [1]")[1]
    assert re.search(r"\[1\] Neue Elektrofähre verbindet Lindholm und Quernsee <\S+> – Abschnitt [12] von 2\n", quote)
    assert "\n│ " in quote and "\n> " not in quote


def test_fetch_refusals_are_explained_in_the_users_language(conversation):
    (german,) = say(conversation, ADMIN, "/add http://127.0.0.1:9/artikel")
    assert plain_text(german) == (
        "Nicht hinzugefügt: 127.0.0.1 ist eine interne Adresse; solche Links rufe ich aus Sicherheitsgründen nicht ab."
    )
    admin_en = User(ADMIN.id, "Ada", "en")
    (english,) = say(conversation, admin_en, "/add http://127.0.0.1:9/artikel")
    assert plain_text(english).startswith("Not added: refusing to fetch 127.0.0.1")


def test_a_link_without_its_scheme_is_fetched_over_https_not_taken_for_a_short_text(conversation):
    shown: list[str] = []
    incoming = Incoming(ADMIN, chat_id=ADMIN.id, text="/add 127.0.0.1:9/artikel?id=4", bot_username="articles_bot")
    (refused,) = conversation.handle(incoming, progress=shown.append)
    assert shown == ["Lade https://127.0.0.1:9/artikel?id=4 …"]
    assert plain_text(refused) == (
        "Nicht hinzugefügt: 127.0.0.1 ist eine interne Adresse; solche Links rufe ich aus Sicherheitsgründen nicht ab."
    )
    for not_a_link in ("/add Kurzer Text", "/add z.B.", "/add Grauwinkel"):
        assert plain_text(say(conversation, ADMIN, not_a_link)[0]).startswith("So fügen Sie einen Artikel hinzu")
    assert [a.id for a in conversation.kb.articles()] == [2, 1]


def test_an_article_pasted_as_long_as_a_telegram_message_may_be_warns_it_may_be_cut(conversation):
    paragraph = "Der Rat von Grauwinkel beriet am {n}. Abend über die Brücke Nummer {n} und ihre Sanierung. "
    body = "\n\n".join(paragraph.format(n=n) * 3 for n in range(1, 16))
    pasted = "/add\nDie Brücken von Grauwinkel\n\n" + body
    assert 3900 <= len(pasted.encode("utf-16-le")) // 2 <= 4096, "as long as one Telegram message can be"
    (added,) = say(conversation, ADMIN, pasted)
    text = plain_text(added)
    article_id = int(re.search(r"#(\d+)", text).group(1))
    assert text.startswith(f"Hinzugefügt: #{article_id} „Die Brücken von Grauwinkel“")
    assert (
        f"schicken Sie ihn als .txt-Datei mit der Beschriftung /add und entfernen diesen Teil mit /remove {article_id}"
        in text
    )
    (short,) = say(conversation, ADMIN, "/add\n" + MARKET_TEXT)
    assert plain_text(short).startswith("Hinzugefügt:") and "4.096" not in plain_text(short)


def test_a_link_without_its_scheme_falls_back_to_http_where_the_server_has_no_tls(conversation):
    conversation.fetch = FetchSettings(allow_private_addresses=True, timeout=5)
    page = (
        "<html><head><title>Winterfahrplan der Fähre</title></head><body><article><h1>Winterfahrplan der Fähre</h1>"
        "<p>Die Fähre zwischen Lindholm und Quernsee fährt im Winter nur noch stündlich. Die Reederei begründet den "
        "neuen Fahrplan mit der geringen Zahl an Fahrgästen zwischen November und Februar.</p>"
        "<p>Im März gilt wieder der Zwanzig-Minuten-Takt, kündigte die Reederei an.</p></article></body></html>"
    )
    server = PageServer({"/winterfahrplan": ("text/html; charset=utf-8", page.encode())})  # plain HTTP only
    bare = server.url("/winterfahrplan").removeprefix("http://")
    shown: list[str] = []
    try:
        incoming = Incoming(ADMIN, ADMIN.id, f"/add {bare}", bot_username="articles_bot")
        (added,) = conversation.handle(incoming, shown.append)
    finally:
        server.stop()
    assert plain_text(added).startswith("Hinzugefügt: #3 „Winterfahrplan der Fähre“"), plain_text(added)
    assert shown[:2] == [f"Lade https://{bare} …", f"Lade http://{bare} …"]
    assert conversation.kb.article(3).url == "http://" + bare


def test_a_title_after_the_link_names_the_article(conversation, site):
    conversation.fetch = FetchSettings(allow_private_addresses=True, timeout=5)
    paragraphs = [
        "Am Marktplatz von Ostwinkel steht seit Montag ein Trinkbrunnen, der bis Oktober gekühltes Leitungswasser "
        "liefert. Das Wasserwerk hat ihn für 12.000 Euro aufgestellt und will im nächsten Jahr zwei weitere bauen.",
        "Die Stadtwerke prüfen das Wasser jede Woche; die Ergebnisse hängen am Brunnen aus.",
    ]
    url = site.html("/brunnen", "Startseite – Ostwinkeler Nachrichten", paragraphs)
    added = text_of(say(conversation, ADMIN, f"/add {url} Ostwinkel bekommt einen Trinkbrunnen"))
    assert added.startswith("Hinzugefügt: #3 „Ostwinkel bekommt einen Trinkbrunnen“"), added
    assert conversation.kb.article(3).url == url


def test_fetch_failures_from_a_real_server_are_german(conversation):
    def not_found(conn, head):
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    server = RawServer(not_found)
    conversation.fetch = FetchSettings(allow_private_addresses=True, timeout=2)
    try:
        (missing,) = say(conversation, ADMIN, f"/add {server.url}/weg")
    finally:
        server.close()
    assert plain_text(missing) == "Nicht hinzugefügt: Die Seite antwortete mit dem Fehler HTTP 404."
    (refused,) = say(conversation, ADMIN, f"/add {server.url}/weg")  # nothing listens there any more
    assert plain_text(refused) == "Nicht hinzugefügt: Die Seite ist nicht erreichbar."
    (refused,) = say(conversation, READER_EN_ADMIN, f"/add {server.url}/weg")
    assert plain_text(refused) == f"Not added: {server.url}/weg cannot be reached: the server refused the connection."


@pytest.mark.parametrize(
    ("reason", "german"),
    [
        ("cannot resolve host 'nowhere.invalid'", "Den Server nowhere.invalid gibt es nicht"),
        ("https://x.org/a did not answer within 10 s", "zu lange gebraucht"),
        ("the PDF is encrypted; send an unprotected copy", "Das PDF ist verschlüsselt"),
        ("https://x.org/a is image/png, not an article (HTML, text or PDF)", "kein Artikel"),
        ("the text contains no text", "kein Artikeltext"),
        (
            "the text is too short to be an article (51 characters; at least 200 are needed, see [ingest] min_chars)",
            "Der Text ist zu kurz für einen Artikel (51 Zeichen, nötig sind mindestens 200).",
        ),
        (
            "the page shows only a teaser behind a paywall (it ends in a subscription offer)",
            "nur den Anfang hinter einer Bezahlschranke",
        ),
        (
            "the page holds no article text, only short lines (navigation, a footer or a banner)",
            "kein Artikeltext, nur kurze Zeilen (Navigation",
        ),
        (
            "line 7 is not valid Windows-1252 text (byte 0x81); save the file as UTF-8",
            "Zeile 7 ist kein gültiger Windows-1252-Text (Byte 0x81); bitte die Datei als UTF-8 speichern.",
        ),
        (
            "line 3 holds U+FFFD replacement characters (\ufffd): the text was damaged by a wrong decoding; "
            "send the original",
            "Zeile 3 enthält Ersatzzeichen",
        ),
        ("something new from index/", "Der Text ließ sich nicht verarbeiten (Meldung: something new from index/)"),
    ],
)
def test_reasons_have_german_explanations(reason, german):
    assert german in reason_text(reason, "de")
    assert reason_text(reason, "en") == reason


def test_singular_and_plural(conversation):
    one = (
        "Kurzmeldung aus Ostend\n\nDie Brücke in Ostend ist nach drei Monaten Bauzeit wieder für Radfahrer offen."
        " Fußgänger müssen noch bis zum Herbst den Umweg über den Fährsteg nehmen, weil die Geländer der"
        " Treppe erneuert werden und die Stadt die Beleuchtung auf dem ganzen Weg austauscht."
    )
    (added,) = say(conversation, ADMIN, "/add " + one)
    assert plain_text(added).endswith("(1 Abschnitt).")
    listing = text_of(say(conversation, User(ADMIN.id, "Ada", "en"), "/list"))
    assert "· 1 passage ·" in listing
    assert counted(2, "passage", "de") == "2 Abschnitte" and counted(1, "article", "de") == "1 Artikel"
    assert counted(3, "article", "en") == "3 articles" and counted(1, "vector", "en") == "1 vector"


def test_sources_name_each_article_once():
    citations = [
        Citation(1, 4, "Stadion am Mühlbach", "https://example.org/stadion", 10, "Erster Satz."),
        Citation(2, 9, "Andere Meldung", None, 30, "Zweiter Satz."),
        Citation(3, 4, "Stadion am Mühlbach", "https://example.org/stadion", 12, "Dritter Satz."),
    ]
    answer = Answer("Frage?", "Eins. [1] Zwei. [2] Drei. [3]", True, citations, "de")
    sources = plain_text(answer_reply(answer, 5)).split("Quellen:\n")[1]
    assert sources == "[1] [3] Stadion am Mühlbach <https://example.org/stadion>\n[2] Andere Meldung"


TELEGRAM_ONLY = ("Antworten Sie", "Reply to", "Beschriftung", "caption", "als Antwort", "as a reply")


@pytest.mark.parametrize("language", ["de", "en"])
def test_a_long_question_in_the_terminal_gets_terminal_advice(conversation, language):
    before = conversation.kb.counts()
    text = _chat(conversation, ["x" * 121], language)
    advice = text.split("\n\n", 1)[1]
    assert ("zu lang (121 Zeichen" if language == "de" else "too long (121 characters") in advice
    assert ("/add allein eingeben" if language == "de" else "Type /add alone") in advice
    assert ("/add <Pfad>" if language == "de" else "/add <path>") in advice
    assert not any(phrase in advice for phrase in TELEGRAM_ONLY), advice
    assert conversation.kb.counts() == before


@pytest.mark.parametrize("language", ["de", "en"])
def test_an_empty_add_in_the_terminal_explains_the_terminals_ways(conversation, language):
    before = conversation.kb.counts()
    # /add then at once the end mark, and a bare /add as the last line of the input.
    text = _chat(conversation, ["/add", ".", "/add"], language)
    usage = text.split("\n\n")[1:]
    wanted = "/add <Pfad> für eine Datei" if language == "de" else "/add <path> for a file"
    assert sum(wanted in part for part in usage) == 2, text
    assert not any(phrase in text for phrase in TELEGRAM_ONLY), text
    assert conversation.kb.counts() == before


def test_a_short_pasted_article_is_too_short_not_a_usage_question(conversation):
    before = conversation.kb.counts()
    text = _chat(conversation, ["/add", "Ein kurzer Text", "."], "en")
    assert "too short to be an article (15 characters" in text, text
    assert "/add <path> for a file" not in text, text
    # Typed on the command's own line, a short word is still taken for a slip: the usage explains /add.
    assert "/add <link>" in _chat(conversation, ["/add Fähre"], "en")
    assert conversation.kb.counts() == before


def test_a_question_before_any_article_says_there_are_none(kb):
    feedback = FeedbackStore(kb.answer_log())
    settings = TelegramSettings(admins=[ADMIN.id])
    empty = Conversation(kb, Answerer(kb, AnswerSettings()), feedback, settings, FetchSettings())
    try:
        (reply,) = say(empty, READER, "Wie oft fährt die Fähre?")
        assert text_of([reply]).startswith("Ich kenne noch keine Artikel")
        assert not reply.buttons  # nothing was answered, so there is nothing to rate
        assert feedback.answer(1) is None  # and no answer was logged
    finally:
        feedback.close()


def test_telegram_keeps_its_own_add_advice(conversation):
    assert "Beschriftung /add" in text_of(say(conversation, ADMIN, "/add"))
    assert "mit /add auf die Nachricht" in text_of(say(conversation, ADMIN, "x" * 121))


# --- what a new admin meets in the terminal ----------------------------------------------------------


@pytest.mark.parametrize("origin", ["chat", "telegram"])
@pytest.mark.parametrize("language", ["de", "en"])
def test_admin_help_names_every_admin_command(conversation, origin, language):
    """The terminal's /help left out /update and the feed commands that the chat does run."""
    conversation.origin = origin
    text = text_of(say(conversation, User(ADMIN.id, "Ada", language), "/help"))
    assert [name for name in sorted(ADMIN_ONLY) if f"/{name}" not in text] == []


def test_a_number_presses_only_buttons_of_the_last_message(conversation):
    """A number typed after a reply without buttons once pressed a button of an answer further up."""
    votes = conversation.feedback.counts()
    text = _chat(conversation, ["Was kostete der Bau der Möwe II?", "/stats", "3"])
    assert "Gerade gibt es keinen Knopf 3 zu drücken." in text and "Danke für die Rückmeldung" not in text
    assert conversation.feedback.counts()["down"] == votes["down"]
    # Buttons stay pressable while only buttons are pressed: a quote, then the next quote or a vote.
    text = _chat(conversation, ["Was kostete der Bau der Möwe II?", "1", "3"])
    assert "\n│ " in text and "Danke für die Rückmeldung!" in text


def test_a_bare_add_at_a_terminal_says_what_to_paste_and_a_pipe_stays_quiet(conversation):
    conversation.admins = frozenset({CONSOLE_USER_ID})
    conversation.origin = "chat"
    lines = ["/add\n", *(line + "\n" for line in MARKET_TEXT.splitlines()), ".\n"]
    hint = "Fügen Sie jetzt den Artikel ein: in der ersten Zeile der Titel"
    for interactive in (True, False):
        out = io.StringIO()
        assert run_chat(conversation, lines, out, io.StringIO(), "de", interactive) == 0
        assert (hint in out.getvalue()) is interactive
        assert "Hinzugefügt: #3" in out.getvalue() or "schon vorhanden als #3" in out.getvalue()


def test_feed_and_update_refusals_are_in_the_users_language(conversation, site):
    """/subscribe and /update put index/'s English reasons into German replies as they were."""
    conversation.kb.settings.fetch = FetchSettings(allow_private_addresses=True, timeout=5)
    conversation.feeds = Feeds(conversation.kb)
    site.pages["/home"] = Page(
        b'<html><head><link rel="alternate" type="application/rss+xml" href="/feed"></head><body>Start</body></html>'
    )
    try:
        (page,) = say(conversation, ADMIN, f"/subscribe {site.url}/home")
        (missing,) = say(conversation, ADMIN, f"/subscribe {site.url}/nothing.xml")
        (nowhere,) = say(conversation, ADMIN, "/subscribe http://nowhere.invalid/feed.xml")
        (english,) = say(conversation, READER_EN_ADMIN, f"/subscribe {site.url}/home")
        assert conversation.feeds.list() == []
    finally:
        conversation.feeds.close()
    assert plain_text(page) == (
        f"Nicht abonniert: {site.url}/home ist kein RSS- oder Atom-Feed, sondern eine HTML-Seite. "
        f"Sie nennt ihren Feed: /subscribe {site.url}/feed"
    )
    assert plain_text(missing) == "Nicht abonniert: Die Seite antwortete mit dem Fehler HTTP 404."
    assert plain_text(nowhere).startswith("Nicht abonniert: Den Server nowhere.invalid gibt es nicht")
    assert plain_text(english).startswith(f"Not subscribed: {site.url}/home is not an RSS or Atom feed")

    doc = from_text(MARKET_TEXT)
    doc.url = f"{site.url}/markt"  # gone: the site never had it
    article_id = conversation.kb.add(doc).article_id
    (gone,) = say(conversation, ADMIN, f"/update {article_id}")
    assert plain_text(gone) == f"Nicht aktualisiert: #{article_id}: Die Seite antwortete mit dem Fehler HTTP 404."
    pasted = conversation.kb.add(from_text("Eingefügt\n\n" + FERRY.split("\n\n", 1)[1] + " Nachtrag.")).article_id
    (no_link,) = say(conversation, ADMIN, f"/update {pasted}")
    assert plain_text(no_link) == (
        f"Nicht aktualisiert: #{pasted}: "
        "Der Artikel hat keinen http- oder https-Link, von dem ich ihn neu laden könnte."
    )


@pytest.mark.parametrize(
    ("reason", "german"),
    [
        ("already subscribed as feed #4", "Schon abonniert als Feed #4."),
        ("not an http(s) feed URL: 'ftp://x'", "Das ist kein http- oder https-Link zu einem Feed."),
        ("https://x.org/f is not an RSS or Atom feed (syntax error)", "https://x.org/f ist kein RSS- oder Atom-Feed."),
        ("cannot resolve host 'nowhere.invalid'", "Den Server nowhere.invalid gibt es nicht"),
        ("something new from index/feeds", "Der Feed ließ sich nicht lesen (Meldung: something new from index/feeds)."),
    ],
)
def test_feed_reasons_have_german_explanations(reason, german):
    assert german in reason_text(reason, "de", about="feed")
    assert reason_text(reason, "en", about="feed") == reason
