"""rag_core.embedding.backends: the DPR dual encoder and mean pooling on tiny random models, and the
engine and CLI running on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag_core.config import Settings
from rag_core.embedding import Embedder, ModelNotAvailable
from rag_core.engine import Engine
from rag_core.store import EmbedderMismatch
from tests.embedding.conftest import DOCUMENT, LONG_TEXT, SENTENCES


class TestDPR:
    def test_loads_from_local_dirs(self, dpr: Embedder, dpr_spec: str) -> None:
        assert dpr.name == dpr_spec and dpr.family == "dpr" and dpr.preferred_metric == "dot"
        assert dpr.dimension == 32 and dpr.max_seq_length == 512 and dpr.runtime == "torch"
        assert dpr.count_tokens("annual leave") >= 2

    def test_shapes_unit_vectors_and_norms(self, dpr: Embedder) -> None:
        assert dpr.encode_passage("annual leave").shape == (32,)
        assert dpr.encode_query(["a", "b", "c"]).shape == (3, 32)
        assert dpr.encode_passage([]).shape == (0, 32) and dpr.encode_query([]).shape == (0, 32)
        unit, norms = dpr.encode_passage_with_norms(SENTENCES[:4])
        assert unit.dtype == np.float32 and norms.shape == (4,)
        np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
        assert not np.allclose(norms, 1.0)  # DPR does not normalise: raw vectors keep their length
        q_unit, q_norms = dpr.encode_query_with_norms(SENTENCES[:4])
        np.testing.assert_allclose(np.linalg.norm(q_unit, axis=1), 1.0, atol=1e-5)
        assert not np.allclose(q_norms, 1.0)

    def test_query_and_passage_encoders_differ(self, dpr: Embedder) -> None:
        text = "How many days of annual leave do I get?"
        q, p = dpr.encode_query(text), dpr.encode_passage(text)
        assert float(q @ p) < 0.99
        np.testing.assert_allclose(dpr.encode_query([text])[0], q, atol=1e-6)

    def test_order_restored_after_length_sort(self, dpr: Embedder) -> None:
        texts = ["leave", SENTENCES[0] * 3, "remote work", SENTENCES[5]]
        for encode in (dpr.encode_passage, dpr.encode_query):
            batch = encode(texts)
            single = np.vstack([encode(t) for t in texts])
            np.testing.assert_allclose(batch, single, atol=1e-4)

    def test_long_text_truncated_at_max_length(self, dpr: Embedder) -> None:
        assert dpr.tokenizer(LONG_TEXT, truncation=False)["input_ids"].__len__() > 2 * dpr.max_seq_length
        assert dpr.encode_passage(LONG_TEXT).shape == (32,) and dpr.encode_query(LONG_TEXT).shape == (32,)

    def test_progress_and_bf16(self, dpr_spec: str, dpr: Embedder) -> None:
        calls: list[tuple[int, int]] = []
        e = Embedder(dpr_spec, batch_size=2, precision="bf16")
        v = e.encode_passage(SENTENCES[:5], progress=lambda d, t: calls.append((d, t)))
        assert calls == [(2, 5), (4, 5), (5, 5)]
        cos = np.sum(v * dpr.encode_passage(SENTENCES[:5]), axis=1)
        assert cos.min() > 0.97

    def test_swapped_pair_is_refused(self, models_dir: Path) -> None:
        with pytest.raises(ModelNotAvailable, match=r"not a usable question encoder.*dpr:<question encoder>"):
            Embedder(f"dpr:{models_dir / 'context'},{models_dir / 'question'}")

    def test_plain_bert_is_not_a_dpr_encoder(self, models_dir: Path) -> None:
        with pytest.raises(ModelNotAvailable, match="weights are missing"):
            Embedder(f"dpr:{models_dir / 'mean'},{models_dir / 'context'}")

    def test_dpr_encoder_is_not_a_mean_model(self, models_dir: Path) -> None:
        with pytest.raises(ModelNotAvailable, match="is a DPR encoder|weights are missing"):
            Embedder(f"mean:{models_dir / 'context'}")


class TestMeanPooling:
    def test_loads_from_local_dir(self, mean: Embedder, mean_spec: str) -> None:
        assert mean.name == mean_spec and mean.family == "mean" and mean.preferred_metric == "cosine"
        assert mean.dimension == 32 and mean.max_seq_length == 512

    def test_shapes_unit_vectors_and_norms(self, mean: Embedder) -> None:
        assert mean.encode_passage("leave").shape == (32,) and mean.encode_passage(["a", "b"]).shape == (2, 32)
        unit, norms = mean.encode_passage_with_norms(SENTENCES[:6])
        np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
        assert not np.allclose(norms, 1.0) and len(set(np.round(norms, 4).tolist())) > 1

    def test_queries_and_passages_are_the_same(self, mean: Embedder) -> None:
        q_unit, q_norms = mean.encode_query_with_norms(SENTENCES[:3])
        p_unit, p_norms = mean.encode_passage_with_norms(SENTENCES[:3])
        np.testing.assert_array_equal(q_unit, p_unit)
        np.testing.assert_array_equal(q_norms, p_norms)

    def test_padding_does_not_change_the_mean(self, mean: Embedder) -> None:
        texts = ["leave", SENTENCES[0] * 4, "remote work", SENTENCES[7]]
        batch = mean.encode_passage(texts)
        single = np.vstack([mean.encode_passage(t) for t in texts])
        np.testing.assert_allclose(batch, single, atol=1e-4)

    def test_truncates_at_the_position_table(self, models_dir: Path) -> None:
        short = Embedder(f"mean:{models_dir / 'short'}", precision="fp32")
        assert short.max_seq_length == 40
        assert short.encode_passage(LONG_TEXT).shape == (32,)  # untruncated, 40 positions would overflow

    def test_matches_sentence_transformers_minilm(self, embedder: Embedder) -> None:
        # all-MiniLM-L6-v2 *is* mean pooling (+ normalisation): the two code paths must agree.
        pooled = Embedder("mean:all-MiniLM-L6-v2", precision="fp32")
        reference = Embedder(precision="fp32")
        texts = ["Annual leave is 20 days.", "A secure VPN connection is required when working from home."]
        cos = np.sum(pooled.encode_passage(texts) * reference.encode_passage(texts), axis=1)
        assert cos.min() > 0.9999
        assert embedder.preferred_metric == "cosine" and embedder.family == "sentence-transformers"


class TestEngineWithDPR:
    def test_ingest_search_and_recorded_spec(self, tmp_path: Path, dpr_spec: str) -> None:
        settings = Settings(data_dir=tmp_path / "kb", precision="fp32", metric="cosine")
        engine = Engine(settings, embedder_spec=dpr_spec)
        doc = tmp_path / "policy.txt"
        doc.write_text(DOCUMENT)
        result = engine.ingest_paths([doc])[0]
        assert result.status == "added" and result.chunks >= 1
        assert engine.store.embedder_name == dpr_spec and engine.store.dimension == 32
        hits = engine.search("How many days of annual leave?", k=3)
        assert 1 <= len(hits) <= 3 and hits[0].document == "policy.txt"
        dot_hits = engine.search("How many days of annual leave?", k=3, metric="dot")
        assert dot_hits and all(h.document == "policy.txt" for h in dot_hits)

        # A fresh engine without an explicit embedder loads the recorded spec, and encodes the query
        # with the question encoder: the cosine scores are those of the question vector, not the passage one.
        reopened = Engine(Settings(data_dir=tmp_path / "kb", precision="fp32", metric="cosine"))
        assert reopened.embedder_spec == dpr_spec and reopened.embedder.family == "dpr"
        assert reopened.searcher.default_metric == "dot"  # DPR ranks by dot product unless told otherwise
        query = "Is a VPN required when working from home?"
        hits = reopened.search(query, k=3, metric="cosine")
        ids, unit = reopened.store.vectors()
        row = {int(i): unit[j] for j, i in enumerate(ids)}
        q_vec, p_vec = reopened.embedder.encode_query(query), reopened.embedder.encode_passage(query)
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
