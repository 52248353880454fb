"""Property-based: sentence spans are exact and never cut a quotation, whatever the quotes, headings and
abbreviations of a text; stray marks (apostrophes, inches, an opening never closed) swallow nothing.

The texts are built from pieces whose offsets are known, so the quotations and headings the checks use
come from the construction, not from the code under test.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.chunking import answer_spans, chunk_text, paragraph_spans, sentence_spans
from index.sentences import MAX_QUOTE_CHARS, is_heading, quotation_spans, quoted

WORDS = ["die", "Stadt", "baut", "eine", "neue", "Brücke", "über", "den", "Fluss", "Rat", "the", "council", "bridge"]
# Pieces inside a sentence that carry a period but end nothing.
INNER = ["z. B.", "Dr. Weber", "u. a.", "am 12. Februar", "im 19. Jahrhundert", "Mr. Smith", "e.g.", "ca. 5 Euro"]
# Quotation marks by kind: (opening, closing, inner opening, inner closing) for nesting.
MARKS = [("„", "“", "‚", "‘"), ("“", "”", "‘", "’"), ("»", "«", "›", "‹"), ("«", "»", "‹", "›"), ('"', '"', "'", "'")]
ENDS = [".", "!", "?"]
ATTRIBUTIONS = [", sagte die Bürgermeisterin.", ", schrieb Selenskyj am Abend.", ", he said.", " sagte er."]
INTROS = ["Er sagte: ", "Die Ministerin schrieb: ", "She said ", ""]
HEADINGS = [
    'Rutte: NATO und Trump "zunehmend" auf derselben Seite',
    "Selenskyj: „Wir haben verloren“",
    "Neue Brücke für Talheim",
    "Von Anna Weber",
    "Was bedeutet das für Pendler?",
]


@dataclass
class Built:
    """A text under construction, with the offsets of what went into it."""

    text: str = ""
    quotations: list[tuple[int, int]] = field(default_factory=list)  # (open, close_end), balanced ones
    headings: list[tuple[int, int]] = field(default_factory=list)
    sentences: list[tuple[int, int]] = field(default_factory=list)  # only where a test knows them exactly

    def add(self, piece: str) -> tuple[int, int]:
        start = len(self.text)
        self.text += piece
        return start, len(self.text)


@st.composite
def plain_sentence(draw, end: bool = True, ends: list[str] = ENDS) -> str:
    words = draw(st.lists(st.sampled_from(WORDS + INNER), min_size=1, max_size=6))
    body = " ".join(words)
    body = body[0].upper() + body[1:]
    return body + (draw(st.sampled_from(ends)) if end else "")


@st.composite
def quotation(draw, built: Built, depth: int = 0) -> None:
    """Adds an opening mark, one to three sentences (maybe with a nested quotation), the closing mark."""
    opening, closing, inner_opening, inner_closing = draw(st.sampled_from(MARKS))
    open_at, _ = built.add(opening)
    count = draw(st.integers(1, 3))
    for i in range(count):
        if i:
            built.add(" ")
        last = i == count - 1
        built.add(draw(plain_sentence(end=not last or draw(st.booleans()))))
        if depth == 0 and draw(st.booleans()):
            inner_at, _ = built.add(f" {inner_opening}")
            built.add(draw(plain_sentence(end=draw(st.booleans()))))
            _, inner_end = built.add(inner_closing)
            built.quotations.append((inner_at + 1, inner_end))
            built.add(" weiter" + ("." if not last else ""))
    _, close_end = built.add(closing)
    built.quotations.append((open_at, close_end))


@st.composite
def paragraph(draw, built: Built) -> None:
    if draw(st.integers(0, 4)) == 0:
        built.headings.append(built.add(draw(st.sampled_from(HEADINGS))))
        return
    count = draw(st.integers(1, 4))
    for i in range(count):
        if i:
            built.add(" ")
        if draw(st.booleans()):
            built.add(draw(st.sampled_from(INTROS)))
            draw(quotation(built))
            built.add(draw(st.sampled_from(ATTRIBUTIONS + ["."])))
        else:
            # A short question alone on its line heads what follows (HEADINGS has those).
            built.add(draw(plain_sentence(ends=ENDS if count > 1 else [".", "!"])))


@st.composite
def article(draw) -> Built:
    built = Built()
    for i in range(draw(st.integers(1, 5))):
        if i:
            built.add(draw(st.sampled_from(["\n", "\n\n", "\n \n"])))
        draw(paragraph(built))
    return built


def _spans(text: str) -> list[tuple[int, int]]:
    return [span for p in paragraph_spans(text) for span in sentence_spans(text, *p)]


def _check_exact(text: str, spans: list[tuple[int, int]]) -> None:
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text), (spans, text)
        assert text[start:end] == text[start:end].strip()
        previous_end = end


@settings(max_examples=300, deadline=None)
@given(built=article())
def test_spans_are_exact_ordered_and_cover_every_character(built):
    text = built.text
    spans = _spans(text)
    _check_exact(text, spans)
    covered = bytearray(len(text))
    for start, end in spans:
        covered[start:end] = b"\x01" * (end - start)
    assert [i for i, c in enumerate(text) if not c.isspace() and not covered[i]] == []


@settings(max_examples=300, deadline=None)
@given(built=article())
def test_no_span_cuts_inside_a_balanced_quotation(built):
    text = built.text
    assert all(close - open_at <= MAX_QUOTE_CHARS for open_at, close in built.quotations)
    for start, end in _spans(text):
        for open_at, close_end in built.quotations:
            assert not open_at < start < close_end, f"a sentence starts inside {text[open_at:close_end]!r}"
            assert not open_at < end < close_end, f"a sentence ends inside {text[open_at:close_end]!r}"
    assert set(built.quotations) <= set(quotation_spans(text))


@settings(max_examples=300, deadline=None)
@given(built=article())
def test_answer_spans_leave_out_headings_and_nothing_else(built):
    text = built.text
    spans = answer_spans(text)
    _check_exact(text, spans)
    for start, end in spans:
        for h_start, h_end in built.headings:
            assert end <= h_start or start >= h_end, f"heading {text[h_start:h_end]!r} quoted"
    heading_chars = {i for h_start, h_end in built.headings for i in range(h_start, h_end)}
    covered = {i for start, end in spans for i in range(start, end)}
    missing = [i for i, c in enumerate(text) if not c.isspace() and i not in covered and i not in heading_chars]
    assert missing == [], text


@settings(max_examples=200, deadline=None)
@given(
    budget=st.sampled_from([80, 200, 1000]),
    built=article(),
)
def test_chunks_never_cut_a_quotation(built, budget):
    text = built.text
    chunks = chunk_text(text, max_chars=budget, min_chars=0)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    if any(end - start > budget for start, end in _spans(text)):
        return  # a sentence longer than a chunk has to be cut somewhere, quotation or not
    for chunk in chunks:
        for open_at, close_end in built.quotations:
            assert not open_at < chunk.start < close_end, f"chunk starts inside {text[open_at:close_end]!r}"
            assert not open_at < chunk.end < close_end, f"chunk ends inside {text[open_at:close_end]!r}"


# --- stray marks: an apostrophe, inches, an opening mark nobody closes ----------------------------------

STRAY_WORDS = ["geht's", "Peter's", "geht’s", '5" breit', "7' lang", "Eltern'", "„offen", "»offen", "‚halb", "'90er"]


@st.composite
def strays(draw) -> Built:
    """Sentences of words with stray marks in them; none quotes anything, so each sentence stays one."""
    built = Built()
    # An unclosed opening mark and a mark that could close it (inches) are a real quotation („5" …):
    # one kind of stray per paragraph.
    pool = draw(st.sampled_from([STRAY_WORDS[:6], STRAY_WORDS[6:]]))
    for i in range(draw(st.integers(1, 6))):
        if i:
            built.add(" ")
        words = draw(st.lists(st.sampled_from(WORDS + pool), min_size=1, max_size=8))
        sentence = " ".join(["Heute"] + words) + draw(st.sampled_from(ENDS))
        built.sentences.append(built.add(sentence))
    return built


@settings(max_examples=300, deadline=None)
@given(built=strays())
def test_stray_marks_swallow_no_sentence(built):
    assert _spans(built.text) == built.sentences


# --- showing a quote ------------------------------------------------------------------------------------


@given(
    text=st.text(alphabet=st.sampled_from(list("abc .,„“”\"»«‚‘’'")), min_size=1, max_size=30),
    language=st.sampled_from(["de", "en"]),
)
def test_quoted_never_doubles_a_mark(text, language):
    shown = quoted(text, language)
    assert text in shown
    added = shown.replace(text, "", 1)
    assert len(added) in (0, 2)
    if added:
        assert added[0] not in text and added[1] not in text


def test_a_line_of_quotation_marks_is_split_in_linear_time():
    """Every „ opens a quotation nobody closes: 20,000 of them took 19 s before nesting was bounded."""
    for text in ("„" * 200_000, "„«" * 100_000, "„Ja. “" * 50_000, "‚" * 100_000 + "‘" * 100_000):
        started = time.monotonic()
        chunks = chunk_text(text, max_chars=1000, min_chars=200)
        elapsed = time.monotonic() - started
        assert elapsed < 15, f"{len(text):,} characters of quotation marks took {elapsed:.1f} s"
        assert all(text[c.start : c.end] == c.text for c in chunks)


@pytest.mark.parametrize(
    ("line", "next_line", "heading"),
    [
        ('Rutte: NATO und Trump "zunehmend" auf derselben Seite', "Generalsekretär Rutte sagte …", True),
        ("Selenskyj: „Wir haben verloren“", "", True),
        ("Von Anna Weber", "", True),
        ("[OM/KN]", "", True),
        ("Was bedeutet das für Pendler?", "Zunächst wenig.", True),
        ("Er sagte: „Wir haben verloren.“", "", False),
        ("Die Brücke ist fertig.", "", False),
        ("Endlich ist die Brücke fertig!", "", False),
        ("Wer zahlt? Die Stadt?", "", False),  # two sentences: a short exchange, not a heading
        ("Die Stadt hat am Montag beschlossen,", "Die Kosten …", False),
        ("Die Stadt hat am Montag beschlossen", "dass die Brücke …", False),  # a wrapped line
        ("- 120 Fahrgäste und 40 Fahrräder", "", False),
        ("Kosten | 4,2 Millionen Euro", "", False),
        ("Ein langer Satz ohne Punkt am Ende " * 4, "", False),
    ],
)
def test_heading_lines(line, next_line, heading):
    assert is_heading(line, 0, len(line), next_line) is heading
