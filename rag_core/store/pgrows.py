"""The PostgreSQL store's SQL for documents, their versions, chunks and originals, as functions of a
connection.

Why apart from `PostgresStore`: as with the local store's `rows`, the class says *when* things happen
(the advisory lock, the one transaction a write commits in, generations); these functions say *what*
the rows are. Each leaves transactions to its caller, so a write composes several of them atomically.
The semantics are the local store's: a replaced version's chunks move, with their vectors, to
`archived_chunks`, so the searched table holds current versions only and restoring is a move back.

PostgreSQL's text type cannot hold NUL characters, which SQLite's can: they are stored as U+FFFD, one
character for one, so chunk offsets still point at the same places.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pgvector import Vector

from rag_core.store.pgschema import Conn, execute_many
from rag_core.store.protocol import StoredVersion
from rag_core.store.rows import document_of
from rag_core.types import ChunkRow, DocumentInfo, FloatArray, IntArray, NewDocument

DOCUMENTS = "SELECT id, name, sha256, kind, bytes, pages, chunks, added_at, version, current, replaces FROM documents"
CHUNK_COLUMNS = 'id, document_id, page, start, "end", text, norm, context, embedding'
CHUNKS = (
    'SELECT c.id, c.document_id, d.name, c.page, c.start, c."end", c.text, c.norm, c.context, p.label, '
    "COALESCE(p.ocr, FALSE) "
    "FROM chunks c JOIN documents d ON d.id = c.document_id "
    "LEFT JOIN pages p ON p.document_id = c.document_id AND p.page = c.page"
)


def text(value: str) -> str:
    return value.replace("\x00", "\ufffd")


def as_array(value: Any) -> FloatArray:
    """A vector column's value as float32: a pgvector `Vector` (binary results) or an array (text ones)."""
    return np.asarray(value.to_numpy() if isinstance(value, Vector) else value, dtype=np.float32)


def documents(db: Conn, where: str = "", args: Sequence[Any] = ()) -> list[DocumentInfo]:
    """Documents matching a WHERE clause, oldest first (by time, then by insertion)."""
    sql = f"{DOCUMENTS}{f' WHERE {where}' if where else ''} ORDER BY added_at, seq"
    return [document_of(r) for r in db.execute(sql.encode(), args).fetchall()]


def by_sha(db: Conn, sha256: str) -> DocumentInfo | None:
    found = documents(db, "sha256 = %s", (sha256,))
    return found[0] if found else None


def current_named(db: Conn, name: str) -> DocumentInfo | None:
    """The current document called `name`."""
    found = documents(db, "name = %s AND current", (text(name),))
    return found[-1] if found else None


def last_version(db: Conn, name: str) -> int:
    row = db.execute("SELECT COALESCE(MAX(version), 0) FROM documents WHERE name = %s", (text(name),)).fetchone()
    return 0 if row is None else int(row[0])


def insert_document(db: Conn, info: DocumentInfo, doc: NewDocument, ids: IntArray) -> None:
    """The rows of a new current document: the document, its original, its pages, its chunks with their
    norms and unit vectors (a new document is a current version stored as it is)."""
    version = StoredVersion(info, doc.pages, ids, doc.chunks, doc.norms, doc.vectors, doc.data)
    import_version(db, version)


def import_version(db: Conn, stored: StoredVersion) -> None:
    """The rows of a version copied from another store as it was there: its record (id, version,
    `replaces`, `added_at`, current or not), original, pages and chunks with their ids, into the searched
    table for a current version and into `archived_chunks` for a replaced one."""
    info = stored.info
    db.execute(
        "INSERT INTO documents(id, name, sha256, kind, bytes, pages, chunks, added_at, version, current, replaces) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (info.document_id, text(info.name), info.sha256, info.kind, info.bytes, info.pages, info.chunks,
         info.added_at, info.version, info.current, info.replaces),
    )  # fmt: skip
    if stored.original is not None:
        db.execute("INSERT INTO originals(document_id, data) VALUES (%s, %s)", (info.document_id, stored.original))
    execute_many(
        db,
        "INSERT INTO pages(document_id, page, text, label, ocr) VALUES (%s, %s, %s, %s, %s)",
        [(info.document_id, p.number, text(p.text), None if p.label is None else text(p.label), p.ocr)
         for p in stored.pages],
    )  # fmt: skip
    table = "chunks" if info.current else "archived_chunks"
    vectors = np.ascontiguousarray(stored.vectors, dtype=np.float32)
    execute_many(
        db,
        f"INSERT INTO {table}({CHUNK_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (int(i), info.document_id, c.page, c.start, c.end, text(c.text), float(n), text(c.context), v)
            for i, c, n, v in zip(stored.chunk_ids, stored.chunks, stored.norms, vectors, strict=True)
        ],
    )


def _move_chunks(db: Conn, source: str, target: str, document_id: str) -> None:
    db.execute(
        f"INSERT INTO {target}({CHUNK_COLUMNS}) SELECT {CHUNK_COLUMNS} FROM {source} WHERE document_id = %s".encode(),
        (document_id,),
    )
    db.execute(f"DELETE FROM {source} WHERE document_id = %s".encode(), (document_id,))


def archive(db: Conn, document_id: str) -> None:
    """Move a document's chunks, with their vectors, out of the searched table; it stops being current."""
    _move_chunks(db, "chunks", "archived_chunks", document_id)
    db.execute("UPDATE documents SET current = FALSE WHERE id = %s", (document_id,))


def unarchive(db: Conn, document_id: str) -> None:
    """Move an archived version's chunks back into the searched table; it is current again."""
    _move_chunks(db, "archived_chunks", "chunks", document_id)
    db.execute("UPDATE documents SET current = TRUE WHERE id = %s", (document_id,))


def remove_documents(db: Conn, document_ids: Sequence[str]) -> None:
    """Every row of these versions: the cascade takes their chunks (searched or archived), pages and
    originals."""
    db.execute("DELETE FROM documents WHERE id = ANY(%s)", (list(document_ids),))


def original(db: Conn, sha256: str) -> bytes | None:
    row = db.execute(
        "SELECT o.data FROM originals o JOIN documents d ON d.id = o.document_id WHERE d.sha256 = %s", (sha256,)
    ).fetchone()
    return None if row is None else bytes(row[0])


def chunk_rows(db: Conn, ids: Sequence[int] | None = None) -> list[ChunkRow]:
    """The rows of the given chunks that exist, or of every chunk, in id order."""
    if ids is None:
        found = db.execute(f"{CHUNKS} ORDER BY c.id".encode()).fetchall()
    else:
        found = db.execute(f"{CHUNKS} WHERE c.id = ANY(%s) ORDER BY c.id".encode(), ([int(i) for i in ids],)).fetchall()
    return [ChunkRow(int(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5]), str(r[6]), float(r[7]),
                     str(r[8]), None if r[9] is None else str(r[9]), bool(r[10])) for r in found]  # fmt: skip


def norms(db: Conn, ids: Sequence[int]) -> dict[int, float]:
    found = db.execute("SELECT id, norm FROM chunks WHERE id = ANY(%s)", ([int(i) for i in ids],)).fetchall()
    return {int(i): float(n) for i, n in found}


def vectors(db: Conn, ids: Sequence[int] | None, dimension: int) -> tuple[IntArray, FloatArray]:
    """(chunk ids, unit vectors) of the given chunks in the order asked (unknown ones left out), or of
    every chunk in id order."""
    with db.cursor(binary=True) as cur:  # binary: vectors arrive as float32 without text parsing
        if ids is None:
            found = cur.execute("SELECT id, embedding FROM chunks ORDER BY id").fetchall()
        else:
            found = cur.execute(
                "SELECT id, embedding FROM chunks WHERE id = ANY(%s)", ([int(i) for i in ids],)
            ).fetchall()
    by_id = {int(i): v for i, v in found}
    order = [int(i) for i, _ in found] if ids is None else [int(i) for i in ids if int(i) in by_id]
    if not order:
        return np.zeros(0, dtype=np.int64), np.zeros((0, dimension), dtype=np.float32)
    return np.asarray(order, dtype=np.int64), np.vstack([as_array(by_id[i]) for i in order])


def near_duplicates(db: Conn, texts: Sequence[str], threshold: float) -> list[tuple[DocumentInfo, float]]:
    """The current documents holding at least `threshold` of `texts` word for word, with that share,
    highest first. The caller reads in one snapshot, so the chunks and the documents belong together."""
    if not texts:
        return []
    asked = sorted({text(t) for t in texts})
    shared: dict[str, set[str]] = {}
    found = db.execute(
        "SELECT document_id, text FROM chunks WHERE md5(text) = ANY(SELECT md5(t) FROM unnest(%s::text[]) t) "
        "AND text = ANY(%s::text[])",
        (asked, asked),
    ).fetchall()
    for doc_id, chunk_text in found:
        shared.setdefault(str(doc_id), set()).add(str(chunk_text))
    current = {d.document_id: d for d in documents(db, "current")}
    shares = [
        (current[i], sum(text(t) in same for t in texts) / len(texts)) for i, same in shared.items() if i in current
    ]
    return sorted(((d, f) for d, f in shares if f >= threshold), key=lambda df: -df[1])
