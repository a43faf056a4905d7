"""Builders of hostile input for the robustness tests: hand-made PDFs and seeded byte-level mutations.

Hand-made because a PDF library refuses to write the files we need (a page claiming a billion
siblings, a 70 MB content stream in a 70 KB file); mutations because real breakage is not designed.
"""

from __future__ import annotations

import random
import re
import zlib

# Replacements for a number in a PDF: lengths, counts, offsets and object numbers become absurd.
ABSURD_NUMBERS = (b"0", b"-1", b"65535", b"2147483647", b"4294967296", b"99999999999999999999")
# Names that change how a stream is decoded or how the document tree is walked.
STRUCTURAL_NAMES = (
    b"/FlateDecode",
    b"/LZWDecode",
    b"/ASCII85Decode",
    b"/ASCIIHexDecode",
    b"/RunLengthDecode",
    b"/DCTDecode",
    b"/Pages",
    b"/Page",
    b"/Kids",
    b"/Contents",
    b"/Resources",
    b"/Font",
    b"/ToUnicode",
    b"/Encrypt",
    b"/ObjStm",
    b"/XRef",
)
MUTATIONS = ("flip", "truncate", "delete", "duplicate", "number", "reference", "name")


def raw_pdf(content: bytes, *, pages: int = 1, count: int | None = None, extra_font: bytes = b"") -> bytes:
    """A minimal PDF whose pages all draw one Flate-compressed content stream.

    `count` overrides the page tree's /Count (a lie about the number of pages); `extra_font` is added to
    the font dictionary (e.g. a /ToUnicode reference), with object 6 free for it.

    >>> raw_pdf(b"BT /F1 12 Tf (Hi) Tj ET")[:8]
    b'%PDF-1.7'
    """
    stream = zlib.compress(content, 9)
    kids = " ".join(f"{100 + i} 0 R" for i in range(pages))
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{kids}] /Count {pages if count is None else count} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica " + extra_font + b" >>",
        4: f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode() + stream + b"\nendstream",
    }
    for i in range(pages):
        objects[100 + i] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents 4 0 R >>"
        )
    return _assemble(objects)


def _assemble(objects: dict[int, bytes]) -> bytes:
    out = bytearray(b"%PDF-1.7\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    size = max(objects) + 1
    xref = len(out)
    out += f"xref\n0 {size}\n".encode()
    for number in range(size):
        out += f"{offsets[number]:010d} 00000 n \n".encode() if number in offsets else b"0000000000 65535 f \n"
    out += f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def surrogate_pdf() -> bytes:
    """A PDF whose ToUnicode map turns its letters into lone UTF-16 surrogates (no tokenizer takes them)."""
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /X def\n"
        b"1 begincodespacerange <00> <FF> endcodespacerange\n"
        b"2 beginbfchar <41> <D800> <42> <DC00DC00> endbfchar\n"
        b"endcmap CMapName currentdict /CMap defineresource pop end end"
    )
    pdf = raw_pdf(
        b"BT /F1 12 Tf 72 700 Td (ABAB parental leave is sixteen weeks) Tj ET", extra_font=b"/ToUnicode 6 0 R"
    )
    # Re-assemble with the CMap stream as object 6.
    objects = dict(_objects(pdf))
    objects[6] = f"<< /Length {len(cmap)} >>\nstream\n".encode() + cmap + b"\nendstream"
    return _assemble(objects)


def _objects(pdf: bytes) -> list[tuple[int, bytes]]:
    return [(int(m.group(1)), m.group(2)) for m in re.finditer(rb"(\d+) 0 obj\n(.*?)\nendobj\n", pdf, re.S)]


def mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One seeded mutation of `data`: (its name, the mutated bytes)."""
    op = rng.choice(MUTATIONS)
    b = bytearray(data)
    n = len(b)
    span = max(1, min(4096, n // 4))
    if op == "flip":
        for _ in range(rng.randint(1, 32)):
            b[rng.randrange(n)] ^= rng.randint(1, 255)
    elif op == "truncate":
        del b[rng.randrange(1, n) :]
    elif op == "delete":
        start = rng.randrange(n)
        del b[start : start + rng.randint(1, span)]
    elif op == "duplicate":
        start = rng.randrange(n)
        piece = b[start : start + rng.randint(1, span)]
        at = rng.randrange(n)
        b[at:at] = piece
    elif op == "number":
        numbers = list(re.finditer(rb"(?<![\w.])\d+(?![\w.])", data))
        for m in sorted(rng.sample(numbers, min(len(numbers), rng.randint(1, 3))), key=lambda m: -m.start()):
            b[m.start() : m.end()] = rng.choice(ABSURD_NUMBERS)
    elif op == "reference":  # point a reference at another object: cycles, wrong types
        refs = list(re.finditer(rb"(\d+) 0 R", data))
        targets = re.findall(rb"(\d+) 0 obj", data)
        if refs and targets:
            m = rng.choice(refs)
            b[m.start(1) : m.end(1)] = rng.choice(targets)
    else:  # "name": swap a name for a structural one
        names = list(re.finditer(rb"/[A-Za-z0-9]+", data))
        if names:
            m = rng.choice(names)
            b[m.start() : m.end()] = rng.choice(STRUCTURAL_NAMES)
    return op, bytes(b)
