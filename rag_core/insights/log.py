"""The question log: every answered question with its answer, citations, best score and feedback.

Why: HR needs to see what employees ask and what the documents fail to answer (the Insights page,
`python -m rag_core insights`), and employees need a way to say an answer was wrong. One contract,
`QuestionLog`, has two homes: `SQLiteQuestionLog`, a file of its own in the data dir
(`insights.sqlite3`, WAL, so readers never block the chat), and `PostgresQuestionLog` (pglog.py), the
`question_log` table in the knowledge base's own database when it lives in PostgreSQL.

Retention: entries older than the retention are deleted when the log is opened and at every write,
so nothing outlives it by more than the time between two questions. Identity: `user` is stored only
when the log is opened with `keep_user` (RAG_LOG_USER); otherwise it is dropped before it is written.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from rag_core.types import FEEDBACK_REASONS, Answer, CitedPage, Feedback, FeedbackReason, LoggedQuestion, Vote

LOG_DB = "insights.sqlite3"
Clock = Callable[[], datetime]

# `?` placeholders: the PostgreSQL log swaps them for its own.
COLUMNS = (
    "id, asked_at, question, answer, grounded, best_score, citations, generation, feedback, reason, "
    "feedback_at, user_name"
)
INSERT = (
    "INSERT INTO question_log (asked_at, question, answer, grounded, best_score, citations, generation, "
    "user_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
FEEDBACK = "UPDATE question_log SET feedback = ?, reason = ?, feedback_at = ? WHERE id = ? RETURNING id"
SELECT = f"SELECT {COLUMNS} FROM question_log WHERE asked_at >= ? ORDER BY asked_at DESC, id DESC"
PURGE = "DELETE FROM question_log WHERE asked_at < ?"
_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS question_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    asked_at TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    grounded INTEGER NOT NULL,
    best_score REAL,
    citations TEXT NOT NULL,
    generation INTEGER NOT NULL,
    feedback TEXT,
    reason TEXT,
    feedback_at TEXT,
    user_name TEXT
);
CREATE INDEX IF NOT EXISTS question_log_asked ON question_log(asked_at);
"""


class QuestionNotFound(LookupError):
    """Feedback on a question the log does not hold (never logged, or past its retention)."""


class QuestionLog(Protocol):
    """Where answered questions and the feedback on them are kept."""

    retention_days: int

    def log(self, answer: Answer, generation: int, *, user: str | None = None) -> int:
        """Keep one answered question; its id, for `feedback`."""
        ...

    def feedback(self, question_id: int, up: bool, reason: str | None = None) -> Feedback:
        """Record a thumbs up or down on a logged answer (a later vote replaces an earlier one)."""
        ...

    def questions(self, days: int | None = None) -> list[LoggedQuestion]:
        """The questions of the last `days` days (None: all kept), newest first."""
        ...

    def purge(self, older_than_days: int) -> int:
        """Delete the questions older than that many days; how many went."""
        ...

    def close(self) -> None: ...


def now_utc() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """The stored form of a time: ISO 8601 in UTC to the second, which sorts as it reads.

    >>> stamp(datetime(2026, 3, 1, 9, 30, 5, 123, tzinfo=UTC))
    '2026-03-01T09:30:05+00:00'
    """
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def best_score(answer: Answer) -> float | None:
    """The highest cosine of the question with a retrieved passage (what min_score is compared with).

    >>> best_score(Answer("q", "a", "extractive", False)) is None
    True
    """
    return max((h.score for h in answer.hits), default=None)


def cited_pages(answer: Answer) -> list[CitedPage]:
    """The pages an answer cites, each once, in citation order."""
    seen: dict[tuple[str, int], None] = {}
    for c in answer.citations:
        seen.setdefault((c.document, c.page))
    return [CitedPage(d, p) for d, p in seen]


def check_vote(up: bool, reason: str | None) -> tuple[Vote, FeedbackReason | None]:
    """The vote and reason to store, or ValueError saying which reasons exist.

    >>> check_vote(False, "outdated")
    ('down', 'outdated')
    >>> check_vote(True, "")
    ('up', None)
    """
    reason = reason.strip() if reason else None
    if reason is None:
        return ("up" if up else "down"), None
    if reason not in FEEDBACK_REASONS:
        raise ValueError(
            f"feedback reason must be one of {', '.join(map(repr, FEEDBACK_REASONS))} or none; got {reason!r}"
        )
    if up:
        raise ValueError(f"a reason goes with a thumbs down; got thumbs up with reason {reason!r} (drop the reason)")
    return "down", reason


def record_of(row: Sequence[Any]) -> LoggedQuestion:
    """A row selected with COLUMNS as a record."""
    cites = [CitedPage(str(d), int(p)) for d, p in json.loads(row[6])]
    score = None if row[5] is None else float(row[5])
    return LoggedQuestion(
        id=int(row[0]),
        asked_at=str(row[1]),
        question=str(row[2]),
        answer=str(row[3]),
        grounded=bool(row[4]),
        best_score=score,
        citations=cites,
        generation=int(row[7]),
        feedback=row[8],
        reason=row[9],
        feedback_at=row[10],
        user=row[11],
    )


class SQLQuestionLog:
    """The log's behaviour over any SQL database: subclasses say how one statement runs (`_run`)."""

    def __init__(self, *, retention_days: int = 90, keep_user: bool = False, clock: Clock = now_utc):
        if retention_days < 0:
            raise ValueError(f"retention_days must be >= 0 (0 = keep until deleted); got {retention_days}")
        self.retention_days = retention_days
        self.keep_user = keep_user
        self._clock = clock

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _retain(self) -> None:
        if self.retention_days:
            self.purge(self.retention_days)

    def log(self, answer: Answer, generation: int, *, user: str | None = None) -> int:
        self._retain()
        cites = json.dumps([[c.document, c.page] for c in cited_pages(answer)], ensure_ascii=False)
        row = (
            stamp(self._clock()),
            answer.question,
            answer.text,
            answer.grounded,
            best_score(answer),
            cites,
            generation,
            user if self.keep_user else None,
        )
        return int(self._run(INSERT, row)[0][0])

    def feedback(self, question_id: int, up: bool, reason: str | None = None) -> Feedback:
        vote, why = check_vote(up, reason)
        given_at = stamp(self._clock())
        if not self._run(FEEDBACK, (vote, why, given_at, question_id)):
            raise QuestionNotFound(
                f"no logged question {question_id}: it was never logged, or is older than the log's retention "
                f"({self.retention_days} days); ask the question again to give feedback on its answer"
            )
        return Feedback(question_id, vote, why, given_at)

    def questions(self, days: int | None = None) -> list[LoggedQuestion]:
        since = "" if days is None else stamp(self._clock() - timedelta(days=days))
        return [record_of(r) for r in self._run(SELECT, (since,))]

    def purge(self, older_than_days: int) -> int:
        cutoff = stamp(self._clock() - timedelta(days=older_than_days))
        return len(self._run(PURGE + " RETURNING id", (cutoff,)))

    def close(self) -> None:
        pass


class SQLiteQuestionLog(SQLQuestionLog):
    """The log in `insights.sqlite3` in the data dir. Safe to share between threads and processes."""

    def __init__(
        self, data_dir: str | Path, *, retention_days: int = 90, keep_user: bool = False, clock: Clock = now_utc
    ):
        super().__init__(retention_days=retention_days, keep_user=keep_user, clock=clock)
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(data_dir) / LOG_DB
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SQLITE_SCHEMA)
        self._retain()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            yield db
        finally:
            db.close()

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._connect() as db:
            return db.execute(sql, tuple(params)).fetchall()
