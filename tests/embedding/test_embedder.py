"""rag_core.embedding.embedder: shapes, unit norm, order, progress, the query and passage entry points."""

from __future__ import annotations

import numpy as np
import pytest

from rag_core.embedding import Embedder, shared_embedder


class TestEmbedder:
    def test_bundled_model_loads_offline(self, embedder: Embedder) -> None:
        assert embedder.name == "all-MiniLM-L6-v2"
        assert embedder.dimension == 384 and embedder.max_seq_length == 256

    def test_str_gives_vector_list_gives_matrix(self, embedder: Embedder) -> None:
        for encode in (embedder.encode_passage, embedder.encode_query):
            assert encode("leave policy").shape == (384,)
            assert encode(["a", "b", "c"]).shape == (3, 384)
            assert encode([]).shape == (0, 384)

    def test_unit_norm_float32(self, embedder: Embedder) -> None:
        v = embedder.encode_passage(["Annual leave is 20 days.", "VPN is required."])
        assert v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)

    def test_order_restored_after_length_sort(self, embedder: Embedder) -> None:
        texts = ["short", "a much longer sentence about parental leave and benefits " * 3, "mid length text"]
        batch = embedder.encode_passage(texts)
        single = np.vstack([embedder.encode_passage(t) for t in texts])
        np.testing.assert_allclose(batch, single, atol=2e-2)
        assert np.argmax(batch @ single[1]) == 1

    def test_semantics(self, embedder: Embedder) -> None:
        q = embedder.encode_query("days off when a relative dies")
        a, b = embedder.encode_passage(["bereavement leave", "expense receipts"])
        assert q @ a > q @ b

    def test_progress_callback(self) -> None:
        calls: list[tuple[int, int]] = []
        e = Embedder(batch_size=2)
        e.encode_passage(["a", "b", "c", "d", "e"], progress=lambda d, t: calls.append((d, t)))
        assert calls == [(2, 5), (4, 5), (5, 5)]

    def test_norms_returned(self, embedder: Embedder) -> None:
        unit, norms = embedder.encode_passage_with_norms(["hello world"])
        assert unit.shape == (1, 384) and norms.shape == (1,) and norms[0] > 0
        unit, norms = embedder.encode_query_with_norms("hello world")
        assert unit.shape == (384,) and norms.shape == (1,)

    def test_single_family_queries_and_passages_agree(self, embedder: Embedder) -> None:
        texts = ["Annual leave is 20 days.", "VPN is required."]
        np.testing.assert_array_equal(embedder.encode_query(texts), embedder.encode_passage(texts))

    def test_old_entry_points_are_gone(self, embedder: Embedder) -> None:
        for name in ("encode", "encode_with_norms", "encode_queries", "encode_queries_with_norms"):
            assert not hasattr(embedder, name), name

    def test_validation(self) -> None:
        with pytest.raises(ValueError, match="precision"):
            Embedder(precision="int3")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="runtime"):
            Embedder(runtime="onnx")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="batch_size"):
            Embedder(batch_size=0)

    def test_shared_embedder_is_one_per_configuration(self, embedder: Embedder) -> None:
        assert shared_embedder() is embedder
        assert shared_embedder(runtime="torch") is shared_embedder(runtime="torch")
        assert shared_embedder(runtime="torch") is not embedder
