"""Text from documents, made safe to show: Markdown escaping and query-term highlighting.

Why: document text and file names are data written by others. Streamlit renders Markdown (links,
images, `:color[...]` directives, LaTeX between `$`), and a PDF can contain `[click](javascript:...)`
or `<script>`. Everything from a document goes through `escape_markdown` before it reaches
`st.markdown`, so it displays as the characters it is, never as markup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rag_core.types import Hit, IngestResult

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping all of them that
# Markdown or Streamlit's extensions treat specially leaves no construct that can start.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&\"'])")
_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "the",
        "their",
        "there",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
        "get",
        "any",
        "should",
        "would",
        "could",
        "about",
    }
)


def escape_markdown(text: str) -> str:
    """Escape `text` so Markdown shows it literally; newlines become Markdown line breaks.

    >>> escape_markdown("[x](javascript:alert(1)) <b>")
    '\\\\[x\\\\]\\\\(javascript\\\\:alert\\\\(1\\\\)\\\\) \\\\<b\\\\>'
    """
    escaped = _MD_SPECIAL.sub(r"\\\1", text)
    return escaped.replace("\n", "  \n")


def query_terms(query: str) -> list[str]:
    """Content words of a query, for highlighting (lower case, no stop words, >= 3 letters).

    >>> query_terms("How many vacation days do I get?")
    ['many', 'vacation', 'days']
    """
    words = re.findall(r"[\w'-]+", query.lower())
    seen: list[str] = []
    for w in words:
        w = w.strip("'-")
        if len(w) >= 3 and w not in _STOPWORDS and w not in seen:
            seen.append(w)
    return seen


def highlight(text: str, terms: Iterable[str]) -> str:
    """Escaped Markdown of `text` with whole-word matches of `terms` (and their plurals) in bold.

    >>> highlight("Vacation days: 20*", ["vacation", "day"])
    '**Vacation** **days**\\\\: 20\\\\*'
    """
    terms = [t for t in terms if t]
    if not terms:
        return escape_markdown(text)
    pattern = re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")(s|es)?\b", re.IGNORECASE)
    out: list[str] = []
    pos = 0
    for m in pattern.finditer(text):
        out.append(escape_markdown(text[pos : m.start()]))
        out.append(f"**{escape_markdown(m.group(0))}**")
        pos = m.end()
    out.append(escape_markdown(text[pos:]))
    return "".join(out)


def short_name(name: str, n: int = 40) -> str:
    """`name` cut to `n` characters with an ellipsis, for legends and table cells.

    >>> short_name("collective-agreement-2022-2025.pdf", 12)
    'collective-…'
    """
    return name if len(name) <= n else name[: n - 1] + "…"


def counted(n: int, noun: str) -> str:
    """`n` and the noun, singular for one.

    >>> counted(1, "page"), counted(11, "page"), counted(0, "passage")
    ('1 page', '11 pages', '0 passages')
    """
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def friendly_time(iso: str, timezone: str | None = None) -> str:
    """A stored ISO time as people write it, in the reader's time zone when it is known (the browser
    tells it), else in UTC, saying which.

    >>> friendly_time("2026-12-03T06:58:36+00:00")
    '3 Dec 2026, 06:58 UTC'
    >>> friendly_time("2026-12-03T06:58:36+00:00", "Europe/Berlin")
    '3 Dec 2026, 07:58'
    >>> friendly_time("not a time")
    'not a time'
    """
    try:
        at = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    zone = _zone(timezone)
    if zone is None:
        return f"{at.astimezone(UTC):%-d %b %Y, %H:%M} UTC"
    return f"{at.astimezone(zone):%-d %b %Y, %H:%M}"


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


PLAIN_SIMILARITY_NOTE = (
    "Similarity: how closely a passage matches your question, from 0 (not at all) to 1 (the same meaning)."
)
SIMILARITY_NOTE = (
    "Similarity: how close a passage is in meaning to the question, from 0 (unrelated) to 1 (the same); "
    "the cosine similarity of their embeddings, the same number wherever PolicyPal shows a score."
)


def ocr_note(result: IngestResult) -> str:
    """What an ingest result says about OCR, to follow its page count: nothing when no page needed it.

    >>> ocr_note(IngestResult("scan.pdf", "added", "d", 4, 9, ocr_pages=4))
    ', 4 pages read by OCR'
    >>> ocr_note(IngestResult("memo.pdf", "added", "d", 2, 3))
    ''
    """
    if not result.ocr_pages:
        return ""
    return f", {result.ocr_pages} page{'s' if result.ocr_pages != 1 else ''} read by OCR"


def evidence_label(number: int, hit: Hit) -> str:
    """The heading of one passage under an answer: "[n] document · page p · similarity s" (plain
    text); the page is the printed one with the PDF page beside it when they differ ("page 45 (PDF
    p. 56)"). The score is the hit's cosine in every mode, so it is named for what it is. A passage
    from a scanned page says its text was read by OCR: the words may hold reading errors.

    >>> evidence_label(2, Hit(1, 0.6634, "Leave.pdf", "d", 3, 7, "..."))
    '[2] Leave.pdf · page 3 · similarity 0.66'
    >>> evidence_label(1, Hit(1, 0.5, "Scan.pdf", "d", 2, 9, "...", ocr=True))
    '[1] Scan.pdf · page 2 · similarity 0.50 · text read by OCR from a scan'
    """
    label = f"[{number}] {hit.document} · {hit.page_cited} · similarity {hit.score:.2f}"
    return f"{label} · text read by OCR from a scan" if hit.ocr else label


def retrieval_detail(hit: Hit) -> str:
    """How dense and BM25 retrieval each ranked this passage (the hybrid evidence).

    >>> retrieval_detail(Hit(1, 0.5, "d", "d", 1, 7, "", dense_rank=3, bm25_rank=1, bm25_score=4.2, fused_score=0.9))
    'dense rank 3 · BM25 rank 1 (score 4.20) · fused rank 1 (score 0.900)'
    """
    parts = [f"dense rank {hit.dense_rank or '–'}"]
    if hit.bm25_rank is not None:
        parts.append(f"BM25 rank {hit.bm25_rank} (score {hit.bm25_score or 0:.2f})")
    else:
        parts.append("BM25 rank –")
    if hit.fused_score is not None:
        parts.append(f"fused rank {hit.rank} (score {hit.fused_score:.3f})")
    return " · ".join(parts)


def evidence_order(hits: Sequence[Hit], cited: Sequence[int]) -> list[tuple[int, Hit, bool]]:
    """(passage number, hit, cited?) in the order the answer uses the passages: those cited first, in
    the order of their first [n] marker, then the others by rank. Numbers stay the [n] of the answer.

    >>> hits = [Hit(r, 0.5, "d", "d", 1, r, "") for r in (1, 2, 3)]
    >>> [(n, c) for n, _, c in evidence_order(hits, [3, 1])]
    [(3, True), (1, True), (2, False)]
    """
    numbers = [n for n in dict.fromkeys(cited) if 1 <= n <= len(hits)]
    rest = [n for n in range(1, len(hits) + 1) if n not in numbers]
    return [(n, hits[n - 1], n in numbers) for n in numbers + rest]


def snippet(text: str, n: int = 90) -> str:
    """`text` on one line, cut to `n` characters with an ellipsis (command-line listings).

    >>> snippet("Annual leave:   25 days", 12)
    'Annual leav…'
    """
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= n else one_line[: n - 1] + "…"


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with aligned columns and a rule under the headers (command-line output)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)
