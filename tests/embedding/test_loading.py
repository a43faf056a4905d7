"""rag_core.embedding.loading: models load with no network and no process-wide side effects, and a model
that is not on the machine fails fast with advice."""

from __future__ import annotations

import importlib
import os
import socket
import time
from pathlib import Path

import pytest

from rag_core.embedding import Embedder, ModelNotAvailable


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record (and refuse) every attempt to resolve a host name or open a connection."""
    from huggingface_hub.utils import _detect_agent

    attempts: list[object] = []
    monkeypatch.setattr(_detect_agent, "_registry", None)  # huggingface_hub asks the Hub for it once per process

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args[:2])
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.fixture
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub as a user without HF_HUB_OFFLINE sees it (the test run sets it for safety)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _hf_state() -> tuple[bool, bool, dict[str, bool]]:
    from huggingface_hub import constants
    from transformers.utils import logging as hf_logging

    return (
        constants.HF_HUB_OFFLINE,
        hf_logging.is_progress_bar_enabled(),
        dict(importlib.import_module("huggingface_hub.utils.tqdm").progress_bar_states),
    )


class TestOffline:
    def test_loading_leaves_the_environment_and_hf_flags_as_they_were(
        self, embedder: Embedder, hub_online: None
    ) -> None:
        # `embedder` first: importing torch and its friends sets a few variables of their own.
        env, flags = dict(os.environ), _hf_state()
        e = Embedder(runtime="torch", precision="fp32")
        assert e.encode_passage("leave").shape == (384,)
        assert dict(os.environ) == env
        assert _hf_state() == flags

    def test_tiny_models_load_without_touching_the_environment(
        self, embedder: Embedder, hub_online: None, models_dir: Path, no_network: list[object]
    ) -> None:
        env, flags = dict(os.environ), _hf_state()
        Embedder(f"dpr:{models_dir / 'question'},{models_dir / 'context'}", precision="fp32")
        Embedder(f"mean:{models_dir / 'mean'}", precision="fp32")
        assert dict(os.environ) == env and _hf_state() == flags
        assert no_network == []

    def test_bundled_model_needs_no_network(self, hub_online: None, no_network: list[object]) -> None:
        Embedder(runtime="torch", precision="fp32")
        assert no_network == []

    @pytest.mark.parametrize("spec", ["nobody/no-such-model-xyz", "mean:nobody/none"])
    def test_missing_hub_model_asks_no_network(
        self, spec: str, embedder: Embedder, hub_online: None, no_network: list[object]
    ) -> None:
        env, flags = dict(os.environ), _hf_state()
        with pytest.raises(ModelNotAvailable, match="not on this machine"):
            Embedder(spec)
        assert no_network == []
        assert dict(os.environ) == env and _hf_state() == flags


class TestMissingModels:
    def test_missing_hub_model_fails_fast_with_advice(self) -> None:
        t0 = time.monotonic()
        with pytest.raises(ModelNotAvailable, match="not on this machine.*RAG_ALLOW_DOWNLOADS"):
            Embedder("nobody/no-such-model-xyz")
        assert time.monotonic() - t0 < 30

    @pytest.mark.parametrize("spec", ["mean:nobody/none", "dpr:nobody/question-none,nobody/ctx-none"])
    def test_fails_fast_naming_the_model(self, spec: str) -> None:
        t0 = time.monotonic()
        with pytest.raises(ModelNotAvailable, match=r"'nobody/[a-z-]+' is not on this machine.*RAG_ALLOW_DOWNLOADS=1"):
            Embedder(spec)
        assert time.monotonic() - t0 < 10
