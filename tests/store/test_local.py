"""The local store only: its data-dir layout, FAISS generation files, the IVF index, and writes that
fail part-way (simulated crashes) leaving the store as it was."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from rag_core.store import LocalStore, StoreError, ivf_lists, open_store
from rag_core.store import local as local_module
from rag_core.store import vectors as vectors_module
from rag_core.types import Chunk, Page

from .conftest import new_document, with_vectors


def _add(store: LocalStore, name: str, data: bytes, n: int = 3, seed: int = 0) -> None:
    store.add(new_document(name, data, n=n, seed=seed))


def _break_writes(monkeypatch: pytest.MonkeyPatch, store: LocalStore, fail_at: str) -> None:
    """Make the next write fail: writing the index files ("index"), just before the commit with the
    index files written ("rows"), or at its first meta row ("meta")."""

    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full (simulated)")

    if fail_at == "index":
        monkeypatch.setattr(vectors_module, "_write_index", boom)
    elif fail_at == "rows":
        monkeypatch.setattr(store, "_save_original", lambda *a: None)
        original = local_module._set_meta

        def fail_on_generation(db: sqlite3.Connection, key: str, value: str) -> None:
            if key == "generation":
                raise OSError("crash before commit (simulated)")
            original(db, key, value)

        monkeypatch.setattr(local_module, "_set_meta", fail_on_generation)
    else:
        monkeypatch.setattr(local_module, "_set_meta", boom)


class TestLayout:
    def test_open_store_is_local_and_caches_in_the_data_dir(self, tmp_path: Path) -> None:
        store = open_store(tmp_path, ann_threshold=7)
        assert isinstance(store, LocalStore) and store.ann_threshold == 7 and store.cache_dir == tmp_path

    def test_original_stored_by_hash_not_name(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        info = store.add(new_document("../../evil name.txt", b"bytes"))
        stored = list((tmp_path / "originals").iterdir())
        assert [p.name for p in stored] == [f"{info.sha256}.txt"] and stored[0].read_bytes() == b"bytes"
        pdf = store.add(new_document("b.pdf", b"%PDF-", kind="pdf"))
        assert (tmp_path / "originals" / f"{pdf.sha256}.pdf").read_bytes() == b"%PDF-"
        assert not list(tmp_path.rglob("evil*")) and not (tmp_path.parent / "evil name.txt").exists()

    def test_delete_removes_the_original_file(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        info = store.add(new_document("a.txt", b"a"))
        path = tmp_path / "originals" / f"{info.sha256}.txt"
        assert path.exists()
        store.delete("a.txt")
        assert not path.exists()

    def test_data_dir_that_is_a_file(self, tmp_path: Path) -> None:
        f = tmp_path / "file"
        f.write_text("x")
        with pytest.raises(StoreError, match="is a file"):
            LocalStore(f)

    def test_threshold_validated(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="ann_threshold"):
            LocalStore(tmp_path, ann_threshold=0)

    def test_database_with_the_old_status_columns_still_works(self, tmp_path: Path) -> None:
        with sqlite3.connect(tmp_path / "kb.sqlite3") as db:
            db.execute(
                "CREATE TABLE documents (id TEXT PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL UNIQUE, "
                "kind TEXT NOT NULL, bytes INTEGER NOT NULL, pages INTEGER NOT NULL, chunks INTEGER NOT NULL, "
                "added_at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'ready', error TEXT)"
            )
        db.close()
        store = LocalStore(tmp_path)
        _add(store, "a.txt", b"a")
        assert [d.name for d in store.documents()] == ["a.txt"] and store.size == 3
        store.delete("a.txt")
        assert store.documents() == []

    def test_older_schema_is_migrated_and_its_chunks_keep_working(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        _add(store, "old.txt", b"old")
        with sqlite3.connect(tmp_path / "kb.sqlite3") as db:  # what a schema-1 PolicyPal left behind
            db.execute("ALTER TABLE chunks DROP COLUMN context")
            db.execute("ALTER TABLE pages DROP COLUMN label")
            db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        db.close()
        reopened = LocalStore(tmp_path)
        assert reopened.meta("schema_version") == str(local_module.SCHEMA_VERSION)
        assert [(c.context, c.page_label) for c in reopened.all_chunks()] == [("", None)] * 3
        reopened.add(replace(new_document("new.txt", b"new"), chunks=[Chunk(1, 0, 2, "s0", 1, "Leave > 4.2 Sick")] * 3))
        _, _, texts = reopened.chunk_texts()
        assert texts[:3] == ["s0", "s1", "s2"] and texts[3] == "Leave > 4.2 Sick\ns0"  # BM25 reads the context

    def test_schema_3_documents_become_first_versions(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        _add(store, "h.pdf", b"v1")
        with sqlite3.connect(tmp_path / "kb.sqlite3") as db:  # what a schema-3 PolicyPal left behind
            db.execute("DROP TABLE archived_chunks")
            db.execute("DROP INDEX documents_name")
            for column in ("version", "current", "replaces"):
                db.execute(f"ALTER TABLE documents DROP COLUMN {column}")
            db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        db.close()
        reopened = LocalStore(tmp_path)
        [old] = reopened.documents()
        assert (old.version, old.current, old.replaces) == (1, True, None)
        new = reopened.add(new_document("h.pdf", b"v2", seed=2))
        assert (new.version, new.replaces) == (2, old.document_id) and reopened.size == 3

    def test_schema_3_gains_the_ocr_mark_and_new_pages_keep_it(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        _add(store, "typed.txt", b"typed")
        with sqlite3.connect(tmp_path / "kb.sqlite3") as db:  # what a schema-3 PolicyPal left behind
            db.execute("ALTER TABLE pages DROP COLUMN ocr")
            db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        db.close()
        reopened = LocalStore(tmp_path)
        assert reopened.meta("schema_version") == str(local_module.SCHEMA_VERSION)
        assert [c.page_ocr for c in reopened.all_chunks()] == [False] * 3
        scan = new_document("scan.pdf", b"scan", kind="pdf")
        reopened.add(replace(scan, pages=[Page(1, scan.pages[0].text, ocr=True)]))
        assert [bool(c.page_ocr) for c in reopened.all_chunks()] == [False] * 3 + [True] * 3

    def test_newer_schema_refused(self, tmp_path: Path) -> None:
        LocalStore(tmp_path)
        with sqlite3.connect(tmp_path / "kb.sqlite3") as db:
            db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        db.close()
        with pytest.raises(StoreError, match="newer PolicyPal"):
            LocalStore(tmp_path)


class TestAtomicity:
    @pytest.mark.parametrize("fail_at", ["index", "rows", "meta"])
    def test_failed_write_leaves_store_as_before(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
    ) -> None:
        store = LocalStore(tmp_path)
        _add(store, "a.txt", b"a")
        before = (store.documents(), store.size, store.generation())

        _break_writes(monkeypatch, store, fail_at)
        with pytest.raises(OSError):
            _add(store, "b.txt", b"b", seed=5)
        monkeypatch.undo()
        fresh = LocalStore(tmp_path)
        assert (fresh.documents(), fresh.size, fresh.generation()) == before
        assert len(fresh.all_chunks()) == fresh.size
        _add(fresh, "b.txt", b"b", seed=5)  # and the retry completes
        assert len(fresh.documents()) == 2 and fresh.size == 6

    @pytest.mark.parametrize("fail_at", ["index", "rows"])
    def test_failed_update_leaves_the_old_version_current(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
    ) -> None:
        store = LocalStore(tmp_path)
        store.add(new_document("h.pdf", b"v1", n=4, seed=1))
        before = (store.documents(all_versions=True), store.size, store.generation(), store.all_chunks())

        _break_writes(monkeypatch, store, fail_at)
        with pytest.raises(OSError):
            store.add(new_document("h.pdf", b"v2", n=3, seed=2))
        monkeypatch.undo()
        fresh = LocalStore(tmp_path)
        assert (fresh.documents(all_versions=True), fresh.size, fresh.generation(), fresh.all_chunks()) == before
        assert fresh.add(new_document("h.pdf", b"v2", n=3, seed=2)).version == 2  # and the retry completes

    def test_process_killed_mid_update_leaves_the_old_version_current(self, tmp_path: Path) -> None:
        """A real death (os._exit inside the commit's transaction, after the next index files are
        written): the reopened store serves version 1, whole, and takes version 2 afterwards."""
        store = LocalStore(tmp_path)
        v1 = store.add(new_document("h.pdf", b"v1", n=4, seed=1))
        script = (
            "import os, sys\n"
            "from rag_core.store import LocalStore\n"
            "from rag_core.store import local\n"
            "from tests.store.conftest import new_document\n"
            "original = local._set_meta\n"
            "def die(db, key, value):\n"
            "    if key == 'generation':\n"
            "        os._exit(9)\n"
            "    original(db, key, value)\n"
            "local._set_meta = die\n"
            "LocalStore(sys.argv[1]).add(new_document('h.pdf', b'v2', n=3, seed=2))\n"
        )
        root = Path(__file__).resolve().parents[2]
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=root, timeout=120, check=False)
        assert done.returncode == 9
        fresh = LocalStore(tmp_path)
        assert [(d.document_id, d.current) for d in fresh.documents(all_versions=True)] == [(v1.document_id, True)]
        assert fresh.size == 4 and {c.document_id for c in fresh.all_chunks()} == {v1.document_id}
        assert fresh.add(new_document("h.pdf", b"v2", n=3, seed=2)).replaces == v1.document_id

    def test_failed_delete_leaves_store_as_before(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        store = LocalStore(tmp_path)
        _add(store, "a.txt", b"a")
        before = (store.documents(), store.size, store.generation())

        def boom(db: sqlite3.Connection, key: str, value: str) -> None:
            raise OSError("crash before commit (simulated)")

        monkeypatch.setattr(local_module, "_set_meta", boom)
        with pytest.raises(OSError):
            store.delete("a.txt")
        monkeypatch.undo()
        fresh = LocalStore(tmp_path)
        assert (fresh.documents(), fresh.size, fresh.generation()) == before
        assert fresh.original(before[0][0]) == b"a"

    def test_only_current_and_previous_index_files_kept(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        for i in range(4):
            _add(store, f"{i}.txt", str(i).encode(), seed=i)
        names = sorted(p.name for p in tmp_path.glob("index-*"))
        assert names == ["index-3.faiss", "index-4.faiss"]

    def test_readers_never_see_half_a_document(self, tmp_path: Path) -> None:
        """Within one read snapshot, documents, chunk rows and the index of that generation agree."""
        store = LocalStore(tmp_path)
        _add(store, "seed.txt", b"seed", n=5)
        stop = threading.Event()
        problems: list[str] = []
        snapshots = 0

        def read() -> None:
            nonlocal snapshots
            db = sqlite3.connect(tmp_path / "kb.sqlite3", isolation_level=None)
            while not stop.is_set():
                db.execute("BEGIN")
                listed = dict(db.execute("SELECT id, chunks FROM documents").fetchall())
                counts = dict(db.execute("SELECT document_id, COUNT(*) FROM chunks GROUP BY document_id").fetchall())
                ids = {r[0] for r in db.execute("SELECT id FROM chunks")}
                generation = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
                db.execute("COMMIT")
                try:
                    index: Any = faiss.read_index(str(tmp_path / f"index-{generation}.faiss"))
                except RuntimeError:
                    continue  # a writer already removed that generation's file; read again
                in_index = set(faiss.vector_to_array(index.id_map).tolist())
                if counts != listed:
                    problems.append(f"rows {counts} vs documents {listed}")
                if in_index != ids:
                    problems.append(f"generation {generation}: index and rows differ")
                snapshots += 1
            db.close()

        t = threading.Thread(target=read)
        t.start()
        try:
            for i in range(8):
                _add(store, f"{i}.txt", f"d{i}".encode(), n=7, seed=i)
            store.delete("seed.txt")
            store.delete("0.txt")
        finally:
            stop.set()
            t.join()
        assert not problems, problems[:3]
        assert snapshots > 0


def _clustered(n: int, seed: int, dim: int = 32, clusters: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(clusters, dim))
    v = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float32)


def _recall(store: LocalStore, queries: np.ndarray) -> float:
    _, approx = store.search(queries, 10)
    _, exact = store.search(queries, 10, exact=True)
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx.tolist(), exact.tolist(), strict=True)]))


class TestApproximateIndex:
    def test_exact_below_threshold_ivf_above_with_recall(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path, ann_threshold=500)
        store.add(with_vectors("a", _clustered(300, 1)))
        assert store.index_info().kind == "flat" and not list(tmp_path.glob("ann-*"))
        store.add(with_vectors("b", _clustered(300, 2)))
        info = store.index_info()
        assert info.kind == "ivf" and info.size == 600 and info.nprobe >= 1 and info.recall_at_10 >= 0.98
        assert store.meta("index_kind") == "ivf" and (tmp_path / f"ann-{store.generation()}.faiss").exists()
        assert store.meta("ann_nprobe") == str(info.nprobe)
        assert _recall(store, _clustered(100, 3)) >= 0.98
        reopened = LocalStore(tmp_path, ann_threshold=500)
        assert reopened.index_info() == info
        assert _recall(reopened, _clustered(100, 4)) >= 0.98

    def test_adds_update_the_ivf_and_retrain_when_the_store_doubles(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path, ann_threshold=400)
        store.add(with_vectors("a", _clustered(400, 1)))
        assert store.index_info().trained_size == 400
        store.add(with_vectors("b", _clustered(100, 2)))
        info = store.index_info()
        assert info.trained_size == 400 and info.size == 500  # updated in place, not retrained
        ids, _ = store.vectors()
        _, found = store.search(store.vectors(ids[-5:].tolist())[1], 1)
        assert found[:, 0].tolist() == ids[-5:].tolist()  # the added vectors are searchable
        store.add(with_vectors("c", _clustered(400, 3)))
        assert store.index_info().trained_size == 900

    def test_deletes_with_ivf_and_back_to_flat(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path, ann_threshold=500)
        store.add(with_vectors("a", _clustered(300, 1)))
        store.add(with_vectors("b", _clustered(300, 2)))
        store.add(with_vectors("c", _clustered(300, 3)))
        doomed = {c.chunk_id for c in store.all_chunks() if c.document == "b"}
        store.delete("b")
        info = store.index_info()
        assert info.kind == "ivf" and info.size == 600 and store.size == 600
        _, ids = store.search(_clustered(200, 5), 20)
        assert not doomed & set(ids.ravel().tolist())
        assert _recall(store, _clustered(100, 6)) >= 0.98
        store.delete("a")
        assert store.index_info().kind == "flat" and store.size == 300
        store.delete("c")
        assert not list(tmp_path.glob(f"ann-{store.generation()}*"))
        assert len(list(tmp_path.glob("ann-*"))) <= 1  # at most the previous generation's, for open readers

    def test_ivf_lists(self) -> None:
        assert ivf_lists(10) == 64 and ivf_lists(100_000) == 1024
