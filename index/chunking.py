"""Split article text into sentence-aware, paragraph-respecting chunks with exact offsets.

Every chunk satisfies ``text[chunk.start:chunk.end] == chunk.text``; chunks never exceed the
embedding model's token budget, because anything beyond it would be silently truncated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .sentences import CLOSING_MARKS, Quotations, is_heading

# Words that end in a period without ending a sentence (German and English news usage).
ABBREVIATIONS = frozenset(
    """
    z b u a d h o ä s v g i e vgl bzw usw etc ca dr prof nr st str abs art bd jh jhd mio mrd mr mrs ms
    jr sr vs inc ltd co corp gen lt col sgt rep sen gov dipl ing med phil rer nat hl sog ggf evtl
    inkl exkl zzgl bzgl ggü tel fr hr hrn frl jan feb mär apr jun jul aug sep sept okt oct nov
    dez dec fig nos vol ed eds pp approx dept univ est al
    """.split()
)
MONTHS = frozenset(
    """
    januar februar märz april mai juni juli august september oktober november dezember jänner january
    february march may june july october december
    """.split()
)

# Pieces of an over-long sentence are cut by characters beyond this many per token of budget.
MAX_CHARS_PER_TOKEN = 8

# A candidate boundary: terminal punctuation, optional closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”“»«’‘›‹)\]]*(?=\s)")
_NEXT_WORD = re.compile(r"\s+[\"'„“»«‚‘‹›(\[]*(\w+)")
_WORD_BEFORE = re.compile(r"(\w+)\W*$")
_PARAGRAPH_BREAK = re.compile(r"\n\s*")


@dataclass(frozen=True)
class Chunk:
    position: int
    start: int
    end: int
    text: str


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """Spans of non-blank lines; news text often uses single newlines between paragraphs."""
    spans = []
    pos = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        _append_stripped(text, pos, match.start(), spans)
        pos = match.end()
    _append_stripped(text, pos, len(text), spans)
    return spans


def _append_stripped(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def _is_sentence_end(text: str, punct_start: int, punct_end: int) -> bool:
    punct = text[punct_start:punct_end]
    nxt = _NEXT_WORD.match(text, punct_end)
    if nxt is None:
        return True
    next_word = nxt.group(1)
    # "Plan B.“ Danach": a period that a closing quotation mark follows ends the sentence in any case.
    closes_quote = any(mark in punct for mark in CLOSING_MARKS)
    if punct.startswith(".") and not punct.startswith("...") and not closes_quote:
        before = _WORD_BEFORE.search(text, max(0, punct_start - 40), punct_start)
        word = before.group(1) if before else ""
        # "geht's.", "Peter's.": the letter after an apostrophe is an ending, no abbreviation.
        elided = before is not None and text[before.start(1) - 1 : before.start(1)] in ("'", "’")
        if not elided and (word.lower() in ABBREVIATIONS or (len(word) == 1 and word.isalpha())):
            return False
        # "12. Februar", "im 19. Jahrhundert": short numbers before a period are ordinals, unless
        # they close a score or a grouped number ("endete 2:1.", "auf 1.000.").
        if word.isdigit() and _stands_alone(text, before.start(1)) and (len(word) <= 3 or next_word.lower() in MONTHS):
            return False
    # A lower-case continuation ("… sagte er. und") is almost always an abbreviation we don't know.
    return not next_word[0].islower()


def _stands_alone(text: str, start: int) -> bool:
    return start == 0 or text[start - 1].isspace() or text[start - 1] in "(\"'„“‚‘[«»‹›"


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans within text[start:end], whitespace trimmed, covering all non-space text.

    A quotation is never cut: „A. B“, schrieb sie. is one sentence, quote and attribution together.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    quotations = Quotations(text, start, end)
    for match in _BOUNDARY.finditer(text, start, end):
        if not quotations.inside(match.end()) and _is_sentence_end(text, match.start(), match.end()):
            _append_stripped(text, pos, match.end(), spans)
            pos = match.end()
    _append_stripped(text, pos, end, spans)
    return spans


def split_sentences(text: str) -> list[str]:
    return [text[s:e] for p_start, p_end in paragraph_spans(text) for s, e in sentence_spans(text, p_start, p_end)]


def answer_spans(text: str) -> list[tuple[int, int]]:
    """The spans of text that can be quoted as an answer: sentences of each paragraph, never across a
    paragraph break, and no headings (a title, subheading or byline line is no statement)."""
    paragraphs = paragraph_spans(text)
    spans = []
    for i, (p_start, p_end) in enumerate(paragraphs):
        next_line = text[paragraphs[i + 1][0] : paragraphs[i + 1][1]] if i + 1 < len(paragraphs) else ""
        if not is_heading(text, p_start, p_end, next_line):
            spans.extend(sentence_spans(text, p_start, p_end))
    return spans


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int
    paragraph: int


def _split_long(
    text: str, start: int, end: int, budget: int, count: Callable[[str], int], max_chars: int
) -> list[tuple[int, int]]:
    """Cut an over-long sentence at word boundaries into pieces within the token and character budgets."""
    pieces = []
    # No piece longer than this many characters: a wordpiece token covers at most a few characters
    # of real text, so only runaway input (one 1 MB "word") is ever cut by this bound.
    window = min(max(64, budget * MAX_CHARS_PER_TOKEN), max_chars)
    last_cut = window
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[start:end])]
    piece_start = None
    piece_end = None
    for w_start, w_end in words:
        w_start, w_end = w_start + start, w_end + start
        if piece_start is None:
            piece_start, piece_end = w_start, w_end
        elif w_end - piece_start <= max_chars and count(text[piece_start:w_end]) <= budget:
            piece_end = w_end
        else:
            pieces.append((piece_start, piece_end))
            piece_start, piece_end = w_start, w_end
        while piece_end - piece_start > 1 and (
            piece_end - piece_start > window or count(text[piece_start:piece_end]) > budget
        ):
            # A single "word" over budget (a URL, 1 MB of one word): cut by characters. Only a
            # bounded window is ever tokenized, or a long word would cost quadratic time.
            # Try twice the last piece's length first (text of one kind cuts alike), then halve.
            cut = min(piece_end, piece_start + min(window, 2 * last_cut))
            while count(text[piece_start:cut]) > budget and cut - piece_start > 1:
                cut = piece_start + max(1, (cut - piece_start) // 2)
            pieces.append((piece_start, cut))
            last_cut = cut - piece_start
            piece_start = cut
    if piece_start is not None:
        pieces.append((piece_start, piece_end))
    return pieces


def _units(text: str, budget: int, count: Callable[[str], int], max_chars: int) -> list[_Unit]:
    units = []
    for p_index, (p_start, p_end) in enumerate(paragraph_spans(text)):
        for s_start, s_end in sentence_spans(text, p_start, p_end):
            tokens = count(text[s_start:s_end])
            if tokens <= budget and s_end - s_start <= max_chars:
                units.append(_Unit(s_start, s_end, tokens, p_index))
                continue
            for c_start, c_end in _split_long(text, s_start, s_end, budget, count, max_chars):
                units.append(_Unit(c_start, c_end, count(text[c_start:c_end]), p_index))
    return units


def chunk_text(
    text: str,
    *,
    max_chars: int = 1000,
    max_tokens: int = 10_000,
    count_tokens: Callable[[str], int] | None = None,
    min_chars: int = 200,
) -> list[Chunk]:
    """Pack sentences into chunks of at most ``max_chars`` and ``max_tokens``.

    A chunk closes at a paragraph end once it holds ``min_chars``; a paragraph that is too long
    for one chunk is split between sentences, and the next chunk repeats the last sentence so a
    statement split across the boundary is still retrievable in one piece.
    """
    count = count_tokens or _approx_tokens
    units = _units(text, max_tokens, count, max_chars)
    chunks: list[Chunk] = []
    current: list[_Unit] = []

    def fits(unit: _Unit) -> bool:
        if not current:
            return True
        chars = unit.end - current[0].start
        tokens = sum(u.tokens for u in current) + unit.tokens
        return chars <= max_chars and tokens <= max_tokens

    def emit() -> None:
        start, end = current[0].start, current[-1].end
        # Summed sentence counts can undercount the joined text by a token or two.
        if count(text[start:end]) > max_tokens and len(current) > 1:
            last = current.pop()
            emit()
            current[:] = [last]
        start, end = current[0].start, current[-1].end
        chunks.append(Chunk(len(chunks), start, end, text[start:end]))

    for unit in units:
        if current and current[-1].paragraph != unit.paragraph and current[-1].end - current[0].start >= min_chars:
            emit()
            current = []
        if not fits(unit):
            emit()
            overlap = current[-1]
            current = [overlap] if overlap.paragraph == unit.paragraph and len(current) > 1 else []
            if current and not fits(unit):
                current = []
        current.append(unit)
    if current and chunks and _mergeable(text, chunks[-1], current, min_chars, max_chars, max_tokens, count):
        # A short tail ("[OM/KN]", a byline) belongs to the chunk before it, not on its own.
        last = chunks.pop()
        end = current[-1].end
        chunks.append(Chunk(last.position, last.start, end, text[last.start : end]))
    elif current:
        emit()
    return chunks


def _mergeable(text, last: Chunk, tail: list[_Unit], min_chars, max_chars, max_tokens, count) -> bool:
    end = tail[-1].end
    if tail[-1].end - tail[0].start >= min_chars // 2 or end - last.start > max_chars:
        return False
    return count(text[last.start : end]) <= max_tokens


def _approx_tokens(text: str) -> int:
    """Rough token count for callers without a tokenizer: wordpiece averages ~4 chars/token."""
    return max(1, len(text) // 4)
