"""What a new admin met following the README from top to bottom, kept from coming back."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from newsroom import add_ferry_and_solar


def test_stats_counts_the_database_while_it_is_open(kb, settings):  # README, "Using it": /stats in the chat
    # A running bot or chat holds its writes in the WAL until it closes; the size it shows must count them,
    # not the near-empty main file (the terminal chat said "Database: 0.0 MB" over the eight samples).
    add_ferry_and_solar(kb)
    while_open = kb.stats()["db_bytes"]
    kb.close()
    on_disk = (Path(settings.data_dir) / "articlebot.db").stat().st_size
    assert while_open >= on_disk > 0


def test_chat_add_of_a_local_file_reads_it_rather_than_downloading_it(kb, tmp_path):  # README, "The Telegram bot"
    # '/add PATH' in the terminal chat reads a file from disk; "Downloading report.md …" suggested a network.
    from bot.answer import Answerer
    from bot.chat import CONSOLE_USER_ID, run_chat
    from bot.config import AnswerSettings, TelegramSettings
    from bot.conversation import Conversation
    from bot.feedback import FeedbackStore
    from index.settings import FetchSettings

    report = tmp_path / "report.md"
    report.write_text(
        "# Die Fähre nach Quernsee fährt länger\n\nAb dem ersten Mai fährt die Fähre zwischen Lindholm und Quernsee "
        "bis Mitternacht, zwei Stunden länger als bisher. Der Betreiber begründet das mit der großen Nachfrage "
        "im vergangenen Sommer, als viele Gäste die letzte Fahrt um zweiundzwanzig Uhr verpassten.\n",
        encoding="utf-8",
    )
    feedback = FeedbackStore(kb.answer_log())
    conversation = Conversation(
        kb, Answerer(kb, AnswerSettings()), feedback, TelegramSettings(admins=[CONSOLE_USER_ID]), FetchSettings()
    )
    conversation.origin = "chat"
    try:
        for language, reading in (("en", "Reading report.md …"), ("de", "Lese report.md …")):
            out, err = io.StringIO(), io.StringIO()
            assert run_chat(conversation, [f"/add {report}\n"], out, err, language) == 0
            shown = err.getvalue()  # progress lines go to stderr
            assert reading in shown and "ownload" not in shown and "herunter" not in shown, shown
    finally:
        feedback.close()
    assert kb.counts()["articles"] == 1


@pytest.mark.parametrize("script", ["bench/answers.py", "bench/scale.py"])
def test_bench_scripts_the_readme_names_run_as_files(script, tmp_path):  # README, "Answers" and "Scale"
    # The README (and the calibration's log line) say `bench/answers.py --fit`, `bench/scale.py recall-realistic`:
    # run as a file from anywhere, the script must still find the bench package ("No module named 'bench'").
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(root / script), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.startswith("usage: ")
