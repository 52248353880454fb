"""``articlebot chat``: the bot's conversation in the terminal, no token, no network needed.

One line is one message. ``/add`` alone starts a pasted article (first line its title) that ends at a
line holding only ``.`` or at the end of input; ``/add PATH`` adds a local file. Buttons are listed
with numbers: a line with just that number presses one. Works the same with piped input, and the
person at the terminal is an admin.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TextIO

from index.extract import SUPPORTED_SUFFIXES

from .answer_types import NOT_FOUND
from .conversation import Attachment, Button, Conversation, Incoming, Press, Reply, User, para, parse_command
from .render import terminal_text
from .texts import say

CONSOLE_USER_ID = 0
CONSOLE_CHAT_ID = 0
END_OF_TEXT = "."
QUIT = {"/quit", "/exit", "/q"}


def messages(lines: Iterable[str], on_paste: Callable[[], None] | None = None) -> Iterator[str]:
    """Input lines as messages: one per line, except a bare ``/add`` that gathers a pasted article
    (``on_paste`` is told when that starts, so someone at a terminal learns what the next lines are)."""
    lines = iter(lines)
    for line in lines:
        text = line.rstrip("\n")
        if text.strip() == "/add":
            if on_paste is not None:
                on_paste()
            body = []
            for more in lines:
                if more.strip() == END_OF_TEXT:
                    break
                body.append(more.rstrip("\n"))
            yield "/add\n" + "\n".join(body)
        elif text.strip():
            yield text.strip()


def local_file(text: str) -> Attachment | None:
    """``/add PATH`` names a readable local file: the terminal may add files from disk."""
    command = parse_command(text)
    if not command or command[0] != "add" or not command[2] or "\n" in command[2]:
        return None
    path = Path(command[2]).expanduser()
    if "://" in command[2] or not path.is_file():
        return None
    return Attachment(path.name, path.stat().st_size, path.read_bytes, local=True)


class TerminalStream:
    """Prints an answer as a language model writes it. On a terminal ``finish`` wipes it again, since
    the checked answer that follows may differ (markers renumbered, or "not found" after all);
    elsewhere (a pipe, a file) the stream stays and the answer follows after a blank line."""

    def __init__(self, out: TextIO):
        self.out = out
        self.printed = ""
        self.kept = ""  # what stays above the answer (not on a terminal): the reply need not repeat it
        self.tty = bool(getattr(out, "isatty", lambda: False)())

    def __call__(self, text: str) -> None:
        same = 0
        for a, b in zip(self.printed, text, strict=False):
            if a != b:
                break
            same += 1
        # A changed earlier character (rare: a Markdown mark taken out) is not reprinted.
        self.out.write(text[max(same, len(self.printed)) :])
        self.out.flush()
        self.printed = text if len(text) > len(self.printed) else self.printed

    def finish(self) -> None:
        if not self.printed:
            return
        if self.tty:
            width = max(shutil.get_terminal_size().columns, 1)
            rows = sum(max(1, math.ceil(len(line) / width)) for line in self.printed.split("\n"))
            up = f"\x1b[{rows - 1}A" if rows > 1 else ""
            self.out.write(f"\r{up}\x1b[J")
        else:
            self.out.write("\n\n")
            self.kept = self.printed
        self.out.flush()
        self.printed = ""


def unrepeated(replies: list[Reply], kept: str) -> list[Reply]:
    """What follows a model's words left printed above the replies (piped output): a broken-off stream is
    not repeated (its cut-off reply keeps only the note), and "nothing found" says the words did not count."""
    if not kept or not replies:
        return replies
    first = replies[0]
    said = terminal_text(first)
    for language, nothing in NOT_FOUND.items():
        if said.startswith(nothing):  # the words above were the model's, checked and found to cite nothing
            return [Reply([para(say("llm_discarded", language))]), *replies]
    if len(first.blocks) < 2 or first.buttons:
        return replies
    words = " ".join(terminal_text(Reply(first.blocks[:-1])).split())
    if words != " ".join(f"{kept} …".split()):
        return replies
    return [Reply(first.blocks[-1:]), *replies[1:]]


def missing_file(text: str) -> tuple[str, str] | None:
    """(text key, path) when ``/add PATH`` names a file that is absent or a directory; else None."""
    command = parse_command(text)
    if not command or command[0] != "add" or not command[2] or "\n" in command[2] or "://" in command[2]:
        return None
    arg = command[2]
    if not (arg.startswith(("/", "~", "./", "../")) or arg.lower().endswith(SUPPORTED_SUFFIXES)):
        return None  # a short pasted text, not a path: the conversation explains /add
    path = Path(arg).expanduser()
    if path.is_dir():
        return "not_a_file", arg
    return None if path.is_file() else ("no_such_file", arg)


class ChatSession:
    def __init__(self, conversation: Conversation, out: TextIO, err: TextIO, language: str = "en"):
        self.conversation = conversation
        self.out = out
        self.err = err
        self.user = User(CONSOLE_USER_ID, "console", language)
        self.buttons: list[Button] = []

    def greet(self) -> None:
        print(say("chat_greeting", self.user.language), file=self.out)
        print(file=self.out, flush=True)

    def note(self, key: str, **fields: object) -> None:
        """A message of the terminal itself (not of the bot's conversation)."""
        print(say(key, self.user.language, **fields), file=self.out)
        print(file=self.out, flush=True)

    def say(self, text: str) -> list[Reply]:
        """Handle one message (or a button number) and print the replies."""
        if text.isdigit():
            return self.press_number(int(text))
        # The numbers name the buttons of what the last message brought; a new message's reply may have none,
        # and a number typed after it must not press a button of an answer further up (a 👎 recorded unseen).
        self.buttons = []
        missing = missing_file(text)
        if missing:
            self.note(missing[0], path=missing[1])
            return []
        incoming = Incoming(self.user, CONSOLE_CHAT_ID, text, private=True, attachment=local_file(text))
        if incoming.attachment:
            incoming.text = "/add"
        stream = TerminalStream(self.out)
        try:
            replies = self.conversation.handle(incoming, progress=self.progress, on_text=stream)
        finally:
            stream.finish()
        self.show(unrepeated(replies, stream.kept))
        return replies

    def press_number(self, number: int) -> list[Reply]:
        # A bare number is a button press; one that names no button says so rather than become a question.
        if 1 <= number <= len(self.buttons):
            return self.press(self.buttons[number - 1])
        if self.buttons:
            self.note("not_a_button", number=number, count=len(self.buttons))
        else:
            self.note("no_buttons", number=number)
        return []

    def press(self, button: Button) -> list[Reply]:
        pressed = self.conversation.press(Press(self.user, CONSOLE_CHAT_ID, button.data))
        if pressed.notice:
            print(f"({pressed.notice})", file=self.out)
        self.show(pressed.replies)
        return pressed.replies

    def progress(self, text: str) -> None:
        print(f"… {text}", file=self.err, flush=True)

    def show(self, replies: list[Reply]) -> None:
        for reply in replies:
            print(terminal_text(reply), file=self.out)
            if reply.buttons:
                self.buttons = [b for row in reply.buttons for b in row]
                labels = "   ".join(f"{i}) {b.label}" for i, b in enumerate(self.buttons, 1))
                print(f"  {labels}", file=self.out)
            print(file=self.out, flush=True)


def run_chat(
    conversation: Conversation,
    lines: Iterable[str],
    out: TextIO,
    err: TextIO,
    language: str,
    interactive: bool = False,
) -> int:
    """``interactive``: someone types at a terminal (a bare /add then says what to paste; a pipe stays quiet)."""
    session = ChatSession(conversation, out, err, language)
    session.greet()
    on_paste = (lambda: session.note("paste_article")) if interactive else None
    for text in messages(lines, on_paste):
        if text.lower() in QUIT:
            break
        session.say(text)
    return 0


def prompted(stream: TextIO, out: TextIO, prompt: str = "> ") -> Iterator[str]:
    """Lines from an interactive terminal, each after a prompt."""
    while True:
        print(prompt, end="", file=out, flush=True)
        line = stream.readline()
        if not line:
            print(file=out)
            return
        yield line
