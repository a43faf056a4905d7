"""rag_core.chunking: token budgets in the embedder's own word pieces, spans, overlap, pages."""

from __future__ import annotations

import itertools
import logging

import pytest

from rag_core.chunking import Chunker, split_sentences
from rag_core.embedding import Embedder
from rag_core.types import Page

SENTENCES = " ".join(f"Sentence number {i} says employees accrue {i} days of leave." for i in range(60))


class TestSplitSentences:
    def test_spans_cover_sentences(self) -> None:
        text = "Leave is paid. Ask HR! Why? Because.\n\nNew paragraph without stop\n- bullet one\n- bullet two"
        parts = [text[a:b] for a, b in split_sentences(text)]
        assert parts == [
            "Leave is paid.",
            "Ask HR!",
            "Why?",
            "Because.",
            "New paragraph without stop",
            "- bullet one",
            "- bullet two",
        ]

    def test_empty(self) -> None:
        assert split_sentences("   ") == []


class TestChunker:
    def test_validation_names_values(self, embedder: Embedder) -> None:
        with pytest.raises(ValueError, match="overlap=50, max_tokens=50"):
            Chunker(embedder.tokenizer, 50, 50)
        with pytest.raises(ValueError, match="must be <= 254"):
            Chunker(embedder.tokenizer, 300, 0, model_max_tokens=256)

    @pytest.mark.parametrize(("size", "overlap"), [(32, 0), (64, 16), (128, 32), (254, 50)])
    def test_every_chunk_fits_and_matches_its_span(self, embedder: Embedder, size: int, overlap: int) -> None:
        chunker = Chunker(embedder.tokenizer, size, overlap, embedder.max_seq_length)
        chunks = chunker.chunk_text(SENTENCES, page=3)
        assert len(chunks) > 1
        for c in chunks:
            assert c.page == 3
            assert SENTENCES[c.start : c.end] == c.text
            assert embedder.count_tokens(c.text) <= size
            assert c.tokens == embedder.count_tokens(c.text)

    def test_chunks_cover_all_text_in_order(self, embedder: Embedder) -> None:
        chunks = Chunker(embedder.tokenizer, 40, 10).chunk_text(SENTENCES)
        assert chunks[0].start == 0 and chunks[-1].end == len(SENTENCES)
        for a, b in itertools.pairwise(chunks):
            assert SENTENCES[a.end : b.start].strip() == ""  # no text lost between chunks
            assert b.start > a.start  # always advances

    def test_overlap_repeats_trailing_sentences(self, embedder: Embedder) -> None:
        with_overlap = Chunker(embedder.tokenizer, 64, 20).chunk_text(SENTENCES)
        without = Chunker(embedder.tokenizer, 64, 0).chunk_text(SENTENCES)
        assert all(b.start == a.end + 1 for a, b in itertools.pairwise(without))
        assert any(b.start < a.end for a, b in itertools.pairwise(with_overlap))
        assert len(with_overlap) > len(without)

    def test_cuts_at_sentence_boundaries(self, embedder: Embedder) -> None:
        for c in Chunker(embedder.tokenizer, 64, 16).chunk_text(SENTENCES):
            assert c.text.startswith("Sentence") and c.text.endswith(".")

    def test_long_sentence_without_punctuation_is_split_to_fit(self, embedder: Embedder) -> None:
        text = " ".join(f"item{i} value" for i in range(400))  # one "sentence", ~1600 word pieces
        chunks = Chunker(embedder.tokenizer, 100, 20).chunk_text(text)
        assert len(chunks) > 5
        assert all(embedder.count_tokens(c.text) <= 100 for c in chunks)
        assert all(text[c.start : c.end] == c.text for c in chunks)
        assert chunks[-1].end == len(text)

    def test_chunks_never_span_pages(self, embedder: Embedder) -> None:
        pages = [Page(1, "Short page one."), Page(4, SENTENCES)]
        chunks = Chunker(embedder.tokenizer, 64, 16).chunk_pages(pages)
        assert chunks[0].page == 1 and chunks[0].text == "Short page one."
        assert {c.page for c in chunks[1:]} == {4}

    def test_chunks_carry_title_and_heading_path_across_pages(self, embedder: Embedder) -> None:
        pages = [
            Page(55, "ARTICLE 18 - ANNUAL VACATIONS\n18.1 Annual Vacation Entitlement\nFirst to Second ..... 15"),
            Page(56, "Tenth ..... 24\nEleventh ..... 25"),
        ]
        chunks = Chunker(embedder.tokenizer, 64, 16).chunk_pages(pages, "bcgeu agreement")
        continued = next(c for c in chunks if c.page == 56)
        assert continued.context == "bcgeu agreement > ARTICLE 18 - ANNUAL VACATIONS > 18.1 Annual Vacation Entitlement"
        assert continued.text.startswith("Tenth ..... 24")  # the text users see stays the page's own
        assert all(c.context == "" for c in Chunker(embedder.tokenizer, 64, 16).chunk_pages(pages))


class TestTables:
    """Table rows are never cut in two, and a chunk holding rows is indexed with their column headers."""

    ROWS = "\n".join(f"Year {i} of service {'…'} {i + 14} workdays" for i in range(1, 41))
    PAGE = f"Vacation is earned as follows:\nVacation Years Workdays\n{ROWS}"

    def test_splitting_keeps_rows_whole(self) -> None:
        text = "Leave: as follows.\nYears Days\nFirst to Second … 15\nThird: see note … 16\nNext."
        parts = [text[a:b] for a, b in split_sentences(text)]
        assert "Third: see note … 16" in parts  # the colon inside a row does not cut it

    def test_chunks_never_split_a_row_and_carry_its_header(self, embedder: Embedder) -> None:
        chunks = Chunker(embedder.tokenizer, 40, 10).chunk_pages([Page(56, self.PAGE)], "bcgeu agreement")
        rows = set(self.ROWS.split("\n"))
        assert len(chunks) > 3
        for c in chunks:
            lines = c.text.split("\n")
            assert all(line in rows for line in lines if line.startswith("Year ")), c.text
            assert self.PAGE[c.start : c.end] == c.text  # the shown text stays the page's own
            if any(line in rows for line in lines):
                assert c.context.endswith("\nVacation Years Workdays")

    def test_header_carried_across_a_page_break(self, embedder: Embedder) -> None:
        pages = [
            Page(55, "AGREEMENT Page 44\n\nText of clause 17."),
            Page(
                56,
                "AGREEMENT Page 45\n\nARTICLE 18 - ANNUAL VACATIONS\nas follows:\nVacation Years Workdays\nTenth … 24",
            ),
            Page(57, "AGREEMENT Page 46\n\nSixteenth to eighteenth … 28\nNineteenth … 29\n(c) Conversion of hours."),
        ]
        chunks = Chunker(embedder.tokenizer, 64, 0).chunk_pages(pages, "bcgeu")
        continued = next(c for c in chunks if c.page == 57)
        assert continued.context == "bcgeu > ARTICLE 18 - ANNUAL VACATIONS\nVacation Years Workdays"
        assert continued.text.startswith("AGREEMENT Page 46")  # cited page and shown text unchanged
        assert all(c.context == "" for c in Chunker(embedder.tokenizer, 64, 0).chunk_pages(pages))


class TestTokenizerWarning:
    """Sentences are tokenized only to be counted and cut, so the tokenizer's "longer than the maximum
    sequence length" warning is turned off per call (verbose=False), not by a global logger level."""

    def test_no_sequence_length_warning(self, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
        tokenizer = embedder.tokenizer
        # The tokenizer warns once per instance; forget an earlier warning so this call could warn again.
        monkeypatch.setattr(tokenizer, "deprecation_warnings", {}, raising=False)
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        log = logging.getLogger("transformers.tokenization_utils_base")
        level = log.level
        log.addHandler(handler)
        try:
            text = " ".join(f"item{i} value" for i in range(400))  # one sentence, far past the model's 256
            assert len(Chunker(tokenizer, 100, 20).chunk_text(text)) > 5
        finally:
            log.removeHandler(handler)
        assert not [r for r in records if "maximum sequence length" in r.getMessage()]
        assert log.level == level

    def test_chunker_asks_for_no_warnings(self, embedder: Embedder) -> None:
        calls: list[dict[str, object]] = []

        def spy(text: list[str], **kwargs: object) -> object:
            calls.append(kwargs)
            return embedder.tokenizer(text, **kwargs)

        Chunker(spy, 64, 16).chunk_text(SENTENCES)
        assert calls and all(c.get("verbose") is False for c in calls)
