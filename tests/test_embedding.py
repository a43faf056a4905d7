"""rag_core.embedding: bundled model offline, shapes, unit norm, order, fast failure for missing models."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from rag_core.embedding import Embedder, ModelNotAvailable, resolve_model


class TestEmbedder:
    def test_bundled_model_loads_offline(self, embedder: Embedder) -> None:
        assert embedder.name == "all-MiniLM-L6-v2"
        assert embedder.dimension == 384 and embedder.max_seq_length == 256

    def test_str_gives_vector_list_gives_matrix(self, embedder: Embedder) -> None:
        assert embedder.encode("leave policy").shape == (384,)
        assert embedder.encode(["a", "b", "c"]).shape == (3, 384)
        assert embedder.encode([]).shape == (0, 384)

    def test_unit_norm_float32(self, embedder: Embedder) -> None:
        v = embedder.encode(["Annual leave is 20 days.", "VPN is required."])
        assert v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)

    def test_order_restored_after_length_sort(self, embedder: Embedder) -> None:
        texts = ["short", "a much longer sentence about parental leave and benefits " * 3, "mid length text"]
        batch = embedder.encode(texts)
        single = np.vstack([embedder.encode(t) for t in texts])
        np.testing.assert_allclose(batch, single, atol=2e-2)
        assert np.argmax(batch @ single[1]) == 1

    def test_semantics(self, embedder: Embedder) -> None:
        q, a, b = embedder.encode(["days off when a relative dies", "bereavement leave", "expense receipts"])
        assert q @ a > q @ b

    def test_progress_callback(self, embedder: Embedder) -> None:
        calls: list[tuple[int, int]] = []
        e = Embedder(batch_size=2)
        e.encode(["a", "b", "c", "d", "e"], progress=lambda d, t: calls.append((d, t)))
        assert calls == [(2, 5), (4, 5), (5, 5)]

    def test_norms_returned(self, embedder: Embedder) -> None:
        unit, norms = embedder.encode_with_norms(["hello world"])
        assert unit.shape == (1, 384) and norms.shape == (1,) and norms[0] > 0

    def test_validation(self) -> None:
        with pytest.raises(ValueError, match="precision"):
            Embedder(precision="int3")


class TestModelResolution:
    def test_missing_hub_model_fails_fast_with_advice(self) -> None:
        t0 = time.monotonic()
        with pytest.raises(ModelNotAvailable, match="not on this machine.*RAG_ALLOW_DOWNLOADS"):
            Embedder("nobody/no-such-model-xyz")
        assert time.monotonic() - t0 < 30

    def test_missing_local_file(self, tmp_path: Path) -> None:
        f = tmp_path / "model.bin"
        f.write_bytes(b"x")
        with pytest.raises(ModelNotAvailable, match="is a file"):
            resolve_model(str(f))

    def test_bundled_name_maps_to_package(self) -> None:
        target, local_only = resolve_model("all-MiniLM-L6-v2")
        assert Path(target, "config.json").exists() and local_only
