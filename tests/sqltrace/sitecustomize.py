"""Test-only, for the crash tests: where in its writes was a process when it was killed?

Put this directory on ``PYTHONPATH`` and set ``ARTICLEBOT_SQL_TRACE`` to a directory: every SQLite
connection the process opens then marks its write transactions in ``<dir>/<pid>.trace``, one line
each: ``begin``, ``article`` (an article's row inserted), ``remove`` (an article's row deleted),
``written`` (all of it written, the version about to be bumped), ``commit`` or ``rollback``. While a
file ``<dir>/pause`` holds a number of seconds, it also waits that long at each ``written``, so a test
can kill it there: inside the transaction, after every row and before the commit. The store itself is
the real one; only SQLite's statement trace is watched (``Connection.set_trace_callback``).

PostgreSQL has no client-side statement trace, so for psycopg the statements are watched where they
are sent (``Cursor.execute``/``executemany``) and the end of a transaction where psycopg ends it
(``Transaction.__exit__``): a write transaction begins with the store's lock on the version row
(``SELECT … FOR UPDATE``), and ``written`` is its version bump, as in SQLite.
"""

from __future__ import annotations

import os
import sqlite3
import time

TRACE_DIR = os.environ.get("ARTICLEBOT_SQL_TRACE")


def _mark(word: str) -> None:
    # A fresh append per line, unbuffered: a SIGKILL must not lose what was marked before it.
    fd = os.open(os.path.join(TRACE_DIR, f"{os.getpid()}.trace"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{word}\n".encode())
    finally:
        os.close(fd)


def _pause() -> float:
    try:
        with open(os.path.join(TRACE_DIR, "pause")) as file:
            return float(file.read() or 0)
    except (OSError, ValueError):
        return 0.0


def _tracer():
    state = {"writing": False, "kind": None}

    def trace(statement: str) -> None:
        words = statement.split()[:3]
        head = " ".join(words).upper()
        if head.startswith("BEGIN IMMEDIATE") or (
            statement.startswith("SELECT value FROM meta WHERE key = 'version' FOR UPDATE")
        ):
            state.update(writing=True, kind=None)
            _mark("begin")
        elif not state["writing"]:
            return
        elif head.startswith(("COMMIT", "ROLLBACK")):
            state["writing"] = False
            _mark(head.split()[0].lower())
        elif head == "INSERT INTO ARTICLES":
            state["kind"] = "article"
            _mark("article")
        elif head == "DELETE FROM ARTICLES":
            state["kind"] = "remove"
            _mark("remove")
        elif head == "UPDATE META SET" and state["kind"]:
            _mark("written")
            time.sleep(_pause())

    return trace


def _install() -> None:
    connect = sqlite3.connect

    def traced_connect(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(_tracer())
        return conn

    sqlite3.connect = traced_connect


def _install_psycopg() -> None:
    try:
        import psycopg
        from psycopg.transaction import Transaction
    except ImportError:
        return

    def tracer_of(conn):
        trace = getattr(conn, "_articlebot_trace", None)
        if trace is None:
            trace = conn._articlebot_trace = _tracer()
        return trace

    def watched(method):
        def run(self, query, *args, **kwargs):
            if isinstance(query, str):
                tracer_of(self.connection)(query)
            return method(self, query, *args, **kwargs)

        return run

    psycopg.Cursor.execute = watched(psycopg.Cursor.execute)
    psycopg.Cursor.executemany = watched(psycopg.Cursor.executemany)
    exit_transaction = Transaction.__exit__

    def traced_exit(self, exc_type, exc_val, exc_tb):
        if not self.savepoint_name:  # the outermost block: its end is the COMMIT or ROLLBACK
            tracer_of(self.connection)("ROLLBACK" if exc_type else "COMMIT")
        return exit_transaction(self, exc_type, exc_val, exc_tb)

    Transaction.__exit__ = traced_exit


if TRACE_DIR:
    _install()
    _install_psycopg()
