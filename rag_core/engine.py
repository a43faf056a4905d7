"""The one door: the CLI, the Streamlit pages and the benchmarks use PolicyPal through an `Engine`.

It builds the services from `Settings` and holds nothing else of its own:

    store      the knowledge store (rag_core.store): documents, chunks, vectors, generations
    ingestor   files -> stored documents (rag_core.ingest)
    searcher   dense, BM25 and hybrid retrieval (rag_core.search)
    answerer   hits -> a cited answer or a plain "not found" (rag_core.answer)
    questions  the question log, feedback on answers and the Insights report (rag_core.insights)

plus the embedder they share, loaded on first use (listing or deleting documents needs no model).
After each write it brings the BM25 index up to date and tells its subscribers (`subscribe`) with a
`KnowledgeChanged` event; the app subscribes the analysis map job, so the engine knows nothing of maps.
A batch of uploads is one event, sent when the last concurrent batch ends.

Several processes may share one knowledge base (app servers on one PostgreSQL database, workers,
the CLI). Reads follow their writes by themselves: every search, BM25 lookup and map is keyed by the
store generation it reads. `follow_other_writers`, which the app's engine runs, also does at once
what the engine does after its own writes when another process has moved the generation (BM25
rebuilt, an "external" event, so the map is computed in the background), sparing that work to the
first user who asks.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import overload

from rag_core import maps
from rag_core.answer import Answerer, AnswerStream, CoverageJudge, Generator, retrieval_query
from rag_core.answer.cache import EncodeCache
from rag_core.config import Settings
from rag_core.embedding import Embedder, shared_embedder
from rag_core.evaluation import EvalReport, QAItem, evaluate
from rag_core.ingest import BatchProgress, Ingestor, IngestProgress
from rag_core.insights import Questions
from rag_core.search import Searcher
from rag_core.store import open_store
from rag_core.types import (
    MODES,
    Answer,
    ChangeKind,
    DocumentInfo,
    FloatArray,
    Hit,
    IngestResult,
    KnowledgeChanged,
    Metric,
    Mode,
)

Listener = Callable[[KnowledgeChanged], None]
FOLLOW_S = 2.0  # how often the app's engine looks for other processes' writes (one small query)

_log = logging.getLogger(__name__)


class Engine:
    """Ingest, search and answer over one knowledge base.

    `embedder_spec`: an explicit embedder; it must match the one the KB was built with. When None, the
    KB's recorded embedder is used (a query always uses the KB's encoder), or `settings.embedder` for a
    new KB. `embedder`: an already loaded model to reuse (the app and tests share one per process).
    """

    def __init__(self, settings: Settings, *, embedder_spec: str | None = None, embedder: Embedder | None = None):
        self.settings = settings
        self.store = open_store(
            settings.data_dir, settings.database_url, ann_threshold=settings.ann_threshold, pg_index=settings.pg_index
        )
        recorded = self.store.embedder_name
        if embedder_spec is not None and recorded is not None and embedder_spec != recorded:
            self.store.check_embedder(embedder_spec)  # raises with both names and how to re-index
        self.embedder_spec = embedder_spec or recorded or settings.embedder
        if embedder is not None and embedder.name != self.embedder_spec:
            self.store.check_embedder(embedder.name, embedder.dimension)
            self.embedder_spec = embedder.name
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._batches = 0  # ingest batches running: the change event waits for the last one
        self._batch_lock = threading.Lock()
        self._pending: tuple[ChangeKind, list[str]] | None = None
        self.searcher = Searcher(settings, self.store, lambda: self.embedder)

        def embed(texts: list[str]) -> FloatArray:
            return self.embedder.encode_passage(texts)

        # the judge and the extractive answerer read the same sentences: each is embedded once
        self.sentence_cache = encode = EncodeCache(embed)
        vocabulary = self.searcher.lexical.vocabulary
        judge = CoverageJudge(encode, vocabulary, min_score=settings.min_score, min_coverage=settings.min_coverage)
        self.answerer = Answerer(settings.generator, encode, judge, allow_downloads=settings.allow_downloads)
        self.ingestor = Ingestor(settings, self.store, lambda: self.embedder, self._stored)
        self.questions = Questions(settings, self.store.generation, lambda texts: self.embedder.encode_query(texts))

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use, once per process for each configuration."""
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

    # ---------------------------------------------------------------- change events

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` after every published change (an ingest batch, a delete). A listener that
        raises is logged and never fails the write."""
        self._listeners.append(listener)

    def _stored(self, info: DocumentInfo) -> None:
        self._changed("updated" if info.version > 1 else "added", [info.document_id])

    def _changed(self, kind: ChangeKind, document_ids: list[str]) -> None:
        self.searcher.refresh()
        with self._batch_lock:
            ids = (self._pending[1] if self._pending else []) + document_ids
            self._pending = (kind, ids)
            if self._batches:
                return
        self._emit()

    def _emit(self) -> None:
        with self._batch_lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        event = KnowledgeChanged(pending[0], self.store.generation(), tuple(pending[1]))
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as e:  # a missing optional package or a thread limit must not fail a write
                _log.warning("change listener failed: %s", e)

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        """Marks a multi-file ingest: subscribers hear of it once, after the last concurrent batch."""
        with self._batch_lock:
            self._batches += 1
        try:
            yield
        finally:
            with self._batch_lock:
                self._batches -= 1
                last = self._batches == 0
            if last:
                self._emit()

    # ---------------------------------------------------------------- documents

    def documents(self, *, all_versions: bool = False) -> list[DocumentInfo]:
        """The current documents, oldest first; with `all_versions`, the replaced versions too."""
        return self.store.documents(all_versions=all_versions)

    def restore(self, ref: str) -> DocumentInfo:
        """Make an older version of a document current again (by its id); the current one is kept."""
        doc = self.store.restore(ref)
        self._changed("restored", [doc.document_id])
        return doc

    def is_empty(self) -> bool:
        """True when no document is stored: pages and the CLI then point the user to uploading."""
        return not self.store.documents()

    def delete(self, ref: str) -> DocumentInfo:
        """Delete a document by id, id prefix, SHA-256 or name."""
        doc = self.store.delete(ref)
        self._changed("deleted", [doc.document_id])
        return doc

    def ingest_paths(
        self,
        paths: Sequence[str | Path],
        progress: BatchProgress | None = None,
        file_progress: IngestProgress | None = None,
    ) -> list[IngestResult]:
        """Ingest files from disk, one result per file in order. A failing file never stops the batch."""
        with self._batch():
            return self.ingestor.ingest_paths(paths, progress, file_progress)

    def ingest_uploads(
        self,
        files: Sequence[tuple[str, bytes]],
        progress: BatchProgress | None = None,
        file_progress: IngestProgress | None = None,
    ) -> list[IngestResult]:
        """Ingest (name, bytes) pairs, as the upload page receives them."""
        with self._batch():
            return self.ingestor.ingest_uploads(files, progress, file_progress)

    def ingest_bytes(self, name: str, data: bytes, progress: IngestProgress | None = None) -> IngestResult:
        """Ingest one file's bytes."""
        with self._batch():
            return self.ingestor.ingest_bytes(name, data, progress)

    def load_sample(self, progress: IngestProgress | None = None) -> IngestResult:
        """Ingest the bundled sample HR policy, so a first-time user can try everything in one click."""
        with self._batch():
            return self.ingestor.load_sample(progress)

    # ---------------------------------------------------------------- search and answers

    @overload
    def search(
        self, query: str, k: int | None = None, metric: Metric | None = None, mode: Mode | None = None
    ) -> list[Hit]: ...
    @overload
    def search(
        self, query: list[str], k: int | None = None, metric: Metric | None = None, mode: Mode | None = None
    ) -> list[list[Hit]]: ...

    def search(
        self, query: str | list[str], k: int | None = None, metric: Metric | None = None, mode: Mode | None = None
    ) -> list[Hit] | list[list[Hit]]:
        """Top-k hits for a query, or one list of hits per query (see `Searcher.search`)."""
        return self.searcher.search(query, k, metric, mode)

    def evaluate(
        self,
        items: Sequence[QAItem],
        modes: Sequence[Mode] = MODES,
        k: int = 5,
        metric: Metric | None = None,
        *,
        answers: bool = False,
    ) -> dict[Mode, EvalReport]:
        """Score retrieval on QA items once per mode (hit@1/3/5, MRR, refusals, misses); with `answers`,
        also answer each question from its hits as `ask` would (answer-contains, both refusal rates)."""
        reports: dict[Mode, EvalReport] = {}

        def answer(question: str, hits: list[Hit]) -> Answer:
            return self.answerer.stream(question, hits, query=self.searcher.topic(question)).result()

        for m in modes:

            def search(questions: list[str], m: Mode = m) -> list[list[Hit]]:
                return self.searcher.search(questions, k=max(k, 5), metric=metric, mode=m)

            reports[m] = evaluate(items, search, k=k, covered=self.covered, answer=answer if answers else None)
        return reports

    def covered(self, question: str, hits: list[Hit]) -> bool:
        """Whether `hits` cover `question`, as `ask` decides before answering (see CoverageJudge)."""
        return self.answerer.judge.judge(self.searcher.topic(question), hits).covered

    def generator(self, spec: str | None = None) -> tuple[Generator, str | None]:
        """The generator for `spec` and a warning when it fell back to extractive (see `Answerer`)."""
        return self.answerer.generator(spec)

    def answer_stream(
        self,
        question: str,
        *,
        history: Sequence[str] = (),
        k: int | None = None,
        metric: Metric | None = None,
        generator: str | None = None,
        no_context: bool = False,
        mode: Mode | None = None,
    ) -> AnswerStream:
        """Retrieve (a follow-up together with the previous question), then stream the answer."""
        self.answerer.generator(generator)  # a malformed spec fails before any retrieval
        query = retrieval_query(question, history)
        hits = None if no_context else self.searcher.search(query, k=k, metric=metric, mode=mode)
        return self.answerer.stream(question, hits, generator, query=self.searcher.topic(query))

    def answer(
        self,
        question: str,
        *,
        history: Sequence[str] = (),
        k: int | None = None,
        metric: Metric | None = None,
        generator: str | None = None,
        no_context: bool = False,
        mode: Mode | None = None,
    ) -> Answer:
        """`answer_stream(...)` drained: the complete Answer with citations, hits and prompt."""
        return self.answer_stream(
            question, history=history, k=k, metric=metric, generator=generator, no_context=no_context, mode=mode
        ).result()

    # ---------------------------------------------------------------- looking inside

    def query_view(
        self,
        query: str,
        *,
        method: maps.Method = "tsne",
        perplexity: float = maps.DEFAULT_PERPLEXITY,
        k: int = 5,
        colour: maps.Colouring = "document",
    ) -> maps.QueryView:
        """The embedding map with `query` placed on it, its top-k and the top-k under every metric."""
        return maps.query_view(self.store, self.searcher, query, method, perplexity, k, colour)

    def document_similarity(self) -> tuple[list[str], FloatArray]:
        """Document labels and their mean chunk-to-chunk cosine similarity matrix."""
        return maps.document_similarity(self.store)


def serving_engine(settings: Settings, *, embedder: Embedder | None = None) -> Engine:
    """The engine as the app runs it: it follows other processes' writes (`follow_other_writers`), and
    with `settings.background_map` the Analysis page's map of each new state is computed in the
    background after every change, its own or another's (the map job subscribes to the events)."""
    engine = Engine(settings, embedder=embedder)
    if settings.background_map:
        engine.subscribe(maps.follow_changes(engine.store))
    follow_other_writers(engine)
    return engine


def follow_other_writers(engine: Engine, interval_s: float = FOLLOW_S) -> threading.Event:
    """Watch the store's generation in a daemon thread; when a write this engine did not publish has
    moved it (an upload through another app server, a worker on another machine, the CLI), refresh
    BM25 and publish an "external" change, as after the engine's own writes. Set the returned event to
    stop watching.

    The engine's own writes publish their own event (a batch when it ends), so the watch waits them
    out, and a generation the engine has published is not published again. Stops when the store's
    directory is gone."""
    stop = threading.Event()
    seen = engine.store.generation()
    lock = threading.Lock()

    def published(event: KnowledgeChanged) -> None:
        nonlocal seen
        with lock:
            seen = max(seen, event.generation)

    def unpublished() -> int | None:
        """The store's generation if neither this engine has published it nor a batch of its runs."""
        generation = engine.store.generation()
        with lock:
            return None if generation == seen or engine._batches else generation

    def watch() -> None:
        nonlocal seen
        while not stop.wait(interval_s) and engine.store.cache_dir.exists():
            try:
                # Seen twice, an interval apart: a write of this engine's own has published itself by then.
                if unpublished() is None or stop.wait(interval_s) or (generation := unpublished()) is None:
                    continue
                with lock:
                    seen = generation
                engine._changed("external", [])
            except Exception as e:  # the database restarting must not end the watch
                _log.warning("could not follow the knowledge base's generation: %s", e)

    engine.subscribe(published)
    threading.Thread(target=watch, name="policypal-follow", daemon=True).start()
    return stop
