"""`python -m rag_core`: the command line contract of DESIGN.md, to the letter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from rag_core.__main__ import main
from rag_core.embedding import Embedder

from .scans import SCANNED_POLICY, needs_tesseract, scan_pdf

ROOT = Path(__file__).resolve().parent.parent
HIT_KEYS = {"rank", "score", "document", "document_id", "page", "page_label", "chunk_id", "text"}
INGEST_KEYS = {"file", "status", "document_id", "pages", "chunks", "error", "replaces", "version", "ocr_pages"}
DOC_KEYS = {"document_id", "name", "sha256", "pages", "chunks", "added_at", "version", "kind"}


def run_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """A real new process, as scripts use it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rag_core", *args, "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


class TestRoundTrip:
    def test_ingest_restart_search_delete(self, tmp_path: Path, policy_pdf: Path) -> None:
        kb = tmp_path / "kb"
        bad = tmp_path / "bad.pdf"
        bad.write_bytes(b"%PDF-1.4 truncated")
        r = run_cli("ingest", str(policy_pdf), str(bad), "--json", data_dir=kb)
        assert r.returncode == 1, r.stderr  # one file failed, the other still added
        lines = [json.loads(line) for line in r.stdout.splitlines()]
        assert [set(x) for x in lines] == [INGEST_KEYS, INGEST_KEYS]
        assert [x["status"] for x in lines] == ["added", "failed"]
        assert "damaged PDF" in lines[1]["error"] and lines[1]["document_id"] is None

        first = run_cli("search", "work from home", "--k", "2", "--json", data_dir=kb)
        second = run_cli("search", "work from home", "--k", "2", "--json", data_dir=kb)
        assert first.returncode == 0 and first.stdout == second.stdout  # same hits after a restart
        result = json.loads(first.stdout)
        assert result["query"] == "work from home" and len(result["hits"]) == 2
        assert set(result["hits"][0]) == HIT_KEYS and result["hits"][0]["page"] == 2
        assert result["hits"][0]["page_label"] is None  # the test PDF prints no page numbers

        again = run_cli("ingest", str(policy_pdf), "--json", data_dir=kb)
        assert again.returncode == 0 and json.loads(again.stdout)["status"] == "duplicate"

        deleted = run_cli("delete", "policy.pdf", data_dir=kb)
        assert deleted.returncode == 0 and "deleted policy.pdf" in deleted.stdout
        docs = run_cli("docs", "--json", data_dir=kb)
        assert json.loads(docs.stdout) == []


def test_two_processes_ingesting_at_once_both_land(tmp_path: Path, pdf_maker: Callable[..., Path]) -> None:
    kb = tmp_path / "kb"
    a = pdf_maker(["Parking permits are issued by facilities. " * 40] * 4, name="parking.pdf")
    b = pdf_maker(["Laptops must be encrypted with the standard image. " * 40] * 4, name="laptops.pdf")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "rag_core", "ingest", str(p), "--json", "--data-dir", str(kb)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in (a, b)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    assert [json.loads(o[0])["status"] for o in outs] == ["added", "added"]
    docs = json.loads(run_cli("docs", "--json", data_dir=kb).stdout)
    assert sorted(d["name"] for d in docs) == ["laptops.pdf", "parking.pdf"]
    from rag_core.store import LocalStore

    store = LocalStore(kb)
    assert store.size == len(store.all_chunks()) == sum(d["chunks"] for d in docs)


class TestCommands:
    @pytest.fixture
    def kb(self, tmp_path: Path, policy_pdf: Path, embedder: Embedder, capsys: pytest.CaptureFixture[str]) -> Path:
        kb = tmp_path / "kb"
        assert call(capsys, "ingest", str(policy_pdf), "--data-dir", str(kb))[0] == 0
        return kb

    def test_docs_json_shape(self, kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = call(capsys, "docs", "--json", "--data-dir", str(kb))
        docs = json.loads(out)
        assert code == 0 and len(docs) == 1
        assert set(docs[0]) == DOC_KEYS
        assert (docs[0]["name"], docs[0]["pages"], docs[0]["version"], docs[0]["kind"]) == ("policy.pdf", 3, 1, "pdf")

    def test_new_version_all_versions_and_restore(
        self, kb: Path, tmp_path: Path, pdf_maker: Callable[..., Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        [v1] = json.loads(call(capsys, "docs", "--json", "--data-dir", str(kb))[1])
        edited = pdf_maker(["Remote work is allowed four days a week with manager approval."], name="policy.pdf")
        code, out, _ = call(capsys, "ingest", str(edited), "--json", "--data-dir", str(kb))
        row = json.loads(out)
        assert code == 0 and set(row) == INGEST_KEYS
        assert (row["status"], row["replaces"], row["version"]) == ("updated", v1["document_id"], 2)
        [current] = json.loads(call(capsys, "docs", "--json", "--data-dir", str(kb))[1])
        assert (current["document_id"], current["version"]) == (row["document_id"], 2)
        every = json.loads(call(capsys, "docs", "--all", "--json", "--data-dir", str(kb))[1])
        assert [(d["document_id"], d["version"]) for d in every] == [(v1["document_id"], 1), (row["document_id"], 2)]
        assert all(set(d) == DOC_KEYS for d in every)
        _, table, _ = call(capsys, "docs", "--all", "--data-dir", str(kb))
        assert "replaced" in table and "current" in table
        _, hits, _ = call(capsys, "search", "How many days of annual leave?", "--json", "--data-dir", str(kb))
        assert {h["document_id"] for h in json.loads(hits)["hits"]} == {row["document_id"]}  # v1 is not searched

        code, out, _ = call(capsys, "restore", v1["document_id"], "--data-dir", str(kb))
        assert code == 0 and "version 1" in out
        [current] = json.loads(call(capsys, "docs", "--json", "--data-dir", str(kb))[1])
        assert current["document_id"] == v1["document_id"]
        code, _, err = call(capsys, "restore", "no-such-document", "--data-dir", str(kb))
        assert code == 1 and "no document" in err

    def test_a_copy_under_another_name_is_added_with_a_warning(
        self, tmp_path: Path, embedder: Embedder, capsys: pytest.CaptureFixture[str]
    ) -> None:
        kb = tmp_path / "kb"
        text = "\n\n".join(f"Rule {i}: staff may claim expense type {i} with a receipt." for i in range(40))
        (tmp_path / "expenses.md").write_text(text)
        (tmp_path / "expenses copy.txt").write_text(text + "\n")
        call(capsys, "ingest", str(tmp_path / "expenses.md"), "--data-dir", str(kb))
        code, out, err = call(capsys, "ingest", str(tmp_path / "expenses copy.txt"), "--json", "--data-dir", str(kb))
        assert code == 0 and json.loads(out)["status"] == "added"
        assert "nearly the same text as 'expenses.md' (100%" in err

    def test_docs_table(self, kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = call(capsys, "docs", "--data-dir", str(kb))
        assert code == 0 and "policy.pdf" in out and "document_id" in out

    def test_search_batch_one_json_per_line_in_order(
        self, kb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        batch = tmp_path / "q.txt"
        batch.write_text("How many days of annual leave?\n\nAre meals covered when travelling?\n")
        code, out, _ = call(capsys, "search", "--batch", str(batch), "--k", "1", "--json", "--data-dir", str(kb))
        rows = [json.loads(line) for line in out.splitlines()]
        assert code == 0 and [r["query"] for r in rows] == [
            "How many days of annual leave?",
            "Are meals covered when travelling?",
        ]
        assert [r["hits"][0]["page"] for r in rows] == [1, 3]

    def test_search_table_and_metric(self, kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = call(capsys, "search", "VPN", "--metric", "l2", "--data-dir", str(kb))
        assert code == 0 and "policy.pdf" in out and "rank" in out

    def test_search_empty_kb_is_friendly(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, err = call(capsys, "search", "leave", "--json", "--data-dir", str(tmp_path / "empty"))
        assert code == 0 and json.loads(out) == {"query": "leave", "hits": []}
        assert "empty" in err and "ingest" in err

    def test_delete_unknown_exits_1(self, kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = call(capsys, "delete", "nope.pdf", "--data-dir", str(kb))
        assert code == 1 and "no document" in err

    @pytest.mark.parametrize(
        "args",
        [
            ["search"],
            ["search", "q", "--k", "0"],
            ["frobnicate"],
            ["search", "q", "--metric", "jaccard"],
        ],
    )
    def test_usage_errors_exit_2(self, args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        try:
            code = main([*args, "--data-dir", str(tmp_path)]) if args[0] == "search" else main(args)
        except SystemExit as e:  # argparse's own usage errors
            code = int(e.code or 0)
        assert code == 2

    def test_ask_json_contract(self, kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = call(capsys, "ask", "Can I work from home?", "--k", "3", "--json", "--data-dir", str(kb))
        answer = json.loads(out)
        assert code == 0
        assert set(answer) >= {"question", "answer", "generator", "grounded", "citations", "hits", "prompt"}
        assert answer["generator"] == "extractive" and answer["grounded"] is True
        assert answer["citations"][0] == {
            "document": "policy.pdf",
            "page": 2,
            "chunk_id": answer["hits"][0]["chunk_id"],
        }
        assert "home" in answer["answer"] and "[1]" in answer["answer"]
        assert set(answer["hits"][0]) == HIT_KEYS and "<passage" in answer["prompt"]

    def test_ask_batch_and_no_context(self, kb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        batch = tmp_path / "q.txt"
        batch.write_text("How many days of annual leave?\nWhat is the capital of Mongolia?\n")
        code, out, _ = call(capsys, "ask", "--batch", str(batch), "--json", "--data-dir", str(kb))
        rows = [json.loads(line) for line in out.splitlines()]
        assert code == 0 and [r["grounded"] for r in rows] == [True, False]
        assert "could not find" in rows[1]["answer"] and rows[1]["citations"] == []
        code, out, _ = call(capsys, "ask", "How many days?", "--no-context", "--json", "--data-dir", str(kb))
        bare = json.loads(out)
        assert code == 0 and bare["hits"] == [] and bare["grounded"] is False

    def test_ask_bad_generator_exits_2(self, kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = call(capsys, "ask", "q", "--generator", "gpt2", "--data-dir", str(kb))
        assert code == 2 and "valid: 'extractive'" in err

    def test_ask_missing_model_falls_back_with_warning(self, kb: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, err = call(capsys, "ask", "VPN?", "--generator", "hf:nobody/none", "--json", "--data-dir", str(kb))
        assert code == 0 and json.loads(out)["generator"] == "extractive" and "nobody/none" in err

    def test_eval_command(self, kb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        qa = tmp_path / "qa.jsonl"
        qa.write_text(
            '{"id": "a", "question": "Can I work from home?", "document": "policy.pdf", "pages": [2]}\n'
            '{"id": "b", "question": "Meal allowance on trips?", "document": "policy.pdf", "pages": [3]}\n'
            '{"id": "u", "question": "Moon?", "document": null, "pages": []}\n'
        )
        code, out, _ = call(capsys, "eval", str(qa), "--json", "--data-dir", str(kb))
        report = json.loads(out)
        assert code == 0 and report["n"] == 2 and report["hit@1"] == 1.0 and report["mrr"] == 1.0
        assert [q["id"] for q in report["questions"]] == ["a", "b", "u"]
        assert report["answer_contains"] is not None and report["refused_answerable"] == 0.0
        assert report["refused_unanswerable"] in (0.0, 1.0)


def test_ingest_without_json_shows_table(
    tmp_path: Path, pdf_maker: Callable[..., Path], embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    pdf = pdf_maker(["Overtime is paid at time and a half."])
    code, out, _ = call(capsys, "ingest", str(pdf), "--data-dir", str(tmp_path / "kb"))
    assert code == 0 and "added" in out and "1 page," in out and "1 added, 0 updated, 0 duplicate, 0 failed" in out


@needs_tesseract
def test_ingest_of_a_scan_counts_its_ocr_pages(
    tmp_path: Path, embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = tmp_path / "parental-leave-scan.pdf"
    scan.write_bytes(scan_pdf(SCANNED_POLICY))
    code, out, _ = call(capsys, "ingest", str(scan), "--json", "--data-dir", str(tmp_path / "kb"))
    row = json.loads(out)
    assert code == 0 and set(row) == INGEST_KEYS and (row["status"], row["ocr_pages"]) == ("added", 2)
    text = tmp_path / "memo.md"
    text.write_text("Permits are free at the front desk.")
    code, out, _ = call(capsys, "ingest", str(text), "--data-dir", str(tmp_path / "kb"))
    assert code == 0 and "read by OCR" not in out
    code, out, _ = call(capsys, "ingest", str(scan), "--data-dir", str(tmp_path / "kb2"))
    assert code == 0 and "2 pages, " in out and ", 2 pages read by OCR" in out


def test_docs_with_a_database_url(pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "docs", "--json", "--database-url", pg_url, "--data-dir", str(tmp_path))
    assert (code, json.loads(out)) == (0, []), err
    code, _, err = call(capsys, "docs", "--database-url", "mysql://hr@db/kb")
    assert code == 2 and "PostgreSQL URL" in err


def test_a_database_that_cannot_be_reached_is_a_configuration_error(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 with `error: ...` saying what to check; the password never shows."""
    refused = "postgresql://hr:s3cret@127.0.0.1:1/kb?connect_timeout=3"
    code, out, err = call(capsys, "search", "leave", "--database-url", refused, "--data-dir", str(tmp_path))
    assert (code, out) == (2, "") and err.startswith("error: cannot connect to the knowledge base at ")
    assert "nothing answered at 127.0.0.1:1" in err and "RAG_DATABASE_URL" in err and "s3cret" not in err
    missing = urlunsplit(urlsplit(pg_url)._replace(path="/no_such_kb"))
    code, _, err = call(capsys, "docs", "--database-url", missing, "--data-dir", str(tmp_path))
    assert code == 2 and "has no database 'no_such_kb': create it" in err
    bad = "postgresql://hr@db/kb?colour=blue"
    code, _, err = call(capsys, "docs", "--database-url", bad, "--data-dir", str(tmp_path))
    assert code == 2 and "is not valid" in err and "postgresql://user:password@host:port/database" in err
