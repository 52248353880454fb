"""The conversation's protocol, defined once: command names, who may use them, the data buttons carry, and how
Telegram counts a message's length.

``conversation.py`` makes and reads these; ``telegram_app.py`` (and the terminal chat) only route them.
Button data is ``kind:arg[:arg]``, at most Telegram's 64 bytes, and is never trusted: a press is
parsed here and admin rights are checked again when it arrives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COMMANDS = frozenset(
    {"start", "help", "ask", "sources", "add", "remove", "list", "stats", "reindex", "update"}
    | {"subscribe", "feeds", "unsubscribe"}
)
ALIASES = {"articles": "sources", "artikel": "sources", "quellen": "sources", "hilfe": "help", "frage": "ask"}
# Commands only admins may use.
ADMIN_ONLY = frozenset({"add", "remove", "list", "stats", "reindex", "update", "subscribe", "feeds", "unsubscribe"})
# Admin commands that are long jobs (they wait for the write lock or fetch pages): they run in a lane of their own.
ADMIN_JOB_COMMANDS = frozenset({"add", "reindex", "remove", "update", "subscribe", "unsubscribe"})

# Button kinds.
QUOTE = "q"  # q:<answer id>:<citation n>: show the quoted passage
VOTE = "fb"  # fb:<answer id>:+ or -: 👍 / 👎
SOURCES_PAGE = "src"  # src:<offset>: a page of /sources
LIST_PAGE = "lst"  # lst:<offset>: a page of the admins' /list
REMOVE = "rm"  # rm:<article id>: confirm a removal
KEEP = "rmx"  # rmx:<article id>: cancel a removal
ADMIN_BUTTONS = frozenset({LIST_PAGE, REMOVE, KEEP})
# Arguments each kind carries.
ARITY = {QUOTE: 2, VOTE: 2, SOURCES_PAGE: 1, LIST_PAGE: 1, REMOVE: 1, KEEP: 1}
UP, DOWN = "+", "-"


@dataclass(frozen=True)
class ButtonData:
    kind: str
    args: tuple[str, ...]


def quote(answer_id: int, n: int) -> str:
    return f"{QUOTE}:{answer_id}:{n}"


def vote(answer_id: int, up: bool) -> str:
    return f"{VOTE}:{answer_id}:{UP if up else DOWN}"


def page(offset: int, admin_view: bool) -> str:
    return f"{LIST_PAGE if admin_view else SOURCES_PAGE}:{offset}"


def remove(article_id: int) -> str:
    return f"{REMOVE}:{article_id}"


def keep(article_id: int) -> str:
    return f"{KEEP}:{article_id}"


def parse_button(data: str) -> ButtonData | None:
    """The kind and arguments of a button's data; None for anything this protocol never sent."""
    kind, _, rest = data.partition(":")
    args = tuple(rest.split(":")) if rest else ()
    if ARITY.get(kind) != len(args):
        return None
    if kind == VOTE and args[1] not in (UP, DOWN):
        return None
    return ButtonData(kind, args)


def is_admin_job(data: str) -> bool:
    """A press that starts a long admin job (confirming a removal)."""
    parsed = parse_button(data)
    return parsed is not None and parsed.kind == REMOVE


def tg_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units). Of HTML, the source's length: never too low."""
    return len(text.encode("utf-16-le")) // 2


def parse_id(value: str) -> int | None:
    """An article or feed id as people type it ("12", "#12"), else None.

    ASCII digits only ("²" is a digit to str.isdigit but not to int()), and at most 18 of them, so any id
    fits SQLite's and PostgreSQL's 64-bit integers.
    """
    value = value.strip().lstrip("#")
    return int(value) if re.fullmatch(r"[0-9]{1,18}", value) and int(value) > 0 else None
