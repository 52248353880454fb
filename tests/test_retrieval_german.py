"""German-specific lexical retrieval: inflection, umlauts and ß, compounds, question words.

A small self-written corpus; every query is phrased so that plain word matching would miss the
right article and only the German analyzer (index and query side alike) finds it.
"""

from __future__ import annotations

import importlib.util

import pytest

from index.extract import Document
from index.lexical import analyze, compound_parts, fts_query
from index.search import score_fusion
from index.settings import SearchSettings

ARTICLES = [
    Document(
        title="Stadtrat beschließt neue Linie nach Ulmenhagen",
        text=(
            "Der Stadtrat hat am Dienstag die Straßenbahnverlängerung nach Ulmenhagen beschlossen. "
            "Die Bauarbeiten beginnen im kommenden Frühjahr und sollen zwei Jahre dauern.\n\n"
            "Die Kosten liegen nach Angaben der Verkehrsbetriebe bei 40 Millionen Euro."
        ),
    ),
    Document(
        title="Talgrund: Stadtwerke erhöhen die Tarife",
        text=(
            "Die Stadtwerke Talgrund erhöhen zum ersten Januar die Wasserpreise um acht Prozent. "
            "Verbraucherschützer kritisieren die Erhöhung als unverhältnismäßig.\n\n"
            "Ein Haushalt mit vier Personen zahlt künftig rund 60 Euro mehr im Jahr."
        ),
    ),
    Document(
        title="Hollerau rüstet sich für den Sommer",
        text=(
            "Wegen der anhaltenden Hitzewelle öffnet die Stadt Hollerau ihre Schwimmbäder bis 22 Uhr. "
            "Der neue Hitzeschutzplan sieht außerdem Trinkbrunnen in allen Stadtteilen vor."
        ),
    ),
]


@pytest.fixture
def german_kb(kb):
    kb.add_many(ARTICLES)
    return kb


def top_title(kb, query: str) -> str | None:
    hits = kb.search(query, k=3, mode="lexical")
    return hits[0].title if hits else None


def test_inflected_plural_with_umlaut_finds_singular_query(german_kb):
    # "Schwimmbäder" (plural, umlaut) is indexed as the stem of "Schwimmbad".
    assert top_title(german_kb, "Wie lange hat das Schwimmbad geöffnet?") == ARTICLES[2].title


def test_sharp_s_and_ss_spellings_meet(german_kb):
    # Swiss spelling in the question, ß in the article (inside a compound, too).
    assert analyze("Straße") == analyze("Strasse")
    assert top_title(german_kb, "Strassenbahn Ulmenhagen") == ARTICLES[0].title


def test_question_words_are_not_query_terms():
    query = fts_query("Worauf einigten sich die Gewerkschaften beim Tarifstreit?")
    assert '"worauf"' not in query and '"beim"' not in query
    assert '"gewerkschaft"' in query


needs_lexicon = pytest.mark.skipif(
    importlib.util.find_spec("simplemma") is None, reason="simplemma (the compound lexicon) is not installed"
)


@needs_lexicon
def test_compound_parts_are_split_and_known_words_are_not():
    assert compound_parts("straßenbahnverlängerung") == ("straßenbahn", "verlängerung")
    assert compound_parts("hitzeschutzplan") == ("hitze", "schutz", "plan")
    # Known words stay whole: no "Klei-dung", no "Tran-sport", no "Sch-weden".
    for word in ("kleidung", "transport", "schweden", "verhandlungen"):
        assert compound_parts(word) == ()
    terms = analyze("Funkdemonstration")
    assert terms[0] == "funkdemonstration" and "demonstration" in terms


@needs_lexicon
def test_simple_word_in_question_finds_compound_in_article(german_kb):
    # Only "Straßenbahnverlängerung" carries the answer; "Verlängerung" appears nowhere on its own.
    assert top_title(german_kb, "Wann beginnt die Verlängerung?") == ARTICLES[0].title


@needs_lexicon
def test_compound_in_question_finds_its_parts_in_article(german_kb):
    # The article says "Wasserpreise" and "Erhöhung", never "Wasserpreiserhöhung".
    assert top_title(german_kb, "Wie stark fällt die Wasserpreiserhöhung aus?") == ARTICLES[1].title


@pytest.mark.parametrize(
    "settings",
    [
        SearchSettings(),  # the shipped default for USE: dense 0.7 / lexical 0.3
        SearchSettings(dense_weight=0.4, lexical_weight=0.6),  # config.minilm.example.toml
    ],
    ids=["default", "minilm"],
)
def test_score_fusion_keeps_a_confident_bm25_winner(settings):
    # Dense barely prefers 1 (0.52 vs 0.49); BM25 scores 3 four times higher. 3 wins under both weightings:
    # 0.7 * 0.49 + 0.3 * 1.0 = 0.643 against 0.7 * 0.52 + 0.3 * 0.25 = 0.439 with the defaults.
    dense = [(1, 0.52), (2, 0.50), (3, 0.49)]
    lexical = [(3, 12.0), (1, 3.0)]
    fused = score_fusion(dense, lexical, settings)
    assert fused[0][0] == 3
    # A lexical-only candidate gets the dense side's lowest score, not zero.
    only_lexical = score_fusion(dense, [(9, 5.0)], settings)
    assert dict(only_lexical)[9] == pytest.approx(settings.dense_weight * 0.49 + settings.lexical_weight * 1.0)
    # Without a dense side the ranking is BM25's.
    assert [c for c, _ in score_fusion([], lexical, settings)] == [3, 1]
