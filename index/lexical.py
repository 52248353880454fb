"""Lexical analysis for FTS5: one analyzer for both indexed text and queries.

German words are lower-cased, Snowball-stemmed and then folded (ß → ss, umlauts → base vowel), so
"Verhandlungen" and "verhandelt", "Straße" and "Strasse", "Zölle" and "Zolle" meet; the same
analyzer runs on the query, or BM25 could never match them.

German compounds are split too: a capitalised word that the German lexicon does not know
("Funkdemonstration", "Massenverhaftungssituationen") is cut into a known modifier chain and a
known noun head (allowing the linking elements -s-, -es-, -n-, -en-, -e-, -er-, -ens-), and the
stems of the parts are emitted after the stem of the whole word. A question about "Demonstration"
then finds "Funkdemonstration", and one about the "Reisebegleiterin" finds "Begleiterin". Words
the lexicon knows ("Kleidung", "Transport", "Schweden") are never split: that keeps "Klei-dung"
and "Tran-sport" out, and measured better than splitting known compounds (BENCHMARKS.md).

The lexicon is derived from the German dictionary that ships with ``simplemma`` (about one million
word forms): the stems of all forms, and which of them are nouns. Deriving it takes ~10 s, so it is
cached on disk (``$ARTICLEBOT_CACHE_DIR`` or ``~/.cache/articlebot``); without simplemma the
analyzer still stems and folds, it only stops splitting compounds.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import Stemmer

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)

GERMAN_STOPWORDS = frozenset(
    """
    ab aber alle allem allen aller alles als also am an ander andere anderem anderen anderer anderes auch
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
    beim ans aufs ums durchs fürs übers
    woran worauf woraus wobei wodurch wofür wogegen woher wohin womit wonach worin worüber worum wovon
    wozu weswegen inwiefern
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

# Compound splitting bounds: parts of at least 3 letters, a noun head of at least 4, words of at
# least 7 letters; nothing longer than MAX_COMPOUND is tried (the search is quadratic in length).
MIN_PART = 3
MIN_HEAD = 4
MIN_COMPOUND = MIN_PART + MIN_HEAD
MAX_COMPOUND = 48
# Linking elements (Fugenelemente) between modifier and head; "" first: the plain join.
LINKS = ("", "s", "es", "n", "en", "e", "er", "ens")
LEXICON_VERSION = 1


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("german")


def fold(word: str) -> str:
    word = word.lower().replace("ß", "ss")
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=262_144)
def term(word: str) -> str:
    """The index term of one lower-case word: Snowball stem, then folded."""
    return fold(_stemmer().stemWord(word))


def words(text: str) -> list[str]:
    return _WORD.findall(text)


# --- the compound lexicon -------------------------------------------------------------------------


@dataclass(frozen=True)
class Lexicon:
    stems: frozenset[str]  # folded stems of every known word form
    nouns: frozenset[str]  # the subset that are stems of nouns (capitalised forms)


_lexicon_lock = threading.Lock()
_lexicon: Lexicon | None = None
_lexicon_loaded = False


def cache_dir() -> Path:
    explicit = os.environ.get("ARTICLEBOT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "articlebot"


def lexicon() -> Lexicon | None:
    """The German compound lexicon (loaded once per process), or None without simplemma."""
    global _lexicon, _lexicon_loaded
    if _lexicon_loaded:
        return _lexicon
    with _lexicon_lock:
        if not _lexicon_loaded:
            _lexicon = _load_lexicon()
            _lexicon_loaded = True
    return _lexicon


def _load_lexicon() -> Lexicon | None:
    try:
        import simplemma
    except ImportError:
        log.warning("simplemma is not installed: German compounds will not be split")
        return None
    path = cache_dir() / f"de-compound-lexicon-v{LEXICON_VERSION}-simplemma-{simplemma.__version__}.txt.gz"
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            nouns, others = handle.read().split("\n\n", 1)
        noun_set = frozenset(nouns.split("\n"))
        return Lexicon(stems=noun_set | frozenset(others.split("\n")), nouns=noun_set)
    except (OSError, ValueError, EOFError):
        pass  # not built yet (or damaged): build it
    lex = _build_lexicon()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "\n".join(sorted(lex.nouns)) + "\n\n" + "\n".join(sorted(lex.stems - lex.nouns))
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as tmp:
            tmp.write(gzip.compress(body.encode("utf-8")))
        os.replace(tmp.name, path)
    except OSError as exc:
        log.warning("cannot cache the compound lexicon in %s: %s", path.parent, exc)
    return lex


def _build_lexicon() -> Lexicon:
    # Below simplemma's top-level API (pinned to 2.x): tests/test_dependencies.py fails loudly if it moves.
    from simplemma.strategies.dictionaries import DefaultDictionaryFactory

    log.info("deriving the German compound lexicon from simplemma (once)")
    forms: set[str] = set()
    for form, lemma in DefaultDictionaryFactory(cache_max_size=0).get_dictionary("de").items():
        forms.add(form)
        forms.add(lemma)
    forms_list = [f for f in forms if len(f) >= MIN_PART and f.isalpha()]
    stems = _stemmer().stemWords([f.lower() for f in forms_list])
    folded = [fold(s) for s in stems]
    nouns = frozenset(s for s, f in zip(folded, forms_list, strict=True) if f[0].isupper())
    return Lexicon(stems=frozenset(folded), nouns=nouns)


# --- compound splitting ---------------------------------------------------------------------------


def compound_parts(word: str) -> tuple[str, ...]:
    """Parts of an unknown German compound (lower-case word), e.g. ("funk", "demonstration"); else ()."""
    if not MIN_COMPOUND <= len(word) <= MAX_COMPOUND or not word.isalpha():
        return ()
    lex = lexicon()
    if lex is None or term(word) in lex.stems:
        return ()
    return _split(word)


@lru_cache(maxsize=65_536)
def _split(word: str) -> tuple[str, ...]:
    """Modifier chain + noun head; fewest parts first, then the longest shortest part."""
    lex = lexicon()
    best: tuple[tuple[int, int], tuple[str, ...]] | None = None
    for cut in range(MIN_PART, len(word) - MIN_HEAD + 1):
        head = word[cut:]
        if term(head) not in lex.nouns:
            continue
        modifier = _modifier(word[:cut])
        if modifier:
            parts = (*modifier, head)
            key = (len(parts), -min(len(p) for p in parts))
            if best is None or key < best[0]:
                best = (key, parts)
    return best[1] if best else ()


def _modifier(text: str) -> tuple[str, ...]:
    bases = [text[: len(text) - len(link)] for link in LINKS if text.endswith(link)]
    for base in bases:
        if len(base) >= MIN_PART and term(base) in lexicon().stems:
            return (base,)
    for base in bases:
        if len(base) >= MIN_COMPOUND:
            parts = _split(base)
            if parts:
                return parts
    return ()


# --- analysis -------------------------------------------------------------------------------------


def analyze(text: str, *, drop_stopwords: bool = False) -> list[str]:
    """Index terms of a text: stem of every word, then the stems of a compound's parts.

    ``drop_stopwords`` (for queries) drops stop words and question words ("worauf", "beim").
    """
    terms = []
    for token in words(text):
        word = token.lower()
        if drop_stopwords and word in STOPWORDS:
            continue
        whole = term(word)
        if not whole:
            continue
        terms.append(whole)
        if token[0].isupper() and len(word) >= MIN_COMPOUND:
            seen = {whole}
            for part in compound_parts(word):
                stem = term(part)
                if stem and stem not in seen and part not in STOPWORDS:
                    seen.add(stem)
                    terms.append(stem)
    return terms


def query_terms(text: str) -> list[str]:
    """The analyzed terms of a query, stop words dropped unless nothing else is left."""
    terms = list(dict.fromkeys(analyze(text, drop_stopwords=True)))
    return terms or list(dict.fromkeys(analyze(text)))


def fts_match(terms: list[str]) -> str | None:
    """An FTS5 OR-query over analyzed terms, each quoted so no term is read as syntax."""
    return " OR ".join(f'"{t}"' for t in terms[:64]) if terms else None


def fts_query(text: str) -> str | None:
    """An FTS5 OR-query over the analyzed terms of ``text``."""
    return fts_match(query_terms(text))


def detect_language(text: str) -> str:
    """'de' or 'en' by stop-word votes; German wins ties since the corpus is mostly German."""
    tokens = [w.lower() for w in words(text)]
    german = sum(1 for t in tokens if t in GERMAN_STOPWORDS)
    english = sum(1 for t in tokens if t in ENGLISH_STOPWORDS)
    if any(c in text for c in "äöüßÄÖÜ"):
        german += 1
    return "en" if english > german else "de"
