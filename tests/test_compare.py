"""rag_core.compare and its two faces (`python -m rag_core compare`, the Evaluate page): the five arms
answer every question, scored alike; a model that cannot load fails fast; documents changed since
training are named. Models are tiny random GPT-2s (their answers are noise, scored as such)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rag_core.__main__ import main
from rag_core.compare import answer_rows, compare, drift, is_refusal, summary_rows
from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.evaluation import SAMPLE_QA, load_qa
from rag_core.lora import FinetuneOptions, read_record, train
from tests.lm import SAMPLE_TEXT, tiny_gpt2

ROOT = Path(__file__).resolve().parent.parent
ARMS = [
    "base, no context",
    "base + retrieval",
    "fine-tuned, no context",
    "fine-tuned + retrieval",
    "extractive + retrieval",
]


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    d = tmp_path_factory.mktemp("kb")
    assert Engine(Settings(data_dir=d), embedder=embedder).load_sample().status == "added"
    return d


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, kb: Path, embedder: Embedder) -> tuple[str, str]:
    base = tiny_gpt2(tmp_path_factory.mktemp("base"), [SAMPLE_TEXT] * 3, positions=512, vocab=600)
    engine = Engine(Settings(data_dir=kb), embedder=embedder)
    generation, _, texts = engine.store.chunk_texts()
    out = tmp_path_factory.mktemp("adapter") / "out"
    options = FinetuneOptions(steps=10, learning_rate=0.01, block_tokens=64)
    train(base, texts, out, options, generation=generation, documents=engine.documents())
    return f"hf:{base}", f"hf:{out}"


@pytest.fixture
def engine(kb: Path, embedder: Embedder) -> Engine:
    return Engine(Settings(data_dir=kb, background_map=False), embedder=embedder)


class TestCompare:
    def test_five_arms_answer_every_question(self, engine: Engine, models: tuple[str, str]) -> None:
        items = load_qa(SAMPLE_QA)
        report = compare(engine, items, *models)
        assert [a.arm for a in report.arms] == ARMS
        assert [a.context for a in report.arms] == [False, True, False, True, True]
        assert [q.id for q in report.questions] == [i.id for i in items]
        for q in report.questions:
            assert list(q.answers) == ARMS and list(q.refused) == ARMS
        scores = {a.arm: a for a in report.arms}
        extractive = scores["extractive + retrieval"]
        assert extractive.answer_contains is not None and extractive.answer_contains >= 0.8
        assert extractive.refused_uncovered == 1.0  # the pension question is not in the sample policy
        for arm in ARMS[:4]:  # random weights: noise, and scored as noise
            assert scores[arm].answer_contains == 0.0 and scores[arm].latency_p50_ms > 0
        # with retrieval, the coverage judge refuses before any model is asked, whichever the model
        for arm in ("base + retrieval", "fine-tuned + retrieval"):  # the judge's refusals, not the window's
            assert scores[arm].refused_answerable == extractive.refused_answerable
            assert scores[arm].refused_uncovered == extractive.refused_uncovered
        uncovered = next(q for q in report.questions if not q.answerable)
        assert uncovered.refused["base + retrieval"] and uncovered.refused["fine-tuned + retrieval"]
        assert report.drift is not None and not report.drift.changed
        rows = answer_rows(report)
        assert rows[0]["question"] == items[0].question and str(rows[0]["extractive + retrieval"]).startswith("✓ ")
        assert [r["arm"] for r in summary_rows(report)] == ARMS

    def test_without_an_adapter_three_arms(self, engine: Engine, models: tuple[str, str]) -> None:
        report = compare(engine, load_qa(SAMPLE_QA)[:2], models[0])
        assert [a.arm for a in report.arms] == [ARMS[0], ARMS[1], ARMS[4]] and report.drift is None

    def test_a_model_that_cannot_load_fails_before_answering(self, engine: Engine, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="not available on this machine"):
            compare(engine, load_qa(SAMPLE_QA), f"hf:{tmp_path / 'nowhere'}")

    def test_documents_changed_since_training_are_named(self, engine: Engine, models: tuple[str, str]) -> None:
        record = read_record(Path(models[1].removeprefix("hf:")))
        assert record is not None
        (doc,) = engine.documents()
        now = [replace(doc, sha256="0" * 64, version=2), replace(doc, name="travel.pdf")]
        changed = drift(record, now, record.generation + 2)
        assert (changed.added, changed.updated, changed.removed) == (["travel.pdf"], [doc.name], [])
        assert "added: travel.pdf" in changed.note() and "only knows them as they were" in changed.note()

    def test_refusal_words(self) -> None:
        assert is_refusal("") and is_refusal("The documents do not cover this.")
        assert not is_refusal("Full-time employees get 25 days.")


class TestCommandLine:
    def test_finetune_then_compare_json(
        self, kb: Path, models: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "adapter"
        code = main(
            ["finetune", "--base", models[0], "--out", str(out), "--steps", "3", "--json", "--data-dir", str(kb)]
        )
        got, err = capsys.readouterr()
        assert code == 0, err
        record = json.loads(got)
        assert len(record["loss"]) == 3 and record["base"] == models[0].removeprefix("hf:")
        qa = tmp_path / "qa.jsonl"
        qa.write_text("\n".join(SAMPLE_QA.read_text().splitlines()[:2]))
        args = [
            "compare",
            str(qa),
            "--generator",
            models[0],
            "--finetuned",
            f"hf:{out}",
            "--json",
            "--data-dir",
            str(kb),
        ]
        assert main(args) == 0
        report = json.loads(capsys.readouterr().out)
        assert [a["arm"] for a in report["arms"]] == ARMS and len(report["questions"]) == 2
        assert set(report["questions"][0]["answers"]) == set(ARMS) and "drift_note" in report

    def test_bad_base_exits_2_with_the_reason(
        self, kb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from rag_core.embedding import bundled_model_path

        code = main(
            ["finetune", "--base", f"hf:{bundled_model_path()}", "--out", str(tmp_path / "o"), "--data-dir", str(kb)]
        )
        assert code == 2 and "not a causal language model" in capsys.readouterr().err
        code = main(["finetune", "--base", "hf:gpt2", "--out", str(tmp_path / "o"), "--data-dir", str(kb)])
        assert code == 2 and "not a local model directory" in capsys.readouterr().err


def test_the_evaluate_page_shows_the_comparison(
    kb: Path, models: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(kb))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/evaluate.py").run()
    at.checkbox(key="evaluate_sample").check().run()
    at.text_input(key="compare_base").set_value(models[0])
    at.text_input(key="compare_ft").set_value(models[1])
    at.button[0].click().run()  # the form's submit button
    assert not at.exception, at.exception
    summary, answers = at.dataframe[-2].value, at.dataframe[-1].value  # after the retrieval table
    assert summary["arm"].tolist() == ARMS
    assert answers.shape[0] == len(load_qa(SAMPLE_QA)) and list(answers.columns[-5:]) == ARMS
    assert len(at.get("plotly_chart")) == 2
    assert any("as they were when the adapter was trained" in str(i.value) for i in at.info)
