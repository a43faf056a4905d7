"""Reading binary files (PDF, Word, PowerPoint, Excel) in worker processes, with a time budget and a
memory cap per file.

Why: pypdf and the Office readers parse untrusted bytes, and Office files are zips. A broken or crafted
file can keep a reader busy for minutes or make it allocate gigabytes (a decompression or zip bomb), and
inside the app's one server process that would freeze or kill every user's session. So each binary file
is read by a worker process: past `timeout` seconds the worker is killed and the file fails with
`ParseTimeout`; past its memory cap it fails with `ParseOutOfMemory`; if the worker dies outright, with
`ParserCrashed`. The server, and the other uploads, carry on. Text and HTML files need no worker:
decoding them is linear in their size (already capped) and cannot hang.

OCR of a scanned PDF runs in the worker too, and takes seconds a page, so a long scan would overrun a
budget meant for a whole file. The budget therefore restarts at every step the worker reports: reading
the text layer gets `timeout` seconds, and each OCR'd page another `timeout` seconds. The worker sends a
progress frame after each page (`{"status": "progress", "done": i, "total": n}`), which `load` hands to
its `progress` callback; a 40-page scan takes as long as its pages need, while a page or a parse that
hangs is still killed `timeout` seconds after the last sign of progress.

How: a worker is `python -m rag_core.parsepool`, a fresh interpreter (never a fork: the parent holds
torch threads and locks), talking over its stdin/stdout in length-prefixed frames of JSON and raw
bytes. Not `multiprocessing`: its 'spawn' re-imports the parent's `__main__` in every worker, which
re-runs any script that lacks an `if __name__ == "__main__":` guard. Workers are reused, so the
start-up (~0.2 s, mostly importing pypdf) is paid once per worker, not once per file; one pool serves
the whole process (every Engine, every app session). A worker that was killed or crashed is replaced
on the next use, and a worker exits by itself when its parent dies (even by SIGKILL), so a hung parse
never outlives the server.

What it leaves out: a real sandbox (seccomp, namespaces). The worker has the server's rights; it
only turns the bytes it is given into text, and the parent reads back only JSON, never pickles.

>>> pool = ParsePool(max_workers=1)
>>> pool.load(b"Remote work needs manager approval.", "remote.txt", timeout=5).pages[0].text
'Remote work needs manager approval.'
>>> pool.close()
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

from rag_core.config import Settings
from rag_core.loaders import (
    DamagedFile,
    LoadError,
    ParseOutOfMemory,
    ParserCrashed,
    ParseTimeout,
    is_pdf,
    load_bytes,
    out_of_memory_message,
)
from rag_core.types import FileKind, LoadedFile, Page

# (pages done, pages to OCR), as the worker reports them.
ParseProgress = Callable[[int, int], None]

# A worker is replaced after this many files, so memory pypdf fragmented on a big file is given back.
MAX_TASKS_PER_WORKER = 50
_PARENT_POLL_S = 0.5
_HEADER = struct.Struct("!Q")
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def default_workers() -> int:
    """Parallel file reads: enough for a few simultaneous uploads, never more than the CPU has."""
    return max(1, min(4, os.cpu_count() or 1))


# ---------------------------------------------------------------------------- framing


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError("the other side closed the pipe")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream: IO[bytes]) -> bytes:
    (n,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    return _read_exact(stream, n)


# ---------------------------------------------------------------------------- the parent side


class _Worker:
    """One worker process and the parent's ends of its pipes."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # The worker must import this very rag_core, wherever the server was started from.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rag_core.parsepool", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=_PACKAGE_ROOT,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout
        self.tasks = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, header: dict[str, Any], data: bytes) -> None:
        _write_frame(self.stdin, json.dumps(header).encode())
        _write_frame(self.stdin, data)
        self.stdin.flush()

    def receive(self, timeout: float) -> bytes | None:
        """The next reply frame, or None when none came within `timeout` s. EOFError if the worker died."""
        box: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=1)

        def read() -> None:
            try:
                box.put(_read_frame(self.stdout))
            except BaseException as e:  # handed to the waiting thread
                box.put(e)

        # A reader thread, not select(): it works on every platform's pipes.
        threading.Thread(target=read, name="policypal-parse-reply", daemon=True).start()
        try:
            item = box.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise EOFError(str(item)) from item
        return item

    def stop(self, kill: bool) -> int | None:
        """End the process (politely, or with SIGKILL) and return its exit code."""
        if not kill:
            with contextlib.suppress(OSError, ValueError):
                _write_frame(self.stdin, b"")  # an empty header frame: stop
                self.stdin.flush()
        with contextlib.suppress(OSError, ValueError):
            self.stdin.close()
        if kill:
            with contextlib.suppress(OSError):
                self.process.kill()
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=5)
        with contextlib.suppress(OSError, ValueError):
            self.stdout.close()
        return code


class ParsePool:
    """Reads files in up to `max_workers` worker processes; thread-safe (the app's sessions share it)."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or default_workers()
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be >= 1; got max_workers={self.max_workers}")
        self._slots = threading.BoundedSemaphore(self.max_workers)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self.started = 0  # worker processes started so far (tests and benchmarks read it)

    def load(
        self,
        data: bytes,
        name: str,
        *,
        timeout: float,
        max_bytes: int | None = None,
        max_pages: int | None = None,
        memory_mb: int = 0,
        ocr_languages: str | None = None,
        progress: ParseProgress | None = None,
    ) -> LoadedFile:
        """`loaders.load_bytes` with a time budget (seconds per step, see the module doc; 0 = in-process,
        no budget) and a memory cap (MB, 0 = none) for binary files. `ocr_languages` turns OCR of scanned
        PDF pages on; `progress` is told (pages done, pages to OCR) as OCR goes. Raises a `LoadError`
        subclass for every failure, the reader's crashes included.
        """
        if timeout <= 0 or not needs_worker(data) or (max_bytes is not None and len(data) > max_bytes):
            # Text, HTML, empty and oversized files are judged without a worker: nothing there can hang.
            return load_bytes(
                data, name, max_bytes=max_bytes, max_pages=max_pages, ocr_languages=ocr_languages, progress=progress
            )
        header = {
            "name": name,
            "max_bytes": max_bytes,
            "max_pages": max_pages,
            "memory_mb": memory_mb,
            "ocr_languages": ocr_languages,
        }
        with self._slots:
            worker = self._checkout()
            try:
                try:
                    worker.send(header, data)
                except (OSError, ValueError):  # it died while idle (e.g. the OOM killer): use a fresh one
                    worker.stop(kill=True)
                    worker = self._start()
                    worker.send(header, data)
                reply = _await_reply(worker, timeout, memory_mb, progress)
            except BaseException:
                if worker.alive():
                    worker.stop(kill=True)  # never hand back a worker in an unknown state
                raise
            self._checkin(worker)
        return _decode_reply(reply)

    def _start(self) -> _Worker:
        with self._lock:
            self.started += 1
        return _Worker()

    def _checkout(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("the parse pool is closed")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.stop(kill=True)
        return self._start()

    def _checkin(self, worker: _Worker) -> None:
        worker.tasks += 1
        if worker.tasks < MAX_TASKS_PER_WORKER and worker.alive():
            with self._lock:
                if not self._closed:
                    self._idle.append(worker)
                    return
        worker.stop(kill=False)

    def worker_pids(self) -> list[int]:
        """Process ids of the idle workers."""
        with self._lock:
            return [w.pid for w in self._idle]

    def close(self) -> None:
        """Stop the idle workers. Busy ones stop when their file is done (the pool takes no new work)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop(kill=False)


def needs_worker(data: bytes) -> bool:
    """True for the formats read in a worker: PDF, and the zip-based Office files (any zip: a zip bomb
    named .docx is the reader's to judge, under the budget).

    >>> needs_worker(b"%PDF-1.7 ..."), needs_worker(b"PK\\x03\\x04..."), needs_worker(b"Leave policy")
    (True, True, False)
    """
    return is_pdf(data) or data[:4] == b"PK\x03\x04"


def _await_reply(worker: _Worker, timeout: float, memory_mb: int, progress: ParseProgress | None) -> bytes:
    """The worker's final reply frame; progress frames before it go to `progress`, each restarting the
    time budget. Kills nothing itself: raises `ParseTimeout` or `ParserCrashed` for the caller to clean up."""
    started = time.monotonic()
    pages_done = -1  # -1: no OCR progress yet
    while True:
        try:
            reply = worker.receive(timeout)
        except EOFError:
            code = worker.stop(kill=True)
            raise ParserCrashed(_crash_message(code, time.monotonic() - started, memory_mb)) from None
        if reply is None:
            worker.stop(kill=True)
            raise ParseTimeout(_timeout_message(timeout, pages_done))
        message = json.loads(reply)
        if message.get("status") != "progress":
            return reply
        pages_done = int(message["done"])
        if progress is not None:
            progress(pages_done, int(message["total"]))


def _timeout_message(timeout: float, pages_done: int) -> str:
    if pages_done >= 0:
        return (
            f"OCR of scanned page {pages_done + 1} took longer than {timeout:g} s, so reading was stopped: "
            "the scan is probably huge or damaged. Re-scan it at 300 dpi, or raise RAG_PARSE_TIMEOUT_S"
        )
    return (
        f"took longer than {timeout:g} s to read, so reading was stopped: the file is probably "
        "malformed or built to overload the reader. Re-save it (e.g. print to PDF) and upload "
        "it again, or raise RAG_PARSE_TIMEOUT_S if it is a very large genuine document"
    )


_ERRORS: dict[str, type[LoadError]] = {cls.kind: cls for cls in LoadError.__subclasses__()}


def _decode_reply(reply: bytes) -> LoadedFile:
    message = json.loads(reply)
    if message["status"] == "ok":
        pages = [
            Page(int(n), str(text), None if label is None else str(label), bool(ocr))
            for n, text, label, ocr in message["pages"]
        ]
        kind = cast("FileKind", str(message["kind"]))  # the worker sends back a LoadedFile's own kind
        return LoadedFile(kind=kind, pages=pages, page_count=int(message["page_count"]))
    raise _ERRORS.get(str(message["kind"]), DamagedFile)(str(message["message"]))


def _crash_message(code: int | None, seconds: float, memory_mb: int) -> str:
    if code is not None and code < 0:
        how = f"was killed by signal {-code}"
        if -code == 9:
            how += " (perhaps the system ran out of memory)"
    else:
        how = f"exited with code {code}"
    return (
        f"could not be read: the file reader {how} after {seconds:.1f} s. The file is probably malformed; "
        "re-save it (e.g. print to PDF) and upload it again"
    )


_SHARED: ParsePool | None = None
_SHARED_LOCK = threading.Lock()


def shared_pool() -> ParsePool:
    """The process-wide pool: one set of workers for every Engine and every app session."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = ParsePool()
        return _SHARED


def parse_file(
    data: bytes,
    name: str,
    settings: Settings,
    pool: ParsePool | None = None,
    progress: ParseProgress | None = None,
) -> LoadedFile:
    """Load one file under the settings' limits (size, pages, a binary file's time and memory budget),
    with OCR of scanned pages as the settings say; `progress` is told (pages done, pages to OCR)."""
    return (pool or shared_pool()).load(
        data,
        name,
        timeout=settings.parse_timeout_s,
        max_bytes=settings.max_file_bytes,
        max_pages=settings.max_pages,
        memory_mb=settings.parse_memory_mb,
        ocr_languages=settings.ocr_languages_if_on,
        progress=progress,
    )


# ---------------------------------------------------------------------------- the worker side


def _read_one(data: bytes, header: dict[str, Any], progress: ParseProgress | None = None) -> dict[str, Any]:
    """One task: the loaded file, or the failure as (kind, message). Never raises."""
    memory_mb = int(header.get("memory_mb") or 0)
    languages = header.get("ocr_languages")
    try:
        loaded = load_bytes(
            data,
            str(header["name"]),
            max_bytes=header["max_bytes"],
            max_pages=header["max_pages"],
            ocr_languages=None if languages is None else str(languages),
            progress=progress,
        )
    except ParseOutOfMemory:
        return {"status": "error", "kind": ParseOutOfMemory.kind, "message": out_of_memory_message(memory_mb or None)}
    except LoadError as e:
        return {"status": "error", "kind": e.kind, "message": str(e)}
    except MemoryError:
        return {"status": "error", "kind": ParseOutOfMemory.kind, "message": out_of_memory_message(memory_mb or None)}
    except RecursionError:
        return {
            "status": "error",
            "kind": DamagedFile.kind,
            "message": "could not be read: damaged file (nested too deeply)",
        }
    except Exception as e:  # a reader bug on odd input is still a file we cannot read
        return {
            "status": "error",
            "kind": DamagedFile.kind,
            "message": f"could not be read: damaged file ({type(e).__name__}: {e})"[:300],
        }
    pages = [[p.number, p.text, p.label, p.ocr] for p in loaded.pages]
    return {"status": "ok", "kind": loaded.kind, "page_count": loaded.page_count, "pages": pages}


def _serve(parent_pid: int) -> None:
    """Worker loop over stdin/stdout: header frame + data frame in, one JSON frame out; empty header ends it."""
    tasks = sys.stdin.buffer
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print() must not corrupt the replies
    _exit_with_parent(parent_pid)
    while True:
        try:
            header_bytes = _read_frame(tasks)
            if not header_bytes:
                return
            data = _read_frame(tasks)
        except (EOFError, OSError):
            return  # the parent is gone
        header = json.loads(header_bytes)
        _cap_memory(int(header.get("memory_mb") or 0))

        def progress(done: int, total: int) -> None:
            _write_frame(replies, json.dumps({"status": "progress", "done": done, "total": total}).encode())
            replies.flush()

        try:
            reply = _read_one(data, header, progress)
            del data
            try:
                payload = json.dumps(reply).encode()
            except MemoryError:
                payload = json.dumps(
                    {"status": "error", "kind": ParseOutOfMemory.kind, "message": out_of_memory_message()}
                ).encode()
        finally:
            _cap_memory(0)
        try:
            _write_frame(replies, payload)
            replies.flush()
        except OSError:
            return


def _exit_with_parent(parent_pid: int) -> None:
    """Exit when the parent process dies: a worker busy on a hung file would otherwise run on forever."""

    def watch() -> None:
        while True:
            time.sleep(_PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _cap_memory(memory_mb: int) -> None:
    """Limit this worker's address space (Linux and macOS; elsewhere only the time budget applies)."""
    try:
        import resource
    except ImportError:  # Windows
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = hard if memory_mb <= 0 else memory_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


if __name__ == "__main__":
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid())


__all__ = ["ParsePool", "ParseProgress", "needs_worker", "parse_file", "shared_pool"]
