"""rag_core.ingest: the next file of a batch is read by a parse worker while the current one embeds,
and the model loads while the first file is read; results and their order are unchanged."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rag_core import ingest
from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine


class TestParseAhead:
    def test_batch_reads_ahead_and_keeps_results_in_order(
        self,
        tmp_path: Path,
        embedder: Embedder,
        policy_pdf: Path,
        pdf_maker: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        threads: list[tuple[str, str]] = []
        real = ingest.parse_file

        def spy(data: bytes, name: str, settings: Settings, *a: Any) -> Any:
            threads.append((name, threading.current_thread().name))
            return real(data, name, settings, *a)

        monkeypatch.setattr(ingest, "parse_file", spy)
        second = pdf_maker(["Parking permits are issued by facilities. " * 20], name="parking.pdf")
        broken = tmp_path / "broken.pdf"
        broken.write_bytes(b"%PDF-1.7 not really")
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        paths = [policy_pdf, tmp_path / "missing.pdf", second, broken, policy_pdf]
        results = engine.ingest_paths(paths)
        assert [r.status for r in results] == ["added", "failed", "added", "failed", "duplicate"]
        assert results[1].error_kind == "io" and results[3].error_kind == "damaged"
        by_name = dict(threads)
        assert by_name["policy.pdf"] == threading.current_thread().name  # the first file: nothing to overlap
        assert by_name["parking.pdf"].startswith("policypal-parse-ahead")
        assert by_name["broken.pdf"].startswith("policypal-parse-ahead")

    def test_uploads_read_ahead_too(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        data = policy_pdf.read_bytes()
        results = engine.ingest_uploads([("a.pdf", data), ("b.pdf", data), ("c.txt", b"Remote work is allowed.")])
        assert [r.status for r in results] == ["added", "duplicate", "added"]

    def test_model_loads_while_the_first_file_is_read(self, tmp_path: Path, policy_pdf: Path) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb", embed_runtime="torch", precision="fp32"))
        assert engine._embedder is None
        assert engine.ingest_paths([policy_pdf])[0].status == "added"
        assert engine._embedder is not None and engine._embedder.runtime == "torch"
