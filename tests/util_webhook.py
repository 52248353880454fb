"""``articlebot run`` in webhook mode in a subprocess, and a way to POST updates to it as Telegram does.

Used by tests/test_two_processes.py and bench/processes.py (several processes on one database).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from botapi_server import BotApiServer

from bot.telegram_app import webhook_secret

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 180.0  # each process loads the model: slow on a busy machine
WAIT = 90.0
HOOK = "/hook/two"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class WebhookBot:
    """``articlebot run`` in webhook mode on its own port, in a subprocess."""

    def __init__(self, api: BotApiServer, config: Path, port: int, log: Path, token: str):
        self.api, self.config, self.port, self.log, self.token = api, config, port, log, token
        # No [telegram] secret_token in the configs: every process derives the same one from the token.
        self.secret = webhook_secret(token)
        self.proc: subprocess.Popen | None = None

    def start(self) -> WebhookBot:
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": self.token, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "--config", str(self.config), "-v", "run", "--port", str(self.port)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        return self

    def wait_ready(self) -> None:
        self.api.wait_for(
            lambda: listening(self.port) or self.proc.poll() is not None, START_TIMEOUT, "the webhook server"
        )
        assert self.proc.poll() is None, self.log.read_text()

    def post(self, update: dict) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{HOOK}",
            data=json.dumps(update).encode(),
            headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": self.secret},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
