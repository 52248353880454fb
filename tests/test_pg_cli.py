"""The ``articlebot`` commands on PostgreSQL: a config naming the database, nothing else changes."""

from __future__ import annotations

import json

import pytest
from util_cli import CLI
from util_kb import ZERO_INTEGRITY

from index.kb import DB_FILE
from index.settings import StorageSettings

FILLER = (
    " Die Verwaltung will die Einwohner in den kommenden Wochen auf mehreren Versammlungen über"
    " die Einzelheiten, die Kosten und den Zeitplan des Vorhabens unterrichten und Fragen beantworten."
)
FERRY = "Die Gemeinde Lindholm setzt ab Juni eine elektrische Fähre ein. Sie fährt alle 20 Minuten." + FILLER
SOLAR = "Auf dem Dach der Grundschule in Quillsby entsteht eine Solaranlage mit 120 Kilowatt Leistung." + FILLER
BRIDGE = "Die Brücke über die Wenne in Ortheim wird ab März für 14 Monate saniert und ist dann gesperrt." + FILLER


@pytest.fixture
def run(monkeypatch, capsys, embedder, tmp_path, pg_dsn):
    # A password in the DSN (the trust-authenticated test server ignores it) that must never be shown.
    dsn = pg_dsn.replace("postgres@", "postgres:hunter2@")
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "data", StorageSettings(engine="postgres", dsn=dsn))
    yield cli
    cli.close()


def test_the_commands_on_postgres(run, tmp_path):
    ferry = tmp_path / "faehre.txt"
    ferry.write_text(f"Neue Fähre für Lindholm\n\n{FERRY}\n")
    result = run("add", str(ferry))
    assert result.code == 0 and result.out.startswith("added #1: Neue Fähre für Lindholm"), result
    assert "already present as #1 (same text)" in run("add", str(ferry)).out
    source = tmp_path / "more.jsonl"
    source.write_text(
        "".join(
            json.dumps({"title": t, "text": x}, ensure_ascii=False) + "\n"
            for t, x in (("Solaranlage für die Grundschule", SOLAR), ("Brücke in Ortheim gesperrt", BRIDGE))
        )
    )
    result = run("import", str(source))
    assert result.code == 0, result
    assert run.counts() == {"articles": 3, "chunks": 3, "embeddings": 3, "version": 3, "integrity": ZERO_INTEGRITY}

    listed = run("list")
    assert listed.code == 0 and all(t in listed.out for t in ("Lindholm", "Grundschule", "Ortheim")), listed
    shown = run("show", "2")
    assert shown.code == 0 and "120 Kilowatt" in shown.out, shown
    found = run("search", "Wie lange ist die Brücke in Ortheim gesperrt?", "--json")
    assert found.code == 0, found
    assert json.loads(found.out.splitlines()[0])["results"][0]["article_id"] == 3
    asked = run("ask", "Wie oft fährt die Fähre in Lindholm?")
    assert asked.code == 0 and "20 Minuten" in asked.out, asked

    assert run("remove", "2").code == 0
    assert run("show", "2").code != 0
    assert "Grundschule" not in run("list").out
    reindexed = run("reindex")
    assert reindexed.code == 0 and "index rebuilt: 2 vectors (pgvector-flat)" in reindexed.out, reindexed
    assert run.counts()["articles"] == 2 and run.counts()["integrity"] == ZERO_INTEGRITY
    assert not (tmp_path / "data" / DB_FILE).exists(), "nothing goes to a SQLite file"
    assert all("hunter2" not in r.out + r.err for r in (listed, shown, found, asked, reindexed))


def test_stats_names_the_engine_and_the_database_without_its_password(run, tmp_path):
    ferry = tmp_path / "faehre.txt"
    ferry.write_text(f"Neue Fähre für Lindholm\n\n{FERRY}\n")
    assert run("add", str(ferry)).code == 0
    result = run("stats")
    assert result.code == 0, result
    assert "Articles: 1" in result.out and "Storage: postgres, user=postgres" in result.out, result.out
    facts = json.loads(run("stats", "--json").out)
    assert facts["engine"] == "postgres" and facts["db_bytes"] > 1_000_000
    assert facts["database"].startswith("user=postgres dbname=")
    assert "hunter2" not in result.out + json.dumps(facts)
