"""``articlebot`` command line: parses, calls the knowledge base or the answerer, formats.

Errors go to stderr with a non-zero exit status; nothing is half-written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit, urlunsplit

# Before any model library is imported: no hub access, no progress bars in our output.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from index.bulk import ImportOptions, ImportReport, read_records  # noqa: E402
from index.engines import DB_FILE  # noqa: E402
from index.errors import UserError  # noqa: E402
from index.extract import (  # noqa: E402
    Document,
    ExtractionError,
    check_url,
    decode_bytes,
    from_file,
    from_text,
    parse_date,
    require_length,
)
from index.kb import AddResult, ArticleNotFound, DuplicateArticle, KnowledgeBase, PassagePlace  # noqa: E402
from index.sentences import quoted  # noqa: E402

from . import protocol  # noqa: E402
from .config import Config, ConfigError, load_config  # noqa: E402
from .texts import shortened  # noqa: E402

if TYPE_CHECKING:  # imported where used: a command loads only what it needs
    from index.feeds import FeedRecord, Feeds, PollResult
    from index.migrate import MigrationReport
    from index.records import ArticleRecord
    from index.search import SearchHit
    from index.settings import IndexSettings

    from .answer import Answerer
    from .answer_types import Answer, Evidence
    from .conversation import Conversation

log = logging.getLogger("articlebot")


# SQLite stores integers in 64 bits; a larger id cannot name an article (and overflows the driver).
MAX_ID = 2**63 - 1

# Where ``demo`` puts the fictional samples unless --data-dir says otherwise (dev.sh passes the same).
DEMO_DATA_DIR = "data-demo"


class CommandError(UserError):
    """A user-facing error: printed as one line, exit status 1."""


def _subcommand(sub, name: str, summary: str, examples: str, details: str = "") -> argparse.ArgumentParser:
    """A subcommand whose --help has a one-line description, its options, and examples."""
    description = summary + (f"\n\n{details}" if details else "")
    parser = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # "articlebot ask 'question' -v" is how many people type it: the global options are taken after the
    # command too (SUPPRESS: left out, they keep what was given before the command).
    parser.add_argument("--config", default=argparse.SUPPRESS, help="as articlebot --config")
    parser.add_argument("--data-dir", default=argparse.SUPPRESS, help="as articlebot --data-dir")
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="as articlebot -v")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="articlebot",
        description="Answer questions about articles, with citations.",
        epilog="'articlebot COMMAND --help' explains a command, with examples.",
    )
    parser.add_argument("--config", help="config file (default: $ARTICLEBOT_CONFIG, else ./config.toml)")
    parser.add_argument("--data-dir", help="directory for the database and index (overrides the config)")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: what happened (passages, scores, timings); -vv: also the libraries' debug output",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # In this order in 'articlebot --help'.
    _add_article_commands(sub)
    _add_question_commands(sub)
    _add_feeds_command(sub)
    _add_service_commands(sub)
    return parser


def _add_article_commands(sub) -> None:
    """add, import, list, show, remove, update, reindex, stats: the collection itself."""
    add = _subcommand(
        sub,
        "add",
        "Add one article from a URL, a file or stdin (-).",
        "  articlebot add https://example.org/some-article\n"
        '  articlebot add report.pdf --title "Jahresbericht" --published 2025-03-01\n'
        "  pbpaste | articlebot add - --url https://example.org/original",
        "A URL (HTML or PDF) is fetched with size and time limits; a file may be .txt .md .html or .pdf;\n"
        "from stdin the first line is the title. An article already present is not added twice.",
    )
    add.add_argument("source", help="http(s) URL, file (.txt .md .html .pdf), or - for stdin")
    add.add_argument("--title", help="the article's title (default: from the document, or its first line)")
    add.add_argument("--url", help="the article's link, shown with its citations (e.g. the original of a file)")
    add.add_argument("--published", help="publication date, YYYY-MM-DD")

    imp = _subcommand(
        sub,
        "import",
        "Bulk import articles from a .jsonl or .csv file.",
        IMPORT_EXAMPLES,
        IMPORT_DETAILS,
    )
    imp.add_argument("file", help="a .jsonl (or .ndjson) or .csv (or .tsv) file")
    imp.add_argument("--delimiter", type=_one_char, help="CSV field separator (default: sniffed from , ; tab |)")
    imp.add_argument("--quotechar", type=_one_char, help="CSV quote character (default: sniffed from \" and ')")
    imp.add_argument(
        "--columns",
        type=_column_names,
        help="the CSV has no header row; its columns in order, e.g. label,text (needs 'text')",
    )

    lst = _subcommand(
        sub, "list", "List the articles, newest first.", "  articlebot list\n  articlebot list --json | jq .title"
    )
    lst.add_argument("--json", action="store_true", help="one JSON object per article and line")
    show = _subcommand(
        sub, "show", "Show one article: its facts and full text.", "  articlebot show 12\n  articlebot show '#12'"
    )
    show.add_argument("id", help="the article's id, as 'list' shows it (#12 or 12)")
    remove = _subcommand(sub, "remove", "Remove one article with its passages and vectors.", "  articlebot remove 12")
    remove.add_argument("id", help="the article's id, as 'list' shows it (#12 or 12)")
    update = _subcommand(
        sub,
        "update",
        "Fetch an article's URL again and refresh it if the text changed (same id).",
        "  articlebot update 12",
        "Unchanged text changes nothing; changed text replaces the passages in one transaction.",
    )
    update.add_argument("id", help="the article's id, as 'list' shows it (#12 or 12)")
    reindex = _subcommand(
        sub,
        "reindex",
        "Rebuild the FAISS index from SQLite (re-embeds if the model changed).",
        "  articlebot reindex             # after changing [embedding] model\n  articlebot reindex --rechunk",
    )
    reindex.add_argument(
        "--rechunk", action="store_true", help="also re-cut every article with the current chunking settings and window"
    )
    stats = _subcommand(
        sub, "stats", "Counts, model, index and answers: what the bot's /stats shows.", "  articlebot stats --json"
    )
    stats.add_argument("--json", action="store_true", help="one JSON object")


def _add_question_commands(sub) -> None:
    """search, ask, demo: questions over the collection."""
    search = _subcommand(
        sub,
        "search",
        "Retrieve the best passages for a query (no answer).",
        '  articlebot search "Wasserpreise Talgrund" -k 5\n'
        "  printf 'Fähre\\nStadion\\n' | articlebot search - --json    # one query per stdin line",
    )
    search.add_argument("query", help="the query, or - to read one query per line from stdin")
    search.add_argument("-k", type=int, default=None, help="number of passages (default: [search] k)")
    search.add_argument("--json", action="store_true", help="one JSON object per query and line")
    search.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid", help=argparse.SUPPRESS)

    ask = _subcommand(
        sub,
        "ask",
        "Answer a question with numbered citations.",
        '  articlebot ask "Warum steigen die Wasserpreise?"\n'
        "  articlebot ask - < questions.txt           # one question per line, each answer under it\n"
        '  articlebot -v ask "Who led the study?"    # also the passages, scores and timings',
    )
    ask.add_argument("question", help="the question, or - to read one question per line from stdin")
    ask.add_argument("--json", action="store_true", help="one JSON object per question and line")

    demo = _subcommand(
        sub,
        "demo",
        f"Load the bundled sample articles into ./{DEMO_DATA_DIR} and answer sample questions.",
        '  articlebot demo\n  articlebot demo "Wie viel kostet der Kubikmeter Trinkwasser?"\n'
        "  articlebot --data-dir /tmp/demo demo",
        f"The samples are fictional: they go into a data dir of their own, {DEMO_DATA_DIR} in the current\n"
        "directory (SQLite), never into the configured one; --data-dir chooses another.",
    )
    demo.add_argument("questions", nargs="*", help="questions to ask instead of the samples")


def _add_feeds_command(sub) -> None:
    """feeds add | list | remove | poll."""
    feeds = _subcommand(
        sub,
        "feeds",
        "RSS/Atom feeds whose new items are added: add, list, remove, poll.",
        "  articlebot feeds add https://example.org/feed.xml\n  articlebot feeds list --json\n"
        "  articlebot feeds poll    # one pass over every due feed, then exit (cron, systemd timer)",
    )
    feeds_sub = feeds.add_subparsers(dest="feeds_command", required=True, metavar="ACTION")
    feeds_add = _subcommand(
        feeds_sub,
        "add",
        "Subscribe to an RSS or Atom feed, checked by fetching it once.",
        "  articlebot feeds add https://example.org/feed.xml",
        "A link that cannot be fetched or is no RSS/Atom feed (a site's HTML page, say) is refused and nothing\n"
        "is stored. The feed's items are added by the next 'articlebot feeds poll' or the running bot.",
    )
    feeds_add.add_argument("url", help="the feed's http(s) link (not the site's page: the feed itself)")
    feeds_list = _subcommand(
        feeds_sub,
        "list",
        "The feeds, with last check, last success, items added and last error.",
        "  articlebot feeds list\n  articlebot feeds list --json",
    )
    feeds_list.add_argument("--json", action="store_true", help="one JSON object per feed and line")
    feeds_remove = _subcommand(
        feeds_sub,
        "remove",
        "Unsubscribe from a feed; the articles it brought stay.",
        "  articlebot feeds remove 3",
    )
    feeds_remove.add_argument("id", help="the feed's number, as 'articlebot feeds list' shows it")
    feeds_poll = _subcommand(
        feeds_sub,
        "poll",
        "Poll every feed that is due once, then exit (for cron or a systemd timer).",
        "  articlebot feeds poll\n  articlebot feeds poll 3    # feed #3 now, even while it waits after failures",
        "Exits with status 1 when a feed failed; a feed failing again waits longer before its next poll\n"
        "('articlebot feeds list' says when). Named feeds are polled now, whether due or not.",
    )
    feeds_poll.add_argument("ids", nargs="*", help="only these feeds, now (numbers as 'articlebot feeds list' shows)")


def _add_service_commands(sub) -> None:
    """migrate, run, chat: moving the database, and the bot itself (on Telegram or in the terminal)."""
    migrate = _subcommand(
        sub,
        "migrate",
        "Copy this data dir's database into PostgreSQL (or another data dir), without re-embedding.",
        "  articlebot migrate --to postgresql://articlebot@db.example:5432/articlebot  # $ARTICLEBOT_DB_PASSWORD\n"
        "  articlebot --data-dir data migrate --to /srv/articlebot/data-copy",
        "Copies articles and passages with their ids, vectors, lexical index and id counters, and the bot's\n"
        "tables (answers, votes, feeds, update ledger). Each article is one transaction: after an interruption\n"
        "run the same command again; it checks what is there and continues. At the end it compares counts and\n"
        "a sample of vectors, and prints the config lines to switch to. Stop the bot while it runs.\n"
        "The password comes from the environment variable [storage] password_env names.",
    )
    migrate.add_argument(
        "--to", required=True, metavar="TARGET", help="postgresql://user@host:port/db, or the path of another data dir"
    )

    run = _subcommand(
        sub,
        "run",
        "Run the Telegram bot (token: $TELEGRAM_BOT_TOKEN or [telegram] token).",
        "  TELEGRAM_BOT_TOKEN=123456:ABC articlebot --config config.toml run\n"
        "  articlebot --config config.postgres.toml run --port 8444   # a second webhook process",
        "Long polling, or a webhook with [telegram] webhook_url; SIGINT/SIGTERM stop it gracefully.\n"
        'Several webhook processes can share one PostgreSQL database ([storage] engine = "postgres"),\n'
        "each listening on its own port behind one proxy.",
    )
    run.add_argument("--port", type=int, help="the webhook server's port (instead of [telegram] port)")
    chat = _subcommand(
        sub,
        "chat",
        "The bot's conversation in the terminal, as an admin (no token needed).",
        "  articlebot chat --samples\n"
        "  printf '/add notes.md\\nWer leitete die Studie?\\n' | articlebot chat --lang de",
        "One line is one message. /add alone starts a pasted article that ends at a line holding only '.';\n"
        "/add PATH adds a local file; a line with just a number presses that button; /quit or Ctrl-D ends.",
    )
    chat.add_argument("--lang", choices=["de", "en"], help="language of the bot's messages (default: from $LANG)")
    chat.add_argument("--samples", action="store_true", help="load the bundled sample articles first")


IMPORT_DETAILS = """One article per JSONL line or CSV row. A bad record is reported by its line number and
skipped; the others are imported. Articles already present are skipped too, so running the same
import again continues an interrupted one.

JSONL: one object per line, {"title", "text", "url"?, "published"?}. "text" is required; without a
       "title" the first line (or the opening words) of the text becomes the title.
CSV:   a header row naming the columns: text (required), title, url, published, in any order and
       case. Other columns are ignored. A file without a header row needs --columns.
       Delimiter and quote character are sniffed; --delimiter and --quotechar set them.
Both:  UTF-8 (with or without BOM), UTF-16 with BOM, or Windows-1252/Latin-1 (with a warning).
       url must be http(s); published is YYYY-MM-DD (or DD.MM.YYYY, ISO timestamps); a text shorter
       than [ingest] min_chars is refused."""

IMPORT_EXAMPLES = (
    '  articlebot import articles.jsonl    # one {"title", "text", "url"?, "published"?} per line\n'
    "  articlebot import export.csv --delimiter ';'\n"
    "  articlebot import 10kgnad/test.csv --columns label,text --delimiter ';' --quotechar \"'\""
)


def _one_char(value: str) -> str:
    value = {"tab": "\t", "\\t": "\t"}.get(value, value)
    if len(value) != 1:
        raise argparse.ArgumentTypeError(f"must be one character, not {value!r}")
    return value


def _column_names(value: str) -> list[str]:
    names = [n.strip().lower() for n in value.split(",")]
    if "text" not in names:
        raise argparse.ArgumentTypeError(f"needs a 'text' column, not {value!r} (e.g. --columns label,text)")
    if any(not n for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"names must be non-empty and distinct: {value!r}")
    return names


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
    if article_id > MAX_ID:
        raise ArticleNotFound(article_id)
    return article_id


def read_source(source: str, config: Config, title: str | None) -> Document:
    if source.startswith(("http://", "https://")):
        from index.fetch import fetch_document

        return fetch_document(source, config.fetch, title)
    if source == "-":
        text = _read_stdin()
        if not text.strip():
            raise CommandError("nothing to add: the input is empty")
        return from_text(text, title=title, source="stdin")
    if "://" in source:
        raise CommandError(f"only http and https links can be added: {source}")
    check_file(source)
    return from_file(source, title=title)


def check_file(source: str) -> None:
    """A path that names no file: say what it is, rather than judge its 'file type' by its last part."""
    path = Path(source).expanduser()
    if path.is_dir():
        raise CommandError(f"{source} is a directory: give a file")
    if path.exists():
        return
    host, slash, _ = source.partition("/")
    if slash and "." in host.strip(".") and not source.startswith(("/", "~")):
        # example.org/article: a link typed without its scheme
        raise CommandError(f"no such file: {source} (a link needs http:// or https://)")
    raise CommandError(f"no such file: {source}")


def _read_stdin() -> str:
    """stdin's bytes decoded like a file's (BOM, Windows-1252, an undecodable line named), not by the locale."""
    if sys.stdin.isatty():  # someone at a terminal would otherwise wait without a word
        print("reading the article from standard input; end with Ctrl-D", file=sys.stderr, flush=True)
    raw = getattr(sys.stdin, "buffer", None)
    return decode_bytes(raw.read())[0] if raw is not None else sys.stdin.read()


def format_added(result: AddResult) -> str:
    return f"added #{result.article_id}: {result.title} ({count_of(result.chunks, 'passage')})"


def count_of(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


@command("add")
def cmd_add(args: argparse.Namespace, config: Config) -> int:
    started = time.perf_counter()
    url = check_url(args.url)
    published = parse_date(args.published) if args.published else None
    doc = require_length(read_source(args.source, config, args.title), config.ingest.min_chars)
    if url:
        doc.url = url
    if published:
        doc.published = published
    read = time.perf_counter()
    kb = open_kb(config)
    try:
        result = kb.add(doc, added_by="cli")
        log_added(kb, doc, result)
        print(format_added(result))
    except DuplicateArticle as exc:
        print(f"{doc.title}: {duplicate_message(exc)}")
    finally:
        kb.close()
    done = time.perf_counter()
    log.info(
        "timings: reading %s, chunking+embedding+storing %s, total %s",
        ms(read - started),
        ms(done - read),
        ms(done - started),
    )
    return 0


def log_added(kb: KnowledgeBase, doc: Document, result: AddResult, where: str = "") -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    language = kb.article(result.article_id).language
    log.info(
        "%sadded #%s %r: published %s, language %s, %s, %s characters",
        where,
        result.article_id,
        result.title,
        doc.published or "unknown",
        language,
        count_of(result.chunks, "passage"),
        f"{len(doc.text):,}",
    )


# Without a terminal (a log file, a CI job) one line this often says that work goes on.
PROGRESS_EVERY_SECONDS = 5.0


class Progress:
    """A tqdm bar with total and ETA on a terminal; elsewhere a plain line every few seconds."""

    def __init__(self, label: str, total: int, unit: str, stream: TextIO | None = None):
        from tqdm import tqdm

        self.label, self.total, self.unit = label, total, unit
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = self.last_line = time.monotonic()
        tty = self.stream.isatty()
        self.bar = tqdm(total=total, desc=label, unit=f" {unit}", file=self.stream, dynamic_ncols=True) if tty else None

    def advance(self, done: int | None = None) -> None:
        step = 1 if done is None else done - self.done
        self.done += step
        if self.bar is not None:
            self.bar.update(step)
            return
        now = time.monotonic()
        if now - self.last_line >= PROGRESS_EVERY_SECONDS and self.done < self.total:
            self.last_line = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float) -> str:
        elapsed = now - self.started
        text = f"{self.label}: {self.done}/{self.total} {self.unit}, {elapsed:.0f} s"
        if self.done:
            text += f", about {elapsed / self.done * (self.total - self.done):.0f} s left"
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def duplicate_message(exc: DuplicateArticle) -> str:
    if exc.reason == "same URL":
        return (
            f"#{exc.article_id} has this URL, but its text has changed since; "
            f"'articlebot update {exc.article_id}' refreshes it"
        )
    return str(exc)


@command("update")
def cmd_update(args: argparse.Namespace, config: Config) -> int:
    article_id = parse_id(args.id)
    kb = open_kb(config)
    try:
        result = kb.update(article_id)
    except DuplicateArticle as exc:
        raise CommandError(f"#{article_id} not updated: its new text is that of #{exc.article_id}") from None
    except ExtractionError as exc:  # the page is gone, unreachable or no article any more: say which article
        reason = str(exc)
        raise CommandError(reason if f"#{article_id} " in reason else f"#{article_id} not updated: {reason}") from None
    finally:
        kb.close()
    if result.changed:
        print(f"updated #{result.article_id}: {result.title} ({count_of(result.chunks, 'passage')})")
    else:
        print(f"#{result.article_id} unchanged: {result.title}")
    return 0


@command("import")
def cmd_import(args: argparse.Namespace, config: Config) -> int:
    started = time.perf_counter()
    options = _import_options(args, config)
    records = read_records(args.file, options)
    # A counting pass first, so the progress has a total and an ETA; parsing is cheap next to embedding.
    # It stays quiet: the import pass gives the warnings.
    total = sum(1 for _ in read_records(args.file, dataclasses.replace(options, warn=None)))
    kb = open_kb(config)
    kb.open()
    before = kb.counts()["articles"]
    progress = Progress("importing", total, "articles")
    tally = ImportTally(kb, progress)
    try:
        kb.add_many(tally.documents(records), added_by="import", on_result=tally.on_result)
    except KeyboardInterrupt:
        progress.close()
        # Counted in the database: Ctrl-C may land after an article's commit and before its report.
        added = kb.counts()["articles"] - before
        print(
            f"articlebot: interrupted after adding {count_of(added, 'article')}; "
            f"run the same import again to continue (articles already present are skipped)",
            file=sys.stderr,
        )
        return 130
    finally:
        progress.close()
        kb.close()
    log.info("import took %.1f s", time.perf_counter() - started)
    report = tally.report
    print(
        f"imported {count_of(len(report.added), 'article')}, {len(report.duplicates)} already present, "
        f"{len(report.rejected)} rejected"
    )
    return 1 if report.rejected else 0


def _import_options(args: argparse.Namespace, config: Config) -> ImportOptions:
    return ImportOptions(
        min_chars=config.ingest.min_chars,
        delimiter=args.delimiter,
        quotechar=args.quotechar,
        columns=args.columns,
        warn=lambda message: print(f"articlebot: warning: {message}", file=sys.stderr),
    )


class ImportTally:
    """Each record's outcome under its line number as the import goes: in the report, the progress and stderr."""

    def __init__(self, kb: KnowledgeBase, progress: Progress):
        self.kb = kb
        self.progress = progress
        self.report = ImportReport()
        # add_many reports by document; this maps a document back to its line until its result comes.
        self._lines: dict[int, int] = {}

    def documents(self, records: Iterable[tuple[int, Document | Exception]]) -> Iterator[Document]:
        """The records that parsed; the others are rejected here by their line number."""
        for line_no, item in records:
            if isinstance(item, Exception):
                self.report.rejected.append((line_no, str(item)))
                self.progress.advance()
                print(f"line {line_no}: {item}", file=sys.stderr)
                continue
            self._lines[id(item)] = line_no
            yield item

    def on_result(self, doc: Document, result: AddResult | Exception) -> None:
        line_no = self._lines.pop(id(doc), 0)
        self.progress.advance()
        if isinstance(result, AddResult):
            self.report.added.append((line_no, result.article_id))
            log_added(self.kb, doc, result, where=f"line {line_no}: ")
        elif isinstance(result, DuplicateArticle):
            self.report.duplicates.append((line_no, result.article_id))
        else:
            self.report.rejected.append((line_no, str(result)))
            print(f"line {line_no}: {result}", file=sys.stderr)


@command("list")
def cmd_list(args: argparse.Namespace, config: Config) -> int:
    with open_kb(config) as kb:
        articles = kb.articles()
    if args.json:
        for a in articles:
            print(json.dumps(_article_json(a), ensure_ascii=False))
        return 0
    if not articles:
        print("no articles yet; add one with 'articlebot add URL|FILE' or 'articlebot import FILE'")
    for a in articles:
        # An article without a publication date shows the day it was added, saying so.
        date = a.published or f"added {a.added_at[:10]}"
        url = f"  {a.url}" if a.url else ""
        title = shortened(a.title, LIST_TITLE_CHARS)
        print(f"#{a.id:<5} {date:<16}  {title}  ({count_of(a.chunk_count, 'passage')}){url}")
    return 0


LIST_TITLE_CHARS = 70


def _article_json(a: ArticleRecord) -> dict:
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
    with open_kb(config) as kb:
        article = kb.article(parse_id(args.id))
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
    progress: Progress | None = None

    def advance(done: int, total: int) -> None:
        nonlocal progress
        if progress is None:
            progress = Progress("re-indexing", total, "articles")
        progress.advance(done)

    try:
        result = kb.reindex(advance, rechunk=args.rechunk)
    finally:
        if progress is not None:
            progress.close()
        kb.close()
    extra = f", {count_of(result['reembedded'], 'passage')} re-embedded" if result["reembedded"] else ""
    if result["rechunked"]:
        reason = "with the current settings" if args.rechunk else "to fit the embedding window"
        extra += f", {count_of(result['rechunked'], 'article')} re-chunked {reason}"
    print(
        f"index rebuilt: {count_of(result['vectors'], 'vector')} ({result['kind']}), "
        f"{count_of(result['analyzed'], 'passage')} analysed{extra}"
    )
    return 0


@command("stats")
def cmd_stats(args: argparse.Namespace, config: Config) -> int:
    from .conversation import index_facts
    from .feedback import FeedbackStore
    from .texts import say

    with open_kb(config) as kb:
        feedback = FeedbackStore(kb.answer_log())
        try:
            facts = index_facts(kb, feedback)
            if args.json:
                print(json.dumps({**kb.stats(), **feedback.counts()}, ensure_ascii=False))
            else:
                print(say("stats", "en", **facts))
                stats = kb.stats()
                print(f"Storage: {stats['engine']}, {stats['database']}")  # a PostgreSQL DSN without its password
                print(f"Data dir: {kb.data_dir}")
        finally:
            feedback.close()
    return 0


def _lines(value: str, what: str) -> Iterator[str]:
    """``value`` itself, or for ``-`` each non-blank line of stdin: one query or question at a time."""
    if value != "-":
        if not value.strip():
            raise CommandError(f"the {what} is empty (give one, or - to read one per line from stdin)")
        yield value
        return
    for line in sys.stdin:
        if line.strip():
            yield line.strip()


# Searched once before the first real query: the model's weights and the German lexicon load on first use.
WARM_UP_QUERY = "Probelauf"  # capitalised: German nouns load the compound lexicon


def log_loading(kb: KnowledgeBase) -> None:
    """Load model and index up front, so the first question's timings are its own."""
    started = time.perf_counter()
    status = kb.open()
    # kb.open() loads the index and builds the embedder, whose weights load only at its first query: without
    # this, the first search's time would be mostly loading (750 ms, then 2 ms for the same search again).
    kb.search(WARM_UP_QUERY)
    log.info("model and index ready in %s (index %s)", ms(time.perf_counter() - started), status)


class SearchClock:
    """Time spent in ``kb.search``, which the answerer calls from inside ``answer_with_evidence``."""

    def __init__(self, kb: KnowledgeBase):
        self.seconds = 0.0
        self.search = kb.search
        # Shadows the method on this one instance: the answerer's internals stay untouched.
        kb.search = self.timed  # type: ignore[method-assign]

    def timed(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self.search(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def passage_label(places: dict[int, PassagePlace], chunk_id: int) -> str:
    place = places.get(chunk_id)
    return f"passage {place.number} of {place.total}" if place else f"passage id {chunk_id}"


def log_hits(kb: KnowledgeBase, hits: list[SearchHit]) -> None:
    numbers = kb.passage_numbers(h.chunk_id for h in hits)
    log.info("%s considered:", count_of(len(hits), "passage"))
    for h in hits:
        log.info(
            "  %.4f  #%s %s (%s, id %s)",
            h.score,
            h.article_id,
            h.title[:60],
            passage_label(numbers, h.chunk_id),
            h.chunk_id,
        )


@command("search")
def cmd_search(args: argparse.Namespace, config: Config) -> int:
    if args.k is not None and args.k <= 0:
        raise CommandError("-k must be a positive number")
    with open_kb(config) as kb:
        if log.isEnabledFor(logging.INFO):
            log_loading(kb)
        first = True
        for query in _lines(args.query, "query"):
            started = time.perf_counter()
            hits = kb.search(query, k=args.k, mode=args.mode)
            log.info("search %r: %s", query, ms(time.perf_counter() - started))
            if log.isEnabledFor(logging.INFO):
                log_hits(kb, hits)
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
            if args.query == "-":  # several queries: each result list under its query
                print(("" if first else "\n") + f"> {query}")
                first = False
            if not hits:
                print(f"{query}: no results")
            numbers = kb.passage_numbers(h.chunk_id for h in hits)
            for rank, h in enumerate(hits, 1):
                print(f"{rank}. [{h.score:.4f}] #{h.article_id} {h.title} ({passage_label(numbers, h.chunk_id)})")
                print("   " + h.text.replace("\n", " ")[:300])
    return 0


def make_answerer(config: Config, kb: KnowledgeBase) -> Answerer:
    from .answer import Answerer
    from .llm import LLMError

    try:
        return Answerer(kb, config.answer, llm=config.llm if config.answer.mode == "llm" else None)
    except (ValueError, LLMError) as exc:
        raise CommandError(f"config: {exc}") from None


def format_answer_text(answer: Answer, kept: str = "") -> str:
    """``kept``: what a model's stream left printed above (piped output), so a cut-off part is not repeated."""
    from .texts import say

    lines = [answer.body]
    if kept and not answer.found:
        # Piped, the model's words stay above: say that they were not the answer before "nothing found".
        lines = [say("llm_discarded", answer.language), "", answer.body]
    if answer.cut_off:
        shown = [] if kept and kept.split() == answer.cut_off.split() else [f"{answer.cut_off} …"]
        lines = [*shown, say("llm_cut_off", answer.language), "", answer.body]
    if answer.citations:
        lines.append("")
        lines.append("Quellen:" if answer.language == "de" else "Sources:")
        by_article: dict[int, list] = {}
        for c in answer.citations:
            by_article.setdefault(c.article_id, []).append(c)
        for citations in by_article.values():  # one title per article, its quotes under it
            c = citations[0]
            lines.append(f"{c.title}" + (f" <{c.url}>" if c.url else f" (article #{c.article_id})"))
            for c in citations:
                lines.append(f"  [{c.n}] " + quoted(c.quote, answer.language))
    if answer.mode == "extractive-fallback":
        # The configured LLM failed (timeout, error, unreachable): say so, the quotes are still valid.
        lines.append("")
        lines.append(say("llm_fallback", answer.language))
    return "\n".join(lines)


@command("ask")
def cmd_ask(args: argparse.Namespace, config: Config) -> int:
    from .chat import TerminalStream

    with open_kb(config) as kb:
        answerer = make_answerer(config, kb)
        verbose = log.isEnabledFor(logging.INFO)
        if verbose:
            log_loading(kb)  # before the clock starts: its warm-up search is no question's
        clock = SearchClock(kb) if verbose else None
        first = True
        for question in _lines(args.question, "question"):
            if args.question == "-" and not args.json:
                # Many answers in a row: each under its question, with a blank line between them.
                print(("" if first else "\n") + f"> {echoed(question)}", flush=True)
            # A streaming model's words are printed as it writes them, then the checked answer.
            stream = None if args.json or not answerer.stream else TerminalStream(sys.stdout)
            started = time.perf_counter()
            try:
                answer, evidence = answerer.answer_with_evidence(question, on_text=stream)
            finally:
                if stream is not None:
                    stream.finish()
            if clock is not None:
                log_evidence(kb, answer, evidence, answerer.min_relevance, clock, time.perf_counter() - started)
            if args.json:
                print(json.dumps(answer.to_json(), ensure_ascii=False), flush=True)
                continue
            print(format_answer_text(answer, stream.kept if stream is not None else ""), flush=True)
            first = False
    return 0


# A question is echoed above its answer so a batch reads as a transcript; a pasted article that came in
# as one long line would otherwise fill the terminal before its answer.
ECHO_CHARS = 200


def echoed(question: str) -> str:
    return (
        question if len(question) <= ECHO_CHARS else f"{question[:ECHO_CHARS].rstrip()}… ({len(question):,} characters)"
    )


def log_evidence(
    kb: KnowledgeBase, answer: Answer, evidence: Evidence, needed: float, clock: SearchClock, total: float
) -> None:
    # ``needed`` is the answerer's threshold: [answer] min_relevance may be "auto", resolved per model.
    log.info("question %r (%s)", answer.question, answer.language)
    log_hits(kb, evidence.hits)
    quoted = {c.quote for c in answer.citations}
    log.info("best sentences (* = quoted in the answer):")
    for sentence in evidence.sentences[:SENTENCES_LOGGED]:
        mark = "*" if any(sentence.text in q for q in quoted) else " "
        log.info("  %s %.4f  #%s %s", mark, sentence.score, sentence.hit.article_id, sentence.text[:100])
    verdict = "answered" if answer.found else "not found"
    if answer.mode == "llm" and not answer.found and evidence.relevance >= needed:
        verdict += " (relevant enough, but the language model's reply cited no passage)"
    elif answer.mode == "extractive-fallback":
        verdict += " (extractively: the language model failed)"
    log.info("relevance %.3f (needed: %.3f): %s", evidence.relevance, needed, verdict)
    if evidence.features:
        log.info("  from %s", ", ".join(f"{k} {v:.3f}" for k, v in evidence.features.items()))
    searched, clock.seconds = clock.seconds, 0.0
    log.info(
        "timings: search %s, sentence scoring and answer %s, total %s", ms(searched), ms(total - searched), ms(total)
    )


SENTENCES_LOGGED = 5


@command("migrate")
def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    from index.migrate import migrate

    settings = migration_target(args.to, config)
    source = Path(config.storage.data_dir)
    if config.storage.engine == "postgres" and not (source / DB_FILE).is_file():
        # Without this, a config already switched to PostgreSQL reads as a data dir missing its database.
        raise CommandError(
            'migrate copies a SQLite data dir, and this config has [storage] engine = "postgres" '
            f"(no {DB_FILE} in {source}): run it with the SQLite deployment's config or --data-dir"
        )
    progress: Progress | None = None

    def advance(done: int, total: int) -> None:
        nonlocal progress
        if progress is None:
            progress = Progress("copying", total, "articles")
        progress.advance(done)

    try:
        report = migrate(source, settings, advance)
    finally:
        if progress is not None:
            progress.close()
    print(format_migration(report))
    print(switch_lines(settings, report.target))
    return 0


def migration_target(to: str, config: Config) -> IndexSettings:
    """Settings of the engine ``--to`` names: a PostgreSQL DSN, or a data dir for SQLite."""
    storage = dataclasses.replace(config.storage)
    if to.startswith(("postgresql://", "postgres://")):
        storage.engine, storage.dsn = "postgres", to
        return dataclasses.replace(config.index_settings(), storage=storage)
    if "://" in to:
        raise CommandError(f"--to takes a postgresql:// address or a directory, not {to}")
    path = Path(to)
    if path.exists() and not path.is_dir():
        raise CommandError(f"--to {to} is a file, not a data dir")
    if not path.parent.is_dir():
        raise CommandError(f"--to {to}: its parent {path.parent} does not exist (create it first)")
    path = path.resolve()  # the config line printed at the end must not depend on where the bot starts
    storage.engine, storage.dsn, storage.data_dir = "sqlite", "", str(path)
    return dataclasses.replace(config.index_settings(), data_dir=str(path), storage=storage)


def format_migration(report: MigrationReport) -> str:
    rows = ", ".join(f"{table} {count}" for table, count in report.rows.items())
    totals = report.totals
    lines = [
        f"copied {count_of(report.articles, 'article')} ({count_of(report.passages, 'passage')} with their vectors) "
        f"to {report.target} in {report.seconds:.1f} s"
        + (f"; {count_of(report.already, 'article')} copied before, checked" if report.already else ""),
        f"bot tables copied: {rows}",
        f"verified: {count_of(totals['articles'], 'article')}, {count_of(totals['chunks'], 'passage')}, "
        f"{count_of(totals['embeddings'], 'vector')} on both sides, none half-added, "
        f"{count_of(report.sampled, 'sampled vector')} byte-equal; "
        + ", ".join(f"{table} {totals[table]}" for table in report.rows)
        + " rows equal",
        f"vector index: {report.index}",
    ]
    return "\n".join(lines)


def switch_lines(settings: IndexSettings, where: str) -> str:
    """The config lines that make articlebot use the target (``where``: its DSN without a password)."""
    storage = settings.storage
    if storage.engine == "postgres":
        dsn = without_password(storage.dsn)
        lines = ["[storage]", 'engine = "postgres"', f'dsn = "{dsn if "password" not in dsn else where}"']
        if storage.password_env:
            lines.append(f'password_env = "{storage.password_env}"')
    else:
        lines = ["[storage]", 'engine = "sqlite"', f'data_dir = "{storage.data_dir}"']
    return "to switch, put in the config (and start the bot again):\n" + "\n".join(lines)


def without_password(dsn: str) -> str:
    """A postgresql:// URL as given, less a password in it (the config names a variable holding it instead)."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def parse_feed_id(value: str) -> int:
    feed_id = protocol.parse_id(value)
    if feed_id is None:
        typed = value.strip().lstrip("#")
        raise CommandError(f"not a feed id: {typed!r} (ids are numbers; see 'articlebot feeds list')")
    return feed_id


def format_poll(result: PollResult) -> str:
    name = f"feed #{result.feed_id} {result.title or result.url}"
    if result.status == "failed":
        return f"{name}: failed: {result.error}"
    if result.status == "not modified":
        return f"{name}: not modified"
    parts = [f"{len(result.added)} added", f"{len(result.refreshed)} refreshed", f"{result.duplicates} already present"]
    if result.skipped:
        parts.append(f"{result.skipped} older ones left out")
    if result.deferred:
        parts.append(f"{result.deferred} left for the next poll")
    if result.item_errors:
        parts.append(f"{len(result.item_errors)} failed")
    return f"{name}: {', '.join(parts)}"


@command("feeds")
def cmd_feeds(args: argparse.Namespace, config: Config) -> int:
    from index.feeds import FeedError, Feeds

    kb = open_kb(config)
    feeds = Feeds(kb, backfill=config.feeds.backfill)
    try:
        return FEED_ACTIONS[args.feeds_command](args, feeds)
    except FeedError as exc:
        raise CommandError(str(exc)) from None
    finally:
        feeds.close()
        kb.close()


def _feeds_add(args: argparse.Namespace, feeds: Feeds) -> int:
    feed = feeds.add(args.url)
    print(f"subscribed feed #{feed.id}: {feed.url} (polled by 'articlebot feeds poll' or the running bot)")
    return 0


def _feeds_list(args: argparse.Namespace, feeds: Feeds) -> int:
    records = feeds.list()
    if args.json:
        for feed in records:
            print(json.dumps(feed.to_json(), ensure_ascii=False))
        return 0
    if not records:
        print("no feeds yet; subscribe with 'articlebot feeds add URL'")
    for feed in records:
        print(_feed_lines(feed))
    return 0


def _feed_lines(feed: FeedRecord) -> str:
    text = (
        f"#{feed.id:<4} {feed.title or _untitled(feed)}  {feed.url}\n"
        f"      last check {feed.last_check or '–'}, last success {feed.last_success or '–'}, "
        f"{feed.items_added} items added" + (f", last error: {feed.last_error}" if feed.last_error else "")
    )
    if feed.failures:  # 'feeds poll' skips it until then ('feeds poll ID' does not)
        text += f"\n      failed {count_of(feed.failures, 'time')} in a row, next try {feed.next_try}"
    return text


def _untitled(feed: FeedRecord) -> str:
    """What stands in for the title of a feed never read: it failed, or it has not been tried."""
    return "(never read)" if feed.last_check else "(not polled yet)"


def _feeds_remove(args: argparse.Namespace, feeds: Feeds) -> int:
    feed = feeds.remove(parse_feed_id(args.id))
    print(f"unsubscribed feed #{feed.id}: {feed.url} (its articles stay)")
    return 0


def _feeds_poll(args: argparse.Namespace, feeds: Feeds) -> int:
    from index.feeds import FeedsBusy

    def report(result: PollResult) -> None:
        print(format_poll(result), flush=True)
        for error in result.item_errors:
            print(f"  item failed: {error}", file=sys.stderr)

    named = [parse_feed_id(i) for i in args.ids]
    try:
        results = feeds.poll_due(report, named or None)
    except FeedsBusy as exc:
        if named:  # asked for now, not done: say so (a timer's run has nothing to do and is fine)
            raise CommandError(f"{exc}; try 'articlebot feeds poll {' '.join(args.ids)}' again in a moment") from None
        print(f"{exc}: nothing to do here")
        return 0
    if not results:
        print(
            "no feed is due (none subscribed, or all waiting after failures: 'articlebot feeds list' says until "
            "when, 'articlebot feeds poll ID' polls one now)"
        )
    return 1 if any(r.status == "failed" for r in results) else 0


FEED_ACTIONS = {"add": _feeds_add, "list": _feeds_list, "remove": _feeds_remove, "poll": _feeds_poll}


def use_demo_storage(config: Config) -> None:
    """Point the config at the demo's own SQLite data dir: the samples must not mix with real articles."""
    config.storage = dataclasses.replace(config.storage, engine="sqlite", dsn="", data_dir=DEMO_DATA_DIR)


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
    with open_kb(config) as kb:
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
    return 0


def multilingual_hint(answer: Answer, config: Config) -> str | None:
    """Why an English question went unanswered with the English-only MiniLM model, and the fix."""
    if answer.found or answer.language == "de" or config.embedding.backend != "sentence-transformers":
        return None
    if config.embedding.model:  # a chosen model may well be multilingual
        return None
    return (
        "(If the answer is in a German article: all-MiniLM-L6-v2 reads English only. "
        "The default configuration, without --config, uses the multilingual USE.)"
    )


def open_conversation(
    config: Config, kb: KnowledgeBase, admins: list[int] | None = None, origin: str = "telegram"
) -> Conversation:
    from index.feeds import Feeds

    from .conversation import Conversation
    from .feedback import FeedbackStore

    feedback = FeedbackStore(kb.answer_log())
    answerer = make_answerer(config, kb)
    feeds = Feeds(kb, backfill=config.feeds.backfill)
    return Conversation(
        kb,
        answerer,
        feedback,
        config.telegram,
        config.fetch,
        admins=admins,
        origin=origin,
        feeds=feeds,
        feed_interval_minutes=config.feeds.interval_minutes,
    )


@command("run")
def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from .telegram_app import check_token_shape, protect_token, resolve_token, run_bot

    token = resolve_token(config.telegram, dict(os.environ))
    protect_token(token)
    check_token_shape(token)
    if args.port is not None:
        if not 0 < args.port < 65536:
            raise CommandError(f"--port must be between 1 and 65535, not {args.port}")
        config.telegram.port = args.port
    kb = open_kb(config)
    # Before the model loads and before the ledger takes back unfinished updates: a second poller
    # (or a second process on a SQLite data dir) stops here, in one line, having changed nothing.
    lock = kb.run_lock()
    try:
        refused = lock.acquire(polling=not config.telegram.webhook_url)
        if refused is not None:
            raise CommandError(refused)
        log.info("index: %s", kb.open())
        conversation = open_conversation(config, kb)
        try:
            return run_bot(config.telegram, conversation, token, config.llm if config.answer.mode == "llm" else None)
        finally:
            conversation.feedback.close()
            conversation.feeds.close()
    finally:
        lock.release()
        kb.close()


@command("chat")
def cmd_chat(args: argparse.Namespace, config: Config) -> int:
    from .chat import CONSOLE_USER_ID, prompted, run_chat
    from .texts import ui_language

    kb = open_kb(config)
    kb.open()  # a model or index that cannot work is one line now, not a failure at the first question
    if args.samples:
        load_samples(kb)
    conversation = open_conversation(config, kb, admins=[CONSOLE_USER_ID], origin="chat")
    language = args.lang or ui_language(os.environ.get("LC_ALL") or os.environ.get("LANG"))
    interactive = sys.stdin.isatty()
    lines = prompted(sys.stdin, sys.stdout) if interactive else sys.stdin
    try:
        return run_chat(conversation, lines, sys.stdout, sys.stderr, language, interactive)
    finally:
        conversation.feedback.close()
        conversation.feeds.close()
        kb.close()


OUR_LOGGERS = ("articlebot", "bot", "index")


def setup_logging(verbosity: int, timestamps: bool = False) -> None:
    """Warnings only; -v: what articlebot did, libraries still at WARNING; -vv: everything at DEBUG."""
    # A command's report reads best without timestamps; a running bot's log needs them.
    detailed = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if verbosity >= 2:
        logging.basicConfig(level=logging.DEBUG, format=detailed)
    else:
        logging.basicConfig(level=logging.WARNING, format=detailed if timestamps else "%(name)s: %(message)s")
    logging.getLogger().setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbosity == 1 else logging.NOTSET)
    # A running bot's start line and refusals (bot.conversation.status): shown without -v too.
    logging.getLogger("articlebot.status").setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    if verbosity < 2:
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    # "discarding data", "empty HTML tree": said again, in the admin's terms, by the one-line refusal.
    for name in ("trafilatura", "htmldate"):
        logging.getLogger(name).setLevel(logging.ERROR if verbosity < 2 else logging.NOTSET)


def prepare_data_dir(path: Path) -> None:
    """The data dir exists and is writable, or a one-line reason why not (before anything is opened)."""
    if path.exists() and not path.is_dir():
        raise CommandError(f"data dir {path} is a file, not a directory (fix --data-dir or [storage] data_dir)")
    if not path.exists():
        if not path.parent.is_dir():
            # A typo in the path should not quietly grow a new directory tree.
            raise CommandError(f"data dir {path}: its parent {path.parent} does not exist (create it first)")
        try:
            # exist_ok: two processes started with one config (two webhook instances) may both get here.
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise CommandError(f"cannot create the data dir {path}: {exc.strerror or exc}") from None
    try:
        # A real probe: os.access says yes to root even where the file system refuses every write.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise CommandError(f"data dir {path} is not writable") from exc


# Commands that only read or change what is already there: on a data dir without a knowledge base
# (most likely a mistyped path) they create nothing. Adding, importing, serving and the demo create one.
NEEDS_KNOWLEDGE_BASE = frozenset({"list", "show", "search", "ask", "stats", "remove", "update", "reindex"})
FEEDS_NEEDING_KNOWLEDGE_BASE = frozenset({"list", "remove", "poll"})


def needs_knowledge_base(args: argparse.Namespace) -> bool:
    if args.command == "feeds":
        return args.feeds_command in FEEDS_NEEDING_KNOWLEDGE_BASE
    return args.command in NEEDS_KNOWLEDGE_BASE


def require_knowledge_base(config: Config) -> None:
    """A SQLite data dir without a database, for a command that needs one: most likely a mistyped path."""
    path = Path(config.storage.data_dir)
    if config.storage.engine != "sqlite" or (path.exists() and not path.is_dir()):
        return  # PostgreSQL reports its own state; a file in the way is prepare_data_dir's message
    if not (path / DB_FILE).is_file():
        raise CommandError(
            f"no knowledge base in {path} yet: add articles with 'articlebot add', "
            "or check --data-dir or [storage] data_dir in your config"
        )


def quiet_broken_pipe() -> int:
    """The reader went away (``| head``): stop quietly, as ``cat`` does, without a message."""
    # Python flushes stdout once more at exit; pointed at devnull, that flush cannot fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):  # stdout is no real file (captured in tests)
        os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what a shell reports for cat


def remove_if_empty(path: Path | None) -> None:
    """A refused first ``add`` (no such file, an unreachable link) leaves no empty data dir behind."""
    if path is not None:
        with contextlib.suppress(OSError):  # not empty (something was written), or already gone
            path.rmdir()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, timestamps=args.command == "run")
    created: Path | None = None  # the data dir this command made, taken back if it fails before writing
    try:
        config = load_config(args.config, args.data_dir)
        if args.command == "demo" and not args.data_dir:
            use_demo_storage(config)
        if needs_knowledge_base(args):
            require_knowledge_base(config)
        if args.command != "migrate":  # migrate reads the data dir and must not create an empty one
            data_dir = Path(config.storage.data_dir)
            created = None if data_dir.exists() else data_dir
            prepare_data_dir(data_dir)
        code = HANDLERS[args.command](args, config)
        sys.stdout.flush()  # here, not at exit, so a reader that went away is noticed while it can be handled
        return code
    except ConfigError as exc:
        print(f"articlebot: config error: {exc}", file=sys.stderr)
        return 2
    except (UserError, ExtractionError, ArticleNotFound) as exc:
        # Only errors the user can fix become one line; any other exception is a bug and keeps its traceback.
        print(f"articlebot: {exc}", file=sys.stderr)
        remove_if_empty(created)
        return 1
    except BrokenPipeError:
        return quiet_broken_pipe()
    except KeyboardInterrupt:
        print("articlebot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
