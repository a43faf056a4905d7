"""rag_core.config: defaults, environment variables, validation with the bad value named."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_core.config import Settings


class TestSettings:
    def test_defaults_are_valid(self) -> None:
        s = Settings()
        assert s.chunk_overlap < s.chunk_tokens
        assert s.data_dir.name == "uploads"

    def test_env_overrides_defaults_and_explicit_overrides_env(self) -> None:
        env = {"RAG_DATA_DIR": "/tmp/x", "RAG_CHUNK_TOKENS": "200", "RAG_ALLOW_DOWNLOADS": "yes"}
        s = Settings.from_env(env)
        assert s.data_dir == Path("/tmp/x") and s.chunk_tokens == 200 and s.allow_downloads is True
        assert Settings.from_env(env, data_dir=Path("/tmp/y")).data_dir == Path("/tmp/y")
        assert Settings.from_env(env, data_dir=None).data_dir == Path("/tmp/x")

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"chunk_tokens": 100, "chunk_overlap": 100}, "overlap=100, chunk_tokens=100"),
            ({"metric": "manhattan"}, "manhattan"),
            ({"top_k": 0}, "top_k=0"),
            ({"precision": "int4"}, "int4"),
            ({"pg_index": "annoy"}, "RAG_PG_INDEX.*annoy"),
            ({"max_pages": 0}, "max_pages=0"),
        ],
    )
    def test_bad_values_named(self, kwargs: dict[str, object], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            Settings(**kwargs)  # type: ignore[arg-type]

    def test_bad_env_value_names_variable(self) -> None:
        with pytest.raises(ValueError, match="RAG_TOP_K='many'"):
            Settings.from_env({"RAG_TOP_K": "many"})

    def test_unknown_override_lists_valid(self) -> None:
        with pytest.raises(ValueError, match="valid"):
            Settings.from_env({}, colour="blue")
