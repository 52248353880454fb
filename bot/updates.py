"""Durable updates: nothing Telegram sends is lost when the bot is killed, nothing is answered twice.

python-telegram-bot's own polling confirms a batch of updates to Telegram (the ``offset`` of the
next getUpdates call) as soon as the batch is in its in-memory queue; a bot killed before it has
answered them loses them. Here every update goes through the knowledge base's update ledger (the
``updates`` table of its database) instead:

1. received: ``LedgerQueue.put`` records the update (with its JSON) and commits before it is queued;
   our polling loop (``poll``) asks for the next offset only after that put returned, so Telegram
   forgets an update only once it is on disk. The webhook server awaits the same put before it
   answers Telegram's POST, so a webhook update is on disk before Telegram considers it delivered.
2. processing: ``LedgerProcessor`` claims it just before the handlers run (counting the attempt).
3. answered (handled: replied, or nothing to reply) or failed (a handler raised; logged, not
   retried, since a retry could repeat a half-sent reply): committed after the handlers returned.

On start, updates left received or processing by a killed process are queued again; ones tried
``MAX_ATTEMPTS`` times (an update that kills the bot every time) are given up, with a log line.
An update already in the table is never queued again when Telegram repeats it (dedupe by id).
A running bot looks again every ``RECOVER_EVERY`` seconds: with several processes on one database
(webhook mode, PostgreSQL) one takes over what another left when it was killed. The ledger hands out
only updates no live process holds, and the claim in step 2 is atomic across processes, so each
update is answered by one process.

The guarantee: at-least-once delivery into the table, and exactly-once answering except for one
window per update: from the moment Telegram accepts the first message its handler sends until
"answered" is committed (one database write right after the handler returns). For a question that is
its answer (all parts of a long one), so the window is the sending of the answer plus a few
milliseconds; for /add it starts with the "Processing …" message, so it spans the indexing. A
kill inside the window makes the restarted bot handle the update again: the answer (or the parts
already sent) arrives twice; an /add sends its progress message again and ends in "Added" or, if
the article was already committed, "already present". A kill anywhere else repeats nothing and
loses nothing. Durable means across a killed process; against power loss it is as durable as
SQLite with ``synchronous=NORMAL`` in WAL mode (the last commits may be lost), or as the PostgreSQL server
is configured.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

from telegram import Bot, Update
from telegram.ext import BaseUpdateProcessor

from index.engine import ABANDONED, ANSWERED, FAILED, PROCESSING, RECEIVED, StorageError, UpdateLedgerTable

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = [
    "ABANDONED",
    "ANSWERED",
    "FAILED",
    "PROCESSING",
    "RECEIVED",
    "LedgerProcessor",
    "LedgerQueue",
    "UpdateLedger",
]
# An update that was being handled this many times when the bot died is not tried again.
MAX_ATTEMPTS = 3
# Telegram keeps unconfirmed updates for 24 hours: older finished rows can no longer be repeated.
KEEP_FINISHED = timedelta(days=2)
# How often a running bot takes over the updates of a process that was killed (see above).
RECOVER_EVERY = 15.0
# PTB's own limit on updates in progress: only a ceiling here, the lanes decide what runs (see
# LedgerProcessor). Updates beyond it wait for PTB's semaphore instead of a lane's.
MAX_WAITING = 4096


def _payload(update: Update) -> str:
    return json.dumps(update.to_dict(), ensure_ascii=False)


class UpdateLedger:
    """The update ledger of the bot: the knowledge base's ``UpdateLedgerTable`` on a thread of its own.

    Blocking methods; the async side calls them through ``run``. Recording an update never waits for a
    worker thread that is busy answering a question, and the table's calls are serialised.
    """

    def __init__(self, table: UpdateLedgerTable):
        self.table = table
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            if self._executor is not None:
                return
            self.table.open()
            self._executor = ThreadPoolExecutor(1, "ledger")

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            self.table.close()

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("the update ledger is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    # --- the states ---------------------------------------------------------------------------

    def record(self, updates: Iterable[Update]) -> list[int]:
        """Record updates in one transaction; the ids that were new."""
        # Serialised here, in the ledger's thread: a batch of 100 articles is work the loop should not do.
        return self.table.record([(u.update_id, _payload(u)) for u in updates])

    def begin(self, update_id: int) -> bool:
        """Claim an update for handling; False when it was handled (or given up) before."""
        return self.table.begin(update_id)

    def finish(self, update_id: int, state: str) -> None:
        """Mark an update answered or failed; whichever comes first stays."""
        self.table.finish(update_id, state)

    def recover(self) -> list[tuple[int, str]]:
        """(id, JSON) of every update a killed process left unanswered, now this process's; oldest first.

        Also gives up on updates tried ``MAX_ATTEMPTS`` times and forgets old finished ones.
        """
        given_up, rows = self.table.recover(MAX_ATTEMPTS, KEEP_FINISHED)
        if given_up:
            log.warning("giving up on updates %s: the bot stopped while handling each %d times", given_up, MAX_ATTEMPTS)
        return rows

    def states(self) -> dict[int, str]:
        """Every recorded update's state (for tests and diagnostics)."""
        return self.table.states()


class LedgerQueue(asyncio.Queue):
    """The Application's update queue: an update goes in only once it is recorded, and only once.

    Everything that feeds the Application awaits ``put`` (our polling loop, PTB's webhook server),
    so "put returned" means "on disk". An update recorded before (Telegram repeating an update it
    never saw confirmed) is dropped here: it is either answered or queued already by ``recover``.
    """

    def __init__(self, ledger: UpdateLedger):
        super().__init__()
        self.ledger = ledger

    async def put(self, item: Any) -> None:
        if isinstance(item, Update):
            await self.put_batch([item])
            return
        await super().put(item)  # PTB's own stop signal

    async def put_batch(self, updates: list[Update]) -> None:
        """Record a whole getUpdates batch in one transaction, then queue the updates that are new."""
        if not updates:
            return
        new = set(await self.ledger.run(self.ledger.record, updates))
        for update in updates:
            if update.update_id in new:
                await super().put(update)
            else:
                log.info("update %s was recorded before: not queued again", update.update_id)

    async def recover(self, bot: Bot) -> int:
        """Queue again what a killed process recorded but did not answer; how many."""
        rows = await self.ledger.run(self.ledger.recover)
        for update_id, payload in rows:
            try:
                update = Update.de_json(json.loads(payload), bot)
            except (ValueError, TypeError, KeyError) as exc:
                log.error("update %s cannot be read back (%s): skipped", update_id, exc)
                await self.ledger.run(self.ledger.finish, update_id, FAILED)
                continue
            await super().put(update)
        if rows:
            log.info("handling %d updates left unanswered by a process that stopped", len(rows))
        return len(rows)

    async def keep_recovering(self, bot: Bot, stop: asyncio.Event, every: float = RECOVER_EVERY) -> None:
        """Every ``every`` seconds until ``stop``: take over what processes killed meanwhile left."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
                return
            except TimeoutError:
                pass
            try:
                await self.recover(bot)
            except StorageError as exc:  # the database is away for a moment: the next round tries again
                log.warning("looking for updates left by stopped processes failed: %s", exc)


class LedgerProcessor(BaseUpdateProcessor):
    """Runs the handlers of each update at most once to completion: claim, handle, mark answered.

    Updates also wait in lanes: ``lane_of`` names an update's lane, ``lanes`` how many of each run
    at once. A burst of slow jobs (an admin forwarding 200 articles) then fills its own lane instead
    of every slot, and questions that arrive behind it still start at once.
    """

    def __init__(self, ledger: UpdateLedger, lanes: dict[str, int], lane_of: Callable[[object], str]):
        super().__init__(MAX_WAITING)
        self.ledger = ledger
        self.lane_of = lane_of
        self._lanes = {name: asyncio.BoundedSemaphore(size) for name, size in lanes.items()}

    def lane(self, name: str) -> asyncio.BoundedSemaphore:
        """A lane's slots, for work that arrives without an update (the timed feed polls)."""
        return self._lanes[name]

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        async with self._lanes[self.lane_of(update)]:
            await self._process(update, coroutine)

    async def _process(self, update: object, coroutine: Awaitable[Any]) -> None:
        if not isinstance(update, Update):
            await coroutine
            return
        if not await self.ledger.run(self.ledger.begin, update.update_id):
            log.info("update %s was handled before: skipped", update.update_id)
            if asyncio.iscoroutine(coroutine):
                coroutine.close()  # never awaited: no "coroutine was never awaited" warning
            return
        await coroutine  # PTB's process_update: handler errors go to the error handler, not here
        await self.ledger.run(self.ledger.finish, update.update_id, ANSWERED)

    async def initialize(self) -> None:
        await asyncio.to_thread(self.ledger.open)

    async def shutdown(self) -> None:
        await asyncio.to_thread(self.ledger.close)
