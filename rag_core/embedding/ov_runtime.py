"""The OpenVINO runtime for sentence-transformers models on the CPU: conversion, cache and probe check.

The torch module already loaded is traced (nothing is downloaded), saved under `cache_dir()` keyed by
a hash of its weights and the library versions, compiled for the CPU in fp32 or bf16, and checked
against torch fp32 on `PROBE_TEXTS` every time it is loaded. Anything failing raises; the backend then
falls back to torch (see `SentenceTransformerBackend`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rag_core.types import FloatArray, IntArray

ComputePrecision = Literal["fp32", "bf16"]  # a precision once "auto" is resolved

# OpenVINO output must match torch fp32 at least this well on the probe texts, or torch is used.
MIN_PROBE_COSINE = 0.999
# Varied lengths, so the check covers padding inside a batch as well as the longest inputs.
PROBE_TEXTS = (
    "Leave",
    "How many days of annual leave do I get?",
    "Employees may work from home up to three days per week with their manager's approval; a secure "
    "VPN connection is required when accessing company systems from outside the office.",
    "Travel expenses are reimbursed within 30 days when submitted with receipts. " * 6,
)
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

_log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (AMX or AVX512-BF16): bf16 pays off there."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("amx_bf16", "avx512_bf16"))


def cache_dir() -> Path:
    """Where derived model files (the OpenVINO conversion) are kept: RAG_CACHE_DIR, else the user cache."""
    explicit = os.environ.get("RAG_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "policypal"


def openvino_available() -> bool:
    """True when the `openvino` package can be imported (it is optional at run time)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVINOModel:
    """A sentence-transformers model (transformer, pooling, normalisation) compiled by OpenVINO for the CPU.

    Fed the model's own tokenizer output, it returns the model's `sentence_embedding`. Build it with
    `from_sentence_transformer`, which converts, caches and verifies.
    """

    def __init__(self, compiled: Any, inputs: list[str], precision: ComputePrecision, min_cosine: float):
        self.compiled = compiled
        self.inputs = inputs
        self.precision: ComputePrecision = precision
        self.min_cosine = min_cosine  # the probe check's worst cosine to torch fp32
        self._request = compiled.create_infer_request()
        try:
            self.parallel = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        except Exception:
            self.parallel = 1

    def __call__(self, features: dict[str, Any]) -> FloatArray:
        out = self._request.infer(self._feed(features))
        return np.asarray(out[0], dtype=np.float32).copy()  # the request reuses its output buffer

    def _feed(self, features: dict[str, Any]) -> dict[str, IntArray]:
        return {name: _as_int64(features[name]) for name in self.inputs}

    def run_many(self, batches: Iterable[dict[str, Any]]) -> Iterator[FloatArray]:
        """Outputs of each batch of features, in order, with up to `parallel` batches in flight (one per
        CPU stream) while the next ones are tokenized."""
        if self.parallel == 1:
            for features in batches:
                yield self(features)
            return
        import openvino as ov

        queue = ov.AsyncInferQueue(self.compiled, self.parallel)
        done: dict[int, FloatArray] = {}

        def finished(request: Any, i: int) -> None:
            done[i] = np.asarray(request.get_output_tensor(0).data, dtype=np.float32).copy()

        queue.set_callback(finished)
        ready = 0
        for i, features in enumerate(batches):
            queue.start_async(self._feed(features), userdata=i)  # waits while every request is busy
            while ready in done:
                yield done.pop(ready)
                ready += 1
        queue.wait_all()
        while ready in done:
            yield done.pop(ready)
            ready += 1

    @classmethod
    def from_sentence_transformer(
        cls, model: Any, precision: ComputePrecision, cache_root: Path | None = None
    ) -> OpenVINOModel:
        """Convert (or load the cached conversion of) `model`, compile it and check it against torch fp32.

        Raises ImportError without openvino, and RuntimeError when the compiled model disagrees with torch.
        """
        import openvino as ov
        import torch

        with torch.inference_mode():
            probe = model.preprocess(list(PROBE_TEXTS))
            inputs = [k for k in _INPUT_NAMES if isinstance(probe.get(k), torch.Tensor)]
            reference = model(dict(probe))["sentence_embedding"].float().numpy()
        folder = (cache_root or cache_dir()) / "openvino" / _model_fingerprint(model, inputs, ov.__version__)
        core = ov.Core()
        ov_model = _read_cached(core, folder)
        if ov_model is None:
            ov_model = _convert(model, probe, inputs)
            _save_atomically(ov, ov_model, folder)
        hint = "bf16" if precision == "bf16" else "f32"
        # THROUGHPUT: one stream per core or two; a single query runs on one of them, a list of chunks
        # keeps them all busy (run_many).
        compiled = core.compile_model(
            ov_model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "THROUGHPUT"}
        )
        candidate = cls(compiled, inputs, precision, 0.0)
        cos = _row_cosines(candidate({k: probe[k] for k in inputs}), reference)
        if not np.isfinite(cos).all() or cos.min() < MIN_PROBE_COSINE:
            raise RuntimeError(
                f"OpenVINO output disagrees with torch fp32 (worst probe cosine {np.nanmin(cos):.4f} "
                f"< {MIN_PROBE_COSINE})"
            )
        candidate.min_cosine = float(cos.min())
        return candidate


def _as_int64(x: Any) -> IntArray:
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.ascontiguousarray(x, dtype=np.int64)


def _row_cosines(a: FloatArray, b: FloatArray) -> FloatArray:
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray((a * b).sum(axis=1) / np.maximum(na, 1e-12), dtype=np.float32)


def _model_fingerprint(model: Any, inputs: list[str], ov_version: str) -> str:
    """Content hash of the weights, the module stack and the converter versions: a cache key that
    changes whenever the conversion could."""
    import sentence_transformers
    import torch
    import transformers

    h = hashlib.sha256()
    meta = [repr(model), str(model.max_seq_length), ",".join(inputs), ov_version, torch.__version__]
    meta += [transformers.__version__, sentence_transformers.__version__]
    h.update(json.dumps(meta).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous().reshape(-1)
        if t.numel():
            h.update(memoryview(t.view(torch.uint8).numpy()))  # no copy: a copy of the weights stays resident
    return h.hexdigest()[:24]


def _read_cached(core: Any, folder: Path) -> Any:
    """The cached conversion in `folder`, or None when there is none; a damaged entry is removed."""
    xml = folder / "model.xml"
    if not xml.exists():
        return None
    try:
        return core.read_model(str(xml))
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _convert(model: Any, probe: dict[str, Any], inputs: list[str]) -> Any:
    """Trace the sentence-transformers module stack into an OpenVINO model with dynamic batch and length."""
    import openvino as ov
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            features = {k: v for k, v in given.items() if v is not None}
            features["modality"] = "text"
            return self.inner(features)["sentence_embedding"]

    example = {k: probe[k] for k in inputs}
    shapes = [(name, ov.PartialShape([-1, -1]), ov.Type.i64) for name in inputs]
    with torch.inference_mode(False), torch.no_grad(), _warnings_silenced(), _no_telemetry():
        return ov.convert_model(Wrapper(model).eval(), example_input=example, input=shapes)


_TELEMETRY_LOCK = threading.Lock()


@contextlib.contextmanager
def _no_telemetry() -> Iterator[None]:
    """OpenVINO's converter reports usage to Google Analytics unless the user opted out in a file under
    ~/intel: a self-hosted app must not phone home, so it converts with OpenVINO's own no-op stub."""
    import openvino.tools.ovc.convert_impl as convert_impl
    import openvino.tools.ovc.telemetry_stub as stub
    import openvino.tools.ovc.telemetry_utils as telemetry_utils

    with _TELEMETRY_LOCK:
        saved = [(m, m.tm) for m in (convert_impl, telemetry_utils) if hasattr(m, "tm")]
        for module, _ in saved:
            module.tm = stub
        try:
            yield
        finally:
            for module, original in saved:
                module.tm = original


@contextlib.contextmanager
def _warnings_silenced() -> Iterator[None]:
    """Tracing warns about Python conditionals on shapes; the probe check is what guards correctness."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # config notes printed while tracing
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)


def _save_atomically(ov: Any, ov_model: Any, folder: Path) -> None:
    """Write model.xml/.bin to a temp dir, then rename: a reader sees a complete conversion or none."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", suffix=".tmp", dir=folder.parent))
    except OSError as e:
        _log.info("OpenVINO model not cached (%s); it is converted again next time", e)
        return
    try:
        ov.save_model(ov_model, str(tmp / "model.xml"), compress_to_fp16=False)
        os.rename(tmp, folder)
    except OSError:
        pass  # another process cached it first, or the disk is full: nothing lost
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
