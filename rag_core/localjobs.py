"""The job queue of the local store: SQLite and files in the data dir, shared by the processes of one
machine (the app server's worker thread, `python -m rag_core worker --data-dir ...`).

    jobs.sqlite3    jobs (state, owner, heartbeat) and job_files (name, hash, progress, result JSON)
    jobs/<job_id>/  the uploaded bytes of a job's files, removed when the job is done

A job's bytes are written and fsynced before its rows are committed, so a job that is listed can
always be run. Claiming is one `BEGIN IMMEDIATE` transaction, so two workers never take the same job.
The PostgreSQL queue (rag_core.pgjobs) keeps the same contract for several machines.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rag_core.jobqueue import STALE_AFTER_S, check_upload, file_of, job_of, new_job_id, not_found, now, result_json
from rag_core.store.vectors import fsync_dir, fsync_file
from rag_core.types import IngestResult, Job, JobFile, Stage, sha256_hex

JOBS_DB = "jobs.sqlite3"
JOBS_DIR = "jobs"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    worker TEXT,
    heartbeat REAL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS job_files (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    stage TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    PRIMARY KEY (job_id, idx)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at);
"""


class LocalJobQueue:
    """The persisted jobs of one data dir (a `JobQueue`). Safe to share between threads and processes."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.files_dir = self.data_dir / JOBS_DIR
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / JOBS_DB
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @property
    def location(self) -> str:
        return str(self.data_dir)

    def usable(self) -> bool:
        return self.data_dir.exists()

    def close(self) -> None:
        """Nothing stays open: every call opens and closes its own connection."""

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    # ---------------------------------------------------------------- submitting and reading

    def submit(self, files: Sequence[tuple[str, bytes]], *, max_files: int | None = None) -> Job:
        """Persist an upload as a queued job: the bytes on disk (fsynced), then the job's rows."""
        check_upload(files, max_files)
        job_id = new_job_id()
        folder = self.files_dir / job_id
        folder.mkdir()
        for i, (_, data) in enumerate(files):
            (folder / str(i)).write_bytes(data)
            fsync_file(folder / str(i))
        fsync_dir(folder)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO jobs(id, status, created_at) VALUES (?, 'queued', ?)", (job_id, now()))
            db.executemany(
                "INSERT INTO job_files(job_id, idx, name, sha256, status) VALUES (?, ?, ?, ?, 'queued')",
                [(job_id, i, name, sha256_hex(data)) for i, (name, data) in enumerate(files)],
            )
            db.execute("COMMIT")
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        jobs = self._read("WHERE id = ?", (job_id,))
        if not jobs:
            raise not_found(job_id)
        return jobs[0]

    def jobs(self, limit: int = 50) -> list[Job]:
        """The newest jobs first."""
        return self._read("ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))

    def data(self, job_id: str, index: int) -> bytes:
        try:
            return (self.files_dir / job_id / str(index)).read_bytes()
        except FileNotFoundError:
            raise KeyError(f"job {job_id!r} has no bytes for file {index}: it finished, or has no such file") from None

    def _read(self, clause: str, args: Sequence[Any]) -> list[Job]:
        with self._connect() as db:
            db.execute("BEGIN")
            rows = db.execute(
                f"SELECT id, status, created_at, started_at, finished_at, worker, error FROM jobs {clause}", args
            ).fetchall()
            files: dict[str, list[JobFile]] = {str(r[0]): [] for r in rows}
            marks = ",".join("?" * len(files))
            for row in db.execute(
                "SELECT job_id, name, status, stage, done, total, result FROM job_files "
                f"WHERE job_id IN ({marks}) ORDER BY job_id, idx",
                list(files),
            ):
                files[str(row[0])].append(file_of(row[1:]))
            db.execute("COMMIT")
        return [job_of(r, files[str(r[0])]) for r in rows]

    # ---------------------------------------------------------------- a worker's side

    def claim(self, worker: str, stale_after: float = STALE_AFTER_S) -> Job | None:
        """Take the oldest queued job, or a running one whose worker went silent; None if there is none."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # one claimer at a time, across processes
            row = db.execute(
                "SELECT id FROM jobs WHERE status = 'queued' OR (status = 'running' AND heartbeat < ?) "
                "ORDER BY created_at, rowid LIMIT 1",
                (time.time() - stale_after,),
            ).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE jobs SET status = 'running', worker = ?, heartbeat = ?, "
                    "started_at = COALESCE(started_at, ?) WHERE id = ?",
                    (worker, time.time(), now(), row[0]),
                )
            db.execute("COMMIT")
        return None if row is None else self.get(str(row[0]))

    def heartbeat(self, job_id: str, worker: str) -> bool:
        """Say this worker still runs the job; False if another worker has taken it over."""
        with self._connect() as db:
            cur = db.execute(
                "UPDATE jobs SET heartbeat = ? WHERE id = ? AND worker = ? AND status = 'running'",
                (time.time(), job_id, worker),
            )
        return cur.rowcount == 1

    def progress(self, job_id: str, index: int, stage: Stage, done: int, total: int) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE job_files SET status = 'running', stage = ?, done = ?, total = ? WHERE job_id = ? AND idx = ?",
                (stage, done, total, job_id, index),
            )

    def finish_file(self, job_id: str, index: int, result: IngestResult) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE job_files SET status = ?, result = ? WHERE job_id = ? AND idx = ?",
                (result.status, result_json(result), job_id, index),
            )

    def finish(self, job_id: str, error: str | None = None) -> None:
        """The job is done (each file has its result), or failed as a whole with `error` (the model
        could not load, the disk is full...); either way its uploaded bytes are no longer needed."""
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
                ("done" if error is None else "failed", now(), error, job_id),
            )
        shutil.rmtree(self.files_dir / job_id, ignore_errors=True)
