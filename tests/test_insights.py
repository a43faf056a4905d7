"""The question log, feedback on answers and the Insights report (rag_core.insights), on both homes
of the log: the data dir's SQLite file and the knowledge base's PostgreSQL database."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.insights import (
    TABLES,
    QuestionLog,
    QuestionNotFound,
    SQLiteQuestionLog,
    insights,
    log_note,
    open_question_log,
    report_csv,
    report_text,
)
from rag_core.types import Answer, Citation, Hit

BACKENDS = ["sqlite", "postgresql"]
REPORT_KEYS = {
    "days",
    "since",
    "questions",
    "refused",
    "weak",
    "per_day",
    "documents",
    "pages",
    "topics",
    "thumbs_down",
}
QUESTION_KEYS = {
    "id",
    "asked_at",
    "question",
    "answer",
    "grounded",
    "best_score",
    "citations",
    "generation",
    "feedback",
    "reason",
    "feedback_at",
    "user",
}


class Clock:
    """A settable clock, so retention and per-day counts are tested without waiting days."""

    def __init__(self, start: datetime = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


Opener = Callable[..., QuestionLog]


@pytest.fixture(params=BACKENDS)
def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens the log for settings (as the engine does) on one fresh home, with a given clock."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None

    def opener(clock: Clock, **settings: object) -> QuestionLog:
        return open_question_log(Settings(data_dir=tmp_path / "kb", database_url=url, **settings), clock=clock)  # type: ignore[arg-type]

    return opener


def answer(question: str, *, grounded: bool = True, score: float = 0.7, cites: int = 1) -> Answer:
    hits = [Hit(1, score, "Leave.pdf", "d1", 3, 11, "passage"), Hit(2, score - 0.1, "Pay.pdf", "d2", 1, 12, "p")]
    citations = [Citation(1, "Leave.pdf", 3, 11), Citation(2, "Leave.pdf", 3, 11), Citation(3, "Pay.pdf", 1, 12)]
    return Answer(question, "It says so [1].", "extractive", grounded, citations[:cites] if grounded else [], hits)


class TestLog:
    def test_logs_an_answer_with_its_citations_generation_and_best_score(self, open_log: Opener) -> None:
        log = open_log(Clock())
        qid = log.log(answer("How much leave?", cites=3), 7)
        [q] = log.questions()
        assert q.id == qid and q.question == "How much leave?" and q.answer == "It says so [1]."
        assert q.grounded and q.best_score == pytest.approx(0.7) and q.generation == 7
        assert [(c.document, c.page) for c in q.citations] == [("Leave.pdf", 3), ("Pay.pdf", 1)]  # each page once
        assert q.asked_at == "2026-03-10T12:00:00+00:00" and q.feedback is None and q.user is None
        assert set(q.to_json()) == QUESTION_KEYS

    def test_no_user_identity_unless_turned_on(self, open_log: Opener) -> None:
        clock = Clock()
        open_log(clock).log(answer("a?"), 1, user="alice")
        assert open_log(clock).questions()[0].user is None
        with_users = open_log(clock, log_user=True)
        with_users.log(answer("b?"), 1, user="bob")
        assert [q.user for q in with_users.questions()] == ["bob", None]

    def test_retention_purges_on_write_and_on_open(self, open_log: Opener) -> None:
        clock = Clock()
        log = open_log(clock, log_retention_days=30)
        log.log(answer("old"), 1)
        clock.advance(days=20)
        log.log(answer("recent"), 1)
        clock.advance(days=11)
        assert [q.question for q in open_log(clock, log_retention_days=30).questions()] == ["recent"]  # on open
        clock.advance(days=20)
        log.log(answer("new"), 1)  # on write
        assert [q.question for q in log.questions()] == ["new"]
        assert [q.question for q in log.questions(days=1)] == ["new"]

    def test_retention_zero_keeps_everything(self, open_log: Opener) -> None:
        clock = Clock()
        log = open_log(clock, log_retention_days=0)
        log.log(answer("old"), 1)
        clock.advance(days=3000)
        log.log(answer("new"), 1)
        assert [q.question for q in log.questions()] == ["new", "old"]
        assert log.purge(older_than_days=1) == 1 and [q.question for q in log.questions()] == ["new"]

    def test_feedback_is_stored_and_validated(self, open_log: Opener) -> None:
        clock = Clock()
        log = open_log(clock)
        up, down = log.log(answer("a?"), 1), log.log(answer("b?"), 1)
        assert log.feedback(up, True).vote == "up"
        clock.advance(minutes=5)
        given = log.feedback(down, False, "not what I asked")
        assert (given.vote, given.reason, given.given_at) == ("down", "not what I asked", "2026-03-10T12:05:00+00:00")
        by_id = {q.id: q for q in log.questions()}
        assert (by_id[up].feedback, by_id[up].reason) == ("up", None)
        assert (by_id[down].feedback, by_id[down].reason) == ("down", "not what I asked")
        with pytest.raises(ValueError, match="must be one of 'wrong', 'outdated', 'incomplete', 'not what I asked'"):
            log.feedback(down, False, "rude")
        with pytest.raises(ValueError, match="goes with a thumbs down"):
            log.feedback(up, True, "wrong")
        with pytest.raises(QuestionNotFound, match="no logged question 999"):
            log.feedback(999, False, "wrong")
        log.feedback(down, True)  # a later vote replaces the earlier one
        assert {q.id: q.feedback for q in log.questions()}[down] == "up"

    def test_settings_validate_and_read_the_environment(self) -> None:
        s = Settings.from_env({"RAG_LOG_QUESTIONS": "0", "RAG_LOG_RETENTION_DAYS": "7", "RAG_LOG_USER": "1"})
        assert (s.log_questions, s.log_retention_days, s.log_user) == (False, 7, True)
        with pytest.raises(ValueError, match="log_retention_days must be >= 0"):
            Settings(log_retention_days=-1)
        assert log_note(s) is None and "90 days" in (log_note(Settings()) or "")


class TestEngine:
    def test_logging_follows_the_setting(self, tmp_path: Path, embedder: Embedder) -> None:
        on = Engine(Settings(data_dir=tmp_path / "on"), embedder=embedder)
        qid = on.questions.record(answer("How much leave?"), user="alice")
        assert qid is not None and on.questions.feedback(qid, False, "outdated").reason == "outdated"
        [q] = on.questions.log.questions()
        assert q.generation == on.store.generation() and q.user is None and q.feedback == "down"
        off = Engine(Settings(data_dir=tmp_path / "off", log_questions=False), embedder=embedder)
        assert off.questions.record(answer("How much leave?")) is None
        assert off.questions.log.questions() == [] and off.questions.note is None

    def test_a_log_fault_never_fails_the_answer(
        self, tmp_path: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
    ) -> None:
        engine = Engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)

        def broken(answer: Answer, generation: int, *, user: str | None = None) -> int:
            raise OSError("disk full")

        engine.questions.log.log = broken  # type: ignore[method-assign]
        assert engine.questions.record(answer("How much leave?")) is None
        assert "could not be logged: disk full" in caplog.text

    def test_with_postgresql_the_log_lives_in_the_knowledge_base_database(
        self, tmp_path: Path, embedder: Embedder, pg_url: str
    ) -> None:
        import psycopg

        engine = Engine(Settings(data_dir=tmp_path / "cache", database_url=pg_url), embedder=embedder)
        qid = engine.questions.record(answer("How much leave?"))
        assert qid is not None and engine.questions.feedback(qid, True).vote == "up"
        with psycopg.connect(pg_url) as db:
            assert db.execute("SELECT question, feedback FROM question_log").fetchall() == [("How much leave?", "up")]
        assert not (tmp_path / "cache" / "insights.sqlite3").exists()
        engine.questions.close()


PARKING = ["Where can I park my car at the office?", "Is there a parking allowance?", "How do I get a parking permit?"]
PETS = ["Can I bring my dog to the office?", "Are pets allowed at work?"]


def made_up_log(log: QuestionLog, clock: Clock) -> None:
    """Three refused questions about parking, two about pets (asked last), answered ones, one thumbs down."""
    log.log(answer("How many days of annual leave do I get?", cites=3), 1)
    for q in PARKING:
        clock.advance(hours=2)
        log.log(answer(q, grounded=False, score=0.2), 1)
    clock.advance(days=1)
    down = log.log(answer("When is payday?", score=0.8), 1)
    log.feedback(down, False, "wrong")
    for q in PETS:
        clock.advance(hours=1)
        log.log(answer(q, score=0.3), 1)  # answered, but weakly grounded
    log.log(answer("How do I claim travel expenses?", score=0.9), 2)


class TestReport:
    def test_refused_and_weak_questions_become_labelled_topics_newest_first(
        self, open_log: Opener, embedder: Embedder
    ) -> None:
        clock = Clock()
        log = open_log(clock)
        made_up_log(log, clock)
        report = insights(log, embedder.encode_query, days=7, weak_score=0.4, now=clock.now)
        assert (report.questions, report.refused, report.weak) == (8, 3, 2)
        pets, parking = report.topics
        assert "parking" in parking.words and parking.count == 3
        assert any(w.startswith("pet") or w == "dog" for w in pets.words) and pets.count == 2
        assert pets.examples == PETS[::-1] and parking.examples == PARKING[::-1]  # newest first
        assert pets.last_asked > parking.last_asked
        assert [(d.date, d.questions, d.refused) for d in report.per_day[-3:]] == [
            ("2026-03-09", 0, 0),
            ("2026-03-10", 4, 3),
            ("2026-03-11", 4, 0),
        ]
        assert len(report.per_day) == 7 and report.since == "2026-03-05"
        assert [(c.document, c.citations) for c in report.documents] == [("Leave.pdf", 5), ("Pay.pdf", 1)]
        assert (report.pages[0].document, report.pages[0].page) == ("Leave.pdf", 3)
        [down] = report.thumbs_down
        assert (down.question, down.reason) == ("When is payday?", "wrong")
        text = report_text(report)
        assert "parking" in text and "When is payday?" in text and "[wrong]" in text

    def test_an_empty_log_needs_no_embedder(self, open_log: Opener) -> None:
        def no_embedding(texts: list[str]) -> object:
            raise AssertionError("nothing to cluster")

        report = insights(open_log(Clock()), no_embedding, days=3)  # type: ignore[arg-type]
        assert report.questions == 0 and report.topics == [] and len(report.per_day) == 3
        assert "(none)" in report_text(report)

    def test_csv_export_of_each_table(self, tmp_path: Path, embedder: Embedder) -> None:
        clock = Clock()
        log = SQLiteQuestionLog(tmp_path, clock=clock)
        made_up_log(log, clock)
        log.log(answer("=cmd|' /C calc'!A0", grounded=False, score=0.1), 1)
        log.feedback(log.questions()[0].id, False)
        report = insights(log, embedder.encode_query, days=2, now=clock.now)
        tables = {t: report_csv(report, t).splitlines() for t in TABLES}
        assert tables["per_day"] == ["date,questions,refused", "2026-03-10,4,3", "2026-03-11,5,1"]
        assert tables["documents"] == ["document,citations", "Leave.pdf,5", "Pay.pdf,1"]
        assert tables["pages"][0] == "document,page,citations" and tables["pages"][1] == "Leave.pdf,3,5"
        assert tables["topics"][0] == "topic,questions,last_asked,examples"
        assert any("parking" in row for row in tables["topics"][1:])
        assert tables["thumbs_down"][0] == "asked_at,question,answer,reason,citations"
        assert any(row.startswith("2026-03-11T20:00:00+00:00,'=cmd") for row in tables["thumbs_down"])  # no formula
        with pytest.raises(ValueError, match="choose one of per_day"):
            report_csv(report, "people")


class TestCommandLine:
    def test_insights_json_shape(self, tmp_path: Path, embedder: Embedder, capsys: pytest.CaptureFixture[str]) -> None:
        from rag_core.__main__ import main

        kb = tmp_path / "kb"
        engine = Engine(Settings(data_dir=kb), embedder=embedder)
        for q in PARKING:
            engine.questions.record(answer(q, grounded=False, score=0.1))
        qid = engine.questions.record(answer("How much leave?"))
        assert qid is not None
        engine.questions.feedback(qid, False, "incomplete")
        assert main(["insights", "--json", "--days", "5", "--data-dir", str(kb)]) == 0
        out = json.loads(capsys.readouterr().out)
        assert set(out) == REPORT_KEYS and out["days"] == 5 and out["questions"] == 4 and out["refused"] == 3
        assert set(out["per_day"][0]) == {"date", "questions", "refused"} and len(out["per_day"]) == 5
        assert out["documents"] == [{"document": "Leave.pdf", "page": None, "citations": 1}]
        assert out["pages"] == [{"document": "Leave.pdf", "page": 3, "citations": 1}]
        [topic] = out["topics"]
        assert set(topic) == {"label", "words", "count", "last_asked", "examples"} and topic["count"] == 3
        [down] = out["thumbs_down"]
        assert (
            set(down) == QUESTION_KEYS
            and down["reason"] == "incomplete"
            and down["citations"] == [{"document": "Leave.pdf", "page": 3}]
        )
        assert main(["insights", "--days", "5", "--data-dir", str(kb)]) == 0
        assert "Questions since" in capsys.readouterr().out
        assert main(["insights", "--days", "0", "--data-dir", str(kb)]) == 2

    def test_the_json_contract_is_documented(self) -> None:
        doc = (Path(__file__).resolve().parent.parent / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
        contract = doc[doc.index("python -m rag_core insights") : doc.index("python -m rag_core migrate")]
        keys = REPORT_KEYS | QUESTION_KEYS | {"date", "label", "words", "count", "last_asked", "examples"}
        assert not [k for k in sorted(keys) if f'"{k}"' not in contract]
