"""The knowledge base: SQLite rows + a FAISS vector index + the original files, in one data dir.

Layout of a data dir:
    kb.sqlite3              documents, pages, chunks, meta (embedder, dimension, index generation)
    index-<generation>.faiss  IndexIDMap2(IndexFlatIP): chunk id -> unit vector
    originals/<sha256>.<ext>  the uploaded bytes, named by content hash (never by the user's file name)
    kb.lock                 the cross-process writer lock

Why generations: vectors and rows must change together or not at all. A writer writes the new index
to a fresh file `index-<g+1>.faiss` (temp file, fsync, rename), then commits the rows and `generation =
g+1` in one SQLite transaction. A crash before the commit leaves generation g, whose file is untouched;
a crash after it leaves g+1 complete. Readers load the index named by the generation they read, so
they see either the old state or the new one, never half a document. The previous generation's file
is kept one round so a reader that just read `g` can still open it.

What it leaves out: approximate indexes (exact inner-product search is fast to ~100k chunks), BM25.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt
from filelock import FileLock

from rag_core.chunking import Chunk
from rag_core.loaders import Page

SCHEMA_VERSION = 1
DB_NAME = "kb.sqlite3"
LOCK_NAME = "kb.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    pages INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    added_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'ready',
    error TEXT
);
CREATE TABLE IF NOT EXISTS pages (
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (document_id, page)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    norm REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id);
"""

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class StoreError(Exception):
    """Base class of knowledge-base errors."""


class EmbedderMismatch(StoreError):
    """The KB was built with another embedder; mixing vector spaces would give garbage rankings."""


class DocumentNotFound(StoreError):
    pass


class AmbiguousDocument(StoreError):
    pass


class DuplicateDocument(StoreError):
    def __init__(self, existing: DocumentInfo):
        super().__init__(f"already in the knowledge base as {existing.name!r} ({existing.document_id})")
        self.existing = existing


@dataclass(frozen=True)
class DocumentInfo:
    document_id: str
    name: str
    sha256: str
    kind: str
    bytes: int
    pages: int
    chunks: int
    added_at: str

    def to_json(self) -> dict[str, object]:
        return {
            "document_id": self.document_id,
            "name": self.name,
            "sha256": self.sha256,
            "pages": self.pages,
            "chunks": self.chunks,
            "added_at": self.added_at,
        }


@dataclass(frozen=True)
class ChunkRow:
    chunk_id: int
    document_id: str
    document: str
    page: int
    start: int
    end: int
    text: str
    norm: float


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document_id_for(sha256: str) -> str:
    """Content-derived id: the first 16 hex digits of the SHA-256 (64 bits; collisions are not a concern)."""
    return sha256[:16]


class KnowledgeBase:
    """One data dir. Safe to share between threads; many processes may read, one writes at a time."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise StoreError(f"data dir {self.data_dir} is a file, not a directory")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "originals").mkdir(exist_ok=True)
        self.db_path = self.data_dir / DB_NAME
        self._thread_lock = threading.RLock()
        self._file_lock = FileLock(str(self.data_dir / LOCK_NAME), thread_local=False)
        self._index: faiss.Index | None = None
        self._index_generation = -1
        with self._connect() as db:
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            version = int(self._meta(db, "schema_version") or SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.db_path} was written by a newer PolicyPal (schema {version}); upgrade PolicyPal")

    # ---------------------------------------------------------------- connections and meta

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection; WAL gives readers a snapshot while a writer commits."""
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str) -> str | None:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta(self, key: str) -> str | None:
        with self._connect() as db:
            return self._meta(db, key)

    @property
    def embedder_name(self) -> str | None:
        return self.meta("embedder")

    @property
    def dimension(self) -> int | None:
        value = self.meta("dimension")
        return None if value is None else int(value)

    def generation(self) -> int:
        value = self.meta("generation")
        return 0 if value is None else int(value)

    def check_embedder(self, name: str, dimension: int | None = None) -> None:
        """Raise `EmbedderMismatch` unless this KB is empty of vectors or was built with `name`."""
        recorded, recorded_dim = self.embedder_name, self.dimension
        if recorded is None:
            return
        if recorded != name or (dimension is not None and recorded_dim != dimension):
            asked = name if dimension is None else f"{name} ({dimension}-d)"
            raise EmbedderMismatch(
                f"this knowledge base ({self.data_dir}) was built with {recorded} ({recorded_dim}-d), "
                f"but the embedder asked for is {asked}. Vectors of two models cannot be "
                f"mixed: use the recorded embedder (RAG_EMBEDDER={recorded}), or re-index into a new "
                "data dir (--data-dir NEW_DIR, then ingest the documents again)"
            )

    # ---------------------------------------------------------------- locking

    @contextlib.contextmanager
    def write_lock(self, timeout: float = 600) -> Iterator[None]:
        """One writer at a time: a thread lock inside the process, a file lock across processes."""
        with self._thread_lock, self._file_lock.acquire(timeout=timeout):
            yield

    # ---------------------------------------------------------------- the FAISS index

    def _index_path(self, generation: int) -> Path:
        return self.data_dir / f"index-{generation}.faiss"

    def _load_index(self) -> faiss.Index | None:
        """The index of the current generation, reloaded when another writer has moved it on."""
        with self._thread_lock:
            for _ in range(20):
                generation = self.generation()
                if generation == self._index_generation:
                    return self._index
                if generation == 0:
                    self._index, self._index_generation = None, 0
                    return None
                path = self._index_path(generation)
                try:
                    index = faiss.read_index(str(path))
                except RuntimeError:
                    if path.exists():
                        raise
                    time.sleep(0.05)  # a writer moved on and removed it; read the generation again
                    continue
                self._index, self._index_generation = index, generation
                return index
            raise StoreError(f"index file for generation {self.generation()} is missing in {self.data_dir}")

    def _new_index(self, dimension: int) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def _write_index(self, index: faiss.Index, generation: int) -> None:
        final = self._index_path(generation)
        tmp = final.with_suffix(".faiss.tmp")
        faiss.write_index(index, str(tmp))
        _fsync_file(tmp)
        os.replace(tmp, final)
        _fsync_dir(self.data_dir)

    def _cleanup_index_files(self, current: int) -> None:
        for path in self.data_dir.glob("index-*.faiss*"):
            stem = path.name.split(".")[0].removeprefix("index-")
            if not stem.isdigit():
                continue
            g = int(stem)
            if path.name.endswith(".tmp") or g > current or g < current - 1:
                path.unlink(missing_ok=True)

    @property
    def size(self) -> int:
        """Number of vectors (= chunks) in the index."""
        index = self._load_index()
        return 0 if index is None else int(index.ntotal)

    # ---------------------------------------------------------------- reading

    def documents(self) -> list[DocumentInfo]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, name, sha256, kind, bytes, pages, chunks, added_at FROM documents "
                "WHERE status = 'ready' ORDER BY added_at, name"
            ).fetchall()
        return [DocumentInfo(*row) for row in rows]

    def find_by_sha(self, sha256: str) -> DocumentInfo | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT id, name, sha256, kind, bytes, pages, chunks, added_at FROM documents WHERE sha256 = ?",
                (sha256,),
            ).fetchone()
        return None if row is None else DocumentInfo(*row)

    def resolve(self, ref: str) -> DocumentInfo:
        """A document by id, id prefix (>= 6 digits), SHA-256, or file name."""
        docs = self.documents()
        exact = [d for d in docs if ref in (d.document_id, d.sha256)]
        if exact:
            return exact[0]
        by_name = [d for d in docs if d.name == ref]
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            ids = ", ".join(d.document_id for d in by_name)
            raise AmbiguousDocument(f"{len(by_name)} documents are named {ref!r}; give one of the ids: {ids}")
        prefixed = [d for d in docs if len(ref) >= 6 and d.document_id.startswith(ref.lower())]
        if len(prefixed) == 1:
            return prefixed[0]
        raise DocumentNotFound(f"no document with id or name {ref!r}; list them with `python -m rag_core docs`")

    def chunks_by_ids(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._connect() as db:
            rows = db.execute(
                "SELECT c.id, c.document_id, d.name, c.page, c.start, c.end, c.text, c.norm "
                f"FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({marks})",
                [int(i) for i in ids],
            ).fetchall()
        return {int(r[0]): ChunkRow(*r) for r in rows}

    def all_chunks(self) -> list[ChunkRow]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT c.id, c.document_id, d.name, c.page, c.start, c.end, c.text, c.norm "
                "FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY c.id"
            ).fetchall()
        return [ChunkRow(*r) for r in rows]

    def chunk_texts(self) -> tuple[int, list[int], list[str]]:
        """(generation, chunk ids, texts) read in one transaction: a consistent snapshot to index."""
        with self._connect() as db:
            db.execute("BEGIN")
            generation = int(self._meta(db, "generation") or 0)
            rows = db.execute("SELECT id, text FROM chunks ORDER BY id").fetchall()
            db.execute("COMMIT")
        return generation, [int(r[0]) for r in rows], [str(r[1]) for r in rows]

    def page_text(self, document_id: str, page: int) -> str | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT text FROM pages WHERE document_id = ? AND page = ?", (document_id, page)
            ).fetchone()
        return None if row is None else str(row[0])

    def vectors(self, ids: Sequence[int] | None = None) -> tuple[IntArray, FloatArray]:
        """(chunk ids, unit vectors) of the given chunks, or of all of them in id order."""
        index = self._load_index()
        if index is None or index.ntotal == 0:
            dim = self.dimension or 0
            return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
        all_ids = faiss.vector_to_array(index.id_map).astype(np.int64)  # type: ignore[attr-defined]
        if ids is None:
            order = np.argsort(all_ids)
            ids_arr = all_ids[order]
        else:
            ids_arr = np.asarray(ids, dtype=np.int64)
        vecs = np.vstack([index.reconstruct(int(i)) for i in ids_arr]) if len(ids_arr) else None
        if vecs is None:
            return ids_arr, np.zeros((0, index.d), dtype=np.float32)
        return ids_arr, vecs.astype(np.float32)

    def search(self, query: FloatArray, k: int) -> tuple[FloatArray, IntArray]:
        """Inner-product top-k for unit query vectors of shape (n, dim): (scores, chunk ids), -1 = none."""
        index = self._load_index()
        q = np.ascontiguousarray(np.atleast_2d(query), dtype=np.float32)
        if index is None or index.ntotal == 0:
            return np.zeros((q.shape[0], 0), np.float32), np.zeros((q.shape[0], 0), np.int64)
        if q.shape[1] != index.d:
            raise EmbedderMismatch(f"query vectors are {q.shape[1]}-d but the index holds {index.d}-d vectors")
        scores, ids = index.search(q, min(k, int(index.ntotal)))
        return scores, ids

    # ---------------------------------------------------------------- writing

    def add_document(
        self,
        *,
        name: str,
        data: bytes,
        kind: str,
        pages: Sequence[Page],
        page_count: int,
        chunks: Sequence[Chunk],
        vectors: FloatArray,
        norms: FloatArray,
        embedder_name: str,
    ) -> DocumentInfo:
        """Store one document atomically. Raises `DuplicateDocument` if the same bytes are already in."""
        if len(chunks) != len(vectors) or len(chunks) != len(norms):
            raise ValueError(
                f"chunks, vectors and norms must have the same length; got {len(chunks)}, {len(vectors)}, {len(norms)}"
            )
        if not chunks:
            raise ValueError("a document needs at least one chunk")
        dimension = int(vectors.shape[1])
        sha = sha256_hex(data)
        doc_id = document_id_for(sha)
        with self.write_lock():
            self.check_embedder(embedder_name, dimension)
            existing = self.find_by_sha(sha)
            if existing is not None:
                raise DuplicateDocument(existing)
            self._save_original(sha, kind, data)
            with self._connect() as db:
                generation = int(self._meta(db, "generation") or 0)
                next_id = int(self._meta(db, "next_chunk_id") or 1)
            current = self._load_index()
            # An emptied KB may have held another embedder's dimension: start a fresh index then.
            index = self._copy_index(current if current is not None and current.ntotal else None, dimension)
            ids = np.arange(next_id, next_id + len(chunks), dtype=np.int64)
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
            new_generation = generation + 1
            self._write_index(index, new_generation)
            added_at = datetime.now(UTC).isoformat(timespec="seconds")
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute(
                        "INSERT INTO documents(id, name, sha256, kind, bytes, pages, chunks, added_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (doc_id, name, sha, kind, len(data), page_count, len(chunks), added_at),
                    )
                    db.executemany(
                        "INSERT INTO pages(document_id, page, text) VALUES (?, ?, ?)",
                        [(doc_id, p.number, p.text) for p in pages],
                    )
                    db.executemany(
                        "INSERT INTO chunks(id, document_id, page, start, end, text, norm) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (int(i), doc_id, c.page, c.start, c.end, c.text, float(n))
                            for i, c, n in zip(ids, chunks, norms, strict=True)
                        ],
                    )
                    self._set_meta(db, "embedder", embedder_name)
                    self._set_meta(db, "dimension", str(dimension))
                    self._set_meta(db, "next_chunk_id", str(next_id + len(chunks)))
                    self._set_meta(db, "generation", str(new_generation))
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            self._index, self._index_generation = index, new_generation
            self._cleanup_index_files(new_generation)
        return DocumentInfo(doc_id, name, sha, kind, len(data), page_count, len(chunks), added_at)

    def delete(self, ref: str) -> DocumentInfo:
        """Remove a document (by id, name or hash): its rows, its vectors and its original file."""
        with self.write_lock():
            doc = self.resolve(ref)
            with self._connect() as db:
                generation = int(self._meta(db, "generation") or 0)
                ids = [int(r[0]) for r in db.execute("SELECT id FROM chunks WHERE document_id = ?", (doc.document_id,))]
            index = self._copy_index(self._load_index(), self.dimension or 1)
            if ids:
                index.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type]
            new_generation = generation + 1
            self._write_index(index, new_generation)
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute("DELETE FROM chunks WHERE document_id = ?", (doc.document_id,))
                    db.execute("DELETE FROM pages WHERE document_id = ?", (doc.document_id,))
                    db.execute("DELETE FROM documents WHERE id = ?", (doc.document_id,))
                    self._set_meta(db, "generation", str(new_generation))
                    remaining = db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
                    if remaining == 0:
                        # An empty KB may be re-used with another embedder.
                        db.execute("DELETE FROM meta WHERE key IN ('embedder', 'dimension')")
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            self._index, self._index_generation = index, new_generation
            self._cleanup_index_files(new_generation)
            for path in (self.data_dir / "originals").glob(f"{doc.sha256}.*"):
                path.unlink(missing_ok=True)
        return doc

    def original_path(self, doc: DocumentInfo) -> Path | None:
        matches = sorted((self.data_dir / "originals").glob(f"{doc.sha256}.*"))
        return matches[0] if matches else None

    def _copy_index(self, index: faiss.Index | None, dimension: int) -> faiss.Index:
        # Never mutate the index readers are using: work on a copy, publish it after the commit.
        if index is None:
            return self._new_index(dimension)
        return faiss.clone_index(index)

    def _save_original(self, sha: str, kind: str, data: bytes) -> None:
        ext = "pdf" if kind == "pdf" else "txt"
        final = self.data_dir / "originals" / f"{sha}.{ext}"
        if final.exists():
            return
        tmp = final.with_suffix(f".{ext}.tmp")
        tmp.write_bytes(data)
        _fsync_file(tmp)
        os.replace(tmp, final)

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets you fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
