"""CLI bad input: each mistake gets one line naming it, a non-zero exit, and the store stays as it was."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from util_cli import CLI, Result
from util_kb import ZERO_INTEGRITY

from bot import calibration, cli
from index.engines import DB_FILE
from index.kb import KnowledgeBase
from index.settings import EmbeddingSettings, IndexSettings

ROOT = Path(__file__).resolve().parents[1]
# Articles must be at least [ingest] min_chars (200) long: FILLER makes a test sentence an article.
FILLER = (
    " Die Verwaltung will die Einwohner in den kommenden Wochen auf mehreren Versammlungen über"
    " die Einzelheiten, die Kosten und den Zeitplan des Vorhabens unterrichten und Fragen beantworten."
)
SAMPLE = "Die Gemeinde Lindholm setzt ab Juni eine elektrische Fähre ein. Sie fährt alle 20 Minuten." + FILLER


@pytest.fixture
def run(monkeypatch, capsys, embedder, tmp_path):
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    yield cli
    cli.close()


@pytest.fixture
def one_article(run, tmp_path):
    path = tmp_path / "faehre.txt"
    path.write_text(f"Neue Fähre für Lindholm\n\n{SAMPLE}\n")
    result = run("add", str(path))
    assert result.code == 0 and result.out.startswith("added #1: Neue Fähre für Lindholm"), result
    return path


def _one_line_error(result, code: int = 1) -> str:
    assert result.code == code, result
    assert result.err.startswith("articlebot: ") and result.err.count("\n") == 1, result.err
    return result.err


@pytest.mark.parametrize("command", ["show", "remove"])
def test_unknown_article_id(run, one_article, command):
    before = run.counts()
    err = _one_line_error(run(command, "99"))
    assert "no article with id 99" in err
    assert run.counts() == before


@pytest.mark.parametrize("value", ["abc", "1.5", "#x", "0", "-3", "1e3", "#"])
@pytest.mark.parametrize("command", ["show", "remove"])
def test_non_numeric_id(run, one_article, command, value):
    before = run.counts()
    err = _one_line_error(run(command, value))
    assert "not an article id" in err
    assert run.counts() == before


def test_missing_id_is_a_usage_error(run, one_article):
    with pytest.raises(SystemExit) as caught:
        run("remove")
    assert caught.value.code == 2
    assert run.counts()["articles"] == 1


def test_hash_id_and_remove_then_show(run, one_article):
    assert "Neue Fähre für Lindholm" in run("show", "#1").out
    assert run("remove", "#1").out == "removed #1: Neue Fähre für Lindholm\n"
    assert run.counts()["articles"] == 0 and run.counts()["integrity"] == ZERO_INTEGRITY
    assert "no article with id 1" in _one_line_error(run("show", "1"))
    assert "no article with id 1" in _one_line_error(run("remove", "1"))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("report.docx", b"PK\x03\x04" + bytes(100), "unsupported file type '.docx'"),
        ("noextension", b"text", "unsupported file type 'noextension'"),
        ("empty.txt", b"", "empty.txt is empty"),
        ("spaces.md", b"\n   \n", "spaces.md is empty"),
        ("image.txt", b"\x89PNG\r\n\x1a\n" + bytes(100), "not a supported type"),
    ],
)
def test_add_bad_file(run, one_article, tmp_path, name, content, message):
    before = run.counts()
    path = tmp_path / name
    path.write_bytes(content)
    assert message in _one_line_error(run("add", str(path)))
    assert run.counts() == before


def test_add_missing_file_bad_scheme_bad_date(run, tmp_path, monkeypatch):
    assert "no such file" in _one_line_error(run("add", str(tmp_path / "nope.txt")))
    assert "only http and https links can be added" in _one_line_error(run("add", "ftp://example.org/a.txt"))
    monkeypatch.setattr("sys.stdin", io.StringIO(SAMPLE))
    assert "not a date: 'gestern'" in _one_line_error(run("add", "-", "--published", "gestern"))
    monkeypatch.setattr("sys.stdin", io.StringIO("  \n"))
    assert "nothing to add: the input is empty" in _one_line_error(run("add", "-"))
    assert run.counts()["articles"] == 0


def test_unreachable_url(run, tmp_path, one_article):
    port = _closed_port()
    config = _loopback_fetch_config(tmp_path)
    before = run.counts()
    err = _one_line_error(run("add", f"http://127.0.0.1:{port}/artikel", config=str(config)))
    assert f"cannot fetch http://127.0.0.1:{port}/artikel" in err and "ConnectionRefused" in err
    assert run.counts() == before


def test_duplicate_says_already_present(run, one_article, tmp_path):
    before = run.counts()
    result = run("add", str(one_article))
    assert result.code == 0
    assert "already present as #1 (same text)" in result.out
    # Same text with other spacing and case, and the same URL with tracking parameters: still duplicates.
    other = tmp_path / "copy.txt"
    other.write_text(f"Anderer Titel\n\n  {SAMPLE.upper()}  \n")
    assert "already present as #1 (same text)" in run("add", str(other)).out
    assert run.counts() == before


def test_a_title_of_its_own_does_not_make_a_new_article(run, one_article, tmp_path):
    """``--title`` keeps the file's first line in the text; that text is still the article already there."""
    before = run.counts()
    assert "already present as #1 (same text)" in run("add", str(one_article), "--title", "Fähre").out
    assert run.counts() == before
    # The other way round: titled first, then plain.
    dated = tmp_path / "wasser.txt"
    dated.write_text(f"Wasser wird teurer\n\nDer Kubikmeter kostet ab April mehr. {FILLER}\n")
    assert run("add", str(dated), "--title", "Wasserpreise").out.startswith("added #2: Wasserpreise")
    assert "already present as #2 (same text)" in run("add", str(dated)).out


def test_list_says_when_a_date_is_the_day_added(run, one_article, tmp_path):
    dated = tmp_path / "dated.txt"
    dated.write_text(f"Wasser wird teurer\n\nDer Kubikmeter kostet ab April mehr. {FILLER}\n")
    assert run("add", str(dated), "--published", "2025-03-01").code == 0
    lines = run("list").out.splitlines()
    assert lines[0].startswith("#2     2025-03-01        Wasser wird teurer")
    assert re.match(r"#1     added \d{4}-\d\d-\d\d  Neue Fähre für Lindholm", lines[1]), lines


def test_import_says_where_a_jsonl_line_breaks_and_why(run, tmp_path):
    text = "Ein Text über die Fähre" + FILLER
    lines = [
        '{"title": "Mit Tab", "text": "' + text + '\tund weiter"}',  # a raw tab inside the string
        '{"title": "Umbruch", "text": "' + text,  # a raw line break ended the record here
        'weiter im Text"}',
    ]
    err = run("import", _jsonl(tmp_path / "broken.jsonl", lines)).err
    assert "line 1: not valid JSON: a raw tab or control character inside a string at character" in err, err
    ends_at = len(lines[1]) + 1  # the line break itself
    assert f"line 2: not valid JSON: the line ends inside a string, at character {ends_at}" in err, err
    assert "line 3: not valid JSON: Expecting value at character 1" in err, err
    assert "write a line break in a text as \\n" in err, err


def _jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_import_reports_bad_lines_and_imports_the_good_ones(run, tmp_path):
    good = [
        json.dumps(
            {"title": f"Artikel {i}", "text": f"Ein Text über das Thema Nummer {i} in der Stadt Quillsby." + FILLER}
        )
        for i in range(3)
    ]
    lines = [
        good[0],  # 1
        "{not json",  # 2
        json.dumps({"title": "Ohne Text"}),  # 3
        json.dumps({"text": "   "}),  # 4
        good[1],  # 5
        "",  # 6: blank lines are skipped silently
        json.dumps({"text": "Ein Text mit schlechtem Link.", "url": "javascript:alert(1)"}),  # 7
        json.dumps({"text": "Ein Text mit schlechtem Datum.", "published": "nächsten Dienstag"}),  # 8
        json.dumps(["a", "list"]),  # 9
        json.dumps({"text": "Ein Text mit Titel als Zahl.", "title": 5}),  # 10
        good[0],  # 11: duplicate of line 1
        good[2],  # 12
    ]
    result = run("import", _jsonl(tmp_path / "mixed.jsonl", lines))
    assert result.code == 1
    assert result.out.strip() == "imported 3 articles, 1 already present, 7 rejected"
    err = result.err.splitlines()
    for line_no, message in [
        (2, "not valid JSON"),
        (3, "'text' is missing or empty"),
        (4, "'text' is missing or empty"),
        (7, "'url' must be an http(s) link"),
        (8, "not a date"),
        (9, "not an object"),
        (10, "'title' must be a string"),
    ]:
        assert any(e.startswith(f"line {line_no}: ") and message in e for e in err), (line_no, err)
    assert not any(e.startswith(("line 1:", "line 5:", "line 11:", "line 12:")) for e in err)
    counts = run.counts()
    assert counts["articles"] == 3 and counts["integrity"] == ZERO_INTEGRITY
    listed = [json.loads(line) for line in run("list", "--json").out.splitlines()]
    assert sorted(a["title"] for a in listed) == ["Artikel 0", "Artikel 1", "Artikel 2"]


def test_import_again_is_idempotent(run, tmp_path):
    path = _jsonl(
        tmp_path / "a.jsonl", [json.dumps({"text": f"Text Nummer {i} über den Hafen." + FILLER}) for i in range(4)]
    )
    assert run("import", path).out.strip() == "imported 4 articles, 0 already present, 0 rejected"
    before = run.counts()
    again = run("import", path)
    assert again.code == 0 and again.out.strip() == "imported 0 articles, 4 already present, 0 rejected"
    assert run.counts() == before, "the second import changed the store (or its version)"


def test_import_csv_with_huge_field_and_broken_row(run, tmp_path):
    """A field above csv's default 128 KiB limit no longer crashes the import (it did, with a
    traceback); a field beyond any sane size stops the file with its line number."""
    path = tmp_path / "articles.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["title", "text", "published", "notes"])
        writer.writerow(["Kurz", "Ein kurzer Text über die Stadt Lindholm." + FILLER, "2025-02-12", ""])
        writer.writerow(["Lang", "Ein Text über den Hafen und die Fähre." + FILLER, "", "Notiz " * 40_000])
        writer.writerow(["Falsches Datum", "Noch ein Text über den Markt." + FILLER, "32.13.2025", ""])
    result = run("import", str(path))
    assert result.code == 1
    assert "imported 2 articles, 0 already present, 1 rejected" in result.out
    assert result.err == "line 4: not a date: '32.13.2025' (use YYYY-MM-DD)\n"
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Riesig", "x" * 9_000_000, "", ""])
        writer.writerow(["Danach", "Ein Text nach dem riesigen Feld." + FILLER, "", ""])
    result = run("import", str(path))
    assert result.code == 1
    assert "line 5: not valid CSV (field larger than field limit" in result.err
    assert run.counts()["articles"] == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("articles.txt", "x", "unsupported import format '.txt'"),
        ("no-header.csv", "a,b\n1,2\n", "needs a header row with a 'text' column"),
    ],
)
def test_import_bad_file(run, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    assert message in _one_line_error(run("import", str(path)))
    assert "no such file" in _one_line_error(run("import", str(tmp_path / "missing.jsonl")))


def test_search_bad_k(run, one_article):
    assert "-k must be a positive number" in _one_line_error(run("search", "Fähre", "-k", "0"))


def test_demo_answers_the_sample_questions_and_explains_the_english_miss(run):
    result = run("demo")
    assert result.code == 0, result
    assert result.out.startswith("8 articles in ") and "(8 sample articles added now)" in result.out
    water, tram, bees, eurovision = result.out.split("\n> ")[1:]
    assert "2,74 Euro" in water and "Quellen:" in water and "Radwege" not in water
    assert "Imogen Threlkeld" in bees and "Sources:" in bees
    assert "Dazu habe ich in den Artikeln nichts gefunden." in eurovision and "(If the answer" not in eurovision
    # The English-only default model cannot match the English question to the German tram article:
    # either it still answers, or the demo says why not and how to fix it.
    assert "118 Millionen Euro" in tram or "config.multilingual.example.toml" in tram
    again = run("demo", "Wer leitete die Hummelstudie?")
    assert again.out.startswith("8 articles in ") and "(0 sample articles added now)" in again.out


# --- never a traceback for what a user did ---------------------------------------------------------


@pytest.mark.parametrize("command", ["show", "remove"])
def test_id_beyond_sqlite_integers_is_no_article(run, one_article, command):
    before = run.counts()
    err = _one_line_error(run(command, "99999999999999999999999"))
    assert "no article with id 99999999999999999999999" in err
    assert run.counts() == before


def _main(capsys, *argv: str):
    capsys.readouterr()
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def test_unusable_data_dir_is_one_line_and_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ARTICLEBOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    cases = [
        (a_file, "is a file, not a directory"),
        (tmp_path / "missing" / "parent" / "data", "its parent"),
        (a_file / "data", "its parent"),
        (Path("/proc/articlebot-data"), "cannot create the data dir"),
        (Path("/proc"), "is not writable"),
    ]
    for data_dir, message in cases:
        # A command that writes: it would create the data dir (a read-only one stops earlier, see below).
        err = _one_line_error(_main(capsys, "--data-dir", str(data_dir), "add", "article.txt"))
        assert message in err and str(data_dir) in err, err
    assert "is a file, not a directory" in _one_line_error(_main(capsys, "--data-dir", str(a_file), "list"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert a_file.read_text() == "x"


def test_a_refused_first_add_leaves_no_empty_data_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ARTICLEBOT_CONFIG", raising=False)
    data = tmp_path / "data"
    assert "no such file" in _one_line_error(_main(capsys, "--data-dir", str(data), "add", str(tmp_path / "no.txt")))
    assert not data.exists()
    # A data dir that was there before stays, empty or not.
    data.mkdir()
    _one_line_error(_main(capsys, "--data-dir", str(data), "add", str(tmp_path / "no.txt")))
    assert data.is_dir()


def test_global_options_are_taken_after_the_command_too(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ARTICLEBOT_CONFIG", raising=False)
    data = tmp_path / "data"
    article = tmp_path / "faehre.txt"
    article.write_text(f"Neue Fähre für Lindholm\n\n{SAMPLE}\n")
    assert _main(capsys, "add", str(article), "--data-dir", str(data)).out.startswith("added #1")
    listed = _main(capsys, "list", "--data-dir", str(data), "-v")
    assert listed.code == 0 and "Neue Fähre für Lindholm" in listed.out
    assert logging.getLogger("articlebot").getEffectiveLevel() == logging.INFO
    _main(capsys, "list", "--data-dir", str(data))
    assert logging.getLogger("articlebot").getEffectiveLevel() == logging.WARNING
    # Before the command, as always; a -v there is not undone by none after it.
    _main(capsys, "--data-dir", str(data), "-v", "list")
    assert logging.getLogger("articlebot").getEffectiveLevel() == logging.INFO
    parsed = cli.build_parser().parse_args(["feeds", "list", "--config", "x.toml", "-vv"])
    assert parsed.config == "x.toml" and parsed.verbose == 2


def test_model_that_is_not_installed_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ARTICLEBOT_CONFIG", raising=False)
    config = tmp_path / "model.toml"
    # A hub model needs backend sentence-transformers (the default USE bundles its weights).
    config.write_text('[embedding]\nbackend = "sentence-transformers"\nmodel = "no-such-org/no-such-model"\n')
    data = tmp_path / "data"
    monkeypatch.setattr("sys.stdin", io.StringIO("Wie oft fährt die Fähre?\n"))
    KnowledgeBase(IndexSettings(data_dir=str(data))).close()  # an empty database: the commands get to the model
    for argv in (["search", "Fähre"], ["ask", "Wie oft fährt die Fähre?"], ["stats"], ["chat"]):
        err = _one_line_error(_main(capsys, "--config", str(config), "--data-dir", str(data), *argv))
        assert "[embedding] model 'no-such-org/no-such-model' is not installed" in err, argv
    path = tmp_path / "a.txt"
    path.write_text(f"Titel\n\n{SAMPLE}\n")
    _one_line_error(_main(capsys, "--config", str(config), "--data-dir", str(data), "add", str(path)))
    assert _main(capsys, "--data-dir", str(data), "list", "--json").out == ""


def test_settings_that_cannot_work_together_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ARTICLEBOT_CONFIG", raising=False)
    config = tmp_path / "use.toml"
    config.write_text('[embedding]\nbackend = "use-multilingual"\nmodel = "some/model"\n')
    KnowledgeBase(IndexSettings(data_dir=str(tmp_path / "data"))).close()
    argv = ["--config", str(config), "--data-dir", str(tmp_path / "data"), "search", "Fähre"]
    assert "embedding.model must be empty with backend = 'use-multilingual'" in _one_line_error(_main(capsys, *argv))


def test_a_bug_keeps_its_traceback(run, monkeypatch):
    def broken(args, config):
        raise RuntimeError("a bug, not a user mistake")

    monkeypatch.setitem(cli.HANDLERS, "stats", broken)
    KnowledgeBase(IndexSettings(data_dir=str(run.data_dir))).close()
    with pytest.raises(RuntimeError, match="a bug"):
        run("stats")


def _closed_pipe_run(data_dir: Path, *argv: str, buffered: bool) -> subprocess.CompletedProcess:
    """``articlebot ARGV | head`` after head has gone: stdout is a pipe whose reader is closed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("ARTICLEBOT_CONFIG", None)
    if buffered:  # then the first write fails only when Python flushes stdout
        env.pop("PYTHONUNBUFFERED")
    try:
        return subprocess.run(
            [sys.executable, "-m", "bot", "--data-dir", str(data_dir), *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=data_dir.parent,
            timeout=300,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    ("argv", "buffered"),
    [(["list"], True), (["list"], False), (["list", "--json"], False), (["ask", "Wie oft fährt die Fähre?"], True)],
)
def test_closed_pipe_exits_quietly(run, one_article, argv, buffered):
    result = _closed_pipe_run(run.data_dir, *argv, buffered=buffered)
    assert result.stderr == ""
    assert result.returncode in (0, 141)


# --- -v tells what happened --------------------------------------------------------------------------


def test_verbose_ask_and_search_show_passages_sentences_relevance_and_timings(run, one_article, caplog, embedder):
    quiet = run("ask", "Wie oft fährt die elektrische Fähre in Lindholm?")
    assert "alle 20 Minuten" in quiet.out
    assert not [r for r in caplog.records if r.name == "articlebot" and r.levelname == "INFO"]
    caplog.clear()
    result = run("-v", "ask", "Wie oft fährt die elektrische Fähre in Lindholm?")
    assert result.out == quiet.out  # the answer itself is unchanged
    log = caplog.text
    assert "1 passage considered" in log
    assert "#1 Neue Fähre für Lindholm (passage 1 of 1, id " in log
    assert "* " in log and "Sie fährt alle 20 Minuten." in log  # the quoted sentence, marked
    # The threshold is the calibrated one of the default model ([answer] min_relevance = "auto").
    needed = calibration.load(embedder.model_id).min_relevance
    assert "relevance " in log and f"(needed: {needed:.3f}): answered" in log
    assert "timings: search " in log and "sentence scoring and answer" in log and "total" in log
    caplog.clear()
    run("-v", "search", "Fähre")
    assert "search 'Fähre': " in caplog.text and "(passage 1 of 1, id " in caplog.text


def test_verbose_add_tells_what_was_extracted(run, tmp_path, caplog):
    path = tmp_path / "faehre.txt"
    path.write_text(f"Neue Fähre für Lindholm\n\n{SAMPLE}\n")
    result = run("-v", "add", str(path), "--published", "2025-06-01")
    assert result.out == "added #1: Neue Fähre für Lindholm (1 passage)\n"
    assert "added #1 'Neue Fähre für Lindholm': published 2025-06-01, language de, 1 passage" in caplog.text
    assert "timings: reading " in caplog.text


def test_verbose_keeps_libraries_at_warning_and_vv_opens_them(run, one_article):
    run("-v", "list")
    assert logging.getLogger("articlebot").getEffectiveLevel() == logging.INFO
    assert logging.getLogger("sentence_transformers").getEffectiveLevel() == logging.WARNING
    run("-vv", "list")
    assert logging.getLogger("sentence_transformers").getEffectiveLevel() == logging.DEBUG
    run("list")
    assert logging.getLogger("articlebot").getEffectiveLevel() == logging.WARNING


# --- progress on long work ---------------------------------------------------------------------------


def test_import_and_reindex_progress_without_a_terminal_is_plain_lines(run, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "PROGRESS_EVERY_SECONDS", 0.0)
    path = _jsonl(
        tmp_path / "a.jsonl", [json.dumps({"text": f"Text Nummer {i} über den Hafen." + FILLER}) for i in range(4)]
    )
    result = run("import", path)
    assert result.out == "imported 4 articles, 0 already present, 0 rejected\n"
    lines = result.err.splitlines()
    assert lines[0].startswith("importing: 1/4 articles, ") and "s left" in lines[0]
    assert "\r" not in result.err and len(lines) == 3  # no line for the last one: the summary follows
    reindexed = run("reindex", "--rechunk")
    assert reindexed.code == 0 and "\r" not in reindexed.err
    assert reindexed.out == "index rebuilt: 4 vectors (flat), 4 passages analysed\n"
    assert [line.split(",")[0] for line in reindexed.err.splitlines()] == [
        "re-indexing: 1/4 articles",
        "re-indexing: 2/4 articles",
        "re-indexing: 3/4 articles",
    ]


def _articles_in(data_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True, timeout=1)) as db:
        return db.execute("SELECT count(*) FROM articles").fetchone()[0]


def test_ctrl_c_during_import_says_what_was_added_and_the_same_import_continues(run, tmp_path):
    texts = [
        # 1,200: the default USE imports ~70 articles a second, so the Ctrl-C must land well before the end
        f"Meldung {i}: Der Hafen von Quillsby meldet {i} neue Liegeplätze für Segelboote." + FILLER
        for i in range(1200)
    ]
    path = _jsonl(
        tmp_path / "many.jsonl", [json.dumps({"title": f"Hafen {i}", "text": t}) for i, t in enumerate(texts)]
    )
    KnowledgeBase(IndexSettings(data_dir=str(run.data_dir))).close()  # the database, so its count can be watched
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("ARTICLEBOT_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "--data-dir", str(run.data_dir), "import", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
        # A test run started in the background by a shell without job control has SIGINT ignored, and
        # the child would inherit that: give it the default a terminal's Ctrl-C meets.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    # A plain count: cheaper than run.counts() with its integrity check, so the Ctrl-C lands early.
    while _articles_in(run.data_dir) < 16 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    added = run.counts()["articles"]
    assert 16 <= added < 1200
    assert err.strip().endswith(
        f"articlebot: interrupted after adding {added} articles; run the same import again to continue "
        "(articles already present are skipped)"
    )
    assert run.counts()["integrity"] == ZERO_INTEGRITY
    again = run("import", path)
    assert again.out == f"imported {1200 - added} articles, {added} already present, 0 rejected\n"


# --- help, stats, empty input, several questions -----------------------------------------------------


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ("add", ["--title", "--url", "pbpaste | articlebot add -"]),
        ("import", [".jsonl", ".csv", "again"]),
        ("list", ["--json"]),
        ("show", ["#12"]),
        ("remove", ["articlebot remove 12"]),
        ("reindex", ["--rechunk"]),
        ("stats", ["/stats"]),
        ("search", ["articlebot search -", "stdin"]),
        ("ask", ["articlebot ask -", "stdin", "-v"]),
        ("demo", ["sample"]),
        ("run", ["TELEGRAM_BOT_TOKEN"]),
        ("chat", ["'.'", "number"]),
        ("migrate", ["--to", "postgresql://", "again", "password_env"]),
    ],
)
def test_every_command_help_has_a_description_options_and_an_example(capsys, command, mentions):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert description.strip() and description.strip().endswith(".")
    assert "examples:\n  articlebot" in text or "examples:\n  TELEGRAM" in text or "examples:\n  pbpaste" in text
    options = text.split("options:\n")[1].split("\n\n")[0]
    for entry in re.split(r"\n(?=  -)", options):  # an option's line and its wrapped help lines
        signature = re.match(r"\s*(-\S+(?: [A-Z_]+)?(?:, -\S+(?: [A-Z_]+)?)*)", entry)
        assert signature and entry[signature.end() :].strip(), f"{command}: unexplained option {entry!r}"
    for mention in mentions:
        assert mention in text, (command, mention)
    assert command in cli.build_parser().format_help()


@pytest.mark.parametrize(
    ("action", "mentions"),
    [("add", ["url", "refused"]), ("list", ["--json"]), ("remove", ["id", "feeds list"]), ("poll", ["cron"])],
)
def test_every_feeds_action_help_describes_it_and_its_arguments(capsys, action, mentions):
    with pytest.raises(SystemExit) as done:
        cli.main(["feeds", action, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.split("\n\n")[1].strip().endswith(".")
    assert f"examples:\n  articlebot feeds {action}" in text
    sections = [
        text.split(name)[1].split("\n\n")[0] for name in ("positional arguments:\n", "options:\n") if name in text
    ]
    for block in sections:
        for entry in re.split(r"\n(?=  \S)", block):  # an argument's line and its wrapped help lines
            signature = re.match(r"\s*(\S+(?:, \S+)*)", entry)
            assert signature and entry[signature.end() :].strip(), f"feeds {action}: unexplained {entry!r}"
    for mention in mentions:
        assert mention in text, (action, mention)
    with pytest.raises(SystemExit):
        cli.main(["feeds", "--help"])
    listing = capsys.readouterr().out
    assert re.search(rf"\n    {action} +[A-Z]\w", listing), f"feeds --help: {action} has no description"


def test_stats_shows_the_chats_index_facts(run, one_article):
    result = run("stats")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[:2] == ["Articles: 1", "Passages: 1"]
    assert lines[2].startswith("Model: ") and lines[3].startswith("Index: flat, 1 (")
    assert lines[4].startswith("Database: ") and lines[5] == "Answers: 0 (👍 0, 👎 0)"
    assert lines[6].startswith("Storage: sqlite, ") and lines[6].endswith("articlebot.db")
    assert lines[7].startswith("Data dir: ")
    facts = json.loads(run("stats", "--json").out)
    assert facts["articles"] == 1 and facts["index"]["vectors"] == 1 and facts["answers"] == 0


@pytest.mark.parametrize(("command", "what"), [("search", "query"), ("ask", "question")])
def test_empty_query_or_question_is_refused(run, one_article, command, what):
    for value in ("", "   "):
        assert f"the {what} is empty" in _one_line_error(run(command, value))


def test_ask_from_stdin_repeats_each_question_above_its_answer(run, one_article, monkeypatch):
    monkeypatch.setattr(
        "sys.stdin", io.StringIO("Wie oft fährt die elektrische Fähre in Lindholm?\n\nWer gewann 1998 die Tour?\n")
    )
    out = run("ask", "-").out
    first, second = out.split("\n\n> ")
    assert first.startswith("> Wie oft fährt die elektrische Fähre in Lindholm?\n") and "alle 20 Minuten" in first
    assert second.startswith("Wer gewann 1998 die Tour?\nDazu habe ich in den Artikeln nichts gefunden.")


def test_a_long_question_from_stdin_is_echoed_shortened(run, one_article, monkeypatch):
    question = "Wie oft fährt die Fähre? " + "Bitte genau. " * 100
    monkeypatch.setattr("sys.stdin", io.StringIO(question + "\n"))
    echo = run("ask", "-").out.splitlines()[0]
    assert echo.startswith("> Wie oft fährt die Fähre? Bitte genau.") and len(echo) < 260
    assert echo.endswith(f"… ({len(question.strip()):,} characters)")


def test_search_from_stdin_shows_each_query_above_its_passages(run, one_article, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Fähre Lindholm\nxyzzy\n"))
    out = run("search", "-").out
    first, second = out.split("\n\n> ")
    assert first.startswith("> Fähre Lindholm\n1. [") and "(passage 1 of 1)" in first
    assert second.startswith("xyzzy\n")


def test_verbose_import_tells_what_each_line_became(run, tmp_path, caplog):
    article = {"title": "Hafen", "text": "Der Hafen meldet neue Liegeplätze." + FILLER, "published": "2025-05-02"}
    path = _jsonl(tmp_path / "one.jsonl", [json.dumps(article)])
    assert run("-v", "import", path).code == 0
    assert "line 1: added #1 'Hafen': published 2025-05-02, language de, 1 passage" in caplog.text
    assert "import took " in caplog.text


# --- run: Telegram unreachable or a token that cannot be one ------------------------------------------

TOKEN = "7373737373:AAFcliCliCliCliCliCliCliCliCliCli0003"


@pytest.fixture
def run_bot_cli(run, tmp_path, monkeypatch):
    """``articlebot run`` in-process with [telegram] base_url; restores what run_bot changes in the process."""
    import gc

    interval = sys.getswitchinterval()

    def start(base_url: str, token: str) -> Result:
        config = tmp_path / "telegram.toml"
        config.write_text(f'[telegram]\nbase_url = "{base_url}"\n', encoding="utf-8")
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", token)
        return run("run", config=str(config))

    yield start
    sys.setswitchinterval(interval)
    gc.unfreeze()


def _loopback_fetch_config(tmp_path: Path) -> Path:
    """A config that may fetch from loopback, and gives up quickly."""
    config = tmp_path / "private.toml"
    config.write_text("[fetch]\nallow_private_addresses = true\ntimeout = 1\n")
    return config


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    return port


def test_run_when_telegram_cannot_be_reached_is_one_line_without_the_token(run_bot_cli):
    port = _closed_port()
    err = _one_line_error(run_bot_cli(f"http://127.0.0.1:{port}/bot", TOKEN))
    assert err.startswith(f"articlebot: cannot reach Telegram at 127.0.0.1:{port}: ")
    assert err.rstrip().endswith("; check the token, [telegram] base_url and the network")
    assert TOKEN not in err and TOKEN.split(":")[1] not in err


@pytest.mark.parametrize("token", ["AAFnoDigitsHere", "987654", "987654:", "abc:def", "98:has space", "98:a/b"])
def test_run_refuses_a_malformed_token_before_any_request(run_bot_cli, token):
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        err = _one_line_error(run_bot_cli(f"http://127.0.0.1:{port}/bot", token))
        assert "the Telegram bot token is malformed" in err and token not in err
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # nobody connected
            listener.accept()
    finally:
        listener.close()


def test_run_with_a_well_formed_token_reaches_the_bot_api(run_bot_cli):
    from botapi_server import BotApiServer

    api = BotApiServer("5555555555:AAFtheRightOneTheRightOneTheRight55").start()
    try:
        err = _one_line_error(run_bot_cli(api.base_url, TOKEN))  # well formed, but not this bot's
    finally:
        api.stop()
    assert "Telegram rejected the bot token" in err and TOKEN not in err


def test_min_relevance_above_one_is_a_config_error_naming_the_key(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ARTICLEBOT_CONFIG", raising=False)
    config = tmp_path / "strict.toml"
    config.write_text("[answer]\nmin_relevance = 1.5\n")
    data = tmp_path / "data"
    err = _one_line_error(_main(capsys, "--config", str(config), "--data-dir", str(data), "ask", "Fähre?"), code=2)
    assert err == f"articlebot: config error: {config}: answer.min_relevance: must be between 0 and 1, not 1.5\n"
    assert not data.exists()


# --- stats names the configured model before any vector is stored -------------------------------------


def test_stats_without_articles_names_the_configured_model(run, one_article, embedder):
    run("remove", "1")
    result = run("stats")
    assert result.code == 0 and result.out.startswith("Articles: 0\n")
    assert f"Model: {embedder.model_id}\n" in result.out and "MiniLM" not in result.out
    assert embedder.model_id.startswith("google/universal-sentence-encoder-multilingual-3")
    assert json.loads(run("stats", "--json").out)["model"] == embedder.model_id


@pytest.mark.parametrize(
    ("embedding", "named"),
    [
        (EmbeddingSettings(), "google/universal-sentence-encoder-multilingual-3"),
        (EmbeddingSettings(backend="sentence-transformers"), "sentence-transformers/all-MiniLM-L6-v2"),
        (EmbeddingSettings(backend="sentence-transformers", model="some-org/some-model"), "some-org/some-model"),
    ],
)
def test_stats_of_an_empty_store_names_the_model_without_loading_it(tmp_path, embedding, named):
    kb = KnowledgeBase(IndexSettings(data_dir=str(tmp_path / "data"), embedding=embedding))
    try:
        assert kb.stats()["model"] == named
        assert kb._embedder is None  # named from the settings, not by loading the model
    finally:
        kb.close()


# --- demo keeps the fictional samples out of the configured data dir ----------------------------------


def test_demo_without_data_dir_uses_its_own_and_leaves_the_configured_one_untouched(
    run, one_article, tmp_path, capsys, monkeypatch
):
    before = run.counts()
    stamp = {p.name: p.stat().st_mtime_ns for p in run.data_dir.iterdir()}
    config = tmp_path / "real.toml"
    config.write_text(f'[storage]\ndata_dir = "{run.data_dir}"\n', encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = _main(capsys, "--config", str(config), "demo", "Who led the bumblebee study?")
    assert result.code == 0, result
    assert result.out.startswith("8 articles in data-demo (8 sample articles added now)")
    assert "Imogen Threlkeld" in result.out
    assert (work / "data-demo" / "articlebot.db").is_file()
    assert run.counts() == before
    assert {p.name: p.stat().st_mtime_ns for p in run.data_dir.iterdir()} == stamp
    # A PostgreSQL store is not touched either (this one does not even exist).
    config.write_text('[storage]\nengine = "postgres"\ndsn = "postgresql://nobody@127.0.0.1:1/none"\n')
    again = _main(capsys, "--config", str(config), "demo", "Who led the bumblebee study?")
    assert again.code == 0 and again.out.startswith("8 articles in data-demo (0 sample articles added now)")


def test_demo_with_data_dir_uses_that(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("demo", "Who led the bumblebee study?")
    assert result.out.startswith(f"8 articles in {run.data_dir} ")
    assert run.counts()["articles"] == 8 and not (tmp_path / "data-demo").exists()


# --- a data dir without a database: commands that need one create nothing ----------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["list"], ["list", "--json"], ["show", "1"], ["search", "Fähre"], ["ask", "Fähre?"], ["stats"],
        ["remove", "1"], ["update", "1"], ["reindex"], ["feeds", "list"], ["feeds", "remove", "1"],
        ["feeds", "poll"],
    ],
)  # fmt: skip
def test_reading_a_data_dir_without_a_database_is_one_line_and_creates_nothing(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.delenv("ARTICLEBOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    for typo in (tmp_path / "typo", tmp_path):  # a directory that does not exist, and one without a database
        err = _one_line_error(_main(capsys, "--data-dir", str(typo), *argv))
        assert err == (
            f"articlebot: no knowledge base in {typo} yet: add articles with 'articlebot add', "
            "or check --data-dir or [storage] data_dir in your config\n"
        )
    assert list(tmp_path.iterdir()) == []


def test_writing_commands_still_create_the_database(run, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert run("chat").code == 0
    assert (run.data_dir / "articlebot.db").is_file()
    assert run("list").out.startswith("no articles yet")


# --- add: what a missing path was meant to be; stdin from a terminal -----------------------------------


def test_add_of_a_path_that_names_no_file_says_what_it_is(run, one_article, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = run.counts()
    cases = [
        ("example.org/article", "no such file: example.org/article (a link needs http:// or https://)"),
        ("www.example.org/a/b.html", "no such file: www.example.org/a/b.html (a link needs http:// or https://)"),
        ("missing-notes.txt", "no such file: missing-notes.txt"),
        ("notes/missing.md", "no such file: notes/missing.md"),
        ("./missing.md", "no such file: ./missing.md"),
        (str(tmp_path), f"{tmp_path} is a directory: give a file"),
        ("/tmp", "/tmp is a directory: give a file"),
    ]
    for source, message in cases:
        assert _one_line_error(run("add", source)) == f"articlebot: {message}\n", source
    assert run.counts() == before


def test_add_from_a_terminal_says_how_to_end_and_a_pipe_gets_no_hint(run, monkeypatch):
    main, side = os.openpty()
    with open(side, "rb", buffering=0) as raw, io.TextIOWrapper(io.BufferedReader(raw)) as terminal:
        os.write(main, f"Neue Fähre für Lindholm\n{SAMPLE}\n".encode() + b"\x04")  # Ctrl-D ends the input
        monkeypatch.setattr("sys.stdin", terminal)
        result = run("add", "-")
    os.close(main)
    assert result.code == 0 and result.out.startswith("added #1: Neue Fähre für Lindholm"), result
    assert result.err == "reading the article from standard input; end with Ctrl-D\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(f"Zweiter Artikel\n{SAMPLE.replace('Juni', 'Juli')}\n"))
    piped = run("add", "-")
    assert piped.code == 0 and piped.err == ""


# --- what a new admin meets on the command line ------------------------------------------------------


def test_list_marks_a_shortened_title(run, tmp_path):
    """A title cut at 70 characters without a mark read as a typo ("… mit Ernteausfälle")."""
    long_title = "Hitzewelle im Landkreis Hollerau – Landwirte rechnen mit Ernteausfällen im Herbst"
    path = tmp_path / "hitze.txt"
    path.write_text(f"{long_title}\n\n{SAMPLE}\n")
    assert run("add", str(path)).code == 0
    (line,) = run("list").out.splitlines()
    assert f"  {long_title[:69]}…  (1 passage)" in line, line


def test_update_failure_names_the_article(run, one_article, tmp_path):
    port = _closed_port()
    config = _loopback_fetch_config(tmp_path)
    path = tmp_path / "linked.txt"
    path.write_text(f"Wasser wird teurer\n\nDer Kubikmeter kostet ab April mehr. {FILLER}\n")
    assert run("add", str(path), "--url", f"http://127.0.0.1:{port}/wasser").code == 0
    before = run.counts()
    err = _one_line_error(run("update", "2", config=str(config)))
    assert err.startswith(f"articlebot: #2 not updated: cannot fetch http://127.0.0.1:{port}/wasser"), err
    # A reason that names the article already is not prefixed again.
    assert _one_line_error(run("update", "1")) == "articlebot: article #1 has no http(s) URL to fetch again\n"
    assert run.counts() == before


def test_verbose_timings_do_not_count_loading_the_model_as_the_first_search(
    monkeypatch, capsys, caplog, embedder, tmp_path
):
    """The model's weights load at its first query: -v once reported that as a 750 ms search, and ask's
    "sentence scoring and answer" went negative when the warm-up search was counted as the question's."""
    from index.embedding import load_embedder

    path = tmp_path / "faehre.txt"
    path.write_text(f"Neue Fähre für Lindholm\n\n{SAMPLE}\n")
    adding = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    try:
        assert adding("add", str(path)).code == 0
    finally:
        adding.close()
    asking = CLI(monkeypatch, capsys, load_embedder(EmbeddingSettings()), tmp_path / "data")  # not used yet
    try:
        caplog.clear()
        assert asking("-v", "ask", "Wie oft fährt die Fähre?").code == 0
    finally:
        asking.close()
    ready = int(re.search(r"model and index ready in (\d+) ms", caplog.text).group(1))
    timings = re.search(r"timings: search (\d+) ms, sentence scoring and answer (-?\d+) ms", caplog.text)
    search, rest = int(timings.group(1)), int(timings.group(2))
    assert rest >= 0 and search < ready, caplog.text
