"""What a new admin met following the README from top to bottom, kept from coming back."""

from __future__ import annotations

from pathlib import Path

from newsroom import add_ferry_and_solar


def test_stats_counts_the_database_while_it_is_open(kb, settings):  # README, "Using it": /stats in the chat
    # A running bot or chat holds its writes in the WAL until it closes; the size it shows must count them,
    # not the near-empty main file (the terminal chat said "Database: 0.0 MB" over the eight samples).
    add_ferry_and_solar(kb)
    while_open = kb.stats()["db_bytes"]
    kb.close()
    on_disk = (Path(settings.data_dir) / "articlebot.db").stat().st_size
    assert while_open >= on_disk > 0
