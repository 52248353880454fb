"""Follow-up questions: "Und was sagte Selenskyj dazu?" is asked against the topic of the question before.

Per conversation the last *topic* question is kept for a configurable number of minutes. A short
question that opens like a follow-up ("und", "why", ...), leans on a pronoun ("dazu", "he"), or has
almost no content words of its own is resolved against it: retrieval sees both, the evidence
scoring weighs the follow-up's own words higher. A question that stands alone becomes the new topic, and
so does one that names something new ("Und die Fähre?" after a question about a tram): a change of subject.

The sentences quoted since the topic was asked are kept with it: a follow-up answers what it asks with
sentences not shown yet (``follow_on``), and says so when the articles hold nothing more.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from index.lexical import STOPWORDS, analyze, words

from .evidence import Sentence

MAX_FOLLOWUP_WORDS = 8
MAX_CONVERSATIONS = 10_000
# Quotes kept per topic ("mehr", "mehr", ... pages on through them); older ones may come again.
MAX_SHOWN = 30

_OPENING = re.compile(
    r"^\s*(und|aber|also|oder|auch|sowie|and|but|also|or|what about|how about|und was|und wie|und wer|und wann|"
    r"warum|wieso|weshalb|weswegen|why|how so|wie das|inwiefern|was noch|sonst noch|anything else|what else|"
    r"tell me more|erzähl\w* (mir )?mehr)\b",
    re.IGNORECASE,
)
_ANAPHORA = frozenset(
    """
    er sie es ihm ihn ihr ihnen sein seine ihre dazu dabei darüber davon daran darauf dafür dagegen damit
    dort damals dies diese dieser dieses das denn he she it they him her them his its their that this
    those these there then
    """.split()
)
# Anaphora that are pronouns, not determiners: "Und die Fähre?" names a new subject, "Und was sagte sie dazu?"
# leans on the old one.
_PRONOUNS = _ANAPHORA - frozenset("das dies diese dieser dieses that this those these".split())
# "Und die Fähre?", "What about the ferry?": an opener and a bare noun phrase, the old question's aspect.
_BARE_SUBJECT = re.compile(
    r"^\s*(und|and|what about|how about|und was ist mit|was ist mit)\s+(der|die|das|den|dem|des|the)\s+"
    r"[\w\s-]+[?!.]*\s*$",
    re.IGNORECASE,
)
_WHY = re.compile(r"\b(warum|wieso|weshalb|weswegen|wozu|why|how so|what for|aus welche[mn] gr(u|ü)nde?n?)\b", re.I)
_MORE = re.compile(
    r"^\s*((und|and)\s+)?(noch\s+)?(mehr|more|weiter|was noch|sonst noch|was sonst|what else|anything else|"
    r"tell me more|go on|erzähl\w* (mir )?mehr)\b",
    re.IGNORECASE,
)
# A sentence that gives a reason: a causal conjunction or preposition, or a word naming a cause.
_REASON = re.compile(
    r"\b(weil|denn|wegen|aufgrund|angesichts|infolge|dank|deshalb|deswegen|daher|darum|sodass|so dass|damit|"
    r"begründ\w*|grund|gründe|ursache\w*|zurückzuführen|because|due to|owing to|thanks to|as a result|since|"
    r"so that|therefore|reasons?|caused?)\b|(^|[,;:–-]\s*)da\b",
    re.IGNORECASE,
)


@dataclass
class Resolved:
    """What retrieval is asked, and the topic question a follow-up was resolved against (if any)."""

    query: str
    topic: str | None = None
    # Quotes of the answers given since the topic was asked, and the articles the last one cited.
    shown: tuple[str, ...] = ()
    articles: tuple[int, ...] = ()


@dataclass
class _Entry:
    topic: str
    at: float
    shown: list[str] = field(default_factory=list)
    articles: tuple[int, ...] = ()


def is_followup(question: str) -> bool:
    words = re.findall(r"\w+", question.lower())
    if not words or len(words) > MAX_FOLLOWUP_WORDS:
        return False
    if _OPENING.match(question) or any(w in _ANAPHORA for w in words):
        return True
    return len(analyze(question, drop_stopwords=True)) <= 1


def asks_why(question: str) -> bool:
    return bool(_WHY.search(question))


def asks_more(question: str) -> bool:
    return bool(_MORE.match(question))


def without_more(question: str) -> str:
    """A follow-up without its "mehr" / "tell me more": those words ask for other sentences, they are not
    what the sentences should say ("mehr" found "mehrere Monate")."""
    return _MORE.sub("", question, count=1).strip()


def gives_reason(sentence: str) -> bool:
    return bool(_REASON.search(sentence))


def subject_words(question: str) -> list[str]:
    """What a follow-up names itself: its capitalised words but the first ("Und was sagte Selenskyj?"),
    and every content word of a bare "Und die Fähre?" / "What about the ferry?"."""
    found = words(question)
    named = [w for w in found[1:] if w[:1].isupper()]
    if _BARE_SUBJECT.match(question):
        named += found[1:]
    return [w.lower() for w in named if w.lower() not in STOPWORDS and w.lower() not in _ANAPHORA]


def changes_subject(question: str, known: str) -> bool:
    """A follow-up names something the topic question and the articles quoted for it never mention, and
    leans on no pronoun: "Und die Fähre?" after the tram's price is a new question, not more on the tram.

    Words are compared by their start (``known`` is read with its compounds and plurals: "Fähre" is found in
    "Fährverbindungen"), not by stem: the stemmer folds "Fähre" and "fahren" into one.
    """
    if any(w in _PRONOUNS for w in re.findall(r"\w+", question.lower())):
        return False
    known = known.lower()
    return any(w[: max(4, len(w) - 2)] not in known for w in subject_words(question))


def follow_on(question: str, sentences: list[Sentence], resolved: Resolved, min_support: float) -> list[Sentence]:
    """The sentences a follow-up is answered from (best first), given what the conversation was shown.

    They come from the articles the last answer quoted, unless none of their sentences was retrieved.
    A sentence quoted before comes again only when it is still the best answer and holds the number or
    date the follow-up asks for ("Wie viele Haltestellen hat sie?"), or when nothing new answers a follow-up
    with words of its own ("Wer hat das gesagt?"); otherwise the follow-up gets sentences
    not shown yet that could have joined an answer (``min_support`` of the best one's score); "mehr" takes
    the next ones of the articles the last answer quoted, however far down. "Warum" takes
    the sentences that give a reason, from the topic's articles or as strong as that; when the reason was
    given already, or nothing new is left, the list is empty: the articles say nothing more.
    """
    # The topic is what the last answer quoted: its articles answer the follow-up when they can (a shared
    # stem, "Fähre" / "fahren", must not pull in another article's sentences).
    sentences = [s for s in sentences if s.hit.article_id in resolved.articles] or sentences
    if not sentences:
        return []
    best = sentences[0]

    def shown(sentence: Sentence) -> bool:
        return any(sentence.text in quote for quote in resolved.shown)

    if shown(best) and best.answer_type and not asks_more(question):
        return [best]
    fresh = [s for s in sentences if not shown(s)]
    bar = min_support * best.score
    if asks_why(question):
        reasons = [
            s for s in fresh if gives_reason(s.text) and (s.hit.article_id in resolved.articles or s.support >= bar)
        ]
        if reasons:
            return reasons
        if any(gives_reason(s.text) and shown(s) for s in sentences):
            return []
    if asks_more(question):  # the topic's articles page on, sentence by sentence
        return [s for s in fresh if s.hit.article_id in resolved.articles or s.support >= bar]
    new = [s for s in fresh if s.support >= bar]
    if not new and shown(best) and analyze(question, drop_stopwords=True):
        return [best]  # "Wer hat das gesagt?": asks something of its own, and the quote shown answers it
    return new


class FollowupMemory:
    """Thread-safe, bounded memory of each conversation's last topic question."""

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = minutes * 60.0
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(
        self, conversation: str | None, question: str, articles_text: Callable[[tuple[int, ...]], str] | None = None
    ) -> Resolved:
        """The retrieval query for ``question``, and remember the topic for the next one.

        ``articles_text`` gives the text of the articles the last answer cited: a follow-up naming
        something they and the topic never mention changes the subject.
        """
        if conversation is None:
            return Resolved(question)
        now = self.clock()
        with self._lock:
            entry = self._entries.get(conversation)
            if entry is not None and now - entry.at > self.seconds:
                entry = None
        if entry is not None and is_followup(question):
            known = f"{entry.topic} {articles_text(entry.articles) if articles_text else ''}"
            if changes_subject(question, known):
                entry = None
        with self._lock:
            if entry is not None and is_followup(question):
                resolved = Resolved(f"{entry.topic} {question}", entry.topic, tuple(entry.shown), entry.articles)
                entry = _Entry(entry.topic, now, entry.shown, entry.articles)
            else:
                resolved = Resolved(question)
                entry = _Entry(question, now)
            self._entries[conversation] = entry
            self._entries.move_to_end(conversation)
            while len(self._entries) > MAX_CONVERSATIONS:
                self._entries.popitem(last=False)
        return resolved

    def remember(self, conversation: str | None, quotes: list[str], articles: list[int]) -> None:
        """What the answer to the conversation's last question quoted, and from which articles."""
        if conversation is None:
            return
        with self._lock:
            entry = self._entries.get(conversation)
            if entry is None:
                return
            entry.shown = (entry.shown + quotes)[-MAX_SHOWN:]
            if articles:
                entry.articles = tuple(dict.fromkeys(articles))

    def forget(self, conversation: str) -> None:
        with self._lock:
            self._entries.pop(conversation, None)
