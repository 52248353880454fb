"""Turn raw input (plain text, Markdown, HTML, PDF) into a clean Document: title, text, date.

The type is decided by content, not by the name a sender gave the file.
"""

from __future__ import annotations

import io
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
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


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
    for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%Y/%m/%d", "%d/%m/%Y"):
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
    meta, text = _front_matter(clean_text(raw))
    title = title or meta.get("title") or None
    doc = _markdown_body(text, title)
    doc.url = meta.get("url") or None
    doc.published = parse_date(meta.get("published") or meta.get("date"))
    return doc


def _markdown_body(text: str, title: str | None) -> Document:
    heading = re.search(r"^#\s+(.+)$", text, re.M)
    if title is None and heading:
        title = heading.group(1).strip()
        text = text[: heading.start()] + text[heading.end() :]
    for pattern, replacement in _MD_RULES:
        text = pattern.sub(replacement, text)
    return from_text(text, title=title, source="markdown")


def from_html(html: str | bytes, url: str | None = None, title: str | None = None) -> Document:
    import trafilatura

    if isinstance(html, bytes):
        html = decode(html)
    result = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, include_tables=True, favor_precision=True
    )
    if result is None:
        raise ExtractionError("no article text found on the page")
    data = result.as_dict() if hasattr(result, "as_dict") else dict(result)
    text = clean_text(data.get("text") or "")
    _require_text(text, "the page")
    found_title = (data.get("title") or "").strip()
    published = None
    if data.get("date"):
        try:
            published = parse_date(str(data["date"]))
        except ExtractionError:
            published = None
    doc_title = (title or found_title or _title_and_body(text, None)[0])[:MAX_TITLE_CHARS]
    return Document(title=doc_title, text=text, url=url, published=published, source="html")


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


def decode(data: bytes) -> str:
    """Bytes of unknown encoding as text: UTF-8, else Windows-1252, else Latin-1 (which never fails)."""
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def sniff(data: bytes) -> str:
    """'pdf', 'html', 'text' or 'binary', judged by content."""
    head = data[:2048].lstrip()
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


def _legacy_text(data: bytes) -> bool:
    """Single-byte text has (almost) no control characters; binary data has about one byte in ten."""
    text = data.decode("cp1252", errors="replace")
    odd = sum(1 for c in text if c == "\ufffd" or (c not in "\t\n\r\f" and unicodedata.category(c) == "Cc"))
    return odd <= len(text) // 200


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
