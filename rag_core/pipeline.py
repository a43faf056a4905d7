"""The engine's front door: ingest files, list and delete documents, search. One object per data dir.

Why it exists: loaders, chunking and embedding know nothing of the store, and the store knows only rows
and vectors (DESIGN.md). Something has to run load -> chunk -> embed -> store for a file, and the CLI,
the Streamlit pages and the benchmarks must all run it the same way. A page makes one call here.

Slow work (parsing, embedding) happens outside the writer lock; only the final atomic write holds it,
so two uploads at once embed in parallel and then commit one after the other.

The two cores overlap: a PDF is read in a parse worker process while this process loads the model
(first ingest) or embeds the previous file of the batch (the next file is read ahead). After an
ingest or delete, the analysis map is computed in a background thread (`settings.background_map`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from rag_core.chunking import Chunker
from rag_core.config import MODES, Settings
from rag_core.embedding import Embedder, shared_embedder
from rag_core.evaluation import EvalReport, QAItem, evaluate
from rag_core.generation import (
    Answer,
    AnswerStream,
    Generator,
    GeneratorUnavailable,
    make_generator,
    parse_spec,
    retrieval_query,
)
from rag_core.lexical import LexicalIndex
from rag_core.loaders import LoadedFile, LoadError, NoExtractableText
from rag_core.parsepool import parse_file
from rag_core.retrieval import Hit, fuse, fuse_scores, ranked_hits, search_vectors, with_ranks
from rag_core.store import (
    DocumentInfo,
    DuplicateDocument,
    EmbedderMismatch,
    KnowledgeBase,
    document_id_for,
    sha256_hex,
)

SAMPLE_PDF = Path(__file__).resolve().parent / "samples" / "sample_policy.pdf"
SAMPLE_NAME = "northwind-sample-hr-policy.pdf"

# (stage, done, total): stage is "parsing", "embedding" or "saving"; done/total count units of that stage.
IngestProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class IngestResult:
    """The outcome of one file, as the CLI prints it (`--json`) and the upload page shows it."""

    file: str
    status: str  # "added" | "duplicate" | "failed"
    document_id: str | None
    pages: int
    chunks: int
    error: str | None = None
    error_kind: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "status": self.status,
            "document_id": self.document_id,
            "pages": self.pages,
            "chunks": self.chunks,
            "error": self.error,
        }


class BatchTooLarge(ValueError):
    pass


class Engine:
    """Ingest and search over one knowledge base.

    `embedder_spec`: an explicit embedder; it must match the one the KB was built with. When None, the
    KB's recorded embedder is used (a query always uses the KB's encoder), or `settings.embedder` for a
    new KB. `embedder`: an already loaded model to reuse (the app and tests share one per process).
    """

    def __init__(self, settings: Settings, *, embedder_spec: str | None = None, embedder: Embedder | None = None):
        self.settings = settings
        self.kb = KnowledgeBase(settings.data_dir, ann_threshold=settings.ann_threshold)
        recorded = self.kb.embedder_name
        if embedder_spec is not None and recorded is not None and embedder_spec != recorded:
            self.kb.check_embedder(embedder_spec)  # raises with both names and how to re-index
        self.embedder_spec = embedder_spec or recorded or settings.embedder
        if embedder is not None and embedder.name != self.embedder_spec:
            self.kb.check_embedder(embedder.name, embedder.dimension)
            self.embedder_spec = embedder.name
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._chunker: Chunker | None = None
        self.lexical = LexicalIndex(self.kb)
        self._generators: dict[str, Generator] = {}
        self._generator_lock = threading.RLock()
        self._batches = 0  # ingest batches running: the background map waits for the last one
        self._batch_lock = threading.Lock()

    # ---------------------------------------------------------------- models

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use: listing or deleting documents needs no model."""
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = shared_embedder(
                    self.embedder_spec,
                    precision=self.settings.precision,
                    batch_size=self.settings.batch_size,
                    allow_downloads=self.settings.allow_downloads,
                    runtime=self.settings.embed_runtime,
                )
            return self._embedder

    def _preload_embedder(self) -> None:
        """Load the model in a thread (it takes seconds) while the caller waits on a parse worker."""
        if self._embedder is not None:
            return

        def load() -> None:
            with contextlib.suppress(Exception):  # the caller's own access raises it again, with context
                _ = self.embedder

        threading.Thread(target=load, name="policypal-embedder-load", daemon=True).start()

    @property
    def default_metric(self) -> str:
        """The settings' metric, except that a DPR knowledge base ranks by dot product, as DPR was
        trained, unless a metric other than the default cosine was configured."""
        if self.settings.metric == "cosine":
            return self.embedder.preferred_metric
        return self.settings.metric

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            e = self.embedder
            self._chunker = Chunker(
                e.tokenizer, self.settings.chunk_tokens, self.settings.chunk_overlap, e.max_seq_length
            )
        return self._chunker

    # ---------------------------------------------------------------- documents

    def documents(self) -> list[DocumentInfo]:
        return self.kb.documents()

    def delete(self, ref: str) -> DocumentInfo:
        doc = self.kb.delete(ref)
        self._refresh_derived()
        return doc

    def _refresh_derived(self) -> None:
        """Rebuild what is derived from the rows (the BM25 index) for the new generation, now rather
        than in the next user's query. A failure here loses nothing: readers rebuild it themselves."""
        try:
            self.lexical.refresh()
        except Exception as e:  # never fail an ingest or delete over a cache
            logging.getLogger(__name__).warning("BM25 index refresh failed: %s", e)
        if self._batches == 0:
            self._schedule_map()

    def _schedule_map(self) -> None:
        """Start the analysis map of the new state in the background: the Analysis page then opens at once."""
        if not self.settings.background_map:
            return
        try:
            from rag_core.analysis import schedule_map

            schedule_map(self.kb)
        except Exception as e:  # a missing optional package or a thread limit must not fail an ingest
            logging.getLogger(__name__).warning("background map not started: %s", e)

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        """Marks a multi-file ingest: derived work that can wait (the map) runs once, after the batch."""
        with self._batch_lock:
            self._batches += 1
        try:
            yield
        finally:
            with self._batch_lock:
                self._batches -= 1
            if self._batches == 0:
                self._schedule_map()

    def _parse_ahead(self, pool: ThreadPoolExecutor, name: str, data: bytes) -> Future[LoadedFile] | None:
        """Start reading the next file of a batch in a parse worker while this one embeds."""
        if not data or self.kb.find_by_sha(sha256_hex(data)) is not None:
            return None  # empty or a duplicate: ingest_bytes settles it without parsing
        return pool.submit(parse_file, data, display_name(name), self.settings)

    # ---------------------------------------------------------------- ingest

    def ingest_paths(
        self,
        paths: Sequence[str | Path],
        progress: Callable[[int, int, IngestResult | None], None] | None = None,
        file_progress: IngestProgress | None = None,
    ) -> list[IngestResult]:
        """Ingest files from disk, one result per file in order. A failing file never stops the batch."""
        self._check_batch(len(paths))
        results: list[IngestResult] = []

        def read(p: str | Path) -> tuple[str, bytes | IngestResult]:
            path = Path(p)
            try:
                if path.is_dir():
                    raise LoadError("is a directory: give the files inside it")
                size = path.stat().st_size
                if size > self.settings.max_file_bytes:
                    raise LoadError(
                        f"file too large: {size / 1e6:.1f} MB, the limit is "
                        f"{self.settings.max_file_bytes / 1e6:.1f} MB (raise RAG_MAX_FILE_MB to allow larger files)"
                    )
                return path.name, path.read_bytes()
            except (OSError, LoadError) as e:
                msg = str(e) if isinstance(e, LoadError) else f"could not open the file: {e.strerror or e}"
                return path.name, IngestResult(path.name, "failed", None, 0, 0, msg, "io")

        with self._batch(), ThreadPoolExecutor(1, thread_name_prefix="policypal-parse-ahead") as pool:
            ahead: Future[LoadedFile] | None = None
            upcoming = read(paths[0]) if paths else None
            for i in range(len(paths)):
                assert upcoming is not None
                (name, got), parsed = upcoming, ahead
                upcoming, ahead = (read(paths[i + 1]) if i + 1 < len(paths) else None), None
                if upcoming is not None:
                    next_name, next_data = upcoming
                    if isinstance(next_data, bytes):
                        ahead = self._parse_ahead(pool, next_name, next_data)
                result = got if isinstance(got, IngestResult) else self.ingest_bytes(name, got, file_progress, parsed)
                results.append(result)
                if progress is not None:
                    progress(i + 1, len(paths), result)
        return results

    def ingest_uploads(
        self,
        files: Sequence[tuple[str, bytes]],
        progress: Callable[[int, int, IngestResult | None], None] | None = None,
        file_progress: IngestProgress | None = None,
    ) -> list[IngestResult]:
        """Ingest (name, bytes) pairs, as the upload page receives them."""
        self._check_batch(len(files))
        results: list[IngestResult] = []
        with self._batch(), ThreadPoolExecutor(1, thread_name_prefix="policypal-parse-ahead") as pool:
            ahead: Future[LoadedFile] | None = None
            for i, (name, data) in enumerate(files):
                parsed, ahead = ahead, None
                if i + 1 < len(files):
                    ahead = self._parse_ahead(pool, *files[i + 1])
                results.append(self.ingest_bytes(name, data, file_progress, parsed))
                if progress is not None:
                    progress(i + 1, len(files), results[-1])
        return results

    def _check_batch(self, n: int) -> None:
        if n > self.settings.max_files_per_batch:
            raise BatchTooLarge(
                f"{n} files in one batch; the limit is {self.settings.max_files_per_batch} "
                "(split the batch, or raise RAG_MAX_FILES_PER_BATCH)"
            )

    def ingest_bytes(
        self,
        name: str,
        data: bytes,
        progress: IngestProgress | None = None,
        parsed: Future[LoadedFile] | None = None,
    ) -> IngestResult:
        """Load, chunk, embed and store one file. Never raises for a bad file: returns status 'failed'.

        `parsed`: the file already being read by a parse worker (a batch reads ahead).
        """
        display = display_name(name)
        sha = sha256_hex(data)
        existing = self.kb.find_by_sha(sha) if data else None
        if existing is not None:
            return IngestResult(display, "duplicate", existing.document_id, existing.pages, existing.chunks)
        try:
            if progress:
                progress("parsing", 0, 1)
            self._preload_embedder()  # the first file: load the model while the worker reads the file
            # In a worker process with a time and memory budget: a hostile PDF cannot hang the server.
            loaded = parsed.result() if parsed is not None else parse_file(data, display, self.settings)
            if progress:
                progress("parsing", 1, 1)
            chunks = self.chunker.chunk_pages(loaded.pages)
            if not chunks:  # text, but none the model can read (e.g. only U+FFFD from a broken font map)
                raise NoExtractableText(
                    "no readable text: the file's text is only symbols the model cannot read (a broken font "
                    "encoding?). Run OCR on it (e.g. ocrmypdf) and upload the result"
                )
            texts = [c.text for c in chunks]
            vectors, norms = self.embedder.encode_with_norms(
                texts, (lambda d, t: progress("embedding", d, t)) if progress else None
            )
            if progress:
                progress("saving", 0, 1)
            info = self.kb.add_document(
                name=display,
                data=data,
                kind=loaded.kind,
                pages=loaded.pages,
                page_count=loaded.page_count,
                chunks=chunks,
                vectors=vectors,
                norms=norms,
                embedder_name=self.embedder.name,
            )
            if progress:
                progress("saving", 1, 1)
        except DuplicateDocument as e:  # the same bytes landed from another upload meanwhile
            d = e.existing
            return IngestResult(display, "duplicate", d.document_id, d.pages, d.chunks)
        except LoadError as e:
            return IngestResult(display, "failed", None, 0, 0, str(e), e.kind)
        except EmbedderMismatch as e:
            return IngestResult(display, "failed", None, 0, 0, str(e), "embedder_mismatch")
        self._refresh_derived()
        return IngestResult(display, "added", info.document_id, info.pages, info.chunks)

    def load_sample(self, progress: IngestProgress | None = None) -> IngestResult:
        """Ingest the bundled sample HR policy, so a first-time user can try everything in one click."""
        return self.ingest_bytes(SAMPLE_NAME, SAMPLE_PDF.read_bytes(), progress)

    # ---------------------------------------------------------------- search

    @overload
    def search(
        self, query: str, k: int | None = None, metric: str | None = None, mode: str | None = None
    ) -> list[Hit]: ...
    @overload
    def search(
        self, query: list[str], k: int | None = None, metric: str | None = None, mode: str | None = None
    ) -> list[list[Hit]]: ...

    def search(
        self, query: str | list[str], k: int | None = None, metric: str | None = None, mode: str | None = None
    ) -> list[Hit] | list[list[Hit]]:
        """Top-k hits for a query (or a list of queries: one list of hits each). Empty KB -> no hits.

        mode: dense (embeddings, ranked by `metric`), bm25 (keywords) or hybrid (both, fused by
        reciprocal rank). In bm25 and hybrid mode each hit's `score` is its cosine similarity.
        """
        k = k or self.settings.top_k
        metric = metric or self.default_metric
        mode = mode or self.settings.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        queries = [query] if isinstance(query, str) else list(query)
        if self.kb.size == 0 or not queries:
            empty: list[list[Hit]] = [[] for _ in queries]
            return empty[0] if isinstance(query, str) else empty
        vectors, norms = self.embedder.encode_queries_with_norms(queries)
        if mode == "dense":
            results = [with_ranks(h) for h in search_vectors(self.kb, vectors, norms, k, metric)]
        else:
            depth = max(k, self.settings.fusion_depth)
            dense = search_vectors(self.kb, vectors, norms, depth, metric) if mode == "hybrid" else None
            lexical = self.lexical.search(queries, depth)
            results = []
            for j, q_hits in enumerate(lexical):
                dense_pairs = [(h.score, h.chunk_id) for h in dense[j]] if dense is not None else []
                if self.settings.fusion == "convex" and dense is not None:
                    fused = fuse_scores(dense_pairs, q_hits, k, dense_weight=self.settings.dense_weight)
                else:
                    fused = fuse(
                        [cid for _, cid in dense_pairs],
                        q_hits,
                        k,
                        rrf_k=self.settings.rrf_k,
                        dense_weight=self.settings.dense_weight,
                        bm25_weight=self.settings.bm25_weight,
                    )
                cosines = {h.chunk_id: h.score for h in dense[j]} if dense is not None and metric == "cosine" else {}
                results.append(ranked_hits(self.kb, fused, vectors[j], cosines, k))
        return results[0] if isinstance(query, str) else results

    def evaluate(
        self, items: Sequence[QAItem], modes: Sequence[str] = MODES, k: int = 5, metric: str | None = None
    ) -> dict[str, EvalReport]:
        """Score retrieval on QA items once per mode (hit@1/3/5, MRR, refusals, misses)."""
        reports: dict[str, EvalReport] = {}
        for m in modes:

            def search(questions: list[str], m: str = m) -> list[list[Hit]]:
                return self.search(questions, k=max(k, 5), metric=metric, mode=m)

            reports[m] = evaluate(items, search, k=k, min_score=self.settings.min_score)
        return reports

    def generator(self, spec: str | None = None) -> tuple[Generator, str | None]:
        """The generator for `spec` (default: settings), loaded once; (generator, warning).

        A generator that cannot be used (model not on disk, server down) falls back to extractive,
        with the reason as the warning, so a question always gets a grounded answer.
        """
        spec = spec or self.settings.generator
        parse_spec(spec)  # a malformed spec is a usage error, not a fallback
        with self._generator_lock:
            if spec not in self._generators:
                try:
                    self._generators[spec] = make_generator(
                        spec, self.embedder.encode, allow_downloads=self.settings.allow_downloads
                    )
                except GeneratorUnavailable as e:
                    extractive, _ = self.generator("extractive") if spec != "extractive" else (None, None)
                    assert extractive is not None
                    return extractive, f"{e}"
            return self._generators[spec], None

    def answer_stream(
        self,
        question: str,
        *,
        history: Sequence[str] = (),
        k: int | None = None,
        metric: str | None = None,
        generator: str | None = None,
        no_context: bool = False,
        mode: str | None = None,
    ) -> AnswerStream:
        """Retrieve (a follow-up together with the previous question), then stream the answer."""
        gen, warning = self.generator(generator)
        query = retrieval_query(question, history)
        hits = None if no_context else self.search(query, k=k, metric=metric, mode=mode)
        return AnswerStream(question, gen, hits, self.settings.min_score, warning)

    def answer(
        self,
        question: str,
        *,
        history: Sequence[str] = (),
        k: int | None = None,
        metric: str | None = None,
        generator: str | None = None,
        no_context: bool = False,
        mode: str | None = None,
    ) -> Answer:
        """`answer_stream(...)` drained: the complete Answer with citations, hits and prompt."""
        return self.answer_stream(
            question, history=history, k=k, metric=metric, generator=generator, no_context=no_context, mode=mode
        ).result()


def display_name(name: str) -> str:
    """The base name of an uploaded file, safe to show: no directories, no control characters.

    Never used as a path (originals are stored by content hash); it is what people see and search by.
    Invisible format characters go (a right-to-left override can make "exe.pdf" read as "fdp.exe"),
    except the zero-width joiners that emoji and Persian or Indic words need; other whitespace becomes
    a space; a name over 255 characters is cut in the middle, keeping its extension.

    >>> display_name("../../etc/passwd"), display_name("C:\\\\Users\\\\x\\\\Leave Policy.pdf")
    ('passwd', 'Leave Policy.pdf')
    >>> display_name("report\\u202efdp.exe"), display_name("Leave\\u00a0Policy.pdf")
    ('reportfdp.exe', 'Leave Policy.pdf')
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(
        " " if ch.isspace() else ch for ch in base if ch.isprintable() or ch.isspace() or ch in "\u200c\u200d"
    )
    base = base.strip() or "unnamed"
    if len(base) > 255:
        stem, dot, ext = base.rpartition(".")
        base = f"{stem[: 254 - len(ext) - 1]}….{ext}" if dot and stem and len(ext) <= 16 else base[:254] + "…"
    return base


__all__ = ["BatchTooLarge", "Engine", "IngestResult", "display_name", "document_id_for"]
