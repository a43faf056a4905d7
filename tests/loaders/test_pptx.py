"""rag_core.loaders.pptx: one slide one page cited as "slide N", the title as a heading, shapes in reading
order (groups included), tables as pipe rows under their header, speaker notes kept."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from pptx import Presentation
from pptx.presentation import Presentation as PptxPresentation
from pptx.util import Inches

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.loaders import (
    SUPPORTED_SUFFIXES,
    DamagedFile,
    LegacyPowerPointFile,
    NoExtractableText,
    TooManyPages,
    is_pptx,
    load_bytes,
)
from rag_core.structure import HeadingPath
from rag_core.types import Hit

TITLE_AND_CONTENT, TITLE_ONLY, BLANK = 1, 5, 6  # the default template's layouts


def pptx_bytes(build: Callable[[PptxPresentation], object]) -> bytes:
    presentation = Presentation()
    build(presentation)
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def text_slide(presentation: PptxPresentation, text: str) -> None:
    """A slide holding one text box."""
    slide = presentation.slides.add_slide(presentation.slide_layouts[BLANK])
    slide.shapes.add_textbox(Inches(1), Inches(1), Inches(6), Inches(1)).text_frame.text = text


def leave_deck(presentation: PptxPresentation) -> None:
    """Bullets with notes, a picture-only (blank) slide, and a table slide with a grouped text box."""
    slide = presentation.slides.add_slide(presentation.slide_layouts[TITLE_AND_CONTENT])
    assert slide.shapes.title is not None
    slide.shapes.title.text = "Annual leave"
    body = slide.placeholders[1].text_frame  # type: ignore[attr-defined]
    body.text = "Full-time staff get 25 days"
    body.add_paragraph().text = "Book leave in the HR portal"
    slide.notes_slide.notes_text_frame.text = "Part-time staff get a pro-rata share of the 25 days."  # type: ignore[union-attr]
    presentation.slides.add_slide(presentation.slide_layouts[BLANK])
    slide = presentation.slides.add_slide(presentation.slide_layouts[TITLE_ONLY])
    assert slide.shapes.title is not None
    slide.shapes.title.text = "Leave entitlement by service"
    group = slide.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(6), Inches(4), Inches(1)).text_frame.text = "Figures from 2025."
    table = slide.shapes.add_table(4, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate((("Years of service", "Days"), ("1", "20"), ("5", "25"), ("10", "30"))):
        for c, value in enumerate(row):
            table.cell(r, c).text = value


class TestText:
    def test_one_page_per_slide_with_text_labelled_by_number(self) -> None:
        loaded = load_bytes(pptx_bytes(leave_deck), "leave.pptx")
        assert loaded.kind == "pptx" and loaded.page_count == 3
        assert [(p.number, p.label) for p in loaded.pages] == [(1, "slide 1"), (3, "slide 3")]

    def test_title_bullets_and_notes(self) -> None:
        text = load_bytes(pptx_bytes(leave_deck), "leave.pptx").pages[0].text
        assert text == (
            "# Annual leave\n\n- Full-time staff get 25 days\n- Book leave in the HR portal\n\n"
            "## Notes\nPart-time staff get a pro-rata share of the 25 days."
        )

    def test_table_and_group_in_reading_order(self) -> None:
        text = load_bytes(pptx_bytes(leave_deck), "leave.pptx").pages[1].text
        assert "| Years of service | Days |\n| --- | --- |\n| 1 | 20 |\n| 5 | 25 |\n| 10 | 30 |" in text
        # the group was drawn first but sits below the table: read after it
        assert text.startswith("# Leave entitlement by service") and text.index("| 10 | 30 |") < text.index(
            "Figures from"
        )

    def test_title_is_the_heading_path(self) -> None:
        pages = load_bytes(pptx_bytes(leave_deck), "leave.pptx").pages
        path = HeadingPath(pages).at(pages[1].number, pages[1].text.index("| 5 | 25 |"))
        assert path == ["Leave entitlement by service"]

    def test_max_pages_counts_slides(self) -> None:
        with pytest.raises(TooManyPages, match="too many slides: 3"):
            load_bytes(pptx_bytes(leave_deck), "leave.pptx", max_pages=2)


class TestDetection:
    def test_detected_by_bytes_not_extension(self) -> None:
        data = pptx_bytes(leave_deck)
        assert load_bytes(data, "leave.xlsx").kind == "pptx" and load_bytes(data, "leave").kind == "pptx"
        assert is_pptx(data) and not is_pptx(b"PK\x03\x04 not a zip")

    def test_in_the_supported_list(self) -> None:
        assert ".pptx" in SUPPORTED_SUFFIXES and ".ppt" not in SUPPORTED_SUFFIXES

    def test_legacy_ppt_gets_the_way_out(self) -> None:
        ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 200 + "PowerPoint Document".encode("utf-16-le")
        message = r"legacy PowerPoint \.ppt file: save it as \.pptx or PDF"
        with pytest.raises(LegacyPowerPointFile, match=message):
            load_bytes(ole2, "deck.ppt")
        with pytest.raises(LegacyPowerPointFile, match=message):
            load_bytes(ole2, "deck.doc")  # detected from the bytes, not the name
        with pytest.raises(LegacyPowerPointFile, match=message):
            load_bytes(b"bytes of a .ppt we cannot place", "old.ppt")


class TestFailures:
    def test_truncated_is_damaged(self) -> None:
        data = pptx_bytes(leave_deck)
        with pytest.raises(DamagedFile, match="damaged PowerPoint file"):
            load_bytes(data[: len(data) // 2], "leave.pptx")

    def test_broken_slide_xml_is_damaged(self) -> None:
        source = zipfile.ZipFile(io.BytesIO(pptx_bytes(leave_deck)))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for item in source.infolist():
                body = b"<p:sld><unclosed" if item.filename == "ppt/slides/slide1.xml" else source.read(item)
                archive.writestr(item, body)
        with pytest.raises(DamagedFile, match="damaged PowerPoint file.*re-save it in PowerPoint"):
            load_bytes(out.getvalue(), "leave.pptx")

    def test_only_pictures_has_no_text(self) -> None:
        def build(presentation: PptxPresentation) -> None:
            presentation.slides.add_slide(presentation.slide_layouts[BLANK])

        with pytest.raises(NoExtractableText, match="no slide holds text"):
            load_bytes(pptx_bytes(build), "pictures.pptx")


class TestSearch:
    """A deck through the engine: notes and table rows found, cited by slide."""

    @pytest.fixture
    def engine(self, tmp_path: Path, embedder: Embedder) -> Engine:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        result = engine.ingest_bytes("leave.pptx", pptx_bytes(leave_deck))
        assert result.status == "added", result.error
        assert result.pages == 3
        assert [p.suffix for p in (tmp_path / "kb" / "originals").iterdir()] == [".pptx"]  # kept as what it is
        return engine

    def test_table_row_answered_with_its_header_and_cited_by_slide(self, engine: Engine) -> None:
        question = "How many days of leave after 10 years of service?"
        top = engine.search(question, k=3)[0]
        assert "| 10 | 30 |" in top.text and "Years of service" in top.context
        assert top.page_cited == "slide 3"
        answer = engine.answer(question)
        assert answer.grounded and "30" in answer.text

    def test_notes_are_searched(self, engine: Engine) -> None:
        top = engine.search("how much leave do part-time staff get", k=3)[0]
        assert "pro-rata" in top.text and top.page_cited == "slide 1"

    def test_slide_is_cited_as_a_slide(self) -> None:
        assert Hit(1, 0.7, "d.pptx", "d", 4, 1, "text", page_label="slide 4").page_cited == "slide 4"
