"""Copying a local knowledge base into PostgreSQL (`PostgresStore.import_from`, behind `python -m rag_core
migrate`): every version with its record, pages, chunk ids, norms, vectors and original arrives as it
was; the copy is all or nothing; a database holding other documents is refused and left as it was."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rag_core.store import LocalStore, StoreError
from rag_core.store.local import export
from rag_core.store.postgres import PostgresStore
from rag_core.store.protocol import StoredVersion
from rag_core.types import ChunkRow, DocumentInfo, Page

from .conftest import new_document


def _local(tmp_path: Path) -> LocalStore:
    """Three documents, one of them in two versions, with a page label, an OCR page and a context."""
    store = LocalStore(tmp_path / "kb")
    first = new_document("policy.txt", b"policy v1", n=4, seed=1)
    store.add(replace(first, pages=[Page(1, first.pages[0].text, label="iv", ocr=True)]))
    store.add(new_document("handbook.txt", b"handbook", n=6, seed=2))
    second = new_document("policy.txt", b"policy v2", n=5, seed=3)
    store.add(replace(second, chunks=[replace(c, context="Policy > Leave") for c in second.chunks]))
    store.add(new_document("expenses.txt", b"expenses", n=3, seed=4))
    return store


def _chunks(store: LocalStore | PostgresStore) -> list[ChunkRow]:
    """The chunk rows with norms as the float32 they are (PostgreSQL's REAL reads back as its shortest
    decimal)."""
    return [replace(c, norm=float(np.float32(c.norm)), page_ocr=bool(c.page_ocr)) for c in store.all_chunks()]


def _same_state(a: LocalStore | PostgresStore, b: LocalStore | PostgresStore) -> None:
    assert a.documents(all_versions=True) == b.documents(all_versions=True)
    assert _chunks(a) == _chunks(b)
    ids_a, vecs_a = a.vectors()
    ids_b, vecs_b = b.vectors()
    assert np.array_equal(ids_a, ids_b) and np.allclose(vecs_a, vecs_b, atol=1e-7)
    assert (a.embedder_name, a.dimension, a.size) == (b.embedder_name, b.dimension, b.size)


def test_every_version_arrives_as_it_was(pg_url: str, tmp_path: Path) -> None:
    local = _local(tmp_path)
    target = PostgresStore(pg_url, cache_root=tmp_path)
    seen: list[tuple[int, int]] = []
    with export(local) as source:
        report = target.import_from(source, lambda done, total: seen.append((done, total)))
    assert (report.documents, report.current, report.chunks, report.archived_chunks) == (4, 3, 14, 4)
    assert (report.embedder, report.dimension, report.already, report.missing_originals) == ("toy", 8, False, 0)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    _same_state(local, target)
    ocr_rows = [c for c in target.all_chunks() if c.page_ocr]
    assert ocr_rows == [] and target.resolve("policy.txt").version == 2  # v1 (the OCR page) is archived
    for doc in local.documents(all_versions=True):
        assert target.original(doc) == local.original(doc)
    query = local.vectors()[1][[0, 5, 9]]
    for exact in (True, False):
        s_local, i_local = local.search(query, 5, exact=exact)
        s_target, i_target = target.search(query, 5, exact=exact)
        assert np.array_equal(i_local, i_target) and np.allclose(s_local, s_target, atol=1e-5)

    old = next(d for d in local.documents(all_versions=True) if not d.current)
    local.restore(old.document_id)
    target.restore(old.document_id)  # the archived vectors came along: no re-embedding
    _same_state(local, target)
    assert [c.page_label for c in target.all_chunks() if c.page_ocr] == ["iv"] * 4
    added = target.add(new_document("new.txt", b"new", n=2, seed=5))
    assert min(target.chunks_by_ids(range(1, 100))) == 1  # ids kept; the next ones follow them
    assert {c.chunk_id for c in target.all_chunks() if c.document_id == added.document_id} == {19, 20}


def test_running_it_again_copies_nothing(pg_url: str, tmp_path: Path) -> None:
    local = _local(tmp_path)
    target = PostgresStore(pg_url, cache_root=tmp_path)
    with export(local) as source:
        target.import_from(source)
    generation = target.generation()
    with export(local) as source:
        report = target.import_from(source)
    assert report.already and report.documents == 4 and target.generation() == generation
    _same_state(local, target)


def test_a_database_holding_other_documents_is_refused_and_left_as_it_was(pg_url: str, tmp_path: Path) -> None:
    local = _local(tmp_path)
    target = PostgresStore(pg_url, cache_root=tmp_path)
    target.add(new_document("other.txt", b"other", n=2))
    before = (target.documents(all_versions=True), target.all_chunks(), target.generation())
    with export(local) as source, pytest.raises(StoreError, match="already holds 1 document version.*empty database"):
        target.import_from(source)
    assert (target.documents(all_versions=True), target.all_chunks(), target.generation()) == before


def test_a_failure_half_way_leaves_the_database_empty(pg_url: str, tmp_path: Path) -> None:
    local = _local(tmp_path)
    target = PostgresStore(pg_url, cache_root=tmp_path)
    with export(local) as source:
        calls = 0

        def read_then_fail(doc: DocumentInfo) -> StoredVersion:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise OSError("disk gone")
            return source.read(doc)

        with pytest.raises(OSError, match="disk gone"):
            target.import_from(replace(source, read=read_then_fail))
    assert target.documents(all_versions=True) == [] and target.embedder_name is None and target.generation() == 0
    with export(local) as source:
        assert target.import_from(source).documents == 4  # run again, it lands whole
    _same_state(local, target)


def test_an_empty_knowledge_base_copies_nothing(pg_url: str, tmp_path: Path) -> None:
    target = PostgresStore(pg_url, cache_root=tmp_path)
    with export(LocalStore(tmp_path / "empty")) as source:
        report = target.import_from(source)
    assert report.documents == 0 and target.documents() == [] and target.embedder_name is None
