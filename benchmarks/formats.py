"""Real Office and HTML files: what each loader yields, and whether search finds a fact in each file.

The generated test files say what the loaders were built for; real files, written by Word, PowerPoint,
Excel and web tools, say what they meet. This reads every .docx, .pptx, .xlsx and .html file under
`--dir` (kept outside the repository, as the shared corpus is: third-party files are never committed)
and prints, per file: the format detected from the bytes, the pages and what a page is there
(page, section, slide or sheet, from the page labels), the characters kept, the headings
rag_core.structure finds, the table rows rag_core.tables reads with a header, the list items ("- "
lines), the load time (a second load: the first pays for importing the format's parser), and the
error for a file that fails.

Then one end-to-end check per file: every file that loads is ingested into one fresh knowledge base,
and a question whose answer was read in the file is searched with the real engine; the table says at
which rank of the top 5 a passage of the right file and page comes, or "miss". The questions live
next to the files, in `questions.json` (they quote the files, so they stay out of the repository too):

    {"docx/handbook.docx": {"question": "How many days of annual leave?", "page": 2}}

`page` is the page number (slide number, sheet or section index) that holds the answer.

    python benchmarks/formats.py [--dir ../realdocs] [--k 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag_core.config import Settings  # noqa: E402
from rag_core.embedding import Embedder  # noqa: E402
from rag_core.engine import Engine  # noqa: E402
from rag_core.loaders import LoadError, load_bytes  # noqa: E402
from rag_core.structure import headings, running_filter  # noqa: E402
from rag_core.tables import document_tables  # noqa: E402
from rag_core.types import SECTION_LABEL, SHEET_LABEL, SLIDE_LABEL, LoadedFile  # noqa: E402

SUFFIXES = (".docx", ".pptx", ".xlsx", ".html", ".htm")


@dataclass
class Report:
    """What one file yields; `error` instead of the counts when it fails to load."""

    name: str
    kind: str = "-"
    pages: int = 0  # pages with text
    page_count: int = 0  # pages in the file, empty ones included
    unit: str = "-"
    chars: int = 0
    headings: int = 0
    rows: int = 0  # table rows
    rows_with_header: int = 0
    list_items: int = 0
    seconds: float = 0.0
    error: str = ""
    found: str = ""  # rank of the right page in the top k, "miss", or "" when no question


def unit(loaded: LoadedFile) -> str:
    """What a page is in this file, from its labels: a printed page, a heading section, a slide, a sheet."""
    kinds = set()
    for page in loaded.pages:
        label = page.label or ""
        if label.startswith(SECTION_LABEL):
            kinds.add("section")
        elif label.startswith(SLIDE_LABEL):
            kinds.add("slide")
        elif label.startswith(SHEET_LABEL):
            kinds.add("sheet")
        else:
            kinds.add("page")
    return "/".join(sorted(kinds)) or "-"


def measure(path: Path, base: Path) -> Report:
    report = Report(str(path.relative_to(base)))
    data = path.read_bytes()
    try:
        load_bytes(data, path.name)  # the first load of a format pays for importing its parser: not timed
    except LoadError as error:
        report.error = f"{type(error).__name__}: {error}"
    t = time.perf_counter()
    try:
        loaded = load_bytes(data, path.name)
    except LoadError:
        report.seconds = time.perf_counter() - t
        return report
    report.seconds = time.perf_counter() - t
    pages = loaded.pages
    tables = [table for found in document_tables(pages, running_filter(pages)).values() for table in found]
    report.kind, report.pages, report.page_count, report.unit = loaded.kind, len(pages), loaded.page_count, unit(loaded)
    report.chars = sum(len(p.text) for p in pages)
    report.headings = sum(1 for _ in headings(pages))
    report.rows = sum(len(t.rows) for t in tables)
    report.rows_with_header = sum(len(t.rows) for t in tables if t.header)
    report.list_items = sum(1 for p in pages for line in p.text.split("\n") if line.startswith("- "))
    return report


def search_checks(
    files: list[Path], reports: dict[str, Report], base: Path, questions: dict[str, dict[str, object]], k: int
) -> None:
    """Ingest the files that load into one fresh knowledge base and ask each file's question."""
    asked = {name: q for name, q in questions.items() if name in reports and not reports[name].error}
    if not asked:
        return
    embedder = Embedder()
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Settings(data_dir=Path(tmp)), embedder=embedder)
        for result, path in zip(engine.ingest_paths(files), files, strict=True):
            name = str(path.relative_to(base))
            if result.status != "added" and name in reports and not reports[name].error:
                reports[name].error = f"ingest: {result.status} {result.error or ''}".strip()
        for name, q in asked.items():
            hits = engine.search(str(q["question"]), k=k)
            file_name = Path(name).name
            rank = next((h.rank for h in hits if h.document == file_name and h.page == q["page"]), None)
            reports[name].found = f"rank {rank}" if rank is not None else "miss"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=ROOT.parent / "realdocs", help="folder of real files (searched below)")
    ap.add_argument("--k", type=int, default=5, help="how many hits the end-to-end check looks at")
    args = ap.parse_args()
    base: Path = args.dir
    files = sorted(p for p in base.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        print(f"no .docx, .pptx, .xlsx or .html files under {base}", file=sys.stderr)
        return 2
    reports = {str(p.relative_to(base)): measure(p, base) for p in files}
    questions_file = base / "questions.json"
    questions = json.loads(questions_file.read_text(encoding="utf-8")) if questions_file.exists() else {}
    search_checks([p for p in files if not reports[str(p.relative_to(base))].error], reports, base, questions, args.k)

    print(f"\n{len(files)} real files under {base.name}/, {len(questions)} questions, top {args.k}\n")
    print(
        "| file | format | pages (of) | page is | chars | headings | table rows (with header) | list items "
        "| load ms | found | error |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in reports.values():
        print(
            f"| {r.name} | {r.kind} | {r.pages} ({r.page_count}) | {r.unit} | {r.chars:,} | {r.headings} "
            f"| {r.rows} ({r.rows_with_header}) | {r.list_items} | {r.seconds * 1000:.0f} | {r.found or '-'} "
            f"| {r.error.replace('|', '/')[:90]} |"
        )
    loaded = [r for r in reports.values() if not r.error]
    asked = [r for r in loaded if r.found]
    print(
        f"\nloaded {len(loaded)}/{len(reports)}; right page in the top {args.k} for "
        f"{sum(1 for r in asked if r.found != 'miss')}/{len(asked)} questions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
