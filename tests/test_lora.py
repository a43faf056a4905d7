"""rag_core.lora: LoRA adapters of a local causal LM trained on the knowledge base's text, loaded as
`hf:<adapter dir>`; bases that cannot be used fail before any training. Models are tiny random GPT-2s
built in a temp dir (nothing can be downloaded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag_core.answer.generators import GeneratorUnavailable
from rag_core.answer.hf import HFGenerator
from rag_core.config import Settings
from rag_core.embedding import Embedder, bundled_model_path
from rag_core.engine import Engine
from rag_core.lora import (
    RECORD_NAME,
    FinetuneError,
    FinetuneOptions,
    check_base,
    model_dir,
    read_record,
    token_blocks,
    train,
)
from tests.lm import SAMPLE_TEXT, tiny_gpt2


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gpt2(tmp_path_factory.mktemp("base"), [SAMPLE_TEXT] * 3, positions=512, vocab=600)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Engine:
    e = Engine(Settings(data_dir=tmp_path_factory.mktemp("kb")), embedder=embedder)
    assert e.load_sample().status == "added"
    return e


@pytest.fixture(scope="module")
def adapter(base: Path, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(base, engine, tmp_path_factory.mktemp("adapter") / "out", 0.01)[0]


def _train(base: Path, engine: Engine, out: Path, learning_rate: float) -> tuple[Path, object]:
    generation, _, texts = engine.store.chunk_texts()
    options = FinetuneOptions(steps=60, learning_rate=learning_rate, block_tokens=64)
    record = train(base, texts, out, options, generation=generation, documents=engine.documents())
    return out, record


class TestTrain:
    def test_the_loss_falls_and_the_adapter_records_what_it_learned(
        self, base: Path, engine: Engine, tmp_path: Path
    ) -> None:
        adapter, record = _train(base, engine, tmp_path / "adapter", 0.01)
        _, still = _train(base, engine, tmp_path / "control", 1e-9)  # the same run that learns nothing
        losses, control = np.asarray(record.loss), np.asarray(still.loss)  # type: ignore[attr-defined]
        assert len(losses) == 60 and losses[-10:].mean() < losses[:10].mean() - 0.02
        assert abs(control[-10:].mean() - control[:10].mean()) < 0.005
        saved = read_record(adapter)
        assert saved == record and saved is not None
        assert saved.base == str(base) and saved.generation == engine.store.generation()
        assert [d.name for d in saved.documents] == [d.name for d in engine.documents()]
        assert 0 < saved.trainable_parameters < saved.total_parameters / 10 and saved.peak_memory_mb > 0
        assert json.loads((adapter / RECORD_NAME).read_text())["steps"] == 60

    def test_the_adapter_loads_as_hf_dir_and_answers(self, base: Path, engine: Engine, adapter: Path) -> None:
        tuned, plain = HFGenerator(str(adapter), max_new_tokens=8), HFGenerator(str(base), max_new_tokens=8)
        assert tuned.name == f"hf:{adapter}" and tuned.context_window == 512
        changed = [
            not np.allclose(a.detach().numpy(), b.detach().numpy())
            for a, b in zip(tuned.model.parameters(), plain.model.parameters(), strict=True)
        ]
        assert any(changed)  # the adapter is merged into the attention weights
        answer = engine.answer("How many days of annual leave?", generator=f"hf:{adapter}")
        assert answer.generator == f"hf:{adapter}" and answer.warning is None

    def test_an_adapter_whose_base_is_gone_says_so(self, adapter: Path, tmp_path: Path) -> None:
        adapter = Path(shutil.copytree(adapter, tmp_path / "copy"))
        record = json.loads((adapter / RECORD_NAME).read_text())
        (adapter / RECORD_NAME).write_text(json.dumps({**record, "base": str(tmp_path / "moved")}))
        with pytest.raises(GeneratorUnavailable, match="trained on the base model .*moved.*not on this machine"):
            HFGenerator(str(adapter))

    def test_token_blocks_pack_texts_without_padding(self, base: Path) -> None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(base)
        blocks = token_blocks(tok, [SAMPLE_TEXT[:400], SAMPLE_TEXT[400:800]], 32)
        assert all(len(b) == 32 for b in blocks[:-1]) and len(blocks[-1]) >= 16
        assert sum(b.count(tok.eos_token_id) for b in blocks) <= 2  # one end-of-text per text (the last may be cut)


class TestBadBases:
    def test_not_a_local_directory(self, tmp_path: Path) -> None:
        with pytest.raises(FinetuneError, match="not a local model directory.*nothing is downloaded"):
            model_dir("hf:gpt2")
        with pytest.raises(FinetuneError, match="no config.json"):
            model_dir(f"hf:{tmp_path}")

    def test_an_encoder_is_not_a_causal_lm(self) -> None:
        with pytest.raises(FinetuneError, match="not a causal language model .*BertModel"):
            check_base(bundled_model_path())

    def test_too_large_for_memory(self, base: Path) -> None:
        with pytest.raises(FinetuneError, match=r"needs about .* GiB to train, and 0\.0 GiB is free"):
            check_base(base, available_bytes=1000)

    def test_an_adapter_is_not_a_base(self, adapter: Path) -> None:
        with pytest.raises(FinetuneError, match="is a LoRA adapter, not a base model"):
            check_base(adapter)

    def test_bad_options(self) -> None:
        with pytest.raises(FinetuneError, match="--steps must be >= 1"):
            FinetuneOptions(steps=0)
        with pytest.raises(FinetuneError, match="learning rate"):
            FinetuneOptions(learning_rate=2.0)
