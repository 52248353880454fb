"""Hostile and broken files: each fails with one clear message and adds nothing."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from util_cli import CLI
from util_pdf import make_pdf, text_page

from index import extract
from index.extract import ExtractionError, from_bytes, from_file, from_pdf, from_text, sniff

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    + bytes(200)
)


@pytest.fixture
def run(monkeypatch, capsys, embedder, tmp_path):
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    yield cli
    cli.close()


def _encrypted_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(make_pdf([text_page("Geheimer Bericht über den Haushalt.")]))))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _broken_pdf() -> bytes:
    return b"%PDF-1.7\n" + random.Random(7).randbytes(20_000)


# name, content, expected message fragment
BAD_FILES = {
    "empty.txt": (b"", "is empty"),
    "blank.md": (b"  \n\n\t \n", "is empty"),
    "picture.txt": (PNG, "not a supported type"),
    "picture.png": (PNG, "unsupported file type '.png'"),
    "program.html": (b"\x7fELF\x02\x01\x01\x00" + bytes(100), "not a supported type"),
    "encrypted.pdf": (_encrypted_pdf(), "encrypted"),
    "broken.pdf": (_broken_pdf(), "the PDF cannot be read"),
    "truncated.pdf": (make_pdf([text_page("Ein Satz.")])[:300], "the PDF"),
    "scan.pdf": (make_pdf([b"q 100 0 0 100 0 0 cm Q"]), "no extractable text"),
    "latin1-nul.txt": (b"Text\x00mit Nullbyte", "not a supported type"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_file_is_refused_with_a_clear_message(tmp_path, name):
    content, message = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ExtractionError, match=message) as caught:
        from_file(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["empty.txt", "picture.txt", "encrypted.pdf", "broken.pdf", "scan.pdf"])
def test_bad_file_through_cli_adds_nothing(run, tmp_path, name):
    content, message = BAD_FILES[name]
    run("add", str(Path(__file__).parents[1] / "bot" / "samples" / "01-strassenbahn-ulmenhagen.md"))
    before = run.counts()
    path = tmp_path / name
    path.write_bytes(content)
    result = run("add", str(path))
    assert result.code == 1
    assert result.err.startswith("articlebot: ") and message in result.err
    assert result.err.count("\n") == 1, result.err  # one line, no traceback
    assert run.counts() == before


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ExtractionError, match="no such file"):
        from_file(tmp_path / "nope.txt")
    (tmp_path / "dir.txt").mkdir()
    with pytest.raises(ExtractionError, match="is a directory"):
        from_file(tmp_path / "dir.txt")


def test_type_is_sniffed_from_content_not_name(tmp_path):
    pdf = make_pdf([text_page("Die Brücke wird im Mai eröffnet.", "Sie kostet zwei Millionen Euro.")])
    (tmp_path / "report.txt").write_bytes(pdf)  # a PDF named .txt is still read as a PDF
    doc = from_file(tmp_path / "report.txt")
    assert doc.source == "pdf" and "zwei Millionen Euro" in doc.text
    assert sniff(PNG) == "binary" and sniff(pdf) == "pdf" and sniff(b"<!DOCTYPE html><html>") == "html"


def test_valid_pdf_is_extracted_with_its_title():
    pdf = make_pdf(
        [text_page("Erste Seite über den Hafen.", "Die Stadt baut neu."), text_page("Zweite Seite mit Zahlen.")],
        title="Hafenbericht",
    )
    doc = from_pdf(pdf)
    assert doc.title == "Hafenbericht"
    assert "Die Stadt baut neu." in doc.text and "Zweite Seite mit Zahlen." in doc.text


# --- PDF bombs: small files whose content inflates ------------------------------------------------

BOMBS = {
    # 150 MB of spaces in a 150 KB stream: refused while inflating.
    "deflate bomb": lambda: make_pdf([b" " * 150_000_000]),
    # 2 MB of text operators in a 5 KB stream: pypdf's extraction is quadratic in these.
    "operator bomb": lambda: make_pdf([b"BT /F1 12 Tf 72 720 Td " + b"(Hallo Welt Bombe) Tj " * 90_000 + b"ET"]),
    # A form with 2,000 text operators, drawn 4,000 times by one page.
    "form bomb": lambda: make_pdf([b"/X0 Do " * 4_000], form=b"BT /F1 1 Tf " + b"(x) Tj " * 2_000 + b"ET"),
    # 20 MB of operators in a 50 KB stream: beyond the parsing budget.
    "token bomb": lambda: make_pdf([b"BT /F1 12 Tf " + b"(Hallo Welt Bombe) Tj " * 900_000 + b"ET"]),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_pdf_bomb_fails_fast_with_clear_message(name):
    pdf = BOMBS[name]()
    assert len(pdf) < 200_000
    started = time.monotonic()
    with pytest.raises(ExtractionError, match="too (large|complex)") as caught:
        from_pdf(pdf)
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"{name}: {elapsed:.1f} s"
    assert "\n" not in str(caught.value)


def test_pdf_time_budget_stops_many_cheap_pages(monkeypatch):
    """300 pages of 20,000 no-op operators each: under the per-page bound, stopped by the deadline."""
    monkeypatch.setattr(extract, "MAX_PDF_SECONDS", 0.5)
    pdf = make_pdf([b"q Q " * 10_000] * 300)
    started = time.monotonic()
    with pytest.raises(ExtractionError, match="took longer than 0.5 s"):
        from_pdf(pdf)
    assert time.monotonic() - started < 5


MEMORY_PROBE = """
import json, resource, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from util_pdf import make_pdf
from index.extract import ExtractionError, from_pdf
pdf = make_pdf([b"BT /F1 12 Tf " + b"(Hallo Welt Bombe) Tj " * 400_000 + b"ET"] * 3)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
try:
    from_pdf(pdf)
    outcome = "extracted"
except ExtractionError as exc:
    outcome = str(exc)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "mb": (peak - base) / 1024, "seconds": time.monotonic() - started}))
"""


def test_pdf_bomb_memory_is_bounded():
    """In a fresh process, so the peak memory measured is the extraction's own."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(root), str(root / "tests")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["outcome"] != "extracted"
    assert result["mb"] < 400, result
    assert result["seconds"] < 15, result


def test_from_bytes_binary_and_text_edges():
    with pytest.raises(ExtractionError, match="is empty"):
        from_bytes(b"   ", "x.txt")
    with pytest.raises(ExtractionError, match="not a supported type"):
        from_bytes(b"\x00\x01\x02" * 100, "x.txt")
    # cp1252 text is not binary and still becomes text.
    doc = from_bytes("Grüße aus Köln.\n\nDer Dom ist groß.".encode("cp1252"), "x.txt")
    assert "Köln" in doc.title and "Dom" in doc.text


def test_soft_hyphens_and_word_joiners_do_not_split_words():
    doc = from_text("Titel\n\nDie Bundes\u00adregierung beschloss das Nach\u2060trags\u00adbudget.")
    assert doc.text == "Die Bundesregierung beschloss das Nachtragsbudget."
