"""rag_core.scoping: a question that names an organisation is answered from that organisation's
document, ranked by the rest of the question."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.scoping import Scoper
from rag_core.types import ChunkRow


class _Rows:
    """The two store methods the Scoper reads."""

    def __init__(self, rows: list[ChunkRow]):
        self.rows = rows

    def generation(self) -> int:
        return len(self.rows)

    def all_chunks(self) -> list[ChunkRow]:
        return self.rows


def _rows(docs: dict[str, list[str]]) -> list[ChunkRow]:
    out: list[ChunkRow] = []
    for name, texts in docs.items():
        for text in texts:
            out.append(ChunkRow(len(out) + 1, name.split(".")[0], name, 1, 0, len(text), text, 1.0))
    return out


DOCS = {
    "comcare-enterprise-agreement.pdf": [
        "Comcare employees accrue four weeks of annual leave.",
        "Comcare pays 75 cents per kilometre for private vehicles.",
        "Sick leave requires a medical certificate after two consecutive days.",
        "Treasury rules apply to travel.",
    ],
    "uoa-professional-staff.pdf": [
        "The University of Auckland welcomes professional staff.",
        "Staff of the University of Auckland give four weeks notice of resignation.",
        "Sick leave of five days a year. A snowstorm closure is paid.",
        "Treasury guidance on expenses.",
    ],
}


@pytest.fixture
def scoper() -> Scoper:
    return Scoper(_Rows(_rows(DOCS)))  # type: ignore[arg-type]


class TestNames:
    def test_a_capitalised_name_scopes_to_its_document(self, scoper: Scoper) -> None:
        scope = scoper.scope("At Comcare, how many days in a row can I be off sick?")
        assert scope is not None and scope.document_ids == {"comcare-enterprise-agreement"}
        assert scope.words == ("Comcare",) and scope.query == "At , how many days in a row can I be off sick?"

    def test_the_whole_name_is_removed(self, scoper: Scoper) -> None:
        scope = scoper.scope("How much notice do I give the University of Auckland before I resign?")
        assert scope is not None and scope.document_ids == {"uoa-professional-staff"}
        assert scope.words == ("University", "of", "Auckland")
        assert scope.query == "How much notice do I give the before I resign?"

    def test_a_file_name_word_counts_in_lower_case(self, scoper: Scoper) -> None:
        scope = scoper.scope("what does comcare pay per kilometre?")
        assert scope is not None and scope.document_ids == {"comcare-enterprise-agreement"}

    def test_words_that_name_nothing(self, scoper: Scoper) -> None:
        assert scoper.scope("How many days of sick leave?") is None  # a topic both documents share
        assert scoper.scope("Do Treasury rules apply?") is None  # a name split between documents
        assert scoper.scope("Is a snowstorm closure paid?") is None  # one document's topic word, not a name
        assert scoper.scope("Comcare?") is not None  # the first word counts through the file name
        assert scoper.scope("Auckland staff: how much notice?") is None  # first word, not in the file name
        assert scoper.scope("how much notice do professional staff give?") is None  # file-name words, not names
        assert scoper.scope("What does Sick Leave pay?") is None  # capitalised here, not in the documents

    def test_accents_and_other_scripts(self) -> None:
        rows = _rows({"nestle-policy.pdf": ["Nestlé hires fairly.", "Nestlé trains staff."], "b.pdf": ["Other."]})
        scope = Scoper(_Rows(rows)).scope("Does Nestle train staff? 研修")  # type: ignore[arg-type]
        assert scope is not None and scope.query == "Does train staff? 研修"

    def test_one_document_has_nothing_to_choose(self) -> None:
        rows = _rows({"comcare.pdf": DOCS["comcare-enterprise-agreement.pdf"]})
        assert Scoper(_Rows(rows)).scope("At Comcare, how much leave?") is None  # type: ignore[arg-type]


HANDBOOKS = {
    "globex-handbook.pdf": [
        "Globex Corporation Employee Handbook. Welcome to Globex Corporation, where people come first.",
        "Globex Corporation values. At Globex Corporation we act with integrity every day.",
        "Sick leave. Employees who are ill for more than three days in a row must provide a doctor's note.",
    ],
    "initech-handbook.pdf": [
        "Initech Employee Handbook. Welcome to Initech.",
        "Sick leave. Staff who are off ill for more than five days in a row need a medical certificate.",
        "Initech values. Initech staff treat customers with respect.",
    ],
}


class TestRetrieval:
    """Through the engine: the named company's own clause, not its welcome page, not the other handbook."""

    @pytest.fixture
    def engine(self, tmp_path: Path, embedder: Embedder, pdf_maker: Callable[..., Path]) -> Engine:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        engine.ingest_paths([pdf_maker(pages, name=name) for name, pages in HANDBOOKS.items()])
        return engine

    def test_scoped_question_ranks_the_named_documents_clause(self, engine: Engine) -> None:
        question = "At Globex Corporation, how long can I be off sick before I need a doctor's note?"
        hits = engine.search(question)
        assert {h.document for h in hits} == {"globex-handbook.pdf"}
        assert hits[0].page == 3
        assert engine.searcher.topic(question) == "At , how long can I be off sick before I need a doctor's note?"

    def test_scoping_can_be_turned_off(self, tmp_path: Path, embedder: Embedder, engine: Engine) -> None:
        off = Engine(Settings(data_dir=engine.settings.data_dir, scoping=False), embedder=embedder)
        question = "At Globex Corporation, how long can I be off sick before I need a doctor's note?"
        assert {h.document for h in off.search(question)} == {"globex-handbook.pdf", "initech-handbook.pdf"}
        assert off.searcher.topic(question) == question
