"""Crash safety: `python -m rag_core ingest` killed with SIGKILL during parse, embedding and save.

After every kill the knowledge base must open; every document listed before must be intact (the same
rows, vectors and original file) and searchable; no half document may be listed (each listed document
has all its chunks, vectors, pages and its original); and the worker that was reading a PDF must not
outlive the killed process. At the end the same ingest, run again, completes.

The stages are found by watching the progress the CLI really prints (its progress bar needs a
terminal, so stderr is a pseudo-terminal), not by test-only hooks. Two points inside the save are
reached deterministically by holding the locks a concurrent writer would hold: the writer file lock
(the ingest then waits inside the save, before writing anything) and SQLite's write lock (the ingest
has written its original and the next index generation, and waits to commit the rows: the most
dangerous moment). A third save kill lands wherever the save is when the 'saving' line appears.

Uses the corpus's 215-page and 117-page PDFs when ../shared/corpus is present, else generated ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.store import DB_NAME, LOCK_NAME, LocalStore
from rag_core.types import DocumentInfo

from .conftest import CORPUS, make_pdf

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals and pseudo-terminals"),
]

ROOT = Path(__file__).resolve().parent.parent
STAGE = re.compile(rb"(parsing|embedding|saving) (\d+)/(\d+)")
Event = tuple[str, int, int]


# ---------------------------------------------------------------------------- the watched subprocess


class Ingest:
    """`python -m rag_core ingest FILES --json` in a subprocess whose progress bar we read as it draws."""

    def __init__(self, data_dir: Path, files: list[Path]) -> None:
        import fcntl
        import pty
        import struct
        import termios

        master, slave = pty.openpty()
        # tqdm draws nothing on a terminal 0 columns wide, which is what a new pty reports.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "200"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag_core", "ingest", *map(str, files), "--json", "--data-dir", str(data_dir)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
        )
        os.close(slave)
        self._master = master
        self.events: list[Event] = []
        self.tail = b""
        self._done = False
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: every writer of the terminal has gone
                data = b""
            with self._cond:
                if not data:
                    self._done = True
                    self._cond.notify_all()
                    return
                self.tail = (self.tail + data)[-4000:]
                for m in STAGE.finditer(data):
                    event = (m.group(1).decode(), int(m.group(2)), int(m.group(3)))
                    if not self.events or self.events[-1] != event:
                        self.events.append(event)
                self._cond.notify_all()

    def wait_for(self, wanted: Callable[[Event], bool], timeout: float = 300) -> Event:
        """The first progress event that satisfies `wanted` (waiting for it), or fail with the output tail."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if wanted(event):
                        return event
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    raise AssertionError(f"stage not reached; events {self.events[-5:]}; output: {self.tail[-800:]!r}")
                self._cond.wait(min(left, 0.5))

    @property
    def last(self) -> Event | None:
        with self._cond:
            return self.events[-1] if self.events else None

    def children(self) -> list[int]:
        pids: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (task / "children").read_text().split()]
        return pids

    def kill(self) -> list[int]:
        """SIGKILL the ingest (not its workers: they must go by themselves); returns the orphaned pids."""
        orphans = self.children()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return orphans

    def finish(self, timeout: float = 600) -> tuple[int, list[dict[str, object]]]:
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, [json.loads(line) for line in out.decode().splitlines() if line.strip()]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            os.close(self._master)


@contextlib.contextmanager
def ingest(data_dir: Path, files: list[Path]) -> Iterator[Ingest]:
    run = Ingest(data_dir, files)
    try:
        yield run
    finally:
        run.close()


def gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def assert_exit(pids: list[int], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not all(gone(p) for p in pids):
        time.sleep(0.1)
    assert all(gone(p) for p in pids), f"worker processes {pids} outlived the killed ingest"


# ---------------------------------------------------------------------------- the knowledge base, checked


@dataclass(frozen=True)
class Snapshot:
    docs: dict[str, DocumentInfo]
    chunks: dict[str, list[tuple[int, int, str]]]  # document id -> (chunk id, page, text)
    vectors: dict[int, bytes]  # chunk id -> the vector's bytes


def snapshot(data_dir: Path) -> Snapshot:
    kb = LocalStore(data_dir)
    chunks: dict[str, list[tuple[int, int, str]]] = {}
    for c in kb.all_chunks():
        chunks.setdefault(c.document_id, []).append((c.chunk_id, c.page, c.text))
    ids, vecs = kb.vectors()
    return Snapshot(
        {d.document_id: d for d in kb.documents()},
        chunks,
        {int(i): v.tobytes() for i, v in zip(ids, vecs, strict=True)},
    )


def assert_whole(data_dir: Path) -> Snapshot:
    """No half document: every listed document has all its chunks, vectors, pages and original; no stray vector."""
    kb = LocalStore(data_dir)  # it opens
    now = snapshot(data_dir)
    assert set(now.chunks) <= set(now.docs), "chunk rows of a document that is not listed"
    for doc in now.docs.values():
        assert len(now.chunks.get(doc.document_id, [])) == doc.chunks, f"{doc.name}: chunk rows missing"
        original = kb.original(doc)
        assert original is not None, f"{doc.name}: original missing"
        assert hashlib.sha256(original).hexdigest() == doc.sha256, f"{doc.name}: original differs"
    row_ids = {cid for rows in now.chunks.values() for cid, _, _ in rows}
    assert set(now.vectors) == row_ids, "vectors and chunk rows differ"
    assert kb.size == len(row_ids)
    with contextlib.closing(sqlite3.connect(data_dir / DB_NAME)) as db:
        paged = {r[0] for r in db.execute("SELECT DISTINCT document_id FROM pages")}
    assert paged == set(now.docs), "page rows and documents differ"
    return now


def assert_intact(before: Snapshot, data_dir: Path, embedder: Embedder) -> None:
    """Every document listed before is there, unchanged, and found by a search for its own words."""
    now = assert_whole(data_dir)
    engine = Engine(Settings(data_dir=data_dir), embedder=embedder)
    for doc_id, doc in before.docs.items():
        assert now.docs.get(doc_id) == doc, f"{doc.name} changed or vanished"
        assert now.chunks[doc_id] == before.chunks[doc_id], f"{doc.name}: chunk rows changed"
        for cid, _, _ in before.chunks[doc_id]:
            assert now.vectors[cid] == before.vectors[cid], f"{doc.name}: vector {cid} changed"
        probe = max(before.chunks[doc_id], key=lambda c: len(c[2]))[2]
        hits = engine.search(probe, k=3)
        assert hits and hits[0].document_id == doc_id, f"{doc.name}: not found by its own text"


# ---------------------------------------------------------------------------- the files


@dataclass(frozen=True)
class Files:
    seed: list[Path]  # ingested before any kill
    parse: Path  # long to parse
    embed: Path  # many chunks
    save: Path  # mid-sized: parsed and embedded before each save kill


def _generated(tmp: Path, name: str, pages: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    words = [
        "leave",
        "policy",
        "employee",
        "manager",
        "approval",
        "days",
        "annual",
        "remote",
        "office",
        "travel",
        "expense",
        "receipt",
        "benefit",
        "holiday",
        "overtime",
        "salary",
        "review",
        "training",
        "safety",
        "conduct",
        "equipment",
        "laptop",
        "security",
        "training",
        "notice",
    ]
    texts = [
        f"Section {seed}.{p}. " + " ".join(rng.choice(words, size=60)) + f". Reference code {seed}-{p}."
        for p in range(pages)
    ]
    return make_pdf(tmp / name, texts)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    if (CORPUS / "MANIFEST.md").exists():
        return Files(
            seed=[
                CORPUS / "hr" / "contoso-electronics-employee-handbook.pdf",
                CORPUS / "hr" / "ibm-lab-company-policies.txt",
            ],
            parse=CORPUS / "hr" / "bcgeu-19th-main-public-service-agreement-2022-2025.pdf",
            embed=CORPUS / "robustness" / "many-pages-117_geotopo-komprimiert.pdf",
            save=CORPUS / "hr" / "bc-public-service-social-media-guidelines-personal-use-2024.pdf",
        )
    tmp = tmp_path_factory.mktemp("crash-files")
    return Files(
        seed=[_generated(tmp, "seed-a.pdf", 4, 1), _generated(tmp, "seed-b.pdf", 3, 2)],
        parse=_generated(tmp, "long.pdf", 400, 3),
        embed=_generated(tmp, "many-chunks.pdf", 150, 4),
        save=_generated(tmp, "mid.pdf", 30, 5),
    )


# ---------------------------------------------------------------------------- the test


def test_sigkill_during_parse_embedding_and_save_loses_nothing(
    tmp_path: Path, files: Files, embedder: Embedder
) -> None:
    kb_dir = tmp_path / "kb"
    seeded = Engine(Settings(data_dir=kb_dir), embedder=embedder).ingest_paths(files.seed)
    assert [r.status for r in seeded] == ["added"] * len(files.seed)
    before = assert_whole(kb_dir)
    outcomes: Counter[str] = Counter()

    def survived(stage: str) -> None:
        assert_intact(before, kb_dir, embedder)
        outcomes[stage] += 1

    # 1-2. During parse: at once, and well into a long parse, when the worker reading it must exit too.
    for into_parse in (False, True):
        with ingest(kb_dir, [files.parse]) as run:
            run.wait_for(lambda e: e[0] == "parsing")
            if into_parse:
                deadline = time.monotonic() + 30
                while not run.children() and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(2.0 if files.parse.stat().st_size > 1_000_000 else 0.2)
            assert run.last == ("parsing", 0, 1), run.last
            orphans = run.kill()
        if into_parse:
            assert orphans, "no worker was reading the PDF"
        assert_exit(orphans)
        survived("parse")

    # 3. During embedding, part-way through the batches.
    with ingest(kb_dir, [files.embed]) as run:
        _, _, total = run.wait_for(lambda e: e[0] == "embedding" and 0 < e[1] < e[2])
        assert_exit(run.kill())
        assert total > 1
    survived("embedding")

    # 4. During the save, waiting for the writer lock another writer holds.
    generation = LocalStore(kb_dir).generation()
    with FileLock(str(kb_dir / LOCK_NAME)), ingest(kb_dir, [files.save]) as run:
        run.wait_for(lambda e: e == ("saving", 0, 1))
        time.sleep(0.3)
        assert run.proc.poll() is None and run.last == ("saving", 0, 1)
        assert_exit(run.kill())
    assert LocalStore(kb_dir).generation() == generation
    survived("save: waiting for the writer lock")

    # 5. During the save, after the next index generation is on disk but before the rows are committed.
    sha = hashlib.sha256(files.save.read_bytes()).hexdigest()
    next_index = kb_dir / f"index-{generation + 1}.faiss"
    with ingest(kb_dir, [files.save]) as run:
        run.wait_for(lambda e: e[0] == "parsing")  # past start-up (which writes the schema row)
        db = sqlite3.connect(kb_dir / DB_NAME, isolation_level=None, timeout=60)
        try:
            db.execute("BEGIN IMMEDIATE")  # what a concurrent writer's transaction holds
            deadline = time.monotonic() + 300
            while not next_index.exists() and run.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            assert next_index.exists(), run.tail[-800:]
            assert_exit(run.kill())
        finally:
            db.execute("ROLLBACK")
            db.close()
    assert LocalStore(kb_dir).generation() == generation  # the new generation was never committed
    assert list((kb_dir / "originals").glob(f"{sha}.*")), "the kill came before the save began"
    survived("save: index written, rows not committed")

    # 6. During the save, wherever it is when the 'saving' line appears.
    with ingest(kb_dir, [files.save]) as run:
        run.wait_for(lambda e: e == ("saving", 0, 1))
        assert_exit(run.kill())
    landed = any(d.sha256 == sha for d in LocalStore(kb_dir).documents())
    survived(f"save: free-running ({'committed' if landed else 'not committed'} when killed)")

    # Run the interrupted ingests again: they complete, and everything listed is whole.
    with ingest(kb_dir, [files.embed, files.save]) as run:
        code, results = run.finish()
    assert code == 0, results
    assert [r["status"] for r in results] == ["added", "duplicate" if landed else "added"]
    after = assert_whole(kb_dir)
    assert_intact(before, kb_dir, embedder)
    assert len(after.docs) == len(before.docs) + 2
    kills = sum(outcomes.values())
    print(f"\ncrash safety: {kills} SIGKILLs survived, nothing lost: {dict(outcomes)}")
    assert kills == 6
