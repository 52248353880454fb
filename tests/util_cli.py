"""Run the ``articlebot`` CLI in-process on the session's model (a subprocess would load it again)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from bot import cli
from index.kb import KnowledgeBase
from index.settings import IndexSettings, StorageSettings


@dataclass
class Result:
    code: int
    out: str
    err: str


class CLI:
    """``storage``: run every command on that engine (a config file naming it), as a deployment would."""

    def __init__(self, monkeypatch, capsys, embedder, data_dir, storage: StorageSettings | None = None):
        self.capsys = capsys
        self.data_dir = data_dir
        self.storage = storage
        self.opened: list[KnowledgeBase] = []
        self.config: str | None = None
        if storage is not None and storage.engine != "sqlite":
            path = Path(data_dir).parent / f"{Path(data_dir).name}-storage.toml"
            path.write_text(
                f'[storage]\nengine = "{storage.engine}"\ndsn = "{storage.dsn}"\n'
                f'vector_search = "{storage.vector_search}"\n',
                encoding="utf-8",
            )
            self.config = str(path)

        def open_kb(config):
            kb = KnowledgeBase(config.index_settings(), embedder=embedder)
            self.opened.append(kb)
            return kb

        monkeypatch.setattr(cli, "open_kb", open_kb)
        monkeypatch.delenv("ARTICLEBOT_CONFIG", raising=False)

    def __call__(self, *argv: str, config: str | None = None) -> Result:
        args = ["--data-dir", str(self.data_dir)]
        config = config or self.config
        if config:
            args = ["--config", config, *args]
        self.capsys.readouterr()
        code = cli.main([*args, *argv])
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def counts(self) -> dict:
        from util_kb import open_store

        settings = IndexSettings(data_dir=str(self.data_dir))
        if self.storage is not None:
            settings.storage = self.storage
        store = open_store(settings)
        try:
            return {**store.counts(), "version": store.version(), "integrity": store.integrity()}
        finally:
            store.close()

    def close(self) -> None:
        for kb in self.opened:
            with contextlib.suppress(Exception):
                kb.store.close()
