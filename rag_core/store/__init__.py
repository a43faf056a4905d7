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

    protocol.py  the contract and its errors          local.py    SQLite rows, originals, the writer lock
    vectors.py   FAISS generations and IVF upkeep      open_store  the backend for a location
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
from rag_core.types import IndexInfo

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
    "ivf_lists",
    "open_store",
    "tune_nprobe",
]


def open_store(data_dir: str | Path, *, ann_threshold: int = DEFAULT_ANN_THRESHOLD) -> KnowledgeStore:
    """The store kept at `data_dir`: today always a `LocalStore` in that directory."""
    return LocalStore(data_dir, ann_threshold=ann_threshold)
