"""`python -m rag_core migrate --to URL`: an embedded knowledge base moved into PostgreSQL answers as it
did (same documents and versions, same search results in every mode), its old versions can be restored
there, and a database holding other documents is refused and left as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rag_core.__main__ import main
from rag_core.embedding import Embedder
from rag_core.store import LocalStore
from rag_core.store.postgres import PostgresStore

from .conftest import LEAVE_POLICY
from .store.conftest import new_document

QUERIES = ["how many days of annual leave", "work from home VPN", "meal allowance on business travel"]
SUMMARY_KEYS = {
    "source", "target", "documents", "current", "chunks", "archived_chunks", "missing_originals", "embedder",
    "dimension", "already", "seconds",
}  # fmt: skip


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _hits(capsys: pytest.CaptureFixture[str], mode: str, *where: str) -> list[list[tuple[int, str, int, float]]]:
    found = []
    for query in QUERIES:
        code, out, err = call(capsys, "search", query, "--mode", mode, "--k", "4", "--json", *where)
        assert code == 0, err
        found.append([(h["chunk_id"], h["document_id"], h["page"], h["score"]) for h in json.loads(out)["hits"]])
    return found


@pytest.fixture
def kb(tmp_path: Path, pdf_maker: Callable[..., Path], capsys: pytest.CaptureFixture[str], embedder: Embedder) -> Path:
    """A local knowledge base of three documents, the policy in two versions."""
    kb = tmp_path / "kb"
    first = pdf_maker(LEAVE_POLICY, name="policy.pdf")
    handbook = pdf_maker(["Code of conduct. Treat colleagues with respect.", "Security. Lock your screen."])
    expenses = pdf_maker(["Expenses are approved by the finance team within ten working days."])
    (tmp_path / "v2").mkdir()
    second = pdf_maker([*LEAVE_POLICY[:2], "Expenses Policy. Meals are covered up to 75 dollars per day."])
    second = second.rename(tmp_path / "v2" / "policy.pdf")
    for path in (first, handbook, expenses, second):
        code, _, err = call(capsys, "ingest", str(path), "--json", "--data-dir", str(kb))
        assert code == 0, err
    return kb


def test_migrate_round_trip(kb: Path, pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    local = ("--data-dir", str(kb))
    remote = ("--database-url", pg_url, "--data-dir", str(tmp_path / "cache"))
    _, docs_before, _ = call(capsys, "docs", "--all", "--json", *local)
    before = {mode: _hits(capsys, mode, *local) for mode in ("dense", "bm25", "hybrid")}

    code, out, err = call(capsys, "migrate", "--to", pg_url, "--json", *local)
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary) == SUMMARY_KEYS and summary["source"] == str(kb)
    assert (summary["documents"], summary["current"], summary["already"]) == (4, 3, False)
    assert summary["archived_chunks"] > 0 and summary["missing_originals"] == 0

    _, docs_after, _ = call(capsys, "docs", "--all", "--json", *remote)
    assert json.loads(docs_after) == json.loads(docs_before)
    for mode, hits in before.items():
        after = _hits(capsys, mode, *remote)
        for want, got in zip(hits, after, strict=True):
            assert [h[:3] for h in got] == [h[:3] for h in want], mode  # ids, documents, pages
            assert all(abs(g[3] - w[3]) <= 1e-5 for g, w in zip(got, want, strict=True)), mode

    old = next(d for d in json.loads(docs_before) if d["name"] == "policy.pdf" and d["version"] == 1)
    code, out, err = call(capsys, "restore", old["document_id"], "--json", *remote)
    assert code == 0, err
    _, current, _ = call(capsys, "docs", "--json", *remote)
    assert old["document_id"] in {d["document_id"] for d in json.loads(current)}
    code, out, err = call(capsys, "search", "meals covered per day", "--mode", "bm25", "--json", *remote)
    assert code == 0 and "60 dollars" in json.loads(out)["hits"][0]["text"]  # the restored version's text

    code, out, err = call(capsys, "migrate", "--to", pg_url, "--json", *local)
    assert code == 2 and "already holds 4 document version(s)" in err  # the restore changed the target


def test_migrating_again_after_success_copies_nothing(
    kb: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert call(capsys, "migrate", "--to", pg_url, "--data-dir", str(kb))[0] == 0
    code, out, _ = call(capsys, "migrate", "--to", pg_url, "--data-dir", str(kb))
    assert code == 0 and "already holds these 4 document versions: nothing copied" in out


def test_a_database_with_other_documents_is_refused_and_unchanged(
    kb: Path, pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = PostgresStore(pg_url, cache_root=tmp_path)
    target.add(new_document("other.txt", b"other", n=2))
    before = (target.documents(all_versions=True), target.all_chunks(), target.generation())
    code, out, err = call(capsys, "migrate", "--to", pg_url, "--json", "--data-dir", str(kb))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "already holds 1 document version(s)" in err and "empty database" in err
    assert (target.documents(all_versions=True), target.all_chunks(), target.generation()) == before


def test_bad_arguments(tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "migrate", "--to", "mysql://hr@db/kb", "--data-dir", str(tmp_path))
    assert code == 2 and "--to takes a postgresql://" in err
    code, _, err = call(capsys, "migrate", "--to", pg_url, "--data-dir", str(tmp_path / "nothing"))
    assert code == 2 and "no knowledge base in" in err and not (tmp_path / "nothing").exists()
    code, _, err = call(capsys, "migrate", "--to", pg_url, "--database-url", pg_url, "--data-dir", str(tmp_path))
    assert code == 2 and "drop --database-url" in err
    LocalStore(tmp_path / "kb").add(new_document("a.txt", b"a"))
    code, _, err = call(capsys, "migrate", "--to", "postgresql://hr:s3cret@127.0.0.1:1/kb?connect_timeout=3",
                        "--data-dir", str(tmp_path / "kb"))  # fmt: skip
    assert code == 2 and err.startswith("error: cannot connect") and "nothing answered at 127.0.0.1:1" in err
    assert "s3cret" not in err
