"""The job queue in PostgreSQL: the jobs of a knowledge base kept in the same database, so app servers
and `python -m rag_core worker --database-url ...` processes on any number of machines share them.

The tables (`jobs`, `job_files`) are created by the store's versioned migrations
(rag_core.store.pgschema). Machines do not share a disk, so a job's uploaded bytes are a bytea column
of its files, committed in one transaction with the job's rows and cleared when the job is done.

Why `FOR UPDATE SKIP LOCKED`: `claim` picks the oldest queued job (or a running one whose heartbeat is
stale) and locks its row in the same statement; a second worker claiming at the same moment skips the
locked row and takes the next job instead of waiting for, or taking, the same one. Heartbeats use the
database server's clock (`clock_timestamp()`), so workers whose own clocks disagree still judge
staleness alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from rag_core.jobqueue import STALE_AFTER_S, check_upload, file_of, job_of, new_job_id, not_found, now, result_json
from rag_core.store.pgrows import text
from rag_core.store.pgschema import Pool, connect, migrate, redact
from rag_core.types import IngestResult, Job, JobFile, Stage, sha256_hex

_JOB_COLUMNS = "id, status, created_at, started_at, finished_at, worker, error"


class PostgresJobQueue:
    """The persisted jobs of one PostgreSQL database (a `JobQueue`). Safe to share between threads,
    processes and machines."""

    def __init__(self, url: str):
        self.url = url
        with contextlib.closing(connect(url)) as db:
            migrate(db)  # the store's schema, jobs included; a worker may start before any app server
        self._pool = Pool(url, keep=4)

    def __repr__(self) -> str:
        return f"PostgresJobQueue({redact(self.url)!r})"

    @property
    def location(self) -> str:
        return redact(self.url)

    def usable(self) -> bool:
        return True

    def close(self) -> None:
        self._pool.close()

    # ---------------------------------------------------------------- submitting and reading

    def submit(self, files: Sequence[tuple[str, bytes]], *, max_files: int | None = None) -> Job:
        """Persist an upload as a queued job: its rows and bytes in one transaction."""
        check_upload(files, max_files)
        job_id = new_job_id()
        with self._pool.connection() as db, db.transaction():
            db.execute("INSERT INTO jobs(id, status, created_at) VALUES (%s, 'queued', %s)", (job_id, now()))
            with db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO job_files(job_id, idx, name, sha256, status, data) "
                    "VALUES (%s, %s, %s, %s, 'queued', %s)",
                    [(job_id, i, text(name), sha256_hex(data), data) for i, (name, data) in enumerate(files)],
                )
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        jobs = self._read("WHERE id = %s", (job_id,))
        if not jobs:
            raise not_found(job_id)
        return jobs[0]

    def jobs(self, limit: int = 50) -> list[Job]:
        """The newest jobs first."""
        return self._read("ORDER BY seq DESC LIMIT %s", (limit,))

    def data(self, job_id: str, index: int) -> bytes:
        with self._pool.connection() as db:
            row = db.execute("SELECT data FROM job_files WHERE job_id = %s AND idx = %s", (job_id, index)).fetchone()
        if row is None or row[0] is None:
            raise KeyError(f"job {job_id!r} has no bytes for file {index}: it finished, or has no such file")
        return bytes(row[0])

    def _read(self, clause: str, args: Sequence[Any]) -> list[Job]:
        with self._pool.connection() as db, db.transaction():
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            rows = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs {clause}".encode(), args).fetchall()
            files: dict[str, list[JobFile]] = {str(r[0]): [] for r in rows}
            for row in db.execute(
                "SELECT job_id, name, status, stage, done, total, result FROM job_files "
                "WHERE job_id = ANY(%s) ORDER BY job_id, idx",
                (list(files),),
            ):
                files[str(row[0])].append(file_of(row[1:]))
        return [job_of(r, files[str(r[0])]) for r in rows]

    # ---------------------------------------------------------------- a worker's side

    def claim(self, worker: str, stale_after: float = STALE_AFTER_S) -> Job | None:
        """Take the oldest queued job, or a running one whose worker went silent; None if there is none.
        Rows another worker is claiming right now are skipped, never waited for."""
        with self._pool.connection() as db, db.transaction():
            row = db.execute(
                "SELECT id FROM jobs WHERE status = 'queued' OR (status = 'running' "
                "AND heartbeat < clock_timestamp() - make_interval(secs => %s)) "
                "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
                (float(stale_after),),
            ).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE jobs SET status = 'running', worker = %s, heartbeat = clock_timestamp(), "
                    "started_at = COALESCE(started_at, %s) WHERE id = %s",
                    (worker, now(), row[0]),
                )
        return None if row is None else self.get(str(row[0]))

    def heartbeat(self, job_id: str, worker: str) -> bool:
        """Say this worker still runs the job; False if another worker has taken it over."""
        with self._pool.connection() as db:
            cur = db.execute(
                "UPDATE jobs SET heartbeat = clock_timestamp() WHERE id = %s AND worker = %s AND status = 'running'",
                (job_id, worker),
            )
            return cur.rowcount == 1

    def progress(self, job_id: str, index: int, stage: Stage, done: int, total: int) -> None:
        with self._pool.connection() as db:
            db.execute(
                "UPDATE job_files SET status = 'running', stage = %s, done = %s, total = %s "
                "WHERE job_id = %s AND idx = %s",
                (stage, done, total, job_id, index),
            )

    def finish_file(self, job_id: str, index: int, result: IngestResult) -> None:
        with self._pool.connection() as db:
            db.execute(
                "UPDATE job_files SET status = %s, result = %s WHERE job_id = %s AND idx = %s",
                (result.status, text(result_json(result)), job_id, index),
            )

    def finish(self, job_id: str, error: str | None = None) -> None:
        """The job is done, or failed as a whole with `error`; its bytes are cleared in the same commit."""
        with self._pool.connection() as db, db.transaction():
            db.execute(
                "UPDATE jobs SET status = %s, finished_at = %s, error = %s WHERE id = %s",
                ("done" if error is None else "failed", now(), None if error is None else text(error), job_id),
            )
            db.execute("UPDATE job_files SET data = NULL WHERE job_id = %s", (job_id,))
