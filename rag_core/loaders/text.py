"""Plain text and Markdown: decoded, normalised, one page. Markdown is read as the text it is."""

from __future__ import annotations

from rag_core.loaders.errors import MAX_FILE_CHARS, NoExtractableText, TooMuchText, too_much_text_message
from rag_core.loaders.normalize import normalize_text
from rag_core.types import LoadedFile, Page

SUFFIXES = (".txt", ".md", ".markdown")


def is_text(data: bytes, suffix: str) -> bool:
    """True when the file is named as text (or has no extension) and its bytes are not binary.

    >>> is_text(b"Leave policy", ".md"), is_text(b"Leave policy", ""), is_text(b"\\x00\\x01", ".txt")
    (True, True, False)
    """
    return suffix in (*SUFFIXES, "") and not _looks_binary(data)


def load_text(data: bytes, *, markdown: bool = False) -> LoadedFile:
    """Decode and normalise text bytes into one page. Raises `TooMuchText` or `NoExtractableText`."""
    if len(data) > MAX_FILE_CHARS * 4:  # 4 bytes per character at most in any of our encodings
        raise TooMuchText(too_much_text_message(len(data) // 4))
    text = normalize_text(decode_text(data))
    if len(text) > MAX_FILE_CHARS:
        raise TooMuchText(too_much_text_message(len(text)))
    if not text:
        raise NoExtractableText("no extractable text: the file holds only whitespace")
    return LoadedFile(kind="md" if markdown else "txt", pages=[Page(1, text)], page_count=1)


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


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with BOM: text
        return False
    return b"\x00" in sample
