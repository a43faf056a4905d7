"""rag_core.parsepool: PDFs and Office files read in worker processes under a time budget and a memory cap.

Each guard is shown to work on a file built to defeat it: a content stream that keeps the reader busy
for minutes, a 70 KB decompression bomb, a page of 300,000 characters, a worker killed mid-read.
After each one the pool still reads the next file. A scan is read by OCR in a worker, page by page
with progress, each page restarting the budget; a Word file's section labels survive the round trip.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.ingest import SAMPLE_PDF
from rag_core.loaders import (
    OcrUnavailable,
    ParseOutOfMemory,
    ParserCrashed,
    ParseTimeout,
    TooManyPages,
    TooMuchText,
    load_bytes,
)
from rag_core.parsepool import ParsePool, _await_reply, parse_file

from .hostile import raw_pdf, surrogate_pdf
from .loaders.test_docx import docx_bytes, handbook
from .scans import SCANNED_POLICY, needs_tesseract, scan_pdf

# pypdf needs minutes for this 100 KB file: half a million text operators in one compressed stream.
SLOW_CONTENT = b"BT /F1 12 Tf " + b"1 0 0 1 72 700 Tm (ab) Tj\n" * 500_000 + b"ET"
# 70 KB that inflates to a 70 MB string: reading it takes ~1 GB and ~25 s.
BOMB_CONTENT = b"BT /F1 12 Tf 72 700 Td (" + b"A" * 70_000_000 + b") Tj ET"


@pytest.fixture
def pool() -> ParsePool:
    p = ParsePool(max_workers=2)
    yield p  # type: ignore[misc]
    p.close()


def _worker_pids() -> list[int]:
    """This process's children that are PDF readers (Linux /proc)."""
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").glob("*"):
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    readers = []
    for pid in pids:
        try:
            if b"rag_core.parsepool" in Path(f"/proc/{pid}/cmdline").read_bytes():
                readers.append(pid)
        except OSError:
            continue
    return readers


class TestParsePool:
    def test_same_pages_as_in_process_and_one_worker_reused(self, pool: ParsePool) -> None:
        data = SAMPLE_PDF.read_bytes()
        expected = load_bytes(data, "sample.pdf")
        t0 = time.perf_counter()
        first = pool.load(data, "sample.pdf", timeout=30)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(10):
            assert pool.load(data, "sample.pdf", timeout=30) == expected
        warm = (time.perf_counter() - t0) / 10
        t0 = time.perf_counter()
        for _ in range(10):
            load_bytes(data, "sample.pdf")
        direct = (time.perf_counter() - t0) / 10
        assert first == expected
        assert pool.started == 1  # reused, not one process per file
        print(
            f"\nparse worker: first file {cold * 1000:.0f} ms (start-up), then {warm * 1000:.1f} ms/file "
            f"vs {direct * 1000:.1f} ms in-process"
        )

    def test_text_files_need_no_worker(self, pool: ParsePool) -> None:
        loaded = pool.load("Politique de congés".encode(), "conges.txt", timeout=30)
        assert loaded.pages[0].text == "Politique de congés" and pool.started == 0

    def test_hung_reader_is_stopped_in_time_and_the_pool_recovers(self, pool: ParsePool) -> None:
        slow = raw_pdf(SLOW_CONTENT)
        t0 = time.monotonic()
        with pytest.raises(ParseTimeout, match=r"longer than 1\.5 s.*RAG_PARSE_TIMEOUT_S"):
            pool.load(slow, "slow.pdf", timeout=1.5)
        assert time.monotonic() - t0 < 1.5 + 5
        assert pool.load(SAMPLE_PDF.read_bytes(), "sample.pdf", timeout=30).page_count == 3
        assert pool.started == 2  # the hung worker was killed and replaced

    @pytest.mark.skipif(sys.platform == "win32", reason="no address-space limit on Windows")
    def test_decompression_bomb_hits_the_memory_cap(self, pool: ParsePool) -> None:
        bomb = raw_pdf(BOMB_CONTENT)
        assert len(bomb) < 100_000
        with pytest.raises(ParseOutOfMemory, match=r"memory cap of 256 MB.*RAG_PARSE_MEMORY_MB"):
            pool.load(bomb, "bomb.pdf", timeout=60, memory_mb=256)
        assert pool.load(SAMPLE_PDF.read_bytes(), "sample.pdf", timeout=30, memory_mb=256).page_count == 3

    def test_a_page_with_more_text_than_any_real_page_is_refused(self, pool: ParsePool) -> None:
        page = raw_pdf(b"BT /F1 12 Tf 72 700 Td (" + b"A" * 300_000 + b") Tj ET")
        with pytest.raises(TooMuchText, match="page 1 yields 300,000 characters"):
            pool.load(page, "wall.pdf", timeout=30)
        with pytest.raises(TooMuchText):
            load_bytes(page, "wall.pdf")  # the guard is in the loader, so it holds in-process too

    @pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker through Linux /proc")
    def test_a_worker_killed_mid_read_is_a_crash_not_a_hang(self, pool: ParsePool) -> None:
        errors: list[BaseException] = []

        def read() -> None:
            try:
                pool.load(raw_pdf(SLOW_CONTENT), "slow.pdf", timeout=120)
            except BaseException as e:
                errors.append(e)

        before = set(_worker_pids())
        t = threading.Thread(target=read)
        t.start()
        deadline = time.monotonic() + 30
        while not (new := set(_worker_pids()) - before) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        for pid in new:
            os.kill(pid, 9)
        t.join(30)
        assert not t.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], ParserCrashed), errors
        assert "killed by signal 9" in str(errors[0])
        assert pool.load(SAMPLE_PDF.read_bytes(), "sample.pdf", timeout=30).page_count == 3

    def test_threads_share_the_pool(self, pool: ParsePool, pdf_maker: Callable[..., Path]) -> None:
        files = [pdf_maker([f"Policy number {i}. Remote work is allowed {i} days a week."]) for i in range(6)]
        results: dict[int, str] = {}

        def read(i: int) -> None:
            results[i] = pool.load(files[i].read_bytes(), files[i].name, timeout=60).pages[0].text

        threads = [threading.Thread(target=read, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [results[i] for i in range(6)] == [
            f"Policy number {i}. Remote work is allowed {i} days a week." for i in range(6)
        ]
        assert pool.started <= 2


class _ScriptedWorker:
    """Stands in for a worker: replies with `frames`, each after `delay` s; None = stays silent."""

    def __init__(self, frames: list[dict[str, object] | None], delay: float) -> None:
        self.frames = frames
        self.delay = delay
        self.killed = False

    def receive(self, timeout: float) -> bytes | None:
        frame = self.frames.pop(0)
        time.sleep(min(self.delay, timeout) if frame is not None else 0)
        return None if frame is None else json.dumps(frame).encode()

    def stop(self, kill: bool) -> int | None:
        self.killed = kill
        return None


class TestOcrAndOfficeInWorkers:
    @needs_tesseract
    def test_scan_is_read_by_ocr_in_a_worker_with_progress(self, pool: ParsePool) -> None:
        seen: list[tuple[int, int]] = []
        loaded = pool.load(
            scan_pdf(SCANNED_POLICY),
            "scan.pdf",
            timeout=60,
            ocr_languages="eng",
            progress=lambda d, t: seen.append((d, t)),
        )
        assert seen == [(0, 2), (1, 2), (2, 2)] and pool.started == 1
        assert loaded.ocr_pages == 2 and "sixteen weeks of paid parental leave" in loaded.pages[0].text

    def test_without_tesseract_on_the_path_the_worker_says_what_to_install(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PATH", str(tmp_path))  # the worker starts with this PATH: no tesseract on it
        pool = ParsePool(max_workers=1)
        try:
            with pytest.raises(OcrUnavailable, match=r"install Tesseract: apt-get install tesseract-ocr"):
                pool.load(scan_pdf(SCANNED_POLICY[:1]), "scan.pdf", timeout=60, ocr_languages="eng")
        finally:
            pool.close()

    def test_budget_restarts_at_each_ocr_page(self) -> None:
        progress = [{"status": "progress", "done": i, "total": 4} for i in range(5)]
        worker = _ScriptedWorker([*progress, {"status": "ok"}], delay=0.2)
        seen: list[tuple[int, int]] = []
        t0 = time.monotonic()
        reply = _await_reply(worker, 0.5, 0, lambda d, t: seen.append((d, t)))  # type: ignore[arg-type]
        assert time.monotonic() - t0 > 0.5 * 2  # the whole file took longer than one budget
        assert json.loads(reply) == {"status": "ok"} and seen[-1] == (4, 4) and not worker.killed

    def test_a_page_that_hangs_is_stopped_and_named(self) -> None:
        worker = _ScriptedWorker(
            [{"status": "progress", "done": 0, "total": 3}, {"status": "progress", "done": 1, "total": 3}, None], 0
        )
        with pytest.raises(ParseTimeout, match=r"OCR of scanned page 2 took longer than 0\.5 s.*RAG_PARSE_TIMEOUT_S"):
            _await_reply(worker, 0.5, 0, None)  # type: ignore[arg-type]
        assert worker.killed

    def test_word_file_is_read_in_a_worker_and_keeps_its_section_labels(self, pool: ParsePool) -> None:
        data = docx_bytes(handbook)
        loaded = pool.load(data, "handbook.docx", timeout=30)
        assert pool.started == 1 and loaded == load_bytes(data, "handbook.docx")
        assert [p.label for p in loaded.pages][:2] == ["section 1: Employee Handbook", "section 2: Annual leave"]


class TestEngineLimits:
    """The engine applies every limit itself, so the CLI and the app enforce the same ones."""

    def test_time_budget_and_page_limit_reach_the_user(self, tmp_path: Path, embedder: Embedder) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb", parse_timeout_s=1.5, max_pages=5), embedder=embedder)
        slow, long = engine.ingest_uploads(
            [("slow.pdf", raw_pdf(SLOW_CONTENT)), ("long.pdf", raw_pdf(b"BT ET", pages=6))]
        )
        assert (slow.status, slow.error_kind) == ("failed", "timeout") and "RAG_PARSE_TIMEOUT_S" in (slow.error or "")
        assert (long.status, long.error_kind) == ("failed", "too_many_pages") and "limit is 5" in (long.error or "")
        assert engine.documents() == []

    def test_lone_surrogates_from_a_crafted_font_map_are_repaired(self, tmp_path: Path, embedder: Embedder) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        result = engine.ingest_bytes("crafted.pdf", surrogate_pdf())
        assert result.status == "added", result
        assert "\ufffd" in engine.store.all_chunks()[0].text
        assert engine.search("parental leave", k=1)[0].document == "crafted.pdf"

    def test_text_the_model_cannot_read_fails_as_no_text(self, tmp_path: Path, embedder: Embedder) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        result = engine.ingest_bytes("garbled.txt", "\ufffd\ufffd \ufffd".encode())  # what a broken font map yields
        assert (result.status, result.error_kind) == ("failed", "no_text") and "OCR" in (result.error or "")

    def test_in_process_reading_when_the_budget_is_off(self, tmp_path: Path, embedder: Embedder) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb", parse_timeout_s=0), embedder=embedder)
        pool = ParsePool(max_workers=1)
        assert parse_file(SAMPLE_PDF.read_bytes(), "s.pdf", engine.settings, pool).page_count == 3
        assert pool.started == 0

    def test_settings_validate_and_read_the_environment(self) -> None:
        assert Settings.from_env({"RAG_PARSE_TIMEOUT_S": "7.5", "RAG_PARSE_MEMORY_MB": "0"}).parse_timeout_s == 7.5
        with pytest.raises(ValueError, match="parse_timeout_s=-1"):
            Settings(parse_timeout_s=-1)
        with pytest.raises(ValueError, match="parse_memory_mb=100"):
            Settings(parse_memory_mb=100)
        with pytest.raises(TooManyPages, match="RAG_MAX_PAGES"):
            load_bytes(raw_pdf(b"BT ET", pages=3), "x.pdf", max_pages=2)
