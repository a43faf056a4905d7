"""rag_core.search: metrics (cosine / dot / L2) and how they relate; hits carry page and text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag_core.config import Settings
from rag_core.search import Searcher, fuse, fuse_scores, metric_scores, rank_of_first, search_vectors
from rag_core.store import LocalStore
from rag_core.types import Chunk, Hit, NewDocument, Page


def _kb_with_raw_vectors(tmp_path: Path, raw: np.ndarray) -> LocalStore:
    kb = LocalStore(tmp_path)
    norms = np.linalg.norm(raw, axis=1).astype(np.float32)
    unit = (raw / norms[:, None]).astype(np.float32)
    chunks = [Chunk(i + 1, 0, 2, f"c{i}", 1) for i in range(len(raw))]
    kb.add(
        NewDocument(
            name="d.txt",
            data=b"d",
            sha256="d" * 64,
            kind="txt",
            pages=[Page(i + 1, f"c{i}") for i in range(len(raw))],
            page_count=len(raw),
            chunks=chunks,
            vectors=unit,
            norms=norms,
            embedder="toy",
        )
    )
    return kb


class TestMetrics:
    def test_identical_ranking_for_unit_vectors(self) -> None:
        rng = np.random.default_rng(0)
        u = rng.normal(size=(50, 16)).astype(np.float32)
        u /= np.linalg.norm(u, axis=1)[:, None]
        q = u[0] * 0.5 + u[1] * 0.5
        q /= np.linalg.norm(q)
        ones = np.ones(50, np.float32)
        orders = [np.argsort(-metric_scores(u, ones, q, 1.0, m)) for m in ("cosine", "dot", "l2")]
        assert (orders[0] == orders[1]).all() and (orders[0] == orders[2]).all()

    def test_l2_is_sqrt_of_two_minus_two_cos_for_unit_vectors(self) -> None:
        u = np.array([[1.0, 0.0], [0.6, 0.8]], np.float32)
        d = -metric_scores(u, np.ones(2, np.float32), u[0], 1.0, "l2")
        np.testing.assert_allclose(d, np.sqrt(2 - 2 * (u @ u[0])), atol=1e-6)

    def test_dot_favours_long_vectors_when_not_normalised(self, tmp_path: Path) -> None:
        # c0 points at the query but is short; c1 is 40 degrees off but 10x longer.
        raw = np.array([[1.0, 0.0], [7.66, 6.43]], np.float32)
        kb = _kb_with_raw_vectors(tmp_path, raw)
        q = np.array([[1.0, 0.0]], np.float32)
        cos = search_vectors(kb, q, np.array([1.0], np.float32), 2, "cosine")[0]
        dot = search_vectors(kb, q, np.array([1.0], np.float32), 2, "dot")[0]
        l2 = search_vectors(kb, q, np.array([1.0], np.float32), 2, "l2")[0]
        assert [h.text for h in cos] == ["c0", "c1"]
        assert [h.text for h in dot] == ["c1", "c0"]
        assert [h.text for h in l2] == ["c0", "c1"]
        assert dot[0].score == pytest.approx(7.66, rel=1e-3)
        assert l2[0].score == pytest.approx(0.0, abs=1e-5)

    def test_unknown_metric_lists_valid(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="cosine"):
            search_vectors(LocalStore(tmp_path), np.ones((1, 2), np.float32), np.ones(1, np.float32), 3, "jaccard")


class TestHits:
    def test_hits_have_page_rank_and_text(self, tmp_path: Path) -> None:
        raw = np.eye(3, dtype=np.float32)
        kb = _kb_with_raw_vectors(tmp_path, raw)
        hits = search_vectors(kb, raw[2:3], np.ones(1, np.float32), 2)[0]
        assert len(hits) == 2 and (hits[0].rank, hits[0].page, hits[0].text) == (1, 3, "c2")
        assert hits[1].rank == 2 and hits[1].score == pytest.approx(0.0, abs=1e-6)
        assert set(hits[0].to_json()) == {
            "rank",
            "score",
            "document",
            "document_id",
            "page",
            "page_label",
            "chunk_id",
            "text",
        }

    def test_rank_of_first(self) -> None:
        hits = [Hit(1, 0.9, "a.pdf", "x", 2, 1, "t"), Hit(2, 0.8, "b.pdf", "y", 4, 2, "t")]
        assert rank_of_first(hits, "b.pdf", [3, 4]) == 2
        assert rank_of_first(hits, "b.pdf", [5]) is None


class TestFusion:
    def test_rrf_hand_computed(self) -> None:
        fused = fuse([1, 2, 3], [(5.0, 3), (4.0, 4), (1.0, 1)], k=4, rrf_k=10)
        expected = {1: 1 / 11 + 1 / 13, 2: 1 / 12, 3: 1 / 13 + 1 / 11, 4: 1 / 12}
        assert {f.chunk_id: f.fused_score for f in fused} == pytest.approx(expected)
        # ties (1 and 3; 2 and 4) break by dense rank, and BM25-only chunks keep their BM25 score
        assert [f.chunk_id for f in fused] == [1, 3, 2, 4]
        assert [(f.dense_rank, f.bm25_rank, f.bm25_score) for f in fused][-1] == (None, 2, 4.0)

    def test_rrf_weights(self) -> None:
        fused = fuse([1, 2], [(9.0, 2), (1.0, 1)], k=2, rrf_k=1, dense_weight=1.0, bm25_weight=0.1)
        assert [f.chunk_id for f in fused] == [1, 2]  # dense order wins when BM25 barely counts

    def test_convex_hand_computed(self) -> None:
        fused = fuse_scores([(0.9, 1), (0.5, 2)], [(10.0, 2), (2.0, 3)], k=3, dense_weight=0.7)
        assert {f.chunk_id: f.fused_score for f in fused} == pytest.approx({1: 0.7, 2: 0.3, 3: 0.0})

    def test_validation(self) -> None:
        with pytest.raises(ValueError, match="rrf_k"):
            fuse([1], [], k=1, rrf_k=0)
        with pytest.raises(ValueError, match="dense_weight"):
            fuse_scores([], [], k=1, dense_weight=2)


class _FakeEmbedder:
    """Maps each query to a fixed raw vector: the Searcher's logic without a model."""

    def __init__(self, vectors: dict[str, list[float]], metric: str = "cosine") -> None:
        self.vectors = vectors
        self.preferred_metric = metric
        self.loaded = 0

    def encode_query_with_norms(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        raw = np.array([self.vectors[t] for t in texts], np.float32)
        norms = np.linalg.norm(raw, axis=1).astype(np.float32)
        return (raw / norms[:, None]).astype(np.float32), norms


class TestSearcher:
    def _searcher(self, tmp_path: Path, **settings: object) -> tuple[Searcher, _FakeEmbedder]:
        store = _kb_with_raw_vectors(tmp_path / "kb", np.array([[1.0, 0.0], [7.66, 6.43], [0.0, 1.0]], np.float32))
        fake = _FakeEmbedder({"east": [1.0, 0.0], "north": [0.0, 1.0], "c1": [0.0, 1.0]})

        def embedder() -> Any:
            fake.loaded += 1
            return fake

        return Searcher(Settings(data_dir=tmp_path / "kb", **settings), store, embedder), fake  # type: ignore[arg-type]

    def test_modes_and_one_meaning_of_score(self, tmp_path: Path) -> None:
        searcher, _ = self._searcher(tmp_path)
        dense = searcher.search("east", k=2, mode="dense")
        assert [h.text for h in dense] == ["c0", "c1"] and dense[0].dense_rank == 1
        bm25 = searcher.search("c1", k=3, mode="bm25")
        assert [h.text for h in bm25] == ["c1"] and bm25[0].bm25_rank == 1
        hybrid = searcher.search("c1", k=3, mode="hybrid")
        assert hybrid[0].text == "c1" and hybrid[0].fused_score is not None
        # in every mode `score` is the cosine to the query: c1 is 40 degrees from north
        assert hybrid[0].score == pytest.approx(6.43 / np.hypot(7.66, 6.43), abs=1e-4)
        assert searcher.search(["east", "north"], k=1, mode="dense")[1][0].text == "c2"

    def test_metric_default_follows_the_encoder(self, tmp_path: Path) -> None:
        searcher, fake = self._searcher(tmp_path)
        assert searcher.default_metric == "cosine"
        fake.preferred_metric = "dot"
        assert searcher.default_metric == "dot"
        dot_first = searcher.search("east", k=1, mode="dense")[0]
        assert dot_first.text == "c1"  # the long vector wins under dot product, the DPR default
        searcher.settings = Settings(metric="l2")
        assert searcher.default_metric == "l2"

    def test_empty_store_loads_no_model(self, tmp_path: Path) -> None:
        fake = _FakeEmbedder({})

        def embedder() -> Any:
            fake.loaded += 1
            return fake

        searcher = Searcher(Settings(data_dir=tmp_path), LocalStore(tmp_path), embedder)  # type: ignore[arg-type]
        assert searcher.search("anything") == [] and searcher.search(["a", "b"]) == [[], []]
        assert fake.loaded == 0
        with pytest.raises(ValueError, match="mode"):
            searcher.search("x", mode="fuzzy")  # type: ignore[arg-type]
