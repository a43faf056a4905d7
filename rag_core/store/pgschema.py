"""The PostgreSQL store's schema, its migrations, and the connections it keeps open.

The schema is versioned in the `meta` table (`schema_version`). `migrate` runs on every start, in one
transaction under an advisory lock, so two app servers starting together neither race nor apply a step
twice: each step in `MIGRATIONS` above the recorded version runs, then the new version is recorded. A
database written by a newer PolicyPal is refused rather than misread.

    meta             key/value: schema version, store id, embedder, dimension, generation, next chunk
                     id, index info (kind, size, lists, probes or ef_search, measured recall)
    documents        every version of every document; `seq` keeps insertion order
    originals        the uploaded bytes (bytea), one row per document
    pages            page texts, printed labels and whether OCR read them
    chunks           the searched chunks of current versions, each with its unit vector (pgvector); an
                     IVFFlat or HNSW index (inner product) once the store reaches the threshold
    archived_chunks  the chunks of replaced versions with their vectors, never searched
    jobs, job_files  ingestion jobs and their files, the uploaded bytes (bytea) until a job is done
                     (rag_core.pgjobs; migration 3)
    question_log     answered questions with their citations and feedback (rag_core.insights)

Connections are pooled (`Pool`): opening one costs milliseconds, more than a search. A connection lost
while in use (the server restarted, an administrator ended it, the network dropped) becomes
`ConnectionLost`, and the pool forgets every idle connection with it, since they most likely went the
same way; the next call opens a fresh one. Connection failures are translated into what to check
(`connect`): nothing listening, a refused password, a database that does not exist.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from pgvector.psycopg import register_vector
from psycopg.rows import TupleRow

from rag_core.store.protocol import StoreError

Conn = psycopg.Connection[TupleRow]

# Transaction-level advisory lock keys: one writer at a time across processes, one migration at a time.
WRITE_LOCK = 0x506F6C5077
MIGRATE_LOCK = 0x506F6C504D

# Creating the extension needs a role allowed to (the database owner, for pgvector >= 0.5 where it is
# trusted; else a superuser). The error it raises is translated in `migrate`.
_EXTENSION = "CREATE EXTENSION IF NOT EXISTS vector"

# (version, SQL): each step brings the schema from the previous version to its own.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE documents (
            id TEXT PRIMARY KEY,
            seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            bytes BIGINT NOT NULL,
            pages INTEGER NOT NULL,
            chunks INTEGER NOT NULL,
            added_at TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            current BOOLEAN NOT NULL DEFAULT TRUE,
            replaces TEXT
        );
        CREATE INDEX documents_name ON documents(name, current);
        CREATE TABLE originals (
            document_id TEXT PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
            data BYTEA NOT NULL
        );
        CREATE TABLE pages (
            document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            page INTEGER NOT NULL,
            text TEXT NOT NULL,
            label TEXT,
            PRIMARY KEY (document_id, page)
        );
        CREATE TABLE chunks (
            id BIGINT PRIMARY KEY,
            document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            page INTEGER NOT NULL,
            start INTEGER NOT NULL,
            "end" INTEGER NOT NULL,
            text TEXT NOT NULL,
            norm REAL NOT NULL,
            context TEXT NOT NULL DEFAULT '',
            embedding vector NOT NULL
        );
        CREATE INDEX chunks_document ON chunks(document_id);
        CREATE INDEX chunks_text ON chunks(md5(text));
        CREATE TABLE archived_chunks (LIKE chunks INCLUDING DEFAULTS);
        ALTER TABLE archived_chunks ADD PRIMARY KEY (id);
        ALTER TABLE archived_chunks ADD FOREIGN KEY (document_id) REFERENCES documents(id) ON DELETE CASCADE;
        CREATE INDEX archived_chunks_document ON archived_chunks(document_id);
        """,
    ),
    # 2: pages.ocr, whether a page's text was read by OCR (as the local store's pages.ocr)
    (2, "ALTER TABLE pages ADD COLUMN ocr BOOLEAN NOT NULL DEFAULT FALSE;"),
    (
        3,  # the upload queue: jobs and their files, bytes included (machines share no disk)
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            worker TEXT,
            heartbeat TIMESTAMPTZ,
            error TEXT
        );
        CREATE INDEX jobs_status ON jobs(status, seq);
        CREATE TABLE job_files (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            status TEXT NOT NULL,
            stage TEXT,
            done INTEGER NOT NULL DEFAULT 0,
            total INTEGER NOT NULL DEFAULT 0,
            result TEXT,
            data BYTEA,
            PRIMARY KEY (job_id, idx)
        );
        """,
    ),
    # 4: the question log (rag_core.insights): answered questions, their citations and the feedback on them
    (
        4,
        """
        CREATE TABLE question_log (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            asked_at TEXT NOT NULL,
            question TEXT NOT NULL,
            answer TEXT NOT NULL,
            grounded BOOLEAN NOT NULL,
            best_score DOUBLE PRECISION,
            citations TEXT NOT NULL,
            generation BIGINT NOT NULL,
            feedback TEXT,
            reason TEXT,
            feedback_at TEXT,
            user_name TEXT
        );
        CREATE INDEX question_log_asked ON question_log(asked_at);
        """,
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def redact(url: str) -> str:
    """The URL without its password, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class ConnectionLost(StoreError):
    """The connection to the database broke while it was in use; the next call opens a new one."""


def connect(url: str) -> Conn:
    """A new autocommit connection; transactions are opened explicitly where they are wanted."""
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as e:
        raise StoreError(connect_error(url, " ".join(str(e).split()))) from None
    except psycopg.ProgrammingError as e:  # libpq could not read the URL
        raise StoreError(
            f"the knowledge base URL {redact(url)} is not valid ({e}): write it as "
            "postgresql://user:password@host:port/database in RAG_DATABASE_URL (or --database-url)"
        ) from None


def connect_error(url: str, reason: str) -> str:
    """What to do about the server's `reason` for refusing a connection to `url`."""
    parts = urlsplit(url)
    query = dict(p.partition("=")[::2] for p in parts.query.split("&") if p)
    host = query.get("host") or parts.hostname or "localhost"
    where = host
    with contextlib.suppress(ValueError):  # a port that is not a number: libpq's message says so
        where = f"{host}:{query.get('port') or parts.port or 5432}"
    user = query.get("user") or parts.username or "(the default user)"
    database = parts.path.lstrip("/") or query.get("dbname") or user
    lowered = reason.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        advice = (
            f"the server at {where} refused user {user!r} with this password: correct the user and password "
            "in RAG_DATABASE_URL (or --database-url)"
        )
    elif "does not exist" in lowered and "database" in lowered:
        advice = (
            f"the server at {where} has no database {database!r}: create it (createdb -h HOST -p PORT -U USER "
            f"{database}, or CREATE DATABASE {database} as an administrator), or name an existing one in "
            "RAG_DATABASE_URL (or --database-url)"
        )
    elif "translate host name" in lowered or "name or service not known" in lowered:
        advice = f"the host name {host!r} is unknown: check the host in RAG_DATABASE_URL (or --database-url)"
    else:
        advice = (
            f"nothing answered at {where}: check that the PostgreSQL server runs there and that "
            "RAG_DATABASE_URL (or --database-url) names its host, port, database and user"
        )
    return f"cannot connect to the knowledge base at {redact(url)}: {advice} (server said: {reason})"


def migrate(db: Conn, migrations: list[tuple[int, str]] | None = None) -> int:
    """Create or upgrade the schema to the last of `migrations` (default `MIGRATIONS`) in one transaction;
    the schema version the database is at afterwards."""
    steps = MIGRATIONS if migrations is None else migrations
    target = steps[-1][0]
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        try:
            db.execute(_EXTENSION)
        except psycopg.errors.InsufficientPrivilege:
            raise StoreError(
                "the pgvector extension is not installed in this database and this user may not install it: "
                "ask its administrator to run CREATE EXTENSION vector in it"
            ) from None
        except (psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedFile):
            raise StoreError(
                f"the PostgreSQL server at {db.info.host}:{db.info.port} (database {db.info.dbname!r}) does not "
                "have the pgvector extension, which PolicyPal stores its vectors with: install pgvector on the "
                "server (the postgresql-NN-pgvector package), or choose a managed PostgreSQL that offers it, "
                "then start again"
            ) from None
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = 0 if row is None else int(row[0])
        if version > target:
            return version  # the caller refuses it, naming the version
        for number, sql in steps:
            if number > version:
                db.execute(sql.encode())  # bytes: several statements in one go, without parameters
                version = number
        set_meta(db, "schema_version", str(version))
        db.execute(
            "INSERT INTO meta(key, value) VALUES ('store_id', md5(random()::text || clock_timestamp()::text)) "
            "ON CONFLICT (key) DO NOTHING"
        )
    return version


def meta(db: Conn, keys: tuple[str, ...] | None = None) -> dict[str, str]:
    """The meta rows (all, or those with the given keys)."""
    if keys is None:
        found = db.execute("SELECT key, value FROM meta").fetchall()
    else:
        found = db.execute("SELECT key, value FROM meta WHERE key = ANY(%s)", (list(keys),)).fetchall()
    return {str(k): str(v) for k, v in found}


def set_meta(db: Conn, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta(key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


class Pool:
    """Open connections to one database, each used by one thread at a time.

    A connection comes back to the pool only when it is healthy and outside a transaction; a broken one
    (the server restarted, the network dropped) is closed and the next use opens a fresh one.
    """

    def __init__(self, url: str, *, keep: int = 8):
        self.url = url
        self._keep = keep
        self._idle: list[Conn] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[Conn]:
        """A connection for one use. One that breaks inside raises `ConnectionLost`, naming the database;
        the idle ones are dropped with it."""
        with self._lock:
            db = self._idle.pop() if self._idle else None
        if db is None or db.closed:
            db = connect(self.url)
            register_vector(db)
        try:
            yield db
        except (psycopg.OperationalError, psycopg.InterfaceError) as e:
            if not (db.broken or db.closed):
                raise
            self._drop_idle()
            raise ConnectionLost(
                f"the connection to the knowledge base at {redact(self.url)} was lost "
                f"({' '.join(str(e).split()) or type(e).__name__}); a write not yet committed was rolled back by "
                "the server, so nothing of it is stored. Try again; if it keeps happening, check the server and "
                "the network to it"
            ) from e
        finally:
            idle = psycopg.pq.TransactionStatus.IDLE
            with self._lock:
                keep = not self._closed and len(self._idle) < self._keep and not db.broken
                if keep and not db.closed and db.info.transaction_status == idle:
                    self._idle.append(db)
                else:
                    db.close()

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._drop_idle()


def execute_many(db: Conn, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """`sql` once per row, pipelined."""
    if rows:
        with db.cursor() as cur:
            cur.executemany(sql.encode(), rows)
