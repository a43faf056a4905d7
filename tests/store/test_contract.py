"""The storage contract, run against every backend: rows and vectors together, duplicates, deletes,
reopening, the embedder check, snapshots and concurrent writers.

Only `KnowledgeStore` members are used here, so a new backend passes these by adding itself to BACKENDS.
PostgreSQL runs on a private server started for the session (tests/conftest.py, `pg_server`), with a
fresh database per test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rag_core.store import (
    AmbiguousDocument,
    DocumentNotFound,
    DuplicateDocument,
    EmbedderMismatch,
    KnowledgeStore,
    StoreError,
    open_store,
)
from rag_core.store.protocol import resolve_ref
from rag_core.types import DocumentInfo, FloatArray, document_id_for, sha256_hex

from .conftest import DIM, new_document

BACKENDS = ["local", "postgresql"]

Opener = Callable[[], KnowledgeStore]


@pytest.fixture(params=BACKENDS)
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens another handle on one fresh, empty store (as another process would)."""
    if request.param == "local":
        return lambda: open_store(tmp_path / "kb")
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return lambda: open_store(url, cache_root=tmp_path / "cache")
    raise AssertionError(f"unknown backend {request.param}")


@pytest.fixture
def store(reopen: Opener) -> KnowledgeStore:
    return reopen()


def _add(
    store: KnowledgeStore, name: str, data: bytes, n: int = 3, seed: int = 0, embedder: str = "toy", dim: int = DIM
) -> tuple[DocumentInfo, FloatArray]:
    doc = new_document(name, data, n=n, seed=seed, embedder=embedder, dim=dim)
    return store.add(doc), doc.vectors


class TestRowsAndVectors:
    def test_is_a_knowledge_store(self, store: KnowledgeStore) -> None:
        assert isinstance(store, KnowledgeStore)
        assert store.cache_dir.is_dir()

    def test_add_and_search_finds_own_vectors(self, store: KnowledgeStore) -> None:
        info, vecs = _add(store, "a.txt", b"aaa")
        assert info.document_id == document_id_for(sha256_hex(b"aaa"))
        scores, ids = store.search(vecs[1], 1)
        row = store.chunks_by_ids([int(ids[0][0])])[int(ids[0][0])]
        assert row.text == "s1" and row.document == "a.txt" and scores[0][0] == pytest.approx(1.0, abs=1e-5)
        assert store.size == 3 and store.embedder_name == "toy" and store.dimension == DIM

    def test_added_document_is_listed_as_returned(self, store: KnowledgeStore) -> None:
        info, _ = _add(store, "a.txt", b"aaa")
        assert info.name == "a.txt" and info.sha256 == sha256_hex(b"aaa") and info.kind == "txt"
        assert (info.bytes, info.pages, info.chunks) == (3, 1, 3)
        assert store.documents() == [info]
        assert store.find_by_sha(info.sha256) == info and store.find_by_sha("0" * 64) is None

    def test_original_kept(self, store: KnowledgeStore) -> None:
        info, _ = _add(store, "../../evil name.txt", b"bytes")
        assert store.original(info) == b"bytes"

    def test_duplicate_bytes_rejected(self, store: KnowledgeStore) -> None:
        _add(store, "a.txt", b"same")
        with pytest.raises(DuplicateDocument, match="a.txt") as caught:
            _add(store, "b.txt", b"same")
        assert caught.value.existing.name == "a.txt"
        assert len(store.documents()) == 1 and store.size == 3

    def test_reopen_in_new_object_sees_everything(self, store: KnowledgeStore, reopen: Opener) -> None:
        _, vecs = _add(store, "a.txt", b"a")
        store2 = reopen()
        assert [d.name for d in store2.documents()] == ["a.txt"]
        assert store2.size == 3
        _, ids = store2.search(vecs[2], 1)
        assert store2.chunks_by_ids([int(ids[0][0])])[int(ids[0][0])].text == "s2"

    def test_delete_removes_rows_vectors_and_original(self, store: KnowledgeStore, reopen: Opener) -> None:
        a, va = _add(store, "a.txt", b"a", seed=1)
        _b, _ = _add(store, "b.txt", b"b", seed=2)
        assert store.original(a) == b"a"
        assert store.delete("a.txt") == a
        assert [d.name for d in store.documents()] == ["b.txt"] and store.size == 3
        _, ids = store.search(va[0], 3)
        assert all(store.chunks_by_ids([int(i)])[int(i)].document == "b.txt" for i in ids[0])
        assert store.original(a) is None
        assert reopen().size == 3

    def test_delete_by_id_prefix_and_errors(self, store: KnowledgeStore) -> None:
        a, _ = _add(store, "a.txt", b"1")
        _add(store, "b.txt", b"2", seed=3)
        with pytest.raises(DocumentNotFound, match="rag_core docs"):
            store.delete("nope")
        assert store.delete(a.document_id[:8]).document_id == a.document_id
        assert [d.name for d in store.documents()] == ["b.txt"]

    def test_two_current_documents_of_one_name_are_ambiguous(self) -> None:
        # Only a knowledge base written before versions can hold them; its user must pick by id.
        a = DocumentInfo("a" * 16, "same.txt", "a" * 64, "txt", 1, 1, 1, "2026-01-01T00:00:00+00:00")
        b = replace(a, document_id="b" * 16, sha256="b" * 64)
        with pytest.raises(AmbiguousDocument, match="2 documents are named"):
            resolve_ref([a, b], "same.txt")
        assert resolve_ref([a, replace(b, current=False)], "same.txt") == a

    def test_resolve_by_id_sha_and_name(self, store: KnowledgeStore) -> None:
        a, _ = _add(store, "a.txt", b"a")
        assert store.resolve(a.document_id) == store.resolve(a.sha256) == store.resolve("a.txt") == a
        with pytest.raises(DocumentNotFound):
            store.resolve(a.document_id[:5])  # prefixes need 6 digits

    def test_chunk_ids_never_reused(self, store: KnowledgeStore) -> None:
        _add(store, "a.txt", b"a")
        first = {c.chunk_id for c in store.all_chunks()}
        store.delete("a.txt")
        _add(store, "b.txt", b"b")
        assert first.isdisjoint({c.chunk_id for c in store.all_chunks()})

    def test_empty_store_search(self, store: KnowledgeStore) -> None:
        scores, ids = store.search(np.ones(DIM, np.float32), 5)
        assert scores.shape == (1, 0) and ids.shape == (1, 0)
        assert store.size == 0 and store.embedder_name is None and store.dimension is None
        ids_, vecs = store.vectors()
        assert ids_.shape == (0,) and vecs.shape[0] == 0 and store.all_chunks() == [] and store.documents() == []

    def test_vectors_by_ids_keep_order_and_skip_unknown(self, store: KnowledgeStore) -> None:
        _, vecs = _add(store, "a.txt", b"a", n=5)
        ids, all_vecs = store.vectors()
        np.testing.assert_allclose(all_vecs, vecs, atol=1e-6)
        got_ids, got = store.vectors([int(ids[3]), 999_999, int(ids[0])])
        assert got_ids.tolist() == [ids[3], ids[0]]
        np.testing.assert_allclose(got, vecs[[3, 0]], atol=1e-6)
        assert store.norms([int(ids[1]), 999_999]).shape == (2,)

    def test_chunks_come_back_with_context_and_printed_page(self, store: KnowledgeStore) -> None:
        doc = new_document("a.txt", b"a", n=2)
        doc = replace(
            doc,
            pages=[replace(doc.pages[0], label="iv")],
            chunks=[replace(c, context="Leave > Sick leave") for c in doc.chunks],
        )
        info = store.add(doc)
        rows = store.all_chunks()
        assert {(r.context, r.page_label, r.document_id) for r in rows} == {
            ("Leave > Sick leave", "iv", info.document_id)
        }
        assert store.chunks_by_ids([rows[0].chunk_id])[rows[0].chunk_id] == rows[0]
        _, _, texts = store.chunk_texts()
        assert texts == ["Leave > Sick leave\ns0", "Leave > Sick leave\ns1"]  # what BM25 indexes

    def test_norms_are_the_stored_ones(self, store: KnowledgeStore) -> None:
        doc = new_document("a.txt", b"a", n=4)
        store.add(doc)
        ids = [c.chunk_id for c in store.all_chunks()]
        np.testing.assert_allclose(store.norms(ids), doc.norms, rtol=1e-6)
        assert store.norms([999_999]).tolist() == [1.0]
        assert [r.norm for r in store.chunks_by_ids(ids).values()] == pytest.approx(doc.norms.tolist(), rel=1e-6)


class TestEmbedder:
    def test_embedder_mismatch_is_clear(self, store: KnowledgeStore) -> None:
        _add(store, "a.txt", b"a")
        with pytest.raises(EmbedderMismatch, match=r"built with toy \(8-d\).*other \(16-d\).*(data dir|database)"):
            _add(store, "b.txt", b"b", embedder="other", dim=16)
        assert store.size == 3

    def test_check_embedder(self, store: KnowledgeStore) -> None:
        store.check_embedder("anything", 3)  # an empty store takes any embedder
        _add(store, "a.txt", b"a")
        store.check_embedder("toy")
        store.check_embedder("toy", DIM)
        with pytest.raises(EmbedderMismatch):
            store.check_embedder("toy", DIM + 1)
        with pytest.raises(EmbedderMismatch):
            store.check_embedder("other")

    def test_emptied_store_accepts_new_embedder(self, store: KnowledgeStore) -> None:
        _add(store, "a.txt", b"a")
        store.delete("a.txt")
        assert store.embedder_name is None and store.dimension is None
        _add(store, "b.txt", b"b", embedder="other", dim=16)
        assert store.embedder_name == "other" and store.dimension == 16


class TestGenerations:
    def test_every_write_moves_the_generation_on(self, store: KnowledgeStore, reopen: Opener) -> None:
        assert store.generation() == 0
        _add(store, "a.txt", b"a")
        after_add = store.generation()
        assert after_add > 0 and reopen().generation() == after_add
        with pytest.raises(DuplicateDocument):
            _add(store, "a.txt", b"a")
        assert store.generation() == after_add  # a refused write changes nothing
        store.delete("a.txt")
        assert store.generation() > after_add

    def test_chunk_texts_is_a_snapshot_of_the_generation(self, store: KnowledgeStore) -> None:
        _add(store, "a.txt", b"a", n=4)
        generation, ids, texts = store.chunk_texts()
        assert generation == store.generation()
        assert ids == sorted(c.chunk_id for c in store.all_chunks()) and texts == ["s0", "s1", "s2", "s3"]

    def test_small_store_is_searched_exactly(self, store: KnowledgeStore) -> None:
        _, vecs = _add(store, "a.txt", b"a", n=5)
        info = store.index_info()
        assert info.kind == "flat" and info.size == 5 and info.recall_at_10 == 1.0
        _, approx = store.search(vecs, 3)
        _, exact = store.search(vecs, 3, exact=True)
        assert approx.tolist() == exact.tolist()

    def test_concurrent_writers_in_threads_all_land(self, store: KnowledgeStore, reopen: Opener) -> None:
        errors: list[BaseException] = []

        def write(i: int) -> None:
            try:
                _add(reopen(), f"{i}.txt", f"doc{i}".encode(), seed=i)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(store.documents()) == 6 and store.size == 18 and len(store.all_chunks()) == 18


class TestVersions:
    """A file under the name of a current document replaces it in one write; old versions are kept,
    never searched, and can be restored."""

    def test_same_name_new_bytes_replaces_atomically(self, store: KnowledgeStore, reopen: Opener) -> None:
        v1, vecs1 = _add(store, "handbook.pdf", b"v1", n=4, seed=1)
        other, _ = _add(store, "other.txt", b"o", n=2, seed=9)
        generation = store.generation()
        v2, vecs2 = _add(store, "handbook.pdf", b"v2", n=3, seed=2)
        assert (v2.version, v2.replaces, v2.current) == (2, v1.document_id, True)
        assert store.generation() == generation + 1  # one write: in and out together
        assert [d.document_id for d in store.documents()] == [other.document_id, v2.document_id]
        everything = reopen().documents(all_versions=True)
        assert {(d.document_id, d.version, d.current) for d in everything} == {
            (v1.document_id, 1, False),
            (other.document_id, 1, True),
            (v2.document_id, 2, True),
        }
        assert store.size == 5 and {c.document_id for c in store.all_chunks()} == {other.document_id, v2.document_id}
        _, ids = store.search(vecs1, 1, exact=True)
        assert v1.document_id not in {store.chunks_by_ids([int(i)])[int(i)].document_id for i in ids[:, 0]}
        _, ids = store.search(vecs2[:1], 1, exact=True)
        assert store.chunks_by_ids([int(ids[0, 0])])[int(ids[0, 0])].document_id == v2.document_id
        assert store.original(v1) == b"v1"  # kept for audit
        assert store.resolve("handbook.pdf") == v2 and store.resolve(v1.document_id).current is False
        generation, chunk_ids, _ = store.chunk_texts()
        assert len(chunk_ids) == 5

    def test_the_old_bytes_again_are_a_duplicate_of_the_old_version(self, store: KnowledgeStore) -> None:
        v1, _ = _add(store, "h.pdf", b"v1")
        _add(store, "h.pdf", b"v2", seed=2)
        with pytest.raises(DuplicateDocument) as e:
            _add(store, "h.pdf", b"v1")
        assert e.value.existing.document_id == v1.document_id and not e.value.existing.current

    def test_restore_brings_the_old_version_back_without_reembedding(
        self, store: KnowledgeStore, reopen: Opener
    ) -> None:
        v1, vecs1 = _add(store, "h.pdf", b"v1", n=4, seed=1)
        v2, _ = _add(store, "h.pdf", b"v2", n=3, seed=2)
        restored = store.restore(v1.document_id)
        assert restored.current and restored.version == 1
        fresh = reopen()
        assert [(d.document_id, d.current) for d in fresh.documents(all_versions=True)] == [
            (v1.document_id, True),
            (v2.document_id, False),
        ]
        assert fresh.size == 4
        scores, ids = fresh.search(vecs1, 1, exact=True)
        assert np.allclose(scores[:, 0], 1.0, atol=1e-5)
        assert {fresh.chunks_by_ids([int(i)])[int(i)].document_id for i in ids[:, 0]} == {v1.document_id}
        with pytest.raises(StoreError, match="already the current"):
            fresh.restore(v1.document_id)
        v3, _ = _add(fresh, "h.pdf", b"v3", seed=3)
        assert (v3.version, v3.replaces) == (3, v1.document_id)

    def test_deleting_a_document_deletes_its_history_an_old_version_alone(self, store: KnowledgeStore) -> None:
        v1, _ = _add(store, "h.pdf", b"v1")
        v2, _ = _add(store, "h.pdf", b"v2", seed=2)
        v3, _ = _add(store, "h.pdf", b"v3", seed=3)
        keep, _ = _add(store, "k.txt", b"k", seed=4)
        assert store.delete(v1.document_id).document_id == v1.document_id  # an old version: only it goes
        assert [d.document_id for d in store.documents(all_versions=True)] == [
            v2.document_id,
            v3.document_id,
            keep.document_id,
        ]
        assert store.size == 6
        store.delete("h.pdf")
        assert [d.document_id for d in store.documents(all_versions=True)] == [keep.document_id]
        assert store.original(v2) is None and store.size == 3

    def test_near_duplicates_by_identical_chunk_texts(self, store: KnowledgeStore) -> None:
        a, _ = _add(store, "a.txt", b"a", n=20)
        texts = [c.text for c in store.all_chunks()]
        assert [(d.document_id, share) for d, share in store.near_duplicates(texts, threshold=0.95)] == [
            (a.document_id, 1.0)
        ]
        assert store.near_duplicates([*texts[:18], "new", "other"], threshold=0.95) == []
        assert store.near_duplicates([*texts[:19], "new"], threshold=0.95)[0][1] == pytest.approx(0.95)
