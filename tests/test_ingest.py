"""Ingestion never corrupts or invents: encodings, CSV dialects, junk pages, minimum length, dates.

The example articles are written for these tests; pages are served over loopback.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from util_cli import CLI
from util_http import RawServer, respond

from index.bulk import ImportOptions, read_records, sniff_dialect
from index.extract import ExtractionError, clean_text, from_bytes, from_html, from_text, page_date
from index.fetch import fetch_document
from index.kb import DB_FILE
from index.settings import FetchSettings, IngestSettings

MARKT = (
    "Der Stadtrat von Birkenau hat am Dienstag beschlossen, die alte Markthalle zu sanieren. "
    "Das Gebäude war vor 2014 zuletzt renoviert worden und gilt seitdem als baufällig. "
    "Die Arbeiten sollen im Herbst beginnen und rund zwei Jahre dauern; die Händler ziehen so lange "
    "in Zelte auf dem Parkplatz neben dem Rathaus um."
)
FAEHRE = (
    "Die Gemeinde Lindholm setzt ab Juni eine elektrische Fähre ein. Sie fährt alle 20 Minuten zwischen den "
    "beiden Anlegern, kostet 4,2 Millionen Euro – gut 300.000 € mehr als geplant – und ersetzt das alte "
    "Dieselschiff, das seit 1987 im Dienst war."
)
BRUECKE = (
    "Die Brücke über die Wesel in Ostend ist nach vier Monaten Bauzeit wieder offen. Autos, Räder und "
    "Fußgänger dürfen sie seit Montag nutzen; die Umleitung über den Hafen entfällt, und die Busse fahren "
    "wieder ihre gewohnte Strecke durch die Altstadt."
)


@pytest.fixture
def run(monkeypatch, capsys, embedder, tmp_path):
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    yield cli
    cli.close()


def _stored(run) -> list[dict]:
    return [json.loads(line) for line in run("list", "--json").out.splitlines()]


def _texts(run) -> list[str]:
    conn = sqlite3.connect(Path(run.data_dir) / DB_FILE)
    try:
        return [row[0] for row in conn.execute("SELECT title || ' ' || text FROM articles")]
    finally:
        conn.close()


def _one_line_error(result, code: int = 1) -> str:
    assert result.code == code, result
    assert result.err.startswith("articlebot: ") and result.err.count("\n") == 1, result.err
    return result.err


# --- encodings ----------------------------------------------------------------------------------------


def test_excel_csv_utf8_keeps_its_title_column(run, tmp_path):
    """Excel's "CSV UTF-8" starts with a BOM; it used to stick to the first header name ('\\ufefftitle')."""
    path = tmp_path / "excel.csv"
    rows = f'title;text\r\nMarkthalle wird saniert;"{MARKT}"\r\nNeue Fähre;"{FAEHRE}"\r\n'
    path.write_bytes(codecs.BOM_UTF8 + rows.encode("utf-8"))
    result = run("import", str(path))
    assert result.code == 0 and result.err == "", result
    assert sorted(a["title"] for a in _stored(run)) == ["Markthalle wird saniert", "Neue Fähre"]


def test_bom_is_stripped_from_jsonl_text_and_markdown(run, tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + json.dumps({"title": "Markthalle", "text": MARKT}).encode() + b"\n")
    assert run("import", str(path)).out.strip() == "imported 1 article, 0 already present, 0 rejected"
    text = from_bytes(codecs.BOM_UTF8 + f"Neue Fähre\n\n{FAEHRE}".encode(), "faehre.txt")
    markdown = from_bytes(codecs.BOM_UTF8 + f"---\ntitle: Brücke offen\n---\n{BRUECKE}".encode(), "b.md")
    html = from_bytes(codecs.BOM_UTF8 + _page(f"<p>{BRUECKE}</p><p>{MARKT}</p>").encode())
    assert (text.title, markdown.title, html.source) == ("Neue Fähre", "Brücke offen", "html")
    pasted = from_text(f" \ufeff\ufeffNeue Fähre\n\n{FAEHRE}")
    assert pasted.title == "Neue Fähre" and clean_text(" \ufeff\ufeffTitel ") == "Titel"
    assert not any("\ufeff" in t for t in (*_texts(run), text.text, markdown.text, html.text, pasted.text))


@pytest.mark.parametrize(
    ("encoding", "name", "text"),
    [("cp1252", "Windows-1252", FAEHRE), ("latin-1", "Latin-1 (ISO-8859-1)", MARKT)],
)
def test_legacy_encoded_imports_are_read_with_one_warning(run, tmp_path, encoding, name, text):
    csv_path = tmp_path / "alt.csv"
    csv_path.write_bytes(f'title,text\nAlt,"{text}"\n'.encode(encoding))
    result = run("import", str(csv_path))
    assert result.code == 0, result
    assert result.err == f"articlebot: warning: alt.csv is not UTF-8; read as {name}\n"
    jsonl_path = tmp_path / "alt.jsonl"
    jsonl_path.write_bytes(
        json.dumps({"title": "Zwei", "text": text + " Öffnung"}, ensure_ascii=False).encode(encoding)
    )
    result = run("import", str(jsonl_path))
    assert result.code == 0 and result.err == f"articlebot: warning: alt.jsonl is not UTF-8; read as {name}\n"
    stored = _texts(run)
    assert any(text in t for t in stored) and any("Öffnung" in t for t in stored)
    assert not any("\ufffd" in t or "Ã" in t for t in stored)


def test_excel_unicode_text_is_read(run, tmp_path):
    """Excel's "Unicode Text" export: UTF-16 with a BOM, tab-separated."""
    path = tmp_path / "unicode.csv"
    path.write_bytes(f"Title\tText\r\nFähre\t{FAEHRE}\r\n".encode("utf-16"))
    result = run("import", str(path))
    assert result.code == 0 and result.err == "", result
    assert [a["title"] for a in _stored(run)] == ["Fähre"] and FAEHRE in _texts(run)[0]


def test_utf16_files_are_text_not_binary():
    """They are half zero bytes, which made every UTF-16 file 'not a supported type'."""
    text = from_bytes(f"Neue Fähre\n\n{FAEHRE}".encode("utf-16"), "faehre.txt")
    markdown = from_bytes(codecs.BOM_UTF16_LE + f"# Brücke offen\n\n{BRUECKE}".encode("utf-16-le"), "b.md")
    html = from_bytes(_page(f"<p>{MARKT}</p><p>{BRUECKE}</p>").encode("utf-16"), "seite.html")
    assert (text.title, text.text) == ("Neue Fähre", FAEHRE)
    assert (markdown.title, markdown.text) == ("Brücke offen", BRUECKE)
    assert html.source == "html" and "Markthalle zu sanieren" in html.text
    with pytest.raises(ExtractionError, match="not a supported type"):
        from_bytes(codecs.BOM_UTF16_LE + bytes(range(256)) * 8, "x.txt")


def test_undecodable_records_are_refused_by_line_and_never_stored(run, tmp_path):
    """A UTF-8 file with one Latin-1 line: that line is refused by number, the rest is imported."""
    lines = [
        json.dumps({"title": "Fähre", "text": FAEHRE}, ensure_ascii=False).encode(),
        json.dumps({"title": "Markthalle", "text": MARKT}, ensure_ascii=False).encode("latin-1"),
        json.dumps({"title": "Schaden", "text": BRUECKE.replace("Fußgänger", "Fu\ufffdg\ufffdnger")}).encode(),
        json.dumps({"title": "Brücke", "text": BRUECKE}, ensure_ascii=False).encode(),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = run("import", str(path))
    assert result.code == 1 and "imported 2 articles, 0 already present, 2 rejected" in result.out
    assert result.err.splitlines() == [
        "line 2: not valid UTF-8 text (byte 0xE4); save the file as UTF-8",
        "line 3: the record holds U+FFFD replacement characters (\ufffd): the text was damaged by a wrong "
        "decoding; send the original",
    ]
    assert not any("\ufffd" in t or "\udce4" in t for t in _texts(run))

    csv_path = tmp_path / "mixed.csv"
    csv_path.write_bytes(b'title,text\nEins,"' + FAEHRE.encode() + b'"\nZwei,"' + MARKT.encode("latin-1") + b'"\n')
    result = run("import", str(csv_path))
    assert result.code == 1 and result.err == "line 3: not valid UTF-8 text (byte 0xE4); save the file as UTF-8\n"


def test_undecodable_file_is_refused_with_its_line_number(run, tmp_path):
    before = run.counts()
    mixed = tmp_path / "mixed.txt"
    mixed.write_bytes(f"Fähre\n\n{FAEHRE}\n".encode() + "Schöne Grüße\n".encode("latin-1"))
    err = _one_line_error(run("add", str(mixed)))
    assert "line 4 is not valid UTF-8 text (byte 0xF6); save the file as UTF-8" in err
    # Not UTF-8 anywhere, but a byte Windows-1252 leaves undefined either.
    legacy = tmp_path / "legacy.txt"
    legacy.write_bytes(f"Fähre\n\n{FAEHRE}\nEnde".encode("cp1252") + b"\x81\n")
    assert "line 4 is not valid Windows-1252 text (byte 0x81)" in _one_line_error(run("add", str(legacy)))
    damaged = tmp_path / "damaged.md"
    damaged.write_text("# Fähre\n\n" + FAEHRE.replace("ä", "\ufffd") + "\n", encoding="utf-8")
    assert "line 3 holds U+FFFD replacement characters" in _one_line_error(run("add", str(damaged)))
    assert run.counts() == before


def _stdin(data: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")


def test_stdin_is_decoded_like_a_file(run, monkeypatch):
    """stdin used to be decoded by the locale: a Windows-1252 paste crashed with a traceback."""
    monkeypatch.setattr("sys.stdin", _stdin(f"Fähre\n{FAEHRE}".encode("cp1252")))
    assert run("add", "-").out.startswith("added #1: Fähre")
    monkeypatch.setattr("sys.stdin", _stdin(codecs.BOM_UTF8 + f"Markthalle\n{MARKT}\n".encode() + b"Gr\xfc\xdfe\n"))
    assert "line 3 is not valid UTF-8 text (byte 0xFC)" in _one_line_error(run("add", "-"))
    monkeypatch.setattr("sys.stdin", _stdin(codecs.BOM_UTF8 + f"Markthalle\n{MARKT}\n".encode()))
    assert run("add", "-").out.startswith("added #2: Markthalle")
    assert "Fähre" in _texts(run)[0]


# --- CSV dialects --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delimiter", "quotechar"), [(",", '"'), (";", '"'), (";", "'"), ("\t", '"'), ("|", "'"), (",", "'")]
)
def test_csv_dialect_is_sniffed(delimiter, quotechar):
    rows = [["title", "text"], ["Fähre", FAEHRE], ["Markthalle", MARKT + f" Sie kostet{delimiter} sagt man, viel."]]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, quotechar=quotechar, quoting=csv.QUOTE_ALL).writerows(rows)
    assert sniff_dialect(buffer.getvalue()) == (delimiter, quotechar)


def test_csv_without_header_row_imports_with_columns(run, tmp_path):
    """Like the 10kGNAD file: ';', texts quoted with ', no header row; the label column is ignored."""
    path = tmp_path / "labelled.csv"
    body = "\n".join(f"{label};'{text}'" for label, text in [("Lokales", MARKT), ("Verkehr", FAEHRE)])
    path.write_text(body + "\n", encoding="utf-8")
    err = _one_line_error(run("import", str(path)))
    assert "needs a header row with a 'text' column (found 'lokales', 'der stadtrat" in err and "--columns" in err
    result = run("import", str(path), "--columns", "label,text")
    assert result.code == 0 and result.out.strip() == "imported 2 articles, 0 already present, 0 rejected", result
    titles = sorted(a["title"] for a in _stored(run))
    # Without a title column the opening words become the title, as for any text without one.
    assert titles == [
        "Der Stadtrat von Birkenau hat am Dienstag beschlossen, die alte…",
        "Die Gemeinde Lindholm setzt ab Juni eine elektrische Fähre ein.…",
    ]
    assert not any("Lokales" in t or t.startswith("'") for t in _texts(run))


def test_csv_dialect_can_be_given(run, tmp_path):
    # One row only and ':' as delimiter, which is not among the sniffed ones.
    path = tmp_path / "colon.csv"
    path.write_text(f"title:text\nMarkthalle:'{MARKT}'\n", encoding="utf-8")
    assert "needs a header row" in _one_line_error(run("import", str(path)))
    result = run("import", str(path), "--delimiter", ":", "--quotechar", "'")
    assert result.code == 0 and [a["title"] for a in _stored(run)] == ["Markthalle"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--delimiter", ";;"], "argument --delimiter: must be one character, not ';;'"),
        (["--columns", "label,body"], "argument --columns: needs a 'text' column, not 'label,body'"),
        (["--columns", "text,text"], "argument --columns: names must be non-empty and distinct"),
    ],
)
def test_bad_dialect_options_are_usage_errors(run, tmp_path, capsys, args, message):
    path = tmp_path / "a.csv"
    path.write_text(f"title,text\nFähre,{FAEHRE}\n")
    with pytest.raises(SystemExit) as caught:
        run("import", str(path), *args)
    assert caught.value.code == 2 and message in capsys.readouterr().err
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps({"text": FAEHRE}) + "\n")
    assert "apply to CSV files only" in _one_line_error(run("import", str(jsonl), "--delimiter", ";"))
    assert run.counts()["articles"] == 0


def test_import_help_documents_the_formats(run, capsys):
    with pytest.raises(SystemExit):
        run("import", "--help")
    out = capsys.readouterr().out
    for phrase in ('{"title", "text", "url"?, "published"?}', "header row", "--columns", "--delimiter", "--quotechar"):
        assert phrase in out, phrase
    assert "Windows-1252" in out and "examples:" in out and "min_chars" in out


TENKGNAD = Path("/work/shared/data/10kgnad/test.csv")


@pytest.mark.skipif(not TENKGNAD.exists(), reason="10kGNAD not on this machine")
def test_10kgnad_file_reads_with_columns():
    options = ImportOptions(min_chars=200, columns=["label", "text"])
    records = list(read_records(TENKGNAD, options))
    docs = [d for _, d in records if not isinstance(d, Exception)]
    assert len(records) >= 1000 and len(docs) >= 0.99 * len(records)
    assert not any(d.text.startswith("'") or d.text.endswith("'") or "\ufffd" in d.text for d in docs)
    with pytest.raises(ExtractionError, match="needs a header row"):
        list(read_records(TENKGNAD, ImportOptions()))


# --- junk and minimum length ----------------------------------------------------------------------------


def _page(body: str, head: str = "", footer: str = "") -> str:
    return (
        f"<!doctype html><html><head><title>Birkenauer Bote</title>{head}</head><body>"
        f"<nav><ul><li><a href='/'>Start</a></li><li><a href='/lokales'>Lokales</a></li></ul></nav>"
        f"<article><h1>Markthalle wird saniert</h1>{body}</article>{footer}</body></html>"
    )


NAVIGATION = _page(
    "".join(
        f"<p><a href='/r/{i}'>{word}</a></p>"
        for i, word in enumerate(
            ["Politik", "Wirtschaft", "Sport", "Kultur", "Wetter", "Leserbriefe", "Anzeigen", "Abo-Service"] * 4
        )
    ),
    footer="<footer><p>Impressum</p><p>Datenschutz</p><p>© 2025 Birkenauer Bote</p></footer>",
)
COOKIES = _page(
    "<p>Wir verwenden Cookies.</p><p>Alle akzeptieren</p><p>Einstellungen</p>"
    "<p>Wir und unsere Partner verarbeiten Daten mit Cookies, um Inhalte und Werbung zu personalisieren.</p>"
    "<p>Nur notwendige Cookies</p><p>Datenschutzerklärung</p><p>Impressum</p><p>Ablehnen</p>"
)
PAYWALL_DE = _page(
    "<p>Der Stadtrat von Birkenau hat am Dienstag beschlossen, die alte Markthalle zu sanieren. Was das "
    "für die Händler auf dem Wochenmarkt bedeutet und wer die Kosten trägt, lesen Sie hier.</p>"
    "<p>Weiterlesen mit Abo: Jetzt abonnieren und alle Artikel lesen.</p>"
    "<p>Sie haben bereits ein Abo? Hier anmelden</p>"
)
PAYWALL_EN = _page(
    "<p>The town council of Birkenau voted on Tuesday to restore the old market hall, which has been "
    "closed to the public since the roof began leaking during the storms of last winter, and traders "
    "have already asked where they should go while the work goes on.</p>"
    "<p>Subscribe to continue reading.</p>"
)
ARTICLE_PAGE = _page(
    f"<p>{MARKT}</p><p>{BRUECKE}</p>",
    footer="<footer><p>Impressum</p><p>Datenschutz</p><p>© 2025 Birkenauer Bote</p></footer>",
)


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (NAVIGATION, "holds no article text, only short lines (navigation, a footer or a banner)"),
        (COOKIES, "holds no article text, only short lines"),
        (PAYWALL_DE, "only a teaser behind a paywall"),
        (PAYWALL_EN, "only a teaser behind a paywall"),
    ],
)
def test_junk_pages_are_refused(run, tmp_path, page, message):
    with pytest.raises(ExtractionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_html(page.encode(), url="https://example.org/x")
    with RawServer(respond(body=page.encode(), content_type="text/html; charset=utf-8")) as server:
        config = tmp_path / "c.toml"
        config.write_text("[fetch]\nallow_private_addresses = true\ntimeout = 2\n")
        assert message in _one_line_error(run("add", server.url + "/artikel", config=str(config)))
    assert run.counts()["articles"] == 0


def test_an_article_with_footer_and_navigation_is_kept():
    doc = from_html(ARTICLE_PAGE.encode(), url="https://example.org/markthalle")
    assert "Markthalle zu sanieren" in doc.text and "Wesel" in doc.text and "Impressum" not in doc.text
    # A long article that mentions a subscription near its start is an article, not a teaser.
    long_page = _page(f"<p>Das Abo des Stadtrats: jetzt abonnieren.</p><p>{MARKT}</p><p>{BRUECKE}</p>")
    assert "Wesel" in from_html(long_page).text
    # An article about data protection and cookies is about them, not a banner.
    privacy = _page(
        "<p>Der Landtag will, dass Behörden weniger Cookies verwenden und Besucher vorher zustimmen müssen.</p>"
        "<p>Der Datenschutzbeauftragte begrüßte den Entwurf, die Opposition will ihm im Ausschuss nicht zustimmen.</p>"
        "<p>Nach dem Entwurf dürfen Ämter nur noch Cookies setzen, die für den Betrieb der Seite nötig sind.</p>"
    )
    assert "Datenschutzbeauftragte" in from_html(privacy).text


def test_links_to_other_stories_and_ad_labels_are_not_part_of_the_article():
    page = _page(
        f"<p>{MARKT}</p><p>Lesen Sie auch: Neue Fähre für Lindholm</p><p>Anzeige</p>"
        "<p>Zum Thema Verkehr sagte der Bürgermeister am Montag, die neue Fähre sei für den Ort wichtig.</p>"
        f"<p>Mehr zum Thema</p><p>» Read more: Ferry fares rise in Quillsby</p><p>{BRUECKE}</p>"
    )
    text = from_html(page).text
    assert "Lesen Sie auch" not in text and "Anzeige" not in text and "Mehr zum Thema" not in text
    assert "Read more" not in text and "Ferry fares" not in text
    # The same words opening a sentence of the story keep it.
    assert "Zum Thema Verkehr sagte der Bürgermeister" in text and "Wesel" in text


def test_short_texts_are_refused_everywhere(run, tmp_path, monkeypatch):
    assert IngestSettings().min_chars == 200
    before = run.counts()
    short = "Die Brücke in Ostend ist wieder offen. Die Umleitung entfällt."
    path = tmp_path / "kurz.txt"
    path.write_text(f"Kurzmeldung\n\n{short}\n")
    err = _one_line_error(run("add", str(path)))
    assert f"too short to be an article ({len(short)} characters; at least 200 are needed" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(f"Kurzmeldung\n{short}"))
    assert "too short to be an article" in _one_line_error(run("add", "-"))
    jsonl = tmp_path / "kurz.jsonl"
    jsonl.write_text(json.dumps({"title": "Kurz", "text": short}) + "\n" + json.dumps({"text": MARKT}) + "\n")
    result = run("import", str(jsonl))
    assert result.code == 1 and result.err.startswith("line 1: the text is too short to be an article")
    assert run.counts()["articles"] == before["articles"] + 1
    config = tmp_path / "short.toml"
    config.write_text("[ingest]\nmin_chars = 40\n")
    assert run("add", str(path), config=str(config)).out.startswith("added #2: Kurzmeldung")


def test_add_refuses_a_bad_url_option(run, monkeypatch):
    for bad in ("notaurl", "ftp://example.org/a", "javascript:alert(1)", "https://"):
        monkeypatch.setattr("sys.stdin", io.StringIO(f"Fähre\n{FAEHRE}"))
        assert f"the url must be an http(s) link, not {bad!r}" in _one_line_error(run("add", "-", "--url", bad))
    assert run.counts()["articles"] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(f"Fähre\n{FAEHRE}"))
    assert run("add", "-", "--url", "https://example.org/faehre").code == 0
    assert _stored(run)[0]["url"] == "https://example.org/faehre"


def test_a_later_markdown_heading_is_not_taken_for_the_title(run, tmp_path):
    """'# Fazit' after the story was moved out of the text and made the title."""
    path = tmp_path / "markthalle.md"
    path.write_text(f"Markthalle wird saniert\n\n{MARKT}\n\n# Fazit\n\n{BRUECKE}\n", encoding="utf-8")
    doc = from_bytes(path.read_bytes(), path.name)
    assert doc.title == "Markthalle wird saniert" and "Fazit" in doc.text
    assert from_bytes(f"*Stand: März*\n\n# Markthalle\n\n{MARKT}".encode(), "m.md").title == "Markthalle"
    assert run("add", str(path)).code == 0 and _stored(run)[0]["title"] == "Markthalle wird saniert"


def test_import_of_a_directory_says_so(run, tmp_path):
    assert "is a directory: give a .jsonl or .csv file" in _one_line_error(run("import", str(tmp_path)))
    assert run.counts()["articles"] == 0


# --- dates ---------------------------------------------------------------------------------------------


def test_dates_are_not_guessed_from_text_or_footer():
    """trafilatura's htmldate used to turn "© 2025" into 2025-01-01 and "vor 2014" into 2014-01-01."""
    assert from_html(ARTICLE_PAGE).published is None
    assert from_html(_page(f"<p>{MARKT}</p><p>{BRUECKE}</p>")).published is None
    in_url = from_html(_page(f"<p>{MARKT}</p><p>{BRUECKE}</p>"), url="https://example.org/2019/05/03/markthalle")
    assert in_url.published is None


def test_ambiguous_day_month_dates_are_refused_not_guessed(run, monkeypatch, tmp_path):
    """03/04/2025 was stored as 3 April; from a US source it is March 4. Unambiguous ones are read."""
    path = tmp_path / "dated.csv"
    path.write_text(f'title,text,published\nMarkthalle,"{MARKT}",03/04/2025\nBrücke,"{BRUECKE}",12/31/2025\n')
    result = run("import", str(path))
    assert result.code == 1 and "line 2: ambiguous date: '03/04/2025'" in result.err
    assert {a["title"]: a["published"] for a in _stored(run)} == {"Brücke": "2025-12-31"}
    monkeypatch.setattr("sys.stdin", io.StringIO(f"Fähre\n{FAEHRE}"))
    assert "ambiguous date: '1/2/2025'" in _one_line_error(run("add", "-", "--published", "1/2/2025"))
    assert run.counts()["articles"] == 1
    page = _page(f"<p>{MARKT}</p><p>{BRUECKE}</p>", head='<meta name="date" content="03/04/2025">')
    assert page_date(page) is None


@pytest.mark.parametrize(
    ("head", "body", "date"),
    [
        ('<meta property="article:published_time" content="2025-03-04T08:15:00+01:00">', "", "2025-03-04"),
        ('<meta name="date" content="2024-11-30">', "", "2024-11-30"),
        (
            '<script type="application/ld+json">{"@context": "https://schema.org", "@graph": [{"@type": '
            '"WebPage"}, {"@type": "NewsArticle", "datePublished": "2023-07-21T10:00:00Z"}]}</script>',
            "",
            "2023-07-21",
        ),
        ("", '<p><time datetime="2022-02-14">14. Februar</time></p>', "2022-02-14"),
        ('<meta property="article:published_time" content="nonsense">', "", None),
    ],
)
def test_dates_come_from_page_metadata(head, body, date):
    page = _page(f"{body}<p>{MARKT}</p><p>{BRUECKE}</p>", head=head, footer="<footer>© 2025</footer>")
    assert page_date(page) == date
    with RawServer(respond(body=page.encode(), content_type="text/html")) as server:
        doc = fetch_document(server.url + "/artikel", FetchSettings(allow_private_addresses=True, timeout=2))
    assert doc.published == date and "Markthalle" in doc.text


_TEASERS = (
    "<aside><h2>Lesen Sie auch</h2><article><h3>Feuerwehrfest in Ostend</h3>"
    '<time datetime="2024-07-01">1. Juli 2024</time></article></aside>'
)


@pytest.mark.parametrize(
    ("head", "body", "after", "date"),
    [
        # a date in a sentence of the story is what the story is about, not when it appeared
        (
            "",
            '<p>Der Rat entscheidet am <time datetime="2025-05-06">6. Mai</time> über die Vergabe der Arbeiten.</p>',
            "",
            None,
        ),
        # a teaser's, a comment's or another card's <time> outside the story
        ("", "", _TEASERS, None),
        (
            "",
            "",
            '<section><article><p>Gut so! <time datetime="2025-03-20">20.03.</time></p></article></section>',
            None,
        ),
        # JSON-LD: an image's dateCreated, a mentioned article's or a book's datePublished are nested values
        (
            '<script type="application/ld+json">{"@type": "NewsArticle", "headline": "Markthalle", "image": '
            '{"@type": "ImageObject", "dateCreated": "2017-08-01"}, "mentions": [{"@type": "NewsArticle", '
            '"datePublished": "2024-07-01"}]}</script>',
            "",
            "",
            None,
        ),
        (
            '<script type="application/ld+json">{"@type": "Organization", "subjectOf": {"@type": "Book", '
            '"datePublished": "2001-05-05"}}</script>',
            "",
            "",
            None,
        ),
        # what the page does say about itself still counts
        (
            "",
            '<p class="byline">Von Ina Roth, <time datetime="2025-03-12T14:05">12.03.2025</time></p>',
            _TEASERS,
            "2025-03-12",
        ),
        (
            '<script type="application/ld+json">{"@type": "WebPage", "mainEntity": {"@type": "NewsArticle", '
            '"datePublished": "2025-03-12"}}</script>',
            "",
            "",
            "2025-03-12",
        ),
    ],
)
def test_dates_are_not_taken_from_the_story_or_other_content(head, body, after, date):
    page = _page(f"{body}<p>{MARKT}</p><p>{BRUECKE}</p>", head=head, footer=after)
    assert page_date(page) == date
    with RawServer(respond(body=page.encode(), content_type="text/html")) as server:
        doc = fetch_document(server.url + "/artikel", FetchSettings(allow_private_addresses=True, timeout=2))
    assert doc.published == date and "Markthalle" in doc.text


def test_xhtml_page_with_an_xml_declaration_keeps_its_date():
    """lxml refuses a str with an encoding declaration; the page's date was silently lost."""
    page = '<?xml version="1.0" encoding="utf-8"?>\n' + _page(
        f"<p>{MARKT}</p><p>{BRUECKE}</p>", head='<meta property="article:published_time" content="2025-03-12">'
    )
    with RawServer(respond(body=page.encode(), content_type="application/xhtml+xml")) as server:
        doc = fetch_document(server.url + "/artikel", FetchSettings(allow_private_addresses=True, timeout=2))
    assert doc.published == "2025-03-12" and "Markthalle" in doc.text


EINTRITT = "Der Eintritt zum Sommerfest am Hafen kostet 4 € für Erwachsene; Kinder zahlen nichts, sagt der Verein."


def _fetched(body: bytes, content_type: str) -> str:
    with RawServer(respond(body=body, content_type=content_type)) as server:
        return fetch_document(server.url + "/artikel", FetchSettings(allow_private_addresses=True, timeout=2)).text


def test_declared_legacy_charsets_are_honoured():
    """ISO-8859-15 has "€" at 0xA4, where Windows-1252 (read for any non-UTF-8 page) has "¤"."""
    paragraphs = f"<p>{MARKT}</p><p>{EINTRITT}</p>"
    in_meta = _page(paragraphs, head='<meta charset="iso-8859-15">').encode("iso-8859-15")
    for body, content_type in [
        (in_meta, "text/html"),
        (_page(paragraphs).encode("iso-8859-15"), "text/html; charset=ISO-8859-15"),
        (f"Sommerfest\n\n{MARKT}\n\n{EINTRITT}".encode("iso-8859-15"), "text/plain; charset=iso-8859-15"),
    ]:
        text = _fetched(body, content_type)
        assert "4 € für" in text and "¤" not in text and "Gebäude" in text
    assert "4 € für" in from_bytes(in_meta, "fest.html").text
    # A Windows-1252 page labelled ISO-8859-15 keeps its „quotes“ (0x84, 0x93 are C1 controls there).
    quoted = _page(f"<p>„{MARKT}“</p>", head='<meta charset="iso-8859-15">').encode("cp1252")
    assert f"„{MARKT}“" in _fetched(quoted, "text/html")
    # Python's own codecs are no page's charset: "\\u00e4" in a page stays as it is written.
    escaped = _page(f"<p>{MARKT} Pfad C:\\u00e4\\neu für \\xfc.</p>", head='<meta charset="unicode_escape">')
    assert "C:\\u00e4\\neu für" in _fetched(escaped.encode("cp1252"), "text/html")
    # A UTF-8 page stays UTF-8 whatever it claims.
    assert "4 € für" in _fetched(_page(paragraphs, head='<meta charset="iso-8859-15">').encode(), "text/html")


def test_html_served_as_plain_text_is_read_as_html():
    """A misconfigured server's text/plain label stored the page's markup as the article."""
    text = _fetched(ARTICLE_PAGE.encode(), "text/plain; charset=utf-8")
    assert "Markthalle" in text and "<" not in text and "Impressum" not in text


def test_import_keeps_the_records_date_and_invents_none(run, tmp_path):
    path = tmp_path / "dated.jsonl"
    path.write_text(
        json.dumps({"title": "Markthalle", "text": MARKT, "published": "2025-02-12"})
        + "\n"
        + json.dumps({"title": "Brücke", "text": BRUECKE + " Seit 2014 war sie gesperrt."})
        + "\n"
    )
    assert run("import", str(path)).code == 0
    assert {a["title"]: a["published"] for a in _stored(run)} == {"Markthalle": "2025-02-12", "Brücke": None}
