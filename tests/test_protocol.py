"""The button protocol and command lists are defined once (bot/protocol.py) and both sides speak it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from telegram import Update

from bot import protocol
from bot.telegram_app import ADMIN_MENU, MENU, lane_of

BOT = Path(__file__).resolve().parent.parent / "bot"


@pytest.mark.parametrize(
    ("data", "kind", "args"),
    [
        (protocol.quote(12, 3), protocol.QUOTE, ("12", "3")),
        (protocol.vote(12, up=True), protocol.VOTE, ("12", "+")),
        (protocol.vote(12, up=False), protocol.VOTE, ("12", "-")),
        (protocol.page(20, admin_view=False), protocol.SOURCES_PAGE, ("20",)),
        (protocol.page(20, admin_view=True), protocol.LIST_PAGE, ("20",)),
        (protocol.remove(7), protocol.REMOVE, ("7",)),
        (protocol.keep(7), protocol.KEEP, ("7",)),
    ],
)
def test_every_button_the_bot_makes_reads_back(data, kind, args):
    assert len(data.encode()) <= 64, "Telegram's limit for callback data"
    assert protocol.parse_button(data) == protocol.ButtonData(kind, args)


@pytest.mark.parametrize("data", ["", "q:1", "q:1:2:3", "fb:1:x", "fb:1", "zz:1", "rm", "src:1:2"])
def test_data_the_bot_never_sent_is_refused(data):
    assert protocol.parse_button(data) is None


def test_the_command_lists_agree():
    assert protocol.ADMIN_JOB_COMMANDS <= protocol.ADMIN_ONLY <= protocol.COMMANDS
    assert set(protocol.ALIASES.values()) <= protocol.COMMANDS
    for commands in MENU.values():
        assert {name for name, _ in commands} <= protocol.COMMANDS - protocol.ADMIN_ONLY
    for commands in ADMIN_MENU.values():
        assert {name for name, _ in commands} <= protocol.ADMIN_ONLY
    assert ADMIN_MENU.keys() == MENU.keys()


def _update(data: dict) -> Update:
    return Update.de_json({"update_id": 1, **data}, None)


def test_lanes_follow_the_protocol():
    user = {"id": 5, "is_bot": False, "first_name": "A"}
    chat = {"id": 5, "type": "private"}

    def press(data: str) -> Update:
        return _update({"callback_query": {"id": "1", "from": user, "chat_instance": "c", "data": data}})

    def message(text: str) -> Update:
        return _update({"message": {"message_id": 1, "date": 0, "chat": chat, "from": user, "text": text}})

    assert lane_of(press(protocol.remove(3))) == "admin"
    assert lane_of(press(protocol.keep(3))) == "other"
    assert lane_of(press(protocol.quote(1, 1))) == "other"
    for name in protocol.ADMIN_JOB_COMMANDS:
        assert lane_of(message(f"/{name} x")) == "admin"
    assert lane_of(message("/list")) == "other"
    assert lane_of(message("/hilfe")) == "other"


def test_no_module_but_the_protocol_spells_button_data():
    prefixes = tuple(f"{kind}:" for kind in protocol.ARITY)
    offenders = []
    for path in sorted(BOT.glob("*.py")):
        if path.name == "protocol.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                text = str(node.values[0].value)
            if text is not None and text.startswith(prefixes):
                offenders.append(f"{path.name}:{node.lineno}: {text!r}")
    assert offenders == [], f"button data spelled outside bot/protocol.py: {offenders}"
