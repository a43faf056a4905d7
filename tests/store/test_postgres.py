"""rag_core.store.postgres beyond the contract: the schema version and migrations on start, writes that
fail or die half-way leaving nothing, the IVF or HNSW index and its tuned breadth, the local cache dir and
how a URL selects the backend. Every test gets a fresh database on the session's private server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

import rag_core.store.pgrows as pgrows
from rag_core.config import Settings
from rag_core.store import StoreError, open_store
from rag_core.store.pgindex import (
    EF_LADDER,
    HNSW_M,
    INDEX_NAMES,
    exact_top_k,
    existing_index,
    ivf_lists,
    recall_at,
    search,
)
from rag_core.store.pgschema import MIGRATIONS, SCHEMA_VERSION, migrate, redact
from rag_core.store.postgres import PostgresStore
from rag_core.types import PgIndexKind

from .conftest import new_document, with_vectors

ROOT = Path(__file__).resolve().parent.parent.parent


def _meta(url: str, key: str) -> str | None:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
    return None if row is None else str(row[0])


def _clustered(n: int, dim: int, seed: int = 0, clusters: int = 20) -> np.ndarray:
    """Unit vectors around a few random centres, as embeddings of related passages are."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    vecs = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


class TestSchema:
    def test_a_new_database_gets_the_current_schema(self, pg_url: str, tmp_path: Path) -> None:
        PostgresStore(pg_url, cache_root=tmp_path)
        assert _meta(pg_url, "schema_version") == str(SCHEMA_VERSION)
        PostgresStore(pg_url, cache_root=tmp_path)  # opening again changes nothing
        assert _meta(pg_url, "schema_version") == str(SCHEMA_VERSION)

    def test_pending_migrations_run_on_start_once(self, pg_url: str, tmp_path: Path) -> None:
        store = PostgresStore(pg_url, cache_root=tmp_path)
        store.add(new_document("a.txt", b"a"))
        step = (SCHEMA_VERSION + 1, "ALTER TABLE documents ADD COLUMN owner TEXT; UPDATE documents SET owner = 'hr';")
        with psycopg.connect(pg_url, autocommit=True) as db:
            assert migrate(db, [*MIGRATIONS, step]) == SCHEMA_VERSION + 1
            assert migrate(db, [*MIGRATIONS, step]) == SCHEMA_VERSION + 1  # not applied twice
            assert db.execute("SELECT owner FROM documents").fetchall() == [("hr",)]
        assert _meta(pg_url, "schema_version") == str(SCHEMA_VERSION + 1)

    def test_servers_starting_together_migrate_once(self, pg_url: str, tmp_path: Path) -> None:
        errors: list[BaseException] = []

        def start() -> None:
            try:
                PostgresStore(pg_url, cache_root=tmp_path)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and _meta(pg_url, "schema_version") == str(SCHEMA_VERSION)

    def test_a_newer_schema_is_refused(self, pg_url: str, tmp_path: Path) -> None:
        PostgresStore(pg_url, cache_root=tmp_path)
        with psycopg.connect(pg_url) as db:
            db.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
        with pytest.raises(StoreError, match="newer PolicyPal.*upgrade PolicyPal"):
            PostgresStore(pg_url, cache_root=tmp_path)

    def test_a_server_that_is_not_there_is_named_without_its_password(self, tmp_path: Path) -> None:
        url = f"postgresql://hr:s3cret@/kb?host={tmp_path}&connect_timeout=2"
        with pytest.raises(StoreError, match="cannot connect.*RAG_DATABASE_URL") as caught:
            PostgresStore(url, cache_root=tmp_path)
        assert "s3cret" not in str(caught.value)
        assert redact("postgresql://hr:s3cret@db:5432/kb") == "postgresql://hr:***@db:5432/kb"


class TestAtomicWrites:
    def test_a_failure_inside_the_write_leaves_nothing(
        self, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = PostgresStore(pg_url, cache_root=tmp_path)
        v1 = store.add(new_document("h.txt", b"v1", n=4, seed=1))
        generation, before = store.generation(), store.vectors()
        real_insert = pgrows.insert_document

        def insert_then_fail(*args: object, **kw: object) -> None:
            real_insert(*args, **kw)  # type: ignore[arg-type]
            raise RuntimeError("disk full")

        monkeypatch.setattr(pgrows, "insert_document", insert_then_fail)
        with pytest.raises(RuntimeError, match="disk full"):
            store.add(new_document("h.txt", b"v2", n=3, seed=2))  # a new version: v1 was being archived
        monkeypatch.undo()
        assert store.generation() == generation and store.documents(all_versions=True) == [v1]
        ids, vecs = store.vectors()
        assert ids.tolist() == before[0].tolist() and np.allclose(vecs, before[1])
        assert store.add(new_document("h.txt", b"v2", n=3, seed=2)).version == 2  # the store carries on

    def test_a_process_killed_mid_write_leaves_nothing(self, pg_url: str, tmp_path: Path) -> None:
        store = PostgresStore(pg_url, cache_root=tmp_path)
        v1 = store.add(new_document("h.txt", b"v1", n=4, seed=1))
        generation = store.generation()
        script = textwrap.dedent(
            """
            import os, sys
            import rag_core.store.pgrows as pgrows
            from rag_core.store.postgres import PostgresStore
            from tests.store.conftest import new_document

            real_insert = pgrows.insert_document

            def insert_then_die(*args, **kw):
                real_insert(*args, **kw)
                os._exit(3)  # no rollback, no cleanup: as a power cut or kill -9 would leave it

            pgrows.insert_document = insert_then_die
            PostgresStore(sys.argv[1], cache_root=sys.argv[2]).add(new_document("h.txt", b"v2", n=3, seed=2))
            """
        )
        child = subprocess.run(
            [sys.executable, "-c", script, pg_url, str(tmp_path)], cwd=ROOT, capture_output=True, timeout=120
        )
        assert child.returncode == 3, child.stderr.decode()
        fresh = PostgresStore(pg_url, cache_root=tmp_path)
        assert fresh.generation() == generation and fresh.documents(all_versions=True) == [v1]
        assert fresh.size == 4 and {c.document_id for c in fresh.all_chunks()} == {v1.document_id}
        # the dead writer's advisory lock went with its session: the next write goes through
        assert fresh.add(new_document("h.txt", b"v2", n=3, seed=2)).version == 2

    def test_writers_in_several_processes_queue_and_all_land(self, pg_url: str, tmp_path: Path) -> None:
        PostgresStore(pg_url, cache_root=tmp_path)
        script = textwrap.dedent(
            """
            import sys
            from rag_core.store.postgres import PostgresStore
            from tests.store.conftest import new_document

            store, p = PostgresStore(sys.argv[1], cache_root=sys.argv[2]), int(sys.argv[3])
            for i in range(4):
                store.add(new_document(f"{p}-{i}.txt", f"{p}-{i}".encode(), seed=10 * p + i))
            """
        )
        writers = [
            subprocess.Popen([sys.executable, "-c", script, pg_url, str(tmp_path), str(p)], cwd=ROOT) for p in range(3)
        ]
        assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
        store = PostgresStore(pg_url, cache_root=tmp_path)
        assert len(store.documents()) == 12 and store.size == 36 and store.generation() == 12
        assert len({c.chunk_id for c in store.all_chunks()}) == 36


class TestIndex:
    def test_above_the_threshold_ivf_answers_with_tuned_probes(self, pg_url: str, tmp_path: Path) -> None:
        store = PostgresStore(pg_url, cache_root=tmp_path, ann_threshold=1000)
        vecs, queries = np.split(_clustered(3100, 32), [3000])  # queries near the data, but not stored
        store.add(with_vectors("a.txt", vecs[:900]))
        assert store.index_info().kind == "flat"
        store.add(with_vectors("b.txt", vecs[900:]))
        info = store.index_info()
        assert info.kind == "ivf" and info.size == 3000 and info.nlist == ivf_lists(3000) == 3
        assert 1 <= info.nprobe <= 3 and info.recall_at_10 >= 0.98 and info.trained_size == 3000
        assert _meta(pg_url, "ann_nprobe") == str(info.nprobe)
        assert PostgresStore(pg_url, cache_root=tmp_path).index_info() == info
        _, exact = store.search(queries, 10, exact=True)
        _, approx = store.search(queries, 10)
        assert recall_at(exact, approx) >= 0.98
        far = _clustered(100, 32, seed=7)  # around other centres: far from every stored vector
        assert recall_at(store.search(far, 10, exact=True)[1], store.search(far, 10)[1]) >= 0.98

        store.delete("b.txt")  # below the threshold again: exact, and no index left to keep up
        assert store.index_info().kind == "flat" and store.size == 900
        with psycopg.connect(pg_url) as db:
            assert existing_index(db) is None

    def test_ivf_lists_are_rebuilt_when_the_store_doubles(self, pg_url: str, tmp_path: Path) -> None:
        store = PostgresStore(pg_url, cache_root=tmp_path, ann_threshold=1000)
        vecs = _clustered(4200, 16)
        store.add(with_vectors("a.txt", vecs[:2000]))
        assert (store.index_info().nlist, store.index_info().trained_size) == (2, 2000)
        store.add(with_vectors("b.txt", vecs[2000:2100]))  # +5%: neither rebuilt nor tuned again
        assert store.index_info() == replace(store.index_info(), size=2100, trained_size=2000)
        assert _meta(pg_url, "ann_tuned_size") == "2000"
        store.add(with_vectors("c.txt", vecs[2100:2500]))  # +25% since tuned: tuned again, same lists
        assert _meta(pg_url, "ann_tuned_size") == "2500" and store.index_info().trained_size == 2000
        store.add(with_vectors("d.txt", vecs[2500:]))  # 2.1x the lists' size: rebuilt
        info = store.index_info()
        assert (info.nlist, info.trained_size, info.size) == (4, 4200, 4200)
        with psycopg.connect(pg_url) as db:  # built beside the old index, then swapped in under its name
            names = [r[0] for r in db.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'")]
        assert "chunks_ivf" in names and not any(n.endswith("_next") or n == "chunks_hnsw" for n in names)

    def test_hnsw_when_configured_with_tuned_ef_search(self, pg_url: str, tmp_path: Path) -> None:
        store = PostgresStore(pg_url, cache_root=tmp_path, ann_threshold=500, index="hnsw")
        vecs, queries = np.split(_clustered(1000, 32), [900])
        store.add(with_vectors("a.txt", vecs))
        info = store.index_info()
        assert info.kind == "hnsw" and info.size == 900 and info.ef_search in EF_LADDER
        assert info.recall_at_10 >= 0.98 and _meta(pg_url, "ann_ef_search") == str(info.ef_search)
        _, exact = store.search(queries, 10, exact=True)
        assert recall_at(exact, store.search(queries, 10)[1]) >= 0.98
        with psycopg.connect(pg_url) as db:
            (definition,) = db.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_hnsw'").fetchone()
        assert f"m='{HNSW_M}'" in definition.replace(" ", "")  # the denser graph

    def test_another_index_kind_takes_over_at_the_next_write(self, pg_url: str, tmp_path: Path) -> None:
        vecs = _clustered(1200, 16)
        PostgresStore(pg_url, cache_root=tmp_path, ann_threshold=500, index="hnsw").add(
            with_vectors("a.txt", vecs[:1100])
        )
        store = PostgresStore(pg_url, cache_root=tmp_path, ann_threshold=500)  # ivfflat, the default
        assert store.index_info().kind == "hnsw"  # serves as recorded until the next write
        store.add(with_vectors("b.txt", vecs[1100:]))
        assert store.index_info().kind == "ivf"
        with psycopg.connect(pg_url) as db:
            assert existing_index(db) == "ivfflat"
        with pytest.raises(ValueError, match="one of"):
            PostgresStore(pg_url, cache_root=tmp_path, index="annoy")  # type: ignore[arg-type]

    def test_the_tuning_scan_finds_the_exact_top_k_in_batches(self, pg_url: str, tmp_path: Path) -> None:
        store = PostgresStore(pg_url, cache_root=tmp_path, ann_threshold=100_000)
        store.add(with_vectors("a.txt", _clustered(530, 16)))
        queries = _clustered(12, 16, seed=5)
        with psycopg.connect(pg_url) as db:
            register_vector(db)
            _, want = search(db, queries, 10, None)
            for batch in (7, 100, 10_000):  # several batches, the last one short; a single batch
                assert exact_top_k(db, queries, 10, batch=batch).tolist() == want.tolist()

    @pytest.mark.parametrize("kind", ["ivfflat", "hnsw"])
    def test_approximate_search_uses_the_index(self, pg_url: str, tmp_path: Path, kind: PgIndexKind) -> None:
        store = PostgresStore(pg_url, cache_root=tmp_path, ann_threshold=50, index=kind)
        store.add(with_vectors("a.txt", _clustered(200, 16)))
        vector = "[" + ",".join(f"{x:.6f}" for x in _clustered(1, 16, seed=3)[0]) + "]"  # numbers only
        explain = f"EXPLAIN SELECT id FROM chunks ORDER BY embedding <#> '{vector}' LIMIT 10".encode()
        plans = {}
        for name, settings in (
            ("index", ("SET LOCAL enable_indexscan = on", "SET LOCAL enable_seqscan = off")),
            ("exact", ("SET LOCAL enable_indexscan = off", "SET LOCAL enable_seqscan = on")),
        ):  # the settings pgindex.search makes
            with psycopg.connect(pg_url) as db:
                for setting in settings:
                    db.execute(setting)
                plans[name] = " ".join(str(r[0]) for r in db.execute(explain).fetchall())
        index = INDEX_NAMES[kind]
        assert index in plans["index"] and index not in plans["exact"]


class TestLocation:
    def test_a_url_selects_the_postgresql_store_with_caches_by_database(self, pg_url: str, tmp_path: Path) -> None:
        store = open_store(pg_url, cache_root=tmp_path)
        assert isinstance(store, PostgresStore) and repr(store).startswith("PostgresStore('postgresql:")
        assert store.cache_dir.is_dir() and store.cache_dir.parent == tmp_path / "postgres"
        again = open_store(tmp_path / "data", pg_url)  # as the engine opens it: caches under the data dir
        assert isinstance(again, PostgresStore) and again.cache_dir.name == store.cache_dir.name
        assert again.cache_dir.parent == tmp_path / "data" / "postgres"

    def test_settings_take_the_url_from_the_environment(self) -> None:
        url = "postgresql://hr@db.internal/policypal"
        assert Settings.from_env({"RAG_DATABASE_URL": url}).database_url == url
        assert Settings.from_env({}).database_url is None
        with pytest.raises(ValueError, match="PostgreSQL URL"):
            Settings(database_url="mysql://hr@db/policypal")
