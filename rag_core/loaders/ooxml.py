"""What the Office formats share: the zip check that tells Word, PowerPoint and Excel apart by the part
each must hold, the unpacked-size check that stops a zip bomb before a parser sees it, and the refusal
of the OLE2 files (legacy .doc/.ppt/.xls, password-protected Office files) with a way out for each.

Office files are told apart by their content, not their name: a .docx holds `word/document.xml`, a
.pptx `ppt/presentation.xml`, an .xlsx `xl/workbook.xml`. A password-protected file of any of the three
is not a zip at all but an OLE2 compound file holding an "EncryptedPackage" stream, which is also the
container of the legacy binary formats; those are named by their main stream.
"""

from __future__ import annotations

import io
import zipfile

from rag_core.loaders.errors import (
    MAX_FILE_CHARS,
    DamagedFile,
    LegacyExcelFile,
    LegacyPowerPointFile,
    LegacyWordFile,
    PasswordRequired,
    TooMuchText,
    too_much_text_message,
)

ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Compound File Binary: .doc, .xls, .ppt, encrypted OOXML
# The XML parts are markup around the text; past this many bytes unpacked (all parts together) the file is
# a zip bomb, not a policy. Checked before parsing, so a bomb never reaches the XML parser.
MAX_XML_BYTES = MAX_FILE_CHARS * 10

WORD_PART, SLIDES_PART, WORKBOOK_PART = "word/document.xml", "ppt/presentation.xml", "xl/workbook.xml"


def zip_holds(data: bytes, part: str) -> bool:
    """True when the bytes are a zip holding `part`, whatever the file is named.

    >>> zip_holds(b"%PDF-1.7", WORKBOOK_PART), zip_holds(b"PK\\x03\\x04 not really a zip", WORKBOOK_PART)
    (False, False)
    """
    if not data.startswith(ZIP_MAGIC):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return part in archive.namelist()
    except (zipfile.BadZipFile, ValueError):
        return False


def check_unpacked_size(data: bytes, part: str, damaged: str) -> None:
    """Raise `DamagedFile` (with the `damaged` message) when the zip lacks `part`, `TooMuchText` when its
    XML parts unpack past `MAX_XML_BYTES`: the sizes are read from the zip's directory, nothing is unpacked."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.getinfo(part)
            size = sum(i.file_size for i in archive.infolist() if i.filename.endswith((".xml", ".rels")))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise DamagedFile(f"{damaged} ({error})") from error
    if size > MAX_XML_BYTES:
        raise TooMuchText(too_much_text_message(size // 10))


def is_ole2(data: bytes) -> bool:
    """True for an OLE2 compound file: a legacy .doc/.ppt/.xls, or a password-protected Office file."""
    return data.startswith(OLE2_MAGIC)


def legacy_message(suffix: str) -> str:
    """The message for a legacy binary Office file: what it is and what to upload instead.

    >>> legacy_message(".xls")
    'this is a legacy Excel .xls file: save it as .xlsx or PDF and upload that'
    """
    app = {".doc": "Word", ".ppt": "PowerPoint", ".xls": "Excel"}[suffix]
    return f"this is a legacy {app} {suffix} file: save it as {suffix}x or PDF and upload that"


LEGACY_SUFFIXES = (".doc", ".ppt", ".xls")
# The main stream of each legacy format, as OLE2 stores stream names (UTF-16). A Word or PowerPoint file
# may embed a workbook, so the workbook's stream is looked for last.
_STREAMS = (("PowerPoint Document", ".ppt"), ("WordDocument", ".doc"), ("Workbook", ".xls"), ("Book", ".xls"))


def refuse_legacy(data: bytes, suffix: str) -> None:
    """Raise the error for an OLE2 file (password-protected, or a legacy format), or for a legacy
    extension on bytes that could not be placed. Returns for any other file (an OLE2 .msg, say), which
    the caller refuses as unsupported."""
    if is_ole2(data) and "EncryptedPackage".encode("utf-16-le") in data:
        raise PasswordRequired(
            "password-protected Office file: open it, remove the password (File > Info > Protect, "
            "Encrypt with Password, cleared) and upload it again"
        )
    kind = None
    if is_ole2(data):  # the bytes name the format; the extension only when they do not
        kind = next((ext for stream, ext in _STREAMS if stream.encode("utf-16-le") in data), None)
    if kind is None and suffix in LEGACY_SUFFIXES:
        kind = suffix
    if kind == ".doc":
        raise LegacyWordFile(legacy_message(kind))
    if kind == ".ppt":
        raise LegacyPowerPointFile(legacy_message(kind))
    if kind == ".xls":
        raise LegacyExcelFile(legacy_message(kind))
