"""Hostile files: seeded mutations of real PDFs (and text files) through the engine's load path.

Every case must end as a loaded file or a typed per-file error with a message, never an unhandled
exception and never past the time budget. Most cases go through `parse_file` (the worker pool the
engine uses, without embedding, to keep the test fast); a smaller number go all the way through
`Engine.ingest_bytes` and the KB must be whole afterwards. The mutations: byte flips, truncation,
chunk deletion and duplication, absurd numbers (lengths, counts, offsets), references re-pointed at
other objects (cycles, wrong types), and names swapped for structural ones (filters, page tree keys).

Seeds are the bundled sample policy, generated PDFs and text files, and, when ../shared/corpus is
present, its small PDFs (encrypted, damaged, right-to-left, forms...). A failing case prints the
seed file, mutation and case number, which reproduce it exactly.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.ingest import SAMPLE_PDF
from rag_core.loaders import LoadError
from rag_core.parsepool import ParsePool, parse_file

from .conftest import CORPUS, LEAVE_POLICY
from .hostile import mutate, raw_pdf

pytestmark = pytest.mark.slow

SEED = 20250611
PARSE_CASES = 400
ENGINE_CASES = 40
BUDGET_S = 10.0  # per-file time budget in this test (the default is 120 s)
SLACK_S = 5.0  # killing and replacing a worker


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    from .conftest import make_pdf

    tmp = tmp_path_factory.mktemp("fuzz-seeds")
    files: dict[str, bytes] = {
        "sample_policy.pdf": SAMPLE_PDF.read_bytes(),
        "generated.pdf": make_pdf(tmp / "g.pdf", LEAVE_POLICY).read_bytes(),
        "generated-empty-password.pdf": make_pdf(tmp / "e.pdf", LEAVE_POLICY[:1], user_password="").read_bytes(),
        "handmade.pdf": raw_pdf(b"BT /F1 12 Tf 72 700 Td (Overtime is paid at 1.5 times the hourly rate.) Tj ET"),
        "notes.md": b"# Dress code\n\nBusiness casual on weekdays; jeans on Fridays.\n",
        "utf16.txt": "Politique de congés : 25 jours ouvrés par an.".encode("utf-16"),
    }
    if (CORPUS / "MANIFEST.md").exists():
        for path in sorted(CORPUS.glob("*/*.pdf")):
            if path.stat().st_size < 200_000:
                files[path.name] = path.read_bytes()
    return files


def _case(seeds: dict[str, bytes], n: int) -> tuple[str, str, bytes]:
    rng = random.Random(f"{SEED}-{n}")  # one generator per case: any case reruns alone
    name = rng.choice(sorted(seeds))
    op, data = mutate(rng, seeds[name])
    return name, op, data


def test_mutated_files_fail_cleanly_within_the_budget(seeds: dict[str, bytes]) -> None:
    settings = Settings(parse_timeout_s=BUDGET_S)
    pool = ParsePool(max_workers=2)
    outcomes: Counter[str] = Counter()
    by_op: Counter[str] = Counter()
    problems: list[str] = []
    slowest = 0.0
    try:
        for n in range(PARSE_CASES):
            name, op, data = _case(seeds, n)
            by_op[op] += 1
            t0 = time.monotonic()
            try:
                loaded = parse_file(data, name, settings, pool)
            except LoadError as e:
                outcomes[e.kind] += 1
                if not str(e).strip():
                    problems.append(f"case {n} ({name}, {op}): {e.kind} without a message")
            except Exception as e:  # the point of the test: this must never happen
                outcomes["UNHANDLED"] += 1
                problems.append(f"case {n} ({name}, {op}): {type(e).__name__}: {e}")
            else:
                outcomes["loaded"] += 1
                if not loaded.pages or not all(p.text for p in loaded.pages):
                    problems.append(f"case {n} ({name}, {op}): loaded with empty pages")
            elapsed = time.monotonic() - t0
            slowest = max(slowest, elapsed)
            if elapsed > BUDGET_S + SLACK_S:
                problems.append(f"case {n} ({name}, {op}): {elapsed:.1f} s, over the {BUDGET_S:g} s budget")
    finally:
        pool.close()
    print(
        f"\nfuzz: {PARSE_CASES} mutated files from {len(seeds)} seeds; results {dict(outcomes.most_common())}; "
        f"mutations {dict(sorted(by_op.items()))}; slowest {slowest:.2f} s"
    )
    assert not problems, problems[:10]
    # The mutations must bite: plenty of files fail, and plenty still load.
    assert outcomes["loaded"] >= PARSE_CASES // 10 and sum(outcomes.values()) - outcomes["loaded"] >= PARSE_CASES // 10


def test_mutated_files_through_the_engine_leave_a_whole_kb(
    tmp_path: Path, seeds: dict[str, bytes], embedder: Embedder, pdf_maker: Callable[..., Path]
) -> None:
    small = {k: v for k, v in seeds.items() if len(v) < 60_000}  # a few chunks each: embedding stays quick
    engine = Engine(Settings(data_dir=tmp_path / "kb", parse_timeout_s=BUDGET_S), embedder=embedder)
    statuses: Counter[str] = Counter()
    problems: list[str] = []
    for n in range(ENGINE_CASES):
        name, op, data = _case(small, PARSE_CASES + n)
        t0 = time.monotonic()
        try:
            r = engine.ingest_bytes(name, data)
        except Exception as e:
            problems.append(f"engine case {n} ({name}, {op}): {type(e).__name__}: {e}")
            continue
        statuses[r.status if r.status != "failed" else f"failed: {r.error_kind}"] += 1
        if r.status == "failed" and not (r.error and r.error_kind):
            problems.append(f"engine case {n} ({name}, {op}): failed without a message or kind")
        if r.status not in ("added", "updated", "duplicate", "failed"):
            problems.append(f"engine case {n}: status {r.status!r}")
        if time.monotonic() - t0 > BUDGET_S + 60:  # parse budget + embedding a few chunks
            problems.append(f"engine case {n} ({name}, {op}): too slow")
    print(f"\nfuzz through the engine: {ENGINE_CASES} files; {dict(statuses.most_common())}")
    assert not problems, problems[:10]
    docs = engine.documents()
    chunks = engine.store.all_chunks()
    assert engine.store.size == len(chunks) == sum(d.chunks for d in docs)
    assert {c.document_id for c in chunks} == {d.document_id for d in docs}
    assert statuses["added"] >= 1 and statuses["updated"] >= 1  # mutants of one file are its versions
