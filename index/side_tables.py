"""The bot's own tables in the knowledge base's SQLite file: the update ledger, answers and votes; also the
portable SQL connection the feeds use, and the run lock (one bot process per SQLite data dir).

The SQL lives here, on the storage side, behind the ``UpdateLedgerTable``, ``AnswerLog``, ``PortableSQL`` and
``RunLock`` protocols of ``index.engine``; the bot holds the policy (what a state means, when to give up) and
never sees SQLite. Each table object has a connection of its own: the store's write lock is never held for a
vote or an update. PostgreSQL's versions, for several processes, are in ``index.pg_side_tables``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlite_utils

from .engine import ABANDONED, BOT_TABLES, PROCESSING, RECEIVED, StorageError
from .records import answer_from_row, now, stamp, vote_from_row
from .schema import connect, open_migrated


class SQLiteUpdateLedger:
    """The ``updates`` table. Blocking methods, serialised by a lock (one sqlite3 connection)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        # Unfinished updates this ledger recorded, claimed or took back since it was opened: queued in
        # this process, so ``recover`` leaves them alone (the run lock makes this the only process).
        self._mine: set[int] = set()

    def open(self) -> None:
        with self._lock:
            if self._conn is not None:
                return
            self._conn = open_migrated(self.path)
            self._mine = set()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the update ledger is not open")
        return self._conn

    def record(self, rows: Iterable[tuple[int, str]]) -> list[int]:
        """Record (update id, JSON) rows in one transaction; the ids that were new."""
        received_at = stamp()
        new = []
        with self._lock:
            conn = self.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for update_id, payload in rows:
                        cursor = conn.execute(
                            "INSERT OR IGNORE INTO updates (update_id, state, received_at, attempts, payload) "
                            "VALUES (?, ?, ?, 0, ?)",
                            (update_id, RECEIVED, received_at, payload),
                        )
                        if cursor.rowcount:
                            new.append(update_id)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                # The bot retries a batch it could not record; it knows no sqlite3.
                raise StorageError(f"recording updates failed: {exc}") from exc
            self._mine.update(new)
        return new

    def begin(self, update_id: int) -> bool:
        """Claim an update for handling; False when it was handled (or given up) before."""
        with self._lock:
            # One statement: the claim is atomic even if another connection claims at the same moment.
            claimed = self.conn.execute(
                "UPDATE updates SET state = ?, attempts = attempts + 1 WHERE update_id = ? AND state = ? RETURNING 1",
                (PROCESSING, update_id, RECEIVED),
            ).fetchall()
            if claimed:
                self._mine.add(update_id)
                return True
            known = self.conn.execute("SELECT 1 FROM updates WHERE update_id = ?", (update_id,)).fetchall()
        return not known  # not from our queue (a test calling process_update): nothing to dedupe against

    def finish(self, update_id: int, state: str) -> None:
        """Mark an update answered or failed; whichever comes first stays."""
        with self._lock:
            self.conn.execute(
                "UPDATE updates SET state = ?, finished_at = ? WHERE update_id = ? AND state IN (?, ?)",
                (state, stamp(), update_id, RECEIVED, PROCESSING),
            )
            self._mine.discard(update_id)

    def recover(self, max_attempts: int, keep_finished: timedelta) -> tuple[list[int], list[tuple[int, str]]]:
        """(ids given up, (id, JSON) of the unanswered updates no live ledger holds, oldest first), in one transaction.

        Run when the bot starts, and again from time to time: updates a killed process left received or
        processing go back to received and become this ledger's (the caller queues them); those tried
        ``max_attempts`` times are given up; finished ones older than ``keep_finished`` are forgotten.
        Updates this ledger holds itself (queued or being answered here) are left alone.
        """
        with self._lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                left = [
                    row
                    for row in conn.execute(
                        "SELECT update_id, attempts, payload FROM updates WHERE state IN (?, ?) ORDER BY update_id",
                        (RECEIVED, PROCESSING),
                    )
                    if row[0] not in self._mine
                ]
                given_up = [update_id for update_id, attempts, _ in left if attempts >= max_attempts]
                taken = [(update_id, payload) for update_id, attempts, payload in left if attempts < max_attempts]
                conn.executemany("UPDATE updates SET state = ? WHERE update_id = ?", [(RECEIVED, i) for i, _ in taken])
                conn.executemany(
                    "UPDATE updates SET state = ?, finished_at = ? WHERE update_id = ?",
                    [(ABANDONED, stamp(), i) for i in given_up],
                )
                cutoff = stamp(datetime.now(UTC) - keep_finished)
                conn.execute(
                    "DELETE FROM updates WHERE state NOT IN (?, ?) AND received_at < ?", (RECEIVED, PROCESSING, cutoff)
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._mine.update(i for i, _ in taken)
        return given_up, taken

    def states(self) -> dict[int, str]:
        """Every recorded update's state (for tests and diagnostics)."""
        with self._lock:
            return dict(self.conn.execute("SELECT update_id, state FROM updates").fetchall())


def read_states(path: Path | str) -> dict[int, str]:
    """The ``updates`` table of a database file, read from outside the bot (tests, diagnostics)."""
    conn = connect(Path(path))
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'updates'").fetchone():
            return {}
        return dict(conn.execute("SELECT update_id, state FROM updates").fetchall())
    finally:
        conn.close()


class SQLiteAnswerLog:
    """The ``answers`` and ``feedback`` tables: every answer given, and one vote per person and answer."""

    def __init__(self, path: Path | str):
        self._conn = open_migrated(Path(path))
        self._conn.row_factory = None
        self.db = sqlite_utils.Database(self._conn)
        # One connection shared by worker threads: sqlite3 objects need the calls serialised.
        self._lock = threading.Lock()

    def record_answer(self, row: dict) -> int:
        """Store an answer (question, answer, found, language, mode, chat_id, citations as dicts); its id."""
        row = {
            **row,
            "created_at": now(),
            "citations": json.dumps(row.get("citations") or [], ensure_ascii=False),
        }
        with self._lock:
            return int(self.db["answers"].insert(row).last_pk)

    def answer(self, answer_id: int) -> dict | None:
        """id, question, answer, language and citations (dicts) of a stored answer, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, question, answer, language, citations FROM answers WHERE id = ?", (answer_id,)
            ).fetchone()
        return None if row is None else answer_from_row(row)

    def vote(self, answer_id: int, user_id: int, vote: int) -> bool:
        """Record (or change) a vote; False when the answer is unknown."""
        with self._lock:
            if self._conn.execute("SELECT 1 FROM answers WHERE id = ?", (answer_id,)).fetchone() is None:
                return False
            self._conn.execute(
                "INSERT INTO feedback (answer_id, user_id, vote, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (answer_id, user_id) DO UPDATE SET vote = excluded.vote, created_at = excluded.created_at",
                (answer_id, user_id, vote, now()),
            )
        return True

    def feedback(self) -> list[dict]:
        """Every vote with the question, answer and citations it is about, newest first."""
        sql = (
            "SELECT f.answer_id, f.user_id, f.vote, f.created_at, a.question, a.answer, a.citations "
            "FROM feedback f JOIN answers a ON a.id = f.answer_id ORDER BY f.id DESC"
        )
        with self._lock:
            rows = self._conn.execute(sql).fetchall()
        return [vote_from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            answers = self._conn.execute("SELECT count(*) FROM answers").fetchone()[0]
            up, down = self._conn.execute(
                "SELECT coalesce(sum(vote > 0), 0), coalesce(sum(vote < 0), 0) FROM feedback"
            ).fetchone()
        return {"answers": answers, "up": up, "down": down}

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class SQLiteTransaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, args: Sequence = ()) -> list[tuple]:
        return self.conn.execute(sql, tuple(args)).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> None:
        self.conn.executemany(sql, rows)


class SQLitePortableSQL:
    """``index.engine.PortableSQL`` on the SQLite file: a connection of its own, calls serialised by a lock."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._conn = open_migrated(self.path)
        self._lock = threading.Lock()

    def query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, tuple(args)).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[SQLiteTransaction]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield SQLiteTransaction(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        """True inside while no other process holds ``name`` (a lock file beside the database, freed if we die)."""
        fd = os.open(self.path.parent / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.lock", os.O_RDWR | os.O_CREAT)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                ours = True
            except BlockingIOError:
                ours = False
            yield ours
        finally:
            os.close(fd)  # releases the lock

    def close(self) -> None:
        with self._lock:
            self._conn.close()


RUN_LOCK_FILE = "bot.lock"


class SQLiteRunLock:
    """A lock file in the data dir (``flock``): one bot process per SQLite data dir, in either mode.

    One, because the SQLite ledger's start takes back every unfinished update (it knows no other
    process); several bot processes share a PostgreSQL database instead. The kernel drops the lock
    when the process dies, however it dies: a stale file never blocks a start.
    """

    def __init__(self, data_dir: Path | str):
        self.path = Path(data_dir) / RUN_LOCK_FILE
        self._fd: int | None = None

    def acquire(self, polling: bool) -> str | None:
        """None when this process may run now; else why not, in one line naming the other process."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 400, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            if polling:
                return (
                    f"another bot process runs on {self.path.parent}: {holder}. Telegram gives updates to one "
                    "long-polling process only; for several processes, run each in webhook mode "
                    '([telegram] webhook_url, its own port) on a shared PostgreSQL ([storage] engine = "postgres")'
                )
            return (
                f"another bot process runs on {self.path.parent}: {holder}. A SQLite data dir serves one bot "
                'process; for several, share a PostgreSQL database ([storage] engine = "postgres")'
            )
        since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
        mode = "long polling" if polling else "webhook"
        me = f"articlebot pid {os.getpid()} on {socket.gethostname()} since {since} UTC ({mode})"
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode("utf-8"), 0)
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None


class SQLiteBotTables:
    """The bot's tables (``BOT_TABLES``) as plain rows: what ``index.migrate`` copies between engines."""

    def __init__(self, path: Path | str):
        self._conn = open_migrated(Path(path))
        self._conn.row_factory = sqlite3.Row

    def read(self, table: str) -> Iterator[dict]:
        keys = ", ".join(_key(table))
        for row in self._conn.execute(f'SELECT * FROM "{table}" ORDER BY {keys}'):
            yield dict(row)

    def write(self, table: str, rows: Sequence[dict]) -> int:
        """Insert the rows whose key is not here yet, in one transaction; how many were new."""
        _key(table)
        added = 0
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                columns = ", ".join(f'"{c}"' for c in row)
                marks = ", ".join("?" for _ in row)
                cursor = self._conn.execute(
                    f'INSERT OR IGNORE INTO "{table}" ({columns}) VALUES ({marks})', tuple(row.values())
                )
                added += cursor.rowcount
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return added

    def counters(self) -> dict[str, int]:
        out = {}
        for table, key in BOT_TABLES.items():
            if key == ("id",):
                out[table] = self._conn.execute(f'SELECT coalesce(max(id), 0) FROM "{table}"').fetchone()[0]
        # feeds is AUTOINCREMENT: SQLite remembers the highest id ever given, also of a removed feed.
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'feeds'").fetchone()
        if row:
            out["feeds"] = max(out["feeds"], int(row[0]))
        return out

    def raise_counters(self, counters: dict[str, int]) -> None:
        # Only feeds keeps a counter of its own; the other tables hand out max(id) + 1, which the rows copied raise.
        last = counters.get("feeds", 0)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'feeds'").fetchone()
            if row is None and last > 0:
                self._conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('feeds', ?)", (last,))
            elif row is not None and int(row[0]) < last:
                self._conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'feeds'", (last,))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()


def _key(table: str) -> tuple[str, ...]:
    try:
        return BOT_TABLES[table]
    except KeyError:
        raise ValueError(f"not one of the bot's tables: {table!r}") from None
