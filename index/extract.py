"""Turn raw input (plain text, Markdown, HTML, PDF) into a clean Document: title, text, date.

The type is decided by content, not by the name a sender gave the file.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

MAX_TEXT_CHARS = 2_000_000
MAX_PDF_PAGES = 1000
MAX_TITLE_CHARS = 300
# A PDF of a few kilobytes can hold content streams that inflate to megabytes of drawing operators,
# and pypdf's text extraction slows down with the square of the operators in a text block (750,000
# of them took five minutes). Real article pages have a few thousand; these bounds stop the rest.
MAX_PDF_SECONDS = 20.0
MAX_PDF_PAGE_OPERATORS = 50_000
MAX_PDF_STREAM_BYTES = 20_000_000
MAX_PDF_STREAM_TOKENS = 500_000


class ExtractionError(Exception):
    """Input that cannot become an article; the message says why, for the person who sent it."""


@dataclass
class Document:
    title: str
    text: str
    url: str | None = None
    published: str | None = None
    source: str = "text"


def clean_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    # Control characters would survive into Telegram messages and FTS; tabs and newlines stay.
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")
    # Invisible hints inside a word (a soft hyphen, a word joiner) would split it for the keyword search.
    text = text.translate(_INVISIBLE_BREAKS)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    # Composed again at the end: a removed control character may have separated a letter from its accent.
    return unicodedata.normalize("NFC", _LEADING_SPACE.sub("", text).rstrip())


_INVISIBLE_BREAKS = dict.fromkeys(map(ord, "\u00ad\u2060"))
# A byte-order mark read as a character (pasted, or decoded without utf-8-sig) would stick to the title.
_LEADING_SPACE = re.compile("\\A[\\s\ufeff]+")


def _require_text(text: str, what: str) -> str:
    if not text.strip():
        raise ExtractionError(f"{what} contains no text")
    if len(text) > MAX_TEXT_CHARS:
        raise ExtractionError(f"{what} is too long ({len(text):,} characters; the limit is {MAX_TEXT_CHARS:,})")
    return text


def _title_and_body(text: str, title: str | None) -> tuple[str, str]:
    if title:
        return title.strip()[:MAX_TITLE_CHARS], text
    first, _, rest = text.partition("\n")
    first = first.strip().lstrip("#").strip()
    if rest.strip() and len(first) <= MAX_TITLE_CHARS:
        return first, rest.strip()
    # A single block with no separate title line: use its opening words.
    words = text.split()
    return " ".join(words[:10])[:MAX_TITLE_CHARS] + ("…" if len(words) > 10 else ""), text


def parse_date(value: str | None) -> str | None:
    """ISO date (YYYY-MM-DD) from common spellings; raises ExtractionError on nonsense."""
    if not value:
        return None
    value = value.strip()
    slashed = re.fullmatch(r"(\d{1,2})/(\d{1,2})/\d{4}", value)
    if slashed and slashed.group(1) != slashed.group(2) and all(1 <= int(n) <= 12 for n in slashed.groups()):
        # 03/04/2025 is 3 April in Europe and March 4 in the US: picking one would invent a date.
        raise ExtractionError(f"ambiguous date: {value!r} (day/month or month/day?); use YYYY-MM-DD")
    for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y"):
        try:
            return datetime.strptime(value, fmt).date().isoformat()
        except ValueError:
            continue
    try:
        # ISO timestamps ("2025-02-12T10:00:00+01:00") keep their date.
        return datetime.fromisoformat(value).date().isoformat()
    except ValueError:
        raise ExtractionError(f"not a date: {value!r} (use YYYY-MM-DD)") from None


def from_text(raw: str, title: str | None = None, source: str = "text") -> Document:
    if source != "pdf":  # a PDF font without a character map yields U+FFFD for a glyph; that is not damage
        refuse_replacement_characters(raw)
    text = _require_text(clean_text(raw), "the text")
    title, body = _title_and_body(text, title)
    return Document(title=title, text=_require_text(body, "the text"), source=source)


_MD_RULES = [
    (re.compile(r"^```.*$", re.M), ""),
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"^\s{0,3}#{1,6}\s*", re.M), ""),
    (re.compile(r"^\s{0,3}>\s?", re.M), ""),
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?!\w)"), r"\1"),
    (re.compile(r"`([^`]+)`"), r"\1"),
    (re.compile(r"^\s*([-*_])\s*(\1\s*){2,}$", re.M), ""),
]


_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    """``---``-fenced ``key: value`` lines at the top of a Markdown file (title, url, published)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    fields = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip().strip("\"'")
    return fields, text[match.end() :]


def from_markdown(raw: str, title: str | None = None) -> Document:
    refuse_replacement_characters(raw)
    meta, text = _front_matter(clean_text(raw))
    title = title or meta.get("title") or None
    doc = _markdown_body(text, title)
    doc.url = meta.get("url") or None
    doc.published = parse_date(meta.get("published") or meta.get("date"))
    return doc


def _markdown_body(text: str, title: str | None) -> Document:
    heading = re.search(r"^#\s+(.+)$", text, re.M)
    # A "# Fazit" after the story's first paragraph is a section, not the title: it stays in place.
    if heading and any(len(line.split()) >= PROSE_WORDS for line in text[: heading.start()].split("\n")):
        heading = None
    if title is None and heading:
        title = heading.group(1).strip()
        text = text[: heading.start()] + text[heading.end() :]
    for pattern, replacement in _MD_RULES:
        text = pattern.sub(replacement, text)
    return from_text(text, title=title, source="markdown")


def from_html(
    html: str | bytes, url: str | None = None, title: str | None = None, charset: str | None = None
) -> Document:
    """``charset``: what the server's Content-Type header declared, if anything."""
    import trafilatura

    if isinstance(html, bytes):
        # A stray byte in a script or a menu must not cost the article; one in the body refuses it below.
        html = html.decode(detect_encoding(html, [charset, meta_charset(html)]), errors="replace")
    # trafilatura asks htmldate for a date, which guesses from the text ("© 2025" in a footer becomes
    # 2025-01-01); the fast search keeps that cheap, and its answer is not used: page_date() reads metadata only.
    result = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        favor_precision=True,
        date_extraction_params={"extensive_search": False, "original_date": True},
    )
    if result is None:
        raise ExtractionError("no article text found on the page")
    data = result.as_dict() if hasattr(result, "as_dict") else dict(result)
    text = drop_cross_links(clean_text(data.get("text") or ""))
    _require_text(text, "the page")
    refuse_replacement_characters(text)
    refuse_junk(text)
    found_title = (data.get("title") or "").strip()
    doc_title = (title or found_title or _title_and_body(text, None)[0])[:MAX_TITLE_CHARS]
    return Document(title=doc_title, text=text, url=url, published=page_date(html), source="html")


# --- dates from a page's metadata, never from its text ---------------------------------------------

_DATE_META = (
    "article:published_time",
    "og:published_time",
    "og:article:published_time",
    "datepublished",
    "date",
    "dc.date",
    "dc.date.issued",
    "dcterms.created",
    "dcterms.issued",
    "pubdate",
    "publishdate",
    "publish-date",
    "publish_date",
    "parsely-pub-date",
    "sailthru.date",
    "article.published",
)


def page_date(html: str) -> str | None:
    """The publication date a page declares (meta tags, JSON-LD, ``<time datetime>``), or None."""
    import lxml.html
    from lxml.etree import ParserError

    try:
        # lxml refuses a str that still carries its XML declaration (XHTML pages): the date would be lost.
        tree = lxml.html.fromstring(_XML_DECLARATION.sub("", html, count=1))
    except (ParserError, ValueError):
        return None
    found = _meta_date(tree) or _json_ld_date(tree) or _time_element_date(tree)
    return _iso_date(found)


_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")


def _meta_date(tree) -> str | None:
    values: dict[str, str] = {}
    for meta in tree.iter("meta"):
        name = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").strip().lower()
        if name in _DATE_META and meta.get("content") and name not in values:
            values[name] = meta.get("content")
    return next((values[name] for name in _DATE_META if name in values), None)


# JSON-LD nodes that stand for the page's own story. An image's dateCreated, a book the publisher
# wrote or an article the story mentions (nested values) are not the page's publication date.
_ARTICLE_TYPE = re.compile(r"(Article|Posting|Report|WebPage|ItemPage|CreativeWork)$")


def _json_ld_date(tree) -> str | None:
    nodes: list[dict] = []
    for script in tree.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json" or not script.text:
            continue
        try:
            nodes.extend(_json_ld_nodes(json.loads(script.text)))
        except ValueError:
            continue
    for key in ("datePublished", "dateCreated"):
        found = next((node[key] for node in nodes if isinstance(node.get(key), str) and node[key].strip()), None)
        if found:
            return found
    return None


def _json_ld_nodes(data: object, depth: int = 0) -> list[dict]:
    """The page's top-level JSON-LD items (a list, an ``@graph``, a page's ``mainEntity``) of article types."""
    if depth > 4:
        return []
    if isinstance(data, list):
        return [node for item in data for node in _json_ld_nodes(item, depth + 1)]
    if not isinstance(data, dict):
        return []
    kind = data.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    own = [data] if kind is None or any(isinstance(k, str) and _ARTICLE_TYPE.search(k) for k in kinds) else []
    return own + _json_ld_nodes(data.get("@graph"), depth + 1) + _json_ld_nodes(data.get("mainEntity"), depth + 1)


# Elements that start a block of their own; everything else is inline (a link, a span, emphasis).
_BLOCK_TAGS = frozenset(
    "address article aside blockquote body dd div dl dt figcaption figure footer form h1 h2 h3 h4 h5 h6 header"
    " li main nav ol p pre section table tbody td th tr ul".split()
)


def _time_element_date(tree) -> str | None:
    times = [t for t in tree.iter("time") if t.get("datetime")]
    marked = [t for t in times if t.get("itemprop") == "datePublished" or t.get("pubdate") is not None]
    if marked:
        return marked[0].get("datetime")
    # A byline's <time>, not a date in a sentence of the story ("am <time>6. Mai</time> entscheidet der Rat"),
    # nor one in a teaser, a sidebar or a comment.
    times = [
        t for t in times if not _in_running_text(t) and not any(a.tag in ("aside", "nav") for a in t.iterancestors())
    ]
    articles = [a for a in tree.iter("article") if not any(b.tag == "article" for b in a.iterancestors())]
    if articles:
        story = max(articles, key=lambda a: len(a.text_content()))
        own = [t for t in times if next((a for a in t.iterancestors() if a.tag == "article"), None) is story]
        return own[0].get("datetime") if own else None
    # No <article> to tell the story from teasers: only a date all the page's <time>s agree on.
    dates = {_iso_date(t.get("datetime")) for t in times}
    return times[0].get("datetime") if len(dates) == 1 else None


def _in_running_text(time_element) -> bool:
    """Whether the <time> sits in a sentence: its block holds a prose line's worth of other words."""
    block = time_element.getparent()
    while block is not None and block.tag not in _BLOCK_TAGS:
        block = block.getparent()
    if block is None:
        return False
    parts = [block.text or ""]
    for child in block:
        if child.tag not in _BLOCK_TAGS:
            parts.append(child.text_content() if isinstance(child.tag, str) else "")
        parts.append(child.tail or "")
    words = len(" ".join(parts).split()) - len((time_element.text_content() or "").split())
    return words >= PROSE_WORDS


def _iso_date(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    match = re.match(r"(\d{4})-(\d{2})-(\d{2})", value)
    try:
        return parse_date(f"{match.group(1)}-{match.group(2)}-{match.group(3)}" if match else value)
    except ExtractionError:
        return None


# --- junk: what a page returns when it holds no article --------------------------------------------

# Sentences that offer a subscription at the end of a teaser (German and English news sites).
_PAYWALL = re.compile(
    r"jetzt\s+(abonnieren|abo\b|testen|weiterlesen|freischalten|registrieren)|weiterlesen\s+mit|mit\s+(einem\s+)?abo\b"
    r"|\babo\s+(abschlie|testen|sichern)|bereits\s+(ein\s+)?(abo|abonnent|digitalabo)|exklusiv\s+für\s+abonnent"
    r"|(plus|premium)-?(artikel|inhalt)|artikel\s+freischalten"
    r"|subscribe\s+(now|today|to\s+(continue|read|unlock))|(continue|keep)\s+reading\s+with|already\s+a\s+subscriber"
    r"|subscribers?\s+only|sign\s+in\s+to\s+(continue|read)|this\s+(article|content)\s+is\s+for\s+subscribers",
    re.I,
)
# A consent banner or a copyright line; only lines this short count, so an article about data
# protection or cookies is not mistaken for its own banner.
_BOILERPLATE = re.compile(
    r"\bcookies?\b.*\b(akzeptier|zustimm|einwillig|ablehn|einstellung|verwende|verarbeite|personalisier|accept|agree"
    r"|consent|reject|settings|we\s+use|personali[sz])|\b(wir\s+verwenden|we\s+use)\b.*\bcookies?\b"
    r"|©|\(c\)\s*\d{4}|alle\s+rechte\s+vorbehalten|all\s+rights\s+reserved",
    re.I,
)
# A line of a web page that points to another story or labels an ad ("Lesen Sie auch: …", "Mehr zum
# Thema", "Anzeige"): the extractor keeps it inside the body, and it is no sentence of this article. The
# opening words alone, or followed by a colon or an arrow: "Zum Thema Verkehr sagte …" is a sentence.
_CROSS_LINK = re.compile(
    r"^\W*(lesen sie (auch|mehr|hier|dazu)|mehr (zum thema|dazu|lesen)|zum thema|auch interessant|weiterlesen"
    r"|das könnte sie (auch )?interessieren|weitere (artikel|meldungen|nachrichten)|read (more|also|next)"
    r"|related( articles?| stories| coverage)?|see also|more on (this|the) (story|topic)|recommended)"
    r"\b\s*([:»›>|–-].*)?$"
    r"|^\W*(anzeige|werbung|advertisement|sponsored)\W*$",
    re.I,
)
CROSS_LINK_LINE_CHARS = 200
BOILERPLATE_LINE_CHARS = 300
TEASER_CHARS = 1500
PROSE_WORDS = 8


def drop_cross_links(text: str) -> str:
    """The page's text without its short "Lesen Sie auch: …" and "Anzeige" lines."""
    kept = [line for line in text.split("\n") if len(line) > CROSS_LINK_LINE_CHARS or not _CROSS_LINK.match(line)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def refuse_junk(text: str) -> None:
    """Refuse a page body that is a paywall teaser or only navigation, footer and banners."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(text) < TEASER_CHARS and any(_PAYWALL.search(line) for line in lines[-2:]):
        raise ExtractionError("the page shows only a teaser behind a paywall (it ends in a subscription offer)")
    prose = sum(len(line) for line in lines if _is_prose(line))
    if prose < 0.3 * sum(len(line) for line in lines):
        raise ExtractionError("the page holds no article text, only short lines (navigation, a footer or a banner)")


def _is_prose(line: str) -> bool:
    if len(line.split()) < PROSE_WORDS:
        return False
    return len(line) > BOILERPLATE_LINE_CHARS or not _BOILERPLATE.search(line)


def require_length(doc: Document, min_chars: int) -> Document:
    """Refuse a body shorter than ``[ingest] min_chars``: a fragment or an error page, not an article."""
    if len(doc.text) < min_chars:
        raise ExtractionError(
            f"the text is too short to be an article ({len(doc.text)} characters; "
            f"at least {min_chars} are needed, see [ingest] min_chars)"
        )
    return doc


def check_url(url: object) -> str | None:
    """An article's link, which must be http(s); None when there is none."""
    if url is None or url == "":
        return None
    if not isinstance(url, str) or not re.match(r"https?://[^\s/?#]+", url.strip(), re.I) or " " in url.strip():
        raise ExtractionError(f"the url must be an http(s) link, not {url!r}")
    return url.strip()


class _PdfBudget:
    """Called by pypdf before every content-stream operator: stops runaway pages and files."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_PDF_SECONDS
        self.operators = 0

    def new_page(self) -> None:
        self.operators = 0

    def __call__(self, operator, operands, cm, tm) -> None:
        self.operators += 1
        if self.operators > MAX_PDF_PAGE_OPERATORS:
            raise ExtractionError(
                f"the PDF is too complex to read (a page has more than {MAX_PDF_PAGE_OPERATORS:,} drawing operations)"
            )
        if self.operators % 256 == 0 and time.monotonic() > self.deadline:
            raise ExtractionError(f"reading the PDF took longer than {MAX_PDF_SECONDS:g} s; it is too complex")


def _pdf_limits():
    """Tighter decompression and parsing limits than pypdf's defaults (pyproject's floor has them all)."""
    from pypdf import apply_configuration

    return apply_configuration(
        zlib_maximum_output_length=MAX_PDF_STREAM_BYTES,
        stream_parsing_work_maximum_count=MAX_PDF_STREAM_TOKENS,
    )


def from_pdf(data: bytes, title: str | None = None) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PdfReadError

    try:
        with _pdf_limits():
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                raise ExtractionError("the PDF is encrypted; send an unprotected copy")
            if len(reader.pages) > MAX_PDF_PAGES:
                raise ExtractionError(f"the PDF has {len(reader.pages)} pages; the limit is {MAX_PDF_PAGES}")
            parts, size = [], 0
            budget = _PdfBudget()
            for page in reader.pages:
                budget.new_page()
                part = page.extract_text(visitor_operand_before=budget) or ""
                size += len(part)
                if size > MAX_TEXT_CHARS:
                    raise ExtractionError(f"the PDF holds more than {MAX_TEXT_CHARS:,} characters of text")
                parts.append(part)
            meta_title = (reader.metadata.title if reader.metadata else None) or None
    except ExtractionError:
        raise
    except LimitReachedError:
        raise ExtractionError("the PDF is too large or too complex to read (it unpacks beyond our limits)") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, RecursionError, OSError) as exc:
        raise ExtractionError(f"the PDF cannot be read ({type(exc).__name__})") from None
    except Exception as exc:  # pypdf raises many kinds on hostile files; none may escape as a crash
        raise ExtractionError(f"the PDF cannot be read ({type(exc).__name__})") from None
    text = "\n\n".join(p.strip() for p in parts if p.strip())
    if not text.strip():
        raise ExtractionError("the PDF contains no extractable text (is it a scan?)")
    doc = from_text(text, title=title or meta_title, source="pdf")
    return doc


def detect_encoding(sample: bytes, declared: list[str | None] | None = None) -> str:
    """Codec for a file judged by its first bytes: 'utf-8-sig', 'utf-16', 'utf-8' or 'cp1252'.

    A file with any valid multi-byte UTF-8 sequence stays UTF-8 even if other bytes are invalid:
    those lines are refused by number rather than the whole file turned into mojibake. Text that is
    not UTF-8 is read in the first ``declared`` charset (an HTTP header's, a page's <meta>) that fits
    it, e.g. ISO-8859-15, whose 0xA4 is "€" where Windows-1252 has "¤"; Windows-1252 otherwise.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(sample) - 3:
            return "utf-8"  # a character cut by the sample's end
        text = sample.decode("utf-8", errors="surrogateescape")
        if re.search("[\x80-\ud7ff\ue000-\U0010ffff]", text):
            return "utf-8"
        return next((c for c in map(_legacy_codec, declared or []) if c and _fits(sample, c)), "cp1252")
    return "utf-8"


def _legacy_codec(name: str | None) -> str | None:
    """Python's codec for a declared charset other than UTF-8 and the Latin-1 family, or None."""
    try:
        info = codecs.lookup((name or "").strip().strip("\"'"))
    except LookupError:
        return None
    # Latin-1 and ASCII pages are read as Windows-1252, as browsers do; UTF-7 is no page's real charset,
    # and Python's own codecs (escapes, punycode, base64) are not charsets a page can name.
    if info.name in _NOT_DECLARABLE or info.name.startswith(("utf-", "utf_")) or not info._is_text_encoding:
        return None
    return info.name


_NOT_DECLARABLE = frozenset(
    "cp1252 latin-1 iso8859-1 ascii utf-7 punycode idna unicode-escape raw-unicode-escape charmap undefined".split()
)


def _fits(data: bytes, codec: str) -> bool:
    """Whether the bytes are text in ``codec``: every byte defined, and no C1 control characters (a
    Windows-1252 page labelled ISO-8859-15 would lose its „quotes“ and dashes to them)."""
    try:
        text = data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return False
    return not re.search("[\x80-\x9f]", text)


_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)|<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I
)


def meta_charset(html: bytes) -> str | None:
    """The charset a page names in its head (``<meta charset>``, http-equiv, an XML declaration)."""
    match = _META_CHARSET.search(html[:4096])
    return (match.group(1) or match.group(2)).decode("ascii") if match else None


def header_charset(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header."""
    match = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", content_type or "", re.I)
    return match.group(1) if match else None


def encoding_name(codec: str, sample: bytes = b"") -> str:
    """How to name a codec to a person: Windows-1252 differs from Latin-1 only in bytes 0x80-0x9F."""
    if codec == "cp1252":
        return "Windows-1252" if re.search(rb"[\x80-\x9f]", sample) else "Latin-1 (ISO-8859-1)"
    return {"utf-8-sig": "UTF-8", "utf-16": "UTF-16", "utf-8": "UTF-8"}.get(codec, codec)


def undecodable(text: str) -> tuple[int, int] | None:
    """(offset, byte) of the first byte a surrogateescape decoding could not read, or None."""
    match = _ESCAPED.search(text)
    return (match.start(), ord(match.group()) - 0xDC00) if match else None


_ESCAPED = re.compile("[\udc80-\udcff]")


def refuse_replacement_characters(text: str) -> None:
    """U+FFFD means the text was damaged by a wrong decoding before it reached us: refuse, by line."""
    at = text.find("\ufffd")
    if at >= 0:
        raise ExtractionError(f"line {text.count(chr(10), 0, at) + 1} {DAMAGED}")


DAMAGED = "holds U+FFFD replacement characters (\ufffd): the text was damaged by a wrong decoding; send the original"


def decode_bytes(data: bytes, charset: str | None = None) -> tuple[str, str]:
    """Text and codec of a file's bytes (``charset``: one a server declared); an undecodable byte is
    refused with its line number."""
    codec = detect_encoding(data, [charset])
    text = data.decode(codec, errors="surrogateescape")
    bad = undecodable(text)
    if bad:
        offset, byte = bad
        line = text.count("\n", 0, offset) + 1
        raise ExtractionError(
            f"line {line} is not valid {encoding_name(codec, data)} text (byte 0x{byte:02X}); save the file as UTF-8"
        )
    return text, codec


def decode(data: bytes, charset: str | None = None) -> str:
    """Bytes of unknown encoding as text (``decode_bytes`` without the codec)."""
    return decode_bytes(data, charset)[0]


def sniff(data: bytes) -> str:
    """'pdf', 'html', 'text' or 'binary', judged by content."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _sniff_utf16(data)
    head = data[:2048].removeprefix(codecs.BOM_UTF8).lstrip()
    if head.startswith(b"%PDF-"):
        return "pdf"
    if b"\x00" in data[:8192]:
        return "binary"
    lowered = head.lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<body" in lowered or b"<article" in lowered:
        return "html"
    try:
        data[:65536].decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multibyte character cut by the 64 KiB window is fine; otherwise it may still be text in
        # a legacy encoding (Windows-1252, Latin-1), which decode() reads.
        if exc.start < 65530 and not _legacy_text(data[:65536]):
            return "binary"
    return "text"


def _sniff_utf16(data: bytes) -> str:
    """UTF-16 text (Windows' "Unicode" files) is half zero bytes, so judge it after decoding."""
    text = data[:65536].decode("utf-16", errors="replace")
    if _odd_characters(text) > len(text) // 200:
        return "binary"
    head = text[:2048].lstrip("\ufeff").lstrip().lower()
    if head.startswith(("<!doctype html", "<html")) or "<body" in head or "<article" in head:
        return "html"
    return "text"


def _odd_characters(text: str) -> int:
    return sum(1 for c in text if c == "\ufffd" or (c not in "\t\n\r\f" and unicodedata.category(c) == "Cc"))


def _legacy_text(data: bytes) -> bool:
    """Single-byte text has (almost) no control characters; binary data has about one byte in ten."""
    text = data.decode("cp1252", errors="replace")
    return _odd_characters(text) <= len(text) // 200


SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")


def from_bytes(data: bytes, filename: str = "", title: str | None = None) -> Document:
    """Extract a file's content by its sniffed type; the name only tells Markdown from plain text."""
    if not data.strip():
        raise ExtractionError(f"{filename or 'the file'} is empty")
    kind = sniff(data)
    suffix = Path(filename).suffix.lower()
    if kind == "binary":
        raise ExtractionError(f"{filename or 'the file'} is not a supported type (send .txt, .md, .html or .pdf)")
    if kind == "pdf":
        return from_pdf(data, title)
    if kind == "html":
        return from_html(data, title=title)
    text = decode(data)
    if suffix in (".md", ".markdown"):
        return from_markdown(text, title)
    return from_text(text, title)


def from_file(path: str | Path, title: str | None = None, max_bytes: int = 50_000_000) -> Document:
    path = Path(path)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ExtractionError(f"unsupported file type '{path.suffix or path.name}' (use .txt, .md, .html or .pdf)")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ExtractionError(f"{path.name} is too large ({size:,} bytes; the limit is {max_bytes:,})")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ExtractionError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise ExtractionError(f"{path} is a directory, not a file") from None
    except PermissionError:
        raise ExtractionError(f"cannot read {path}: permission denied") from None
    return from_bytes(data, path.name, title)
