"""The question log in PostgreSQL: the `question_log` table beside the knowledge base it was asked of.

The table comes with the store's schema (rag_core.store.pgschema's migration list), so several app
servers share one log and one retention; the SQL is the SQLite log's (log.py) with PostgreSQL's
placeholders.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from rag_core.insights.log import Clock, SQLQuestionLog, now_utc
from rag_core.store.pgschema import SCHEMA_VERSION, Pool, connect, migrate, redact
from rag_core.store.protocol import StoreError


class PostgresQuestionLog(SQLQuestionLog):
    """The log in the database at `url`. Safe to share between threads; any number of processes."""

    def __init__(self, url: str, *, retention_days: int = 90, keep_user: bool = False, clock: Clock = now_utc):
        super().__init__(retention_days=retention_days, keep_user=keep_user, clock=clock)
        with contextlib.closing(connect(url)) as db:
            version = migrate(db)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{redact(url)} was written by a newer PolicyPal (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade PolicyPal"
            )
        self._pool = Pool(url, keep=2)
        self._retain()

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._pool.connection() as db:
            cur = db.execute(sql.replace("?", "%s").encode(), tuple(params))
            return cur.fetchall() if cur.description else []

    def close(self) -> None:
        self._pool.close()
