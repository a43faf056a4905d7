"""The local knowledge store: SQLite rows, FAISS vector generations and the original files, in one data dir.

    kb.sqlite3                documents (every version), pages, chunks (of current versions), archived_chunks
                              (of replaced versions, with their vectors), meta (embedder, dimension,
                              generation, index info)
    index-<g>.faiss, ann-<g>.faiss   the vectors of generation g (rag_core.store.vectors)
    originals/<sha256>.<ext>  the uploaded bytes, named by content hash (never by the user's file name)
    kb.lock                   the cross-process writer lock

One writer at a time (a thread lock inside the process, a file lock across processes); any number of
readers, in any number of processes. SQLite runs in WAL mode, so a reader's transaction is a snapshot
while a writer commits. Every write goes through `LocalStore._publish`: the next generation's vector
files first, then the rows and the new generation number in one transaction, then readers are moved on.

Versions: a document stored under the name of a current one replaces it in that same single write:
the new version's vectors go in and the old one's come out of the next generation, and the old
version's chunks move, with their vectors, to `archived_chunks`. So a search sees one version or the
other, never both and never neither, even if the process dies in the middle; and restoring an old
version is the same move backwards, with no re-embedding.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from filelock import FileLock

import rag_core.store.rows as rows
from rag_core.store.protocol import (
    DuplicateDocument,
    StoredVersion,
    StoreError,
    StoreExport,
    check_recorded_embedder,
    index_info_of,
    index_meta,
    resolve_ref,
)
from rag_core.store.vectors import DEFAULT_ANN_THRESHOLD, VectorGenerations, fsync_file
from rag_core.types import ChunkRow, DocumentInfo, FloatArray, IndexInfo, IntArray, NewDocument

# 2: chunks.context (the title and heading path a chunk is indexed with); 3: pages.label;
# 4: document versions (documents.version, .current, .replaces; archived_chunks) and pages.ocr
SCHEMA_VERSION = 4
DB_NAME = "kb.sqlite3"
LOCK_NAME = "kb.lock"
ORIGINALS = "originals"

# Databases written before the `status` and `error` columns were dropped from `documents` still have
# them; both have defaults, so the inserts below work on either.
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
    version INTEGER NOT NULL DEFAULT 1,
    current INTEGER NOT NULL DEFAULT 1,
    replaces TEXT
);
CREATE TABLE IF NOT EXISTS pages (
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page INTEGER NOT NULL,
    text TEXT NOT NULL,
    label TEXT,
    ocr INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (document_id, page)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    norm REAL NOT NULL,
    context TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id);
"""


class LocalStore:
    """A `KnowledgeStore` in one data dir. Safe to share between threads; many processes may read, one
    writes at a time."""

    def __init__(self, data_dir: str | Path, *, ann_threshold: int = DEFAULT_ANN_THRESHOLD):
        self.data_dir = Path(data_dir)
        self._thread_lock = threading.RLock()
        self._vectors = VectorGenerations(self.data_dir, self._snapshot, self._thread_lock, ann_threshold=ann_threshold)
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise StoreError(f"data dir {self.data_dir} is a file, not a directory")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / ORIGINALS).mkdir(exist_ok=True)
        self.db_path = self.data_dir / DB_NAME
        self._file_lock = FileLock(str(self.data_dir / LOCK_NAME), thread_local=False)
        with self._connect() as db:
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            version = int(_meta(db, "schema_version") or SCHEMA_VERSION)
            if version < SCHEMA_VERSION or not _has_column(db, "documents", "version"):
                # (a database from before schema numbers was stamped current when first opened)
                version = _migrate(db, version)
            if version == SCHEMA_VERSION:
                db.executescript(rows.VERSION_SCHEMA)
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.db_path} was written by a newer PolicyPal (schema {version}); upgrade PolicyPal")

    def __repr__(self) -> str:
        return f"LocalStore({str(self.data_dir)!r})"

    @property
    def ann_threshold(self) -> int:
        return self._vectors.ann_threshold

    @property
    def cache_dir(self) -> Path:
        return self.data_dir

    # ---------------------------------------------------------------- connections and meta

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection; WAL gives readers a snapshot while a writer commits."""
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            _set_wal(db)
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    def meta(self, key: str) -> str | None:
        with self._connect() as db:
            return _meta(db, key)

    @property
    def embedder_name(self) -> str | None:
        return self.meta("embedder")

    @property
    def dimension(self) -> int | None:
        value = self.meta("dimension")
        return None if value is None else int(value)

    def generation(self) -> int:
        return int(self.meta("generation") or 0)

    def check_embedder(self, name: str, dimension: int | None = None) -> None:
        check_recorded_embedder(str(self.data_dir), self.embedder_name, self.dimension, name, dimension)

    def _snapshot(self) -> tuple[int, IndexInfo]:
        """(generation, its index info), read in one query so the two always belong together."""
        with self._connect() as db:
            meta_rows = dict(
                db.execute(
                    "SELECT key, value FROM meta WHERE key = 'generation' OR key LIKE 'index_%' OR key LIKE 'ann_%'"
                ).fetchall()
            )
        return int(meta_rows.get("generation", "0")), index_info_of(meta_rows)

    def index_info(self) -> IndexInfo:
        return self._vectors.current().info

    @property
    def size(self) -> int:
        return self._vectors.current().size

    @contextlib.contextmanager
    def write_lock(self, timeout: float = 600) -> Iterator[None]:
        """One writer at a time: a thread lock inside the process, a file lock across processes."""
        with self._thread_lock, self._file_lock.acquire(timeout=timeout):
            yield

    # ---------------------------------------------------------------- reading

    def documents(self, *, all_versions: bool = False) -> list[DocumentInfo]:
        with self._connect() as db:
            return rows.documents(db, "" if all_versions else "current = 1")

    def find_by_sha(self, sha256: str) -> DocumentInfo | None:
        with self._connect() as db:
            found = rows.documents(db, "sha256 = ?", (sha256,))
        return found[0] if found else None

    def resolve(self, ref: str) -> DocumentInfo:
        return resolve_ref(self.documents(all_versions=True), ref)

    def near_duplicates(self, texts: Sequence[str], *, threshold: float) -> list[tuple[DocumentInfo, float]]:
        with self._connect() as db:
            return rows.near_duplicates(db, texts, threshold)

    def chunks_by_ids(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        with self._connect() as db:
            found = rows.rows_by_ids(db, f"{rows.CHUNKS} WHERE c.id IN ({{marks}})", ids)
        return {int(r[0]): ChunkRow(*r) for r in found}

    def norms(self, ids: Sequence[int] | IntArray) -> FloatArray:
        with self._connect() as db:
            by_id = dict(rows.rows_by_ids(db, "SELECT id, norm FROM chunks WHERE id IN ({marks})", ids))
        return np.array([by_id.get(int(i), 1.0) for i in ids], dtype=np.float32)

    def all_chunks(self) -> list[ChunkRow]:
        with self._connect() as db:
            found = db.execute(f"{rows.CHUNKS} ORDER BY c.id").fetchall()
        return [ChunkRow(*r) for r in found]

    def chunk_texts(self) -> tuple[int, list[int], list[str]]:
        with self._connect() as db:
            db.execute("BEGIN")
            generation = int(_meta(db, "generation") or 0)
            found = db.execute("SELECT id, context, text FROM chunks ORDER BY id").fetchall()
            db.execute("COMMIT")
        return generation, [int(r[0]) for r in found], [f"{r[1]}\n{r[2]}" if r[1] else str(r[2]) for r in found]

    def vectors(self, ids: Sequence[int] | None = None) -> tuple[IntArray, FloatArray]:
        found = self._vectors.vectors(ids)
        if found is None:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dimension or 0), dtype=np.float32)
        return found

    def search(self, query: FloatArray, k: int, *, exact: bool = False) -> tuple[FloatArray, IntArray]:
        return self._vectors.search(query, k, exact=exact)

    def original(self, doc: DocumentInfo) -> bytes | None:
        matches = sorted((self.data_dir / ORIGINALS).glob(f"{doc.sha256}.*"))
        return matches[0].read_bytes() if matches else None

    # ---------------------------------------------------------------- writing

    def add(self, doc: NewDocument) -> DocumentInfo:
        with self.write_lock():
            self.check_embedder(doc.embedder, doc.dimension)
            existing = self.find_by_sha(doc.sha256)
            if existing is not None:
                raise DuplicateDocument(existing)
            with self._connect() as db:
                old, version = rows.current_named(db, doc.name), rows.last_version(db, doc.name) + 1
                retired = rows.chunk_ids(db, old.document_id) if old else np.zeros(0, dtype=np.int64)
            self._save_original(doc.sha256, doc.kind, doc.data)
            next_id = int(self.meta("next_chunk_id") or 1)
            ids = np.arange(next_id, next_id + len(doc.chunks), dtype=np.int64)
            info = rows.new_document_info(doc, old, version)

            def write_rows(db: sqlite3.Connection) -> None:
                if old is not None:  # the version it replaces leaves the searched tables in the same commit
                    rows.archive(db, old.document_id, self._vectors.vectors([int(i) for i in retired]))
                rows.insert_document(db, info, doc, ids)
                _set_meta(db, "embedder", doc.embedder)
                _set_meta(db, "dimension", str(doc.dimension))
                _set_meta(db, "next_chunk_id", str(next_id + len(doc.chunks)))

            self._publish(write_rows, dimension=doc.dimension, added=(ids, doc.vectors), removed=retired)
        return info

    def restore(self, ref: str) -> DocumentInfo:
        with self.write_lock():
            doc = self.resolve(ref)
            if doc.current:
                raise StoreError(f"{doc.name!r} version {doc.version} ({doc.document_id}) is already the current one")
            with self._connect() as db:
                old = rows.current_named(db, doc.name)
                retired = rows.chunk_ids(db, old.document_id) if old else np.zeros(0, dtype=np.int64)
                back = rows.archived_vectors(db, doc.document_id, self.dimension or 1)

            def write_rows(db: sqlite3.Connection) -> None:
                if old is not None:
                    rows.archive(db, old.document_id, self._vectors.vectors([int(i) for i in retired]))
                rows.unarchive(db, doc.document_id)

            self._publish(write_rows, dimension=self.dimension or 1, added=back, removed=retired)
        return replace(doc, current=True)

    def delete(self, ref: str) -> DocumentInfo:
        with self.write_lock():
            doc = self.resolve(ref)
            # Deleting a document deletes its history; deleting an old version deletes just that version.
            with self._connect() as db:
                gone = [doc, *(rows.documents(db, "name = ? AND current = 0", (doc.name,)) if doc.current else [])]
                removed = rows.chunk_ids(db, doc.document_id)

            def write_rows(db: sqlite3.Connection) -> None:
                for d in gone:
                    rows.remove_document(db, d.document_id)
                if db.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 0:
                    # An empty store may be re-used with another embedder.
                    db.execute("DELETE FROM meta WHERE key IN ('embedder', 'dimension')")

            self._publish(write_rows, dimension=self.dimension or 1, removed=removed)
            for d in gone:
                for path in (self.data_dir / ORIGINALS).glob(f"{d.sha256}.*"):
                    path.unlink(missing_ok=True)
        return doc

    def _publish(
        self,
        write_rows: Callable[[sqlite3.Connection], None],
        *,
        dimension: int,
        added: tuple[IntArray, FloatArray] | None = None,
        removed: IntArray | None = None,
    ) -> None:
        """Move to the next generation; the write lock must be held.

        Its vector files are written first; then `write_rows`, the generation number and the index info
        commit in one transaction; then readers are moved on. A crash before the commit leaves the
        current generation, whose files are untouched; a crash after it leaves the next one complete.
        """
        staged = self._vectors.stage(self.generation() + 1, dimension=dimension, added=added, removed=removed)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                write_rows(db)
                _set_meta(db, "generation", str(staged.number))
                for key, value in index_meta(staged.info).items():
                    _set_meta(db, key, value)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self._vectors.publish(staged)

    def _save_original(self, sha: str, kind: str, data: bytes) -> None:
        ext = kind if kind in ("pdf", "docx", "pptx", "xlsx", "html", "md") else "txt"
        final = self.data_dir / ORIGINALS / f"{sha}.{ext}"
        if final.exists():
            return
        tmp = final.with_suffix(f".{ext}.tmp")
        tmp.write_bytes(data)
        fsync_file(tmp)
        tmp.replace(final)


# ---------------------------------------------------------------------------- copying out


@contextlib.contextmanager
def export(store: LocalStore) -> Iterator[StoreExport]:
    """Everything `store` holds, to copy into another store (`python -m rag_core migrate`): every version
    of every document, read complete by the export's `read`. The store's write lock is held until the
    block ends, so the copy is of one state; readers carry on meanwhile."""
    with store.write_lock():
        with store._connect() as db:
            docs = rows.documents(db)
            next_id = int(_meta(db, "next_chunk_id") or 1)
        yield StoreExport(store.embedder_name, store.dimension, next_id, docs, lambda d: _stored_version(store, d))


def _stored_version(store: LocalStore, doc: DocumentInfo) -> StoredVersion:
    """One version complete: a current one's vectors from the index, a replaced one's from its archive."""
    with store._connect() as db:
        pages = rows.pages_of(db, doc.document_id)
        ids, chunks, norms, blobs = rows.chunks_of(db, doc.document_id, archived=not doc.current)
    if doc.current:
        found, vectors = store.vectors([int(i) for i in ids])
        if len(found) != len(ids):
            raise StoreError(
                f"the index of {store.data_dir} lacks the vectors of {len(ids) - len(found)} chunks of "
                f"{doc.name!r} ({doc.document_id}): ingest that document again, then retry"
            )
    else:
        vectors = np.asarray([np.frombuffer(b, dtype=np.float32) for b in blobs], dtype=np.float32)
    vectors = vectors.reshape(len(ids), store.dimension or 0)
    return StoredVersion(doc, pages, ids, chunks, norms, vectors, store.original(doc))


# ---------------------------------------------------------------------------- the meta table


def _meta(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _set_wal(db: sqlite3.Connection, patience: float = 60.0) -> None:
    """Switch to WAL. Two processes creating a store at once can make the switch fail with "database is
    locked" at once (SQLite does not wait on the busy timeout there): retry for a while."""
    deadline = time.monotonic() + patience
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _has_column(db: sqlite3.Connection, table: str, column: str) -> bool:
    return column in {str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")}


def _add_pages_ocr(db: sqlite3.Connection) -> None:
    """3 -> 4: pages.ocr, whether a page's text was read by OCR; pages stored before OCR existed were not."""
    if "ocr" not in {str(r[1]) for r in db.execute("PRAGMA table_info(pages)")}:
        db.execute("ALTER TABLE pages ADD COLUMN ocr INTEGER NOT NULL DEFAULT 0")


def _migrate(db: sqlite3.Connection, version: int) -> int:
    """Bring a knowledge base written by an older PolicyPal up to SCHEMA_VERSION, in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        columns = {str(r[1]) for r in db.execute("PRAGMA table_info(chunks)")}
        if "context" not in columns:  # 1 -> 2: chunks indexed so far keep an empty context
            db.execute("ALTER TABLE chunks ADD COLUMN context TEXT NOT NULL DEFAULT ''")
        if "label" not in {str(r[1]) for r in db.execute("PRAGMA table_info(pages)")}:  # 2 -> 3: no labels yet
            db.execute("ALTER TABLE pages ADD COLUMN label TEXT")
        if not _has_column(db, "documents", "version"):
            # 3 -> 4: every document so far is its name's first and current version
            db.execute("ALTER TABLE documents ADD COLUMN version INTEGER NOT NULL DEFAULT 1")
            db.execute("ALTER TABLE documents ADD COLUMN current INTEGER NOT NULL DEFAULT 1")
            db.execute("ALTER TABLE documents ADD COLUMN replaces TEXT")
        _add_pages_ocr(db)
        _set_meta(db, "schema_version", str(SCHEMA_VERSION))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION
