"""The encoder families: each loads its model(s) and turns one batch of texts into raw vectors.

Batching, ordering, locking, inference mode and autocast are the `Embedder`'s; a backend only runs
forward passes, so a new family is one class here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any, Literal, Protocol

import numpy as np

from rag_core.embedding.loading import dpr_dimension, load_sentence_transformer, load_transformers, max_length
from rag_core.embedding.ov_runtime import ComputePrecision, OpenVINOModel, openvino_available
from rag_core.embedding.spec import Family, ModelNotAvailable, parse_spec
from rag_core.types import EncodeKind, FloatArray, Metric, Runtime

ActiveRuntime = Literal["torch", "openvino"]  # the runtime in use, once "auto" is resolved

_log = logging.getLogger(__name__)


class Backend(Protocol):
    """What the `Embedder` needs of an encoder family."""

    family: Family
    preferred_metric: Metric
    dimension: int
    max_seq_length: int
    tokenizer: Any  # the passage tokenizer: the chunker sizes chunks in its word pieces
    runtime: ActiveRuntime  # "torch" (autocast applies) or "openvino" (precision fixed at compile time)

    def forward(self, batch: list[str], kind: EncodeKind) -> FloatArray:
        """Raw (un-normalised) float32 vectors of one batch, shape (len(batch), dimension)."""
        ...

    def forward_many(self, batches: Iterable[list[str]], kind: EncodeKind) -> Iterator[FloatArray]:
        """`forward` of each batch, in order (a backend may overlap batches)."""
        ...


class SentenceTransformerBackend:
    """A sentence-transformers model (its own pooling and, for MiniLM, normalisation), on torch or, on
    the CPU, compiled by OpenVINO (`runtime="auto"` uses OpenVINO when it is installed and passes its
    probe check, torch otherwise; `runtime="openvino"` fails instead of falling back)."""

    family: Family = "sentence-transformers"
    preferred_metric: Metric = "cosine"

    def __init__(
        self,
        spec: str,
        device: str,
        allow_downloads: bool,
        runtime: Runtime = "torch",
        precision: ComputePrecision = "fp32",
    ):
        self.model = load_sentence_transformer(spec, device, allow_downloads)
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.max_seq_length = int(self.model.max_seq_length)
        self.tokenizer: Any = self.model.tokenizer
        self.compiled: OpenVINOModel | None = None
        if runtime == "openvino" or (runtime == "auto" and device == "cpu" and openvino_available()):
            self.compiled = self._compile(spec, device, runtime, precision)
        self.runtime: ActiveRuntime = "openvino" if self.compiled is not None else "torch"

    def _compile(self, spec: str, device: str, runtime: Runtime, precision: ComputePrecision) -> OpenVINOModel | None:
        try:
            if device != "cpu":
                raise ModelNotAvailable(f"the openvino runtime runs on the CPU; device is {device!r}")
            return OpenVINOModel.from_sentence_transformer(self.model, precision)
        except Exception as e:
            if runtime == "openvino":
                if isinstance(e, ImportError):
                    raise ModelNotAvailable(
                        "embedder runtime 'openvino' needs the openvino package: pip install openvino "
                        "(or set RAG_EMBED_RUNTIME=torch)"
                    ) from e
                raise ModelNotAvailable(f"embedder {spec!r} cannot run on openvino: {e}") from e
            _log.warning("embedder %s: OpenVINO unavailable (%s: %s); using torch", spec, type(e).__name__, e)
            return None

    def forward(self, batch: list[str], kind: EncodeKind) -> FloatArray:
        if self.compiled is not None:
            return self.compiled(self.model.preprocess(batch))
        emb = self.model.encode(batch, batch_size=len(batch), convert_to_numpy=True)
        return np.asarray(emb, dtype=np.float32)

    def forward_many(self, batches: Iterable[list[str]], kind: EncodeKind) -> Iterator[FloatArray]:
        if self.compiled is None:
            return (self.forward(batch, kind) for batch in batches)
        return self.compiled.run_many(self.model.preprocess(batch) for batch in batches)


class _TransformersBackend:
    """Shared by the plain-transformers families: tokenise with truncation, move to the device, one batch
    at a time."""

    preferred_metric: Metric
    device: str
    dimension: int
    max_seq_length: int
    tokenizer: Any
    runtime: ActiveRuntime = "torch"

    def forward(self, batch: list[str], kind: EncodeKind) -> FloatArray:
        raise NotImplementedError

    def forward_many(self, batches: Iterable[list[str]], kind: EncodeKind) -> Iterator[FloatArray]:
        return (self.forward(batch, kind) for batch in batches)

    def _inputs(self, tokenizer: Any, batch: list[str]) -> dict[str, Any]:
        enc = tokenizer(batch, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()}


class DPRBackend(_TransformersBackend):
    """DPR dual encoder: DPRQuestionEncoder for queries, DPRContextEncoder for passages (pooler output)."""

    family: Family = "dpr"
    preferred_metric: Metric = "dot"  # DPR was trained to rank by the inner product of raw vectors

    def __init__(self, spec: str, question: str, context: str, device: str, allow_downloads: bool):
        from transformers import DPRContextEncoder, DPRQuestionEncoder

        self.device = device
        self.query_tokenizer, self.query_model = load_transformers(
            spec, question, DPRQuestionEncoder, "question encoder", device, allow_downloads
        )
        self.tokenizer, self.model = load_transformers(
            spec, context, DPRContextEncoder, "context encoder", device, allow_downloads
        )
        dq, dc = dpr_dimension(self.query_model.config), dpr_dimension(self.model.config)
        if dq != dc:
            raise ModelNotAvailable(
                f"embedder {spec!r}: the question encoder gives {dq}-d vectors and the context encoder "
                f"{dc}-d; a DPR pair must share one vector space"
            )
        self.dimension = dc
        self.max_seq_length = min(
            max_length(self.query_model, self.query_tokenizer), max_length(self.model, self.tokenizer)
        )

    def forward(self, batch: list[str], kind: EncodeKind) -> FloatArray:
        tokenizer, model = (self.query_tokenizer, self.query_model) if kind == "query" else (self.tokenizer, self.model)
        out = model(**self._inputs(tokenizer, batch))
        return np.asarray(out.pooler_output.float().cpu().numpy(), dtype=np.float32)


class MeanPoolingBackend(_TransformersBackend):
    """transformers AutoModel: mean of last_hidden_state over real tokens (padding masked out)."""

    family: Family = "mean"
    preferred_metric: Metric = "cosine"  # mean-pooled BERT is not trained for any metric; cosine is the custom

    def __init__(self, spec: str, model_id: str, device: str, allow_downloads: bool):
        from transformers import AutoModel

        self.device = device
        self.tokenizer, self.model = load_transformers(spec, model_id, AutoModel, "model", device, allow_downloads)
        if getattr(self.model.config, "model_type", "") == "dpr":
            raise ModelNotAvailable(
                f"embedder {spec!r}: {model_id!r} is a DPR encoder; use dpr:<question encoder>,<context encoder>"
            )
        self.dimension = int(self.model.config.hidden_size)
        self.max_seq_length = max_length(self.model, self.tokenizer)

    def forward(self, batch: list[str], kind: EncodeKind) -> FloatArray:
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
    runtime: Runtime = "torch",
    precision: ComputePrecision = "fp32",
) -> Backend:
    """The backend for `spec` (forms: `SPEC_FORMS`). OpenVINO serves sentence-transformers models only."""
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
