"""Moving a deployment: a SQLite data dir copied into another engine (PostgreSQL, or another data dir).

Nothing is re-embedded: articles keep their ids, passages their ids, text and vectors (the bytes as
stored), the FTS rows their terms as the analyzer wrote them, and the id counters move along, so an
id handed out before is never handed out again. The bot's tables are copied row for row, the update
ledger too: updates recorded but not yet answered are confirmed to Telegram already (bot.updates), so
without their rows they would never be answered.

Each article is one transaction on the target, so a copy killed at any moment leaves whole articles
only; run again, it checks that what is there matches the source and copies the rest. Before the
first write it checks that the target holds nothing but a part of this same source (else: one line,
nothing changed); after the last it compares counts, integrity and a sample of vectors byte for byte.
It holds the lock a running bot holds, on both sides (``Engine.run_lock``): it refuses to start while a
bot runs on either, and no bot starts on them before it is done.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .engine import BOT_TABLES, ArticleStore, BotTableRows, Engine
from .engines import DB_FILE, SQLiteEngine, open_engine
from .errors import UserError
from .records import ArticleNotFound, ArticleRecord, ChunkRecord
from .settings import IndexSettings
from .store import Store

# Vectors compared byte for byte at the end (chosen at random; every vector of a re-checked article is compared too).
SAMPLE_VECTORS = 200
ROWS_PER_TRANSACTION = 1000
PAGE = 1000


class MigrationError(UserError):
    """The copy cannot start or did not verify: one line for the user."""


@dataclass
class MigrationReport:
    articles: int = 0  # copied by this run
    passages: int = 0
    already: int = 0  # articles found on the target from an earlier run, and checked
    rows: dict[str, int] = field(default_factory=dict)  # bot table → rows copied by this run
    totals: dict[str, int] = field(default_factory=dict)  # what both sides hold at the end
    sampled: int = 0  # vectors compared byte for byte at the end
    model: str = ""
    seconds: float = 0.0
    target: str = ""  # where the copy went (a DSN without its password, or a file)
    index: str = ""  # the target's vector index, built so the first start need not build it


def open_source(data_dir: Path) -> Store:
    """The SQLite store of a data dir that has one (never a new, empty one)."""
    path = Path(data_dir) / DB_FILE
    if not path.is_file():
        raise MigrationError(f"no articlebot database in {data_dir} ({DB_FILE} is missing): nothing to migrate")
    return Store(path)


def migrate(
    data_dir: Path,
    target_settings: IndexSettings,
    progress: Callable[[int, int], None] | None = None,
    sample: int = SAMPLE_VECTORS,
) -> MigrationReport:
    """Copy the SQLite data dir ``data_dir`` into the engine ``target_settings`` name (resuming an earlier
    copy) and verify it."""
    started = time.monotonic()
    storage = target_settings.storage
    if storage.engine == "sqlite" and Path(target_settings.data_dir).resolve() == Path(data_dir).resolve():
        raise MigrationError(f"the target is the source data dir {data_dir} itself")
    with ExitStack() as opened:
        # The source first: a missing or damaged one is refused before the target is touched.
        source = opened.enter_context(closing(open_source(data_dir)))
        model = _check_source(source)
        source_engine = SQLiteEngine(Path(data_dir))
        _hold_run_lock(opened, source_engine, "the source data dir")
        source_tables = opened.enter_context(closing(source_engine.bot_tables()))
        target = open_engine(target_settings)
        _hold_run_lock(opened, target, "the target")
        store = opened.enter_context(closing(target.article_store()))
        tables = opened.enter_context(closing(target.bot_tables()))
        report = _migrate(source, source_tables, store, tables, model, progress, sample)
        report.index = _build_vector_index(target, target_settings, store)
    report.seconds = time.monotonic() - started
    report.target = target.describe()
    return report


def _hold_run_lock(opened: ExitStack, engine: Engine, what: str) -> None:
    """The lock a running bot holds, taken for the whole copy: no bot writes to either side meanwhile,
    and none starts on them before the copy is done."""
    lock = engine.run_lock()
    refused = lock.acquire(polling=True)  # exclusive, as a long-polling bot takes it
    if refused is not None:
        who = refused.split(". ")[0]  # the first sentence names the other process; the rest is about Telegram
        raise MigrationError(f"a bot runs on {what} ({who}): stop it, then migrate")
    opened.callback(lock.release)


def _migrate(
    source: Store,
    source_tables: BotTableRows,
    target: ArticleStore,
    target_tables: BotTableRows,
    model: str,
    progress: Callable[[int, int], None] | None,
    sample: int,
) -> MigrationReport:
    wanted = _hashes(source)
    present = _check_target(wanted, target, model)
    table_plan = {table: _plan_rows(table, source_tables, target_tables) for table in BOT_TABLES}
    # Checked and nothing written yet; from here on every write is one the target needs.
    report = MigrationReport(model=model)
    target.raise_id_counters(source.id_counters())
    for done, article_id in enumerate(sorted(wanted), 1):
        if article_id in present:
            _check_copied(source, target, article_id)
            report.already += 1
        else:
            report.passages += _copy_article(source, target, article_id, model)
            report.articles += 1
        if progress:
            progress(done, len(wanted))
    for table, missing in table_plan.items():
        report.rows[table] = _copy_rows(target_tables, table, missing)
    target_tables.raise_counters(source_tables.counters())
    report.totals, report.sampled = _verify(source, source_tables, target, target_tables, sample)
    return report


# --- before the first write ----------------------------------------------------------------------


def _check_source(source: Store) -> str:
    """The embedding model of the source's vectors, once it is known to hold only whole articles."""
    broken = {k: v for k, v in source.integrity().items() if v}
    if broken:
        problems = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in broken.items())
        raise MigrationError(f"the source database is not consistent ({problems}): a damaged database is not copied")
    models = source.embedding_models()
    if len(models) > 1:
        names = ", ".join(m for m, _ in models)
        raise MigrationError(f"the source holds vectors of several models ({names}); run 'articlebot reindex' first")
    return models[0][0] if models else ""


def _hashes(store: ArticleStore) -> dict[int, str]:
    """Article id → content hash, read a page at a time (articles carry their text)."""
    out: dict[int, str] = {}
    offset = 0
    while page := store.articles(PAGE, offset):
        out.update((a.id, a.content_hash) for a in page)
        offset += len(page)
    return out


def _check_target(wanted: dict[int, str], target: ArticleStore, model: str) -> set[int]:
    """The ids of the articles the target holds already (from an earlier run); refuses any other content."""
    held = _hashes(target)
    foreign = [i for i, h in held.items() if wanted.get(i) != h]
    if foreign:
        example = target.article(min(foreign))
        raise MigrationError(
            f"the target already holds {len(foreign)} other article(s) (e.g. #{example.id} {example.title!r}), "
            "not copied from this data dir: migrate into an empty database"
        )
    models = [m for m, _ in target.embedding_models()]
    if models and models != [model]:
        raise MigrationError(f"the target holds vectors of {', '.join(models)}, the source of {model}")
    return set(held)


def _plan_rows(table: str, source: BotTableRows, target: BotTableRows) -> list[dict]:
    """The source's rows the target lacks; refuses a target row the source does not have as it is."""
    key = BOT_TABLES[table]
    held = {tuple(row[k] for k in key): row for row in target.read(table)}
    missing = []
    for row in source.read(table):
        there = held.pop(tuple(row[k] for k in key), None)
        if there is None:
            missing.append(row)
        elif there != row:
            raise MigrationError(f"the target's {table} table holds another row under {_key_text(key, row)}")
    if held:
        row = next(iter(held.values()))
        raise MigrationError(
            f"the target's {table} table holds {len(held)} row(s) not in this data dir (e.g. {_key_text(key, row)}): "
            "migrate into an empty database"
        )
    return missing


def _key_text(key: tuple[str, ...], row: dict) -> str:
    return ", ".join(f"{k} {row[k]!r}" for k in key)


# --- copying ---------------------------------------------------------------------------------------


def _copy_article(source: Store, target: ArticleStore, article_id: int, model: str) -> int:
    article = source.article(article_id)
    chunks = source.article_chunks(article_id)
    ids, vectors = _vectors(source, chunks)
    lexical = source.lexical_rows(ids)
    target.import_article(article, chunks, vectors, model, [lexical[i] for i in ids])
    return len(chunks)


def _vectors(store: ArticleStore, chunks: list[ChunkRecord]) -> tuple[list[int], np.ndarray]:
    ids = [c.id for c in chunks]
    found, vectors = store.vectors_for(ids)
    if found.tolist() != sorted(ids):
        raise MigrationError(f"passages {sorted(set(ids) - set(found.tolist()))} have no vector")
    order = np.searchsorted(found, ids)  # vectors_for answers in id order, the chunks come in text order
    return ids, vectors[order]


def _check_copied(source: Store, target: ArticleStore, article_id: int) -> None:
    """An article an earlier run copied: the same record, passages and vector bytes as the source's."""
    try:
        there = target.article(article_id)
    except ArticleNotFound:
        raise MigrationError(f"article #{article_id} was removed from the target while copying") from None
    if _article_facts(there) != _article_facts(source.article(article_id)):
        raise MigrationError(f"article #{article_id} on the target differs from the source's")
    theirs, ours = target.article_chunks(article_id), source.article_chunks(article_id)
    if [_chunk_facts(c) for c in theirs] != [_chunk_facts(c) for c in ours]:
        raise MigrationError(f"the passages of article #{article_id} on the target differ from the source's")
    if not _same_bytes(_vectors(source, ours)[1], _vectors(target, theirs)[1]):
        raise MigrationError(f"the vectors of article #{article_id} on the target differ from the source's")


def _article_facts(a: ArticleRecord) -> tuple:
    return (a.id, a.title, a.url, a.source, a.published, a.added_by, a.added_at, a.content_hash, a.text, a.language)


def _chunk_facts(c: ChunkRecord) -> tuple:
    return (c.id, c.article_id, c.position, c.text, c.start, c.end)


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def _copy_rows(target: BotTableRows, table: str, rows: list[dict]) -> int:
    copied = 0
    for batch in _batches(rows, ROWS_PER_TRANSACTION):
        copied += target.write(table, batch)
    return copied


def _batches(rows: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _build_vector_index(target: Engine, settings: IndexSettings, store: ArticleStore) -> str:
    """Build (or bring up to date) the target's vector index from the copied vectors; what it is."""
    models = store.embedding_models()
    if not models:
        return "empty"
    model, dim = models[0]
    index = target.vector_index(settings.search, model, dim)
    index.load_or_rebuild(store)
    index.save()
    return f"{index.kind}, {index.count} vectors"


# --- after the last write --------------------------------------------------------------------------


def _verify(
    source: Store, source_tables: BotTableRows, target: ArticleStore, target_tables: BotTableRows, sample: int
) -> tuple[dict[str, int], int]:
    """Counts equal on both sides, no half-added article, a sample of vectors byte-equal; (totals, sampled)."""
    totals = source.counts()
    if target.counts() != totals:
        raise MigrationError(f"after copying the target holds {target.counts()}, the source {totals}: run it again")
    broken = {k: v for k, v in target.integrity().items() if v}
    if broken:
        raise MigrationError(f"the target is not consistent after copying: {broken}")
    ids = source.chunk_ids()
    if not np.array_equal(target.chunk_ids(), ids):
        raise MigrationError("the target's passage ids differ from the source's: run it again")
    for table in BOT_TABLES:
        ours, theirs = sum(1 for _ in source_tables.read(table)), sum(1 for _ in target_tables.read(table))
        if ours != theirs:
            raise MigrationError(f"the target's {table} table holds {theirs} rows, the source's {ours}: run it again")
        totals[table] = ours
    picked = sorted(random.Random(len(ids)).sample(ids.tolist(), min(sample, len(ids))))
    if picked:
        ours_ids, ours_vectors = source.vectors_for(picked)
        theirs_ids, theirs_vectors = target.vectors_for(picked)
        if not np.array_equal(ours_ids, theirs_ids) or not _same_bytes(ours_vectors, theirs_vectors):
            raise MigrationError("a sampled vector differs between source and target")
    return totals, len(picked)
