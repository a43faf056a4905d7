"""rag_core.types: JSON forms are derived from the fields, and the CLI contract's keys are exactly these."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pytest

from rag_core.types import (
    Answer,
    Chunk,
    Citation,
    DocumentInfo,
    Hit,
    IngestResult,
    NewDocument,
    Page,
    document_id_for,
    json_of,
    sha256_hex,
)


class TestJson:
    def test_contract_keys(self) -> None:
        hit = Hit(1, 0.5, "a.pdf", "abc", 2, 7, "text", start=3, end=9, dense_rank=1, bm25_rank=2)
        assert list(hit.to_json()) == [
            "rank",
            "score",
            "document",
            "document_id",
            "page",
            "chunk_id",
            "text",
            "page_label",
        ]
        assert hit.page_cited == "page 2" and replace(hit, page_label="ii").page_cited == "page ii (PDF p. 2)"
        assert "bm25_rank" in hit.evidence_json() and "start" not in hit.evidence_json()
        result = IngestResult("a.pdf", "failed", None, 0, 0, "damaged", "damaged")
        assert list(result.to_json()) == [
            "file",
            "status",
            "document_id",
            "pages",
            "chunks",
            "error",
            "replaces",
            "version",
            "ocr_pages",
        ]
        doc = DocumentInfo("abc", "a.pdf", "f" * 64, "pdf", 100, 3, 9, "2026-12-03T10:00:00+00:00")
        assert list(doc.to_json()) == [
            "document_id",
            "name",
            "sha256",
            "kind",
            "pages",
            "chunks",
            "added_at",
            "version",
        ]

    def test_nested_records_and_renamed_fields(self) -> None:
        answer = Answer("q?", "It is 20 days [1].", "extractive", True, [Citation(1, "a.pdf", 2, 7)], [], "p")
        out = answer.to_json()
        assert out["answer"] == "It is 20 days [1]." and out["citations"] == [
            {"document": "a.pdf", "page": 2, "chunk_id": 7}
        ]
        assert list(out) == ["question", "answer", "generator", "grounded", "citations", "hits", "prompt", "warning"]

    def test_a_new_field_reaches_the_json(self) -> None:
        @dataclasses.dataclass(frozen=True)
        class Later:
            a: int
            b: str = "x"

        assert json_of(Later(1)) == {"a": 1, "b": "x"}


class TestNewDocument:
    def test_checks_its_parts_agree(self) -> None:
        chunks = [Chunk(1, 0, 4, "text", 1)]
        vecs = np.ones((1, 4), np.float32) / 2
        doc = NewDocument(
            "a.txt",
            b"text",
            sha256_hex(b"text"),
            "text",
            1,
            [Page(1, "text")],
            chunks,
            vecs,
            np.ones(1, np.float32),
            "m",
        )
        assert doc.document_id == document_id_for(sha256_hex(b"text")) and doc.dimension == 4
        with pytest.raises(ValueError, match="same length"):
            NewDocument(
                "a.txt", b"t", "0" * 64, "text", 1, [], chunks, np.ones((2, 4), np.float32), np.ones(1, np.float32), "m"
            )
        with pytest.raises(ValueError, match="at least one chunk"):
            NewDocument(
                "a.txt", b"t", "0" * 64, "text", 1, [], [], np.ones((0, 4), np.float32), np.ones(0, np.float32), "m"
            )
