"""Copying a whole knowledge base into a PostgreSQL database, as it is: `PostgresStore.import_from`,
behind `python -m rag_core migrate --to URL`.

Why no re-embedding: the source's vectors are copied as they are (the local store's current versions
from its FAISS index, replaced ones from their archive), with the chunk ids, norms, contexts, pages
(labels, OCR flags), originals and every version's record (id, version, `replaces`, `added_at`), so
searches on the copy return what they returned on the source, and an old version can be restored there.

Why all or nothing: the copy runs inside one write of the target (one transaction under its writers'
lock): a failure or a lost connection half-way leaves the database as it was, and the migration can
simply be run again.

What the target may hold: nothing, or exactly these document versions (a migration run again after
one that succeeded: nothing is copied, and the report says `already`). A database holding other
documents is refused, since merging two knowledge bases would mix their histories and perhaps their
embedders; the message says what to do.
"""

from __future__ import annotations

from collections.abc import Callable

import rag_core.store.pgindex as pgindex
import rag_core.store.pgrows as pgrows
from rag_core.store.pgschema import Conn, meta, set_meta
from rag_core.store.protocol import ImportReport, StoreError, StoreExport
from rag_core.types import DocumentInfo


class AlreadyThere(Exception):
    """The target holds exactly the source's document versions; raised to end the write unchanged."""

    def __init__(self, report: ImportReport):
        super().__init__("already copied")
        self.report = report


def _key(doc: DocumentInfo) -> tuple[str, str, int, bool]:
    return doc.document_id, doc.sha256, doc.version, doc.current


def copy_into(
    db: Conn, where: str, source: StoreExport, progress: Callable[[int, int], None] | None = None
) -> ImportReport:
    """Copy `source` into the database behind `db`, inside the caller's write transaction; `where` names
    the database in messages. `progress(done, total)` follows the versions copied."""
    current = sum(d.current for d in source.documents)
    held = pgrows.documents(db)
    if held:
        embedder = meta(db, ("embedder",)).get("embedder")
        if sorted(map(_key, held)) == sorted(map(_key, source.documents)) and embedder == source.embedder:
            chunks = sum(d.chunks for d in held if d.current)
            archived = sum(d.chunks for d in held if not d.current)
            raise AlreadyThere(
                ImportReport(len(held), current, chunks, archived, 0, source.embedder, source.dimension, True)
            )
        raise StoreError(
            f"{where} already holds {len(held)} document version(s) that are not this knowledge base's: "
            "migrate into an empty database (create a new one and name it in --to), or delete those "
            "documents there first (python -m rag_core delete ID --database-url URL)"
        )
    if source.embedder is None or source.dimension is None:
        return ImportReport(0, 0, 0, 0, 0, None, None)
    recorded = meta(db, ("dimension", "next_chunk_id"))
    if "dimension" not in recorded:
        pgindex.set_dimension(db, source.dimension)
    chunks = archived = missing = 0
    next_id = source.next_chunk_id
    for done, doc in enumerate(source.documents, start=1):
        stored = source.read(doc)
        if stored.vectors.shape != (len(stored.chunk_ids), source.dimension):
            raise StoreError(
                f"{doc.name!r} ({doc.document_id}) has vectors of shape {stored.vectors.shape} in the source, "
                f"not {source.dimension}-d ones for its {len(stored.chunk_ids)} chunks: nothing was copied"
            )
        pgrows.import_version(db, stored)
        chunks += len(stored.chunk_ids) if doc.current else 0
        archived += 0 if doc.current else len(stored.chunk_ids)
        missing += stored.original is None
        next_id = max(next_id, int(stored.chunk_ids.max(initial=0)) + 1)
        if progress is not None:
            progress(done, len(source.documents))
    set_meta(db, "embedder", source.embedder)
    set_meta(db, "dimension", str(source.dimension))
    set_meta(db, "next_chunk_id", str(max(next_id, int(recorded.get("next_chunk_id", "1")))))
    return ImportReport(len(source.documents), current, chunks, archived, missing, source.embedder, source.dimension)
