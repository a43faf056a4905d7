"""Text -> vectors: one `Embedder` over three encoder families, chosen by a spec string.

Spec forms (the spec is recorded in the knowledge base; a query always uses the KB's encoder):

    all-MiniLM-L6-v2                    sentence-transformers (default): the bundled model, no network
    <sentence-transformers id or dir>   any sentence-transformers model, e.g. BAAI/bge-small-en-v1.5
    dpr:<question encoder>,<context encoder>
                                        DPR dual encoder: queries with DPRQuestionEncoder, passages with
                                        DPRContextEncoder (pooler output)
    mean:<model id or dir>              plain transformers AutoModel + AutoTokenizer, mean of the last hidden
                                        states over the attention mask (bert-base-uncased style)

Each model part is a hub id (used only when already in the local Hugging Face cache, unless
RAG_ALLOW_DOWNLOADS=1) or a local directory. DPR and mean-pooled vectors are not normalised by their
models: DPR was trained for dot product, so it reports `preferred_metric == "dot"`; the others "cosine".

Why a wrapper: the rest of PolicyPal needs (a) a model that loads with no network and fails within
seconds with a useful message when it is not on disk, (b) its tokenizer and length limit for chunking,
(c) float32 unit vectors together with their original norms (the store keeps unit vectors; dot product
and L2 are recovered exactly from the norms), (d) progress callbacks and length-sorted batches, (e) a
fast CPU runtime, and (f) separate entry points for queries and passages (`encode_query`,
`encode_passage` and their `_with_norms` forms), because a dual encoder embeds them with different
networks. The families differ only in one batch forward pass (`Backend.forward`); batching, ordering,
locking, inference mode and autocast live in `Embedder` and apply to all of them.

Runtimes: torch (bf16 autocast where the CPU has bf16 units, fp32 elsewhere), or, for a
sentence-transformers model on the CPU with the `openvino` package installed, the same model compiled
by OpenVINO, cached on disk and checked against torch fp32 whenever it loads, with torch as the fallback
(measurements and rejected alternatives: benchmarks/RESULTS.md).

Modules: `spec` (parsing, model resolution), `loading` (offline loading), `backends` (the families),
`ov_runtime` (the OpenVINO conversion), `embedder` (the `Embedder` and the per-process registry).
What it leaves out: instruction prefixes ("query: ", "passage: ") for models trained with them, and
OpenVINO for the DPR and mean-pooled families (they run on torch).
"""

from rag_core.embedding.backends import (
    ActiveRuntime,
    Backend,
    DPRBackend,
    MeanPoolingBackend,
    SentenceTransformerBackend,
    load_backend,
)
from rag_core.embedding.embedder import Embedder, ProgressFn, shared_embedder
from rag_core.embedding.ov_runtime import ComputePrecision, OpenVINOModel, cache_dir, cpu_has_bf16, openvino_available
from rag_core.embedding.spec import (
    SPEC_FORMS,
    EmbedderSpec,
    Family,
    ModelNotAvailable,
    bundled_model_path,
    parse_spec,
    resolve_model,
)

__all__ = [
    "SPEC_FORMS",
    "ActiveRuntime",
    "Backend",
    "ComputePrecision",
    "DPRBackend",
    "Embedder",
    "EmbedderSpec",
    "Family",
    "MeanPoolingBackend",
    "ModelNotAvailable",
    "OpenVINOModel",
    "ProgressFn",
    "SentenceTransformerBackend",
    "bundled_model_path",
    "cache_dir",
    "cpu_has_bf16",
    "load_backend",
    "openvino_available",
    "parse_spec",
    "resolve_model",
    "shared_embedder",
]
