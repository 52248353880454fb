"""Run the ``articlebot`` CLI in-process on the session's model (a subprocess would load it again)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from bot import cli
from index.kb import DB_FILE, KnowledgeBase
from index.store import Store


@dataclass
class Result:
    code: int
    out: str
    err: str


class CLI:
    def __init__(self, monkeypatch, capsys, embedder, data_dir):
        self.capsys = capsys
        self.data_dir = data_dir
        self.opened: list[KnowledgeBase] = []

        def open_kb(config):
            kb = KnowledgeBase(config.index_settings(), embedder=embedder)
            self.opened.append(kb)
            return kb

        monkeypatch.setattr(cli, "open_kb", open_kb)
        monkeypatch.delenv("ARTICLEBOT_CONFIG", raising=False)

    def __call__(self, *argv: str, config: str | None = None) -> Result:
        args = ["--data-dir", str(self.data_dir)]
        if config:
            args = ["--config", config, *args]
        self.capsys.readouterr()
        code = cli.main([*args, *argv])
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def counts(self) -> dict:
        store = Store(Path(self.data_dir) / DB_FILE)
        try:
            return {**store.counts(), "version": store.version(), "integrity": store.integrity()}
        finally:
            store.close()

    def close(self) -> None:
        for kb in self.opened:
            with contextlib.suppress(Exception):
                kb.store.close()
