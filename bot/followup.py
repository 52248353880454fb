"""Follow-up questions: "Und was sagte Selenskyj dazu?" is asked against the topic of the question before.

Per conversation the last *topic* question is kept for a configurable number of minutes. A short
question that opens like a follow-up ("und", "why", ...), leans on a pronoun ("dazu", "he"), or has
almost no content words of its own is resolved against it: retrieval sees both, the evidence
scoring weighs the follow-up's own words higher. A question that stands alone becomes the new topic.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from index.lexical import analyze

MAX_FOLLOWUP_WORDS = 8
MAX_CONVERSATIONS = 10_000

_OPENING = re.compile(
    r"^\s*(und|aber|also|oder|auch|sowie|and|but|also|or|what about|how about|und was|und wie|und wer|und wann|"
    r"warum|wieso|weshalb|weswegen|why|how so|wie das|inwiefern|was noch|sonst noch|anything else|what else)\b",
    re.IGNORECASE,
)
_ANAPHORA = frozenset(
    """
    er sie es ihm ihn ihr ihnen sein seine ihre dazu dabei darüber davon daran darauf dafür dagegen damit
    dort damals dies diese dieser dieses das denn he she it they him her them his its their that this
    those these there then
    """.split()
)


@dataclass
class Resolved:
    """What retrieval is asked, and the topic question a follow-up was resolved against (if any)."""

    query: str
    topic: str | None = None


@dataclass
class _Entry:
    topic: str
    at: float


def is_followup(question: str) -> bool:
    words = re.findall(r"\w+", question.lower())
    if not words or len(words) > MAX_FOLLOWUP_WORDS:
        return False
    if _OPENING.match(question) or any(w in _ANAPHORA for w in words):
        return True
    return len(analyze(question, drop_stopwords=True)) <= 1


class FollowupMemory:
    """Thread-safe, bounded memory of each conversation's last topic question."""

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = minutes * 60.0
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, conversation: str | None, question: str) -> Resolved:
        """The retrieval query for ``question``, and remember the topic for the next one."""
        if conversation is None:
            return Resolved(question)
        now = self.clock()
        with self._lock:
            entry = self._entries.get(conversation)
            if entry is not None and now - entry.at > self.seconds:
                entry = None
            if entry is not None and is_followup(question):
                topic = entry.topic
                resolved = Resolved(f"{topic} {question}", topic)
            else:
                topic = question
                resolved = Resolved(question)
            self._entries[conversation] = _Entry(topic, now)
            self._entries.move_to_end(conversation)
            while len(self._entries) > MAX_CONVERSATIONS:
                self._entries.popitem(last=False)
        return resolved

    def forget(self, conversation: str) -> None:
        with self._lock:
            self._entries.pop(conversation, None)
