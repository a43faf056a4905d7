"""rag_core.embedding: bundled model offline, shapes, unit norm, order, fast failure for missing models."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import pytest

from rag_core import embedding
from rag_core.embedding import Embedder, ModelNotAvailable, cache_dir, load_backend, openvino_available, resolve_model


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


needs_openvino = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")
TEXTS = [
    "Annual leave is 20 days per year.",
    "Employees may work from home up to three days per week with approval. " * 5,
    "VPN",
]


class TestRuntimes:
    @needs_openvino
    def test_default_runs_on_openvino_close_to_torch_fp32(self, embedder: Embedder) -> None:
        assert embedder.runtime == "openvino"
        reference = Embedder(runtime="torch", precision="fp32")
        assert reference.runtime == "torch"
        cos = (embedder.encode(TEXTS) * reference.encode(TEXTS)).sum(axis=1)
        assert cos.min() > 0.999
        assert embedder.encode_queries("leave").shape == (384,)

    def test_precision_falls_back_to_fp32_without_bf16(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(embedding, "cpu_has_bf16", lambda: False)
        e = Embedder(runtime="torch")
        assert e.precision == "fp32" and e.runtime == "torch"
        assert e.encode(TEXTS).shape == (3, 384)

    def test_without_openvino_auto_uses_torch_and_explicit_fails_clearly(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def missing(*a: object, **k: object) -> None:
            raise ImportError("No module named 'openvino'")

        monkeypatch.setattr(embedding, "openvino_available", lambda: True)
        monkeypatch.setattr(embedding.OpenVINOModel, "from_sentence_transformer", missing)
        assert Embedder().runtime == "torch"
        with pytest.raises(ModelNotAvailable, match="pip install openvino"):
            Embedder(runtime="openvino")
        monkeypatch.setattr(embedding, "openvino_available", lambda: False)
        assert Embedder().runtime == "torch"

    @needs_openvino
    def test_disagreeing_conversion_is_rejected(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(embedding, "MIN_PROBE_COSINE", 1.5)  # no conversion can pass this
        assert Embedder().runtime == "torch"
        with pytest.raises(ModelNotAvailable, match="disagrees with torch"):
            Embedder(runtime="openvino")

    @needs_openvino
    def test_conversion_cached_and_reused(
        self, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        model = embedder.backend.model  # type: ignore[attr-defined]
        reported: list[object] = []
        with contextlib.suppress(ImportError):  # converting must never report usage (OpenVINO's telemetry)
            import openvino_telemetry

            for name in ("init", "send_event", "send_error"):
                monkeypatch.setattr(openvino_telemetry.Telemetry, name, lambda *a, **k: reported.append(a))
        first = embedding.OpenVINOModel.from_sentence_transformer(model, "fp32", cache_root=tmp_path)
        assert not reported
        (folder,) = (tmp_path / "openvino").iterdir()
        assert (folder / "model.xml").exists() and (folder / "model.bin").exists()
        assert not list((tmp_path / "openvino").glob("*.tmp")) and first.min_cosine > 0.999

        def boom(*a: object) -> None:
            raise AssertionError("converted again although cached")

        monkeypatch.setattr(embedding, "_convert", boom)
        again = embedding.OpenVINOModel.from_sentence_transformer(model, "bf16", cache_root=tmp_path)
        assert again.precision == "bf16" and again.min_cosine > 0.999

    def test_openvino_serves_sentence_transformers_only(self) -> None:
        with pytest.raises(ModelNotAvailable, match="sentence-transformers models"):
            load_backend("dpr:q-model,c-model", runtime="openvino")
        with pytest.raises(ValueError, match="runtime"):
            Embedder(runtime="onnx")

    def test_cache_dir_from_env(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "c"))
        assert cache_dir() == tmp_path / "c"
        monkeypatch.delenv("RAG_CACHE_DIR")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
        assert cache_dir() == tmp_path / "x" / "policypal"
