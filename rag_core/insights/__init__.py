"""What employees ask and how the answers land: the question log, feedback, and the Insights report.

    log.py     the `QuestionLog` contract, the SQLite log (insights.sqlite3 in the data dir)
    pglog.py   the PostgreSQL log (the question_log table, in the knowledge base's database)
    topics.py  clustering questions and naming the clusters
    report.py  `insights`: the report record, its CSV tables and its text form
    service.py `Questions`, the engine's `engine.questions`: record, feedback, report, the chat's note

`open_question_log(settings)` picks the log for the settings: PostgreSQL when `database_url` is set,
else the data dir; with the settings' retention (RAG_LOG_RETENTION_DAYS) and identity choice
(RAG_LOG_USER). Whether answers are logged at all (RAG_LOG_QUESTIONS) is `Questions.record`'s
decision: the log itself is still opened to read the report when logging is off.
"""

from __future__ import annotations

from rag_core.insights.log import (
    LOG_DB,
    QuestionLog,
    QuestionNotFound,
    SQLiteQuestionLog,
    best_score,
    check_vote,
)
from rag_core.insights.report import TABLES, insights, log_note, report_csv, report_text, uncovered
from rag_core.insights.service import Questions, open_question_log

__all__ = [
    "LOG_DB",
    "TABLES",
    "QuestionLog",
    "QuestionNotFound",
    "Questions",
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
