"""The local store's SQL for documents, their versions and their chunks, as functions of a connection.

Why apart from `LocalStore`: the store class says *when* things happen (locks, generations, the one
transaction a write commits in); these functions say *what* the rows are. Each takes an open
connection and leaves transactions to its caller, so a write composes several of them atomically.

Versions: a replaced version's chunks move to `archived_chunks` with their vectors (float32 bytes),
so restoring it is a move back, no re-embedding, and the searched tables hold current versions only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from rag_core.types import Chunk, DocumentInfo, FloatArray, IntArray, NewDocument, Page

SQL_BATCH = 30_000  # below SQLite's smallest compiled-in limit on host parameters (32,766)
DOCUMENTS = "SELECT id, name, sha256, kind, bytes, pages, chunks, added_at, version, current, replaces FROM documents"
CHUNK_COLUMNS = "id, document_id, page, start, end, text, norm, context"
CHUNKS = (
    "SELECT c.id, c.document_id, d.name, c.page, c.start, c.end, c.text, c.norm, c.context, p.label, "
    "COALESCE(p.ocr, 0) "
    "FROM chunks c JOIN documents d ON d.id = c.document_id "
    "LEFT JOIN pages p ON p.document_id = c.document_id AND p.page = c.page"
)
# Created after any migration, since it indexes a column that older databases gain there.
VERSION_SCHEMA = """
CREATE TABLE IF NOT EXISTS archived_chunks (
    id INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    norm REAL NOT NULL,
    context TEXT NOT NULL DEFAULT '',
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS archived_chunks_document ON archived_chunks(document_id);
CREATE INDEX IF NOT EXISTS documents_name ON documents(name, current);
"""


def document_of(row: Sequence[Any]) -> DocumentInfo:
    """A `documents` row as a record. Text files stored before kinds told Markdown from plain text
    say "text"; their name tells which they are."""
    doc_id, name, sha, kind, size, pages, chunks, added_at, version, current, replaces = row
    if kind == "text":
        kind = "md" if str(name).lower().endswith((".md", ".markdown")) else "txt"
    return DocumentInfo(
        str(doc_id), str(name), str(sha), kind, int(size), int(pages), int(chunks), str(added_at),
        int(version), bool(current), None if replaces is None else str(replaces),
    )  # fmt: skip


def documents(db: sqlite3.Connection, where: str = "", args: Sequence[Any] = ()) -> list[DocumentInfo]:
    """Documents matching a WHERE clause, oldest first (by time, then by insertion)."""
    sql = f"{DOCUMENTS}{f' WHERE {where}' if where else ''} ORDER BY added_at, rowid"
    return [document_of(r) for r in db.execute(sql, args)]


def current_named(db: sqlite3.Connection, name: str) -> DocumentInfo | None:
    """The current document called `name` (the newest, should a store from before versions hold two)."""
    found = documents(db, "name = ? AND current = 1", (name,))
    return found[-1] if found else None


def last_version(db: sqlite3.Connection, name: str) -> int:
    return int(db.execute("SELECT COALESCE(MAX(version), 0) FROM documents WHERE name = ?", (name,)).fetchone()[0])


def chunk_ids(db: sqlite3.Connection, document_id: str) -> IntArray:
    rows = db.execute("SELECT id FROM chunks WHERE document_id = ? ORDER BY id", (document_id,)).fetchall()
    return np.asarray([int(r[0]) for r in rows], dtype=np.int64)


def new_document_info(doc: NewDocument, replaced: DocumentInfo | None, version: int) -> DocumentInfo:
    """The record of `doc` stored now, as the next version of `replaced` (or a first version)."""
    return DocumentInfo(
        document_id=doc.document_id,
        name=doc.name,
        sha256=doc.sha256,
        kind=doc.kind,
        bytes=len(doc.data),
        pages=doc.page_count,
        chunks=len(doc.chunks),
        added_at=datetime.now(UTC).isoformat(timespec="seconds"),
        version=1 if replaced is None else version,
        replaces=None if replaced is None else replaced.document_id,
    )


def insert_document(db: sqlite3.Connection, info: DocumentInfo, doc: NewDocument, ids: IntArray) -> None:
    """The rows of a new current document: the document, its pages, its chunks with their norms."""
    db.execute(
        "INSERT INTO documents(id, name, sha256, kind, bytes, pages, chunks, added_at, version, current, replaces) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
        (info.document_id, info.name, info.sha256, info.kind, info.bytes, info.pages, info.chunks, info.added_at,
         info.version, info.replaces),
    )  # fmt: skip
    db.executemany(
        "INSERT INTO pages(document_id, page, text, label, ocr) VALUES (?, ?, ?, ?, ?)",
        [(info.document_id, p.number, p.text, p.label, int(p.ocr)) for p in doc.pages],
    )
    db.executemany(
        f"INSERT INTO chunks({CHUNK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (int(i), info.document_id, c.page, c.start, c.end, c.text, float(n), c.context)
            for i, c, n in zip(ids, doc.chunks, doc.norms, strict=True)
        ],
    )


def archive(db: sqlite3.Connection, document_id: str, vectors: tuple[IntArray, FloatArray] | None) -> None:
    """Move a document's chunks, with their vectors (`vectors`: the ids and unit vectors the index
    holds for them), out of the searched tables; the document stops being current."""
    by_id = {} if vectors is None else {int(i): v for i, v in zip(vectors[0], vectors[1], strict=True)}
    rows = db.execute(f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE document_id = ?", (document_id,)).fetchall()
    missing = [int(r[0]) for r in rows if int(r[0]) not in by_id]
    if missing:  # a vector file out of step with the rows: refuse rather than archive a version unrestorable
        raise sqlite3.IntegrityError(f"the vectors of {len(missing)} chunks of {document_id} are missing")
    db.executemany(
        f"INSERT INTO archived_chunks({CHUNK_COLUMNS}, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*r, np.asarray(by_id[int(r[0])], dtype=np.float32).tobytes()) for r in rows],
    )
    db.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
    db.execute("UPDATE documents SET current = 0 WHERE id = ?", (document_id,))


def unarchive(db: sqlite3.Connection, document_id: str) -> None:
    """Move an archived version's chunks back into the searched tables; it is current again."""
    db.execute(
        f"INSERT INTO chunks({CHUNK_COLUMNS}) SELECT {CHUNK_COLUMNS} FROM archived_chunks WHERE document_id = ?",
        (document_id,),
    )
    db.execute("DELETE FROM archived_chunks WHERE document_id = ?", (document_id,))
    db.execute("UPDATE documents SET current = 1 WHERE id = ?", (document_id,))


def archived_vectors(db: sqlite3.Connection, document_id: str, dimension: int) -> tuple[IntArray, FloatArray]:
    """(chunk ids, unit vectors) of an archived version, in id order."""
    rows = db.execute("SELECT id, vector FROM archived_chunks WHERE document_id = ? ORDER BY id", (document_id,))
    pairs = [(int(i), np.frombuffer(v, dtype=np.float32)) for i, v in rows]
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros((0, dimension), dtype=np.float32)
    return np.asarray([i for i, _ in pairs], dtype=np.int64), np.vstack([v for _, v in pairs])


def pages_of(db: sqlite3.Connection, document_id: str) -> list[Page]:
    """A stored version's pages, in order, with their labels and OCR flags."""
    found = db.execute(
        "SELECT page, text, label, COALESCE(ocr, 0) FROM pages WHERE document_id = ? ORDER BY page", (document_id,)
    ).fetchall()
    return [Page(int(n), str(t), None if label is None else str(label), bool(ocr)) for n, t, label, ocr in found]


def chunks_of(
    db: sqlite3.Connection, document_id: str, *, archived: bool
) -> tuple[IntArray, list[Chunk], FloatArray, list[bytes]]:
    """(ids, chunks, norms, vector blobs) of a version's chunks in id order: of the searched table, or of
    `archived_chunks` with their vectors as float32 bytes (no blobs for the searched table, whose vectors
    are in the index)."""
    if archived:
        sql = f"SELECT {CHUNK_COLUMNS}, vector FROM archived_chunks WHERE document_id = ? ORDER BY id"
    else:
        sql = f"SELECT {CHUNK_COLUMNS}, NULL FROM chunks WHERE document_id = ? ORDER BY id"
    found = db.execute(sql, (document_id,)).fetchall()
    ids = np.asarray([int(r[0]) for r in found], dtype=np.int64)
    chunks = [Chunk(int(r[2]), int(r[3]), int(r[4]), str(r[5]), 0, str(r[7])) for r in found]
    return ids, chunks, np.asarray([float(r[6]) for r in found], dtype=np.float32), [bytes(r[8] or b"") for r in found]


def remove_document(db: sqlite3.Connection, document_id: str) -> None:
    """Every row of one version: its chunks (searched or archived), pages and the document."""
    for table in ("chunks", "archived_chunks", "pages"):
        db.execute(f"DELETE FROM {table} WHERE document_id = ?", (document_id,))
    db.execute("DELETE FROM documents WHERE id = ?", (document_id,))


def near_duplicates(db: sqlite3.Connection, texts: Sequence[str], threshold: float) -> list[tuple[DocumentInfo, float]]:
    """The current documents holding at least `threshold` of `texts` word for word, with that share,
    highest first. One read transaction, so the chunks and the documents belong together."""
    if not texts:
        return []
    shared: dict[str, set[str]] = {}
    db.execute("BEGIN")
    for part in batches(sorted(set(texts))):
        sql = f"SELECT document_id, text FROM chunks WHERE text IN ({','.join('?' * len(part))})"
        for doc_id, text in db.execute(sql, part):
            shared.setdefault(str(doc_id), set()).add(str(text))
    current = {d.document_id: d for d in documents(db, "current = 1")}
    db.execute("COMMIT")
    shares = [(current[i], sum(t in same for t in texts) / len(texts)) for i, same in shared.items() if i in current]
    return sorted(((d, f) for d, f in shares if f >= threshold), key=lambda df: -df[1])


def batches(values: Sequence[Any]) -> Iterator[list[Any]]:
    for s in range(0, len(values), SQL_BATCH):
        yield list(values[s : s + SQL_BATCH])


def rows_by_ids(db: sqlite3.Connection, sql: str, ids: Sequence[int] | IntArray) -> list[Any]:
    """The rows of `sql` (whose `{marks}` stands for the id list) for every id, in batches SQLite accepts."""
    rows: list[Any] = []
    for part in batches([int(i) for i in ids]):
        rows.extend(db.execute(sql.format(marks=",".join("?" * len(part))), part).fetchall())
    return rows
