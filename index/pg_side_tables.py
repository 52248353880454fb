"""The bot's own tables in PostgreSQL: the update ledger, answers and votes, portable SQL for the feeds, run lock.

Same behaviour as ``index.side_tables`` (SQLite), and safe with several bot processes on one database:

- ``record`` is one ``INSERT … ON CONFLICT DO NOTHING``: an update delivered to two processes is new to one.
- ``begin`` claims with ``UPDATE … WHERE state = 'received' RETURNING``: the row lock makes one claim win.
- Each ledger is a bot *instance*: on ``open`` it draws an id from the ``bot_instances`` sequence and holds a
  session-level advisory lock on it for as long as its connection lives; its claims carry that id
  (``updates.claimed_by``), and so do the updates it recorded (queued in its memory). ``recover`` (run
  when a process starts, and from time to time) takes over only the updates whose instance lock is free:
  those of a process that died (its session ended and PostgreSQL released the lock), never those another
  live process has queued or is answering right now.

A killed process's connection closes with it, so its lock goes at once; a machine that vanishes is noticed
by TCP keepalives (set per session below) within about a minute.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.sql import SQL, Identifier, Placeholder

from .engine import ABANDONED, BOT_TABLES, PROCESSING, RECEIVED, StorageError
from .postgres import connect, describe, open_migrated
from .records import answer_from_row, now, stamp, vote_from_row
from .settings import StorageSettings

# Advisory lock class (first key of the two-key form) of bot instances: ("arbi" in ASCII).
INSTANCE_LOCKS = 0x61726269
# Advisory lock (two-key form) of running bot processes: exclusive while long polling, shared for webhooks.
RUN_LOCK = (0x6172706C, 0)
# Advisory lock class of ``PgPortableSQL.hold`` (the second key hashes the name): ("arho").
HOLD_LOCKS = 0x6172686F
# How soon PostgreSQL notices a vanished client machine (and frees its locks): idle, interval, probes.
KEEPALIVES = (("tcp_keepalives_idle", "30"), ("tcp_keepalives_interval", "10"), ("tcp_keepalives_count", "3"))


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def process_name() -> str:
    """Who this process is, as other processes see it in pg_stat_activity (and in the polling message)."""
    return f"articlebot pid {os.getpid()} on {socket.gethostname()}"


def _identify(conn: psycopg.Connection) -> None:
    conn.execute("SELECT set_config('application_name', %s, false)", (process_name(),))
    for name, value in KEEPALIVES:
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))


class _Session:
    """One connection of a table object: calls serialised by a lock, psycopg errors as ``StorageError``.

    A connection the server dropped (a restart, a network cut) is replaced on the next call, after
    ``on_connect`` ran on the new one.
    """

    def __init__(self, storage: StorageSettings, on_connect=None):
        self.storage = storage
        self.on_connect = on_connect
        self.lock = threading.RLock()
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            conn = open_migrated(self.storage)
            try:
                if self.on_connect is not None:
                    self.on_connect(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @contextmanager
    def use(self, what: str) -> Iterator[psycopg.Connection]:
        with self.lock:
            try:
                yield self.conn
            except psycopg.Error as exc:
                # The bot retries what it could not record; it knows no psycopg.
                raise StorageError(f"{what} failed: {_reason(exc)}") from exc

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class PgUpdateLedger:
    """The ``updates`` table, shared by every bot process on the database (see the module's docstring)."""

    def __init__(self, storage: StorageSettings):
        self.storage = storage
        self.instance: int | None = None
        self._session: _Session | None = None
        self._lock = threading.Lock()

    def _start_instance(self, conn: psycopg.Connection) -> None:
        _identify(conn)
        instance = conn.execute("SELECT nextval('bot_instances')").fetchone()[0]
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (INSTANCE_LOCKS, instance))
        # A new connection is a new instance, also after a dropped one: what the old session held is
        # then picked up by recovery (this process's or another's) within RECOVER_EVERY, including a
        # batch whose commit we never heard of (Telegram's repeat finds it recorded and drops it). The
        # price: an answer being written across the drop may be written twice.
        self.instance = int(instance)

    def open(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            session = _Session(self.storage, self._start_instance)
            with session.use("opening the update ledger"):
                pass
            self._session = session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()  # ends the session: the instance lock goes with it
                self._session = None

    @property
    def conn(self) -> psycopg.Connection:
        """The ledger's connection (tests and diagnostics)."""
        return self._use_session().conn

    def _use_session(self) -> _Session:
        if self._session is None:
            raise RuntimeError("the update ledger is not open")
        return self._session

    def record(self, rows: Iterable[tuple[int, str]]) -> list[int]:
        """Record (update id, JSON) rows in one statement; the ids that were new, in the order given."""
        rows = list(rows)
        if not rows:
            return []
        ids = [update_id for update_id, _ in rows]
        with self._use_session().use("recording updates") as conn:
            inserted = conn.execute(
                "INSERT INTO updates (update_id, state, received_at, attempts, payload, claimed_by) "
                "SELECT u.id, %s, %s, 0, u.payload, %s FROM unnest(%s::bigint[], %s::text[]) AS u (id, payload) "
                "ON CONFLICT (update_id) DO NOTHING RETURNING update_id",
                (RECEIVED, stamp(), self.instance, ids, [payload for _, payload in rows]),
            ).fetchall()
        new = {row[0] for row in inserted}
        return [update_id for update_id in dict.fromkeys(ids) if update_id in new]

    def begin(self, update_id: int) -> bool:
        """Claim an update for handling; False when it was handled, given up, or claimed by another process."""
        session = self._use_session()
        with session.use("claiming an update") as conn:
            claimed = conn.execute(
                "UPDATE updates SET state = %s, attempts = attempts + 1, claimed_by = %s "
                "WHERE update_id = %s AND state = %s RETURNING 1",
                (PROCESSING, self.instance, update_id, RECEIVED),
            ).fetchone()
            if claimed:
                return True
            known = conn.execute("SELECT 1 FROM updates WHERE update_id = %s", (update_id,)).fetchone()
        return known is None  # not from our queue (a test calling process_update): nothing to dedupe against

    def finish(self, update_id: int, state: str) -> None:
        """Mark an update answered or failed; whichever comes first stays."""
        with self._use_session().use("finishing an update") as conn:
            conn.execute(
                "UPDATE updates SET state = %s, finished_at = %s WHERE update_id = %s AND state IN (%s, %s)",
                (state, stamp(), update_id, RECEIVED, PROCESSING),
            )

    def recover(self, max_attempts: int, keep_finished: timedelta) -> tuple[list[int], list[tuple[int, str]]]:
        """(ids given up, (id, JSON) of the unanswered updates no live process holds, oldest first), in one transaction.

        Run when a bot process starts, and again from time to time: updates whose instance is gone (received
        or processing when its process died) become this instance's (the caller queues them); those tried
        ``max_attempts`` times are given up; finished ones older than ``keep_finished`` are forgotten.
        Updates a live process holds (queued there, or being answered) stay its own.
        """
        with self._use_session().use("recovering updates") as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (INSTANCE_LOCKS,))  # one recovery at a time
            left = conn.execute(
                "UPDATE updates SET state = %s, claimed_by = %s WHERE state IN (%s, %s) AND NOT EXISTS ("
                "SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid = %s AND l.objid = updates.claimed_by) RETURNING update_id, attempts, payload",
                (RECEIVED, self.instance, RECEIVED, PROCESSING, INSTANCE_LOCKS),
            ).fetchall()
            given_up = sorted(update_id for update_id, attempts, _ in left if attempts >= max_attempts)
            conn.execute(
                "UPDATE updates SET state = %s, finished_at = %s WHERE update_id = ANY(%s)",
                (ABANDONED, stamp(), given_up),
            )
            cutoff = stamp(datetime.now(UTC) - keep_finished)
            conn.execute(
                "DELETE FROM updates WHERE state NOT IN (%s, %s) AND received_at < %s", (RECEIVED, PROCESSING, cutoff)
            )
        taken = sorted((update_id, payload) for update_id, attempts, payload in left if attempts < max_attempts)
        return given_up, taken

    def states(self) -> dict[int, str]:
        """Every recorded update's state (for tests and diagnostics)."""
        with self._use_session().use("reading the update ledger") as conn:
            return dict(conn.execute("SELECT update_id, state FROM updates").fetchall())


# The columns an answer row may set (record_answer builds its INSERT from the row's keys).
_ANSWER_COLUMNS = ("chat_id", "question", "answer", "found", "language", "mode", "citations")


class PgAnswerLog:
    """The ``answers`` and ``feedback`` tables: every answer given, and one vote per person and answer."""

    def __init__(self, storage: StorageSettings):
        self._session = _Session(storage)
        with self._session.use("opening the answer log"):
            pass

    def record_answer(self, row: dict) -> int:
        """Store an answer (question, answer, found, language, mode, chat_id, citations as dicts); its id."""
        unknown = set(row) - set(_ANSWER_COLUMNS)
        if unknown:
            raise ValueError(f"answers have no column {sorted(unknown)}")
        row = {**row, "created_at": now(), "citations": json.dumps(row.get("citations") or [], ensure_ascii=False)}
        columns = list(row)
        sql = f"INSERT INTO answers ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) RETURNING id"
        with self._session.use("recording an answer") as conn:
            return int(conn.execute(sql, [row[c] for c in columns]).fetchone()[0])

    def answer(self, answer_id: int) -> dict | None:
        """id, question, answer, language and citations (dicts) of a stored answer, or None."""
        with self._session.use("reading an answer") as conn:
            row = conn.execute(
                "SELECT id, question, answer, language, citations FROM answers WHERE id = %s", (answer_id,)
            ).fetchone()
        return None if row is None else answer_from_row(row)

    def vote(self, answer_id: int, user_id: int, vote: int) -> bool:
        """Record (or change) a vote; False when the answer is unknown."""
        with self._session.use("recording a vote") as conn:
            done = conn.execute(
                "INSERT INTO feedback (answer_id, user_id, vote, created_at) "
                "SELECT id, %s, %s, %s FROM answers WHERE id = %s "
                "ON CONFLICT (answer_id, user_id) DO UPDATE SET vote = excluded.vote, created_at = excluded.created_at "
                "RETURNING 1",
                (user_id, vote, now(), answer_id),
            ).fetchone()
        return done is not None

    def feedback(self) -> list[dict]:
        """Every vote with the question, answer and citations it is about, newest first."""
        sql = (
            "SELECT f.answer_id, f.user_id, f.vote, f.created_at, a.question, a.answer, a.citations "
            "FROM feedback f JOIN answers a ON a.id = f.answer_id ORDER BY f.id DESC"
        )
        with self._session.use("reading the feedback") as conn:
            rows = conn.execute(sql).fetchall()
        return [vote_from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._session.use("counting answers") as conn:
            answers = conn.execute("SELECT count(*) FROM answers").fetchone()[0]
            up, down = conn.execute(
                "SELECT count(*) FILTER (WHERE vote > 0), count(*) FILTER (WHERE vote < 0) FROM feedback"
            ).fetchone()
        return {"answers": answers, "up": up, "down": down}

    def close(self) -> None:
        self._session.close()


def _portable(sql: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgTransaction:
    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def execute(self, sql: str, args: Sequence = ()) -> list[tuple]:
        cursor = self.conn.execute(_portable(sql), tuple(args))
        return cursor.fetchall() if cursor.description else []

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(_portable(sql), [tuple(r) for r in rows])


class PgPortableSQL:
    """``index.engine.PortableSQL`` on PostgreSQL: the same SQL as on SQLite, ``?`` turned into ``%s``."""

    def __init__(self, storage: StorageSettings):
        self._session = _Session(storage)
        with self._session.use("opening the database"):
            pass

    def query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._session.use("a query") as conn:
            return PgTransaction(conn).execute(sql, args)

    @contextmanager
    def transaction(self) -> Iterator[PgTransaction]:
        with self._session.use("a transaction") as conn, conn.transaction():
            yield PgTransaction(conn)

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        """True inside while no other process holds ``name`` (a session advisory lock, freed if we die)."""
        key = (HOLD_LOCKS, name)
        with self._session.use("taking a lock") as conn:
            ours = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", key).fetchone()[0]
        try:
            yield ours
        finally:
            if ours:
                with self._session.use("releasing a lock") as conn:
                    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", key)

    def close(self) -> None:
        self._session.close()


class PgRunLock:
    """Which bot processes run on this database: an advisory lock, on a session of its own while the process runs.

    A long-polling process holds it exclusively (Telegram hands updates to one getUpdates consumer, and
    polling deletes the webhook the others receive on); webhook processes hold it shared, so any number
    of them run together, but never beside a poller.
    """

    def __init__(self, storage: StorageSettings):
        self.storage = storage
        self._conn: psycopg.Connection | None = None

    def acquire(self, polling: bool) -> str | None:
        """None when this process may run now; else why not, in one line naming the other processes."""
        conn = connect(self.storage)
        try:
            _identify(conn)
            take = "pg_try_advisory_lock" if polling else "pg_try_advisory_lock_shared"
            if conn.execute(f"SELECT {take}(%s, %s)", RUN_LOCK).fetchone()[0]:
                self._conn = conn
                return None
            holders = [
                f"{name or 'a process'}{f' from {address}' if address else ''} since {since} UTC ({_MODES[mode]})"
                for name, address, since, mode in conn.execute(
                    "SELECT a.application_name, host(a.client_addr), "
                    "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), l.mode "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                    "AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 2 "
                    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "ORDER BY a.backend_start",
                    RUN_LOCK,
                )
            ]
        except psycopg.Error as exc:
            conn.close()
            raise StorageError(f"checking for other bot processes failed: {_reason(exc)}") from exc
        conn.close()
        others = "; ".join(holders) or "another process, just now"
        if polling:
            return (
                f"bot processes already run on {describe(self.storage)}: {others}. Telegram gives updates to one "
                "long-polling process only: stop them, or run this one in webhook mode too "
                "([telegram] webhook_url, each process on its own port)"
            )
        return (
            f"a bot process long-polls Telegram on {describe(self.storage)}: {others}. Polling and webhooks "
            "exclude each other: stop it first, then run every process in webhook mode"
        )

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # the session's end releases the lock
            self._conn = None


_MODES = {"ExclusiveLock": "long polling", "ShareLock": "webhook"}


class PgBotTables:
    """The bot's tables (``BOT_TABLES``) as plain rows, shaped as SQLite's: what ``index.migrate`` copies."""

    # Bookkeeping of the live processes sharing this database (which one is answering an update):
    # not the bot's data, and meaningless in another database.
    LOCAL_COLUMNS = frozenset({"claimed_by"})

    def __init__(self, storage: StorageSettings):
        self.storage = storage
        self._conn = open_migrated(storage)

    def read(self, table: str) -> Iterator[dict]:
        key = _key(table)
        cursor = self._conn.execute(SQL("SELECT * FROM {}").format(Identifier(table)))
        columns = [d.name for d in cursor.description]
        rows = [{c: v for c, v in zip(columns, row, strict=True) if c not in self.LOCAL_COLUMNS} for row in cursor]
        # Sorted here, not by ORDER BY: Python orders text by code point, as SQLite does, whatever the collation.
        rows.sort(key=lambda row: tuple(row[k] for k in key))
        yield from rows

    def write(self, table: str, rows: Sequence[dict]) -> int:
        """Insert the rows whose key is not here yet, in one transaction; how many were new."""
        _key(table)
        added = 0
        with self._conn.transaction():
            for row in rows:
                statement = SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
                    Identifier(table),
                    SQL(", ").join(map(Identifier, row)),
                    SQL(", ").join(Placeholder() * len(row)),
                )
                added += self._conn.execute(statement, tuple(row.values())).rowcount
        return added

    def counters(self) -> dict[str, int]:
        """Per table with an identity id: the highest id it holds or its sequence handed out."""
        out = {}
        for table in _ID_TABLES:
            highest = self._conn.execute(
                SQL("SELECT coalesce(max(id), 0) FROM {}").format(Identifier(table))
            ).fetchone()[0]
            out[table] = max(int(highest), self._sequence_value(table))
        return out

    def raise_counters(self, counters: dict[str, int]) -> None:
        # Rows copied with their ids leave an identity's sequence where it was: the next insert would
        # take id 1 again. Each sequence moves past the source's highest id (and the target's own).
        own = self.counters()
        with self._conn.transaction():
            for table in _ID_TABLES:
                last = max(counters.get(table, 0), own[table])
                if last > 0:
                    self._conn.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", (table, last))

    def _sequence_value(self, table: str) -> int:
        name = self._conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]
        last, called = self._conn.execute(SQL("SELECT last_value, is_called FROM {}").format(SQL(name))).fetchone()
        return int(last) if called else 0

    def close(self) -> None:
        self._conn.close()


# The bot's tables whose id column is an identity (a sequence hands out the ids).
_ID_TABLES = tuple(table for table, key in BOT_TABLES.items() if key == ("id",))


def _key(table: str) -> tuple[str, ...]:
    try:
        return BOT_TABLES[table]
    except KeyError:
        raise ValueError(f"not one of the bot's tables: {table!r}") from None
