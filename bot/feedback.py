"""Answers the bot gave and the 👍/👎 votes on them, kept by the knowledge base's ``AnswerLog``.

Every answer is recorded, so a vote (or a press of a quote button) days later still finds its
question, body and citations. The storage (today two tables beside the articles, through a
connection of their own) belongs to the knowledge base; here answers become rows and back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from index.engine import AnswerLog

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


class FeedbackStore:
    def __init__(self, log: AnswerLog):
        self.log = log

    def record_answer(self, answer: Answer, chat_id: int) -> int:
        row = {
            "chat_id": chat_id,
            "question": answer.question,
            "answer": answer.body,
            "found": int(answer.found),
            "language": answer.language,
            "mode": answer.mode,
            "citations": [asdict(c) for c in answer.citations],
        }
        return self.log.record_answer(row)

    def answer(self, answer_id: int) -> StoredAnswer | None:
        row = self.log.answer(answer_id)
        if row is None:
            return None
        citations = [_citation(c) for c in row["citations"]]
        return StoredAnswer(
            id=row["id"], question=row["question"], body=row["answer"], language=row["language"], citations=citations
        )

    def vote(self, answer_id: int, user_id: int, vote: int) -> bool:
        """Record (or change) a vote; False when the answer is unknown."""
        return self.log.vote(answer_id, user_id, vote)

    def feedback(self) -> list[dict]:
        """Every vote with the question, answer and citations it is about, newest first."""
        return self.log.feedback()

    def counts(self) -> dict[str, int]:
        return self.log.counts()

    def close(self) -> None:
        self.log.close()
