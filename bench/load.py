"""Load through the Bot API test server (issue 7): users asking while an admin imports articles.

    .venv/bin/python -m bench.load [--users 50] [--questions 3] [--articles 200] [--no-write]

The real bot (``articlebot run`` in a subprocess, as deployed) polls ``tests/botapi_server.py`` on
loopback; its data dir starts with the bundled sample articles. Then, at once:

* each of ``--users`` users asks ``--questions`` sample questions (bot/samples/QUESTIONS.md, and
  questions about the articles being imported), each one as soon as the previous one is answered;
* an admin sends ``--articles`` generated short articles (our own text: towns, costs, people made
  up here) as ``/add`` messages in one burst, as if forwarding them.

Measured: the latency of every question (sent → the server stores the answer message), p50/p95/max;
the import's wall time; and the event loop's longest stall in the bot process (its ``LoopWatch``:
a task that sleeps 20 ms and measures how late it wakes, logged when the bot stops). After the bot
has stopped (SIGTERM), every question must have exactly one answer and every article must be in
the database. Writes the "Load (issue 7)" section of BENCHMARKS.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the Bot API server lives with the tests

from botapi_server import BotApiServer  # noqa: E402

TOKEN = "6262626262:AALoadLoadLoadLoadLoadLoadLoadLoad01"
ADMIN_ID = 1
SECTION = "## Load (issue 7)"
STALL_LINE = re.compile(r"event loop: longest stall ([0-9.]+) ms \(own work at most ([0-9.]+) ms\), ([0-9]+) over")
START_TIMEOUT = 300.0

# --- generated articles -----------------------------------------------------------------------

_TOWN_HEADS = "Birken Eichen Linden Tannen Rosen Mühl Sand Stein Wiesen Ahorn Erlen Fichten Buchen Weiden Eschen Moor Heide Falken Otter Kranich".split()  # noqa: E501
_TOWN_TAILS = "feld hausen dorf bach brück au hagen heim stedt wald".split()
_PROJECTS = [
    ("eine neue Grundschule", "die neue Grundschule", "Klassenräume"),
    ("ein Hallenbad", "das Hallenbad", "Schwimmbahnen"),
    ("einen Bürgerpark", "der Bürgerpark", "Bäume"),
    ("eine Feuerwache", "die Feuerwache", "Stellplätze für Fahrzeuge"),
    ("ein Jugendzentrum", "das Jugendzentrum", "Gruppenräume"),
    ("eine Stadthalle", "die Stadthalle", "Sitzplätze"),
    ("einen Radschnellweg", "der Radschnellweg", "Kilometer Strecke"),
    ("ein Seniorenheim", "das Seniorenheim", "Pflegeplätze"),
]
_FIRST = "Anja Bernd Carla Dieter Elif Frank Greta Hakan Ilse Jonas Katrin Lutz Mona Nils Oksana Paul".split()
_LAST = "Albers Brandt Claasen Dorn Ehlers Fuchs Gerdes Hollmann Iversen Janssen Kruse Lorenz".split()
_MONTHS = "Januar Februar März April Mai Juni Juli August September Oktober November Dezember".split()


@dataclass(frozen=True)
class Article:
    text: str  # first line the title
    question: str
    expected: str  # appears verbatim in the article


def generated_article(i: int) -> Article:
    """Article ``i``: a town (unique per i below 200), a project, figures derived from i."""
    town = _TOWN_HEADS[i % len(_TOWN_HEADS)] + _TOWN_TAILS[(i // len(_TOWN_HEADS)) % len(_TOWN_TAILS)]
    if i >= len(_TOWN_HEADS) * len(_TOWN_TAILS):
        town += f" {i // (len(_TOWN_HEADS) * len(_TOWN_TAILS)) + 1}"
    build, subject, unit = _PROJECTS[i % len(_PROJECTS)]
    cost = f"{1 + (i * 37) % 90 / 10:.1f}".replace(".", ",")
    person = f"{_FIRST[i % len(_FIRST)]} {_LAST[(i * 7) % len(_LAST)]}"
    month = _MONTHS[(i * 5) % 12]
    text = (
        f"{town} baut {build}\n\n"
        f"Der Gemeinderat von {town} hat am {1 + i % 28}. {month} beschlossen, {build} zu bauen. "
        f"Die Kosten liegen bei {cost} Millionen Euro, davon übernimmt das Land {20 + i % 50} Prozent.\n\n"
        f"Bürgermeisterin {person} sagte, {subject} solle bis {2027 + i % 4} fertig sein. "
        f"Geplant sind {12 + (i * 13) % 180} {unit}.\n\n"
        f"Eine Bürgerinitiative mit {300 + (i * 29) % 4000} Unterschriften hatte das Vorhaben gefordert. "
        f"Der Baubeginn ist für den {_MONTHS[(i * 5 + 3) % 12]} vorgesehen."
    )
    question = f"Wie viel kostet {subject} in {town}?"
    return Article(text, question, f"{cost} Millionen Euro")


def sample_questions() -> list[tuple[str, str]]:
    lines = (ROOT / "bot" / "samples" / "QUESTIONS.md").read_text(encoding="utf-8").splitlines()
    found = []
    for line in lines:
        parts = [p.strip() for p in line.removeprefix("- ").split("|")]
        if line.startswith("- ") and len(parts) == 3:
            found.append((parts[1], parts[2]))
    return found


# --- the run ----------------------------------------------------------------------------------


@dataclass
class LoadResult:
    users: int
    questions_per_user: int
    articles: int
    latencies: list[float] = field(default_factory=list)
    unanswered: int = 0  # questions whose answer did not come before the deadline
    replies_per_user: list[int] = field(default_factory=list)  # counted after the bot stopped
    correct: int = 0  # answers holding the expected words (a sanity check, not the measure)
    added: int = 0
    import_seconds: float = 0.0
    wall_seconds: float = 0.0
    max_stall_ms: float | None = None  # wall clock: includes the OS running other processes
    max_own_stall_ms: float | None = None  # bounded by the CPU the bot's process got meanwhile
    stalls_over_100ms: int | None = None
    exit_code: int | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def questions(self) -> int:
        return self.users * self.questions_per_user

    @property
    def exactly_once(self) -> bool:
        """Every question answered, and no user got more messages than questions (no repeats)."""
        return self.unanswered == 0 and self.replies_per_user == [self.questions_per_user] * self.users

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else float("nan")


class Inbox:
    """What the bot sends to each user's chat, with the time the server stored it."""

    def __init__(self, api: BotApiServer, admin_chat: int):
        self.boxes: dict[int, queue.Queue[tuple[float, str]]] = {}
        self.admin_chat = admin_chat
        self.admin_done: dict[int, str] = {}  # progress message id → final text
        self.admin_all = threading.Event()
        self.expect_admin = 0
        self._lock = threading.Lock()
        api.listeners.append(self.on_message)

    def box(self, chat_id: int) -> queue.Queue[tuple[float, str]]:
        return self.boxes.setdefault(chat_id, queue.Queue())

    def on_message(self, message: dict) -> None:
        now, chat_id = time.monotonic(), message["chat"]["id"]
        if chat_id == self.admin_chat:
            if message["text"].startswith(("Added #", "Not added")):
                with self._lock:
                    self.admin_done[message["message_id"]] = message["text"]
                    if len(self.admin_done) >= self.expect_admin:
                        self.admin_all.set()
        elif chat_id in self.boxes and not message.get("edits"):
            self.boxes[chat_id].put((now, message["text"]))


class BotProcess:
    def __init__(self, api: BotApiServer, data_dir: Path, runtime: str | None, log_path: Path):
        config = data_dir / "load-config.toml"
        embedding = f'[embedding]\nruntime = "{runtime}"\n\n' if runtime else ""
        config.write_text(
            f'[storage]\ndata_dir = "{data_dir}"\n\n{embedding}'
            f'[telegram]\nbase_url = "{api.base_url}"\nadmins = [{ADMIN_ID}]\npoll_timeout = 5.0\n',
            encoding="utf-8",
        )
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        polls = len(api.calls_to("getUpdates"))
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "--config", str(config), "-v", "run"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        api.wait_for(
            lambda: len(api.calls_to("getUpdates")) > polls or self.proc.poll() is not None,
            START_TIMEOUT,
            "the bot to poll",
        )
        if self.proc.poll() is not None:
            raise RuntimeError(f"the bot did not start:\n{log_path.read_text()[-3000:]}")

    def stop(self, timeout: float = 120.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(30)

    def stalls(self) -> tuple[float | None, float | None, int | None]:
        """The bot's LoopWatch summary: longest stall, longest own stall (ms), stalls over 100 ms."""
        match = STALL_LINE.search(self.log_path.read_text(encoding="utf-8", errors="replace"))
        return (float(match.group(1)), float(match.group(2)), int(match.group(3))) if match else (None, None, None)

    def errors(self) -> list[str]:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return [line for line in lines if " ERROR " in line or " CRITICAL " in line or "Traceback" in line]


def _user_questions(n_users: int, per_user: int, articles: list[Article]) -> list[list[tuple[str, str]]]:
    """Each user's questions: mostly about the samples, every third about an article being imported."""
    samples = sample_questions()
    plan = []
    for u in range(n_users):
        mine = []
        for k in range(per_user):
            i = u * per_user + k
            if articles and i % 3 == 2:
                article = articles[i % len(articles)]
                mine.append((article.question, article.expected))
            else:
                mine.append(samples[i % len(samples)])
        plan.append(mine)
    return plan


def _ask_all(api: BotApiServer, inbox: Inbox, user: dict, questions: list[tuple[str, str]], deadline: float, result):
    chat = api.private_chat(user)
    box = inbox.box(chat["id"])
    for text, expected in questions:
        sent = time.monotonic()
        api.send_text(user, chat, text)
        try:
            at, answer = box.get(timeout=max(deadline - time.monotonic(), 0.1))
        except queue.Empty:
            with inbox._lock:
                result.unanswered += 1
            continue
        with inbox._lock:
            result.latencies.append(at - sent)
            result.correct += expected in answer


def run_load(
    data_dir: Path,
    users: int = 50,
    questions: int = 3,
    articles: int = 200,
    runtime: str | None = None,
    log_path: Path | None = None,
    timeout: float = 1800.0,
) -> LoadResult:
    """Run one load scenario against ``data_dir`` (an existing knowledge base)."""
    result = LoadResult(users, questions, articles)
    generated = [generated_article(i) for i in range(articles)]
    plan = _user_questions(users, questions, generated)
    api = BotApiServer(TOKEN).start()
    admin = BotApiServer.user(ADMIN_ID, "Admin", "en")
    admin_chat = api.private_chat(admin)
    inbox = Inbox(api, admin_chat["id"])
    inbox.expect_admin = articles
    readers = [BotApiServer.user(100_000 + u, f"Reader{u}", "de" if u % 2 else "en") for u in range(users)]
    for reader in readers:
        inbox.box(reader["id"])
    bot = BotProcess(api, data_dir, runtime, log_path or data_dir / "load-bot.log")
    try:
        before = _article_count(data_dir)
        started = time.monotonic()
        deadline = started + timeout
        threads = [
            threading.Thread(target=_ask_all, args=(api, inbox, r, plan[u], deadline, result), daemon=True)
            for u, r in enumerate(readers)
        ]
        for thread in threads:
            thread.start()
        for article in generated:  # the burst: no waiting between messages
            api.send_text(admin, admin_chat, "/add " + article.text)
        if articles:
            inbox.admin_all.wait(max(deadline - time.monotonic(), 0.1))
        result.import_seconds = time.monotonic() - started
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.1))
        result.wall_seconds = time.monotonic() - started
    finally:
        result.exit_code = bot.stop()
        api.stop()
    result.max_stall_ms, result.max_own_stall_ms, result.stalls_over_100ms = bot.stalls()
    result.errors = bot.errors()
    result.replies_per_user = [len(api.bot_messages(r["id"])) for r in readers]
    result.added = _article_count(data_dir) - before
    return result


def _article_count(data_dir: Path) -> int:
    conn = sqlite3.connect(data_dir / "articlebot.db")
    try:
        return conn.execute("SELECT count(*) FROM articles").fetchone()[0]
    finally:
        conn.close()


def prepare_data_dir(path: Path) -> str:
    """A fresh knowledge base with the bundled sample articles; returns the embedding runtime used."""
    from bot.cli import load_samples
    from index.kb import KnowledgeBase
    from index.settings import IndexSettings

    kb = KnowledgeBase(IndexSettings(data_dir=str(path)))
    try:
        load_samples(kb)
        return getattr(kb.embedder, "runtime", None)  # USE runs one way only
    finally:
        kb.close()


# --- the report -------------------------------------------------------------------------------


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")
    return f"{model}, {os.cpu_count()} cores"


def load_average() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def report(result: LoadResult, command: str, load_before: str) -> str:
    answered = result.questions - result.unanswered
    repeated = sum(max(n - result.questions_per_user, 0) for n in result.replies_per_user)

    def ms(value: float | None) -> str:
        return f"{value:.0f} ms" if value is not None else "not reported"

    def prose(*sentences: str) -> str:
        return textwrap.fill(" ".join(sentences), width=100, break_on_hyphens=False, break_long_words=False)

    table = [
        "| measure | value |",
        "|---|---|",
        f"| questions answered | {answered} / {result.questions}; answers repeated: {repeated} |",
        f"| answer latency p50 / p95 / max | {result.percentile(0.5):.2f} s / {result.percentile(0.95):.2f} s / "
        f"{max(result.latencies, default=float('nan')):.2f} s |",
        f"| answers holding the expected words | {result.correct} / {len(result.latencies)} |",
        f"| articles added | {result.added} / {result.articles} in {result.import_seconds:.0f} s |",
        f"| whole run | {result.wall_seconds:.0f} s |",
        f"| event loop: longest stall, wall clock (20 ms heartbeat) | {ms(result.max_stall_ms)}; over 100 ms: "
        f"{result.stalls_over_100ms if result.stalls_over_100ms is not None else '?'} times |",
        f"| event loop: longest stall the bot's own work can explain | {ms(result.max_own_stall_ms)} |",
        f"| errors in the bot's log | {len(result.errors)} |",
    ]
    return (
        "\n\n".join(
            [
                SECTION,
                prose(
                    f"`{command}` on {date.today().isoformat()}; {machine()}, shared with other test and benchmark",
                    f"runs (load average {load_before} before the run). The bot runs as `articlebot run` in its own",
                    "process against `tests/botapi_server.py` on loopback, starting from the 8 bundled sample",
                    "articles; the users, the admin and the server share the benchmark's process.",
                ),
                prose(
                    f"{result.users} users each ask {result.questions_per_user} questions (the sample questions, and",
                    "every third about an article being imported), each as soon as the previous one is answered,",
                    f"while an admin sends {result.articles} generated articles as `/add` messages in one burst.",
                ),
                "\n".join(table),
                prose(
                    "Latency runs from the user's message reaching the server to the answer being stored there:",
                    "getUpdates, the queue, retrieval and answering next to the import's writes, and sendMessage.",
                    "A stall is how late the loop woke. The second stall figure bounds each stall by the CPU time",
                    "the bot's process got during it (a stall our code causes, by a long callback, the GIL or our",
                    "threads taking the cores, costs at least that much CPU): it takes out the time the shared",
                    "machine gave to other processes. Answers to questions about articles not yet imported say",
                    "that nothing was found, hence the expected words in only part of them.",
                ),
                prose(
                    "What the figures depend on (bot/telegram_app.py): admin jobs run in a lane of their own (2 at a",
                    "time), so questions never queue behind an import; 4 worker threads, since answering is",
                    "CPU-bound Python and more threads only contend with the loop for the GIL; getUpdates batches",
                    "of 20, since PTB parses a batch on the loop; objects loaded at start-up frozen for the garbage",
                    "collector (full collections took 300-500 ms otherwise). Measured the same way before these",
                    "changes (one lane of 16, 16 threads, batches of 100): p50 2.1 s, p95 7.8 s, longest stall",
                    "226 ms.",
                ),
            ]
        )
        + "\n"
    )


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace this benchmark's section (only it) in BENCHMARKS.md, or append it."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start = current.find(SECTION)
    if start < 0:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = current.find("\n## ", start + len(SECTION))
        updated = current[:start] + text + (current[end + 1 :] if end >= 0 else "")
    path.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--questions", type=int, default=3, help="questions per user")
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--no-write", action="store_true", help="print the section, do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)
    command = "python -m bench.load" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="articlebot-load-") as tmp:
        data_dir = Path(tmp)
        runtime = prepare_data_dir(data_dir)
        result = run_load(
            data_dir, args.users, args.questions, args.articles, runtime, data_dir / "bot.log", args.timeout
        )
        for line in result.errors[:20]:
            print(line, file=sys.stderr)
    text = report(result, command, load_before)
    print(text)
    if not args.no_write:
        write_section(text)
    ok = result.exactly_once and result.added == result.articles
    return 0 if ok and result.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
