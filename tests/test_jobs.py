"""Ingestion jobs: persisted before parsing, run by a worker, resumed after a killed worker, and taken by
exactly one of several workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.ingest import BatchTooLarge
from rag_core.jobs import JOBS_DIR, JobQueue, JobWorker

from .conftest import ROOT


def _engine(data_dir: Path, embedder: Embedder) -> Engine:
    return Engine(Settings(data_dir=data_dir), embedder=embedder)


def _text(i: int) -> bytes:
    return f"Policy {i}. Employees may carry over {i} days of leave into the next year. ".encode() * 20


class TestQueue:
    def test_a_job_is_on_disk_before_anything_is_read(self, tmp_path: Path) -> None:
        queue = JobQueue(tmp_path)
        job = queue.submit([("a.txt", b"alpha"), ("b.txt", b"beta")])
        again = JobQueue(tmp_path).get(job.job_id)  # as another process or a reloaded page sees it
        assert again.status == "queued" and [(f.name, f.status, f.result) for f in again.files] == [
            ("a.txt", "queued", None),
            ("b.txt", "queued", None),
        ]
        assert queue.data(job.job_id, 1) == b"beta"
        assert [j.job_id for j in queue.jobs()] == [job.job_id]

    def test_empty_and_too_large_uploads_are_refused(self, tmp_path: Path) -> None:
        queue = JobQueue(tmp_path)
        with pytest.raises(ValueError, match="at least one file"):
            queue.submit([])
        with pytest.raises(BatchTooLarge, match="the limit is 1"):
            queue.submit([("a.txt", b"a"), ("b.txt", b"b")], max_files=1)
        assert queue.jobs() == []

    def test_one_claim_per_job_and_a_silent_workers_job_is_taken_over(self, tmp_path: Path) -> None:
        queue = JobQueue(tmp_path)
        job = queue.submit([("a.txt", b"a")])
        claimed = queue.claim("w1")
        assert claimed is not None and (claimed.job_id, claimed.worker) == (job.job_id, "w1")
        assert queue.claim("w2") is None  # running, and w1's heartbeat is fresh
        assert queue.heartbeat(job.job_id, "w1")
        taken = queue.claim("w2", stale_after=0.0)  # w1 fell silent
        assert taken is not None and taken.worker == "w2"
        assert not queue.heartbeat(job.job_id, "w1")  # w1 learns it lost the job


class TestWorker:
    def test_runs_a_job_with_progress_and_results(self, tmp_path: Path, embedder: Embedder) -> None:
        engine = _engine(tmp_path, embedder)
        queue = JobQueue(tmp_path)
        job = queue.submit([("a.txt", _text(1)), ("bad.pdf", b"%PDF-1.4 truncated"), ("b.md", _text(2))])
        done = JobWorker(engine, queue).run_once()
        assert done is not None and done.status == "done" and done.finished_at is not None
        assert [f.result.status if f.result else None for f in done.files] == ["added", "failed", "added"]
        assert done.files[1].result is not None and "damaged PDF" in (done.files[1].result.error or "")
        assert done.files[0].stage == "saving" and done.files[0].done == done.files[0].total == 1
        assert sorted(d.name for d in engine.documents()) == ["a.txt", "b.md"]
        assert not (tmp_path / JOBS_DIR / job.job_id).exists()  # the bytes are in the store now
        assert JobWorker(engine, queue).run_once() is None

    def test_a_job_that_cannot_run_fails_with_the_reason(
        self, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        engine = _engine(tmp_path, embedder)
        queue = JobQueue(tmp_path)
        queue.submit([("a.txt", _text(1))])

        def no_disk(*a: object, **k: object) -> None:
            raise OSError("No space left on device")

        monkeypatch.setattr(engine, "ingest_uploads", no_disk)
        failed = JobWorker(engine, queue).run_once()
        assert failed is not None and failed.status == "failed" and "No space left" in (failed.error or "")

    def test_a_file_the_dead_worker_stored_is_reported_as_added(self, tmp_path: Path, embedder: Embedder) -> None:
        engine = _engine(tmp_path, embedder)
        queue = JobQueue(tmp_path)
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

    def test_two_workers_take_each_file_exactly_once(self, tmp_path: Path, embedder: Embedder) -> None:
        engine = _engine(tmp_path, embedder)
        queue = JobQueue(tmp_path)
        jobs = [queue.submit([(f"p{i}-{j}.txt", _text(10 * i + j)) for j in range(2)]) for i in range(4)]
        workers = [JobWorker(engine, JobQueue(tmp_path), poll_s=0.05) for _ in range(2)]
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


def test_a_killed_worker_process_job_is_resumed(tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
    """`python -m rag_core worker` killed with SIGKILL mid-job: the next worker re-runs the unfinished
    files; every file ends stored once, and the job done."""
    data_dir = tmp_path / "kb"
    queue = JobQueue(data_dir)
    files = [(f"doc{i}.txt", _text(i) * 30) for i in range(3)] + [("policy.pdf", policy_pdf.read_bytes())]
    job = queue.submit(files)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag_core", "worker", "--data-dir", str(data_dir)],
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
    resumed = JobWorker(_engine(data_dir, embedder), queue, stale_after=0.0).run_once()
    assert resumed is not None and resumed.status == "done"
    assert [f.result.status if f.result else None for f in resumed.files] == ["added"] * len(files)
    engine = _engine(data_dir, embedder)
    assert sorted(d.name for d in engine.documents()) == sorted(name for name, _ in files)
    assert engine.store.size == len(engine.store.all_chunks()) == sum(d.chunks for d in engine.documents())


def test_jobs_command_lists_them(tmp_path: Path, embedder: Embedder, capsys: pytest.CaptureFixture[str]) -> None:
    from rag_core.__main__ import main

    queue = JobQueue(tmp_path)
    job = queue.submit([("a.txt", _text(1))])
    JobWorker(_engine(tmp_path, embedder), queue).run_once()
    assert main(["jobs", "--json", "--data-dir", str(tmp_path)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["job_id"], row["status"]) == (job.job_id, "done")
    assert row["files"][0]["result"]["status"] == "added" and row["files"][0]["name"] == "a.txt"
    assert main(["jobs", "--data-dir", str(tmp_path)]) == 0
    assert "a.txt: added" in capsys.readouterr().out


def test_worker_threads_do_not_block_each_other_on_an_empty_queue(tmp_path: Path, embedder: Embedder) -> None:
    worker = JobWorker(_engine(tmp_path, embedder), JobQueue(tmp_path), poll_s=0.01).start()
    time.sleep(0.2)
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    stopper.join(timeout=10)
    assert not stopper.is_alive()
