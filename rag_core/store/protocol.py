"""The storage contract: what every knowledge-store backend offers, and the errors it raises.

A store holds documents as rows (the document, its pages, its chunks with their texts and norms) and
one unit vector per chunk, all of one embedder. It never parses, chunks or embeds: a `NewDocument`
arrives complete. Every write is atomic and moves the store to its next generation; a reader sees the
state before a write or after it, never part of one.

Besides the contract, this module holds the parts of a store that do not depend on where the rows
live: resolving a user's reference to a document, the embedder check's message, the key/value meta
rows that record a generation's `IndexInfo`, and the records a knowledge base is copied from one
backend to another with (`StoreExport`, `StoredVersion`, `ImportReport`: `python -m rag_core migrate`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, get_args, runtime_checkable

from rag_core.types import (
    Chunk,
    ChunkRow,
    DocumentInfo,
    FloatArray,
    IndexInfo,
    IndexKind,
    IntArray,
    NewDocument,
    Page,
)

NEW_DATA_DIR = "re-index into a new data dir (--data-dir NEW_DIR, then ingest the documents again)"


class StoreError(Exception):
    """Base class of knowledge-store errors."""


class EmbedderMismatch(StoreError):
    """The store was built with another embedder; mixing vector spaces would give garbage rankings."""


class DocumentNotFound(StoreError):
    pass


class AmbiguousDocument(StoreError):
    pass


class DuplicateDocument(StoreError):
    def __init__(self, existing: DocumentInfo):
        super().__init__(f"already in the knowledge base as {existing.name!r} ({existing.document_id})")
        self.existing = existing


@runtime_checkable
class KnowledgeStore(Protocol):
    """Rows and vectors of one knowledge base. Safe to share between threads."""

    @property
    def embedder_name(self) -> str | None:
        """The embedder every stored vector came from; None while the store holds no document."""
        ...

    @property
    def dimension(self) -> int | None:
        """The stored vectors' dimension; None while the store holds no document."""
        ...

    @property
    def size(self) -> int:
        """Number of stored vectors (= chunks)."""
        ...

    @property
    def cache_dir(self) -> Path:
        """A local directory where derived caches (BM25 indexes, map layouts) may be written."""
        ...

    def generation(self) -> int:
        """A number that moves on with every write; 0 for a store never written to."""
        ...

    def check_embedder(self, name: str, dimension: int | None = None) -> None:
        """Raise `EmbedderMismatch` unless the store holds no vectors or was built with `name`."""
        ...

    def index_info(self) -> IndexInfo:
        """The kind of index serving searches now, its size and its measured recall."""
        ...

    # ---------------------------------------------------------------- reading

    def documents(self, *, all_versions: bool = False) -> list[DocumentInfo]:
        """Every current document, oldest first; with `all_versions`, the replaced versions too."""
        ...

    def find_by_sha(self, sha256: str) -> DocumentInfo | None:
        """The stored version (current or not) with these bytes."""
        ...

    def resolve(self, ref: str) -> DocumentInfo:
        """A document by id, id prefix (>= 6 digits), SHA-256, or file name (its current version); see
        `resolve_ref`. Old versions are found by id or hash."""
        ...

    def near_duplicates(self, texts: Sequence[str], *, threshold: float) -> list[tuple[DocumentInfo, float]]:
        """The current documents that hold at least `threshold` of these chunk texts word for word, with
        that share, highest first: a copy of a document under another name."""
        ...

    def chunks_by_ids(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """The rows of the given chunks that exist, by chunk id."""
        ...

    def norms(self, ids: Sequence[int] | IntArray) -> FloatArray:
        """The original (pre-normalisation) norms of the given chunks, in order; 1.0 for unknown ids."""
        ...

    def all_chunks(self) -> list[ChunkRow]:
        """Every chunk row, in id order."""
        ...

    def chunk_texts(self) -> tuple[int, list[int], list[str]]:
        """(generation, chunk ids, texts as indexed: context line, then the chunk text) read together: a
        consistent snapshot to index."""
        ...

    def vectors(self, ids: Sequence[int] | None = None) -> tuple[IntArray, FloatArray]:
        """(chunk ids, unit vectors) of the given chunks in the order asked, unknown ids left out; or
        of all of them in id order."""
        ...

    def search(self, query: FloatArray, k: int, *, exact: bool = False) -> tuple[FloatArray, IntArray]:
        """Inner-product top-k for unit query vectors of shape (n, dim): (scores, chunk ids), -1 = none.
        An approximate index may answer unless `exact`."""
        ...

    def original(self, doc: DocumentInfo) -> bytes | None:
        """The uploaded bytes of a stored document (None if they are missing)."""
        ...

    # ---------------------------------------------------------------- writing

    def add(self, doc: NewDocument) -> DocumentInfo:
        """Store one document atomically. If a current document has its name, the new one is its next
        version and replaces it in the same write (the old one is kept, not searched). Raises
        `DuplicateDocument` if the same bytes (by SHA-256) are in already, current or not,
        `EmbedderMismatch` if the store holds another embedder's vectors."""
        ...

    def restore(self, ref: str) -> DocumentInfo:
        """Make an old version current again, atomically retiring the version current now. Raises
        `StoreError` if it is current already."""
        ...

    def delete(self, ref: str) -> DocumentInfo:
        """Delete a document (by id, name or hash, as `resolve`): its rows, its vectors, its original,
        and, for a current document, its old versions. The last document's deletion forgets the
        embedder."""
        ...


@dataclass(frozen=True)
class StoredVersion:
    """One stored version of a document with everything kept of it, to copy it into another store as it
    is: its record (id, version, `replaces`, `added_at`, current or not), its pages, its chunks with their
    ids, norms and unit vectors (`Chunk.tokens` is not stored: 0), and its original bytes (None if they
    are missing)."""

    info: DocumentInfo
    pages: list[Page]
    chunk_ids: IntArray
    chunks: list[Chunk]
    norms: FloatArray
    vectors: FloatArray
    original: bytes | None


@dataclass(frozen=True)
class StoreExport:
    """A whole knowledge base, read for copying: its embedder and dimension (None when it is empty), the
    next chunk id it would give, every version of every document (oldest first), and `read`, which
    returns one of them complete. The source holds its writers off while an export is open."""

    embedder: str | None
    dimension: int | None
    next_chunk_id: int
    documents: list[DocumentInfo]
    read: Callable[[DocumentInfo], StoredVersion]


@dataclass(frozen=True)
class ImportReport:
    """What a copy of a knowledge base into another store did. `already` when the target held exactly
    these document versions before, so nothing was copied."""

    documents: int
    current: int
    chunks: int
    archived_chunks: int
    missing_originals: int
    embedder: str | None
    dimension: int | None
    already: bool = False


def resolve_ref(docs: Sequence[DocumentInfo], ref: str) -> DocumentInfo:
    """The document `ref` names among `docs`: by id or SHA-256, then by a unique file name, then by a
    unique id prefix of at least 6 digits."""
    exact = [d for d in docs if ref in (d.document_id, d.sha256)]
    if exact:
        return exact[0]
    # A name stands for its current version; an older one is named by its id.
    by_name = [d for d in docs if d.name == ref and d.current] or [d for d in docs if d.name == ref]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        ids = ", ".join(d.document_id for d in by_name)
        raise AmbiguousDocument(f"{len(by_name)} documents are named {ref!r}; give one of the ids: {ids}")
    prefixed = [d for d in docs if len(ref) >= 6 and d.document_id.startswith(ref.lower())]
    if len(prefixed) == 1:
        return prefixed[0]
    raise DocumentNotFound(f"no document with id or name {ref!r}; list them with `python -m rag_core docs`")


def check_recorded_embedder(
    where: str,
    recorded: str | None,
    recorded_dim: int | None,
    name: str,
    dimension: int | None,
    *,
    start_afresh: str = NEW_DATA_DIR,
) -> None:
    """Raise `EmbedderMismatch` unless nothing is recorded or the record matches `name` (and `dimension`).
    `start_afresh` tells how to begin a new knowledge base with this backend."""
    if recorded is None:
        return
    if recorded != name or (dimension is not None and recorded_dim != dimension):
        asked = name if dimension is None else f"{name} ({dimension}-d)"
        raise EmbedderMismatch(
            f"this knowledge base ({where}) was built with {recorded} ({recorded_dim}-d), "
            f"but the embedder asked for is {asked}. Vectors of two models cannot be "
            f"mixed: use the recorded embedder (RAG_EMBEDDER={recorded}), or {start_afresh}"
        )


def index_meta(info: IndexInfo) -> dict[str, str]:
    """The meta rows that record `info` beside its generation."""
    return {
        "index_kind": info.kind,
        "index_size": str(info.size),
        "ann_nlist": str(info.nlist),
        "ann_nprobe": str(info.nprobe),
        "ann_ef_search": str(info.ef_search),
        "ann_recall_at_10": f"{info.recall_at_10:.4f}",
        "ann_trained_size": str(info.trained_size),
    }


def index_info_of(meta: dict[str, str]) -> IndexInfo:
    """The `IndexInfo` recorded in meta rows (an exact, empty index when none is)."""
    recorded = meta.get("index_kind")
    kind: IndexKind = next((k for k in get_args(IndexKind) if k == recorded), "flat")
    return IndexInfo(
        kind=kind,
        size=int(meta.get("index_size", "0")),
        nlist=int(meta.get("ann_nlist", "0")),
        nprobe=int(meta.get("ann_nprobe", "0")),
        recall_at_10=float(meta.get("ann_recall_at_10", "1")),
        trained_size=int(meta.get("ann_trained_size", "0")),
        ef_search=int(meta.get("ann_ef_search", "0")),
    )
