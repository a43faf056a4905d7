"""The job-queue contract (`JobQueue`) and what its two implementations share.

Why a contract: ingestion jobs live where the knowledge base lives. With the local store they are in
the data dir (rag_core.localjobs: SQLite plus the uploaded files on disk), which only the processes
of one machine reach. With PostgreSQL they are in the same database as the documents
(rag_core.pgjobs: rows plus the uploaded bytes as bytea), so app servers and `python -m rag_core
worker` processes on any number of machines share one queue. The worker (rag_core.jobs) and the
pages only use the members below, so either queue serves them.

Both keep the same rules: a job is persisted (bytes first) before any parsing; `claim` gives each job
to one worker at a time, taking over a running job only once its worker's heartbeat is `stale_after`
seconds old; a finished job's bytes are dropped.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from rag_core.ingest import BatchTooLarge
from rag_core.types import IngestResult, Job, JobFile, JobFileStatus, JobStatus, Stage

STALE_AFTER_S = 30.0  # a running job whose worker has been silent this long is taken over
HEARTBEAT_S = 2.0


class JobQueue(Protocol):
    """Persisted ingestion jobs. Safe to share between threads and processes."""

    @property
    def location(self) -> str:
        """Where the jobs are, for messages: the data dir, or the database URL without its password."""
        ...

    def usable(self) -> bool:
        """False once the queue's home is gone (its data dir deleted): a worker's loop then ends."""
        ...

    def submit(self, files: Sequence[tuple[str, bytes]], *, max_files: int | None = None) -> Job:
        """Persist an upload as a queued job, bytes and rows, before anything reads it."""
        ...

    def get(self, job_id: str) -> Job:
        """The job; KeyError if there is none with this id."""
        ...

    def jobs(self, limit: int = 50) -> list[Job]:
        """The newest jobs first."""
        ...

    def data(self, job_id: str, index: int) -> bytes:
        """The uploaded bytes of a job's file; KeyError once the job has finished."""
        ...

    def claim(self, worker: str, stale_after: float = STALE_AFTER_S) -> Job | None:
        """Take the oldest queued job, or a running one whose worker went silent; None if there is none."""
        ...

    def heartbeat(self, job_id: str, worker: str) -> bool:
        """Say this worker still runs the job; False if another worker has taken it over."""
        ...

    def progress(self, job_id: str, index: int, stage: Stage, done: int, total: int) -> None: ...

    def finish_file(self, job_id: str, index: int, result: IngestResult) -> None: ...

    def finish(self, job_id: str, error: str | None = None) -> None:
        """The job is done, or failed as a whole with `error`; its uploaded bytes are dropped."""
        ...

    def close(self) -> None:
        """Release connections (a later call opens new ones)."""
        ...


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def worker_name() -> str:
    """Who runs a job, as `jobs` shows it: host, process and a short unique part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


def check_upload(files: Sequence[tuple[str, bytes]], max_files: int | None) -> None:
    """Refuse an empty upload, or one of more than `max_files` files."""
    if not files:
        raise ValueError("a job needs at least one file")
    if max_files is not None and len(files) > max_files:
        raise BatchTooLarge(
            f"{len(files)} files in one upload; the limit is {max_files} "
            "(split the upload, or raise RAG_MAX_FILES_PER_BATCH)"
        )


def result_json(result: IngestResult) -> str:
    """A file's result as stored in the `result` column."""
    return json.dumps({**result.to_json(), "error_kind": result.error_kind, "warning": result.warning})


def file_of(row: Sequence[Any]) -> JobFile:
    """A JobFile from (name, status, stage, done, total, result JSON)."""
    name, status, stage, done, total, result = row
    parsed = None if result is None else IngestResult(**json.loads(result))
    return JobFile(str(name), cast(JobFileStatus, status), cast("Stage | None", stage), int(done), int(total), parsed)


def job_of(row: Sequence[Any], files: list[JobFile]) -> Job:
    """A Job from (id, status, created_at, started_at, finished_at, worker, error) and its files."""
    return Job(str(row[0]), cast(JobStatus, row[1]), str(row[2]), row[3], row[4], row[5], files, row[6])


def not_found(job_id: str) -> KeyError:
    return KeyError(f"no job {job_id!r}; list them with `python -m rag_core jobs`")
