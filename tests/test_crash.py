"""Crash consistency: ``articlebot import`` and ``articlebot remove`` SIGKILLed at random moments.

After every kill the store must hold only whole articles (chunks, vectors, FTS rows), the FAISS
index must agree with SQLite once the knowledge base is opened again, and every article must be
findable. The store carries over from kill to kill, so each run starts on whatever the previous
kill left (a stale or half-saved FAISS file included); the checks run on a copy, so that repairs
made by checking never hide what the next run has to cope with.

The moment of the kill is chosen by watching the database: the test waits for the run's first
commit (the model is loaded and the import loop is running) and then either waits a random time
or waits for the k-th commit and kills a few milliseconds later, while the FAISS file is being
saved or the next article's transaction is open; or it kills inside the k-th article's (or the
removal's) transaction, after all its rows and before its commit.

Where each kill landed is not guessed but recorded: the runs mark their write transactions in a
side file (``tests/sqltrace``: SQLite's statement trace, the store untouched), which can also hold
a run inside a transaction long enough to kill it there. The tests assert how many kills landed
inside an article's transaction and inside a removal's.

Both engines are tested (``engine_settings``). With PostgreSQL the runs get a config naming the
database, the transactions are marked from psycopg's side (tests/sqltrace), and the checks open the
database itself: opening it repairs nothing (pgvector's index is the stored vectors), so there is
nothing a copy would protect.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from util_kb import ZERO_INTEGRITY, article_problems, index_problems

from index.kb import DB_FILE, KnowledgeBase
from index.settings import IndexSettings, StorageSettings

ROOT = Path(__file__).resolve().parents[1]
SQLTRACE = ROOT / "tests" / "sqltrace"
TOPICS = ["Hafen", "Brücke", "Schule", "Bahnhof", "Museum", "Markt", "Stadion", "Bibliothek", "Wasserwerk", "Park"]


def article(n: int) -> dict:
    topic = TOPICS[n % len(TOPICS)]
    return {
        "title": f"Meldung {n}",
        "text": (
            f"Kennwort quarz{n}feld. Die Stadt Ortheim{n} plant am {topic} eine Änderung. "
            f"Der Rat stimmte mit {n % 17 + 3} Stimmen zu, die Kosten liegen bei {n * 7 % 90 + 10} Millionen Euro. "
            "Der Beschluss erscheint im kommenden Monat im Amtsblatt."  # over [ingest] min_chars (200)
        ),
    }


def write_jsonl(path: Path, numbers) -> Path:
    path.write_text("".join(json.dumps(article(n), ensure_ascii=False) + "\n" for n in numbers), encoding="utf-8")
    return path


def article_number(title: str) -> int:
    return int(title.removeprefix("Meldung "))


def traced_env(trace_dir: Path) -> dict[str, str]:
    """The environment of a run whose write transactions are marked in ``trace_dir``."""
    trace_dir.mkdir(exist_ok=True)
    path = os.pathsep.join(p for p in (str(SQLTRACE), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "ARTICLEBOT_SQL_TRACE": str(trace_dir)}


def marks(trace_dir: Path, pid: int) -> list[str]:
    path = trace_dir / f"{pid}.trace"
    return path.read_text().split() if path.exists() else []


def landed(trace: list[str]) -> str:
    """Where a killed run was: inside an "article" or "remove" transaction (or "other"), or "between"."""
    if "begin" not in trace:
        return "between"
    last = trace[len(trace) - 1 - trace[::-1].index("begin") :]
    if any(m in ("commit", "rollback") for m in last):
        return "between"
    return "remove" if "remove" in last else "article" if "article" in last else "other"


def hold_inside(trace_dir: Path, seconds: float) -> None:
    """From now on runs wait ``seconds`` inside each article's or removal's transaction (0: no more)."""
    trace_dir.mkdir(exist_ok=True)
    (trace_dir / "pause").write_text(str(seconds))


def kill_inside(run, trace_dir: Path, kind: str, nth: int) -> str:
    """Kill the run while it waits inside the transaction of its ``nth`` article (or its removal)."""
    deadline = time.monotonic() + 300
    while True:
        trace = marks(trace_dir, run.pid)
        if trace.count(kind) >= nth and trace[-1] == "written":
            break
        if run.finished(0.002):
            return f"ended by itself (status {run.status}) before its {kind} transaction {nth}"
        if time.monotonic() > deadline:
            raise AssertionError(f"the run reached no {kind} transaction {nth} within 300 s")
    how = f"killed inside {kind} transaction {nth}"
    return how if run.kill() else f"ended by itself (status {run.status}) before it could be {how.split(' ', 1)[1]}"


class Zygote:
    def __init__(self, tmp: Path, trace_dir: Path):
        self.tmp = tmp
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "util_zygote.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp,
            env=traced_env(trace_dir),
        )
        assert self._read(300) == {"ready": True}

    def _read(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"fork server silent for {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"fork server died (exit {self.proc.poll()})")
        return json.loads(line)

    def start(self, argv: list[str], name: str) -> Run:
        out, err = self.tmp / f"{name}.out", self.tmp / f"{name}.err"
        self.proc.stdin.write(json.dumps({"argv": argv, "out": str(out), "err": str(err)}) + "\n")
        self.proc.stdin.flush()
        return Run(self, self._read(60)["pid"], out, err)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class Run:
    """One command in a forked child of the fork server."""

    def __init__(self, zygote: Zygote, pid: int, out: Path, err: Path):
        self.zygote, self.pid, self.out, self.err = zygote, pid, out, err
        self.status: int | None = None

    def finished(self, timeout: float = 0) -> bool:
        if self.status is None:
            ready, _, _ = select.select([self.zygote.proc.stdout], [], [], timeout)
            if ready:
                self.status = self.zygote._read(1)["status"]
        return self.status is not None

    def kill(self) -> bool:
        """SIGKILL unless it already ended; True if the kill hit a running process."""
        if self.finished():
            return False
        os.kill(self.pid, signal.SIGKILL)
        self.wait()
        return self.status == -signal.SIGKILL

    def wait(self, timeout: float = 300) -> int:
        if not self.finished(timeout):
            raise AssertionError(f"run {self.pid} did not end within {timeout} s")
        return self.status


class ConsoleRun:
    """The same, as a plain ``articlebot`` process (console script), for the quick variant."""

    def __init__(self, argv: list[str], tmp: Path, name: str, trace_dir: Path):
        script = Path(sys.executable).with_name("articlebot")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "bot"]
        self.out, self.err = tmp / f"{name}.out", tmp / f"{name}.err"
        env = traced_env(trace_dir)
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [*command, *argv], stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=tmp, env=env
            )
        self.pid = self.proc.pid
        self.status: int | None = None

    def finished(self, timeout: float = 0) -> bool:
        if self.status is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.status = self.proc.wait(timeout=timeout or 0.0001)
        return self.status is not None

    def kill(self) -> bool:
        if self.finished():
            return False
        self.proc.send_signal(signal.SIGKILL)
        self.status = self.proc.wait(timeout=60)
        return self.status == -signal.SIGKILL

    def wait(self, timeout: float = 300) -> int:
        self.status = self.proc.wait(timeout=timeout)
        return self.status


class Target:
    """The store the runs write to: a SQLite data dir, or a PostgreSQL database named in a config."""

    def __init__(self, settings: IndexSettings, tmp: Path):
        self.storage: StorageSettings = settings.storage
        self.data_dir = Path(settings.data_dir)
        self.pg = self.storage.engine == "postgres"
        self.config: Path | None = None
        if self.pg:
            self.config = tmp / "postgres.toml"
            self.config.write_text(f'[storage]\nengine = "postgres"\ndsn = "{self.storage.dsn}"\n')

    def argv(self, *command: str) -> list[str]:
        config = ["--config", str(self.config)] if self.config else []
        return [*config, "--data-dir", str(self.data_dir), *command]

    def settings(self, data_dir: Path) -> IndexSettings:
        settings = IndexSettings(data_dir=str(data_dir))
        settings.storage = self.storage
        return settings

    def version(self) -> int:
        if not self.pg:
            return store_version(self.data_dir / DB_FILE)
        rows = self._pg("SELECT value FROM meta WHERE key = 'version'") or [("0",)]
        return int(rows[0][0])

    def ids_by_number(self) -> dict[int, int]:
        if not self.pg:
            return _ids_by_number(self.data_dir / DB_FILE)
        return {article_number(t): i for i, t in self._pg("SELECT id, title FROM articles") or []}

    def _pg(self, sql: str) -> list[tuple] | None:
        import psycopg

        # One connection, kept: the kill timing polls the version every few milliseconds.
        if getattr(self, "_conn", None) is None:
            self._conn = psycopg.connect(self.storage.dsn, autocommit=True)
        try:
            return self._conn.execute(sql).fetchall()
        except psycopg.errors.UndefinedTable:
            return None  # before the first run migrated the database


def store_version(db: Path) -> int:
    """The committed write count, read as any other process would (0 before the store exists)."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
            return int(row[0]) if row else 0
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def kill_during_writes(run, version, rng: random.Random, start_version: int, window: float) -> str:
    """Wait for the run's first commit, then kill at a random moment; returns how it ended."""
    deadline = time.monotonic() + 300
    while version() == start_version:
        if run.finished(0.005):
            return f"ended by itself before writing (status {run.status})"
        if time.monotonic() > deadline:
            raise AssertionError("the run wrote nothing within 300 s")
    if rng.random() < 0.5:
        delay = rng.uniform(0, window)
        how = f"killed {delay * 1000:.0f} ms after its first commit"
        end = time.monotonic() + delay
        while time.monotonic() < end and not run.finished(0.002):
            pass
    else:
        commits = rng.randint(1, 45)
        how = f"killed a few ms after commit {commits}"
        while version() < start_version + commits and not run.finished(0.001):
            pass
        time.sleep(rng.uniform(0, 0.02))
    if run.kill():
        return how
    return f"ended by itself (status {run.status}) before it could be {how.split(' ', 1)[1]}"


def check_copy(target: Target, copy: Path, embedder, *, expect_prefix: bool, removed=frozenset(), hybrid=3, rng=None):
    """Open a copy of the store as the bot would and check it through and through; returns numbers present."""
    if copy.exists():
        shutil.rmtree(copy)
    if target.data_dir.exists():
        shutil.copytree(target.data_dir, copy)
    kb = KnowledgeBase(target.settings(copy), embedder=embedder)
    try:
        assert kb.store.integrity() == ZERO_INTEGRITY
        assert article_problems(kb) == []
        status = kb.open()
        assert index_problems(kb) == [], status
        articles = kb.articles()
        numbers = sorted(article_number(a.title) for a in articles)
        assert len(numbers) == len(set(numbers)), "an article was imported twice"
        if expect_prefix:
            # Imports commit in file order and every run resumes where the last one stopped: the
            # articles present are always exactly the first N, whatever moment the kill came.
            assert numbers == list(range(len(numbers))), f"gap in imported articles: {numbers[-10:]}"
        assert not set(numbers) & set(removed)
        _check_findable(kb, articles, hybrid, rng or random.Random(0))
        return set(numbers)
    finally:
        kb.close()


def _check_findable(kb: KnowledgeBase, articles, hybrid: int, rng: random.Random) -> None:
    vectors = kb.vectors
    for a in articles:
        n = article_number(a.title)
        hits = kb.store.lexical_search([f"quarz{n}feld"], 2)
        chunk_ids = {c.id for c in kb.store.article_chunks(a.id)}
        assert hits and hits[0][0] in chunk_ids, f"article {n} not found by its keyword"
        ids, stored = kb.store.vectors_for(sorted(chunk_ids))
        for chunk_id, vector in zip(ids, stored, strict=True):
            assert vectors.search(np.asarray(vector), 1)[0][0] == chunk_id, f"article {n}: dense search lost it"
    for a in rng.sample(articles, min(hybrid, len(articles))):
        n = article_number(a.title)
        assert a.id in {h.article_id for h in kb.search(f"Kennwort quarz{n}feld Ortheim{n}", k=3)}


HOLD = 0.5  # seconds a run waits inside a transaction the test means to kill it in (polled every ~2 ms)


def committed(trace: list[str], kind: str) -> int:
    """How many transactions of ``kind`` the trace shows committed."""
    count, current = 0, []
    for mark in trace:
        if mark == "begin":
            current = []
        elif mark == "commit":
            count += kind in current
        current.append(mark)
    return count


def _import_runs(make_run, tmp: Path, embedder, plan: list[str], seed: int, trace_dir: Path, target: Target):
    """One import per entry of ``plan`` ("inside": killed inside an article's transaction; "random").

    Returns the numbers present and where each kill landed (see ``landed``; "finished" if not killed).
    """
    rng = random.Random(seed)
    present: set[int] = set()
    log, landings = [], []
    for i, how_to_kill in enumerate(plan):
        first = len(present)
        # Overlap the last few already imported (duplicates to skip), then 60 new ones.
        source = write_jsonl(tmp / f"import{i}.jsonl", range(max(0, first - 5), first + 60))
        start_version = target.version()
        if how_to_kill == "inside":
            hold_inside(trace_dir, HOLD)
        run = make_run(target.argv("import", str(source)), f"import{i}")
        if how_to_kill == "inside":
            how = kill_inside(run, trace_dir, "article", rng.randint(1, 3))
            hold_inside(trace_dir, 0)
        else:
            how = kill_during_writes(run, target.version, rng, start_version, window=0.8)
        trace = marks(trace_dir, run.pid)
        where = landed(trace) if how.startswith("killed") else "finished"
        log.append(f"{how} ({where})")
        landings.append(where)
        if run.status not in (-signal.SIGKILL, 0):
            raise AssertionError(f"run {i} failed: {run.err.read_text()[-2000:]}")
        if how_to_kill == "inside":
            assert where == "article", f"run {i} was meant to die inside an article's transaction: {how}, {trace[-5:]}"
        t_check = time.monotonic()
        before = present
        present = check_copy(target, tmp / "check", embedder, expect_prefix=True, rng=rng)
        if os.environ.get("CRASH_DEBUG"):
            print(f"run {i}: {log[-1]}; {len(present)} articles; check {time.monotonic() - t_check:.2f} s", flush=True)
        assert len(present) >= first, f"run {i} ({how}) lost committed articles"
        new, marked = len(present - before), committed(trace, "article")
        if where == "article":
            # Killed inside: every commit it marked had finished (the next BEGIN came after it), the last none.
            assert new == marked, f"run {i} ({how}): {new} articles arrived, {marked} commits marked"
        else:  # a kill may fall between marking a COMMIT and finishing it
            assert marked - 1 <= new <= marked, f"run {i} ({how}): {new} articles arrived, {marked} commits marked"
    kills = sum(how.startswith("killed") for how in log)
    assert kills >= len(plan) // 2, f"too few runs were killed mid-import: {log}"
    return present, landings


def _remove_runs(
    make_run, tmp: Path, embedder, present: set[int], plan: list[str], seed: int, trace_dir: Path, target: Target
):
    """One removal per entry of ``plan``: "inside" (killed inside its transaction), "random", "finish".

    Each outcome is asserted: a removal killed before its commit removed nothing, one that ran to the
    end removed the article completely (gone from SQLite, FTS and FAISS: ``check_copy``).
    """
    rng = random.Random(seed)
    removed: set[int] = set()
    landings = []
    store_ids = target.ids_by_number()
    for i, how_to_kill in enumerate(plan):
        n = rng.choice(sorted(present - removed))
        if how_to_kill == "inside":
            hold_inside(trace_dir, HOLD)
        run = make_run(target.argv("remove", str(store_ids[n])), f"remove{i}")
        if how_to_kill == "inside":
            how = kill_inside(run, trace_dir, "remove", 1)
            hold_inside(trace_dir, 0)
            killed = how.startswith("killed")
        elif how_to_kill == "random":
            # Removing is one short transaction after the model and index load: kill anywhere in the run.
            delay = rng.uniform(0.05, 1.2)
            end = time.monotonic() + delay
            while time.monotonic() < end and not run.finished(0.005):
                pass
            killed = run.kill()
            how = f"killed {delay * 1000:.0f} ms after it started" if killed else "ended by itself"
        else:
            run.wait()
            killed, how = False, "left to finish"
        if run.status not in (-signal.SIGKILL, 0):
            raise AssertionError(f"remove {i} failed: {run.err.read_text()[-2000:]}")
        trace = marks(trace_dir, run.pid)
        where = landed(trace) if killed else "finished"
        landings.append(where)
        gone = n not in target.ids_by_number()
        if how_to_kill == "inside":
            assert where == "remove", f"remove {i} was meant to die inside its transaction: {how}, {trace}"
        if where == "remove" or committed(trace, "remove") == 0:
            assert not gone, f"remove {i} ({how}, {where}) removed #{n} without committing"
        if run.status == 0:
            assert gone, f"remove {i} ran to the end but #{n} is still there"
        if gone:
            removed.add(n)
        now = check_copy(target, tmp / "check", embedder, expect_prefix=False, removed=removed, hybrid=1, rng=rng)
        assert now == present - removed
        assert (n in now) != gone, f"remove {i} ({how}): #{n} half removed"
    return removed, landings


def _ids_by_number(db: Path) -> dict[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {article_number(t): i for i, t in conn.execute("SELECT id, title FROM articles")}
    finally:
        conn.close()


def test_import_and_remove_killed_console_script(tmp_path, embedder, engine_settings):
    """Quick variant, the real ``articlebot`` process: an import killed inside an article's transaction,
    a removal killed inside its transaction (nothing removed), and a removal left to finish (all removed)."""
    trace = tmp_path / "trace"

    def make(argv, name):
        return ConsoleRun(argv, tmp_path, name, trace)

    target = Target(engine_settings, tmp_path)
    present, imports = _import_runs(make, tmp_path, embedder, ["inside"], seed=11, trace_dir=trace, target=target)
    assert imports == ["article"]
    assert present, "the import committed nothing before being killed"
    removed, removals = _remove_runs(make, tmp_path, embedder, present, ["inside", "finish"], 12, trace, target)
    assert removals == ["remove", "finished"]
    assert len(removed) == 1


@pytest.mark.slow
def test_import_and_remove_killed_at_random_moments(tmp_path, embedder, engine_settings):
    """20 imports and 7 removals killed at random moments on one store (every third import and three
    removals inside their transaction), one removal left to finish, then a clean import finishes it."""
    trace = tmp_path / "trace"
    zygote = Zygote(tmp_path, trace)
    target = Target(engine_settings, tmp_path)
    try:
        import_plan = ["inside" if i % 3 == 0 else "random" for i in range(20)]
        present, imports = _import_runs(
            zygote.start, tmp_path, embedder, import_plan, seed=2026, trace_dir=trace, target=target
        )
        assert imports.count("article") >= import_plan.count("inside"), imports
        remove_plan = ["inside", "random"] * 3 + ["random", "finish"]
        removed, removals = _remove_runs(zygote.start, tmp_path, embedder, present, remove_plan, 2027, trace, target)
        assert removals.count("remove") >= remove_plan.count("inside"), removals
        assert removed, "not even the removal left to finish removed its article"
        if os.environ.get("CRASH_DEBUG"):
            print(f"kills landed: imports {imports}, removals {removals}", flush=True)
        # A final import that is left to finish: everything is there (the removed ones again), and
        # the index it saved loads as it is.
        data_dir = tmp_path / "data"
        final = write_jsonl(tmp_path / "final.jsonl", range(len(present) + 20))
        run = zygote.start(target.argv("import", str(final)), "final")
        assert run.wait() == 0, run.err.read_text()[-2000:]
        numbers = check_copy(target, tmp_path / "check", embedder, expect_prefix=False, rng=random.Random(3))
        assert numbers == set(range(len(present) + 20))  # the removed ones were imported again
        assert removed <= numbers
        shutil.copytree(data_dir, tmp_path / "clean")
        kb = KnowledgeBase(target.settings(tmp_path / "clean"), embedder=embedder)
        assert kb.open() == "loaded"  # a finished import leaves an index that needs no repair
        kb.close()
    finally:
        zygote.close()
