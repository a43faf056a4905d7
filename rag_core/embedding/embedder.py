"""The `Embedder`: texts -> unit float32 vectors and their norms, over any backend; and the per-process
registry of loaded embedders (`shared_embedder`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, overload

import numpy as np

from rag_core.config import DEFAULT_EMBEDDER
from rag_core.embedding.backends import ActiveRuntime, Backend, load_backend
from rag_core.embedding.ov_runtime import ComputePrecision, cpu_has_bf16
from rag_core.embedding.spec import Family
from rag_core.types import PRECISIONS, RUNTIMES, EncodeKind, FloatArray, Metric, Precision, Runtime

ProgressFn = Callable[[int, int], None]  # (done, total)


class Embedder:
    """An encoder (sentence-transformers, DPR or mean-pooled transformers) returning unit float32 vectors.

    Queries and passages have their own entry points because a dual encoder (DPR) embeds them with
    different networks; for the other families both run the same model.

    `name` is the spec, recorded in the knowledge base; a KB never mixes vectors of two models.
    `preferred_metric` is "dot" for DPR (trained for it) and "cosine" otherwise.
    `precision`: "auto" is bf16 on a CPU with bf16 units, fp32 elsewhere; `self.precision` says which.
    `runtime`: "auto" (OpenVINO for sentence-transformers models on the CPU when installed, else
    torch), "torch" or "openvino"; `self.runtime` says which one runs.
    """

    def __init__(
        self,
        spec: str = DEFAULT_EMBEDDER,
        *,
        device: str = "cpu",
        precision: Precision = "auto",
        batch_size: int = 32,
        allow_downloads: bool = False,
        runtime: Runtime = "auto",
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}; got {runtime!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got batch_size={batch_size}")
        self.name = spec
        self.batch_size = batch_size
        self.device = device
        self.precision: ComputePrecision = (
            precision if precision != "auto" else "bf16" if device == "cpu" and cpu_has_bf16() else "fp32"
        )
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads for autocast
        self.backend: Backend = load_backend(
            spec, device=device, allow_downloads=allow_downloads, runtime=runtime, precision=self.precision
        )
        self.runtime: ActiveRuntime = self.backend.runtime
        self.family: Family = self.backend.family
        self.preferred_metric: Metric = self.backend.preferred_metric
        self.dimension = self.backend.dimension
        self.max_seq_length = self.backend.max_seq_length
        self.tokenizer: Any = self.backend.tokenizer

    def __repr__(self) -> str:
        return (
            f"Embedder({self.name!r}, family={self.family}, dim={self.dimension}, precision={self.precision}, "
            f"runtime={self.runtime})"
        )

    # Unit vectors: shape (dim,) for one string, (n, dim) for a sequence of strings.

    @overload
    def encode_query(self, texts: str) -> FloatArray: ...
    @overload
    def encode_query(self, texts: Sequence[str]) -> FloatArray: ...

    def encode_query(self, texts: str | Sequence[str]) -> FloatArray:
        """Unit query vectors (DPR: the question encoder)."""
        return self._encode(texts, None, "query")[0]

    @overload
    def encode_passage(self, texts: str, progress: ProgressFn | None = None) -> FloatArray: ...
    @overload
    def encode_passage(self, texts: Sequence[str], progress: ProgressFn | None = None) -> FloatArray: ...

    def encode_passage(self, texts: str | Sequence[str], progress: ProgressFn | None = None) -> FloatArray:
        """Unit passage (chunk) vectors (DPR: the context encoder). `progress(done, total)` follows batches."""
        return self._encode(texts, progress, "passage")[0]

    # (unit vectors, norms before normalisation): the store keeps unit vectors and recovers dot product
    # and L2 exactly from the norms. The norms have shape (n,), or (1,) for one string.

    @overload
    def encode_query_with_norms(self, texts: str) -> tuple[FloatArray, FloatArray]: ...
    @overload
    def encode_query_with_norms(self, texts: Sequence[str]) -> tuple[FloatArray, FloatArray]: ...

    def encode_query_with_norms(self, texts: str | Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """(unit query vectors, their original norms)."""
        return self._encode(texts, None, "query")

    @overload
    def encode_passage_with_norms(
        self, texts: str, progress: ProgressFn | None = None
    ) -> tuple[FloatArray, FloatArray]: ...
    @overload
    def encode_passage_with_norms(
        self, texts: Sequence[str], progress: ProgressFn | None = None
    ) -> tuple[FloatArray, FloatArray]: ...

    def encode_passage_with_norms(
        self, texts: str | Sequence[str], progress: ProgressFn | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """(unit passage vectors, their original norms)."""
        return self._encode(texts, progress, "passage")

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text` (no special tokens), as the passage encoder sees them."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _encode(
        self, texts: str | Sequence[str], progress: ProgressFn | None, kind: EncodeKind
    ) -> tuple[FloatArray, FloatArray]:
        items = [texts] if isinstance(texts, str) else list(texts)
        raw = self._encode_raw(items, progress, kind)
        norms = np.linalg.norm(raw, axis=1).astype(np.float32)
        unit = (raw / np.maximum(norms, 1e-12)[:, None]).astype(np.float32)
        if isinstance(texts, str):
            return unit[0], norms[:1]
        return unit, norms

    def _encode_raw(self, items: list[str], progress: ProgressFn | None, kind: EncodeKind) -> FloatArray:
        import torch

        out = np.zeros((len(items), self.dimension), dtype=np.float32)
        if not items:
            return out
        # Longest first, in word pieces: batches of similar length waste little padding. Order is
        # restored on write.
        lengths = self._lengths(items)
        order = sorted(range(len(items)), key=lambda i: -lengths[i])
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        autocast = self.precision == "bf16" and self.runtime == "torch"
        device_type = torch.device(self.device).type
        precision = torch.autocast(device_type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        done = 0
        with self._lock, torch.inference_mode(), precision:
            results: Iterable[FloatArray]
            if len(batches) == 1:
                results = [self.backend.forward([items[i] for i in batches[0]], kind)]
            else:
                results = self.backend.forward_many(([items[i] for i in idx] for idx in batches), kind)
            for idx, emb in zip(batches, results, strict=True):
                out[idx] = emb
                done += len(idx)
                if progress is not None:
                    progress(done, len(items))
        return out

    def _lengths(self, items: list[str]) -> list[int]:
        """Word pieces per text (capped at the model's limit), or characters if the tokenizer cannot say."""
        if len(items) < 2:
            return [0] * len(items)
        try:
            ids = self.tokenizer(items, add_special_tokens=False, verbose=False)["input_ids"]
            return [min(len(x), self.max_seq_length) for x in ids]
        except Exception:
            return [len(t) for t in items]


_SharedKey = tuple[str, str, Precision, int, bool, Runtime]
_SHARED: dict[_SharedKey, Embedder] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedder(
    spec: str = DEFAULT_EMBEDDER,
    *,
    device: str = "cpu",
    precision: Precision = "auto",
    batch_size: int = 32,
    allow_downloads: bool = False,
    runtime: Runtime = "auto",
) -> Embedder:
    """One loaded model per configuration per process: loading MiniLM costs seconds, encoding ms."""
    key: _SharedKey = (spec, device, precision, batch_size, allow_downloads, runtime)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Embedder(
                spec,
                device=device,
                precision=precision,
                batch_size=batch_size,
                allow_downloads=allow_downloads,
                runtime=runtime,
            )
        return _SHARED[key]
