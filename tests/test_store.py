"""rag_core.store: rows and vectors together, duplicates, deletes, reopen, embedder mismatch, atomicity."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest

from rag_core.chunking import Chunk
from rag_core.loaders import Page
from rag_core.store import (
    AmbiguousDocument,
    DocumentNotFound,
    DuplicateDocument,
    EmbedderMismatch,
    KnowledgeBase,
    document_id_for,
    sha256_hex,
)

DIM = 8


def _doc(kb: KnowledgeBase, name: str, data: bytes, n: int = 3, seed: int = 0, embedder: str = "toy", dim: int = DIM):
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    norms = np.linalg.norm(vecs, axis=1).astype(np.float32)
    vecs /= norms[:, None]
    text = " ".join(f"s{i}" for i in range(n))
    chunks = [Chunk(1, 3 * i, 3 * i + 2, f"s{i}", 1) for i in range(n)]
    return kb.add_document(
        name=name,
        data=data,
        kind="text",
        pages=[Page(1, text)],
        page_count=1,
        chunks=chunks,
        vectors=vecs,
        norms=norms,
        embedder_name=embedder,
    ), vecs


class TestKnowledgeBase:
    def test_add_and_search_finds_own_vectors(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path)
        info, vecs = _doc(kb, "a.txt", b"aaa")
        assert info.document_id == document_id_for(sha256_hex(b"aaa"))
        scores, ids = kb.search(vecs[1], 1)
        row = kb.chunks_by_ids([int(ids[0][0])])[int(ids[0][0])]
        assert row.text == "s1" and row.document == "a.txt" and scores[0][0] == pytest.approx(1.0, abs=1e-5)
        assert kb.size == 3 and kb.embedder_name == "toy" and kb.dimension == DIM

    def test_original_stored_by_hash_not_name(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path)
        info, _ = _doc(kb, "../../evil name.txt", b"bytes")
        stored = kb.original_path(info)
        assert stored is not None and stored.parent == tmp_path / "originals"
        assert stored.name == f"{info.sha256}.txt" and stored.read_bytes() == b"bytes"

    def test_duplicate_bytes_rejected(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path)
        _doc(kb, "a.txt", b"same")
        with pytest.raises(DuplicateDocument, match="a.txt"):
            _doc(kb, "b.txt", b"same")
        assert len(kb.documents()) == 1 and kb.size == 3

    def test_reopen_in_new_object_sees_everything(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path)
        _, vecs = _doc(kb, "a.txt", b"a")
        kb2 = KnowledgeBase(tmp_path)
        assert [d.name for d in kb2.documents()] == ["a.txt"]
        assert kb2.size == 3
        _, ids = kb2.search(vecs[2], 1)
        assert kb2.chunks_by_ids([int(ids[0][0])])[int(ids[0][0])].text == "s2"

    def test_delete_removes_rows_vectors_and_original(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path)
        a, va = _doc(kb, "a.txt", b"a", seed=1)
        _b, _ = _doc(kb, "b.txt", b"b", seed=2)
        path_a = kb.original_path(a)
        kb.delete("a.txt")
        assert [d.name for d in kb.documents()] == ["b.txt"] and kb.size == 3
        _, ids = kb.search(va[0], 3)
        assert all(kb.chunks_by_ids([int(i)])[int(i)].document == "b.txt" for i in ids[0])
        assert path_a is not None and not path_a.exists()
        assert KnowledgeBase(tmp_path).size == 3

    def test_delete_by_id_prefix_and_errors(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path)
        a, _ = _doc(kb, "same.txt", b"1")
        _doc(kb, "same.txt", b"2", seed=3)
        with pytest.raises(AmbiguousDocument, match="2 documents are named"):
            kb.delete("same.txt")
        with pytest.raises(DocumentNotFound, match="rag_core docs"):
            kb.delete("nope")
        assert kb.delete(a.document_id[:8]).document_id == a.document_id

    def test_chunk_ids_never_reused(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path)
        _doc(kb, "a.txt", b"a")
        first = {c.chunk_id for c in kb.all_chunks()}
        kb.delete("a.txt")
        _doc(kb, "b.txt", b"b")
        assert first.isdisjoint({c.chunk_id for c in kb.all_chunks()})

    def test_embedder_mismatch_is_clear(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path)
        _doc(kb, "a.txt", b"a")
        with pytest.raises(EmbedderMismatch, match=r"built with toy \(8-d\).*other \(16-d\).*data dir"):
            _doc(kb, "b.txt", b"b", embedder="other", dim=16)
        assert kb.size == 3

    def test_emptied_kb_accepts_new_embedder(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path)
        _doc(kb, "a.txt", b"a")
        kb.delete("a.txt")
        _doc(kb, "b.txt", b"b", embedder="other", dim=16)
        assert kb.embedder_name == "other" and kb.dimension == 16

    def test_empty_kb_search(self, tmp_path: Path) -> None:
        scores, ids = KnowledgeBase(tmp_path).search(np.ones(DIM, np.float32), 5)
        assert scores.shape == (1, 0) and ids.shape == (1, 0)

    def test_data_dir_that_is_a_file(self, tmp_path: Path) -> None:
        f = tmp_path / "file"
        f.write_text("x")
        with pytest.raises(Exception, match="is a file"):
            KnowledgeBase(f)


class TestAtomicity:
    @pytest.mark.parametrize("fail_at", ["index", "rows", "meta"])
    def test_failed_write_leaves_kb_as_before(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
    ) -> None:
        kb = KnowledgeBase(tmp_path)
        _doc(kb, "a.txt", b"a")
        before = (kb.documents(), kb.size, kb.generation())

        def boom(*a: object, **k: object) -> None:
            raise OSError("disk full (simulated)")

        if fail_at == "index":
            monkeypatch.setattr(kb, "_write_index", boom)
        elif fail_at == "rows":
            monkeypatch.setattr(kb, "_save_original", lambda *a: None)
            original = KnowledgeBase._set_meta

            def fail_on_generation(db, key, value):  # type: ignore[no-untyped-def]
                if key == "generation":
                    raise OSError("crash before commit (simulated)")
                return original(db, key, value)

            monkeypatch.setattr(KnowledgeBase, "_set_meta", staticmethod(fail_on_generation))
        else:
            monkeypatch.setattr(KnowledgeBase, "_set_meta", staticmethod(boom))
        with pytest.raises(OSError):
            _doc(kb, "b.txt", b"b", seed=5)
        monkeypatch.undo()
        fresh = KnowledgeBase(tmp_path)
        assert (fresh.documents(), fresh.size, fresh.generation()) == before
        assert len(fresh.all_chunks()) == fresh.size
        _doc(fresh, "b.txt", b"b", seed=5)  # and the retry completes
        assert len(fresh.documents()) == 2 and fresh.size == 6

    def test_only_current_and_previous_index_files_kept(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path)
        for i in range(4):
            _doc(kb, f"{i}.txt", str(i).encode(), seed=i)
        names = sorted(p.name for p in tmp_path.glob("index-*"))
        assert names == ["index-3.faiss", "index-4.faiss"]

    def test_concurrent_writers_in_threads_all_land(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path)
        errors: list[BaseException] = []

        def write(i: int) -> None:
            try:
                _doc(KnowledgeBase(tmp_path), f"{i}.txt", f"doc{i}".encode(), seed=i)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(kb.documents()) == 6 and kb.size == 18 and len(kb.all_chunks()) == 18

    def test_readers_never_see_half_a_document(self, tmp_path: Path) -> None:
        """Within one read snapshot, documents, chunk rows and the index of that generation agree."""
        kb = KnowledgeBase(tmp_path)
        _doc(kb, "seed.txt", b"seed", n=5)
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
                    index = faiss.read_index(str(tmp_path / f"index-{generation}.faiss"))
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
                _doc(kb, f"{i}.txt", f"d{i}".encode(), n=7, seed=i)
            kb.delete("seed.txt")
            kb.delete("0.txt")
        finally:
            stop.set()
            t.join()
        assert not problems, problems[:3]
        assert snapshots > 0


def _clustered(n: int, seed: int, dim: int = 32, clusters: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(clusters, dim))
    v = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _add(kb: KnowledgeBase, name: str, vecs: np.ndarray) -> None:
    n = len(vecs)
    kb.add_document(
        name=name,
        data=name.encode(),
        kind="text",
        pages=[Page(1, "x")],
        page_count=1,
        chunks=[Chunk(1, 0, 1, "x", 1)] * n,
        vectors=vecs,
        norms=np.ones(n, np.float32),
        embedder_name="toy",
    )


def _recall(kb: KnowledgeBase, queries: np.ndarray) -> float:
    _, approx = kb.search(queries, 10)
    _, exact = kb.search(queries, 10, exact=True)
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx.tolist(), exact.tolist(), strict=True)]))


class TestApproximateIndex:
    def test_exact_below_threshold_ivf_above_with_recall(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path, ann_threshold=500)
        _add(kb, "a", _clustered(300, 1))
        assert kb.index_info().kind == "flat" and not list(tmp_path.glob("ann-*"))
        _add(kb, "b", _clustered(300, 2))
        info = kb.index_info()
        assert info.kind == "ivf" and info.size == 600 and info.nprobe >= 1 and info.recall_at_10 >= 0.98
        assert kb.meta("index_kind") == "ivf" and (tmp_path / f"ann-{kb.generation()}.faiss").exists()
        assert _recall(kb, _clustered(100, 3)) >= 0.98
        reopened = KnowledgeBase(tmp_path, ann_threshold=500)
        assert reopened.index_info() == info
        assert _recall(reopened, _clustered(100, 4)) >= 0.98

    def test_adds_update_the_ivf_and_retrain_when_the_kb_doubles(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path, ann_threshold=400)
        _add(kb, "a", _clustered(400, 1))
        assert kb.index_info().trained_size == 400
        _add(kb, "b", _clustered(100, 2))
        info = kb.index_info()
        assert info.trained_size == 400 and info.size == 500  # updated in place, not retrained
        ids, _ = kb.vectors()
        _, found = kb.search(kb.vectors(ids[-5:].tolist())[1], 1)
        assert found[:, 0].tolist() == ids[-5:].tolist()  # the added vectors are searchable
        _add(kb, "c", _clustered(400, 3))
        assert kb.index_info().trained_size == 900

    def test_deletes_with_ivf_and_back_to_flat(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path, ann_threshold=500)
        _add(kb, "a", _clustered(300, 1))
        _add(kb, "b", _clustered(300, 2))
        _add(kb, "c", _clustered(300, 3))
        doomed = {c.chunk_id for c in kb.all_chunks() if c.document == "b"}
        kb.delete("b")
        info = kb.index_info()
        assert info.kind == "ivf" and info.size == 600 and kb.size == 600
        _, ids = kb.search(_clustered(200, 5), 20)
        assert not doomed & set(ids.ravel().tolist())
        assert _recall(kb, _clustered(100, 6)) >= 0.98
        kb.delete("a")
        assert kb.index_info().kind == "flat" and kb.size == 300
        kb.delete("c")
        assert not list(tmp_path.glob(f"ann-{kb.generation()}*"))
        assert len(list(tmp_path.glob("ann-*"))) <= 1  # at most the previous generation's, for open readers

    def test_vectors_by_ids_keep_order_and_skip_unknown(self, tmp_path: Path) -> None:
        kb = KnowledgeBase(tmp_path)
        _, vecs = _doc(kb, "a.txt", b"a", n=5)
        ids, all_vecs = kb.vectors()
        np.testing.assert_allclose(all_vecs, vecs, atol=1e-6)
        got_ids, got = kb.vectors([int(ids[3]), 999_999, int(ids[0])])
        assert got_ids.tolist() == [ids[3], ids[0]]
        np.testing.assert_allclose(got, vecs[[3, 0]], atol=1e-6)
        assert kb.norms([int(ids[1]), 999_999]).shape == (2,)

    def test_threshold_validated(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="ann_threshold"):
            KnowledgeBase(tmp_path, ann_threshold=0)

    def test_ivf_lists(self) -> None:
        from rag_core.store import ivf_lists

        assert ivf_lists(10) == 64 and ivf_lists(100_000) == 1024
