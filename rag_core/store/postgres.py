"""The PostgreSQL knowledge store: every row, vector and original in one database, shared by any number of
app servers (`RAG_DATABASE_URL=postgresql://...` or `--database-url`).

The tables (rag_core.store.pgschema) hold what the local store keeps in SQLite, FAISS files and the
originals folder: documents with their versions, pages, chunks with their vectors (pgvector, IVFFlat
or HNSW index: rag_core.store.pgindex), archived chunks of replaced versions, the uploaded bytes (bytea) and
the meta rows (embedder, generation, index info, schema version).

Why one transaction per write: a write (add, restore, delete) runs in one transaction that takes a
transaction-level advisory lock first, so writers in any process queue behind each other, and that
ends by moving the generation on and recording the index info. PostgreSQL commits all of it or none:
a document appears whole or not at all, and a process that dies mid-write leaves nothing behind (the
server rolls its transaction back and releases the lock). Readers never wait for writers (MVCC); reads
that must agree with each other (`chunk_texts`, `near_duplicates`) run in one REPEATABLE READ snapshot.

Why reads are tried twice: a pooled connection may have died while idle (the server restarted, an
administrator ended it); reads are safe to repeat, so one that loses its connection runs once more on
a fresh one before `ConnectionLost` reaches the caller. Writes are not repeated: the server rolled the
lost one back, and the error says to run it again.

Moving a knowledge base from the local store into a database is `import_from` (rag_core.store.pgimport).

The BM25 side stays where it is for both backends: rag_core.lexical rebuilds it from `chunk_texts` once
per generation into `cache_dir`, a local directory under `cache_root` named by the database's store id
(a random id written when its schema is created), so two databases never share a cache and a
recreated one never inherits stale files.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np

import rag_core.store.pgimport as pgimport
import rag_core.store.pgindex as pgindex
import rag_core.store.pgrows as pgrows
from rag_core.store.pgschema import (
    SCHEMA_VERSION,
    WRITE_LOCK,
    Conn,
    ConnectionLost,
    Pool,
    connect,
    meta,
    migrate,
    redact,
    set_meta,
)
from rag_core.store.protocol import (
    DuplicateDocument,
    EmbedderMismatch,
    ImportReport,
    StoreError,
    StoreExport,
    check_recorded_embedder,
    index_info_of,
    index_meta,
    resolve_ref,
)
from rag_core.store.rows import new_document_info
from rag_core.store.vectors import DEFAULT_ANN_THRESHOLD
from rag_core.types import (
    PG_INDEX_KINDS,
    ChunkRow,
    DocumentInfo,
    FloatArray,
    IndexInfo,
    IntArray,
    NewDocument,
    PgIndexKind,
)

NEW_DATABASE = (
    "re-index into a new database (another database name in RAG_DATABASE_URL or --database-url, "
    "then ingest the documents again)"
)
_INDEX_KEYS = (
    "generation",
    "index_kind",
    "index_size",
    "ann_nlist",
    "ann_nprobe",
    "ann_ef_search",
    "ann_recall_at_10",
    "ann_trained_size",
)
# The index's breadth (IVF probes, HNSW ef_search) is re-tuned when the store has grown or shrunk by more
# than this share since it was tuned:
# tuning runs 200 exact searches (~2.5 s at 20,000 chunks, linear in the size) inside the write.
RETUNE_CHANGE = 0.1


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _retried(read: Callable[_P, _R]) -> Callable[_P, _R]:
    """`read` run once more, on a fresh connection, when its connection was lost."""

    @functools.wraps(read)
    def again(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return read(*args, **kwargs)
        except ConnectionLost:
            return read(*args, **kwargs)

    return again


def default_cache_root() -> Path:
    return Path(tempfile.gettempdir()) / "policypal"


class PostgresStore:
    """A `KnowledgeStore` in one PostgreSQL database. Safe to share between threads; any number of
    processes may read and write."""

    def __init__(
        self,
        url: str,
        *,
        cache_root: str | Path | None = None,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        index: PgIndexKind = "ivfflat",
    ):
        if ann_threshold < 1:
            raise ValueError(f"ann_threshold must be >= 1; got ann_threshold={ann_threshold}")
        if index not in PG_INDEX_KINDS:
            raise ValueError(f"the PostgreSQL index must be one of {PG_INDEX_KINDS}; got {index!r}")
        self.url = url
        self.ann_threshold = ann_threshold
        self.index_kind: PgIndexKind = index
        with contextlib.closing(connect(url)) as db:
            version = migrate(db)
            store_id = meta(db, ("store_id",)).get("store_id", "")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{redact(url)} was written by a newer PolicyPal (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade PolicyPal"
            )
        self._pool = Pool(url)
        self._cache_dir = Path(cache_root or default_cache_root()) / "postgres" / store_id
        self._cache_dir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"

    def close(self) -> None:
        """Close the pooled connections (a later call opens new ones)."""
        self._pool.close()

    @property
    def cache_dir(self) -> Path:
        return self._cache_dir

    # ---------------------------------------------------------------- meta

    @_retried
    def _meta(self, *keys: str) -> dict[str, str]:
        with self._pool.connection() as db:
            return meta(db, keys)

    @property
    def embedder_name(self) -> str | None:
        return self._meta("embedder").get("embedder")

    @property
    def dimension(self) -> int | None:
        value = self._meta("dimension").get("dimension")
        return None if value is None else int(value)

    def generation(self) -> int:
        return int(self._meta("generation").get("generation", "0"))

    def check_embedder(self, name: str, dimension: int | None = None) -> None:
        self._check_embedder(self._meta("embedder", "dimension"), name, dimension)

    def _check_embedder(self, recorded: dict[str, str], name: str, dimension: int | None) -> None:
        recorded_dim = int(recorded["dimension"]) if "dimension" in recorded else None
        check_recorded_embedder(
            redact(self.url), recorded.get("embedder"), recorded_dim, name, dimension, start_afresh=NEW_DATABASE
        )

    def index_info(self) -> IndexInfo:
        return index_info_of(self._meta(*_INDEX_KEYS))

    @property
    def size(self) -> int:
        return self.index_info().size

    # ---------------------------------------------------------------- reading

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Conn]:
        """A connection inside one REPEATABLE READ transaction: every query sees the same commits."""
        with self._pool.connection() as db, db.transaction():
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield db

    @_retried
    def documents(self, *, all_versions: bool = False) -> list[DocumentInfo]:
        with self._pool.connection() as db:
            return pgrows.documents(db, "" if all_versions else "current")

    @_retried
    def find_by_sha(self, sha256: str) -> DocumentInfo | None:
        with self._pool.connection() as db:
            return pgrows.by_sha(db, sha256)

    def resolve(self, ref: str) -> DocumentInfo:
        return resolve_ref(self.documents(all_versions=True), ref)

    @_retried
    def near_duplicates(self, texts: Sequence[str], *, threshold: float) -> list[tuple[DocumentInfo, float]]:
        with self._snapshot() as db:
            return pgrows.near_duplicates(db, texts, threshold)

    @_retried
    def chunks_by_ids(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        with self._pool.connection() as db:
            return {r.chunk_id: r for r in pgrows.chunk_rows(db, ids)}

    @_retried
    def norms(self, ids: Sequence[int] | IntArray) -> FloatArray:
        with self._pool.connection() as db:
            by_id = pgrows.norms(db, [int(i) for i in ids])
        return np.array([by_id.get(int(i), 1.0) for i in ids], dtype=np.float32)

    @_retried
    def all_chunks(self) -> list[ChunkRow]:
        with self._pool.connection() as db:
            return pgrows.chunk_rows(db)

    @_retried
    def chunk_texts(self) -> tuple[int, list[int], list[str]]:
        with self._snapshot() as db:
            generation = int(meta(db, ("generation",)).get("generation", "0"))
            found = db.execute("SELECT id, context, text FROM chunks ORDER BY id").fetchall()
        return generation, [int(r[0]) for r in found], [f"{r[1]}\n{r[2]}" if r[1] else str(r[2]) for r in found]

    @_retried
    def vectors(self, ids: Sequence[int] | None = None) -> tuple[IntArray, FloatArray]:
        with self._pool.connection() as db:
            dimension = int(meta(db, ("dimension",)).get("dimension", "0"))
            return pgrows.vectors(db, ids, dimension)

    @_retried
    def search(self, query: FloatArray, k: int, *, exact: bool = False) -> tuple[FloatArray, IntArray]:
        q = np.ascontiguousarray(np.atleast_2d(query), dtype=np.float32)
        with self._pool.connection() as db:
            recorded = meta(db, ("dimension", *_INDEX_KEYS))
            info = index_info_of(recorded)
            if not info.size:
                return np.zeros((q.shape[0], 0), np.float32), np.zeros((q.shape[0], 0), np.int64)
            dimension = int(recorded.get("dimension", "0"))
            if q.shape[1] != dimension:
                raise EmbedderMismatch(f"query vectors are {q.shape[1]}-d but the index holds {dimension}-d vectors")
            if exact or info.kind == "flat":
                return pgindex.search(db, q, min(k, info.size), None)
            if info.kind == "hnsw":
                return pgindex.search(db, q, min(k, info.size), info.ef_search, "hnsw")
            return pgindex.search(db, q, min(k, info.size), info.nprobe, "ivfflat")

    @_retried
    def original(self, doc: DocumentInfo) -> bytes | None:
        with self._pool.connection() as db:
            return pgrows.original(db, doc.sha256)

    # ---------------------------------------------------------------- writing

    def import_from(self, source: StoreExport, progress: Callable[[int, int], None] | None = None) -> ImportReport:
        """Copy a whole knowledge base (`LocalStore`'s `export`) into this database in one write, vectors
        and chunk ids as they are: all of it or, on any failure, nothing. Refuses a database holding other
        documents; one holding exactly these is left as it is (`ImportReport.already`)."""
        try:
            with self._write() as db:
                return pgimport.copy_into(db, redact(self.url), source, progress)
        except pgimport.AlreadyThere as e:
            return e.report

    @contextlib.contextmanager
    def _write(self) -> Iterator[Conn]:
        """One write: a transaction holding the writers' advisory lock, ending with the next generation.
        An exception anywhere inside rolls all of it back."""
        with self._pool.connection() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield db
            self._next_generation(db)

    def _next_generation(self, db: Conn) -> None:
        """Move the generation on and record the index that serves it (rag_core.store.pgindex): exact
        below the threshold; at or above it the configured index, built when missing (or of the other
        kind), IVF's lists rebuilt when the store has grown or shrunk REBUILD_FACTOR-fold since they were
        trained (`trained_size`), and the breadth re-tuned when the store has changed by more than
        RETUNE_CHANGE since it was tuned (`ann_tuned_size`)."""
        row = db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        size = 0 if row is None else int(row[0])
        recorded = meta(db, (*_INDEX_KEYS, "dimension", "ann_tuned_size"))
        before, info = index_info_of(recorded), IndexInfo("flat", size)
        dimension = int(recorded.get("dimension", "0"))
        if size >= self.ann_threshold and 0 < dimension <= pgindex.MAX_INDEX_DIMENSION:
            tuned_at = int(recorded.get("ann_tuned_size", "0"))
            info = pgindex.serve(db, self.index_kind, before, size, tuned_at, RETUNE_CHANGE)
            if info is not before:
                set_meta(db, "ann_tuned_size", str(size))
            info = replace(info, size=size)
        elif pgindex.existing_index(db) is not None:
            pgindex.drop_index(db)  # shrunk below the threshold: exact search, and no index to keep up
        generation = int(recorded.get("generation", "0")) + 1
        for key, value in {"generation": str(generation), **index_meta(info)}.items():
            set_meta(db, key, value)

    def add(self, doc: NewDocument) -> DocumentInfo:
        with self._write() as db:
            recorded = meta(db, ("embedder", "dimension", "next_chunk_id"))
            self._check_embedder(recorded, doc.embedder, doc.dimension)
            existing = pgrows.by_sha(db, doc.sha256)
            if existing is not None:
                raise DuplicateDocument(existing)
            old, version = pgrows.current_named(db, doc.name), pgrows.last_version(db, doc.name) + 1
            if "dimension" not in recorded:
                pgindex.set_dimension(db, doc.dimension)
            next_id = int(recorded.get("next_chunk_id", "1"))
            ids = np.arange(next_id, next_id + len(doc.chunks), dtype=np.int64)
            info = new_document_info(doc, old, version)
            if old is not None:  # the version it replaces leaves the searched table in the same commit
                pgrows.archive(db, old.document_id)
            pgrows.insert_document(db, info, doc, ids)
            set_meta(db, "embedder", doc.embedder)
            set_meta(db, "dimension", str(doc.dimension))
            set_meta(db, "next_chunk_id", str(next_id + len(doc.chunks)))
        return info

    def restore(self, ref: str) -> DocumentInfo:
        with self._write() as db:
            doc = resolve_ref(pgrows.documents(db), ref)
            if doc.current:
                raise StoreError(f"{doc.name!r} version {doc.version} ({doc.document_id}) is already the current one")
            old = pgrows.current_named(db, doc.name)
            if old is not None:
                pgrows.archive(db, old.document_id)
            pgrows.unarchive(db, doc.document_id)
        return replace(doc, current=True)

    def delete(self, ref: str) -> DocumentInfo:
        with self._write() as db:
            doc = resolve_ref(pgrows.documents(db), ref)
            # Deleting a document deletes its history; deleting an old version deletes just that version.
            history = pgrows.documents(db, "name = %s AND NOT current", (pgrows.text(doc.name),)) if doc.current else []
            pgrows.remove_documents(db, [doc.document_id, *(d.document_id for d in history)])
            if db.execute("SELECT NOT EXISTS (SELECT 1 FROM documents)").fetchone() == (True,):
                # An empty store may be re-used with another embedder.
                db.execute("DELETE FROM meta WHERE key IN ('embedder', 'dimension')")
                pgindex.clear_dimension(db)
        return doc
