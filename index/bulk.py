"""Bulk import from JSONL or CSV: one article per line/row, bad ones reported by line and skipped.

The encoding is judged from the file's start: UTF-8 (a byte-order mark is dropped), UTF-16 with a
byte-order mark, or Windows-1252/Latin-1 (then the caller is warned once). A record with a byte
that is not text in that encoding is refused by its line, never stored with replacement characters.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .extract import (
    DAMAGED,
    MAX_TEXT_CHARS,
    Document,
    ExtractionError,
    check_url,
    clean_text,
    detect_encoding,
    encoding_name,
    from_text,
    parse_date,
    require_length,
    undecodable,
)

# csv's default field limit (128 KiB) is below a long article; beyond this the text is refused anyway.
CSV_FIELD_LIMIT = 4 * MAX_TEXT_CHARS
# Bytes read to judge the encoding and the CSV dialect.
SAMPLE_BYTES = 1 << 20
DELIMITERS = (",", ";", "\t", "|")
QUOTECHARS = ('"', "'")
# Fields a record may carry; any other CSV column or JSON field is ignored.
FIELDS = ("title", "text", "url", "published")


@dataclass
class ImportReport:
    added: list[tuple[int, int]] = field(default_factory=list)  # (line, article id)
    duplicates: list[tuple[int, int]] = field(default_factory=list)  # (line, existing id)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


@dataclass
class ImportOptions:
    min_chars: int = 0
    delimiter: str | None = None  # CSV: sniffed when None
    quotechar: str | None = None  # CSV: sniffed when None
    columns: list[str] | None = None  # CSV without a header row: the names of its columns
    warn: Callable[[str], None] | None = None  # told once about a file that is not UTF-8


def _document(record: object, encoding: str, min_chars: int = 0) -> Document:
    if not isinstance(record, dict):
        raise ExtractionError("not an object with 'title' and 'text'")
    for key in FIELDS:
        if isinstance(value := record.get(key), str) and (bad := undecodable(value)):
            raise ExtractionError(f"not valid {encoding} text (byte 0x{bad[1]:02X}); save the file as UTF-8")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ExtractionError("'text' is missing or empty")
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        raise ExtractionError("'title' must be a string")
    try:
        url = check_url(record.get("url") or None)
    except ExtractionError:
        raise ExtractionError(f"'url' must be an http(s) link, not {record.get('url')!r}") from None
    if "\ufffd" in text or "\ufffd" in (title or ""):
        raise ExtractionError(f"the record {DAMAGED}")
    published = record.get("published")
    doc = from_text(clean_text(text), title=title.strip() if title and title.strip() else None, source="import")
    doc.url = url
    doc.published = parse_date(str(published)) if published else None
    return require_length(doc, min_chars)


def _open(path: Path, options: ImportOptions) -> tuple[io.TextIOWrapper, str]:
    """The file as text in its detected encoding, and that encoding's name (for messages)."""
    with open(path, "rb") as f:
        sample = f.read(SAMPLE_BYTES)
    codec = detect_encoding(sample)
    name = encoding_name(codec, sample)
    if codec == "cp1252" and options.warn:
        options.warn(f"{path.name} is not UTF-8; read as {name}")
    # surrogateescape keeps an undecodable byte visible to _document(), which refuses its record.
    return open(path, encoding=codec, errors="surrogateescape", newline=""), name


def read_jsonl(path: Path, options: ImportOptions | None = None) -> Iterator[tuple[int, Document | Exception]]:
    options = options or ImportOptions()
    f, encoding = _open(path, options)
    with f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield line_no, _document(json.loads(line), encoding, options.min_chars)
            except json.JSONDecodeError as exc:
                yield line_no, ExtractionError(json_problem(exc))
            except ExtractionError as exc:
                yield line_no, exc


def sniff_dialect(sample: str, delimiter: str | None = None, quotechar: str | None = None) -> tuple[str, str]:
    """Delimiter and quote character under which the sample's rows most consistently have the same width.

    csv.Sniffer gives up on long quoted fields (a news article per row), so every candidate is parsed
    and scored instead; ties go to the usual ',' and '"'.
    """
    sample = sample[: sample.rfind("\n") + 1] or sample  # whole lines only
    best: tuple[tuple[float, int], str, str] | None = None
    for d in [delimiter] if delimiter else DELIMITERS:
        for q in [quotechar] if quotechar else QUOTECHARS:
            score = _consistency(sample, d, q)
            if best is None or score > best[0]:
                best = (score, d, q)
    assert best is not None
    return best[1], best[2]


def _consistency(sample: str, delimiter: str, quotechar: str) -> tuple[float, int]:
    """(share of rows with the most common width, that width); 0 when rows have a single field."""
    widths: Counter[int] = Counter()
    try:
        for row in csv.reader(io.StringIO(sample), delimiter=delimiter, quotechar=quotechar):
            if row:
                widths[len(row)] += 1
            if sum(widths.values()) >= 200:
                break
    except csv.Error:
        pass
    if not widths:
        return (0.0, 0)
    width, count = widths.most_common(1)[0]
    return (count / sum(widths.values()) if width > 1 else 0.0, width)


def read_csv(path: Path, options: ImportOptions | None = None) -> Iterator[tuple[int, Document | Exception]]:
    options = options or ImportOptions()
    f, encoding = _open(path, options)
    with f:
        delimiter, quotechar = sniff_dialect(f.read(SAMPLE_BYTES), options.delimiter, options.quotechar)
        f.seek(0)
        if csv.field_size_limit() < CSV_FIELD_LIMIT:
            csv.field_size_limit(CSV_FIELD_LIMIT)
        reader = csv.DictReader(f, fieldnames=options.columns, delimiter=delimiter, quotechar=quotechar)
        try:
            names = [n.strip().lower() for n in reader.fieldnames or []]
            if "text" not in names:
                raise ExtractionError(
                    f"{path.name}: the CSV needs a header row with a 'text' column (found {_shown(names)}), "
                    "or name its columns with --columns, e.g. --columns label,text"
                )
            for row in reader:
                record = {k.strip().lower(): v for k, v in row.items() if k is not None and k.strip().lower() in FIELDS}
                try:
                    yield reader.line_num, _document(record, encoding, options.min_chars)
                except ExtractionError as exc:
                    yield reader.line_num, exc
        except csv.Error as exc:
            # The reader cannot resynchronise after a broken record: report it and stop there.
            # line_num still counts the lines before the failing record.
            yield reader.line_num + 1, ExtractionError(f"not valid CSV ({exc}); the rest of the file was not read")


def _shown(names: list[str]) -> str:
    shown = ", ".join(repr(n[:30]) for n in names[:5]) + (", …" if len(names) > 5 else "")
    return shown or "no columns"


def read_records(path: str | Path, options: ImportOptions | None = None) -> Iterator[tuple[int, Document | Exception]]:
    path = Path(path)
    if path.is_dir():
        raise ExtractionError(f"{path} is a directory: give a .jsonl or .csv file")
    if not path.is_file():
        raise ExtractionError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        if options and (options.columns or options.delimiter or options.quotechar):
            raise ExtractionError("--columns, --delimiter and --quotechar apply to CSV files only")
        return read_jsonl(path, options)
    if suffix in (".csv", ".tsv"):
        if options and suffix == ".tsv" and not options.delimiter:
            options.delimiter = "\t"
        return read_csv(path, options)
    raise ExtractionError(f"unsupported import format '{suffix or path.name}' (use .jsonl or .csv)")


def json_problem(exc: json.JSONDecodeError) -> str:
    """json's own words name no place ("Invalid control character at"); say where, and the usual cause:
    a text with a raw tab, or with a raw line break that ends the record's line inside a string."""
    where = f"at character {exc.colno}"
    if exc.msg.startswith("Invalid control character") and exc.doc[exc.pos : exc.pos + 1] in ("\n", "\r"):
        return f"not valid JSON: the line ends inside a string, {where} (write a line break in a text as \\n)"
    if exc.msg.startswith("Invalid control character"):
        return f"not valid JSON: a raw tab or control character inside a string {where} (write a tab as \\t)"
    return f"not valid JSON: {exc.msg.removesuffix(' at')} {where}"
