"""Quotations and headings in article text: what a sentence boundary must not cut, and what is no sentence.

News text quotes people across sentences („Wir haben verloren. Das war bitter“, schrieb sie.): a
boundary inside the quotation would make half of it read as the reporter's words, or the other half
as someone else's. ``quotation_spans`` finds the balanced quotations of a text (German, English,
French and Swiss marks, nested), so the splitter in chunking.py can keep each one whole.
"""

from __future__ import annotations

import bisect
import re

# Opening mark -> the marks that close it. „…“ and »…« are German, “…” and ‘…’ English, «…» French
# and Swiss, ”…” Swedish; sloppy typing mixes them („…" or „…”), which still counts as balanced.
CLOSERS = {
    "„": '“”"',
    "“": '”"',
    "”": "”",
    '"': '"”“',
    "«": "»",
    "»": "«",
    "‹": "›",
    "›": "‹",
    "‚": "‘’'",
    "‘": "’'",
    "'": "'’‘",
}
# A closing mark -> the openings it can close, derived from CLOSERS.
OPENERS = {c: "".join(o for o, closers in CLOSERS.items() if c in closers) for c in set("".join(CLOSERS.values()))}
QUOTE_MARKS = "".join(sorted(set(CLOSERS) | set(OPENERS)))
CLOSING_MARKS = "".join(sorted(OPENERS))
# Marks that are also an apostrophe (geht's, Peter’s) or a unit (5" = five inches): between two
# letters or digits they quote nothing.
_APOSTROPHES = "'’"
_MARK_OR_BREAK = re.compile("[" + re.escape(QUOTE_MARKS) + "\n]")
# A quotation longer than this is split like running text: one endless "sentence" is no answer, and
# an opening mark that was never meant to be closed must not swallow the rest of the paragraph.
MAX_QUOTE_CHARS = 600
# Quotations nest two or three deep in real text; keeping more open marks only costs time (a line of
# 100,000 „ would otherwise be quadratic).
MAX_NESTING = 8

# A stand-alone line shorter than this without a sentence end is a heading, a byline or a caption.
HEADING_MAX_CHARS = 100
_CLOSING_TAIL = ")]}" + CLOSING_MARKS
_INNER_END = re.compile(r"[.!?…]\S*\s")
# Lines that are list items or table rows carry facts without final punctuation.
_LIST_ITEM = re.compile(r"^\s*([-–—•*·▪►]|\d{1,3}[.)]\s)|\|")


def quotation_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans ``(open, close_end)`` of the balanced quotations in text[start:end], outermost and nested alike.

    A quotation never runs across a line break; an opening mark not closed on its line, or closed only
    after ``MAX_QUOTE_CHARS``, quotes nothing (a stray mark, an apostrophe, inches).
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    stack: list[tuple[str, int]] = []
    for match in _MARK_OR_BREAK.finditer(text, start, end):
        i, mark = match.start(), match.group()
        if mark == "\n":
            stack.clear()
            continue
        before = text[i - 1] if i > start else " "
        after = text[i + 1] if i + 1 < end else " "
        if mark in _APOSTROPHES and before.isalnum() and after.isalnum():
            continue
        depth = _closable(stack, mark) if not before.isspace() else None
        if depth is not None:
            opened = stack[depth][1]
            del stack[depth:]
            if i + 1 - opened <= MAX_QUOTE_CHARS:
                spans.append((opened, i + 1))
        elif mark in CLOSERS and not after.isspace() and not before.isalnum():
            stack.append((mark, i))
            if len(stack) > MAX_NESTING:
                del stack[0]
    return sorted(spans)


def _closable(stack: list[tuple[str, int]], mark: str) -> int | None:
    """The depth of the innermost open quotation this mark closes (the ones above it were strays)."""
    for depth in range(len(stack) - 1, -1, -1):
        if mark in CLOSERS[stack[depth][0]]:
            return depth
    return None


class Quotations:
    """The quotations of a text, asked whether a cut at a position would fall inside one."""

    def __init__(self, text: str, start: int = 0, end: int | None = None):
        merged: list[list[int]] = []
        for open_at, close_end in quotation_spans(text, start, end):
            if merged and open_at < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], close_end)
            else:
                merged.append([open_at, close_end])
        self._starts = [s for s, _ in merged]
        self._ends = [e for _, e in merged]

    def inside(self, position: int) -> bool:
        """True when a cut before text[position] would split a quotation."""
        i = bisect.bisect_left(self._starts, position) - 1
        return i >= 0 and position < self._ends[i]


def is_heading(text: str, start: int, end: int, next_line: str = "") -> bool:
    """A short stand-alone line that ends no sentence: a title, subheading, byline or caption.

    A short line that is a question on its own ("Was bedeutet das für Mieter?") heads what follows
    too and answers nothing. A line the next one continues in lower case is a wrapped sentence (PDF),
    and list items and table rows hold facts without final punctuation: neither is a heading.
    """
    line = text[start:end].strip()
    if not line or len(line) >= HEADING_MAX_CHARS or _LIST_ITEM.search(line):
        return False
    if next_line[:1].islower():
        return False
    tail = line.rstrip(_CLOSING_TAIL + " ")
    if tail.endswith("?"):
        return not _INNER_END.search(tail)
    # Not after a sentence end (. ! … : ;), nor a comma or hyphen (a line that goes on: wrapped text).
    return tail[-1:].isalnum()


def quoted(text: str, language: str) -> str:
    """The text in the language's quotation marks, in marks it does not use itself, or bare.

    A quote that already holds „…“ wrapped in „…“ again reads as doubled marks („„Wir …“).
    """
    # Each pair with the marks that would look like it next to it.
    pairs = [("„", "“", '„“”"'), ("»", "«", "»«")] if language == "de" else [("“", "”", '„“”"')]
    for opening, closing, alike in pairs:
        if not any(mark in text for mark in alike):
            return f"{opening}{text}{closing}"
    return text
