"""Every knob of PolicyPal in one dataclass: its default, its environment variable, its validation.

The CLI, the Streamlit app and the tests all build a `Settings` (usually `Settings.from_env()`), so a
value means the same thing everywhere. Bad values raise `ValueError` naming the value and the range,
at construction, not deep inside an ingest.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_core.types import (
    FUSIONS,
    METRICS,
    MODES,
    PG_INDEX_KINDS,
    PRECISIONS,
    RUNTIMES,
    Fusion,
    Metric,
    Mode,
    PgIndexKind,
    Precision,
    Runtime,
)

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_OCR_LANGUAGES = re.compile(r"[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*")

# Field name -> environment variable. Kept explicit so `grep RAG_` finds every one.
ENV_VARS: dict[str, str] = {
    "data_dir": "RAG_DATA_DIR",
    "database_url": "RAG_DATABASE_URL",
    "embedder": "RAG_EMBEDDER",
    "chunk_tokens": "RAG_CHUNK_TOKENS",
    "chunk_overlap": "RAG_CHUNK_OVERLAP",
    "chunk_context": "RAG_CHUNK_CONTEXT",
    "embed_context": "RAG_EMBED_CONTEXT",
    "batch_size": "RAG_BATCH_SIZE",
    "precision": "RAG_PRECISION",
    "embed_runtime": "RAG_EMBED_RUNTIME",
    "ann_threshold": "RAG_ANN_THRESHOLD",
    "pg_index": "RAG_PG_INDEX",
    "background_map": "RAG_BACKGROUND_MAP",
    "top_k": "RAG_TOP_K",
    "metric": "RAG_METRIC",
    "max_file_mb": "RAG_MAX_FILE_MB",
    "max_pages": "RAG_MAX_PAGES",
    "max_files_per_batch": "RAG_MAX_FILES_PER_BATCH",
    "parse_timeout_s": "RAG_PARSE_TIMEOUT_S",
    "parse_memory_mb": "RAG_PARSE_MEMORY_MB",
    "ocr": "RAG_OCR",
    "ocr_languages": "RAG_OCR_LANGUAGES",
    "allow_downloads": "RAG_ALLOW_DOWNLOADS",
    "generator": "RAG_GENERATOR",
    "mode": "RAG_MODE",
    "fusion": "RAG_FUSION",
    "rrf_k": "RAG_RRF_K",
    "dense_weight": "RAG_DENSE_WEIGHT",
    "bm25_weight": "RAG_BM25_WEIGHT",
    "fusion_depth": "RAG_FUSION_DEPTH",
    "min_score": "RAG_MIN_SCORE",
    "min_coverage": "RAG_MIN_COVERAGE",
    "scoping": "RAG_SCOPING",
    "log_questions": "RAG_LOG_QUESTIONS",
    "log_retention_days": "RAG_LOG_RETENTION_DAYS",
    "log_user": "RAG_LOG_USER",
    "weak_score": "RAG_WEAK_SCORE",
}


def _default_data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "uploads"


@dataclass(frozen=True)
class Settings:
    """All configuration. Construct directly, or with `from_env()` to read the `RAG_*` variables.

    >>> Settings(chunk_tokens=200, chunk_overlap=30).chunk_overlap
    30
    """

    data_dir: Path = field(default_factory=_default_data_dir)
    # postgresql://user:password@host:port/database keeps the knowledge base in PostgreSQL (with the
    # pgvector extension), shared by every app server pointed at it; data_dir then holds only local
    # caches. None: the embedded SQLite + FAISS store in data_dir, no server needed.
    database_url: str | None = None
    # sentence-transformers id or local path; DEFAULT_EMBEDDER is the copy bundled in a pip package.
    embedder: str = DEFAULT_EMBEDDER
    # Chunk size in the embedder's own word pieces (special tokens excluded). Chosen by measuring
    # hit@5/MRR on the shared eval set (see benchmarks/eval_retrieval.py and the README).
    chunk_tokens: int = 128
    chunk_overlap: int = 32
    # Index each chunk with its context: the document's title, the heading path where it starts and the
    # column headers of its table rows (rag_core.structure, rag_core.tables). BM25 always reads it; the
    # embedder reads it too only with embed_context: measured on the dev set's 5 folds with scoping, the
    # plain text embeds better (hit@5 0.906 -> 0.948, MRR 0.820 -> 0.861, no fold worse; eval_dev.py).
    chunk_context: bool = True
    embed_context: bool = False
    batch_size: int = 32
    # auto: bf16 on CPUs with AMX/AVX512-BF16 (OpenVINO's bf16, or torch autocast), at 0.9999 cosine to
    # fp32; fp32 elsewhere.
    precision: Precision = "auto"
    # auto: sentence-transformers models run on OpenVINO when it is installed (~1.6x torch autocast, the
    # same vectors to 0.9999 cosine; benchmarks/run.py), else torch. torch | openvino force one.
    embed_runtime: Runtime = "auto"
    # Exact search up to this many chunks (one query: ~0.05 ms per 1,000 chunks here); above it an IVF index
    # beside the exact one, its nprobe tuned to recall@10 >= 0.99 against exact at every write (rag_core.store).
    ann_threshold: int = 20_000
    # The PostgreSQL store's approximate index above ann_threshold: ivfflat (lists rebuilt when the store
    # doubles; measured better on real questions at 1M chunks) or hnsw (rag_core.store.pgindex).
    pg_index: PgIndexKind = "ivfflat"
    # After an ingest or delete, compute the analysis page's t-SNE map in a background thread.
    background_map: bool = True
    top_k: int = 5
    metric: Metric = "cosine"
    max_file_mb: float = 100.0
    max_pages: int = 2000
    max_files_per_batch: int = 50
    # A PDF is read in a worker process that is killed past this many seconds (a pathological or hostile
    # file must not hang the server; pypdf reads the 215-page collective agreement in ~15 s) and whose
    # address space is capped at this many MB (decompression bombs). 0 turns each guard off; a timeout of
    # 0 reads in-process, without a worker.
    parse_timeout_s: float = 120.0
    parse_memory_mb: int = 2048
    # Scanned PDF pages (no text layer, a picture) are read by OCR with Tesseract in these languages
    # (Tesseract's codes joined by "+", e.g. "eng+deu"; each needs its tesseract-ocr-<lang> package).
    # OCR time counts page by page: each OCR'd page gets parse_timeout_s of its own (rag_core.parsepool).
    ocr: bool = True
    ocr_languages: str = "eng"
    # Off by default: no code path may touch the network unless the user says so.
    allow_downloads: bool = False
    # dense | bm25 | hybrid. Default: the best measured on the shared eval set (benchmarks/eval_retrieval.py).
    mode: Mode = "hybrid"
    # How hybrid mode fuses each retriever's top `fusion_depth` candidates:
    #   convex: dense_weight x min-max-scaled cosine + (1 - dense_weight) x min-max-scaled BM25 (default;
    #           weight and depth chosen by 5-fold cross-validation on the dev set, benchmarks/eval_dev.py);
    #   rrf:    dense_weight/(rrf_k + dense rank) + bm25_weight/(rrf_k + BM25 rank).
    fusion: Fusion = "convex"
    dense_weight: float = 0.5
    bm25_weight: float = 1.0
    rrf_k: float = 60.0
    fusion_depth: int = 50
    # A question that names an organisation or document ("At Comcare, ...") is answered from that
    # document, ranked by the rest of the question (rag_core.scoping). Hybrid and BM25 modes.
    scoping: bool = True
    # extractive | hf:<model id or dir> | openai:<base url>#<model>
    generator: str = "extractive"
    # When the answer says the documents do not cover the question (rag_core.answer.coverage): the
    # coverage model's confidence below `min_coverage` (0 turns the model off), or the best passage's
    # cosine below the `min_score` floor. Both chosen by 5-fold cross-validation on the dev set's
    # answerable and uncovered questions (benchmarks/eval_refusal.py).
    min_score: float = 0.25
    min_coverage: float = 0.21
    # The question log (rag_core.insights): each answered question with its answer, citations, best
    # passage score and the feedback on it, kept log_retention_days days (0: kept until deleted), in
    # data_dir's insights.sqlite3 or, with database_url, in that database. No user identity unless
    # log_user. An answer is "weakly grounded" on the Insights page when it was given (not refused:
    # min_score and min_coverage decide that) from a best passage whose cosine is below weak_score; a
    # weak_score at or below min_score flags none.
    log_questions: bool = True
    log_retention_days: int = 90
    log_user: bool = False
    weak_score: float = 0.4

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.database_url is not None and not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "database_url must be a PostgreSQL URL (postgresql://user:password@host:port/database), or unset "
                f"for the local store in data_dir; got a URL starting {self.database_url.split(':', 1)[0]!r}"
            )
        if self.chunk_tokens < 16:
            raise ValueError(f"chunk_tokens must be >= 16; got chunk_tokens={self.chunk_tokens}")
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ValueError(
                "chunk_overlap must be >= 0 and < chunk_tokens; "
                f"got chunk_overlap={self.chunk_overlap}, chunk_tokens={self.chunk_tokens}"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got batch_size={self.batch_size}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; got {self.precision!r}")
        if self.embed_runtime not in RUNTIMES:
            raise ValueError(f"embed_runtime must be one of {RUNTIMES}; got {self.embed_runtime!r}")
        if self.ann_threshold < 1:
            raise ValueError(f"ann_threshold must be >= 1; got ann_threshold={self.ann_threshold}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1; got top_k={self.top_k}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}; got {self.metric!r}")
        if self.max_file_mb <= 0:
            raise ValueError(f"max_file_mb must be > 0; got max_file_mb={self.max_file_mb}")
        if self.max_pages < 1:
            raise ValueError(f"max_pages must be >= 1; got max_pages={self.max_pages}")
        if self.max_files_per_batch < 1:
            raise ValueError(f"max_files_per_batch must be >= 1; got max_files_per_batch={self.max_files_per_batch}")
        if self.parse_timeout_s < 0:
            raise ValueError(f"parse_timeout_s must be >= 0 (0 = no limit); got parse_timeout_s={self.parse_timeout_s}")
        if self.parse_memory_mb != 0 and self.parse_memory_mb < 256:
            raise ValueError(
                f"parse_memory_mb must be 0 (no cap) or >= 256; got parse_memory_mb={self.parse_memory_mb}"
            )
        if not _OCR_LANGUAGES.fullmatch(self.ocr_languages):
            raise ValueError(
                "ocr_languages must be Tesseract language codes joined by '+', e.g. 'eng' or 'eng+deu'; "
                f"got ocr_languages={self.ocr_languages!r}"
            )
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {self.mode!r}")
        if self.rrf_k <= 0 or self.dense_weight < 0 or self.bm25_weight < 0:
            raise ValueError(
                "rrf_k must be > 0 and the weights >= 0; "
                f"got rrf_k={self.rrf_k}, dense_weight={self.dense_weight}, bm25_weight={self.bm25_weight}"
            )
        if self.pg_index not in PG_INDEX_KINDS:
            raise ValueError(f"pg_index (RAG_PG_INDEX) must be one of {PG_INDEX_KINDS}; got {self.pg_index!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}; got {self.fusion!r}")
        if self.fusion == "convex" and self.dense_weight > 1:
            raise ValueError(f"convex fusion needs dense_weight in [0, 1]; got dense_weight={self.dense_weight}")
        if self.fusion_depth < 1:
            raise ValueError(f"fusion_depth must be >= 1; got fusion_depth={self.fusion_depth}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(
                f"min_coverage must be between 0 and 1 (a probability); got min_coverage={self.min_coverage}"
            )
        if not -1.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be between -1 and 1 (a cosine); got min_score={self.min_score}")
        if self.log_retention_days < 0:
            raise ValueError(
                "log_retention_days must be >= 0 (0 = keep until deleted); "
                f"got log_retention_days={self.log_retention_days}"
            )
        if not -1.0 <= self.weak_score <= 1.0:
            raise ValueError(f"weak_score must be between -1 and 1 (a cosine); got weak_score={self.weak_score}")
        if not self.embedder.strip():
            raise ValueError("embedder must be a model id or a local path; got an empty string")

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def ocr_languages_if_on(self) -> str | None:
        """The OCR languages, or None when OCR is off: what the loaders take."""
        return self.ocr_languages if self.ocr else None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then `RAG_*` environment variables, then explicit overrides (None = not given)."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for name, var in ENV_VARS.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[name] = _parse(name, var, raw, str(types[name]))
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(types)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; valid: {sorted(types)}")
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _parse(name: str, var: str, raw: str, type_name: str) -> Any:
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if type_name == "Path":
            return Path(raw)
        return raw
    except ValueError:
        raise ValueError(f"{var}={raw!r} is not a valid {type_name} for setting {name}") from None
