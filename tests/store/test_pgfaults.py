"""The PostgreSQL store against bad input and faults: a wrong host, port, password or database name, a
server without pgvector, a connection dropped mid-search and mid-ingest, a database built with another
embedder. Each is a `StoreError` whose message says what to do, and nothing stored is lost.

What is real and what is simulated: connections are refused by a port nothing listens on, by a database
that does not exist and by a role whose password the server really checks (a rule added to the test
server's pg_hba.conf for that role alone, removed afterwards). The test server always has pgvector, so a
server without it is simulated by asking for an extension under a name the server does not have: the
error is the server's own. Dropped connections are real: the test ends the store's backend with
`pg_terminate_backend` from another connection while a search or a write is using it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg
import pytest

import rag_core.store.pgindex as pgindex
import rag_core.store.pgrows as pgrows
import rag_core.store.pgschema as pgschema
from rag_core.store import EmbedderMismatch, StoreError
from rag_core.store.pgschema import ConnectionLost, redact
from rag_core.store.postgres import PostgresStore

from .conftest import new_document


def _with_path(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _terminate(url: str, pid: int) -> None:
    """End backend `pid` from another connection, waiting until it is gone."""
    with psycopg.connect(url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone() == (True,)


class TestConnecting:
    def test_nothing_listening_names_host_and_port(self, tmp_path: Path) -> None:
        url = "postgresql://hr:s3cret@127.0.0.1:1/kb?connect_timeout=3"
        with pytest.raises(StoreError, match=r"nothing answered at 127\.0\.0\.1:1.*RAG_DATABASE_URL") as caught:
            PostgresStore(url, cache_root=tmp_path)
        assert "s3cret" not in str(caught.value)

    def test_a_database_that_does_not_exist_says_how_to_create_it(self, pg_url: str, tmp_path: Path) -> None:
        url = _with_path(pg_url, "no_such_kb")
        with pytest.raises(StoreError, match=r"has no database 'no_such_kb': create it \(createdb .*no_such_kb"):
            PostgresStore(url, cache_root=tmp_path)

    def test_a_wrong_password_says_to_correct_it(self, pg_server: str, pg_url: str, tmp_path: Path) -> None:
        with _password_checked_role(pg_server, "pp_locked", "right") as role_url:
            wrong = _with_path(role_url.replace("pp_locked:", "pp_locked:wrong"), urlsplit(pg_url).path[1:])
            with pytest.raises(StoreError, match="refused user 'pp_locked' with this password: correct") as caught:
                PostgresStore(wrong, cache_root=tmp_path)
            assert "wrong" not in str(caught.value).split("(server said")[0]


def _password_checked_role(server: str, role: str, password: str) -> Any:
    """A login role whose password the server checks (scram-sha-256 for it alone, in pg_hba.conf), as a
    context manager giving its URL without a password; the rule and the role are removed after."""
    import contextlib

    @contextlib.contextmanager
    def manage() -> Iterator[str]:
        with psycopg.connect(server, autocommit=True) as admin:
            row = admin.execute("SHOW hba_file").fetchone()
            assert row is not None
            hba = Path(str(row[0]))
            try:
                before = hba.read_text()
                hba.write_text(f"local all {role} scram-sha-256\nhost all {role} all scram-sha-256\n{before}")
            except OSError as e:
                pytest.skip(f"cannot edit the test server's pg_hba.conf: {e}")
            admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'".encode())
            try:
                admin.execute("SELECT pg_reload_conf()")
                _wait_for(lambda: _rule_loaded(admin, role))
                yield server.replace("postgres:", f"{role}:", 1)
            finally:
                hba.write_text(before)
                admin.execute("SELECT pg_reload_conf()")
                admin.execute(f"DROP ROLE IF EXISTS {role}".encode())

    return manage()


def _rule_loaded(admin: psycopg.Connection[Any], role: str) -> bool:
    rows = admin.execute("SELECT user_name FROM pg_hba_file_rules WHERE %s = ANY(user_name)", (role,)).fetchall()
    return bool(rows)


def _wait_for(done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


class TestWithoutPgvector:
    def test_a_server_without_pgvector_says_to_install_it_and_creates_nothing(
        self, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Simulated: the server is asked for an extension it does not have (its error is real).
        monkeypatch.setattr(pgschema, "_EXTENSION", "CREATE EXTENSION IF NOT EXISTS vector_not_on_this_server")
        with pytest.raises(StoreError, match="does not have the pgvector extension.*install pgvector"):
            PostgresStore(pg_url, cache_root=tmp_path)
        with psycopg.connect(pg_url) as db:
            assert db.execute("SELECT to_regclass('meta')").fetchone() == (None,)  # the migration rolled back


class TestDroppedConnection:
    def test_a_search_whose_connection_drops_is_answered_on_a_fresh_one(
        self, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = PostgresStore(pg_url, cache_root=tmp_path)
        store.add(new_document("a.txt", b"a", n=5))
        query = store.vectors()[1][:2]
        expected = store.search(query, 3)
        real_search, killed = pgindex.search, []

        def search_after_losing_the_connection(db: pgschema.Conn, *args: Any) -> Any:
            if not killed:
                killed.append(db.info.backend_pid)
                _terminate(pg_url, db.info.backend_pid)
            return real_search(db, *args)

        monkeypatch.setattr(pgindex, "search", search_after_losing_the_connection)
        scores, ids = store.search(query, 3)
        assert killed and np.array_equal(ids, expected[1]) and np.allclose(scores, expected[0])

    def test_a_search_that_keeps_losing_its_connection_says_so_and_the_next_call_works(
        self, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = PostgresStore(pg_url, cache_root=tmp_path)
        store.add(new_document("a.txt", b"a", n=5))
        query = store.vectors()[1][:1]
        expected = store.search(query, 3)
        real_search = pgindex.search

        def always_dropped(db: pgschema.Conn, *args: Any) -> Any:
            _terminate(pg_url, db.info.backend_pid)
            return real_search(db, *args)

        monkeypatch.setattr(pgindex, "search", always_dropped)
        with pytest.raises(ConnectionLost, match=r"connection to the knowledge base at .* was lost.*Try again"):
            store.search(query, 3)
        monkeypatch.setattr(pgindex, "search", real_search)
        assert np.array_equal(store.search(query, 3)[1], expected[1])  # the pool recovered

    def test_an_ingest_whose_connection_drops_stores_nothing_and_loses_nothing(
        self, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = PostgresStore(pg_url, cache_root=tmp_path)
        kept = store.add(new_document("a.txt", b"a", n=4))
        before = (store.documents(all_versions=True), store.all_chunks(), store.generation())
        real_insert = pgrows.insert_document

        def insert_then_drop(db: pgschema.Conn, *args: Any) -> None:
            real_insert(db, *args)  # the new rows are in the open transaction when the connection goes
            _terminate(pg_url, db.info.backend_pid)

        monkeypatch.setattr(pgrows, "insert_document", insert_then_drop)
        with pytest.raises(ConnectionLost, match="nothing of it is stored"):
            store.add(new_document("a.txt", b"a2", n=3, seed=1))  # would replace a.txt's version 1
        assert (store.documents(all_versions=True), store.all_chunks(), store.generation()) == before
        monkeypatch.setattr(pgrows, "insert_document", real_insert)
        again = store.add(new_document("a.txt", b"a2", n=3, seed=1))
        assert again.version == 2 and again.replaces == kept.document_id


class TestAnotherEmbedder:
    def test_another_embedder_is_refused_naming_the_database_and_what_to_do(self, pg_url: str, tmp_path: Path) -> None:
        store = PostgresStore(pg_url, cache_root=tmp_path)
        store.add(new_document("a.txt", b"a"))
        with pytest.raises(EmbedderMismatch) as caught:
            store.add(new_document("b.txt", b"b", embedder="other-model"))
        message = str(caught.value)
        assert redact(pg_url) in message and "built with toy" in message
        assert "RAG_EMBEDDER=toy" in message and "new database" in message and "RAG_DATABASE_URL" in message
        assert [d.name for d in store.documents()] == ["a.txt"]
