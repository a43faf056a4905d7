"""Every way a file can fail to load, as one `LoadError` subclass each, with messages a person can act on.

`kind` is a stable slug (tests, the UI, and the parse worker's replies name errors by it), so each
subclass must have its own. The limits on extracted text live here too: they apply to every format.
"""

from __future__ import annotations

# A dense A4 page holds ~3-8k characters. 200k on one page, or 20M in a file (2000 pages of dense
# text, hours of embedding), means a malformed or hostile file, not a policy: stop before chunking it.
MAX_PAGE_CHARS = 200_000
MAX_FILE_CHARS = 20_000_000


class LoadError(Exception):
    """A file that cannot be ingested. `kind` is a stable slug for tests and the UI."""

    kind = "load_error"


class PasswordRequired(LoadError):
    kind = "password"


class DamagedFile(LoadError):
    kind = "damaged"


class NoExtractableText(LoadError):
    kind = "no_text"


class UnsupportedType(LoadError):
    kind = "unsupported"


class LegacyWordFile(LoadError):
    """A Word 97-2003 .doc: a binary format PolicyPal does not read; Word saves it as .docx or PDF."""

    kind = "legacy_doc"


class LegacyPowerPointFile(LoadError):
    """A PowerPoint 97-2003 .ppt: a binary format PolicyPal does not read; PowerPoint saves it as .pptx or PDF."""

    kind = "legacy_ppt"


class LegacyExcelFile(LoadError):
    """An Excel 97-2003 .xls: a binary format PolicyPal does not read; Excel saves it as .xlsx or PDF."""

    kind = "legacy_xls"


class EmptyFile(LoadError):
    kind = "empty"


class FileTooLarge(LoadError):
    kind = "too_large"


class TooManyPages(LoadError):
    kind = "too_many_pages"


class TooMuchText(LoadError):
    """More text than any genuine document holds: a text bomb, or a file that would take hours to embed."""

    kind = "too_much_text"


class ParseTimeout(LoadError):
    """The reader ran past its time budget (raised by `rag_core.parsepool`, which runs it in a worker)."""

    kind = "timeout"


class ParseOutOfMemory(LoadError):
    """The reader ran out of its memory cap: typically a decompression bomb."""

    kind = "out_of_memory"


class ParserCrashed(LoadError):
    """The worker process reading the file died (killed by the system, or a crash in native code)."""

    kind = "crashed"


def too_large_message(size: int, max_bytes: int) -> str:
    """The `FileTooLarge` message.

    >>> too_large_message(3_000_000, 1_000_000)
    'file too large: 3.0 MB, the limit is 1.0 MB (raise RAG_MAX_FILE_MB to allow larger files)'
    """
    return (
        f"file too large: {size / 1e6:.1f} MB, the limit is {max_bytes / 1e6:.1f} MB "
        "(raise RAG_MAX_FILE_MB to allow larger files)"
    )


def too_much_text_message(chars: int) -> str:
    """The `TooMuchText` message for a whole file past `MAX_FILE_CHARS`."""
    return (
        f"too much text: {chars:,} characters, the limit is {MAX_FILE_CHARS:,} per file "
        "(split the document into parts and upload them separately)"
    )


def out_of_memory_message(limit_mb: int | None = None) -> str:
    """The `ParseOutOfMemory` message; `limit_mb` is the worker's memory cap when one was set."""
    limit = f" of {limit_mb} MB" if limit_mb else ""
    return (
        f"too much memory: reading this PDF needed more than the reader's memory cap{limit} (a "
        "decompression bomb, or a very large scan). Re-save it (e.g. print to PDF), or raise "
        "RAG_PARSE_MEMORY_MB if it is a genuine document"
    )
