"""Answers the bot gave and the 👍/👎 votes on them, in the knowledge base's SQLite file.

Every answer is recorded, so a vote (or a press of a quote button) days later still finds its
question, body and citations. The tables live beside the articles but through a connection of
their own: the store's write lock is never held for a vote.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from index.store import connect

from .answer import Answer, Citation


@dataclass
class StoredAnswer:
    id: int
    question: str
    body: str
    language: str
    citations: list[Citation]


def _citation(data: dict) -> Citation:
    # Rows outlive code: keep only the fields today's Citation has.
    names = {f.name for f in fields(Citation)}
    return Citation(**{k: v for k, v in data.items() if k in names})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class FeedbackStore:
    def __init__(self, path: Path | str):
        self._conn = connect(Path(path))
        self._conn.row_factory = None
        self.db = sqlite_utils.Database(self._conn)
        # One connection shared by worker threads: sqlite3 objects need the calls serialised.
        self._lock = threading.Lock()
        self._create_schema()

    def _create_schema(self) -> None:
        with self._lock:
            if "answers" not in self.db.table_names():
                self.db["answers"].create(
                    {
                        "id": int,
                        "created_at": str,
                        "chat_id": int,
                        "question": str,
                        "answer": str,
                        "found": int,
                        "language": str,
                        "mode": str,
                        "citations": str,
                    },
                    pk="id",
                )
            if "feedback" not in self.db.table_names():
                self.db["feedback"].create(
                    {"id": int, "answer_id": int, "user_id": int, "vote": int, "created_at": str},
                    pk="id",
                    foreign_keys=[("answer_id", "answers", "id")],
                )
                # One vote per person and answer: pressing again changes the vote, never adds one.
                self.db["feedback"].create_index(["answer_id", "user_id"], unique=True)

    def record_answer(self, answer: Answer, chat_id: int) -> int:
        row = {
            "created_at": _now(),
            "chat_id": chat_id,
            "question": answer.question,
            "answer": answer.body,
            "found": int(answer.found),
            "language": answer.language,
            "mode": answer.mode,
            "citations": json.dumps([asdict(c) for c in answer.citations], ensure_ascii=False),
        }
        with self._lock:
            return int(self.db["answers"].insert(row).last_pk)

    def answer(self, answer_id: int) -> StoredAnswer | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, question, answer, language, citations FROM answers WHERE id = ?", (answer_id,)
            ).fetchone()
        if row is None:
            return None
        citations = [_citation(c) for c in json.loads(row[4] or "[]")]
        return StoredAnswer(id=row[0], question=row[1], body=row[2], language=row[3], citations=citations)

    def vote(self, answer_id: int, user_id: int, vote: int) -> bool:
        """Record (or change) a vote; False when the answer is unknown."""
        with self._lock:
            if self._conn.execute("SELECT 1 FROM answers WHERE id = ?", (answer_id,)).fetchone() is None:
                return False
            self._conn.execute(
                "INSERT INTO feedback (answer_id, user_id, vote, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (answer_id, user_id) DO UPDATE SET vote = excluded.vote, created_at = excluded.created_at",
                (answer_id, user_id, vote, _now()),
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
        keys = ("answer_id", "user_id", "vote", "created_at", "question", "answer", "citations")
        return [{**dict(zip(keys, r, strict=True)), "citations": json.loads(r[6] or "[]")} for r in rows]

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
