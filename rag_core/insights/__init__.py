"""What employees ask and how the answers land: the question log, feedback, and the Insights report.

    log.py     the `QuestionLog` contract, the SQLite log (insights.sqlite3 in the data dir)
    pglog.py   the PostgreSQL log (the question_log table, in the knowledge base's database)
    topics.py  clustering questions and naming the clusters
    report.py  `insights`: the report record, its CSV tables and its text form

`open_question_log(settings)` picks the log for the settings: PostgreSQL when `database_url` is set,
else the data dir; with the settings' retention (RAG_LOG_RETENTION_DAYS) and identity choice
(RAG_LOG_USER). Whether questions are logged at all (RAG_LOG_QUESTIONS) is the engine's decision: the
log itself is opened to read the Insights even when logging is off.
"""

from __future__ import annotations

from rag_core.config import Settings
from rag_core.insights.log import (
    LOG_DB,
    Clock,
    QuestionLog,
    QuestionNotFound,
    SQLiteQuestionLog,
    best_score,
    check_vote,
    now_utc,
)
from rag_core.insights.report import TABLES, insights, report_csv, report_text, uncovered

__all__ = [
    "LOG_DB",
    "TABLES",
    "QuestionLog",
    "QuestionNotFound",
    "SQLiteQuestionLog",
    "best_score",
    "check_vote",
    "insights",
    "log_note",
    "open_question_log",
    "report_csv",
    "report_text",
    "uncovered",
]


def open_question_log(settings: Settings, *, clock: Clock = now_utc) -> QuestionLog:
    """The question log for `settings`: in its PostgreSQL database, or in its data dir."""
    retention, keep_user = settings.log_retention_days, settings.log_user
    if settings.database_url is not None:
        from rag_core.insights.pglog import PostgresQuestionLog  # psycopg is loaded only when it is used

        return PostgresQuestionLog(settings.database_url, retention_days=retention, keep_user=keep_user, clock=clock)
    return SQLiteQuestionLog(settings.data_dir, retention_days=retention, keep_user=keep_user, clock=clock)


def log_note(settings: Settings) -> str | None:
    """The note the chat shows while questions are logged (None when they are not).

    >>> log_note(Settings(log_retention_days=30))
    'Questions and answers are logged (without your name) for 30 days to improve the documents.'
    >>> log_note(Settings(log_questions=False)) is None
    True
    """
    if not settings.log_questions:
        return None
    kept = f"for {settings.log_retention_days} days" if settings.log_retention_days else "until deleted"
    who = "with your user name" if settings.log_user else "(without your name)"
    return f"Questions and answers are logged {who} {kept} to improve the documents."
