"""Replies as Telegram HTML, split into messages of at most 4,096 characters; and as plain text.

Every piece of text is escaped with ``html.escape``: titles, quotes and answers come from articles
that anyone could have written. Links are made only from http(s) URLs, attribute-escaped.

Splitting prefers paragraph boundaries, then line breaks, then spaces; a cut never falls inside a
tag or an entity because lines are rendered whole and only markup-free text is ever cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape
from urllib.parse import urlsplit

from .conversation import Bold, Link, Paragraph, Quote, Reply, Span, Text
from .protocol import tg_len

MAX_MESSAGE = 4096

# A line of a paragraph (spans) or a whole quote: the unit that is never cut while rendered.
Line = tuple[Span, ...] | Quote


def safe_url(url: str | None) -> str | None:
    if not url:
        return None
    url = url.strip()
    if any(c.isspace() or ord(c) < 32 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def _flat(text: str) -> str:
    # Bold text and link titles stay on one line, so a line break only ever comes from Text spans.
    return " ".join(text.split())


class HtmlFormat:
    @staticmethod
    def span(span: Span) -> str:
        if not isinstance(span, Text) and not _flat(span.text):
            return ""  # an empty tag would make an empty message of an otherwise blank part
        if isinstance(span, Bold):
            return f"<b>{escape(_flat(span.text))}</b>"
        if isinstance(span, Link):
            url = safe_url(span.url)
            if url:
                return f'<a href="{escape(url, quote=True)}">{escape(_flat(span.text))}</a>'
            return escape(_flat(span.text))
        return escape(span.text)

    @staticmethod
    def quote(text: str) -> str:
        return f"<blockquote>{escape(text)}</blockquote>"


class PlainFormat:
    @staticmethod
    def span(span: Span) -> str:
        if isinstance(span, Link):
            url = safe_url(span.url)
            return f"{_flat(span.text)} <{url}>" if url else _flat(span.text)
        if isinstance(span, Bold):
            return _flat(span.text)
        return span.text

    @staticmethod
    def quote(text: str) -> str:
        return f"> {text}"


class TerminalFormat(PlainFormat):
    """Plain text for the terminal chat, where "> " is the input prompt: quotes get a bar instead."""

    @staticmethod
    def quote(text: str) -> str:
        return "\n".join(f"│ {line}" for line in text.split("\n"))


Format = type[HtmlFormat] | type[PlainFormat]


def _lines(block: Paragraph | Quote) -> list[Line]:
    if isinstance(block, Quote):
        return [block]
    lines: list[list[Span]] = [[]]
    for span in block.spans:
        if not isinstance(span, Text):
            lines[-1].append(span)
            continue
        for i, piece in enumerate(span.text.split("\n")):
            if i:
                lines.append([])
            if piece:
                lines[-1].append(Text(piece))
    return [tuple(line) for line in lines]


def _render_line(line: Line, fmt: Format) -> str:
    if isinstance(line, Quote):
        return fmt.quote(line.text)
    return "".join(fmt.span(s) for s in line)


def _line_text(line: Line) -> str:
    if isinstance(line, Quote):
        return line.text
    return "".join(_flat(s.text) if not isinstance(s, Text) else s.text for s in line)


def _longest_prefix(text: str, wrap: Callable[[str], str], limit: int) -> int:
    low, high = 1, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if tg_len(wrap(text[:mid])) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def _split_line(line: Line, fmt: Format, limit: int) -> list[str]:
    """A line too long for one message: its text without markup, cut at spaces (or anywhere, if it must)."""
    if isinstance(line, Quote):
        wrap: Callable[[str], str] = fmt.quote
    else:
        wrap = lambda t: fmt.span(Text(t))  # noqa: E731
    pieces: list[str] = []
    current = ""
    for token in re.split(r"(\s+)", _line_text(line)):
        if tg_len(wrap(current + token)) <= limit:
            current += token
            continue
        if current.strip():
            pieces.append(wrap(current.strip()))
        current = token.lstrip()
        while current and tg_len(wrap(current)) > limit:
            cut = _longest_prefix(current, wrap, limit)
            pieces.append(wrap(current[:cut]))
            current = current[cut:]
    if current.strip():
        pieces.append(wrap(current.strip()))
    return pieces


class _Packer:
    """Fills messages up to the limit, piece by piece, each piece with its separator."""

    def __init__(self, limit: int):
        self.limit = limit
        self.parts: list[str] = []
        self.current = ""

    def add(self, piece: str, separator: str) -> None:
        if self.current and tg_len(self.current + separator + piece) <= self.limit:
            self.current += separator + piece
            return
        self.flush()
        self.current = piece

    def flush(self) -> None:
        if self.current.strip():
            self.parts.append(self.current)
        self.current = ""


def render(reply: Reply, fmt: Format = HtmlFormat, limit: int = MAX_MESSAGE) -> list[str]:
    """The reply as messages of at most ``limit`` characters, split at paragraph boundaries first."""
    packer = _Packer(limit)
    for block in reply.blocks:
        lines = _lines(block)
        if not "".join(_line_text(line) for line in lines).strip():
            continue  # nothing visible: Telegram refuses empty messages
        whole = "\n".join(_render_line(line, fmt) for line in lines)
        if tg_len(whole) <= limit:
            packer.add(whole, "\n\n")
            continue
        separator = "\n\n"
        for line in lines:
            rendered = _render_line(line, fmt)
            for piece in [rendered] if tg_len(rendered) <= limit else _split_line(line, fmt, limit):
                packer.add(piece, separator)
                separator = "\n"
    packer.flush()
    return packer.parts


def to_html(reply: Reply, limit: int = MAX_MESSAGE) -> list[str]:
    return render(reply, HtmlFormat, limit)


def to_plain(reply: Reply, limit: int = MAX_MESSAGE) -> list[str]:
    return render(reply, PlainFormat, limit)


def plain_text(reply: Reply) -> str:
    """The whole reply as one plain text (the terminal has no length limit)."""
    return "\n\n".join(to_plain(reply, limit=10**9))


def terminal_text(reply: Reply) -> str:
    """The whole reply as the terminal chat shows it."""
    return "\n\n".join(render(reply, TerminalFormat, limit=10**9))
