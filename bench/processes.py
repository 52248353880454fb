"""Several bot processes on one PostgreSQL (issue 14): questions per second at p95 ≤ 1 s, one process vs two.

    .venv/bin/python -m bench.processes [--levels 1,2,4,8,12] [--seconds 45]

Real ``articlebot run`` processes in webhook mode (``tests/util_webhook.py``), each on its own port,
on one real PostgreSQL (``tests/pg_server.py``) holding the 36 German XQuAD articles (../shared). The Bot API
emulator (``tests/botapi_server.py``) plays Telegram's API; a delivery thread plays Telegram's
webhook, POSTing each new update to the processes in turn, as a load balancer would.

At each concurrency level ``c``, ``c`` users ask XQuAD questions (German and English alternating,
the 1,850 in turn), each
the next as soon as the previous is answered, for ``--seconds``. Measured per level: questions
answered per second and the latency from sending to the answer stored by the emulator (p50/p95).
The figure: the highest rate whose p95 stays ≤ 1 s, for one process and for two. The levels run
one after another in one run, with both process counts, so the ratio is measured under the same
conditions. Writes ``bench/results/processes.json``; prints the table BENCHMARKS.md quotes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from botapi_server import BotApiServer  # noqa: E402
from pg_server import LocalPostgres  # noqa: E402
from util_webhook import HOOK, WebhookBot, free_port  # noqa: E402

from bench import scale  # noqa: E402
from bench.xquad import documents, load_articles  # noqa: E402

TOKEN = "6363636363:AAProcProcProcProcProcProcProcProc01"
RESULTS = Path(__file__).parent / "results"
P95_LIMIT = 1.0


class Delivery:
    """Telegram's side of the webhook: every new update POSTed to the next process in turn."""

    def __init__(self, api: BotApiServer, bots: list[WebhookBot]):
        self.api, self.bots = api, bots
        self.pool = ThreadPoolExecutor(16, thread_name_prefix="deliver")
        self.stopped = threading.Event()
        self.turn = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            for update in self.api.take_updates():
                bot = self.bots[self.turn % len(self.bots)]
                self.turn += 1
                self.pool.submit(bot.post, update)
            time.sleep(0.002)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.pool.shutdown(wait=True)


class Answers:
    """When each chat's next answer arrived (the emulator calls ``on_message`` as the bot sends)."""

    def __init__(self, api: BotApiServer):
        self.cond = threading.Condition()
        self.arrived: dict[int, list[float]] = {}
        api.listeners.append(self.on_message)

    def on_message(self, message: dict) -> None:
        with self.cond:
            self.arrived.setdefault(message["chat"]["id"], []).append(time.monotonic())
            self.cond.notify_all()

    def wait(self, chat_id: int, count: int, deadline: float) -> float | None:
        with self.cond:
            while len(self.arrived.get(chat_id, [])) < count:
                left = deadline - time.monotonic()
                if left <= 0 or not self.cond.wait(left):
                    return None
            return self.arrived[chat_id][count - 1]


class Questions:
    """The questions in turn, to whichever user asks next; after the last, the first again (by then
    far out of the knowledge base's 256 cached question vectors, so a repeat costs what a new one does)."""

    def __init__(self, texts: list[str]):
        self.texts = itertools.cycle(texts)
        self.lock = threading.Lock()

    def next(self) -> str:
        with self.lock:
            return next(self.texts)


def ask_for(api: BotApiServer, answers: Answers, user: dict, questions: Questions, until: float, latencies: list):
    chat = api.private_chat(user)
    asked = 0
    while time.monotonic() < until:
        question = questions.next()
        sent = time.monotonic()
        api.send_text(user, chat, question)
        asked += 1
        arrived = answers.wait(chat["id"], asked, sent + 60)
        if arrived is None:
            latencies.append(float("inf"))
            return
        latencies.append(arrived - sent)


def level(api: BotApiServer, answers: Answers, users: int, seconds: float, first_id: int, questions) -> dict:
    latencies: list[float] = []
    people = [BotApiServer.user(first_id + i, f"Reader{i}", "de" if i % 2 else "en") for i in range(users)]
    started = time.monotonic()
    until = started + seconds
    threads = [threading.Thread(target=ask_for, args=(api, answers, p, questions, until, latencies)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {
        "users": users,
        "answered": sum(1 for x in latencies if x != float("inf")),
        "per_second": round(len(latencies) / wall, 2),
        "p50_s": round(at(0.5), 3),
        "p95_s": round(at(0.95), 3),
    }


def start_bots(api: BotApiServer, dsn: str, count: int, home: Path) -> list[WebhookBot]:
    bots = []
    for n in range(count):
        port = free_port()
        directory = home / f"bot{count}-{n}"
        directory.mkdir(parents=True)
        config = directory / "config.toml"
        config.write_text(
            f'[storage]\ndata_dir = "{directory / "data"}"\nengine = "postgres"\ndsn = "{dsn}"\n\n'
            f'[telegram]\nbase_url = "{api.base_url}"\nadmins = [1]\nrate_limit_per_minute = 0\n'
            f'webhook_url = "https://bot.example.org{HOOK}"\nport = {port}\n',
            encoding="utf-8",
        )
        bots.append(WebhookBot(api, config, port, directory / "run.err", TOKEN).start())
    for bot in bots:
        bot.wait_ready()
    return bots


def prepare(dsn: str, home: Path) -> int:
    from index.kb import KnowledgeBase
    from index.settings import IndexSettings

    settings = IndexSettings(data_dir=str(home / "prepare"))
    settings.storage.engine, settings.storage.dsn = "postgres", dsn
    kb = KnowledgeBase(settings)
    try:
        kb.add_many(documents(load_articles()))
        return kb.counts()["articles"]
    finally:
        kb.close()


def run(levels: list[int], seconds: float, counts: list[int]) -> dict:
    home = Path(tempfile.mkdtemp(prefix="articlebot-processes-"))
    result: dict = {"levels": levels, "seconds": seconds, "runs": {}}
    all_questions = scale.all_questions()
    with LocalPostgres(home / "pg") as server:
        dsn = server.create_database("articlebot")
        result["articles"] = prepare(dsn, home)
        api = BotApiServer(TOKEN).start()
        answers = Answers(api)
        first_id = 100_000
        try:
            for count in counts:
                bots = start_bots(api, dsn, count, home)
                delivery = Delivery(api, bots)
                rows = []
                questions = Questions(all_questions)
                try:
                    level(api, answers, count, 10, first_id - 1000 * count, questions)  # warm every process
                    for users in levels:
                        rows.append(level(api, answers, users, seconds, first_id, questions))
                        first_id += users
                        print(count, json.dumps(rows[-1]), flush=True)
                finally:
                    delivery.stop()
                    for bot in bots:
                        bot.stop()
                within = [r["per_second"] for r in rows if r["p95_s"] <= P95_LIMIT and r["answered"]]
                result["runs"][str(count)] = {"levels": rows, "best_per_second_p95_1s": max(within, default=0.0)}
        finally:
            api.stop()
    one, two = (result["runs"].get(k, {}).get("best_per_second_p95_1s") for k in ("1", "2"))
    if one and two:
        result["ratio"] = round(two / one, 2)
    return result


def table(result: dict) -> str:
    heads = " | ".join(f"{k} process(es): q/s, p50 / p95 s" for k in result["runs"])
    lines = [f"| users asking at once | {heads} |"]
    lines.append("|---|" + "---|" * len(result["runs"]))
    for i, users in enumerate(result["levels"]):
        cells = []
        for run_ in result["runs"].values():
            row = run_["levels"][i]
            cells.append(f"{row['per_second']}, {row['p50_s']} / {row['p95_s']}")
        lines.append(f"| {users} | " + " | ".join(cells) + " |")
    best = " | ".join(str(r["best_per_second_p95_1s"]) for r in result["runs"].values())
    lines.append(f"| **q/s at p95 ≤ 1 s** | {best} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,2,4,8,12")
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--processes", default="1,2")
    args = parser.parse_args(argv)
    result = run([int(x) for x in args.levels.split(",")], args.seconds, [int(x) for x in args.processes.split(",")])
    result["machine"] = f"{platform.machine()} {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "processes.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
