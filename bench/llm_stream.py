"""Streamed LLM answers in Telegram (issue 15): how soon the first words show, how soon the final answer.

    .venv/bin/python -m bench.llm_stream [--questions 8] [--passages 5] [--max-tokens 200] [--threads 1]

Needs the real llama.cpp server (``bash .ci/llama.sh``). The real bot (``articlebot run`` in a
subprocess, as deployed) polls ``tests/botapi_server.py`` on loopback, its data dir holding the bundled
sample articles, ``[answer] mode = "llm"`` pointing at ``llama_cpp.server`` with SmolLM2-135M-Instruct
on ``--threads`` threads. One user asks the sample questions (bot/samples/QUESTIONS.md) one after the
other. Measured per question, from the moment the question is stored on the Bot API server: the first
message in the chat (the first visible words), the final edit (the answer with its buttons), and the
number of messages and edits the answer took. Prints a Markdown table; writes nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the Bot API server and the llama.cpp helper live with the tests

from botapi_server import BotApiServer  # noqa: E402
from llama_server import MODEL_NAME, LlamaServer, llama_available  # noqa: E402

TOKEN = "7373737373:AAStreamStreamStreamStreamStream01"
START_TIMEOUT = 300.0
ANSWER_TIMEOUT = 300.0


@dataclass
class Measured:
    question: str
    first_words: float
    final: float
    messages: int
    edits: int
    outcome: str


def sample_questions() -> list[str]:
    lines = (ROOT / "bot" / "samples" / "QUESTIONS.md").read_text(encoding="utf-8").splitlines()
    return [line.split("|")[1].strip() for line in lines if line.startswith("- ") and line.count("|") == 2]


def prepare_data(data_dir: Path) -> None:
    from bot.cli import load_samples
    from index.kb import KnowledgeBase
    from index.settings import IndexSettings

    kb = KnowledgeBase(IndexSettings(data_dir=str(data_dir)))
    load_samples(kb)
    kb.close()


def write_config(path: Path, data_dir: Path, api: BotApiServer, llama: LlamaServer, args: argparse.Namespace) -> None:
    path.write_text(
        f"""[storage]
data_dir = "{data_dir}"

[answer]
mode = "llm"
passages = {args.passages}

[llm]
base_url = "{llama.base_url}"
model = "{MODEL_NAME}"
max_tokens = {args.max_tokens}
first_token_timeout = {args.first_token_timeout}
timeout = {args.timeout}

[telegram]
base_url = "{api.base_url}"
rate_limit_per_minute = 0
poll_timeout = 1.0
""",
        encoding="utf-8",
    )


def start_bot(config: Path, api: BotApiServer) -> subprocess.Popen:
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bot", "--config", str(config), "run"]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT
    while not api.calls_to("getUpdates"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"the bot did not start (exit status {process.returncode}); run it with -v to see why")
        time.sleep(0.2)
    return process


def ask(api: BotApiServer, user: dict, question: str) -> Measured:
    chat = api.private_chat(user)
    sent = api.send_text(user, chat, question)
    asked = time.monotonic()

    def final() -> dict | None:
        later = api.replies_after(sent)
        return later[-1] if later and "reply_markup" in later[-1] else None

    message = api.wait_for(final, ANSWER_TIMEOUT, f"the answer to {question!r}")
    replies = api.replies_after(sent)
    ids = {m["message_id"] for m in replies}
    sends = [c for c in api.calls_to("sendMessage") if c.params.get("chat_id") == chat["id"] and c.at >= asked]
    edits = [
        c
        for c in api.calls_to("editMessageText")
        if c.params.get("chat_id") == chat["id"] and c.at >= asked and c.params.get("message_id") in ids
    ]
    done = max(c.at for c in sends + edits if c.params.get("reply_markup"))
    text = message["text"]
    outcome = "not found" if text.startswith(("Dazu habe ich", "I found nothing")) else "answered"
    if not edits and outcome == "not found":
        outcome = "not found (weak evidence: the model was not asked)"
    if "Sprachmodell nicht erreichbar" in text or "language model unavailable" in text:
        outcome = "fallback"
    return Measured(question, min(c.at for c in sends) - asked, done - asked, len(replies), len(edits), outcome)


def report(results: list[Measured], args: argparse.Namespace) -> str:
    lines = [
        f"llama_cpp.server, {MODEL_NAME} (Q4_1 GGUF), {args.threads} thread(s); [answer] passages = {args.passages}, "
        f"[llm] max_tokens = {args.max_tokens}, first_token_timeout = {args.first_token_timeout:g}, "
        f"timeout = {args.timeout:g}, edit_interval = 1.0 (default)",
        "",
        "| question | first words | final answer | messages | edits | outcome |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.question[:60]} | {r.first_words:.1f} s | {r.final:.1f} s | {r.messages} | {r.edits} | {r.outcome} |"
        )
    first = [r.first_words for r in results]
    final = [r.final for r in results]
    edits = [r.edits for r in results]
    rates = [r.edits / (r.final - r.first_words) for r in results if r.final > r.first_words]
    lines += [
        "",
        f"first words: median {statistics.median(first):.1f} s, max {max(first):.1f} s; "
        f"final answer: median {statistics.median(final):.1f} s, max {max(final):.1f} s; "
        f"edits per answer: median {statistics.median(edits):g}, max {max(edits)}; "
        f"while streaming at most {max(rates, default=0.0):.2f} edits per second",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--passages", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--first-token-timeout", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if not llama_available():
        print("llama-cpp-python is not installed: bash .ci/llama.sh", file=sys.stderr)
        return 1
    questions = sample_questions()[: args.questions]
    with tempfile.TemporaryDirectory(prefix="llm-stream-") as tmp:
        data_dir = Path(tmp) / "data"
        prepare_data(data_dir)
        llama = LlamaServer(args.threads).wait_ready()
        api = BotApiServer(TOKEN).start()
        bot = None
        try:
            config = Path(tmp) / "config.toml"
            write_config(config, data_dir, api, llama, args)
            bot = start_bot(config, api)
            user = BotApiServer.user(5151, "Bench", "de")
            results = []
            for question in questions:
                results.append(ask(api, user, question))
                print(f"{results[-1]}", file=sys.stderr, flush=True)
        finally:
            if bot is not None:
                bot.send_signal(signal.SIGTERM)
                bot.wait(60)
            api.stop()
            llama.stop()
    print(report(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
