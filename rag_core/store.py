"""The knowledge base: SQLite rows + a FAISS vector index + the original files, in one data dir.

Layout of a data dir:
    kb.sqlite3              documents, pages, chunks, meta (embedder, dimension, index generation)
    index-<generation>.faiss  IndexIDMap2(IndexFlatIP): chunk id -> unit vector (exact; the source of truth)
    ann-<generation>.faiss    IndexIVFFlat over the same vectors and ids, only above `ann_threshold` chunks
    originals/<sha256>.<ext>  the uploaded bytes, named by content hash (never by the user's file name)
    kb.lock                 the cross-process writer lock

Why generations: vectors and rows must change together or not at all. A writer writes the new index
to a fresh file `index-<g+1>.faiss` (temp file, fsync, rename), then commits the rows and `generation =
g+1` in one SQLite transaction. A crash before the commit leaves generation g, whose file is untouched;
a crash after it leaves g+1 complete. Readers load the index named by the generation they read, so
they see either the old state or the new one, never half a document. The previous generation's file
is kept one round so a reader that just read `g` can still open it.

Why an approximate index only above a size, and why IVF: exact inner-product search of one query costs
~0.05 ms per 1,000 chunks here (one thread; benchmarks/run.py), so up to `ann_threshold` (20,000 by
default, ~1 ms) exact search is both fast and perfect. Above it an inverted-file index (IVF-Flat, ~4
lists per sqrt(chunks)) is kept beside the exact one: on 100k MiniLM vectors it reached recall@10 1.00
against exact at ~0.2 ms, where HNSW (M=32) needed efSearch 512 (~0.55 ms) for 0.98, and IVF supports
what the KB needs: ids of our choosing, cheap adds (no retraining until the KB doubles) and deletes
(`remove_ids`, which HNSW lacks). Its `nprobe` is tuned at every write: stored vectors, perturbed to look
like queries, are searched exactly and approximately, and the smallest nprobe with recall@10 >= 0.99 is
kept. Kind, nlist, nprobe and the measured recall are recorded in the meta table with the generation.
The exact index stays the source of truth: vectors, deletes, the dot/L2 scans and rebuilds read it.

What it leaves out: compressed vectors (PQ/SQ; 100k x 384 floats is 150 MB), BM25 (rag_core.lexical).
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
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
from filelock import FileLock

from rag_core.chunking import Chunk
from rag_core.loaders import Page

SCHEMA_VERSION = 1
DB_NAME = "kb.sqlite3"
LOCK_NAME = "kb.lock"

DEFAULT_ANN_THRESHOLD = 20_000
ANN_TARGET_RECALL = 0.99  # tuned to this on perturbed stored vectors; the promise is >= 0.98 on queries
_ANN_TUNE_QUERIES = 200
_SQL_BATCH = 30_000  # below SQLite's smallest compiled-in limit on host parameters (32,766)

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


@dataclass(frozen=True)
class IndexInfo:
    """Which index serves searches in one generation (recorded in the meta table)."""

    kind: str  # "flat" (exact) or "ivf"
    size: int
    nlist: int = 0
    nprobe: int = 0
    recall_at_10: float = 1.0  # measured against exact search when the index was written
    trained_size: int = 0  # chunks the IVF lists were trained on; retrained when the KB doubles

    def to_meta(self) -> dict[str, str]:
        return {
            "index_kind": self.kind,
            "index_size": str(self.size),
            "ann_nlist": str(self.nlist),
            "ann_nprobe": str(self.nprobe),
            "ann_recall_at_10": f"{self.recall_at_10:.4f}",
            "ann_trained_size": str(self.trained_size),
        }

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> IndexInfo:
        return cls(
            kind=meta.get("index_kind", "flat"),
            size=int(meta.get("index_size", "0")),
            nlist=int(meta.get("ann_nlist", "0")),
            nprobe=int(meta.get("ann_nprobe", "0")),
            recall_at_10=float(meta.get("ann_recall_at_10", "1")),
            trained_size=int(meta.get("ann_trained_size", "0")),
        )


@dataclass
class _Loaded:
    """One generation's indexes as readers use them."""

    generation: int
    flat: Any  # faiss.IndexIDMap2(IndexFlatIP) or None (empty KB)
    ann: Any  # faiss.IndexIVFFlat or None (below the threshold)
    info: IndexInfo
    sorted_ids: IntArray  # chunk ids in ascending order
    positions: IntArray  # positions[i] = row in `flat` of sorted_ids[i]


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

    def __init__(self, data_dir: str | Path, *, ann_threshold: int = DEFAULT_ANN_THRESHOLD):
        if ann_threshold < 1:
            raise ValueError(f"ann_threshold must be >= 1; got ann_threshold={ann_threshold}")
        self.ann_threshold = ann_threshold
        self.data_dir = Path(data_dir)
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise StoreError(f"data dir {self.data_dir} is a file, not a directory")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "originals").mkdir(exist_ok=True)
        self.db_path = self.data_dir / DB_NAME
        self._thread_lock = threading.RLock()
        self._file_lock = FileLock(str(self.data_dir / LOCK_NAME), thread_local=False)
        self._loaded: _Loaded | None = None
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
            _set_wal(db)
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

    def _ann_path(self, generation: int) -> Path:
        return self.data_dir / f"ann-{generation}.faiss"

    def _snapshot(self) -> tuple[int, IndexInfo]:
        """(generation, its index info), read in one query so the two always belong together."""
        with self._connect() as db:
            rows = dict(
                db.execute(
                    "SELECT key, value FROM meta WHERE key = 'generation' OR key LIKE 'index_%' OR key LIKE 'ann_%'"
                ).fetchall()
            )
        return int(rows.get("generation", "0")), IndexInfo.from_meta(rows)

    def index_info(self) -> IndexInfo:
        """The kind of index serving searches now (flat or ivf), its size and its measured recall."""
        return self._current().info

    def _current(self) -> _Loaded:
        """The indexes of the current generation, reloaded when another writer has moved it on."""
        generation, info = self._snapshot()
        loaded = self._loaded
        if loaded is not None and loaded.generation == generation:
            return loaded  # no lock: a writer busy on the next generation does not hold up readers
        with self._thread_lock:
            for _ in range(20):
                generation, info = self._snapshot()  # again: a writer may have committed while we waited
                if self._loaded is not None and self._loaded.generation == generation:
                    return self._loaded
                if generation == 0:
                    self._loaded = _Loaded(0, None, None, IndexInfo("flat", 0), _EMPTY_IDS, _EMPTY_IDS)
                    return self._loaded
                try:
                    flat = faiss.read_index(str(self._index_path(generation)))
                    ann = faiss.read_index(str(self._ann_path(generation))) if info.kind == "ivf" else None
                except RuntimeError:
                    if self._index_path(generation).exists() and (
                        info.kind != "ivf" or self._ann_path(generation).exists()
                    ):
                        raise
                    time.sleep(0.05)  # a writer moved on and removed it; read the generation again
                    continue
                self._loaded = _loaded(generation, flat, ann, info)
                return self._loaded
            raise StoreError(f"index file for generation {self.generation()} is missing in {self.data_dir}")

    def _load_index(self) -> Any:
        """The exact index of the current generation (None for an empty KB)."""
        return self._current().flat

    def _new_index(self, dimension: int) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def _write_index(self, index: faiss.Index, generation: int, path: Path | None = None) -> None:
        final = path or self._index_path(generation)
        tmp = final.with_suffix(".faiss.tmp")
        faiss.write_index(index, str(tmp))
        _fsync_file(tmp)
        os.replace(tmp, final)
        _fsync_dir(self.data_dir)

    def _cleanup_index_files(self, current: int) -> None:
        for path in [*self.data_dir.glob("index-*.faiss*"), *self.data_dir.glob("ann-*.faiss*")]:
            stem = path.name.split(".")[0].split("-", 1)[1]
            if not stem.isdigit():
                continue
            g = int(stem)
            if path.name.endswith(".tmp") or g > current or g < current - 1:
                path.unlink(missing_ok=True)

    def _next_ann(
        self, previous: _Loaded | None, flat: Any, added: IntArray | None, removed: IntArray | None
    ) -> tuple[Any, IndexInfo]:
        """The approximate index for the new exact index `flat`: none below the threshold; else the
        previous one updated (add / remove_ids), or a fresh one when there was none or the KB has
        doubled since its lists were trained. nprobe is re-tuned every time (it takes ~0.1 s)."""
        n = int(flat.ntotal)
        if n < self.ann_threshold:
            return None, IndexInfo("flat", n)
        old = previous.ann if previous is not None else None
        trained = previous.info.trained_size if previous is not None else 0
        if old is not None and n <= 2 * trained:
            ann: Any = faiss.clone_index(old)
            if removed is not None and len(removed):
                ann.remove_ids(np.asarray(removed, dtype=np.int64))
            if added is not None and len(added):
                ids, vecs = _flat_rows(flat, added)
                ann.add_with_ids(vecs, ids)
        else:
            ann, trained = build_ivf(flat), n
        nprobe, recall = tune_nprobe(ann, flat)
        info = IndexInfo("ivf", n, int(ann.nlist), nprobe, recall, trained)
        return ann, info

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
        if not len(ids):
            return {}
        out: dict[int, ChunkRow] = {}
        with self._connect() as db:
            for s in range(0, len(ids), _SQL_BATCH):
                part = [int(i) for i in ids[s : s + _SQL_BATCH]]
                marks = ",".join("?" * len(part))
                rows = db.execute(
                    "SELECT c.id, c.document_id, d.name, c.page, c.start, c.end, c.text, c.norm "
                    f"FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({marks})",
                    part,
                ).fetchall()
                out.update((int(r[0]), ChunkRow(*r)) for r in rows)
        return out

    def norms(self, ids: Sequence[int] | IntArray) -> FloatArray:
        """The original (pre-normalisation) norms of the given chunks, in order; 1.0 for unknown ids."""
        by_id: dict[int, float] = {}
        with self._connect() as db:
            for s in range(0, len(ids), _SQL_BATCH):
                part = [int(i) for i in ids[s : s + _SQL_BATCH]]
                marks = ",".join("?" * len(part))
                by_id.update(db.execute(f"SELECT id, norm FROM chunks WHERE id IN ({marks})", part).fetchall())
        return np.array([by_id.get(int(i), 1.0) for i in ids], dtype=np.float32)

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
        """(chunk ids, unit vectors) of the given chunks, or of all of them in id order.

        Ids not in the index (a document deleted since the caller read its rows) are left out, so the
        returned ids may be fewer than asked for; they keep the order asked for.
        """
        loaded = self._current()
        if loaded.flat is None or loaded.flat.ntotal == 0:
            dim = self.dimension or 0
            return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
        if ids is None:
            ids_arr, rows = loaded.sorted_ids, loaded.positions
        else:
            asked = np.asarray(ids, dtype=np.int64).reshape(-1)
            at = np.searchsorted(loaded.sorted_ids, asked)
            at = np.minimum(at, len(loaded.sorted_ids) - 1)
            found = loaded.sorted_ids[at] == asked
            ids_arr, rows = asked[found], loaded.positions[at[found]]
        return ids_arr, _flat_view(loaded.flat)[rows]  # fancy indexing copies only the rows asked for

    def search(self, query: FloatArray, k: int, *, exact: bool = False) -> tuple[FloatArray, IntArray]:
        """Inner-product top-k for unit query vectors of shape (n, dim): (scores, chunk ids), -1 = none.

        Uses the approximate index when this generation has one (unless `exact`), else exact search.
        """
        loaded = self._current()
        index = loaded.flat
        q = np.ascontiguousarray(np.atleast_2d(query), dtype=np.float32)
        if index is None or index.ntotal == 0:
            return np.zeros((q.shape[0], 0), np.float32), np.zeros((q.shape[0], 0), np.int64)
        if q.shape[1] != index.d:
            raise EmbedderMismatch(f"query vectors are {q.shape[1]}-d but the index holds {index.d}-d vectors")
        k = min(k, int(index.ntotal))
        with _threads_for(q.shape[0]):
            if loaded.ann is not None and not exact:
                scores, ids = loaded.ann.search(q, k, params=_ivf_params(loaded.info.nprobe))
            else:
                scores, ids = index.search(q, k)
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
            previous: _Loaded | None = self._current()
            current = previous.flat if previous is not None else None
            # An emptied KB may have held another embedder's dimension: start a fresh index then.
            if current is None or not current.ntotal:
                current, previous = None, None
            index = self._copy_index(current, dimension)
            ids = np.arange(next_id, next_id + len(chunks), dtype=np.int64)
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
            new_generation = generation + 1
            ann, info = self._next_ann(previous, index, ids, None)
            self._write_index(index, new_generation)
            if ann is not None:
                self._write_index(ann, new_generation, self._ann_path(new_generation))
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
                    for key, value in info.to_meta().items():
                        self._set_meta(db, key, value)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            self._loaded = _loaded(new_generation, index, ann, info)
            self._cleanup_index_files(new_generation)
        return DocumentInfo(doc_id, name, sha, kind, len(data), page_count, len(chunks), added_at)

    def delete(self, ref: str) -> DocumentInfo:
        """Remove a document (by id, name or hash): its rows, its vectors and its original file."""
        with self.write_lock():
            doc = self.resolve(ref)
            with self._connect() as db:
                generation = int(self._meta(db, "generation") or 0)
                ids = [int(r[0]) for r in db.execute("SELECT id FROM chunks WHERE document_id = ?", (doc.document_id,))]
            previous = self._current()
            index = self._copy_index(previous.flat, self.dimension or 1)
            removed = np.asarray(ids, dtype=np.int64)
            if ids:
                index.remove_ids(removed)  # type: ignore[arg-type]
            new_generation = generation + 1
            ann, info = self._next_ann(previous, index, None, removed)
            self._write_index(index, new_generation)
            if ann is not None:
                self._write_index(ann, new_generation, self._ann_path(new_generation))
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute("DELETE FROM chunks WHERE document_id = ?", (doc.document_id,))
                    db.execute("DELETE FROM pages WHERE document_id = ?", (doc.document_id,))
                    db.execute("DELETE FROM documents WHERE id = ?", (doc.document_id,))
                    self._set_meta(db, "generation", str(new_generation))
                    for key, value in info.to_meta().items():
                        self._set_meta(db, key, value)
                    remaining = db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
                    if remaining == 0:
                        # An empty KB may be re-used with another embedder.
                        db.execute("DELETE FROM meta WHERE key IN ('embedder', 'dimension')")
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            self._loaded = _loaded(new_generation, index, ann, info)
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


_EMPTY_IDS = np.zeros(0, dtype=np.int64)


def _set_wal(db: sqlite3.Connection, patience: float = 60.0) -> None:
    """Switch to WAL. Two processes creating a KB at once can make the switch fail with "database is
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


def _loaded(generation: int, flat: Any, ann: Any, info: IndexInfo) -> _Loaded:
    if flat is None or flat.ntotal == 0:
        return _Loaded(generation, flat, ann, info, _EMPTY_IDS, _EMPTY_IDS)
    ids = faiss.vector_to_array(flat.id_map).astype(np.int64)
    order = np.argsort(ids, kind="stable")
    return _Loaded(generation, flat, ann, info, ids[order], order.astype(np.int64))


def _flat_view(flat: Any) -> FloatArray:
    """The vectors of an IndexIDMap2(IndexFlatIP) in insertion order, as a read-only view of the index's
    own memory (no copy: 100k vectors are 150 MB). Valid while `flat` lives; index it to copy rows out."""
    inner: Any = faiss.downcast_index(flat.index)
    n = int(inner.ntotal)
    if n == 0:
        return np.zeros((0, inner.d), dtype=np.float32)
    view = faiss.rev_swig_ptr(inner.get_xb(), n * inner.d).reshape(n, inner.d)
    view.flags.writeable = False
    return np.asarray(view, dtype=np.float32)


def _flat_vectors(flat: Any) -> FloatArray:
    """All vectors of an IndexIDMap2(IndexFlatIP), in insertion order (a copy)."""
    inner = faiss.downcast_index(flat.index)
    n = int(inner.ntotal)
    return np.asarray(inner.reconstruct_n(0, n), dtype=np.float32).reshape(n, inner.d)


def _flat_rows(flat: Any, ids: IntArray) -> tuple[IntArray, FloatArray]:
    """(ids, vectors) of the given ids, read from an IndexIDMap2(IndexFlatIP)."""
    all_ids = faiss.vector_to_array(flat.id_map).astype(np.int64)
    rows = np.flatnonzero(np.isin(all_ids, ids))
    return all_ids[rows], np.ascontiguousarray(_flat_vectors(flat)[rows])


def ivf_lists(n: int) -> int:
    """IVF list count for n vectors: a power of two near 4·sqrt(n), 64 to 16,384.

    >>> ivf_lists(20_000), ivf_lists(100_000), ivf_lists(1_000_000)
    (512, 1024, 4096)
    """
    target = 4 * np.sqrt(max(n, 1))
    return int(min(16_384, max(64, 2 ** round(np.log2(target)))))


def build_ivf(flat: Any, seed: int = 0) -> Any:
    """An IndexIVFFlat (inner product) over every vector of `flat`, trained on a sample of them."""
    ids = faiss.vector_to_array(flat.id_map).astype(np.int64)
    vecs = _flat_vectors(flat)
    nlist = min(ivf_lists(len(ids)), max(1, len(ids) // 39))  # k-means wants >= 39 points per list
    quantizer = faiss.IndexFlatIP(flat.d)
    ivf = faiss.IndexIVFFlat(quantizer, flat.d, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = seed
    rng = np.random.default_rng(seed)
    sample = vecs[rng.permutation(len(vecs))[: 64 * nlist]] if len(vecs) > 64 * nlist else vecs
    ivf.train(np.ascontiguousarray(sample))
    ivf.add_with_ids(vecs, ids)
    return ivf


def tune_nprobe(ann: Any, flat: Any, target: float = ANN_TARGET_RECALL, seed: int = 0) -> tuple[int, float]:
    """(nprobe, its recall@10 against exact search on the tuning queries): twice the smallest nprobe
    that reaches `target` on them.

    The tuning queries are stored vectors pushed away by noise twice as long as the vector (cosine ~0.45
    to their source). Real questions are harder for IVF than perturbed passages at the same similarity:
    on 100k MiniLM chunks, the shared eval set's questions got recall@10 0.93 at the nprobe that gave
    perturbed passages 0.99, and 0.997 at twice this rule's first nprobe. Search stays ~0.2 ms.
    """
    vecs = _flat_vectors(flat)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(vecs), size=min(_ANN_TUNE_QUERIES, len(vecs)), replace=False)
    noise = rng.normal(size=(len(pick), vecs.shape[1])).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = vecs[pick] + 2.0 * noise
    q = np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True), dtype=np.float32)
    k = min(10, int(flat.ntotal))
    _, truth = flat.search(q, k)
    nprobe, recall = 1, 0.0
    while True:
        nprobe = min(nprobe * 2 if recall else 8, int(ann.nlist))
        _, got = ann.search(q, k, params=_ivf_params(nprobe))
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got.tolist(), truth.tolist(), strict=True)]))
        if recall >= target or nprobe >= ann.nlist:
            break
    nprobe = min(2 * nprobe, int(ann.nlist))
    _, got = ann.search(q, k, params=_ivf_params(nprobe))
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got.tolist(), truth.tolist(), strict=True)]))
    return nprobe, recall


def _ivf_params(nprobe: int) -> Any:
    params: Any = faiss.SearchParametersIVF()  # per call, so concurrent searches never share a setting
    params.nprobe = nprobe
    return params


@contextlib.contextmanager
def _threads_for(n_queries: int) -> Iterator[None]:
    """One OpenMP thread for a handful of queries: waking a second one costs more than it saves, and on a
    busy machine it can cost milliseconds. (The setting is per calling thread in OpenMP.)"""
    if n_queries > 4:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


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
