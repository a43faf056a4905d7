"""rag_core.lexical and hybrid retrieval: BM25 persistence per generation, deletes, exact-term wins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.lexical import LexicalIndex, expand_query, tokenize, top_k
from rag_core.store import LocalStore

CLAUSES = "\n\n".join(
    f"Section 2635.20{i} covers gifts from outside sources and how their market value is assessed by the "
    f"agency ethics official."
    for i in range(1, 10)
)


@pytest.fixture
def engine(tmp_path: Path, embedder: Embedder) -> Engine:
    e = Engine(Settings(data_dir=tmp_path / "kb", chunk_tokens=32, chunk_overlap=0), embedder=embedder)
    r1 = e.ingest_bytes("clauses.txt", CLAUSES.encode())
    r2 = e.ingest_bytes("leave.txt", b"Bereavement leave: employees may take five days off when a close relative dies.")
    assert r1.status == r2.status == "added"
    return e


class TestTokenize:
    def test_stems_drops_stopwords_keeps_clause_numbers(self) -> None:
        assert tokenize(["The reviews of Section 18.3 and $20 gifts"]) == [["review", "section", "18.3", "20", "gift"]]


class TestLexicalIndex:
    def test_persisted_per_generation_and_reloaded(self, engine: Engine) -> None:
        generation = engine.store.generation()
        assert (engine.store.cache_dir / f"bm25-{generation}" / "ids.npy").exists()
        fresh = LexicalIndex(LocalStore(engine.store.cache_dir))
        first = fresh.search(["2635.207"], 3)[0]
        assert first and engine.store.chunks_by_ids([first[0][1]])[first[0][1]].text.startswith("Section 2635.207 ")
        assert fresh.search(["2635.207"], 3) == engine.searcher.lexical.search(["2635.207"], 3)

    def test_ids_match_the_faiss_ids(self, engine: Engine) -> None:
        _, ids, _ = engine.store.chunk_texts()
        found = {cid for q in engine.searcher.lexical.search(["gifts", "bereavement"], 50) for _, cid in q}
        assert found and found <= set(ids)

    def test_delete_removes_from_bm25(self, engine: Engine) -> None:
        assert engine.searcher.lexical.search(["bereavement"], 5)[0]
        engine.delete("leave.txt")
        assert engine.searcher.lexical.search(["bereavement"], 5) == [[]]
        assert LexicalIndex(engine.store).search(["bereavement"], 5) == [[]]  # from disk too
        old = [p.name for p in engine.store.cache_dir.glob("bm25-*")]
        assert f"bm25-{engine.store.generation()}" in old and len(old) <= 2

    def test_rebuilds_when_cache_missing_or_damaged(self, engine: Engine) -> None:
        path = engine.store.cache_dir / f"bm25-{engine.store.generation()}"
        (path / "ids.npy").write_bytes(b"garbage")
        assert LexicalIndex(engine.store).search(["bereavement"], 1)[0]

    def test_unknown_words_and_empty_kb(self, engine: Engine, tmp_path: Path) -> None:
        assert engine.searcher.lexical.search(["zzzzqqq the of"], 5) == [[]]
        assert LexicalIndex(LocalStore(tmp_path / "empty")).search(["gifts"], 5) == [[]]


class TestTopK:
    """`top_k` sums bm25s's precomputed score columns itself; it must rank exactly as `BM25.retrieve`."""

    def test_same_scores_and_ranks_as_bm25s(self) -> None:
        import bm25s

        rng = np.random.default_rng(3)
        words = [f"w{i}" for i in range(60)]
        # Zipf-like word use, so some columns are long and most queries share words with many chunks.
        p = 1 / np.arange(1, 61)
        corpus = [list(rng.choice(words, size=int(rng.integers(3, 30)), p=p / p.sum())) for _ in range(400)]
        retriever = bm25s.BM25(k1=1.5, b=0.75)
        retriever.index(bm25s.tokenization.Tokenized(*_ids(corpus)), show_progress=False)
        for _ in range(50):
            query = list(rng.choice(words, size=int(rng.integers(1, 6))))
            ids = [retriever.vocab_dict[w] for w in query if w in retriever.vocab_dict]
            if not ids:
                continue
            rows, scores = top_k(retriever.scores, ids, 10)
            want_rows, want_scores = retriever.retrieve([ids], k=10, show_progress=False, n_threads=1)
            want = {int(r): float(s) for r, s in zip(want_rows[0], want_scores[0], strict=True) if s > 0}
            assert np.allclose(scores[: len(want)], sorted(want.values(), reverse=True), rtol=1e-5)
            assert list(scores) == sorted(scores, reverse=True) and (scores > 0).all()
            untied = [r for r in rows.tolist() if list(np.isclose(scores, want.get(r, -1.0))).count(True) == 1]
            assert all(r in want for r in untied)  # the same chunks, up to the order of equal scores

    def test_one_token_and_fewer_matches_than_k(self) -> None:
        import bm25s

        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenization.Tokenized(*_ids([["leave", "pay"], ["pay"], ["desk"]])), show_progress=False)
        rows, scores = top_k(retriever.scores, [retriever.vocab_dict["leave"]], 5)
        assert rows.tolist() == [0] and scores[0] > 0
        rows, _ = top_k(retriever.scores, [retriever.vocab_dict["pay"], retriever.vocab_dict["leave"]], 5)
        assert rows.tolist() == [0, 1]  # both words beat one; the desk chunk shares none


def _ids(corpus: list[list[str]]) -> tuple[list[list[int]], dict[str, int]]:
    vocab: dict[str, int] = {}
    return [[vocab.setdefault(w, len(vocab)) for w in doc] for doc in corpus], vocab


class TestNumbers:
    """A question's numbers are searched in their other spellings: "10 years" finds the row "Tenth … 24"."""

    def test_ordinal_row_found_from_digits(self, tmp_path: Path, embedder: Embedder) -> None:
        e = Engine(Settings(data_dir=tmp_path / "kb", chunk_tokens=32, chunk_overlap=0), embedder=embedder)
        rows = "\n".join(f"{word} ........ {days}" for word, days in [("Eighth", 22), ("Ninth", 23), ("Tenth", 24)])
        text = (
            "Vacation Years Workdays\n" + rows + "\n\n"
            "Each vacation year, in the year's first month, employees plan the year and its vacation."
        )
        assert e.ingest_bytes("agreement.txt", text.encode()).status == "added"
        query = "vacation in my 10th year"
        (found,) = e.searcher.lexical.search([query], 3)
        top = e.store.chunks_by_ids([found[0][1]])[found[0][1]]
        assert "Tenth … 24" in top.text
        assert expand_query(query) == "vacation in my 10th year 10 ten tenth"
        assert expand_query("my 2 weeks") == "my 2 weeks two second 2nd"


class TestHybrid:
    def test_clause_number_found_by_hybrid_missed_by_dense(self, engine: Engine) -> None:
        query = "What does section 2635.207 cover?"
        dense = engine.search(query, k=3, mode="dense")
        hybrid = engine.search(query, k=3, mode="hybrid")
        bm25 = engine.search(query, k=3, mode="bm25")
        assert not dense[0].text.startswith("Section 2635.207 ")  # all nine read alike to the embedder
        assert hybrid[0].text.startswith("Section 2635.207 ") and bm25[0].text.startswith("Section 2635.207 ")
        top = hybrid[0]
        assert top.bm25_rank == 1 and top.bm25_score and top.fused_score is not None
        assert 0 < top.score <= 1  # `score` stays the cosine similarity in every mode

    def test_paraphrase_found_by_hybrid(self, engine: Engine) -> None:
        hits = engine.search("days off when a relative dies", k=1, mode="hybrid")
        assert hits[0].document == "leave.txt"

    def test_rrf_fusion_setting(self, engine: Engine, embedder: Embedder) -> None:
        rrf = Engine(engine.settings.replace(fusion="rrf", rrf_k=10.0, dense_weight=1.0), embedder=embedder)
        hits = rrf.search("What does section 2635.207 cover?", k=3, mode="hybrid")
        assert any(h.text.startswith("Section 2635.207 ") for h in hits)

    def test_unknown_mode(self, engine: Engine) -> None:
        with pytest.raises(ValueError, match="dense"):
            engine.search("q", mode="sparse")
