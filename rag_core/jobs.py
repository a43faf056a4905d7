"""Ingestion jobs: an upload is persisted as a job before any parsing, and a worker runs it.

Why: parsing and embedding a large upload takes minutes. Run inside the browser session that started
it, a reload or a closed tab dropped the files silently. As a job it survives all of that: the files'
bytes and the job's state are stored first, a worker (a thread in every app server, or
`python -m rag_core worker` as a process of its own) takes it, records each file's progress and result,
and any page in any browser shows it.

Where jobs are kept follows the knowledge base (`open_job_queue`): in the data dir with the local store
(rag_core.localjobs), in the same PostgreSQL database with `database_url` (rag_core.pgjobs), where
workers on several machines share them. Both keep the contract in rag_core.jobqueue.

A worker that dies mid-job (the server killed, the machine rebooted) stops sending heartbeats; once its
heartbeat is `stale_after` seconds old, the next worker to look takes the job over and re-runs its
unfinished files. That is safe because an ingest is atomic and idempotent: a file the dead worker had
stored completely is found by its hash (and reported as the worker that stored it would have), and a
file it had half done left nothing in the store.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import TYPE_CHECKING

from rag_core.config import Settings
from rag_core.jobqueue import HEARTBEAT_S, STALE_AFTER_S, JobQueue, worker_name
from rag_core.localjobs import JOBS_DB, JOBS_DIR, LocalJobQueue
from rag_core.types import IngestResult, Job, Stage

if TYPE_CHECKING:
    from rag_core.engine import Engine

__all__ = [
    "JOBS_DB",
    "JOBS_DIR",
    "STALE_AFTER_S",
    "JobQueue",
    "JobWorker",
    "LocalJobQueue",
    "open_job_queue",
    "worker_name",
]

_log = logging.getLogger(__name__)


def open_job_queue(settings: Settings) -> JobQueue:
    """The job queue of the knowledge base `settings` name: in its PostgreSQL database when
    `database_url` is set, else in its data dir."""
    if settings.database_url is not None:
        from rag_core.pgjobs import PostgresJobQueue  # psycopg is loaded only when it is used

        return PostgresJobQueue(settings.database_url)
    return LocalJobQueue(settings.data_dir)


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
        """Run jobs until `stop` (or until the queue's data dir is gone): a failing job is logged and the loop
        goes on."""
        while not self._stop.is_set() and self.queue.usable():
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
