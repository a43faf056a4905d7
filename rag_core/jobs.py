"""Ingestion jobs: an upload is persisted as a job before any parsing, and a worker runs it.

Why: parsing and embedding a large upload takes minutes. Run inside the browser session that started
it, a reload or a closed tab dropped the files silently. As a job it survives all of that: the files'
bytes and the job's state are on disk first, a worker (a thread in every app server, or
`python -m rag_core worker` as a process of its own) takes it, records each file's progress and result,
and any page in any browser shows it.

A worker that dies mid-job (the server killed, the machine rebooted) stops sending heartbeats; once its
heartbeat is `stale_after` seconds old, the next worker to look takes the job over and re-runs its
unfinished files. That is safe because an ingest is atomic and idempotent: a file the dead worker had
stored completely is found by its hash (and reported as the worker that stored it would have), and a
file it had half done left nothing in the store. Claiming is one `BEGIN IMMEDIATE` transaction, so
two workers on one queue never take the same job.

    jobs.sqlite3    jobs (state, owner, heartbeat) and job_files (name, hash, progress, result JSON)
    jobs/<job_id>/  the uploaded bytes of a job's files, removed when the job is done

What it leaves out: the PostgreSQL queue that several machines share (`FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rag_core.ingest import BatchTooLarge
from rag_core.store.vectors import fsync_dir, fsync_file
from rag_core.types import IngestResult, Job, JobFile, JobFileStatus, JobStatus, Stage, sha256_hex

if TYPE_CHECKING:
    from rag_core.engine import Engine

_log = logging.getLogger(__name__)

JOBS_DB = "jobs.sqlite3"
JOBS_DIR = "jobs"
STALE_AFTER_S = 30.0  # a running job whose worker has been silent this long is taken over
HEARTBEAT_S = 2.0
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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def worker_name() -> str:
    """Who runs a job, as `jobs` shows it: host, process and a short unique part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobQueue:
    """The persisted jobs of one data dir. Safe to share between threads and processes."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.files_dir = self.data_dir / JOBS_DIR
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / JOBS_DB
        with self._connect() as db:
            db.executescript(_SCHEMA)

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
        if not files:
            raise ValueError("a job needs at least one file")
        if max_files is not None and len(files) > max_files:
            raise BatchTooLarge(
                f"{len(files)} files in one upload; the limit is {max_files} "
                "(split the upload, or raise RAG_MAX_FILES_PER_BATCH)"
            )
        job_id = uuid.uuid4().hex[:16]
        folder = self.files_dir / job_id
        folder.mkdir()
        for i, (_, data) in enumerate(files):
            (folder / str(i)).write_bytes(data)
            fsync_file(folder / str(i))
        fsync_dir(folder)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO jobs(id, status, created_at) VALUES (?, 'queued', ?)", (job_id, _now()))
            db.executemany(
                "INSERT INTO job_files(job_id, idx, name, sha256, status) VALUES (?, ?, ?, ?, 'queued')",
                [(job_id, i, name, sha256_hex(data)) for i, (name, data) in enumerate(files)],
            )
            db.execute("COMMIT")
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        jobs = self._read("WHERE id = ?", (job_id,))
        if not jobs:
            raise KeyError(f"no job {job_id!r}; list them with `python -m rag_core jobs`")
        return jobs[0]

    def jobs(self, limit: int = 50) -> list[Job]:
        """The newest jobs first."""
        return self._read("ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))

    def data(self, job_id: str, index: int) -> bytes:
        return (self.files_dir / job_id / str(index)).read_bytes()

    def _read(self, clause: str, args: Sequence[Any]) -> list[Job]:
        with self._connect() as db:
            db.execute("BEGIN")
            rows = db.execute(
                f"SELECT id, status, created_at, started_at, finished_at, worker, error FROM jobs {clause}", args
            ).fetchall()
            files: dict[str, list[JobFile]] = {str(r[0]): [] for r in rows}
            marks = ",".join("?" * len(files))
            for job_id, name, status, stage, done, total, result in db.execute(
                "SELECT job_id, name, status, stage, done, total, result FROM job_files "
                f"WHERE job_id IN ({marks}) ORDER BY job_id, idx",
                list(files),
            ):
                parsed = None if result is None else IngestResult(**json.loads(result))
                files[str(job_id)].append(JobFile(str(name), cast(JobFileStatus, status), stage, done, total, parsed))
            db.execute("COMMIT")
        return [
            Job(str(r[0]), cast(JobStatus, r[1]), str(r[2]), r[3], r[4], r[5], files[str(r[0])], r[6]) for r in rows
        ]

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
                    (worker, time.time(), _now(), row[0]),
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
        payload = json.dumps({**result.to_json(), "error_kind": result.error_kind, "warning": result.warning})
        with self._connect() as db:
            db.execute(
                "UPDATE job_files SET status = ?, result = ? WHERE job_id = ? AND idx = ?",
                (result.status, payload, job_id, index),
            )

    def finish(self, job_id: str, error: str | None = None) -> None:
        """The job is done (each file has its result), or failed as a whole with `error` (the model
        could not load, the disk is full...); either way its uploaded bytes are no longer needed."""
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
                ("done" if error is None else "failed", _now(), error, job_id),
            )
        shutil.rmtree(self.files_dir / job_id, ignore_errors=True)


class JobWorker:
    """Runs the jobs of one queue into one engine: `run_once` for one job, `start` for a thread that
    keeps looking, `serve` for a process that does nothing else."""

    def __init__(self, engine: Engine, queue: JobQueue, *, poll_s: float = 0.5, stale_after: float = STALE_AFTER_S):
        self.engine = engine
        self.queue = queue
        self.poll_s = poll_s
        self.stale_after = stale_after
        self.name = worker_name()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Job | None:
        """Claim one job and run its unfinished files; the job as it ended, or None if none was waiting."""
        job = self.queue.claim(self.name, self.stale_after)
        if job is None:
            return None
        beating = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job.job_id, beating), name="policypal-job-heartbeat")
        beat.start()
        error = None
        try:
            self._run(job)
        except Exception as e:  # not one bad file (those are results): the job itself could not run
            _log.exception("ingestion job %s failed", job.job_id)
            error = f"{type(e).__name__}: {e}"
        finally:
            beating.set()
            beat.join()
        self.queue.finish(job.job_id, error)
        return self.queue.get(job.job_id)

    def _run(self, job: Job) -> None:
        todo = [i for i, f in enumerate(job.files) if f.result is None]
        interrupted = {i for i in todo if job.files[i].status == "running"}  # a dead worker's file
        files = [(job.files[i].name, self.queue.data(job.job_id, i)) for i in todo]
        current = 0

        def on_stage(stage: Stage, done: int, total: int) -> None:
            self.queue.progress(job.job_id, todo[current], stage, done, total)

        def on_file(done: int, total: int, result: IngestResult) -> None:
            nonlocal current
            index = todo[done - 1]
            if index in interrupted and result.status == "duplicate":
                result = _stored_by_the_dead_worker(self.engine, result)
            self.queue.finish_file(job.job_id, index, result)
            current = min(done, len(todo) - 1)

        self.engine.ingest_uploads(files, progress=on_file, file_progress=on_stage)

    def _beat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            if not self.queue.heartbeat(job_id, self.name):
                _log.warning("job %s was taken over by another worker", job_id)

    # ---------------------------------------------------------------- loops

    def start(self) -> JobWorker:
        """Keep running jobs in a daemon thread (the app server's worker); returns self."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self.serve, name="policypal-job-worker", daemon=True)
            self._thread.start()
            # Let it leave its loop before the interpreter tears down the libraries it may be inside of;
            # a job cut short here is resumed by the next worker, as after a crash.
            atexit.register(self.stop, timeout=5.0)
        return self

    def serve(self) -> None:
        """Run jobs until `stop` (or until the data dir is gone): a failing job is logged and the loop
        goes on."""
        while not self._stop.is_set() and self.queue.data_dir.exists():
            try:
                ran = self.run_once()
            except Exception:  # the queue itself failed (a locked or full disk): try again later
                _log.exception("the job worker could not run a job; it carries on")
                ran = None
            if ran is None:
                self._stop.wait(self.poll_s)

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _stored_by_the_dead_worker(engine: Engine, result: IngestResult) -> IngestResult:
    """A file whose worker died after storing it reads as a duplicate of itself: it was this job's."""
    doc = next((d for d in engine.documents() if d.document_id == result.document_id), None)
    if doc is None:
        return result
    return IngestResult(
        result.file, "updated" if doc.replaces else "added", doc.document_id, doc.pages, doc.chunks,
        replaces=doc.replaces, version=doc.version,
    )  # fmt: skip
