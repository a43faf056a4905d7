"""rag_core.loaders.docx: Word files read in body order, headings, lists and table rows kept, headers and
footers left out, pages where the author broke them and heading sections otherwise."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.text import WD_BREAK
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls
from docx.text.paragraph import Paragraph

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.loaders import (
    SUPPORTED_SUFFIXES,
    DamagedFile,
    LegacyWordFile,
    NoExtractableText,
    PasswordRequired,
    TooManyPages,
    is_docx,
    load_bytes,
)
from rag_core.loaders.docx import MAX_BODY_XML_BYTES, format_number
from rag_core.structure import HeadingPath
from rag_core.types import Hit

ENTITLEMENT = [("Years of service", "Days of annual leave"), ("1", "20"), ("5", "25"), ("10", "30")]


def docx_bytes(build: Callable[[DocxDocument], object]) -> bytes:
    document = Document()
    build(document)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def add_table(document: DocxDocument, rows: Sequence[tuple[str, ...]]) -> None:
    table = document.add_table(rows=len(rows), cols=len(rows[0]))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value


def handbook(document: DocxDocument) -> None:
    """A small handbook without page breaks: a title, two top-level sections, a table, lists, a running
    header and footer."""
    document.sections[0].header.paragraphs[0].text = "ACME CONFIDENTIAL DRAFT"
    document.sections[0].footer.paragraphs[0].text = "Printed copies are uncontrolled"
    document.add_heading("Employee Handbook", 0)
    document.add_paragraph("This handbook applies to every employee of Acme Ltd.")
    document.add_heading("Annual leave", 1)
    document.add_paragraph("Annual leave grows with years of service, as the table shows.")
    add_table(document, ENTITLEMENT)
    document.add_paragraph("Leave is booked in the HR portal.")
    document.add_heading("Sick leave", 1)
    document.add_heading("Reporting an absence", 2)
    document.add_paragraph("Phone your manager before 9am.", style="List Bullet")
    document.add_paragraph("Send a fit note after seven days.", style="List Number")


class TestText:
    def test_headings_lists_and_table_rows(self) -> None:
        loaded = load_bytes(docx_bytes(handbook), "handbook.docx")
        text = "\n".join(p.text for p in loaded.pages)
        assert loaded.kind == "docx"
        assert "# Employee Handbook" in text and "# Annual leave" in text and "## Reporting an absence" in text
        assert "- Phone your manager before 9am." in text and "- 1. Send a fit note after seven days." in text
        assert "| Years of service | Days of annual leave |\n| --- | --- |\n| 1 | 20 |\n| 5 | 25 |" in text

    def test_body_order_is_kept(self) -> None:
        text = "\n".join(p.text for p in load_bytes(docx_bytes(handbook), "h.docx").pages)
        positions = [text.index(s) for s in ("grows with years", "| 5 | 25 |", "booked in the HR portal")]
        assert positions == sorted(positions)

    def test_headers_and_footers_left_out(self) -> None:
        text = "\n".join(p.text for p in load_bytes(docx_bytes(handbook), "h.docx").pages)
        assert "CONFIDENTIAL" not in text and "uncontrolled" not in text

    def test_merged_cells_kept_once_and_pipes_in_cells_escaped(self) -> None:
        def build(document: DocxDocument) -> None:
            table = document.add_table(rows=2, cols=3)
            table.cell(0, 0).merge(table.cell(0, 1)).text = "Grade"
            table.cell(0, 2).text = "Rate"
            for c, value in enumerate(("A", "B | C", "£10")):
                table.cell(1, c).text = value

        text = load_bytes(docx_bytes(build), "t.docx").pages[0].text
        assert "| Grade | Rate |" in text and "| A | B / C | £10 |" in text

    def test_custom_style_based_on_a_heading_is_a_heading(self) -> None:
        def build(document: DocxDocument) -> None:
            style = document.styles.add_style("Policy Heading", 1)  # 1: a paragraph style
            style.base_style = document.styles["Heading 2"]
            document.add_paragraph("Overtime", style="Policy Heading")
            document.add_paragraph("Overtime is paid at time and a half.")

        assert "## Overtime" in load_bytes(docx_bytes(build), "o.docx").pages[0].text

    def test_table_nested_in_a_cell_is_read_into_that_cell(self) -> None:
        def build(document: DocxDocument) -> None:
            table = document.add_table(rows=2, cols=2)
            table.cell(0, 0).text, table.cell(0, 1).text = "Leave", "Rule"
            table.cell(1, 0).text = "Parental"
            cell = table.cell(1, 1)
            cell.text = "Paid as follows:"
            nested = cell.add_table(rows=1, cols=2)
            nested.cell(0, 0).text, nested.cell(0, 1).text = "first 6 weeks", "90% of pay"
            cell.add_paragraph("then statutory pay.")

        text = load_bytes(docx_bytes(build), "n.docx").pages[0].text
        assert "| Parental | Paid as follows: first 6 weeks 90% of pay then statutory pay. |" in text

    def test_table_of_contents_left_out(self) -> None:
        def build(document: DocxDocument) -> None:
            document.add_heading("Employee Handbook", 0)
            toc = parse_xml(
                f"<w:sdt {nsdecls('w')}><w:sdtPr><w:docPartObj><w:docPartGallery w:val='Table of Contents'/>"
                "</w:docPartObj></w:sdtPr><w:sdtContent><w:p><w:r><w:t>Contents</w:t></w:r></w:p>"
                "<w:p><w:r><w:t>Annual leave</w:t></w:r><w:r><w:tab/><w:t>4</w:t></w:r></w:p></w:sdtContent></w:sdt>"
            )
            document.element.body.insert(1, toc)
            document.styles.add_style("TOC 2", 1)  # 1: a paragraph style; a contents line outside a control
            document.add_paragraph("Sick leave 7", style="TOC 2")
            document.add_heading("Annual leave", 1)
            document.add_paragraph("Twenty days a year.")

        text = "\n".join(p.text for p in load_bytes(docx_bytes(build), "toc.docx").pages)
        assert "Contents" not in text and "Annual leave 4" not in text and "Sick leave 7" not in text
        assert "# Annual leave\n\nTwenty days a year." in text


def numbered(document: DocxDocument, text: str, num_id: int, ilvl: int = 0, style: str | None = None) -> Paragraph:
    """A paragraph in list `num_id` at level `ilvl`, marked as Word marks it (w:numPr)."""
    paragraph = document.add_paragraph(text, style=style)
    paragraph._p.get_or_add_pPr().append(
        parse_xml(f"<w:numPr {nsdecls('w')}><w:ilvl w:val='{ilvl}'/><w:numId w:val='{num_id}'/></w:numPr>")
    )
    return paragraph


def set_numbering(document: DocxDocument, abstracts: dict[int, list[tuple[str, str]]], nums: str) -> None:
    """Replace the numbering definitions: per abstract id, its levels as (numFmt, lvlText); then `nums`,
    the w:num elements, as XML."""
    numbering = document.part.numbering_part.element
    for child in list(numbering):
        numbering.remove(child)
    for abstract_id, levels in abstracts.items():
        lvls = "".join(
            f"<w:lvl w:ilvl='{i}'><w:start w:val='1'/><w:numFmt w:val='{fmt}'/><w:lvlText w:val='{text}'/></w:lvl>"
            for i, (fmt, text) in enumerate(levels)
        )
        numbering.append(
            parse_xml(f"<w:abstractNum {nsdecls('w')} w:abstractNumId='{abstract_id}'>{lvls}</w:abstractNum>")
        )
    for num in parse_xml(f"<w:x {nsdecls('w')}>{nums}</w:x>"):
        numbering.append(num)


OUTLINE = [("decimal", "%1."), ("lowerLetter", "%2)"), ("lowerRoman", "(%3)"), ("upperLetter", "%1.%4")]


def lines_of(data: bytes) -> list[str]:
    return [line for page in load_bytes(data, "list.docx").pages for line in page.text.split("\n") if line]


class TestListNumbers:
    """Word numbered lists keep the numbers Word shows; bullets stay bullets."""

    def test_levels_count_and_lower_levels_restart(self) -> None:
        def build(document: DocxDocument) -> None:
            set_numbering(document, {0: OUTLINE}, "<w:num w:numId='1'><w:abstractNumId w:val='0'/></w:num>")
            numbered(document, "Annual leave", 1)
            numbered(document, "Booking", 1, 1)
            numbered(document, "Carry-over", 1, 1)
            numbered(document, "Up to five days", 1, 2)
            numbered(document, "Deep", 1, 3)
            numbered(document, "Sick leave", 1)
            numbered(document, "Fit notes", 1, 1)

        assert lines_of(docx_bytes(build)) == [
            "- 1. Annual leave",
            "- a) Booking",
            "- b) Carry-over",
            "- (i) Up to five days",
            "- 1.A Deep",
            "- 2. Sick leave",
            "- a) Fit notes",
        ]

    def test_bullets_stay_bullets_and_numbering_off_is_plain(self) -> None:
        def build(document: DocxDocument) -> None:
            set_numbering(
                document,
                {0: [("bullet", "\u2022")], 1: OUTLINE},
                "<w:num w:numId='1'><w:abstractNumId w:val='0'/></w:num>"
                "<w:num w:numId='2'><w:abstractNumId w:val='1'/></w:num>",
            )
            numbered(document, "Phone your manager", 1)
            numbered(document, "Not in a list", 0)
            numbered(document, "Send a fit note", 2)

        assert lines_of(docx_bytes(build)) == ["- Phone your manager", "Not in a list", "- 1. Send a fit note"]

    def test_instances_of_one_definition_continue_unless_restarted(self) -> None:
        """As in Word: a second w:num on the same abstract definition continues its count; one that
        overrides the start ("Restart at 1") starts again."""

        def build(document: DocxDocument) -> None:
            set_numbering(
                document,
                {0: OUTLINE},
                "<w:num w:numId='1'><w:abstractNumId w:val='0'/></w:num>"
                "<w:num w:numId='2'><w:abstractNumId w:val='0'/></w:num>"
                "<w:num w:numId='3'><w:abstractNumId w:val='0'/>"
                "<w:lvlOverride w:ilvl='0'><w:startOverride w:val='1'/></w:lvlOverride></w:num>",
            )
            numbered(document, "First", 1)
            numbered(document, "Second", 1)
            document.add_paragraph("A paragraph between.")
            numbered(document, "Third", 2)
            numbered(document, "Again first", 3)
            numbered(document, "Again second", 3)

        assert [line for line in lines_of(docx_bytes(build)) if line.startswith("-")] == [
            "- 1. First",
            "- 2. Second",
            "- 3. Third",
            "- 1. Again first",
            "- 2. Again second",
        ]

    def test_number_from_the_style_of_the_default_template(self) -> None:
        """python-docx's template numbers "List Number" through the style, as Word's own do."""

        def build(document: DocxDocument) -> None:
            for step in ("Open the HR portal", "Choose the dates", "Submit the request"):
                document.add_paragraph(step, style="List Number")

        assert lines_of(docx_bytes(build)) == [
            "- 1. Open the HR portal",
            "- 2. Choose the dates",
            "- 3. Submit the request",
        ]

    def test_numbered_heading_and_numbered_cell_keep_their_numbers(self) -> None:
        def build(document: DocxDocument) -> None:
            set_numbering(
                document,
                {0: [("decimal", "%1"), ("decimal", "%1.%2")]},
                "<w:num w:numId='1'><w:abstractNumId w:val='0'/></w:num>",
            )
            numbered(document, "Leave", 1, style="Heading 1")
            numbered(document, "Annual leave", 1, 1, style="Heading 2")
            document.add_paragraph("Twenty days.")
            table = document.add_table(rows=2, cols=1)
            table.cell(0, 0).text = "Steps"
            step = table.cell(1, 0).paragraphs[0]
            step.text = "Book it"
            step._p.get_or_add_pPr().append(
                parse_xml(f"<w:numPr {nsdecls('w')}><w:ilvl w:val='1'/><w:numId w:val='1'/></w:numPr>")
            )

        lines = lines_of(docx_bytes(build))
        assert "# 1 Leave" in lines and "## 1.1 Annual leave" in lines
        assert "| 1.2 Book it |" in lines

    def test_number_formats(self) -> None:
        assert [format_number(n, "upperRoman") for n in (1, 4, 9, 40, 1999)] == ["I", "IV", "IX", "XL", "MCMXCIX"]
        assert [format_number(n, "lowerLetter") for n in (1, 26, 27)] == ["a", "z", "aa"]
        assert format_number(3, "none") == "" and format_number(3, "chineseCounting") == "3"


class TestPages:
    def test_page_breaks_make_pages_without_labels(self) -> None:
        def build(document: DocxDocument) -> None:
            document.add_heading("Leave", 1)
            document.add_paragraph("Page one text.").add_run().add_break(WD_BREAK.PAGE)
            document.add_paragraph("Page two text.")
            document.add_paragraph("Page three text.").paragraph_format.page_break_before = True

        loaded = load_bytes(docx_bytes(build), "p.docx")
        assert [(p.number, p.label) for p in loaded.pages] == [(1, None), (2, None), (3, None)]
        assert "Page one" in loaded.pages[0].text and loaded.pages[2].text == "Page three text."
        assert loaded.page_count == 3

    def test_break_inside_a_paragraph_splits_it(self) -> None:
        def build(document: DocxDocument) -> None:
            paragraph = document.add_paragraph("Before the break.")
            paragraph.add_run().add_break(WD_BREAK.PAGE)
            paragraph.add_run("After the break.")

        pages = load_bytes(docx_bytes(build), "b.docx").pages
        assert [p.text for p in pages] == ["Before the break.", "After the break."]

    def test_no_breaks_means_heading_sections_with_labels(self) -> None:
        loaded = load_bytes(docx_bytes(handbook), "h.docx")
        labels = [p.label for p in loaded.pages]
        assert labels == ["section 1: Employee Handbook", "section 2: Annual leave", "section 3: Sick leave"]
        assert loaded.pages[2].text.startswith("# Sick leave") and "## Reporting an absence" in loaded.pages[2].text
        assert loaded.page_count == 3

    def test_no_breaks_and_no_headings_is_one_section(self) -> None:
        loaded = load_bytes(docx_bytes(lambda d: d.add_paragraph("Remote work needs approval.")), "r.docx")
        assert [p.label for p in loaded.pages] == ["section 1: the whole document"]

    def test_section_is_cited_as_a_section(self) -> None:
        hit = Hit(1, 0.7, "h.docx", "d", 2, 1, "text", page_label="section 2: Annual leave")
        assert hit.page_cited == "section 2: Annual leave"
        assert Hit(1, 0.7, "h.docx", "d", 2, 1, "text").page_cited == "page 2"

    def test_max_pages(self) -> None:
        with pytest.raises(TooManyPages):
            load_bytes(docx_bytes(handbook), "h.docx", max_pages=2)


class TestDetection:
    def test_docx_named_pdf_or_nothing_loads(self) -> None:
        data = docx_bytes(handbook)
        assert load_bytes(data, "handbook.pdf").kind == "docx"
        assert load_bytes(data, "handbook").kind == "docx"

    def test_pdf_named_docx_loads_as_pdf(self, pdf_maker: Callable[..., Path]) -> None:
        data = pdf_maker(["A PDF in disguise."]).read_bytes()
        assert load_bytes(data, "policy.docx").kind == "pdf"

    def test_other_zip_is_not_docx(self) -> None:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("content.xml", "<office:document-content/>")  # OpenDocument, not Word
        assert not is_docx(out.getvalue()) and is_docx(docx_bytes(handbook))
        with pytest.raises(DamagedFile, match="damaged Word file"):
            load_bytes(out.getvalue(), "sheet.docx")

    def test_docx_in_the_supported_list(self) -> None:
        assert ".docx" in SUPPORTED_SUFFIXES and ".doc" not in SUPPORTED_SUFFIXES

    def test_legacy_doc_gets_the_way_out(self) -> None:
        ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 200 + "WordDocument".encode("utf-16-le")
        with pytest.raises(LegacyWordFile, match=r"legacy Word \.doc file: save it as \.docx or PDF"):
            load_bytes(ole2, "handbook.doc")
        with pytest.raises(LegacyWordFile):
            load_bytes(ole2, "handbook.pdf")  # detected from the bytes, not the name
        with pytest.raises(LegacyWordFile):
            load_bytes(b"some bytes of a .doc we cannot place", "old.doc")

    def test_encrypted_docx_asks_for_the_password_off(self) -> None:
        ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 200 + "EncryptedPackage".encode("utf-16-le")
        with pytest.raises(PasswordRequired, match="remove the password"):
            load_bytes(ole2, "handbook.docx")


class TestFailures:
    def test_truncated_docx_is_damaged(self) -> None:
        data = docx_bytes(handbook)
        with pytest.raises(DamagedFile, match="damaged Word file"):
            load_bytes(data[: len(data) // 2], "handbook.docx")

    def test_broken_body_xml_is_damaged(self) -> None:
        source = zipfile.ZipFile(io.BytesIO(docx_bytes(handbook)))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for item in source.infolist():
                body = b"<w:document><unclosed" if item.filename == "word/document.xml" else source.read(item)
                archive.writestr(item, body)
        with pytest.raises(DamagedFile, match="damaged Word file"):
            load_bytes(out.getvalue(), "handbook.docx")

    def test_empty_body_has_no_text(self) -> None:
        def build(document: DocxDocument) -> None:
            document.sections[0].header.paragraphs[0].text = "Only a header"

        with pytest.raises(NoExtractableText, match="body is empty"):
            load_bytes(docx_bytes(build), "empty.docx")

    def test_body_bomb_is_refused_before_parsing(self) -> None:
        source = zipfile.ZipFile(io.BytesIO(docx_bytes(handbook)))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for item in source.infolist():
                if item.filename == "word/document.xml":
                    archive.writestr("word/document.xml", b" " * (MAX_BODY_XML_BYTES + 1))
                else:
                    archive.writestr(item, source.read(item))
        with pytest.raises(Exception, match="too much text"):
            load_bytes(out.getvalue(), "bomb.docx")


class TestSearch:
    """A Word handbook through the engine: headings in the chunk context, a table row found and quoted
    with its header, citations naming the section."""

    @pytest.fixture
    def engine(self, tmp_path: Path, embedder: Embedder) -> Engine:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        result = engine.ingest_bytes("handbook.docx", docx_bytes(handbook))
        assert result.status == "added", result.error
        assert result.pages == 3
        assert [p.suffix for p in (tmp_path / "kb" / "originals").iterdir()] == [".docx"]  # kept as what it is
        return engine

    def test_table_row_found_and_quoted_with_its_header(self, engine: Engine) -> None:
        hits = engine.search("How many days of annual leave after 5 years of service?", k=3)
        top = hits[0]
        assert "| 5 | 25 |" in top.text and "Annual leave" in top.context and "Years of service" in top.context
        assert top.page_cited == "section 2: Annual leave"
        answer = engine.answer("How many days of annual leave after 5 years of service?")
        assert answer.grounded and "25" in answer.text
        assert "Years of service" in answer.text  # the row is quoted with its header

    def test_heading_in_context_and_section_cited(self, engine: Engine) -> None:
        hits = engine.search("phone your manager before 9am when absent", k=3)
        assert "Phone your manager" in hits[0].text and "Sick leave" in hits[0].context
        assert hits[0].page_cited == "section 3: Sick leave"


def test_heading_path_read_by_structure() -> None:
    """Word heading levels become the heading path rag_core.structure gives every chunk."""
    pages = load_bytes(docx_bytes(handbook), "h.docx").pages
    sick = pages[2]
    path = HeadingPath(pages).at(sick.number, sick.text.index("Phone your manager"))
    assert path == ["Sick leave", "Reporting an absence"]
