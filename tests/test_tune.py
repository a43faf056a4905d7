"""`python -m rag_core tune`: pairs mined from a tiny knowledge base, a real (short) training run whose
model `ingest --embedder` accepts, and the usage errors."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rag_core.__main__ import main
from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.evaluation import QAItem
from rag_core.tune import RECORD_NAME, TuneError, TuneOptions, mine_pairs

IT_POLICY = [
    "IT Security Policy. Passwords must be changed every 90 days and contain at least twelve characters.",
    "Lost Devices. Laptops must be encrypted. Report a lost or stolen laptop to the service desk within 24 hours.",
    "Software. Staff may only install software from the company catalogue; ask the service desk for anything else.",
]
QUESTIONS = [
    ("How many days of paid annual leave do full-time staff get?", "policy.pdf", [1], ["20 days"]),
    ("Can I work from home, and how often?", "policy.pdf", [2], ["three days"]),
    ("When are travel expenses paid back?", "policy.pdf", [3], ["30 days"]),
    ("How often must I change my password?", "it.pdf", [1], ["90 days"]),
    ("I lost my laptop on the train, what do I do?", "it.pdf", [2], ["24 hours"]),
    ("Where can I get software from?", "it.pdf", [3], ["catalogue"]),
    ("Is there a staff gym?", None, [], []),  # not covered: only tests refusals, never a pair
]


def write_qa(path: Path, rows: list[tuple[str, str | None, list[int], list[str]]]) -> Path:
    lines = [
        json.dumps({"id": f"t{i}", "question": q, "document": d, "pages": p, "answer_contains": a})
        for i, (q, d, p, a) in enumerate(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def kb(tmp_path: Path, embedder: Embedder, pdf_maker: Callable[..., Path], policy_pdf: Path) -> Path:
    """Two three-page policies, one chunk per page."""
    it = pdf_maker(IT_POLICY, name="it.pdf")
    data_dir = tmp_path / "kb"
    results = Engine(Settings(data_dir=data_dir), embedder=embedder).ingest_paths([policy_pdf, it])
    assert [r.status for r in results] == ["added", "added"]
    return data_dir


@pytest.fixture
def torch_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tuned model on torch: the OpenVINO conversion (seconds) is not what these tests check."""
    monkeypatch.setenv("RAG_EMBED_RUNTIME", "torch")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_tune_trains_a_model_that_ingest_accepts(
    tmp_path: Path,
    kb: Path,
    policy_pdf: Path,
    embedder: Embedder,
    torch_runtime: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    qa = write_qa(tmp_path / "qa.jsonl", QUESTIONS)
    out = tmp_path / "tuned"
    code, stdout, stderr = cli(
        capsys,
        "tune",
        str(qa),
        "--out",
        str(out),
        "--data-dir",
        str(kb),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--json",
    )
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout  # --json: one JSON record and nothing else on stdout
    record = json.loads(lines[0])
    assert record == json.loads((out / RECORD_NAME).read_text(encoding="utf-8"))
    assert record["base_embedder"] == "all-MiniLM-L6-v2" and record["knowledge_base_chunks"] == 6
    assert (record["questions"], record["pairs"], record["pairs_with_answer_phrase"]) == (6, 6, 6)
    assert record["skipped"] == [] and record["hard_negatives"] == 1
    assert record["steps"] == 2 and [s["step"] for s in record["loss"]] == [1, 2]  # 6 pairs, 4 a step
    assert all(math.isfinite(s["loss"]) and s["loss"] >= 0 for s in record["loss"])
    assert len(record["epoch_loss"]) == 1 and math.isfinite(record["epoch_loss"][0])
    assert "pairs" in stderr  # what is happening goes to stderr

    # The directory is a complete sentence-transformers model: a new KB is built with it.
    kb2 = tmp_path / "kb2"
    code, stdout, stderr = cli(
        capsys, "ingest", str(policy_pdf), "--embedder", str(out), "--data-dir", str(kb2), "--json"
    )
    assert code == 0, stderr
    assert json.loads(stdout)["status"] == "added"
    engine = Engine(Settings.from_env(data_dir=kb2))
    assert engine.store.embedder_name == str(out)
    hits = engine.search("reimbursement of travel costs", k=1, mode="dense")
    assert hits[0].page == 3

    # ... and training moved its weights: the same passage no longer embeds as the base model's does.
    passage = "Expenses Policy. Travel expenses are reimbursed within 30 days when submitted with receipts."
    tuned = engine.embedder.encode_passage(passage)
    base = embedder.encode_passage(passage)
    assert 0.9 < float(np.dot(tuned, base)) < 0.99999


def test_a_question_on_a_page_without_passages_is_skipped_and_exits_1(
    tmp_path: Path, kb: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [*QUESTIONS[:2], ("What is on page 9?", "policy.pdf", [9], ["nothing"])]
    qa = write_qa(tmp_path / "qa.jsonl", rows)
    out = tmp_path / "tuned"
    code, stdout, stderr = cli(
        capsys, "tune", str(qa), "--out", str(out), "--data-dir", str(kb), "--epochs", "1", "--batch-size", "2"
    )
    assert code == 1, stderr  # the rest is still done
    assert "skipped t2: no passage of 'policy.pdf' on page(s) 9" in stderr
    assert (out / "model.safetensors").exists() and "saved to" in stdout
    record = json.loads((out / RECORD_NAME).read_text(encoding="utf-8"))
    assert record["pairs"] == 2 and [s["id"] for s in record["skipped"]] == ["t2"]


def test_mining_prefers_the_passage_with_the_answer_and_never_takes_it_as_a_negative(
    tmp_path: Path, embedder: Embedder, pdf_maker: Callable[..., Path]
) -> None:
    pdf = pdf_maker(
        [
            "Carry-over rules apply to every office of the company. "
            "Unused annual leave of up to five days may be carried over. "
            "Requests go to the payroll team before the first of December.",
            "Parking permits are issued by the facilities team each spring.",
            "Summary table. Carry-over of leave: five days at most.",
        ],
        name="leave.pdf",
    )
    settings = Settings(data_dir=tmp_path / "kb", chunk_tokens=16, chunk_overlap=0)
    engine = Engine(settings, embedder=embedder)
    assert engine.ingest_paths([pdf])[0].status == "added"
    page_one = [c for c in engine.store.all_chunks() if c.page == 1]
    assert len(page_one) >= 2  # the gold page holds several chunks, one of them with the answer
    items = [
        QAItem("a", "How much leave can I take into next year?", "leave.pdf", [1], ["Five Days"]),
        QAItem("b", "Who issues parking permits?", "leave.pdf", [7], ["facilities"]),
        QAItem("c", "What is the dress code?", "handbook.pdf", [2], ["smart"]),
        QAItem("d", "Is there a gym?", None, []),
    ]
    mined = mine_pairs(engine.store, engine.embedder, items, hard_negatives=16)
    assert [p.id for p in mined.pairs] == ["a"] and mined.questions == 3
    pair = mined.pairs[0]
    assert "up to five days may be carried over" in " ".join(pair.positive.split()) and pair.has_answer
    assert pair.negatives, "the other chunks are negatives"
    page_one_texts = {f"{c.context}\n{c.text}" if c.context else c.text for c in page_one}
    assert not page_one_texts & set(pair.negatives)  # never a chunk of the gold page
    assert not any("Summary table" in n for n in pair.negatives)  # the answer restated: no negative
    assert any("Parking permits" in n for n in pair.negatives)
    assert [(s.id, s.reason.split(":")[0]) for s in mined.skipped] == [
        ("b", "no passage of 'leave.pdf' on page(s) 7"),
        ("c", "document 'handbook.pdf' is not in the knowledge base"),
    ]
    assert [s.id for s in mined.page_misses] == ["b"]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--epochs", "0", "--epochs must be >= 1"),
        ("--batch-size", "1", "--batch-size must be >= 2"),
        ("--hard-negatives", "-1", "--hard-negatives must be between 0"),
        ("--learning-rate", "nan", "--learning-rate must be a number between 0 and 1"),
    ],
)
def test_bad_numbers_are_usage_errors(
    tmp_path: Path, flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    qa = write_qa(tmp_path / "qa.jsonl", QUESTIONS)
    kb = str(tmp_path / "kb")
    code, stdout, stderr = cli(capsys, "tune", str(qa), "--out", str(tmp_path / "o"), "--data-dir", kb, flag, value)
    assert code == 2 and message in stderr and stdout == ""
    assert not (tmp_path / "o").exists()


def test_a_number_that_is_no_number_is_refused_by_the_parser(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as e:
        main(["tune", "qa.jsonl", "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "kb"), "--epochs", "two"])
    assert e.value.code == 2


def test_output_must_be_new_or_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qa = write_qa(tmp_path / "qa.jsonl", QUESTIONS)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine", encoding="utf-8")
    code, _, stderr = cli(capsys, "tune", str(qa), "--out", str(full), "--data-dir", str(tmp_path / "kb"))
    assert code == 2 and "is not empty" in stderr
    assert (full / "keep.txt").read_text(encoding="utf-8") == "mine"
    code, _, stderr = cli(capsys, "tune", str(qa), "--out", str(qa), "--data-dir", str(tmp_path / "kb"))
    assert code == 2 and "is a file" in stderr


def test_empty_knowledge_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qa = write_qa(tmp_path / "qa.jsonl", QUESTIONS)
    code, _, stderr = cli(capsys, "tune", str(qa), "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "kb"))
    assert code == 2 and "knowledge base is empty" in stderr
    assert not (tmp_path / "o").exists()


def test_questions_about_other_documents_name_what_they_expected(
    tmp_path: Path, kb: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [("What is the dress code?", "handbook-2019.pdf", [4], ["smart"]), ("Is there a gym?", None, [], [])]
    qa = write_qa(tmp_path / "qa.jsonl", rows)
    code, stdout, stderr = cli(capsys, "tune", str(qa), "--out", str(tmp_path / "o"), "--data-dir", str(kb), "--json")
    assert code == 2 and stdout == ""
    assert "they expect 'handbook-2019.pdf'" in stderr and "'it.pdf', 'policy.pdf'" in stderr

    only_unanswerable = write_qa(tmp_path / "none.jsonl", [("Is there a gym?", None, [], [])])
    code, _, stderr = cli(capsys, "tune", str(only_unanswerable), "--out", str(tmp_path / "o"), "--data-dir", str(kb))
    assert code == 2 and "no answerable question" in stderr


def test_unreadable_qa_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kb = str(tmp_path / "kb")
    code, _, stderr = cli(
        capsys, "tune", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"), "--data-dir", kb
    )
    assert code == 2 and "missing.jsonl" in stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n", encoding="utf-8")
    code, _, stderr = cli(capsys, "tune", str(bad), "--out", str(tmp_path / "o"), "--data-dir", kb)
    assert code == 2 and "not a QA line" in stderr


def test_options_are_checked_when_made() -> None:
    assert TuneOptions().epochs >= 1
    with pytest.raises(TuneError, match="--learning-rate"):
        TuneOptions(learning_rate=0.0)
    with pytest.raises(TuneError, match="--hard-negatives"):
        TuneOptions(hard_negatives=99)
