"""Uploaded file names are data to show, never paths: hostile names land safely and are shown faithfully.

Names with '../', Windows separators, NUL and other control characters, bidirectional overrides, 300
characters, Arabic and emoji: the listed name is the base name with only separators and invisible
control characters taken out, and nothing is written anywhere but under the data dir, where originals
are named by their SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rag_core.__main__ import main
from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine

ROOT = Path(__file__).resolve().parent.parent

# uploaded name -> the name PolicyPal shows
NAMES: dict[str, str] = {
    "../../etc/passwd\x00.pdf": "passwd.pdf",
    "..\\..\\Windows\\System32\\drivers\\etc\\hosts.pdf": "hosts.pdf",
    "/absolute/path/to/leave.pdf": "leave.pdf",
    "a/b/../../../../escape.pdf": "escape.pdf",
    "سياسة الإجازات 2024.pdf": "سياسة الإجازات 2024.pdf",  # Arabic, right to left
    "👩\u200d💻 remote-work 🏠.pdf": "👩\u200d💻 remote-work 🏠.pdf",  # the joiner stays: one emoji, not two
    "salary\u202etxt.exe": "salarytxt.exe",  # a right-to-left override would show it as "salaryexe.txt"
    "tab\there\nnew line\r.pdf": "tab here new line .pdf",  # whitespace of any kind shows as a space
    "bell\x07and\x1bescape.pdf": "bellandescape.pdf",
    "CON": "CON",  # a Windows device name is harmless as a label
    "..": "..",
    "": "unnamed",
    "   ": "unnamed",
}


def _upload(i: int) -> bytes:
    """A real PDF (the type is read from the bytes, so a name ending in .exe still reads as a PDF)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, f"Policy {i}. Employees may carry over {i} days of leave into the next year.")
    return bytes(pdf.output())


def _files_outside(root: Path, data_dir: Path) -> set[Path]:
    return {p for p in root.rglob("*") if data_dir not in p.parents and p != data_dir}


def test_hostile_names_are_shown_faithfully_and_written_nowhere(
    tmp_path: Path, embedder: Embedder, pdf_maker: Callable[..., Path]
) -> None:
    data_dir = tmp_path / "deep" / "er" / "kb"  # '../../' from here would still be inside tmp_path
    data_dir.parent.mkdir(parents=True)
    long_name = "Employee handbook " + "é" * 300 + ".pdf"
    uploads = [(name, _upload(i)) for i, name in enumerate(NAMES)] + [(long_name, _upload(99))]
    before = _files_outside(tmp_path, data_dir)
    root_before = set(ROOT.iterdir())

    engine = Engine(Settings(data_dir=data_dir), embedder=embedder)
    results = engine.ingest_uploads(uploads)

    # Two names shown alike ("" and "   " are both "unnamed") are one document: the second is its version 2.
    shown_names = [*NAMES.values(), None]
    expected = ["updated" if name in shown_names[:i] else "added" for i, name in enumerate(shown_names)]
    assert [r.status for r in results] == expected, [(r.file, r.error) for r in results]
    assert [r.file for r in results[:-1]] == list(NAMES.values())
    shown = results[-1].file
    assert len(shown) == 255 and shown.startswith("Employee handbook éé") and shown.endswith("é….pdf")
    listed = {d.sha256: d.name for d in engine.documents(all_versions=True)}
    for (_, data), r in zip(uploads, results, strict=True):
        assert listed[hashlib.sha256(data).hexdigest()] == r.file  # the list shows what the result said

    # Nothing outside the data dir; inside it, only the store's own names and originals by content hash.
    assert _files_outside(tmp_path, data_dir) == before
    assert set(ROOT.iterdir()) == root_before
    inside = {p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*")}
    originals = {n for n in inside if n.startswith("originals/")}
    assert all(re.fullmatch(r"originals/[0-9a-f]{64}\.(pdf|txt)", n) for n in originals), originals
    assert len(originals) == len(uploads)
    words = ("passwd", "hosts", "leave", "escape", "سياسة", "remote", "salary", "tab", "bell", "CON", "handbook")
    assert not [n for n in inside if any(w.lower() in n.lower() for w in words)]  # no name became a path


def test_the_cli_shows_unicode_file_names_as_they_are(
    tmp_path: Path, embedder: Embedder, pdf_maker: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    arabic = pdf_maker(["Annual leave is twenty days."], name="سياسة الإجازات.pdf")
    emoji = pdf_maker(["Remote work needs approval."], name="👩\u200d💻 remote.pdf")
    code = main(["ingest", str(arabic), str(emoji), "--json", "--data-dir", str(tmp_path / "kb")])
    out = capsys.readouterr().out
    assert code == 0
    assert [json.loads(line)["file"] for line in out.splitlines()] == ["سياسة الإجازات.pdf", "👩\u200d💻 remote.pdf"]


def test_the_documents_page_shows_the_names_faithfully(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "kb"
    monkeypatch.setenv("RAG_DATA_DIR", str(data_dir))
    monkeypatch.delenv("RAG_APP_PASSWORD", raising=False)
    engine = Engine(Settings(data_dir=data_dir), embedder=embedder)
    engine.ingest_uploads([("../../سياسة الإجازات.pdf", _upload(1)), ("👩\u200d💻\x00 remote.pdf", _upload(2))])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert sorted(at.dataframe[0].value["name"].tolist()) == sorted(["سياسة الإجازات.pdf", "👩\u200d💻 remote.pdf"])
