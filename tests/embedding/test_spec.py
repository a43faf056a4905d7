"""rag_core.embedding.spec: spec forms, malformed specs, model resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_core.embedding import Embedder, EmbedderSpec, ModelNotAvailable, parse_spec, resolve_model


class TestSpecs:
    def test_forms(self) -> None:
        assert parse_spec("all-MiniLM-L6-v2") == EmbedderSpec("sentence-transformers", ("all-MiniLM-L6-v2",))
        assert parse_spec("dpr:/m/q,/m/c") == EmbedderSpec("dpr", ("/m/q", "/m/c"))
        assert parse_spec("mean:bert-base-uncased") == EmbedderSpec("mean", ("bert-base-uncased",))

    @pytest.mark.parametrize("spec", ["dpr:only-one", "dpr:a,b,c", "dpr:a,", "mean:", "bm25:x", ""])
    def test_malformed_lists_valid_forms(self, spec: str) -> None:
        with pytest.raises(ValueError, match=r"valid embedder specs: .*dpr:<question encoder.*mean:<model"):
            Embedder(spec)

    def test_existing_dir_with_colon_is_a_path(self, tmp_path: Path) -> None:
        odd = tmp_path / "mean:odd"
        odd.mkdir()
        assert parse_spec(str(odd)).family == "sentence-transformers"


class TestModelResolution:
    def test_missing_local_file(self, tmp_path: Path) -> None:
        f = tmp_path / "model.bin"
        f.write_bytes(b"x")
        with pytest.raises(ModelNotAvailable, match="is a file"):
            resolve_model(str(f))

    def test_bundled_name_maps_to_package(self) -> None:
        target, local_only = resolve_model("all-MiniLM-L6-v2")
        assert Path(target, "config.json").exists() and local_only

    def test_hub_id_is_local_only_unless_downloads_are_allowed(self) -> None:
        assert resolve_model("nobody/some-model") == ("nobody/some-model", True)
        assert resolve_model("nobody/some-model", allow_downloads=True) == ("nobody/some-model", False)
