"""The Ingestor: files -> stored documents. Limits, read-ahead, then parse -> chunk -> embed -> store.

Why one service: the CLI, the upload page and the benchmarks must run a file through the same steps
with the same limits, and a failing file must never stop a batch (it becomes a `failed` result with a
message saying what to do).

Slow work (parsing, embedding) happens outside the store's writer lock; only the final atomic write
holds it, so two uploads at once embed in parallel and then commit one after the other. The two
cores overlap: a PDF or Office file is read in a parse worker process while this process loads the
model (first ingest) or embeds the previous file of the batch (the next file is read ahead). Scanned
pages are read by OCR in the worker, and reported page by page as the "ocr" stage.

What it leaves out: what happens after a write (the engine refreshes BM25 and tells subscribers).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from rag_core.chunking import Chunker
from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.loaders import LoadError, NoExtractableText
from rag_core.parsepool import ParseProgress, parse_file
from rag_core.store import DuplicateDocument, EmbedderMismatch, KnowledgeStore
from rag_core.structure import document_title, page_labels
from rag_core.types import Chunk, DocumentInfo, IngestResult, IngestStatus, LoadedFile, NewDocument, Stage, sha256_hex

# (stage, done, total): done/total count units of that stage.
IngestProgress = Callable[[Stage, int, int], None]
# (files done, files in the batch, the result of the file just done).
BatchProgress = Callable[[int, int, IngestResult], None]
# Reads one file of a batch when its turn comes: (name, its bytes) or (name, the failure).
FileReader = Callable[[], tuple[str, bytes | IngestResult]]

SAMPLE_PDF = Path(__file__).resolve().parent / "samples" / "sample_policy.pdf"
# A file whose passages are at least this share word for word those of a current document under
# another name is a copy (a renamed upload, "handbook (1).pdf"): it is stored, with a warning naming it.
NEAR_DUPLICATE_SHARE = 0.95
SAMPLE_NAME = "northwind-sample-hr-policy.pdf"


class BatchTooLarge(ValueError):
    pass


class Ingestor:
    """Runs files into one store. `embedder` is called when a model is first needed (never for a
    duplicate); `on_stored` is told of each document once it is in the store."""

    def __init__(
        self,
        settings: Settings,
        store: KnowledgeStore,
        embedder: Callable[[], Embedder],
        on_stored: Callable[[DocumentInfo], None] = lambda _: None,
    ):
        self.settings = settings
        self.store = store
        self._embedder = embedder
        self._on_stored = on_stored
        self._chunker: Chunker | None = None

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            e = self._embedder()
            s = self.settings
            self._chunker = Chunker(e.tokenizer, s.chunk_tokens, s.chunk_overlap, e.max_seq_length)
        return self._chunker

    # ---------------------------------------------------------------- batches

    def ingest_paths(
        self,
        paths: Sequence[str | Path],
        progress: BatchProgress | None = None,
        file_progress: IngestProgress | None = None,
    ) -> list[IngestResult]:
        """Ingest files from disk, one result per file in order. Each file is read when its turn comes."""
        return self._batch([functools.partial(self._read, p) for p in paths], progress, file_progress)

    def ingest_uploads(
        self,
        files: Sequence[tuple[str, bytes]],
        progress: BatchProgress | None = None,
        file_progress: IngestProgress | None = None,
    ) -> list[IngestResult]:
        """Ingest (name, bytes) pairs, as the upload page receives them."""
        return self._batch([functools.partial(_given, name, data) for name, data in files], progress, file_progress)

    def _batch(
        self, readers: Sequence[FileReader], progress: BatchProgress | None, file_progress: IngestProgress | None
    ) -> list[IngestResult]:
        """The one ingest loop: file i is embedded while file i+1 is read and parsed in a worker."""
        if len(readers) > self.settings.max_files_per_batch:
            raise BatchTooLarge(
                f"{len(readers)} files in one batch; the limit is {self.settings.max_files_per_batch} "
                "(split the batch, or raise RAG_MAX_FILES_PER_BATCH)"
            )
        results: list[IngestResult] = []
        with ThreadPoolExecutor(1, thread_name_prefix="policypal-parse-ahead") as pool:
            upcoming = readers[0]() if readers else None
            ahead: ParseAhead | None = None
            for i in range(len(readers)):
                assert upcoming is not None
                (name, got), parsed = upcoming, ahead
                upcoming, ahead = (readers[i + 1]() if i + 1 < len(readers) else None), None
                if upcoming is not None and isinstance(upcoming[1], bytes):
                    ahead = self._parse_ahead(pool, upcoming[0], upcoming[1])
                result = got if isinstance(got, IngestResult) else self.ingest_bytes(name, got, file_progress, parsed)
                results.append(result)
                if progress is not None:
                    progress(i + 1, len(readers), result)
        return results

    def _read(self, p: str | Path) -> tuple[str, bytes | IngestResult]:
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

    def _parse_ahead(self, pool: ThreadPoolExecutor, name: str, data: bytes) -> ParseAhead | None:
        """Start reading the next file of a batch in a parse worker while this one embeds."""
        if not data or self.store.find_by_sha(sha256_hex(data)) is not None:
            return None  # empty or a duplicate: ingest_bytes settles it without parsing
        ahead = ParseAhead()
        ahead.future = pool.submit(parse_file, data, display_name(name), self.settings, None, ahead.note)
        return ahead

    # ---------------------------------------------------------------- one file

    def ingest_bytes(
        self,
        name: str,
        data: bytes,
        progress: IngestProgress | None = None,
        parsed: ParseAhead | None = None,
    ) -> IngestResult:
        """Load, chunk, embed and store one file. Never raises for a bad file: returns status 'failed'.

        `parsed`: the file already being read by a parse worker (a batch reads ahead).
        """
        display = display_name(name)
        sha = sha256_hex(data)
        existing = self.store.find_by_sha(sha) if data else None
        if existing is not None:
            return self._settle_known(display, existing)
        report: IngestProgress = progress or (lambda stage, done, total: None)
        try:
            report("parsing", 0, 1)
            self._preload_embedder()  # the first file: load the model while the worker reads the file

            def ocr_report(done: int, total: int) -> None:
                report("ocr", done, total)

            # In a worker process with a time and memory budget: a hostile file cannot hang the server.
            if parsed is not None:
                loaded = parsed.result(ocr_report)
            else:
                loaded = parse_file(data, display, self.settings, progress=ocr_report)
            report("parsing", 1, 1)
            labels = page_labels(loaded.pages)  # printed numbers; a label the loader set (a section) stands
            pages = [p if p.label is not None else replace(p, label=labels.get(p.number)) for p in loaded.pages]
            title = document_title(display, pages) if self.settings.chunk_context else None
            chunks = self.chunker.chunk_pages(pages, title)
            if not chunks:  # text, but none the model can read (e.g. only U+FFFD from a broken font map)
                raise NoExtractableText(
                    "no readable text: the file's text is only symbols the model cannot read (a broken font "
                    "encoding?). Run OCR on it (e.g. ocrmypdf) and upload the result"
                )
            warning = self._copy_warning(display, chunks)
            embedder = self._embedder()
            texts = [indexed_text(c) if self.settings.embed_context else c.text for c in chunks]
            vectors, norms = embedder.encode_passage_with_norms(
                texts, lambda done, total: report("embedding", done, total)
            )
            report("saving", 0, 1)
            info = self.store.add(
                NewDocument(
                    name=display,
                    data=data,
                    sha256=sha,
                    kind=loaded.kind,
                    page_count=loaded.page_count,
                    pages=pages,
                    chunks=chunks,
                    vectors=vectors,
                    norms=norms,
                    embedder=embedder.name,
                )
            )
            report("saving", 1, 1)
        except DuplicateDocument as e:  # the same bytes landed from another upload meanwhile
            return self._settle_known(display, e.existing)
        except LoadError as e:
            return IngestResult(display, "failed", None, 0, 0, str(e), e.kind)
        except EmbedderMismatch as e:
            return IngestResult(display, "failed", None, 0, 0, str(e), "embedder_mismatch")
        self._on_stored(info)
        status: IngestStatus = "updated" if info.replaces else "added"
        return IngestResult(
            display, status, info.document_id, info.pages, info.chunks, replaces=info.replaces,
            version=info.version, ocr_pages=loaded.ocr_pages, warning=warning,
        )  # fmt: skip

    def _settle_known(self, display: str, existing: DocumentInfo) -> IngestResult:
        """These bytes are stored already: a duplicate, or an old version uploaded again, which makes
        it the current version once more (as restoring it on the Documents page would)."""
        if existing.current:
            return IngestResult(display, "duplicate", existing.document_id, existing.pages, existing.chunks)
        replaced = next((d for d in self.store.documents() if d.name == existing.name), None)
        restored = self.store.restore(existing.document_id)
        self._on_stored(restored)
        return IngestResult(
            display, "updated", restored.document_id, restored.pages, restored.chunks,
            replaces=None if replaced is None else replaced.document_id, version=restored.version,
        )  # fmt: skip

    def _copy_warning(self, display: str, chunks: Sequence[Chunk]) -> str | None:
        """A warning when these passages are nearly all those of a current document under another name."""
        copies = self.store.near_duplicates([c.text for c in chunks], threshold=NEAR_DUPLICATE_SHARE)
        other = next(((d, share) for d, share in copies if d.name != display), None)
        if other is None:
            return None
        doc, share = other
        return (
            f"nearly the same text as {doc.name!r} ({share:.0%} of its passages are identical): both are "
            f"answered from. If this is a new version of {doc.name!r}, delete one of them, or upload it under "
            "the same name to replace it"
        )

    def load_sample(self, progress: IngestProgress | None = None) -> IngestResult:
        """Ingest the bundled sample HR policy, so a first-time user can try everything in one click."""
        return self.ingest_bytes(SAMPLE_NAME, SAMPLE_PDF.read_bytes(), progress)

    def _preload_embedder(self) -> None:
        """Load the model in a thread (it takes seconds) while the caller waits on a parse worker."""

        def load() -> None:
            with contextlib.suppress(Exception):  # the caller's own access raises it again, with context
                self._embedder()

        threading.Thread(target=load, name="policypal-embedder-load", daemon=True).start()


class ParseAhead:
    """A file a batch reads ahead in a parse worker, and the OCR progress it has reported so far, which
    `result` replays to the file's own progress once its turn comes."""

    _POLL_S = 0.25

    def __init__(self) -> None:
        self.future: Future[LoadedFile] | None = None
        self._progress: tuple[int, int] | None = None

    def note(self, done: int, total: int) -> None:
        self._progress = (done, total)

    def result(self, progress: ParseProgress) -> LoadedFile:
        """Wait for the file, reporting its OCR progress while it goes; raises what the read raised."""
        assert self.future is not None
        shown: tuple[int, int] | None = None
        while True:
            try:
                loaded = self.future.result(timeout=self._POLL_S)
            except TimeoutError:  # still reading: show how far OCR has come
                shown = self._show(progress, shown)
                continue
            self._show(progress, shown)
            return loaded

    def _show(self, progress: ParseProgress, shown: tuple[int, int] | None) -> tuple[int, int] | None:
        latest = self._progress
        if latest is not None and latest != shown:
            progress(*latest)
        return latest


def indexed_text(chunk: Chunk) -> str:
    """What BM25 reads for a chunk (and the embedder, with `embed_context`): its context (title >
    headings, table headers), then its own text."""
    return f"{chunk.context}\n{chunk.text}" if chunk.context else chunk.text


def _given(name: str, data: bytes) -> tuple[str, bytes | IngestResult]:
    return name, data


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
