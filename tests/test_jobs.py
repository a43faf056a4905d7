"""Ingestion jobs, on both queues (the data dir's SQLite, and PostgreSQL): persisted before parsing, run
by a worker, resumed after a killed worker process, and taken by exactly one of several workers.

PostgreSQL runs on the session's private server (tests/conftest.py, `pg_server`), a fresh database per
test; each queue or engine a test opens is another handle, as another process or machine would hold.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.ingest import BatchTooLarge
from rag_core.jobs import JOBS_DIR, JobQueue, JobWorker, LocalJobQueue, open_job_queue

from .conftest import ROOT

BACKENDS = ["local", "postgresql"]


@dataclass(frozen=True)
class Kb:
    """One knowledge base, and how to open its queue and engine (again) or name it on the command line."""

    settings: Settings

    def queue(self) -> JobQueue:
        return open_job_queue(self.settings)

    def engine(self, embedder: Embedder) -> Engine:
        return Engine(self.settings, embedder=embedder)

    def cli(self) -> list[str]:
        url = self.settings.database_url
        return ["--data-dir", str(self.settings.data_dir), *(["--database-url", url] if url else [])]


@pytest.fixture(params=BACKENDS)
def kb(request: pytest.FixtureRequest, tmp_path: Path) -> Kb:
    if request.param == "local":
        return Kb(Settings(data_dir=tmp_path / "kb"))
    url: str = request.getfixturevalue("pg_url")
    return Kb(Settings(data_dir=tmp_path / "cache", database_url=url))


def _text(i: int) -> bytes:
    return f"Policy {i}. Employees may carry over {i} days of leave into the next year. ".encode() * 20


def test_the_queue_follows_the_knowledge_base(tmp_path: Path, pg_url: str) -> None:
    assert type(open_job_queue(Settings(data_dir=tmp_path))).__name__ == "LocalJobQueue"
    queue = open_job_queue(Settings(data_dir=tmp_path / "a", database_url=pg_url))
    assert type(queue).__name__ == "PostgresJobQueue"
    job = queue.submit([("a.txt", b"alpha")])
    # another machine: another data dir, the same database; the bytes travel in the database
    elsewhere = open_job_queue(Settings(data_dir=tmp_path / "b", database_url=pg_url))
    assert elsewhere.get(job.job_id).files[0].name == "a.txt" and elsewhere.data(job.job_id, 0) == b"alpha"
    assert not (tmp_path / "a" / JOBS_DIR).exists() and not (tmp_path / "b" / JOBS_DIR).exists()


class TestQueue:
    def test_a_job_is_stored_before_anything_is_read(self, kb: Kb) -> None:
        queue = kb.queue()
        job = queue.submit([("a.txt", b"alpha"), ("b.txt", b"beta")])
        again = kb.queue().get(job.job_id)  # as another process or a reloaded page sees it
        assert again.status == "queued" and [(f.name, f.status, f.result) for f in again.files] == [
            ("a.txt", "queued", None),
            ("b.txt", "queued", None),
        ]
        assert queue.data(job.job_id, 1) == b"beta"
        assert [j.job_id for j in queue.jobs()] == [job.job_id]
        with pytest.raises(KeyError, match="python -m rag_core jobs"):
            queue.get("nope")

    def test_empty_and_too_large_uploads_are_refused(self, kb: Kb) -> None:
        queue = kb.queue()
        with pytest.raises(ValueError, match="at least one file"):
            queue.submit([])
        with pytest.raises(BatchTooLarge, match="the limit is 1"):
            queue.submit([("a.txt", b"a"), ("b.txt", b"b")], max_files=1)
        assert queue.jobs() == []

    def test_one_claim_per_job_and_a_silent_workers_job_is_taken_over(self, kb: Kb) -> None:
        queue = kb.queue()
        job = queue.submit([("a.txt", b"a")])
        claimed = queue.claim("w1")
        assert claimed is not None and (claimed.job_id, claimed.worker) == (job.job_id, "w1")
        assert queue.claim("w2") is None  # running, and w1's heartbeat is fresh
        assert queue.heartbeat(job.job_id, "w1")
        taken = queue.claim("w2", stale_after=0.0)  # w1 fell silent
        assert taken is not None and taken.worker == "w2"
        assert not queue.heartbeat(job.job_id, "w1")  # w1 learns it lost the job

    def test_claimers_racing_each_take_different_jobs(self, kb: Kb) -> None:
        queue = kb.queue()
        submitted = [queue.submit([(f"{i}.txt", _text(i))]).job_id for i in range(12)]
        claims: list[tuple[str, str]] = []
        start = threading.Barrier(4)

        def claimer(name: str) -> None:
            own = kb.queue()
            start.wait()
            while (job := own.claim(name)) is not None:
                claims.append((job.job_id, name))

        threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(j for j, _ in claims) == sorted(submitted)  # each job once, none left
        assert {queue.get(j).worker for j, _ in claims} == {w for _, w in claims}


class TestWorker:
    def test_runs_a_job_with_progress_and_results(self, kb: Kb, embedder: Embedder) -> None:
        engine, queue = kb.engine(embedder), kb.queue()
        job = queue.submit([("a.txt", _text(1)), ("bad.pdf", b"%PDF-1.4 truncated"), ("b.md", _text(2))])
        done = JobWorker(engine, queue).run_once()
        assert done is not None and done.status == "done" and done.finished_at is not None
        assert [f.result.status if f.result else None for f in done.files] == ["added", "failed", "added"]
        assert done.files[1].result is not None and "damaged PDF" in (done.files[1].result.error or "")
        assert done.files[0].stage == "saving" and done.files[0].done == done.files[0].total == 1
        assert sorted(d.name for d in engine.documents()) == ["a.txt", "b.md"]
        with pytest.raises(KeyError, match="finished"):
            queue.data(job.job_id, 0)  # the bytes are in the store now
        assert JobWorker(engine, queue).run_once() is None

    def test_a_job_that_cannot_run_fails_with_the_reason(
        self, kb: Kb, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        engine, queue = kb.engine(embedder), kb.queue()
        queue.submit([("a.txt", _text(1))])

        def no_disk(*a: object, **k: object) -> None:
            raise OSError("No space left on device")

        monkeypatch.setattr(engine, "ingest_uploads", no_disk)
        failed = JobWorker(engine, queue).run_once()
        assert failed is not None and failed.status == "failed" and "No space left" in (failed.error or "")

    def test_a_file_the_dead_worker_stored_is_reported_as_added(self, kb: Kb, embedder: Embedder) -> None:
        engine, queue = kb.engine(embedder), kb.queue()
        job = queue.submit([("a.txt", _text(1)), ("b.txt", _text(2))])
        assert queue.claim("dead") is not None
        queue.progress(job.job_id, 0, "saving", 0, 1)
        engine.ingest_uploads([("a.txt", _text(1))])  # it stored a.txt, then died before saying so
        resumed = JobWorker(engine, queue, stale_after=0.0).run_once()
        assert resumed is not None and [f.result.status if f.result else None for f in resumed.files] == [
            "added",
            "added",
        ]
        assert len(engine.documents()) == 2

    def test_two_workers_take_each_file_exactly_once(self, kb: Kb, embedder: Embedder) -> None:
        engine, queue = kb.engine(embedder), kb.queue()
        jobs = [queue.submit([(f"p{i}-{j}.txt", _text(10 * i + j)) for j in range(2)]) for i in range(4)]
        # each worker with its own engine and queue handle, as on two machines
        workers = [JobWorker(kb.engine(embedder), kb.queue(), poll_s=0.05) for _ in range(2)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and any(queue.get(j.job_id).status != "done" for j in jobs):
            time.sleep(0.2)
        for w in workers:
            w.stop(timeout=30)
        finished = [queue.get(j.job_id) for j in jobs]
        assert [j.status for j in finished] == ["done"] * 4
        assert [f.result.status if f.result else None for j in finished for f in j.files] == ["added"] * 8
        assert len(engine.documents()) == 8 and engine.store.size == len(engine.store.all_chunks())


def test_a_killed_worker_process_job_is_resumed(kb: Kb, embedder: Embedder, policy_pdf: Path) -> None:
    """`python -m rag_core worker` killed with SIGKILL mid-job: the next worker re-runs the unfinished
    files; every file ends stored once, and the job done."""
    queue = kb.queue()
    files = [(f"doc{i}.txt", _text(i) * 30) for i in range(3)] + [("policy.pdf", policy_pdf.read_bytes())]
    job = queue.submit(files)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag_core", "worker", *kb.cli()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # kill it once it is inside the job
            seen = queue.get(job.job_id)
            if seen.status == "running" and any(f.status == "running" for f in seen.files):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the worker never started the job")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    interrupted = queue.get(job.job_id)
    assert interrupted.status == "running" and interrupted.finished_files < len(files)
    resumed = JobWorker(kb.engine(embedder), queue, stale_after=0.0).run_once()
    assert resumed is not None and resumed.status == "done"
    assert [f.result.status if f.result else None for f in resumed.files] == ["added"] * len(files)
    engine = kb.engine(embedder)
    assert sorted(d.name for d in engine.documents()) == sorted(name for name, _ in files)
    assert engine.store.size == len(engine.store.all_chunks()) == sum(d.chunks for d in engine.documents())


def test_jobs_command_lists_them(kb: Kb, embedder: Embedder, capsys: pytest.CaptureFixture[str]) -> None:
    from rag_core.__main__ import main

    queue = kb.queue()
    job = queue.submit([("a.txt", _text(1))])
    JobWorker(kb.engine(embedder), queue).run_once()
    assert main(["jobs", "--json", *kb.cli()]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["job_id"], row["status"]) == (job.job_id, "done")
    assert row["files"][0]["result"]["status"] == "added" and row["files"][0]["name"] == "a.txt"
    assert main(["jobs", *kb.cli()]) == 0
    assert "a.txt: added" in capsys.readouterr().out


def test_worker_threads_do_not_block_each_other_on_an_empty_queue(kb: Kb, embedder: Embedder) -> None:
    worker = JobWorker(kb.engine(embedder), kb.queue(), poll_s=0.01).start()
    time.sleep(0.2)
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    stopper.join(timeout=10)
    assert not stopper.is_alive()


def test_a_worker_stops_when_its_data_dir_is_gone(tmp_path: Path, embedder: Embedder) -> None:
    queue = LocalJobQueue(tmp_path / "kb")
    worker = JobWorker(Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder), queue, poll_s=0.01)
    assert queue.usable()
    shutil.rmtree(tmp_path / "kb")
    assert not queue.usable()
    worker.serve()  # returns at once
