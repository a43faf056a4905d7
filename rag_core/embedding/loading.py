"""Loading models from disk (or, when allowed, the Hugging Face Hub) with no lasting side effects.

`local_files_only=True` alone keeps transformers and sentence-transformers from downloading, but
huggingface_hub still asks the network for its agent registry while it builds request headers (for a
hub id missing from the cache). `scoped_load` therefore turns the Hub's offline flag on for the
duration of a local-only load, and hides the "Loading weights" progress bars; both are restored
afterwards, and os.environ is never written.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag_core.config import DEFAULT_EMBEDDER
from rag_core.embedding.spec import ModelNotAvailable, resolve_model

# Longest input any backend reads: BERT-style position tables hold 512 (RoBERTa's 514 include padding).
MAX_POSITIONS = 512

# The flags below are process-wide in the HF libraries: one load at a time sets and restores them.
_LOAD_LOCK = threading.RLock()


@contextlib.contextmanager
def scoped_load(local_only: bool) -> Iterator[None]:
    """While loading: the Hub offline when only local files may be read, and no progress bars."""
    from huggingface_hub import constants
    from transformers.utils import logging as hf_logging

    hub_bars: dict[str, bool] = importlib.import_module("huggingface_hub.utils.tqdm").progress_bar_states
    with _LOAD_LOCK:
        offline = constants.HF_HUB_OFFLINE
        bars, saved_hub_bars = hf_logging.is_progress_bar_enabled(), dict(hub_bars)
        if local_only:
            constants.HF_HUB_OFFLINE = True
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers ships it unannotated
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = offline
            if bars:
                hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]  # transformers ships it unannotated
            hub_bars.clear()
            hub_bars.update(saved_hub_bars)


def _not_on_machine(spec: str, part: str) -> ModelNotAvailable:
    which = f"embedder {spec!r}" if part == spec else f"embedder {spec!r}: model {part!r}"
    return ModelNotAvailable(
        f"{which} is not on this machine and downloads are off. Give the path of a local model directory, "
        "or set RAG_ALLOW_DOWNLOADS=1 on a machine with network access (the model is then cached), "
        f"or use the bundled default {DEFAULT_EMBEDDER!r}"
    )


def load_sentence_transformer(spec: str, device: str, allow_downloads: bool) -> Any:
    """The sentence-transformers model of a spec, on `device`."""
    from sentence_transformers import SentenceTransformer

    target, local_only = resolve_model(spec, allow_downloads)
    try:
        with scoped_load(local_only):
            return SentenceTransformer(target, device=device, local_files_only=local_only)
    except Exception as e:
        if local_only and not Path(target).exists():
            raise _not_on_machine(spec, spec) from e
        raise ModelNotAvailable(f"embedder {spec!r} could not be loaded: {type(e).__name__}: {e}") from e


def load_transformers(
    spec: str, part: str, model_class: Any, role: str, device: str, allow_downloads: bool
) -> tuple[Any, Any]:
    """(fast tokenizer, model in eval mode on `device`) for one model part of a spec.

    Refuses a checkpoint that lacks weights the class needs (they would be random) and a model without
    a fast tokenizer (chunking needs its offsets).
    """
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    target, local_only = resolve_model(part, allow_downloads)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # its load report would repeat our error below
    try:
        with scoped_load(local_only):
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


def dpr_dimension(config: Any) -> int:
    """A DPR encoder's output size: its projection when it has one, else the hidden size."""
    projection = int(getattr(config, "projection_dim", 0) or 0)
    return projection if projection > 0 else int(config.hidden_size)


def max_length(model: Any, tokenizer: Any) -> int:
    """Word pieces the model reads: its position table (at most 512), or the tokenizer's stated limit."""
    limit = int(getattr(model.config, "max_position_embeddings", 0) or MAX_POSITIONS)
    limit = min(limit, MAX_POSITIONS)
    stated = getattr(tokenizer, "model_max_length", None)
    if isinstance(stated, int) and 0 < stated < limit:  # unset limits are huge sentinels (1e30)
        limit = stated
    return limit
