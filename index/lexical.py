"""Lexical analysis for FTS5: one analyzer for both indexed text and queries.

German words are folded (ß → ss, umlauts → base vowel) and Snowball-stemmed, so "Verhandlungen"
and "verhandelt" meet; the same analyzer runs on the query, or BM25 could never match them.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer

_WORD = re.compile(r"\w+", re.UNICODE)

GERMAN_STOPWORDS = frozenset(
    """
    aber alle allem allen aller alles als also am an ander andere anderem anderen anderer anderes auch
    auf aus bei bin bis bist da dabei dadurch dafür dagegen daher dahin damals damit dann daran darauf
    daraus darin darum darunter das dass dasselbe dazu dein deine dem den denn der deren des dessen
    deshalb die dies diese diesem diesen dieser dieses doch dort du durch ein eine einem einen einer
    eines einige einigen einiger er es etwas euch euer eure für gegen gewesen hab habe haben hat hatte
    hatten hier hin hinter ich ihm ihn ihnen ihr ihre ihrem ihren ihrer ihres im in indem ins ist jede
    jedem jeden jeder jedes jene jenem jenen jener jenes jetzt kann kein keine keinem keinen keiner
    können könnte man manche manchem manchen mancher mein meine mich mir mit muss musste nach nicht
    nichts noch nun nur ob oder ohne sehr sein seine seinem seinen seiner seit sich sie sind so solche
    sollte sondern sonst über um und uns unser unter viel vom von vor war waren warst was weg weil
    welche welchem welchen welcher welches wenn wer werde werden wie wieder will wir wird wirst wo
    wollen wollte würde würden zu zum zur zwar zwischen wurde wurden worden wann warum wieso weshalb
    wessen wem wen wieviel wieviele
    """.split()
)
ENGLISH_STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not now of off on once only or other our ours out over own same she should so some
    such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours
    """.split()
)
STOPWORDS = GERMAN_STOPWORDS | ENGLISH_STOPWORDS


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("german")


def fold(word: str) -> str:
    word = word.lower().replace("ß", "ss")
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def analyze(text: str, *, drop_stopwords: bool = False) -> list[str]:
    """Lower-case, fold and stem every word; optionally drop stop words (for queries)."""
    raw = [w.lower() for w in words(text)]
    if drop_stopwords:
        raw = [w for w in raw if w not in STOPWORDS]
    stemmed = _stemmer().stemWords(raw)
    return [fold(w) for w in stemmed if w]


def fts_query(text: str) -> str | None:
    """An FTS5 OR-query over the analyzed terms, each quoted so no term is read as syntax."""
    terms = list(dict.fromkeys(analyze(text, drop_stopwords=True)))
    if not terms:
        terms = list(dict.fromkeys(analyze(text)))
    if not terms:
        return None
    return " OR ".join(f'"{t}"' for t in terms[:64])


def detect_language(text: str) -> str:
    """'de' or 'en' by stop-word votes; German wins ties since the corpus is mostly German."""
    tokens = [w.lower() for w in words(text)]
    german = sum(1 for t in tokens if t in GERMAN_STOPWORDS)
    english = sum(1 for t in tokens if t in ENGLISH_STOPWORDS)
    if any(c in text for c in "äöüßÄÖÜ"):
        german += 1
    return "en" if english > german else "de"
