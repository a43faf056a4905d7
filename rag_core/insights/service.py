"""The question log as the engine offers it: `engine.questions`.

Why a service of its own: the chat page logs an answer once it has finished streaming and gives
feedback on it later, the Insights page and the CLI read the report; all three go through this one
object, which knows the settings (whether to log at all, retention, identity, the weak score), the
knowledge base's generation and the embedder, and opens the log on first use, so a command that never
touches questions never creates the log's file or tables.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from rag_core.config import Settings
from rag_core.insights.log import Clock, QuestionLog, SQLiteQuestionLog, now_utc
from rag_core.insights.report import Embed, insights, log_note
from rag_core.types import Answer, Feedback, InsightsReport

_log = logging.getLogger(__name__)


def open_question_log(settings: Settings, *, clock: Clock = now_utc) -> QuestionLog:
    """The question log for `settings`: in its PostgreSQL database, or in its data dir."""
    retention, keep_user = settings.log_retention_days, settings.log_user
    if settings.database_url is not None:
        from rag_core.insights.pglog import PostgresQuestionLog  # psycopg is loaded only when it is used

        return PostgresQuestionLog(settings.database_url, retention_days=retention, keep_user=keep_user, clock=clock)
    return SQLiteQuestionLog(settings.data_dir, retention_days=retention, keep_user=keep_user, clock=clock)


class Questions:
    """Logs answered questions (when `settings.log_questions`), takes feedback, builds the report."""

    def __init__(self, settings: Settings, generation: Callable[[], int], embed: Embed):
        self.settings = settings
        self._generation = generation
        self._embed = embed
        self._log: QuestionLog | None = None
        self._lock = threading.Lock()

    @property
    def log(self) -> QuestionLog:
        """The question log, opened on first use (rag_core.insights.open_question_log)."""
        with self._lock:
            if self._log is None:
                self._log = open_question_log(self.settings)
            return self._log

    @property
    def enabled(self) -> bool:
        """Whether answers are logged (RAG_LOG_QUESTIONS): the chat offers feedback only then."""
        return self.settings.log_questions

    @property
    def note(self) -> str | None:
        """What the chat says about the logging, or None when nothing is logged."""
        return log_note(self.settings)

    def record(self, answer: Answer, *, user: str | None = None) -> int | None:
        """Log a complete answer (once its stream has ended); the id to give feedback with, or None when
        logging is off or the log could not be written (a warning is logged: a log fault never costs the
        user the answer). `user` is kept only with RAG_LOG_USER=1."""
        if not self.enabled:
            return None
        try:
            return self.log.log(answer, self._generation(), user=user)
        except Exception as e:  # a full disk or a lost database connection must not fail the chat
            _log.warning("the question could not be logged: %s", e)
            return None

    def feedback(self, question_id: int, up: bool, reason: str | None = None) -> Feedback:
        """Thumbs up or down on a logged answer; `reason` (thumbs down only) one of FEEDBACK_REASONS.
        Raises ValueError for another reason, QuestionNotFound for an id the log does not hold."""
        return self.log.feedback(question_id, up, reason)

    def report(self, days: int = 30) -> InsightsReport:
        """The Insights report over the last `days` days of the log."""
        return insights(self.log, self._embed, days, weak_score=self.settings.weak_score)

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None
