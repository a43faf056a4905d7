"""Storage: documents as rows and one unit vector per chunk, behind one contract, `KnowledgeStore`.

A store knows rows and vectors only. It never parses, chunks or embeds: the ingest hands it a complete
`NewDocument` (bytes, pages, chunks, vectors, norms, embedder) and it keeps them, together, or refuses
them (`DuplicateDocument` for bytes already in, `EmbedderMismatch` for another embedder's vectors).
Everything the rest of PolicyPal reads (documents, chunk rows, norms, vectors, top-k search) comes from
the contract, so a backend can change without its callers noticing.

Why generations: rows and vectors must change together or not at all. Every write moves the store to
its next generation; the local store writes the new vector files first (temp file, fsync, rename) and
then commits the rows together with the new generation number in one SQLite transaction. A crash
before the commit leaves the old generation, whose files are untouched; a crash after it leaves the
new one complete. Readers use the vectors of the generation they read, so they see the old state or
the new one, never half a document. Derived caches (BM25, map layouts) are keyed by generation too.

Why an approximate index only above a size: exact inner-product search is fast and perfect for
thousands of chunks, so the exact index (FAISS flat) serves searches up to `ann_threshold` vectors and
remains the source of truth. Above it an IVF index is kept beside it, updated by adds and deletes,
retrained when the store has doubled, with `nprobe` tuned at every write; its kind, size, nprobe and
measured recall are recorded with the generation (`index_info`). Measurements: benchmarks/RESULTS.md.

Why a second backend: the local store needs no server but lives on one machine. A company running
several app servers points them all at one PostgreSQL database (`RAG_DATABASE_URL`): the same contract,
with PostgreSQL's transactions in place of the generation files and pgvector's IVFFlat (or HNSW) index in
place of FAISS (postgres.py). Both pass one contract suite (tests/store/test_contract.py). A knowledge base grown
out of one machine moves over as it is (`local.export` into `PostgresStore.import_from`, pgimport.py:
`python -m rag_core migrate --to URL`), vectors included, without re-embedding.

    protocol.py  the contract, its errors, index meta  local.py     SQLite rows, originals, the writer lock
    rows.py      the local store's SQL                 vectors.py   FAISS generations and IVF upkeep
    postgres.py  the PostgreSQL store                  pgschema.py  its schema, migrations, connections
    pgrows.py    its SQL for rows                      pgindex.py   its vector column, IVFFlat / HNSW
    pgimport.py  copying a local knowledge base in     open_store   the backend for a location
"""

from __future__ import annotations

from pathlib import Path

from rag_core.store.local import DB_NAME, LOCK_NAME, SCHEMA_VERSION, LocalStore
from rag_core.store.protocol import (
    AmbiguousDocument,
    DocumentNotFound,
    DuplicateDocument,
    EmbedderMismatch,
    KnowledgeStore,
    StoreError,
)
from rag_core.store.vectors import ANN_TARGET_RECALL, DEFAULT_ANN_THRESHOLD, build_ivf, ivf_lists, tune_nprobe
from rag_core.types import IndexInfo, PgIndexKind

__all__ = [
    "ANN_TARGET_RECALL",
    "DB_NAME",
    "DEFAULT_ANN_THRESHOLD",
    "LOCK_NAME",
    "SCHEMA_VERSION",
    "AmbiguousDocument",
    "DocumentNotFound",
    "DuplicateDocument",
    "EmbedderMismatch",
    "IndexInfo",
    "KnowledgeStore",
    "LocalStore",
    "StoreError",
    "build_ivf",
    "is_database_url",
    "ivf_lists",
    "open_store",
    "tune_nprobe",
]


def is_database_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def open_store(
    location: str | Path,
    database_url: str | None = None,
    *,
    ann_threshold: int = DEFAULT_ANN_THRESHOLD,
    cache_root: str | Path | None = None,
    pg_index: PgIndexKind = "ivfflat",
) -> KnowledgeStore:
    """The store at `location`, a directory or a postgresql:// URL; or, when `database_url` is given, the
    PostgreSQL store there with its local caches (BM25, map layouts) under the directory `location`.

    A `PostgresStore` given a URL alone caches under `cache_root`, or a temp directory when None."""
    if database_url is not None:
        location, cache_root = database_url, cache_root or location
    if is_database_url(location):
        from rag_core.store.postgres import PostgresStore  # psycopg is loaded only when it is used

        return PostgresStore(str(location), cache_root=cache_root, ann_threshold=ann_threshold, index=pg_index)
    return LocalStore(location, ann_threshold=ann_threshold)
