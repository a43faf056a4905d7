"""rag_core.embedding encoder families: DPR dual encoder and mean pooling, on tiny random models.

The models are built in a temp dir once per module (a WordPiece tokenizer trained on a few dozen
sentences, 2-layer 32-d BERT/DPR weights): nothing is downloaded, and each loads in well under a second.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from rag_core.config import Settings
from rag_core.embedding import Embedder, EmbedderSpec, ModelNotAvailable, parse_spec
from rag_core.pipeline import Engine
from rag_core.store import EmbedderMismatch
from tests.conftest import LEAVE_POLICY

SENTENCES = [
    *(s.strip() + "." for page in LEAVE_POLICY for s in page.split(". ") if s.strip()),
    "Employees may take sick leave when they are ill.",
    "Parental leave lasts sixteen weeks for every new parent.",
    "The office opens at eight and closes at six.",
    "Managers approve overtime in advance.",
    "Laptops must be locked when unattended.",
    "Passwords are changed every ninety days.",
    "Training budgets are set once per year.",
    "Bereavement leave is three days when a relative dies.",
    "Public holidays follow the national calendar.",
    "Report security incidents to the help desk at once.",
    "Business travel is booked through the travel portal.",
    "New hires receive a badge on their first day.",
]
DOCUMENT = "\n\n".join(LEAVE_POLICY)
LONG_TEXT = " ".join(SENTENCES) * 40  # thousands of word pieces: far past every model's limit


def _tokenizer(out: Path):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(SENTENCES * 3, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.save_pretrained(out)
    return fast


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """question/, context/ (DPR), mean/ (BERT, 512 positions), short/ (BERT, 40 positions)."""
    import torch
    from transformers import BertConfig, BertModel, DPRConfig, DPRContextEncoder, DPRQuestionEncoder

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny-encoders")
    tiny = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    for name, cls in (("question", DPRQuestionEncoder), ("context", DPRContextEncoder)):
        vocab = len(_tokenizer(root / name))
        cls(DPRConfig(vocab_size=vocab, **tiny)).save_pretrained(root / name)
    for name, positions in (("mean", 512), ("short", 40)):
        vocab = len(_tokenizer(root / name))
        BertModel(BertConfig(vocab_size=vocab, max_position_embeddings=positions, **tiny)).save_pretrained(root / name)
    return root


@pytest.fixture(scope="module")
def dpr_spec(models_dir: Path) -> str:
    return f"dpr:{models_dir / 'question'},{models_dir / 'context'}"


@pytest.fixture(scope="module")
def mean_spec(models_dir: Path) -> str:
    return f"mean:{models_dir / 'mean'}"


@pytest.fixture(scope="module")
def dpr(dpr_spec: str) -> Embedder:
    return Embedder(dpr_spec, precision="fp32")


@pytest.fixture(scope="module")
def mean(mean_spec: str) -> Embedder:
    return Embedder(mean_spec, precision="fp32")


class TestSpecs:
    def test_forms(self) -> None:
        assert parse_spec("all-MiniLM-L6-v2") == EmbedderSpec("sentence-transformers", ("all-MiniLM-L6-v2",))
        assert parse_spec("dpr:/m/q,/m/c") == EmbedderSpec("dpr", ("/m/q", "/m/c"))
        assert parse_spec("mean:bert-base-uncased") == EmbedderSpec("mean", ("bert-base-uncased",))

    @pytest.mark.parametrize("spec", ["dpr:only-one", "dpr:a,b,c", "dpr:a,", "mean:", "bm25:x", ""])
    def test_malformed_lists_valid_forms(self, spec: str) -> None:
        with pytest.raises(ValueError, match=r"valid embedder specs: .*dpr:<question encoder.*mean:<model"):
            Embedder(spec)

    def test_existing_dir_with_colon_is_a_path(self, tmp_path: Path) -> None:
        odd = tmp_path / "mean:odd"
        odd.mkdir()
        assert parse_spec(str(odd)).family == "sentence-transformers"


class TestDPR:
    def test_loads_from_local_dirs(self, dpr: Embedder, dpr_spec: str) -> None:
        assert dpr.name == dpr_spec and dpr.family == "dpr" and dpr.preferred_metric == "dot"
        assert dpr.dimension == 32 and dpr.max_seq_length == 512
        assert dpr.count_tokens("annual leave") >= 2

    def test_shapes_unit_vectors_and_norms(self, dpr: Embedder) -> None:
        assert dpr.encode("annual leave").shape == (32,)
        assert dpr.encode_queries(["a", "b", "c"]).shape == (3, 32)
        assert dpr.encode([]).shape == (0, 32) and dpr.encode_queries([]).shape == (0, 32)
        unit, norms = dpr.encode_with_norms(SENTENCES[:4])
        assert unit.dtype == np.float32 and norms.shape == (4,)
        np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
        assert not np.allclose(norms, 1.0)  # DPR does not normalise: raw vectors keep their length
        q_unit, q_norms = dpr.encode_queries_with_norms(SENTENCES[:4])
        np.testing.assert_allclose(np.linalg.norm(q_unit, axis=1), 1.0, atol=1e-5)
        assert not np.allclose(q_norms, 1.0)

    def test_query_and_passage_encoders_differ(self, dpr: Embedder) -> None:
        text = "How many days of annual leave do I get?"
        q, p = dpr.encode_queries(text), dpr.encode(text)
        assert float(q @ p) < 0.99
        np.testing.assert_allclose(dpr.encode(text, kind="query"), q, atol=1e-6)

    def test_order_restored_after_length_sort(self, dpr: Embedder) -> None:
        texts = ["leave", SENTENCES[0] * 3, "remote work", SENTENCES[5]]
        for encode in (dpr.encode, dpr.encode_queries):
            batch = encode(texts)
            single = np.vstack([encode(t) for t in texts])
            np.testing.assert_allclose(batch, single, atol=1e-4)

    def test_long_text_truncated_at_max_length(self, dpr: Embedder) -> None:
        assert dpr.tokenizer(LONG_TEXT, truncation=False)["input_ids"].__len__() > 2 * dpr.max_seq_length
        assert dpr.encode(LONG_TEXT).shape == (32,) and dpr.encode_queries(LONG_TEXT).shape == (32,)

    def test_progress_and_bf16(self, dpr_spec: str, dpr: Embedder) -> None:
        calls: list[tuple[int, int]] = []
        e = Embedder(dpr_spec, batch_size=2, precision="bf16")
        v = e.encode(SENTENCES[:5], progress=lambda d, t: calls.append((d, t)))
        assert calls == [(2, 5), (4, 5), (5, 5)]
        cos = np.sum(v * dpr.encode(SENTENCES[:5]), axis=1)
        assert cos.min() > 0.97

    def test_swapped_pair_is_refused(self, models_dir: Path) -> None:
        with pytest.raises(ModelNotAvailable, match=r"not a usable question encoder.*dpr:<question encoder>"):
            Embedder(f"dpr:{models_dir / 'context'},{models_dir / 'question'}")

    def test_plain_bert_is_not_a_dpr_encoder(self, models_dir: Path) -> None:
        with pytest.raises(ModelNotAvailable, match="weights are missing"):
            Embedder(f"dpr:{models_dir / 'mean'},{models_dir / 'context'}")


class TestMeanPooling:
    def test_loads_from_local_dir(self, mean: Embedder, mean_spec: str) -> None:
        assert mean.name == mean_spec and mean.family == "mean" and mean.preferred_metric == "cosine"
        assert mean.dimension == 32 and mean.max_seq_length == 512

    def test_shapes_unit_vectors_and_norms(self, mean: Embedder) -> None:
        assert mean.encode("leave").shape == (32,) and mean.encode(["a", "b"]).shape == (2, 32)
        unit, norms = mean.encode_with_norms(SENTENCES[:6])
        np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
        assert not np.allclose(norms, 1.0) and len(set(np.round(norms, 4).tolist())) > 1

    def test_queries_and_passages_are_the_same(self, mean: Embedder) -> None:
        q_unit, q_norms = mean.encode_queries_with_norms(SENTENCES[:3])
        p_unit, p_norms = mean.encode_with_norms(SENTENCES[:3])
        np.testing.assert_array_equal(q_unit, p_unit)
        np.testing.assert_array_equal(q_norms, p_norms)

    def test_padding_does_not_change_the_mean(self, mean: Embedder) -> None:
        texts = ["leave", SENTENCES[0] * 4, "remote work", SENTENCES[7]]
        batch = mean.encode(texts)
        single = np.vstack([mean.encode(t) for t in texts])
        np.testing.assert_allclose(batch, single, atol=1e-4)

    def test_truncates_at_the_position_table(self, models_dir: Path) -> None:
        short = Embedder(f"mean:{models_dir / 'short'}", precision="fp32")
        assert short.max_seq_length == 40
        assert short.encode(LONG_TEXT).shape == (32,)  # untruncated, 40 positions would overflow

    def test_matches_sentence_transformers_minilm(self, embedder: Embedder) -> None:
        # all-MiniLM-L6-v2 *is* mean pooling (+ normalisation): the two code paths must agree.
        pooled = Embedder("mean:all-MiniLM-L6-v2", precision="fp32")
        reference = Embedder(precision="fp32")
        texts = ["Annual leave is 20 days.", "A secure VPN connection is required when working from home."]
        cos = np.sum(pooled.encode(texts) * reference.encode(texts), axis=1)
        assert cos.min() > 0.9999
        assert embedder.preferred_metric == "cosine" and embedder.family == "sentence-transformers"


class TestMissingModels:
    @pytest.mark.parametrize("spec", ["mean:nobody/none", "dpr:nobody/question-none,nobody/ctx-none"])
    def test_fails_fast_naming_the_model(self, spec: str) -> None:
        t0 = time.monotonic()
        with pytest.raises(ModelNotAvailable, match=r"'nobody/[a-z-]+' is not on this machine.*RAG_ALLOW_DOWNLOADS=1"):
            Embedder(spec)
        assert time.monotonic() - t0 < 10


class TestEngineWithDPR:
    def test_ingest_search_and_recorded_spec(self, tmp_path: Path, dpr_spec: str) -> None:
        settings = Settings(data_dir=tmp_path / "kb", precision="fp32", metric="cosine")
        engine = Engine(settings, embedder_spec=dpr_spec)
        doc = tmp_path / "policy.txt"
        doc.write_text(DOCUMENT)
        result = engine.ingest_paths([doc])[0]
        assert result.status == "added" and result.chunks >= 1
        assert engine.kb.embedder_name == dpr_spec and engine.kb.dimension == 32
        hits = engine.search("How many days of annual leave?", k=3)
        assert 1 <= len(hits) <= 3 and hits[0].document == "policy.txt"
        dot_hits = engine.search("How many days of annual leave?", k=3, metric="dot")
        assert dot_hits and all(h.document == "policy.txt" for h in dot_hits)

        # A fresh engine without an explicit embedder loads the recorded spec, and encodes the query
        # with the question encoder: the cosine scores are those of the question vector, not the passage one.
        reopened = Engine(Settings(data_dir=tmp_path / "kb", precision="fp32", metric="cosine"))
        assert reopened.embedder_spec == dpr_spec and reopened.embedder.family == "dpr"
        assert reopened.default_metric == "dot"  # DPR ranks by dot product unless told otherwise
        query = "Is a VPN required when working from home?"
        hits = reopened.search(query, k=3, metric="cosine")
        ids, unit = reopened.kb.vectors()
        row = {int(i): unit[j] for j, i in enumerate(ids)}
        q_vec, p_vec = reopened.embedder.encode_queries(query), reopened.embedder.encode(query)
        for h in hits:
            assert h.score == pytest.approx(float(row[h.chunk_id] @ q_vec), abs=1e-4)
        assert any(abs(h.score - float(row[h.chunk_id] @ p_vec)) > 1e-3 for h in hits)

        with pytest.raises(EmbedderMismatch) as err:
            Engine(Settings(data_dir=tmp_path / "kb"), embedder_spec="all-MiniLM-L6-v2")
        assert dpr_spec in str(err.value) and "all-MiniLM-L6-v2" in str(err.value)


class TestCLI:
    def test_ingest_with_mean_embedder_then_search(
        self, tmp_path: Path, mean_spec: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from rag_core.__main__ import main

        doc = tmp_path / "policy.md"
        doc.write_text(DOCUMENT)
        data = str(tmp_path / "kb")
        assert main(["ingest", str(doc), "--embedder", mean_spec, "--data-dir", data, "--json"]) == 0
        line = json.loads(capsys.readouterr().out.strip())
        assert line["status"] == "added" and line["chunks"] >= 1
        assert main(["search", "remote work VPN", "--data-dir", data, "--json", "--k", "2"]) == 0
        out = json.loads(capsys.readouterr().out.strip())
        assert out["query"] == "remote work VPN" and 1 <= len(out["hits"]) <= 2
        assert out["hits"][0]["document"] == "policy.md"
        # Another embedder on this KB is a configuration error (exit 2) naming both models.
        assert main(["ingest", str(doc), "--embedder", "all-MiniLM-L6-v2", "--data-dir", data, "--json"]) == 2
        assert mean_spec in capsys.readouterr().err
