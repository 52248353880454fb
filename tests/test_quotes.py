"""Answer bodies that read right: whole quotations with their attribution, no headings, no doubled marks.

Through the real Answerer on a real knowledge base (bundled model, SQLite, FAISS), and through what the
CLI, the chat and Telegram show. The articles are invented, written like German agency news.
"""

from __future__ import annotations

import re

import pytest

from bot import cli
from bot.answer import Answerer
from bot.config import AnswerSettings, Config, TelegramSettings
from bot.conversation import Conversation, Incoming, Press, User
from bot.feedback import FeedbackStore
from bot.render import plain_text, to_html
from index.chunking import split_sentences
from index.extract import Document
from index.settings import FetchSettings, StorageSettings

FULL_QUOTE = (
    "„Wir haben zwei Stunden über die Luftabwehr und den Wiederaufbau gesprochen. Wie Präsident Trump sagte: "
    "Lassen wir es uns angehen“, schrieb Selenskyj am Abend in den sozialen Netzwerken."
)
SELENSKYJ = Document(
    title="Selenskyj zieht Bilanz nach dem Treffen in Washington",
    url="https://example.org/selenskyj-washington",
    text=(
        "Nach dem Treffen im Weißen Haus hat sich der ukrainische Präsident Wolodymyr Selenskyj zuversichtlich "
        f"geäußert. {FULL_QUOTE} Beide Delegationen wollen sich im Herbst in Genf erneut treffen.\n\n"
        "In Kiew wurde das Ergebnis vorsichtig aufgenommen. Oppositionspolitiker warnten vor zu großen "
        "Erwartungen an die Lieferungen."
    ),
)

HEADING = 'Rutte: NATO und Trump "zunehmend" auf derselben Seite'
RUTTE = Document(
    title="NATO-Gipfel in Den Haag endet ohne Streit",
    url="https://example.org/nato-den-haag",
    text=(
        "Der NATO-Gipfel in Den Haag ist am Mittwoch nach zwei Tagen zu Ende gegangen. Die Staats- und "
        "Regierungschefs einigten sich auf eine gemeinsame Abschlusserklärung.\n\n"
        f"{HEADING}\n\n"
        "Generalsekretär Mark Rutte sieht das Bündnis und den US-Präsidenten bei den Verteidigungsausgaben "
        "zunehmend auf derselben Seite. Die Mitgliedstaaten hätten ihre Budgets im vergangenen Jahr um "
        "durchschnittlich elf Prozent erhöht, sagte Rutte vor Journalisten.\n\n"
        "Streit gibt es weiter über die Hilfe für die Ukraine. Mehrere Regierungen lehnen neue Zusagen ab."
    ),
)

BRIDGE_QUOTE = (
    "„Die Brücke über die Wern wird am 14. Mai für den Verkehr freigegeben“, sagte Bauamtsleiterin Greta Sommer."
)
BRIDGE = Document(
    title="Talheimer Wernbrücke fast fertig",
    url="https://example.org/talheim-bruecke",
    text=(
        f"{BRIDGE_QUOTE} Bis dahin fahren die Busse weiter über die Umleitung in Krautheim.\n\n"
        "Der Bau hat 6,1 Millionen Euro gekostet, eine Million mehr als geplant."
    ),
)
POOL_HEADING = "Hallenbad Grauwinkel: Eröffnung im Herbst 2027"
POOL = Document(
    title="Neues Hallenbad in Grauwinkel",
    url="https://example.org/grauwinkel-hallenbad",
    text=(
        "Der Stadtrat von Grauwinkel hat den Bau eines neuen Hallenbads beschlossen. Das Hallenbad soll 14 "
        f"Millionen Euro kosten.\n\n{POOL_HEADING}\n\n"
        "Das neue Hallenbad in Grauwinkel soll im Herbst 2027 eröffnen. Bis dahin bleibt das alte Bad geöffnet."
    ),
)
ARTICLES = [SELENSKYJ, RUTTE, BRIDGE, POOL]

# The same mark twice in a row: „„, ““, »», or the ASCII "" of a quote wrapped in its own marks.
DOUBLED = re.compile(r"([„“”\"»«‚‘’‹›])\1")


@pytest.fixture
def loaded_kb(kb):
    for doc in ARTICLES:
        kb.add(doc)
    return kb


@pytest.fixture
def answerer(loaded_kb) -> Answerer:
    return Answerer(loaded_kb, AnswerSettings())


def statements(body: str) -> list[str]:
    """The quoted sentences of an extractive body, without their markers."""
    return [s.strip() for s in re.split(r"\s*\[\d+\]", body) if s.strip()]


def assert_reads_right(body: str) -> None:
    assert not DOUBLED.search(body), body
    for statement in statements(body):
        assert statement.count("„") == statement.count("“"), f"unbalanced quotation: {statement!r}"
        assert statement.count('"') % 2 == 0, f"unbalanced quotation: {statement!r}"


def test_splitter_keeps_quotation_and_attribution_together():
    assert split_sentences(SELENSKYJ.text)[1] == FULL_QUOTE
    assert split_sentences("Er sagte: „Wir kommen. Sicher.“ Danach ging er.") == [
        "Er sagte: „Wir kommen. Sicher.“",
        "Danach ging er.",
    ]


def test_answer_quotes_the_whole_quotation_with_its_attribution(answerer):
    answer = answerer.answer("Was schrieb Selenskyj über das Treffen mit Trump?")
    assert answer.found
    assert FULL_QUOTE in answer.body
    assert not answer.body.startswith("Wie Präsident")
    assert any(c.quote.startswith(FULL_QUOTE) or FULL_QUOTE in c.quote for c in answer.citations)
    assert_reads_right(answer.body)


def test_answer_never_quotes_a_heading(answerer):
    # The question repeats the heading's words ("auf derselben Seite"), so the heading would score best.
    answer = answerer.answer("Sieht Rutte die NATO und Trump auf derselben Seite?")
    assert answer.found
    assert HEADING not in answer.body and "Rutte:" not in answer.body
    assert "Generalsekretär Mark Rutte sieht das Bündnis" in answer.body
    assert all(HEADING not in c.quote for c in answer.citations)
    assert_reads_right(answer.body)


def test_a_quote_never_runs_across_a_left_out_heading(answerer):
    """Sentences on either side of a heading are two quotes, not one verbatim span with the heading in it."""
    answer = answerer.answer("Was kostet das neue Hallenbad in Grauwinkel und wann eröffnet es?")
    assert "14 Millionen Euro" in answer.body and "Herbst 2027 eröffnen" in answer.body
    assert POOL_HEADING not in answer.body
    assert all(POOL_HEADING not in c.quote for c in answer.citations), [c.quote for c in answer.citations]


QUESTION_BRIDGE = "Wann wird die Brücke in Talheim freigegeben?"


def test_cli_shows_a_quote_that_starts_with_its_own_mark_without_doubling(loaded_kb, monkeypatch, capsys):
    monkeypatch.setattr(cli, "open_kb", lambda config: loaded_kb)
    monkeypatch.setattr(cli, "load_config", lambda *args: config_of(loaded_kb))
    assert cli.main(["ask", QUESTION_BRIDGE]) == 0
    out = capsys.readouterr().out
    assert BRIDGE_QUOTE in out
    assert not DOUBLED.search(out), out
    (quote_line,) = [line for line in out.splitlines() if line.startswith("  [")]
    assert quote_line.strip().count("„") == quote_line.strip().count("“")


def test_chat_and_telegram_show_no_doubled_marks(loaded_kb, answerer):
    feedback = FeedbackStore(loaded_kb.answer_log())
    try:
        conversation = Conversation(loaded_kb, answerer, feedback, TelegramSettings(), FetchSettings())
        user = User(7, "Lena", "de")
        (reply,) = conversation.handle(Incoming(user, chat_id=7, text=QUESTION_BRIDGE, bot_username="articles_bot"))
        shown = [plain_text(reply), *to_html(reply)]
        buttons = {b.label: b.data for row in reply.buttons for b in row}
        (pressed,) = conversation.press(Press(user, 7, buttons["Zitat [1]"])).replies
        shown += [plain_text(pressed), *to_html(pressed)]
    finally:
        feedback.close()
    assert "Greta Sommer" in shown[0]
    assert BRIDGE_QUOTE in shown[2]
    for text in shown:
        assert not DOUBLED.search(text), text
        assert text.count("„") == text.count("“"), text


def test_a_title_with_its_own_quotation_marks_is_not_wrapped_in_them_again(kb):
    feedback = FeedbackStore(kb.answer_log())
    try:
        admin = User(1, "Ada", "de")
        settings = TelegramSettings(admins=[admin.id])
        conversation = Conversation(kb, Answerer(kb, AnswerSettings()), feedback, settings, FetchSettings())
        title = "„Wir haben verloren“: Selenskyj zieht Bilanz"
        text = f"/add\n{title}\n{SELENSKYJ.text}"
        replies = conversation.handle(Incoming(admin, chat_id=1, text=text, bot_username="articles_bot"))
    finally:
        feedback.close()
    shown = [plain_text(r) for r in replies] + [html for r in replies for html in to_html(r)]
    assert any(f"»{title}«" in text for text in shown), shown
    for text in shown:
        assert not DOUBLED.search(text), text


def config_of(kb) -> Config:
    """The default config on the knowledge base's own data dir (not ./data in the checkout)."""
    return Config(storage=StorageSettings(data_dir=str(kb.data_dir)))
