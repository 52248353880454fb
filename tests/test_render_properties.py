"""Property-based: whatever an article holds, an answer renders as Telegram HTML a strict parser accepts,
and nothing from the article becomes markup or a link.

The checker below is stricter than Telegram: only the tags of its HTML subset, each attribute only
where Telegram has it, every tag closed in order, ``&`` only in ``&lt; &gt; &amp; &quot;`` or a
numeric reference, and no raw ``<``, ``>`` or ``"`` outside markup.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.answer import Answer, Citation
from bot.conversation import Bold, Link, Paragraph, Quote, Reply, Text, answer_reply
from bot.render import MAX_MESSAGE, safe_url, tg_len, to_html

PLAIN_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "blockquote", "tg-spoiler"}
ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")
TAG = re.compile(r'<(/?)([a-z][a-z-]*)((?:\s+[a-z]+="[^"<>]*")*)\s*>')
ATTRIBUTE = re.compile(r'\s+([a-z]+)="([^"<>]*)"')


class NotTelegramHtml(AssertionError):
    pass


@dataclass
class Parsed:
    text: str = ""
    tags: list[str] = field(default_factory=list)  # opening tags, in order
    links: list[tuple[str, str]] = field(default_factory=list)  # (href, visible text)


def _text(raw: str) -> str:
    """Text between tags (or an attribute value): entities decoded, nothing else special allowed."""
    for bad in '<>"':
        if bad in raw:
            raise NotTelegramHtml(f"raw {bad!r} in {raw[:80]!r}")
    for match in re.finditer("&", raw):
        if not ENTITY.match(raw, match.start()):
            raise NotTelegramHtml(f"bare '&' in {raw[max(match.start() - 20, 0) : match.start() + 20]!r}")
    return html.unescape(raw)


def _check_attributes(name: str, attributes: dict[str, str]) -> None:
    if name == "a":
        if set(attributes) != {"href"}:
            raise NotTelegramHtml(f"<a> needs exactly an href, got {attributes}")
    elif name == "span":
        if attributes != {"class": "tg-spoiler"}:
            raise NotTelegramHtml(f'only <span class="tg-spoiler">, got {attributes}')
    elif name in PLAIN_TAGS:
        if attributes:
            raise NotTelegramHtml(f"<{name}> takes no attributes, got {attributes}")
    else:
        raise NotTelegramHtml(f"unsupported tag <{name}>")


def parse_strict(source: str) -> Parsed:
    """The visible text, tags and links of Telegram HTML, or NotTelegramHtml."""
    parsed, stack, link_start = Parsed(), [], 0
    pos = 0
    for match in re.finditer(r"<[^>]*>?", source):
        parsed.text += _text(source[pos : match.start()])
        pos = match.end()
        tag = TAG.fullmatch(match.group())
        if tag is None:
            raise NotTelegramHtml(f"malformed tag {match.group()[:80]!r}")
        closing, name, raw_attributes = tag.groups()
        if closing:
            if raw_attributes or not stack or stack[-1][0] != name:
                raise NotTelegramHtml(f"</{name}> does not close {stack[-1][0] if stack else 'anything'}")
            _, href = stack.pop()
            if name == "a":
                parsed.links.append((href, parsed.text[link_start:]))
            continue
        attributes = {key: _text(value) for key, value in ATTRIBUTE.findall(raw_attributes)}
        _check_attributes(name, attributes)
        if name == "a":
            if any(t == "a" for t, _ in stack):
                raise NotTelegramHtml("nested links")
            link_start = len(parsed.text)
        parsed.tags.append(name)
        stack.append((name, attributes.get("href", "")))
    parsed.text += _text(source[pos:])
    if stack:
        raise NotTelegramHtml(f"<{stack[-1][0]}> is never closed")
    return parsed


# --- the checker itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "good",
    [
        "plain",
        "<b>a</b> &amp; <i>b <u>c</u></i> &lt;&gt;&quot;&#39;&#x1F600;",
        '<a href="https://e.org/?a=1&amp;b=&quot;2&quot;">x</a>',
        '<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>',
        "<blockquote>q</blockquote><pre><code>c</code></pre><s>x</s><del>y</del><strike>z</strike><ins>w</ins>",
    ],
)
def test_the_checker_accepts_telegram_html(good):
    parse_strict(good)


@pytest.mark.parametrize(
    "bad",
    [
        "<b>a</i>",
        "<b>a",
        "a</b>",
        "<script>x</script>",
        "<p>x</p>",
        "a & b",
        "&nbsp;",
        "a < b",
        "a > b",
        'say "hi"',
        "<b class=x>a</b>",
        '<b title="x">a</b>',
        '<a href="x" onclick="y">a</a>',
        "<a>x</a>",
        '<span class="x">a</span>',
        '<a href="https://e.org/?a="b"">x</a>',
        '<a href="1"><a href="2">x</a></a>',
        "<b",
        "<!-- c -->",
    ],
)
def test_the_checker_refuses_everything_else(bad):
    with pytest.raises(NotTelegramHtml):
        parse_strict(bad)


# --- answers built from anything an article may hold ------------------------------------------

TRICKY = [
    "<b>", "</b>", "<i>x</i>", "<a href='https://evil.example'>", "</a>", "<script>alert(1)</script>", "<br/>",
    "&", "&amp;", "&lt;", "&nbsp;", "&#0;", "&#x110000;", '"', "'", "`", "\\", "\n", "\n\n", "  ", "\t",
    "😀", "👩‍👩‍👧", "🇩🇪", "\u200d", "\u200f", "\u202e", "\u2066", "שלום", "مرحبا", "中文", "e\u0301",
    "javascript:alert(1)", "[1]", "[2]", "**bold**", "<blockquote>", '" onclick="x',
]  # fmt: skip
safe_chars = st.characters(blacklist_categories=("Cs",))
text = st.lists(st.one_of(st.sampled_from(TRICKY), st.text(safe_chars, max_size=20)), max_size=40).map("".join)
long_text = st.one_of(text, text.map(lambda t: (t + " Wort ") * 200))
urls = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "https://example.org/a?b=1&c=2",
            'https://example.org/"><script>alert(1)</script>',
            "https://example.org/<b>x</b>",
            "http://example.org/#frag'quote",
            "HTTPS://EXAMPLE.ORG/UPPER",
            "javascript:alert(1)",
            "JavaScript://example.org/%0aalert(1)",
            " javascript:alert(1)",
            "data:text/html,<b>x</b>",
            "vbscript:msgbox(1)",
            "tg://resolve?domain=x",
            "mailto:a@b.org",
            "ftp://example.org/x",
            "//example.org/no-scheme",
            "example.org/no-scheme",
            "https://",
            "https://exa mple.org/",
            "https://example.org/\nnext",
            "",
        ]
    ),
    st.text(safe_chars, max_size=40).map(lambda t: "https://example.org/" + t),
    st.text(safe_chars, max_size=40),
)


@st.composite
def answers(draw) -> Answer:
    citations = [
        Citation(n, draw(st.integers(1, 10**6)), draw(text), draw(urls), draw(st.integers(1, 10**6)), draw(text))
        for n in range(1, draw(st.integers(0, 5)) + 1)
    ]
    return Answer(draw(text), draw(long_text), True, citations, draw(st.sampled_from(["de", "en"])))


def _words(value: str) -> str:
    return "".join(value.split())


@settings(max_examples=300, deadline=None)
@given(answers(), st.integers(1, 10**9))
def test_any_answer_renders_as_strict_telegram_html_with_nothing_injected(answer, answer_id):
    parts = to_html(answer_reply(answer, answer_id))
    parsed = [parse_strict(part) for part in parts]
    for part, result in zip(parts, parsed, strict=True):
        assert 0 < tg_len(part) <= MAX_MESSAGE
        assert result.text.strip(), "Telegram refuses empty messages"
        # The renderer's own markup only: the bold "Sources" label and links; nothing from the article.
        assert set(result.tags) <= {"b", "a"}
    allowed = {(safe_url(c.url), " ".join(c.title.split())) for c in answer.citations if safe_url(c.url)}
    links = [link for result in parsed for link in result.links]
    for href, visible in links:
        assert (href, visible) in allowed, "a link is a citation's own http(s) URL around its own title"
        assert href.lower().startswith(("http://", "https://"))
    # Citations of one article share one title in the sources block.
    shown = {(c.article_id, c.title, c.url) for c in answer.citations if safe_url(c.url) and c.title.split()}
    assert len(links) == len(shown), "every http(s) article cited with a title is a link, and nothing else is"
    bold = [b for result in parsed for b in result.tags if b == "b"]
    assert len(bold) == (1 if answer.citations else 0)
    # Everything the article said is shown, literally (the sources block adds its own words).
    visible = _words("".join(result.text for result in parsed))
    assert _words(answer.body) in visible
    for citation in answer.citations:
        assert _words(citation.title) in visible


blocks = st.one_of(
    st.lists(st.one_of(text.map(Text), text.map(Bold), st.builds(Link, text, urls)), max_size=12).map(
        lambda spans: Paragraph(tuple(spans))
    ),
    long_text.map(Quote),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(blocks, max_size=12), st.sampled_from([120, 1000, MAX_MESSAGE]))
def test_any_reply_renders_as_strict_telegram_html_within_the_limit(reply_blocks, limit):
    links = {safe_url(s.url) for b in reply_blocks if isinstance(b, Paragraph) for s in b.spans if isinstance(s, Link)}
    for part in to_html(Reply(reply_blocks), limit=limit):
        assert 0 < tg_len(part) <= limit
        parsed = parse_strict(part)
        assert set(parsed.tags) <= {"b", "a", "blockquote"}
        assert all(href in links for href, _ in parsed.links)
