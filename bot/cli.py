"""``articlebot`` command line: parses, calls the knowledge base or the answerer, formats.

Errors go to stderr with a non-zero exit status; nothing is half-written.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

# Before any model library is imported: no hub access, no progress bars in our output.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from index.bulk import ImportReport, read_records  # noqa: E402
from index.extract import Document, ExtractionError, from_file, from_text, parse_date  # noqa: E402
from index.kb import AddResult, ArticleNotFound, DuplicateArticle, KnowledgeBase  # noqa: E402

from .config import Config, ConfigError, load_config  # noqa: E402

log = logging.getLogger("articlebot")


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="articlebot", description="Answer questions about articles, with citations.")
    parser.add_argument("--config", help="config file (default: $ARTICLEBOT_CONFIG, else ./config.toml)")
    parser.add_argument("--data-dir", help="directory for the database and index (overrides the config)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and decisions")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add = sub.add_parser("add", help="add one article from a URL, a file or stdin (-)")
    add.add_argument("source", help="http(s) URL, file (.txt .md .html .pdf), or - for stdin")
    add.add_argument("--title")
    add.add_argument("--url")
    add.add_argument("--published", help="publication date, YYYY-MM-DD")

    imp = sub.add_parser("import", help="bulk import from .jsonl or .csv")
    imp.add_argument("file")

    lst = sub.add_parser("list", help="list articles, newest first")
    lst.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="show one article")
    show.add_argument("id")
    remove = sub.add_parser("remove", help="remove one article")
    remove.add_argument("id")
    reindex = sub.add_parser("reindex", help="rebuild the FAISS index from SQLite (re-embeds if the model changed)")
    reindex.add_argument(
        "--rechunk", action="store_true", help="also re-cut every article with the current chunking settings and window"
    )
    stats = sub.add_parser("stats", help="counts, model, index")
    stats.add_argument("--json", action="store_true")

    search = sub.add_parser("search", help="retrieve passages (QUERY, or - for one query per stdin line)")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=None, help="number of results")
    search.add_argument("--json", action="store_true")
    search.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid", help=argparse.SUPPRESS)

    ask = sub.add_parser("ask", help="answer a question with citations (QUESTION, or - for stdin lines)")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true")

    demo = sub.add_parser("demo", help="load the bundled sample articles and answer sample questions")
    demo.add_argument("questions", nargs="*", help="questions to ask instead of the samples")

    sub.add_parser("run", help="run the Telegram bot (token: $TELEGRAM_BOT_TOKEN or [telegram] token)")
    chat = sub.add_parser("chat", help="the bot's conversation in the terminal, as an admin (no token needed)")
    chat.add_argument("--lang", choices=["de", "en"], help="language of the bot's messages (default: from $LANG)")
    chat.add_argument("--samples", action="store_true", help="load the bundled sample articles first")
    return parser


HANDLERS: dict[str, Callable[[argparse.Namespace, Config], int]] = {}


def command(name: str):
    def register(func):
        HANDLERS[name] = func
        return func

    return register


def open_kb(config: Config) -> KnowledgeBase:
    return KnowledgeBase(config.index_settings())


def parse_id(value: str) -> int:
    try:
        article_id = int(value.lstrip("#"))
    except ValueError:
        raise CommandError(f"not an article id: {value!r} (ids are numbers; see 'articlebot list')") from None
    if article_id <= 0:
        raise CommandError(f"not an article id: {value!r}")
    return article_id


def read_source(source: str, config: Config, title: str | None) -> Document:
    if source.startswith(("http://", "https://")):
        from index.fetch import fetch_document

        return fetch_document(source, config.fetch, title)
    if source == "-":
        return from_text(sys.stdin.read(), title=title, source="stdin")
    if "://" in source:
        raise CommandError(f"only http and https links can be added: {source}")
    return from_file(source, title=title)


def format_added(result: AddResult) -> str:
    return f"added #{result.article_id}: {result.title} ({result.chunks} passages)"


@command("add")
def cmd_add(args: argparse.Namespace, config: Config) -> int:
    doc = read_source(args.source, config, args.title)
    if args.url:
        doc.url = args.url
    if args.published:
        doc.published = parse_date(args.published)
    kb = open_kb(config)
    try:
        print(format_added(kb.add(doc, added_by="cli")))
    except DuplicateArticle as exc:
        print(f"{doc.title}: {exc}")
    finally:
        kb.close()
    return 0


@command("import")
def cmd_import(args: argparse.Namespace, config: Config) -> int:
    from tqdm import tqdm

    records = read_records(args.file)
    report = ImportReport()
    kb = open_kb(config)
    kb.open()
    lines: dict[int, int] = {}
    progress = tqdm(desc="importing", unit=" articles", file=sys.stderr, disable=None)

    def documents() -> Iterator[Document]:
        for line_no, item in records:
            if isinstance(item, Exception):
                report.rejected.append((line_no, str(item)))
                print(f"line {line_no}: {item}", file=sys.stderr)
                continue
            lines[id(item)] = line_no
            yield item

    def on_result(doc: Document, result: AddResult | Exception) -> None:
        line_no = lines.pop(id(doc), 0)
        progress.update(1)
        if isinstance(result, AddResult):
            report.added.append((line_no, result.article_id))
        elif isinstance(result, DuplicateArticle):
            report.duplicates.append((line_no, result.article_id))
        else:
            report.rejected.append((line_no, str(result)))
            print(f"line {line_no}: {result}", file=sys.stderr)

    try:
        kb.add_many(documents(), added_by="import", on_result=on_result)
    finally:
        progress.close()
        kb.close()
    print(
        f"imported {len(report.added)} articles, {len(report.duplicates)} already present, "
        f"{len(report.rejected)} rejected"
    )
    return 1 if report.rejected else 0


@command("list")
def cmd_list(args: argparse.Namespace, config: Config) -> int:
    kb = open_kb(config)
    articles = kb.articles()
    if args.json:
        for a in articles:
            print(json.dumps(_article_json(a), ensure_ascii=False))
        return 0
    if not articles:
        print("no articles yet; add one with 'articlebot add URL|FILE' or 'articlebot import FILE'")
    for a in articles:
        date = a.published or a.added_at[:10]
        print(f"#{a.id:<5} {date}  {a.title[:70]}  ({a.chunk_count} passages){'  ' + a.url if a.url else ''}")
    return 0


def _article_json(a) -> dict:
    return {
        "id": a.id,
        "title": a.title,
        "url": a.url,
        "source": a.source,
        "published": a.published,
        "added_by": a.added_by,
        "added_at": a.added_at,
        "language": a.language,
        "passages": a.chunk_count,
    }


@command("show")
def cmd_show(args: argparse.Namespace, config: Config) -> int:
    article = open_kb(config).article(parse_id(args.id))
    print(f"#{article.id} {article.title}")
    for label, value in (
        ("url", article.url),
        ("published", article.published),
        ("added", article.added_at),
        ("added by", article.added_by),
        ("language", article.language),
        ("passages", article.chunk_count),
    ):
        if value:
            print(f"{label}: {value}")
    print()
    print(article.text)
    return 0


@command("remove")
def cmd_remove(args: argparse.Namespace, config: Config) -> int:
    kb = open_kb(config)
    try:
        article = kb.remove(parse_id(args.id))
    finally:
        kb.close()
    print(f"removed #{article.id}: {article.title}")
    return 0


@command("reindex")
def cmd_reindex(args: argparse.Namespace, config: Config) -> int:
    kb = open_kb(config)
    try:
        result = kb.reindex(
            lambda done, total: print(f"re-indexing {done}/{total}", end="\r", file=sys.stderr), rechunk=args.rechunk
        )
    finally:
        kb.close()
    extra = f", {result['reembedded']} passages re-embedded" if result["reembedded"] else ""
    if result["rechunked"]:
        count = result["rechunked"]
        reason = "with the current settings" if args.rechunk else "to fit the embedding window"
        extra += f", {count} article{'' if count == 1 else 's'} re-chunked {reason}"
    print(
        f"index rebuilt: {result['vectors']} vectors ({result['kind']}), {result['analyzed']} passages analysed{extra}"
    )
    return 0


@command("stats")
def cmd_stats(args: argparse.Namespace, config: Config) -> int:
    stats = open_kb(config).stats()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False))
    else:
        for key, value in stats.items():
            print(f"{key}: {value}")
    return 0


def _lines(value: str) -> Iterator[str]:
    if value != "-":
        yield value
        return
    for line in sys.stdin:
        if line.strip():
            yield line.strip()


@command("search")
def cmd_search(args: argparse.Namespace, config: Config) -> int:
    if args.k is not None and args.k <= 0:
        raise CommandError("-k must be a positive number")
    kb = open_kb(config)
    for query in _lines(args.query):
        hits = kb.search(query, k=args.k, mode=args.mode)
        if args.json:
            results = [
                {
                    "chunk_id": h.chunk_id,
                    "article_id": h.article_id,
                    "title": h.title,
                    "url": h.url,
                    "text": h.text,
                    "score": round(h.score, 6),
                }
                for h in hits
            ]
            print(json.dumps({"query": query, "results": results}, ensure_ascii=False), flush=True)
            continue
        if not hits:
            print(f"{query}: no results")
        for rank, h in enumerate(hits, 1):
            print(f"{rank}. [{h.score:.4f}] #{h.article_id} {h.title} (passage {h.chunk_id})")
            print("   " + h.text.replace("\n", " ")[:300])
    return 0


def make_answerer(config: Config, kb: KnowledgeBase):
    from .answer import Answerer
    from .llm import LLMError

    try:
        return Answerer(kb, config.answer, llm=config.llm if config.answer.mode == "llm" else None)
    except (ValueError, LLMError) as exc:
        raise CommandError(f"config: {exc}") from None


def format_answer_text(answer) -> str:
    from .texts import say

    lines = [answer.body]
    if getattr(answer, "cut_off", ""):
        lines = [f"{answer.cut_off} …", say("llm_cut_off", answer.language), "", answer.body]
    if answer.citations:
        lines.append("")
        lines.append("Quellen:" if answer.language == "de" else "Sources:")
        for c in answer.citations:
            lines.append(f"[{c.n}] {c.title}" + (f" <{c.url}>" if c.url else f" (article #{c.article_id})"))
            lines.append(f"    „{c.quote}“" if answer.language == "de" else f'    "{c.quote}"')
    if getattr(answer, "mode", "") == "extractive-fallback":
        # The configured LLM failed (timeout, error, unreachable): say so, the quotes are still valid.
        lines.append("")
        lines.append(say("llm_fallback", answer.language))
    return "\n".join(lines)


@command("ask")
def cmd_ask(args: argparse.Namespace, config: Config) -> int:
    kb = open_kb(config)
    answerer = make_answerer(config, kb)
    for question in _lines(args.question):
        if args.json or not answerer.stream:
            answer = answerer.answer(question)
        else:  # the model's words as it writes them, then the checked answer
            from .chat import TerminalStream

            stream = TerminalStream(sys.stdout)
            try:
                answer = answerer.answer_stream(question, stream)
            finally:
                stream.finish()
        if args.json:
            print(json.dumps(answer.to_json(), ensure_ascii=False), flush=True)
        else:
            print(format_answer_text(answer), flush=True)
            if args.question == "-":
                print()
    return 0


SAMPLE_QUESTIONS = [
    "Wie viel kostet der Kubikmeter Trinkwasser ab dem 1. April?",
    "How much did the new tram line in Ulmenhagen cost to build?",
    "Who led the bumblebee study?",
    # Not in the samples: shows the bot saying so instead of inventing an answer.
    "Wer hat den Eurovision Song Contest 2031 gewonnen?",
]


def sample_files() -> list[Path]:
    return sorted((Path(__file__).parent / "samples").glob("[0-9]*.md"))


def load_samples(kb: KnowledgeBase) -> int:
    added = 0
    for path in sample_files():
        try:
            kb.add(from_file(path), added_by="samples")
            added += 1
        except DuplicateArticle:
            pass
    return added


@command("demo")
def cmd_demo(args: argparse.Namespace, config: Config) -> int:
    kb = open_kb(config)
    added = load_samples(kb)
    total = kb.stats()["articles"]
    print(f"{total} articles in {kb.data_dir} ({added} sample articles added now)\n")
    answerer = make_answerer(config, kb)
    for question in args.questions or SAMPLE_QUESTIONS:
        print(f"> {question}")
        answer = answerer.answer(question)
        print(format_answer_text(answer))
        if hint := multilingual_hint(answer, config):
            print(hint)
        print()
    kb.close()
    return 0


def multilingual_hint(answer, config: Config) -> str | None:
    """Why an English question went unanswered with the English-only MiniLM model, and the fix."""
    if answer.found or answer.language == "de" or config.embedding.backend != "sentence-transformers":
        return None
    if config.embedding.model:  # a chosen model may well be multilingual
        return None
    return (
        "(If the answer is in a German article: all-MiniLM-L6-v2 reads English only. "
        "The default configuration, without --config, uses the multilingual USE.)"
    )


def open_conversation(config: Config, kb: KnowledgeBase, admins: list[int] | None = None, origin: str = "telegram"):
    from .conversation import Conversation
    from .feedback import FeedbackStore

    feedback = FeedbackStore(kb.state_path)
    answerer = make_answerer(config, kb)
    return Conversation(kb, answerer, feedback, config.telegram, config.fetch, admins=admins, origin=origin)


@command("run")
def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from .telegram_app import protect_token, resolve_token, run_bot

    token = resolve_token(config.telegram, dict(os.environ))
    protect_token(token)
    kb = open_kb(config)
    log.info("index: %s", kb.open())
    conversation = open_conversation(config, kb)
    try:
        return run_bot(config.telegram, conversation, token, config.llm if config.answer.mode == "llm" else None)
    finally:
        conversation.feedback.close()
        kb.close()


@command("chat")
def cmd_chat(args: argparse.Namespace, config: Config) -> int:
    from .chat import CONSOLE_USER_ID, prompted, run_chat
    from .texts import ui_language

    kb = open_kb(config)
    if args.samples:
        load_samples(kb)
    conversation = open_conversation(config, kb, admins=[CONSOLE_USER_ID], origin="chat")
    language = args.lang or ui_language(os.environ.get("LC_ALL") or os.environ.get("LANG"))
    lines = prompted(sys.stdin, sys.stdout) if sys.stdin.isatty() else sys.stdin
    try:
        return run_chat(conversation, lines, sys.stdout, sys.stderr, language)
    finally:
        conversation.feedback.close()
        kb.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        config = load_config(args.config, args.data_dir)
        return HANDLERS[args.command](args, config)
    except ConfigError as exc:
        print(f"articlebot: config error: {exc}", file=sys.stderr)
        return 2
    except (CommandError, ExtractionError, ArticleNotFound) as exc:
        print(f"articlebot: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        # Model/index mismatches and the like: one line, not a traceback.
        print(f"articlebot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("articlebot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
