"""File bytes -> a list of pages of clean text. The only module that imports pypdf.

What it holds: type detection by content (`%PDF-` header, not the file name), PDF extraction page by
page, plain text / Markdown decoding, text normalisation, and one typed error per way a file can fail,
each with a message a person can act on. What it leaves out: chunking, storage, OCR (a scanned PDF
without a text layer is reported as such, not read).
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pypdf
from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

SUPPORTED_SUFFIXES = (".pdf", ".txt", ".md", ".markdown")
# The PDF spec lets the header appear anywhere in the first 1024 bytes (some writers prepend junk).
_PDF_HEADER_WINDOW = 1024

logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns on every recoverable quirk.


@dataclass(frozen=True)
class Page:
    """One page of extracted text. `number` is 1-based, as a reader counts PDF pages."""

    number: int
    text: str


@dataclass(frozen=True)
class LoadedFile:
    """What a loader returns: the detected kind (`pdf` or `text`) and the non-empty pages."""

    kind: str
    pages: list[Page]
    page_count: int  # pages in the file, including the empty ones we dropped


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


# A dense A4 page holds ~3-8k characters. 200k on one page, or 20M in a file (2000 pages of dense
# text, hours of embedding), means a malformed or hostile file, not a policy: stop before chunking it.
MAX_PAGE_CHARS = 200_000
MAX_FILE_CHARS = 20_000_000


def is_pdf(data: bytes) -> bool:
    """True when the bytes carry a PDF header.

    >>> is_pdf(b"%PDF-1.7 ..."), is_pdf(b"hello")
    (True, False)
    """
    return b"%PDF-" in data[:_PDF_HEADER_WINDOW]


def load_path(path: str | Path, *, max_bytes: int | None = None, max_pages: int | None = None) -> LoadedFile:
    """Read a file from disk and load it (see `load_bytes`)."""
    path = Path(path)
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise FileTooLarge(_too_large_message(size, max_bytes))
    return load_bytes(path.read_bytes(), path.name, max_bytes=max_bytes, max_pages=max_pages)


def load_bytes(data: bytes, name: str, *, max_bytes: int | None = None, max_pages: int | None = None) -> LoadedFile:
    """Detect the type of `data` and extract its pages. Raises a `LoadError` subclass on failure."""
    if len(data) == 0:
        raise EmptyFile("the file is empty (0 bytes): upload the document again")
    if max_bytes is not None and len(data) > max_bytes:
        raise FileTooLarge(_too_large_message(len(data), max_bytes))
    suffix = Path(name).suffix.lower()
    if is_pdf(data):
        return _load_pdf(data, max_pages=max_pages)
    if suffix == ".pdf":
        raise DamagedFile("could not be read: damaged PDF (no %PDF- header; the file is named .pdf but is not a PDF)")
    if suffix in (".txt", ".md", ".markdown", "") and not _looks_binary(data):
        if len(data) > MAX_FILE_CHARS * 4:  # 4 bytes per character at most in any of our encodings
            raise TooMuchText(_too_much_text_message(len(data) // 4))
        text = normalize_text(decode_text(data))
        if len(text) > MAX_FILE_CHARS:
            raise TooMuchText(_too_much_text_message(len(text)))
        if not text:
            raise NoExtractableText("no extractable text: the file holds only whitespace")
        return LoadedFile(kind="text", pages=[Page(1, text)], page_count=1)
    raise UnsupportedType(
        f"unsupported file type {suffix or '(no extension)'!s}: PolicyPal reads PDF, .txt and .md files"
    )


def _too_large_message(size: int, max_bytes: int) -> str:
    return (
        f"file too large: {size / 1e6:.1f} MB, the limit is {max_bytes / 1e6:.1f} MB "
        "(raise RAG_MAX_FILE_MB to allow larger files)"
    )


def _too_much_text_message(chars: int) -> str:
    return (
        f"too much text: {chars:,} characters, the limit is {MAX_FILE_CHARS:,} per file "
        "(split the document into parts and upload them separately)"
    )


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with BOM: text
        return False
    return b"\x00" in sample


def decode_text(data: bytes) -> str:
    """Decode text bytes: UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252.

    cp1252 is the common non-UTF-8 encoding of office text; bytes it cannot map fall back to
    Latin-1, which maps every byte, so decoding never fails.

    >>> decode_text("café".encode("cp1252"))
    'café'
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")  # a lone surrogate or an odd last byte must not sink the file
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_HYPHEN_BREAK = re.compile(r"(\w)[-\u00ad]\n[ \t]*([a-z])")
_SOFT_HYPHEN = re.compile("\u00ad")
_SPACES = re.compile(r"[^\S\n]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Table-of-contents leaders ("Vacation ........ 46") carry no meaning but cost many word pieces.
_LEADERS = re.compile(r"(?:\s?[.\u2026·_]){4,}")


def normalize_text(text: str) -> str:
    """NFKC, join words hyphenated across line ends, collapse whitespace, keep paragraph breaks.

    >>> normalize_text("The ﬁrst bene-\\nfit   is   here.\\r\\n\\n\\n\\nLeave ....... 4")
    'The first benefit is here.\\n\\nLeave … 4'
    """
    if _SURROGATE.search(text):
        # A crafted ToUnicode map can yield UTF-16 surrogates, which no tokenizer or UTF-8 store accepts:
        # join the valid pairs into their characters and replace the lone ones with U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub(" ", text)
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = _LEADERS.sub(" … ", text)
    text = _SOFT_HYPHEN.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def _load_pdf(data: bytes, *, max_pages: int | None) -> LoadedFile:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    except Exception as e:  # pypdf raises many types on broken input; all mean "damaged"
        raise DamagedFile(f"could not be read: damaged PDF ({_describe(e)})") from e
    try:
        encrypted = reader.is_encrypted
    except Exception as e:  # a broken /Encrypt entry in the trailer
        raise DamagedFile(f"could not be read: damaged PDF ({_describe(e)})") from e
    if encrypted:
        try:
            opened = reader.decrypt("")
        except DependencyError as e:
            raise DamagedFile(f"could not be read: the PDF's encryption needs the 'cryptography' package ({e})") from e
        except Exception as e:
            raise DamagedFile(f"could not be read: damaged PDF encryption ({_describe(e)})") from e
        if opened == pypdf.PasswordType.NOT_DECRYPTED:
            raise PasswordRequired(
                "needs a password: this PDF is encrypted with a user password. "
                "Remove the password (e.g. print to PDF) and upload it again"
            )
    try:
        page_count = len(reader.pages)
    except FileNotDecryptedError as e:
        raise PasswordRequired(f"needs a password: {e}") from e
    except Exception as e:
        raise DamagedFile(f"could not be read: damaged PDF ({_describe(e)})") from e
    if page_count == 0:
        raise DamagedFile("could not be read: damaged PDF (it has no pages)")
    if max_pages is not None and page_count > max_pages:
        raise TooManyPages(
            f"too many pages: {page_count}, the limit is {max_pages} (raise RAG_MAX_PAGES to allow more)"
        )
    pages: list[Page] = []
    errors = 0
    first_error: Exception | None = None
    total_chars = 0
    for i in range(page_count):
        try:
            raw = reader.pages[i].extract_text() or ""
        except MemoryError as e:  # not "one bad page": the reader itself is out of memory
            raise ParseOutOfMemory(out_of_memory_message()) from e
        except Exception as e:  # one bad page should not sink the document
            errors += 1
            first_error = first_error or e
            continue
        if len(raw) > MAX_PAGE_CHARS:
            raise TooMuchText(
                f"too much text: page {i + 1} yields {len(raw):,} characters, more than any real page holds "
                f"(the limit is {MAX_PAGE_CHARS:,}); the PDF is malformed or built to overload the reader. "
                "Re-save it (e.g. print to PDF) and upload it again"
            )
        total_chars += len(raw)
        if total_chars > MAX_FILE_CHARS:
            raise TooMuchText(_too_much_text_message(total_chars))
        text = normalize_text(raw)
        if text:
            pages.append(Page(i + 1, text))
    if not pages:
        if errors and first_error is not None:
            raise DamagedFile(f"could not be read: damaged PDF ({_describe(first_error)})")
        raise NoExtractableText(
            "no extractable text (scanned image?): the PDF has no text layer. Run OCR on it first "
            "(e.g. ocrmypdf) and upload the result"
        )
    return LoadedFile(kind="pdf", pages=pages, page_count=page_count)


def out_of_memory_message(limit_mb: int | None = None) -> str:
    limit = f" of {limit_mb} MB" if limit_mb else ""
    return (
        f"too much memory: reading this PDF needed more than the reader's memory cap{limit} (a "
        "decompression bomb, or a very large scan). Re-save it (e.g. print to PDF), or raise "
        "RAG_PARSE_MEMORY_MB if it is a genuine document"
    )


def _describe(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    if isinstance(e, PdfReadError | FileNotDecryptedError) or type(e).__module__.startswith("pypdf"):
        return msg[:200]
    return f"{type(e).__name__}: {msg}"[:200]
