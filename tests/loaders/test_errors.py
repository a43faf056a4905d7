"""rag_core.loaders.errors: one kind per error, and the messages that name the way out."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_core import loaders
from rag_core.loaders import EmptyFile, FileTooLarge, load_bytes, load_path


class TestErrors:
    def test_empty_file(self) -> None:
        with pytest.raises(EmptyFile, match="empty"):
            load_bytes(b"", "x.pdf")

    def test_too_large(self, tmp_path: Path) -> None:
        p = tmp_path / "big.txt"
        p.write_text("x" * 2000)
        with pytest.raises(FileTooLarge, match="RAG_MAX_FILE_MB"):
            load_path(p, max_bytes=1000)

    def test_too_large_in_memory(self) -> None:
        with pytest.raises(FileTooLarge, match="RAG_MAX_FILE_MB"):
            load_bytes(b"x" * 2000, "big.txt", max_bytes=1000)

    def test_every_error_has_a_kind(self) -> None:
        kinds = {c.kind for c in loaders.LoadError.__subclasses__()}
        assert len(kinds) == len(loaders.LoadError.__subclasses__())
