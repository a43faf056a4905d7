"""Pages -> chunks sized in the embedder's own word pieces, cut at sentence boundaries where possible.

Why token-aware: all-MiniLM-L6-v2 silently truncates input at 256 word pieces, so a chunk sized in
characters can lose its tail without anyone noticing; the lost words are then unsearchable. Every
chunk here fits the model. Why page-aware: a citation must point at the page where the words are, so
a chunk never spans two pages and keeps its character span in that page's text.

Why table-aware: a row such as "Tenth … 24" is the answer to "how many days after ten years", so it is
never cut in two, and a chunk holding rows is indexed with their column headers (rag_core.tables),
also on the page after a page break where the table goes on without them.

What it leaves out: layout analysis (columns, cell positions); the loader's text order is taken as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from rag_core.structure import HeadingPath, context_line, running_filter
from rag_core.tables import document_tables, headers_in, row_spans, whole_spans
from rag_core.types import Chunk, Page

MAX_TABLE_HEADERS = 2  # a chunk across two tables reads both headers; more would crowd out its text


class Tokenizer(Protocol):
    """The part of a Hugging Face fast tokenizer we use: offsets of word pieces in the text."""

    def __call__(self, text: list[str], **kwargs: object) -> object: ...


# A sentence ends at . ! ? ; (optionally followed by closing quotes/brackets) before whitespace, at a
# colon that ends its line (it introduces what follows), or at a paragraph break. A colon inside a line
# does not end it: "Grade 11 - 12: 7% employer matched" is one statement. Lines inside a paragraph stay
# together: PDFs wrap lines mid-sentence.
_SENTENCE_END = re.compile(
    r"(?<=[.!?;])[\"'\u201d\u2019)\]]*\s+|(?<=:)[\"'\u201d\u2019)\]]*[ \t]*\n\s*|\n\s*\n"
    r"|\n(?=\s*(?:[-\u2022*]|\d+[.)])\s)"
)


def split_sentences(text: str, rows: Sequence[tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """Spans of sentences (and paragraph pieces) in `text`, covering all non-space characters.

    Each table row (`rows`, by default those rag_core.tables finds in the text) is a span of its own and
    is never split, whatever punctuation it holds.

    >>> t = "Leave is paid. Ask HR!\\n\\nNew part"
    >>> [t[a:b] for a, b in split_sentences(t)]
    ['Leave is paid.', 'Ask HR!', 'New part']
    >>> t = "As follows:\\nYears Days\\nFirst to Second … 15\\nThird … 16\\nNext."
    >>> [t[a:b] for a, b in split_sentences(t)]
    ['As follows:', 'Years Days', 'First to Second … 15', 'Third … 16', 'Next.']
    >>> t = "Pension by grade:\\n- Grade 9 - 10: 6% matched\\n- Grade 11 - 12: 7% matched"
    >>> [t[a:b] for a, b in split_sentences(t)]
    ['Pension by grade:', '- Grade 9 - 10: 6% matched', '- Grade 11 - 12: 7% matched']
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    for a, b in sorted(row_spans(text) if rows is None else rows):
        if a < pos:
            continue
        _add_sentences(text, pos, a, spans)
        _add_span(text, a, b, spans)
        pos = b
    _add_sentences(text, pos, len(text), spans)
    return spans


def _add_sentences(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    pos = start
    for m in _SENTENCE_END.finditer(text, start, end):
        _add_span(text, pos, m.start(), spans)
        pos = m.end()
    _add_span(text, pos, end, spans)


def _add_span(text: str, a: int, b: int, spans: list[tuple[int, int]]) -> None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    if a < b:
        spans.append((a, b))


class Chunker:
    """Packs sentences into chunks of at most `max_tokens` word pieces with `overlap` tokens of overlap.

    `tokenizer` is the embedder's fast tokenizer (offsets needed). `max_tokens` excludes the special
    tokens the model adds ([CLS], [SEP]); pass the model limit and we keep room for them.
    """

    def __init__(self, tokenizer: Tokenizer, max_tokens: int, overlap: int, model_max_tokens: int | None = None):
        if max_tokens < 8:
            raise ValueError(f"max_tokens must be >= 8; got max_tokens={max_tokens}")
        if not 0 <= overlap < max_tokens:
            raise ValueError(f"overlap must be >= 0 and < max_tokens; got overlap={overlap}, max_tokens={max_tokens}")
        if model_max_tokens is not None and max_tokens > model_max_tokens - 2:
            raise ValueError(
                f"max_tokens={max_tokens} does not fit the embedder: it reads at most {model_max_tokens} "
                f"word pieces including 2 special tokens, so chunks must be <= {model_max_tokens - 2}"
            )
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap

    def chunk_pages(self, pages: Iterable[Page], title: str | None = None) -> list[Chunk]:
        """Chunks of all pages, in page order. With a `title`, each chunk carries its context: the title
        and the heading path in effect where it starts (rag_core.structure), across page breaks, and the
        column headers of the table rows it holds (rag_core.tables), also of rows whose table began on
        the page before."""
        pages = list(pages)
        path = HeadingPath(pages) if title is not None else None
        tables = document_tables(pages, running_filter(pages)) if title is not None else {}
        out: list[Chunk] = []
        for page in pages:
            rows = whole_spans(tables.get(page.number, [])) if title is not None else None
            for chunk in self.chunk_text(page.text, page.number, rows):
                if path is not None and title is not None:
                    headers = headers_in(tables.get(page.number, []), chunk.start, chunk.end)[:MAX_TABLE_HEADERS]
                    chunk = replace(chunk, context=context_line(title, path.at(chunk.page, chunk.start), headers))
                out.append(chunk)
        return out

    def chunk_text(self, text: str, page: int = 1, rows: Sequence[tuple[int, int]] | None = None) -> list[Chunk]:
        """Chunks of one page's text; `rows` are the spans kept whole (by default, the table rows that
        rag_core.tables finds in the text alone)."""
        pieces = self._pieces(text, rows)
        chunks: list[Chunk] = []
        i = 0
        n = len(pieces)
        while i < n:
            total = 0
            j = i
            while j < n and total + pieces[j][2] <= self.max_tokens:
                total += pieces[j][2]
                j += 1
            if j == i:  # cannot happen: pieces are pre-split to <= max_tokens
                j, total = i + 1, pieces[i][2]
            start, end = pieces[i][0], pieces[j - 1][1]
            chunks.append(Chunk(page, start, end, text[start:end], total))
            if j >= n:
                break
            # Overlap: step back over whole trailing pieces while they fit in the overlap budget,
            # but always advance at least one piece so the loop terminates.
            back, k = 0, j
            while k - 1 > i and back + pieces[k - 1][2] <= self.overlap:
                back += pieces[k - 1][2]
                k -= 1
            i = k
        return chunks

    def _pieces(self, text: str, rows: Sequence[tuple[int, int]] | None) -> list[tuple[int, int, int]]:
        """(start, end, tokens) of sentences and table rows; those longer than max_tokens are cut at word
        pieces."""
        spans = split_sentences(text, rows)
        if not spans:
            return []
        # Whole sentences are tokenized only to count and cut them, never fed to the model uncut, so the
        # tokenizer's "longer than the maximum sequence length" warning does not apply: verbose=False.
        enc = self.tokenizer(
            [text[a:b] for a, b in spans], add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets_list: Sequence[Sequence[tuple[int, int]]] = enc["offset_mapping"]  # type: ignore[index]  # the Tokenizer protocol returns object
        pieces: list[tuple[int, int, int]] = []
        for (a, b), offsets in zip(spans, offsets_list, strict=True):
            count = len(offsets)
            if count == 0:
                continue
            if count <= self.max_tokens:
                pieces.append((a, b, count))
                continue
            pieces.extend(self._split_long(a, offsets))
        return pieces

    def _split_long(self, base: int, offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
        # A sentence longer than a chunk (tables, lists without punctuation): windows of max_tokens
        # word pieces, cut between words where we can, each a piece of its own.
        out: list[tuple[int, int, int]] = []
        step = self.max_tokens
        i = 0
        while i < len(offsets):
            j = min(i + step, len(offsets))
            if j < len(offsets):
                # Move the cut back to a word start (a piece whose start is not glued to the previous end).
                k = j
                while k > i + step // 2 and offsets[k][0] == offsets[k - 1][1]:
                    k -= 1
                if k > i + step // 2:
                    j = k
            out.append((base + offsets[i][0], base + offsets[j - 1][1], j - i))
            i = j
        return out
