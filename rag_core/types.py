"""The vocabulary: the records that flow between PolicyPal's stages, once, as frozen dataclasses.

Every stage takes and returns these; nothing passes a dict across a module boundary. Statuses, modes,
metrics and kinds are `Literal` types, so a typo is a type error rather than a silent miss.

A record's JSON form (`to_json`, the CLI's `--json` and the exports) is derived from its fields by
`json_of`: a field marked `INTERNAL` stays out of the JSON, a field marked `json_key("x")` is written
under another name. Adding a field therefore adds it to the JSON unless it is marked, and no
hand-written `to_json` can drift from the record.

    upload bytes -> LoadedFile(pages) -> Chunk ... -> NewDocument (+ vectors) -> store -> DocumentInfo
    question -> Hit ... -> Answer(citations, hits)          ingest of one file -> IngestResult

What it leaves out: behaviour. Records hold data and derive JSON; the services own what happens.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

Mode = Literal["dense", "bm25", "hybrid"]
Metric = Literal["cosine", "dot", "l2"]
Fusion = Literal["convex", "rrf"]
PgIndexKind = Literal["ivfflat", "hnsw"]  # the PostgreSQL store's approximate index (rag_core.store.pgindex)
FileKind = Literal["pdf", "docx", "pptx", "xlsx", "html", "md", "txt"]
# A page label that starts with one of these names the part of a file that is not a printed page, and a
# citation says it as it is: a Word file with no page breaks is cited by heading section ("section 3:
# Annual leave"), a presentation by slide ("slide 4"), a workbook by sheet ("sheet: Leave").
SECTION_LABEL = "section "
SLIDE_LABEL = "slide "
SHEET_LABEL = "sheet: "
NAMED_LABELS = (SECTION_LABEL, SLIDE_LABEL, SHEET_LABEL)
IngestStatus = Literal["added", "updated", "duplicate", "failed"]
Stage = Literal["parsing", "ocr", "embedding", "saving"]  # "ocr": scanned pages read by OCR, in pages
Role = Literal["user", "assistant"]
EncodeKind = Literal["query", "passage"]
IndexKind = Literal["flat", "ivf", "hnsw"]
ChangeKind = Literal["added", "updated", "restored", "deleted", "external"]  # external: another process wrote
Precision = Literal["auto", "fp32", "bf16"]
Runtime = Literal["auto", "torch", "openvino"]
QuestionKind = str  # the QA file's own labels (fact, paraphrase, unanswerable, ...), not a closed set

MODES: tuple[Mode, ...] = get_args(Mode)
METRICS: tuple[Metric, ...] = get_args(Metric)
FUSIONS: tuple[Fusion, ...] = get_args(Fusion)
PG_INDEX_KINDS: tuple[PgIndexKind, ...] = get_args(PgIndexKind)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)

# Field metadata understood by `json_of`.
INTERNAL: dict[str, Any] = {"json": False}


def json_key(name: str) -> dict[str, Any]:
    """Metadata that writes a field under another JSON name (e.g. Answer.text as "answer")."""
    return {"json_key": name}


def json_of(record: Any) -> dict[str, object]:
    """The JSON form of a record: its fields in order, less INTERNAL ones, nested records converted.

    >>> json_of(Citation(1, "Leave.pdf", 3, 42))
    {'document': 'Leave.pdf', 'page': 3, 'chunk_id': 42}
    """
    out: dict[str, object] = {}
    for f in dataclasses.fields(record):
        if f.metadata.get("json", True) is False:
            continue
        out[f.metadata.get("json_key", f.name)] = _plain(getattr(record, f.name))
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_of(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document_id_for(sha256: str) -> str:
    """Content-derived id: the first 16 hex digits of the SHA-256 (64 bits; collisions are not a concern)."""
    return sha256[:16]


# ---------------------------------------------------------------------------- loading and chunking


@dataclass(frozen=True)
class Page:
    """One page of extracted text. `number` is 1-based, as a reader counts PDF pages."""

    number: int
    text: str
    label: str | None = None  # the printed page number when it differs, or a section/slide/sheet (NAMED_LABELS)
    ocr: bool = False  # the text was read from a picture of the page by OCR, not from the file's text


@dataclass(frozen=True)
class LoadedFile:
    """What a loader returns: the detected kind and the non-empty pages."""

    kind: FileKind
    pages: list[Page]
    page_count: int  # pages in the file, including the empty ones dropped

    @property
    def ocr_pages(self) -> int:
        """How many of the pages were read by OCR."""
        return sum(p.ocr for p in self.pages)


@dataclass(frozen=True)
class Chunk:
    """A span of one page's text. `text == page_text[start:end]`; `page` is 1-based."""

    page: int
    start: int
    end: int
    text: str
    tokens: int
    context: str = ""  # title and heading path, read with the text by the embedder and BM25, never shown


@dataclass(frozen=True)
class NewDocument:
    """A document ready to store: its bytes, pages, chunks and their vectors, all of one embedder.

    The store takes this and nothing else; it never parses, chunks or embeds.
    """

    name: str
    data: bytes
    sha256: str
    kind: FileKind
    page_count: int
    pages: list[Page]
    chunks: list[Chunk]
    vectors: FloatArray  # (len(chunks), dimension), unit length
    norms: FloatArray  # (len(chunks),), the vectors' norms before normalisation
    embedder: str

    def __post_init__(self) -> None:
        n = len(self.chunks)
        if len(self.vectors) != n or len(self.norms) != n:
            raise ValueError(
                f"chunks, vectors and norms must have the same length; got {n}, {len(self.vectors)}, {len(self.norms)}"
            )
        if not n:
            raise ValueError("a document needs at least one chunk")

    @property
    def document_id(self) -> str:
        return document_id_for(self.sha256)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])


# ---------------------------------------------------------------------------- stored


@dataclass(frozen=True)
class DocumentInfo:
    """A stored document, as `docs` lists it: one version of the document its name stands for.

    A document's name is its identity across versions: a new file under the same name becomes version
    n+1 and the one it `replaces` stops being `current` (kept for audit and restore, never searched).
    """

    document_id: str
    name: str
    sha256: str
    kind: FileKind
    bytes: int = field(metadata=INTERNAL)
    pages: int
    chunks: int
    added_at: str
    version: int = 1
    # Out of the JSON, which keeps to the command line contract: `docs --json` lists the current ones.
    current: bool = field(default=True, metadata=INTERNAL)
    replaces: str | None = field(default=None, metadata=INTERNAL)  # the document_id of the version it replaced

    def to_json(self) -> dict[str, object]:
        return json_of(self)


@dataclass(frozen=True)
class ChunkRow:
    """A stored chunk with its document's name."""

    chunk_id: int
    document_id: str
    document: str
    page: int
    start: int
    end: int
    text: str
    norm: float
    context: str = ""
    page_label: str | None = None
    page_ocr: bool = False  # its page's text was read by OCR (Page.ocr)


@dataclass(frozen=True)
class IndexInfo:
    """Which vector index serves searches in one generation, and its measured recall."""

    kind: IndexKind
    size: int
    nlist: int = 0
    nprobe: int = 0
    recall_at_10: float = 1.0  # measured against exact search when the index was written
    trained_size: int = 0  # chunks the IVF lists were trained on (retrained when the KB doubles); HNSW: tuned at
    ef_search: int = 0  # the HNSW index's search breadth (PostgreSQL), tuned like nprobe


@dataclass(frozen=True)
class KnowledgeChanged:
    """Emitted by the engine after a write has been published (one per batch of uploads)."""

    kind: ChangeKind
    generation: int
    document_ids: tuple[str, ...]


# ---------------------------------------------------------------------------- retrieval and answers


@dataclass(frozen=True)
class Hit:
    """One retrieved passage. `score` is always its cosine similarity to the query, in every mode, so
    the number users see and the answer threshold keep one meaning; the other retrievers' view of it
    travels in the fields after `text`, which the CLI contract leaves out."""

    rank: int
    score: float
    document: str
    document_id: str
    page: int
    chunk_id: int
    text: str
    page_label: str | None = None  # the printed page number ("45" on PDF page 56), null when none
    start: int = field(default=0, metadata=INTERNAL)
    end: int = field(default=0, metadata=INTERNAL)
    dense_rank: int | None = field(default=None, metadata=INTERNAL)  # None = not among its candidates
    bm25_score: float | None = field(default=None, metadata=INTERNAL)
    bm25_rank: int | None = field(default=None, metadata=INTERNAL)
    fused_score: float | None = field(default=None, metadata=INTERNAL)
    context: str = field(default="", metadata=INTERNAL)  # what the chunk was indexed with (Chunk.context)
    ocr: bool = field(default=False, metadata=INTERNAL)  # the passage's page was read by OCR

    @property
    def page_cited(self) -> str:
        """The page as a citation names it: "page 45 (PDF p. 56)" when the printed number differs, or
        the section ("section 3: Annual leave"), slide or sheet for a file without pages."""
        if self.page_label is not None and self.page_label.startswith(NAMED_LABELS):
            return self.page_label
        if self.page_label is None or self.page_label == str(self.page):
            return f"page {self.page}"
        return f"page {self.page_label} (PDF p. {self.page})"

    @classmethod
    def from_row(
        cls,
        row: ChunkRow,
        *,
        rank: int,
        score: float,
        dense_rank: int | None = None,
        bm25_score: float | None = None,
        bm25_rank: int | None = None,
        fused_score: float | None = None,
    ) -> Hit:
        return cls(
            rank=rank,
            score=score,
            document=row.document,
            document_id=row.document_id,
            page=row.page,
            chunk_id=row.chunk_id,
            text=row.text,
            page_label=row.page_label,
            start=row.start,
            end=row.end,
            dense_rank=dense_rank,
            bm25_score=bm25_score,
            bm25_rank=bm25_rank,
            fused_score=fused_score,
            context=row.context,
            ocr=bool(row.page_ocr),
        )

    def to_json(self) -> dict[str, object]:
        """The hit as the CLI contract specifies it (DESIGN.md), nothing more."""
        return json_of(self)

    def evidence_json(self) -> dict[str, object]:
        """The contract keys plus how dense and BM25 retrieval ranked it, for exports."""
        d = dataclasses.asdict(self)
        d.pop("start")
        d.pop("end")
        return d


@dataclass(frozen=True)
class Citation:
    number: int = field(metadata=INTERNAL)  # the [n] marker in the answer text
    document: str
    page: int
    chunk_id: int


@dataclass(frozen=True)
class Coverage:
    """Whether the documents cover a question, and why (rag_core.answer.coverage).

    `confidence` is the coverage model's probability that the retrieved passages answer the question;
    the features it read travel with it so that a refusal can be explained to HR and to the employee.
    """

    covered: bool
    confidence: float
    best_sentence: float  # highest cosine of the question with one sentence of the top passages
    best_passage: float  # highest cosine of the question with a top passage
    unknown_share: float  # share of the question's content words no document contains, x vocabulary evidence
    unknown_terms: list[str] = field(default_factory=list)  # those words, as the question spells them


@dataclass(frozen=True)
class Answer:
    question: str
    text: str = field(metadata=json_key("answer"))
    generator: str
    grounded: bool
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    prompt: str = ""
    warning: str | None = None
    coverage: Coverage | None = field(default=None, metadata=INTERNAL)  # None: answered without retrieval

    def to_json(self) -> dict[str, object]:
        return json_of(self)


# ---------------------------------------------------------------------------- ingest


@dataclass(frozen=True)
class IngestResult:
    """The outcome of one file, as the CLI prints it (`--json`) and the upload page shows it."""

    file: str
    status: IngestStatus
    document_id: str | None
    pages: int
    chunks: int
    error: str | None = None
    error_kind: str | None = field(default=None, metadata=INTERNAL)  # a LoadError kind, "io", ...
    replaces: str | None = None  # status "updated": the document_id of the version it replaced
    version: int | None = None  # the stored document's version (None when nothing was stored)
    ocr_pages: int = 0  # pages whose text was read by OCR (scanned pages)
    # Stored, but worth a look (nearly the same text as another document): shown on the page, and on
    # stderr beside the JSON, whose keys keep to the command line contract.
    warning: str | None = field(default=None, metadata=INTERNAL)

    def to_json(self) -> dict[str, object]:
        return json_of(self)


# ---------------------------------------------------------------------------- ingestion jobs

JobStatus = Literal["queued", "running", "done", "failed"]
JobFileStatus = Literal["queued", "running", "added", "updated", "duplicate", "failed"]


@dataclass(frozen=True)
class JobFile:
    """One file of an ingestion job: where it is (its stage and units done), then its result."""

    name: str
    status: JobFileStatus
    stage: Stage | None = None
    done: int = 0
    total: int = 0
    result: IngestResult | None = None

    def to_json(self) -> dict[str, object]:
        return json_of(self)


@dataclass(frozen=True)
class Job:
    """An upload as it is persisted before any parsing: its files, its state and each file's result, so
    a reload, another browser or a restarted server sees it and a killed worker's job is resumed."""

    job_id: str
    status: JobStatus
    created_at: str
    started_at: str | None
    finished_at: str | None
    worker: str | None
    files: list[JobFile]
    error: str | None = None  # status "failed": why the job as a whole could not run

    @property
    def finished_files(self) -> int:
        return sum(f.result is not None for f in self.files)

    def to_json(self) -> dict[str, object]:
        return json_of(self)


# ---------------------------------------------------------------------------- question log and insights

Vote = Literal["up", "down"]
FeedbackReason = Literal["wrong", "outdated", "incomplete", "not what I asked"]
FEEDBACK_REASONS: tuple[FeedbackReason, ...] = get_args(FeedbackReason)


@dataclass(frozen=True)
class CitedPage:
    """A document page an answer cited (rag_core.insights keeps these, not the passages)."""

    document: str
    page: int


@dataclass(frozen=True)
class LoggedQuestion:
    """One answered question as the question log keeps it, with the feedback given on its answer.

    `best_score` is the highest cosine of the question with a retrieved passage (None: no passage was
    retrieved); `generation` the knowledge base generation it was answered from; `user` stays None
    unless the deployment turns identities on (RAG_LOG_USER)."""

    id: int
    asked_at: str  # ISO 8601, UTC, seconds
    question: str
    answer: str
    grounded: bool
    best_score: float | None
    citations: list[CitedPage]
    generation: int
    feedback: Vote | None = None
    reason: FeedbackReason | None = None
    feedback_at: str | None = None
    user: str | None = None

    def to_json(self) -> dict[str, object]:
        return json_of(self)


@dataclass(frozen=True)
class Feedback:
    """A thumbs up or down on one logged answer, with an optional reason (down votes)."""

    question_id: int
    vote: Vote
    reason: FeedbackReason | None
    given_at: str

    def to_json(self) -> dict[str, object]:
        return json_of(self)


@dataclass(frozen=True)
class DayCount:
    date: str  # YYYY-MM-DD, UTC
    questions: int
    refused: int


@dataclass(frozen=True)
class CitedCount:
    """How many logged answers cited a document (page None) or one page of it."""

    document: str
    page: int | None
    citations: int


@dataclass(frozen=True)
class Topic:
    """Refused or weakly grounded questions that embed close together: what the documents miss."""

    label: str  # its most telling words, joined by ", "
    words: list[str]
    count: int
    last_asked: str
    examples: list[str]  # newest first


@dataclass(frozen=True)
class InsightsReport:
    """What `python -m rag_core insights` prints and the Insights page shows (docs/ARCHITECTURE.md)."""

    days: int
    since: str  # the first day counted, YYYY-MM-DD
    questions: int
    refused: int
    weak: int
    per_day: list[DayCount]
    documents: list[CitedCount]
    pages: list[CitedCount]
    topics: list[Topic]
    thumbs_down: list[LoggedQuestion]

    def to_json(self) -> dict[str, object]:
        return json_of(self)
