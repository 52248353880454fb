"""Telegram HTML rendering: everything escaped, safe links only, messages split within 4,096 characters."""

from __future__ import annotations

from botapi_server import parse_html, utf16_len
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.answer import Answer, Citation
from bot.conversation import Bold, Link, Paragraph, Quote, Reply, Text, answer_reply, para
from bot.render import MAX_MESSAGE, plain_text, safe_url, to_html, to_plain


def _answer(body: str, citations: list[Citation], language: str = "de") -> Answer:
    return Answer(question="Frage?", body=body, found=True, citations=citations, language=language)


def test_article_text_is_escaped_and_links_are_attribute_escaped():
    citation = Citation(1, 7, 'Miete & Markt: <script>alert("x")</script>', 'https://example.org/a?b=1&c="2"', 3, "q")
    (html,) = to_html(answer_reply(_answer("Die Miete steigt <b>stark</b> & schnell. [1]", [citation]), 41))
    assert "<b>stark</b>" not in html and "&lt;b&gt;stark&lt;/b&gt;" in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert '<a href="https://example.org/a?b=1&amp;c=&quot;2&quot;">' in html
    assert "<b>Quellen:</b>" in html
    visible = parse_html(html)
    assert 'Miete & Markt: <script>alert("x")</script>' in visible
    assert "Die Miete steigt <b>stark</b> & schnell. [1]" in visible


def test_only_http_links_become_links():
    for url in ["javascript:alert(1)", "data:text/html,x", "ftp://example.org/x", "http://", "https://a b.org", None]:
        (html,) = to_html(Reply([para(Link("Titel", url))]))
        assert html == "Titel", url
    assert safe_url(" https://example.org/x ") == "https://example.org/x"
    assert safe_url("HTTP://Example.org") == "HTTP://Example.org"


def test_answer_reply_has_markers_sources_and_buttons():
    citations = [
        Citation(1, 1, "Straßenbahn", "https://example.org/tram", 10, "Die Strecke ist 6,4 km lang."),
        Citation(2, 2, "Ohne Link", None, 11, "Zweites Zitat."),
    ]
    reply = answer_reply(_answer("Sie ist 6,4 km lang. [1] Mehr [2]", citations, "en"), 9)
    (html,) = to_html(reply)
    assert html.endswith('<b>Sources:</b>\n[1] <a href="https://example.org/tram">Straßenbahn</a>\n[2] Ohne Link')
    labels = [[b.label for b in row] for row in reply.buttons]
    assert labels == [["Quote [1]", "Quote [2]"], ["👍", "👎"]]
    assert [b.data for row in reply.buttons for b in row] == ["q:9:1", "q:9:2", "fb:9:+", "fb:9:-"]
    assert "Straßenbahn <https://example.org/tram>" in plain_text(reply)


def test_long_answer_splits_at_paragraph_boundaries():
    paragraphs = [f"Absatz {i}: " + "Die Stadt baut eine neue Brücke über den Fluss. " * 12 for i in range(20)]
    citations = [Citation(1, 1, "Brücke", "https://example.org/b", 1, "q")]
    reply = answer_reply(_answer("\n\n".join(paragraphs), citations), 1)
    parts = to_html(reply)
    assert len(parts) >= 3
    for part in parts:
        assert utf16_len(part) <= MAX_MESSAGE
        parse_html(part)
        # Every part holds whole paragraphs: each starts a paragraph and ends one.
        assert part.startswith(("Absatz", "<b>Quellen"))
    joined = "\n\n".join(parts)
    assert joined.count("Absatz") == 20
    assert joined.endswith('<a href="https://example.org/b">Brücke</a>')


def test_one_huge_paragraph_is_cut_at_spaces():
    words = [f"Wort{i}&" for i in range(3000)]
    parts = to_html(Reply([para(" ".join(words))]))
    assert len(parts) > 1
    seen = []
    for part in parts:
        assert utf16_len(part) <= MAX_MESSAGE
        seen += parse_html(part).split()
    assert seen == words


def test_text_without_spaces_and_wide_characters_still_fit():
    reply = Reply([para("😀" * 5000), Quote("ä" * 5000), para(Bold("kurz"))])
    parts = to_html(reply)
    for part in parts:
        assert utf16_len(part) <= MAX_MESSAGE
        parse_html(part)
    visible = "".join(parse_html(p) for p in parts)
    assert visible.count("😀") == 5000 and visible.count("ä") == 5000
    assert parts[-1].endswith("<b>kurz</b>")


def test_quote_renders_as_blockquote():
    (html,) = to_html(Reply([para(Bold("[1]"), " ", Link("T", "https://e.org")), Quote("a < b")]))
    assert html == '<b>[1]</b> <a href="https://e.org">T</a>\n\n<blockquote>a &lt; b</blockquote>'
    assert plain_text(Reply([Quote("a < b")])) == "> a < b"


def test_plain_parts_also_fit():
    reply = Reply([para("x " * 5000)])
    assert all(utf16_len(p) <= MAX_MESSAGE for p in to_plain(reply))


span_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=300)
spans = st.one_of(
    span_text.map(Text),
    span_text.map(Bold),
    st.builds(Link, span_text, st.sampled_from(["https://example.org/x?a=1&b=<2>", None, "javascript:x"])),
)
blocks = st.one_of(st.lists(spans, max_size=30).map(lambda s: Paragraph(tuple(s))), span_text.map(Quote))


@settings(max_examples=60, deadline=None)
@given(st.lists(blocks, max_size=40), st.sampled_from([200, 1000, MAX_MESSAGE]))
def test_any_reply_renders_to_valid_parts_within_the_limit(reply_blocks, limit):
    parts = to_html(Reply(reply_blocks), limit=limit)
    for part in parts:
        assert 0 < utf16_len(part) <= limit
        assert parse_html(part).strip()
    expected = "".join(
        "".join(s.text for s in b.spans) if isinstance(b, Paragraph) else b.text for b in reply_blocks
    ).split()
    assert "".join(parse_html(p) for p in parts).split() == expected or _same_words(parts, expected)


def _same_words(parts: list[str], expected: list[str]) -> bool:
    # Parts are separate messages: a word may end one part and the next starts fresh.
    return "".join("".join(parse_html(p).split()) for p in parts) == "".join(expected)
