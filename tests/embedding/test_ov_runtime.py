"""rag_core.embedding.ov_runtime: OpenVINO as the default CPU runtime, its fallback, check and cache."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from rag_core.embedding import (
    Embedder,
    ModelNotAvailable,
    backends,
    cache_dir,
    load_backend,
    openvino_available,
    ov_runtime,
)
from rag_core.embedding import embedder as embedder_module

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
        cos = (embedder.encode_passage(TEXTS) * reference.encode_passage(TEXTS)).sum(axis=1)
        assert cos.min() > 0.999
        assert embedder.encode_query("leave").shape == (384,)

    def test_precision_falls_back_to_fp32_without_bf16(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(embedder_module, "cpu_has_bf16", lambda: False)
        e = Embedder(runtime="torch")
        assert e.precision == "fp32" and e.runtime == "torch"
        assert e.encode_passage(TEXTS).shape == (3, 384)

    def test_without_openvino_auto_uses_torch_and_explicit_fails_clearly(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def missing(*a: object, **k: object) -> None:
            raise ImportError("No module named 'openvino'")

        monkeypatch.setattr(backends, "openvino_available", lambda: True)
        monkeypatch.setattr(ov_runtime.OpenVINOModel, "from_sentence_transformer", missing)
        assert Embedder().runtime == "torch"
        with pytest.raises(ModelNotAvailable, match="pip install openvino"):
            Embedder(runtime="openvino")
        monkeypatch.setattr(backends, "openvino_available", lambda: False)
        assert Embedder().runtime == "torch"

    @needs_openvino
    def test_disagreeing_conversion_is_rejected(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(ov_runtime, "MIN_PROBE_COSINE", 1.5)  # no conversion can pass this
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
            import openvino_telemetry  # type: ignore[import-untyped]

            for name in ("init", "send_event", "send_error"):
                monkeypatch.setattr(openvino_telemetry.Telemetry, name, lambda *a, **k: reported.append(a))
        first = ov_runtime.OpenVINOModel.from_sentence_transformer(model, "fp32", cache_root=tmp_path)
        assert not reported
        (folder,) = (tmp_path / "openvino").iterdir()
        assert (folder / "model.xml").exists() and (folder / "model.bin").exists()
        assert not list((tmp_path / "openvino").glob("*.tmp")) and first.min_cosine > 0.999

        def boom(*a: object) -> None:
            raise AssertionError("converted again although cached")

        monkeypatch.setattr(ov_runtime, "_convert", boom)
        again = ov_runtime.OpenVINOModel.from_sentence_transformer(model, "bf16", cache_root=tmp_path)
        assert again.precision == "bf16" and again.min_cosine > 0.999

    @needs_openvino
    def test_damaged_cache_entry_is_converted_again(self, embedder: Embedder, tmp_path: Path) -> None:
        model = embedder.backend.model  # type: ignore[attr-defined]
        ov_runtime.OpenVINOModel.from_sentence_transformer(model, "fp32", cache_root=tmp_path)
        (folder,) = (tmp_path / "openvino").iterdir()
        (folder / "model.xml").write_text("not a model")
        again = ov_runtime.OpenVINOModel.from_sentence_transformer(model, "fp32", cache_root=tmp_path)
        assert again.min_cosine > 0.999 and (folder / "model.xml").read_text() != "not a model"

    def test_openvino_serves_sentence_transformers_only(self) -> None:
        with pytest.raises(ModelNotAvailable, match="sentence-transformers models"):
            load_backend("dpr:q-model,c-model", runtime="openvino")

    def test_cache_dir_from_env(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "c"))
        assert cache_dir() == tmp_path / "c"
        monkeypatch.delenv("RAG_CACHE_DIR")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
        assert cache_dir() == tmp_path / "x" / "policypal"
