"""Bulk import from JSONL or CSV: one article per line/row, bad ones reported by line and skipped."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .extract import MAX_TEXT_CHARS, Document, ExtractionError, clean_text, from_text, parse_date

# csv's default field limit (128 KiB) is below a long article; beyond this the text is refused anyway.
CSV_FIELD_LIMIT = 4 * MAX_TEXT_CHARS


@dataclass
class ImportReport:
    added: list[tuple[int, int]] = field(default_factory=list)  # (line, article id)
    duplicates: list[tuple[int, int]] = field(default_factory=list)  # (line, existing id)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


def _document(record: object) -> Document:
    if not isinstance(record, dict):
        raise ExtractionError("not an object with 'title' and 'text'")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ExtractionError("'text' is missing or empty")
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        raise ExtractionError("'title' must be a string")
    url = record.get("url") or None
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise ExtractionError(f"'url' must be an http(s) link, not {url!r}")
    published = record.get("published")
    doc = from_text(clean_text(text), title=title.strip() if title and title.strip() else None, source="import")
    doc.url = url
    doc.published = parse_date(str(published)) if published else None
    return doc


def read_jsonl(path: Path) -> Iterator[tuple[int, Document | Exception]]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield line_no, _document(json.loads(line))
            except json.JSONDecodeError as exc:
                yield line_no, ExtractionError(f"not valid JSON ({exc.msg})")
            except ExtractionError as exc:
                yield line_no, exc


def read_csv(path: Path) -> Iterator[tuple[int, Document | Exception]]:
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        sample = f.read(65536)
        f.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        if csv.field_size_limit() < CSV_FIELD_LIMIT:
            csv.field_size_limit(CSV_FIELD_LIMIT)
        reader = csv.DictReader(f, dialect=dialect)
        try:
            if not reader.fieldnames or "text" not in [n.strip().lower() for n in reader.fieldnames]:
                raise ExtractionError(f"{path.name}: the CSV needs a header row with a 'text' column")
            for row in reader:
                record = {k.strip().lower(): v for k, v in row.items() if k is not None}
                try:
                    yield reader.line_num, _document(record)
                except ExtractionError as exc:
                    yield reader.line_num, exc
        except csv.Error as exc:
            # The reader cannot resynchronise after a broken record: report it and stop there.
            # line_num still counts the lines before the failing record.
            yield reader.line_num + 1, ExtractionError(f"not valid CSV ({exc}); the rest of the file was not read")


def read_records(path: str | Path) -> Iterator[tuple[int, Document | Exception]]:
    path = Path(path)
    if not path.is_file():
        raise ExtractionError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl(path)
    if suffix == ".csv":
        return read_csv(path)
    raise ExtractionError(f"unsupported import format '{suffix or path.name}' (use .jsonl or .csv)")
