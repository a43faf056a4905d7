"""The Insights report over the question log: what employees ask, what the documents miss, what they
disliked, as one `InsightsReport` record, its CSV tables and its text form.

    per_day      questions and refusals per day (UTC), every day of the window, oldest first
    documents    how many answers cited each document (pages: each page), most cited first
    topics       refused or weakly grounded questions, clustered (topics.py), the newest topic first
    thumbs_down  answers voted down, with their reasons, newest first

A question is refused when its answer said the documents do not cover it (not grounded: min_score and
min_coverage decided), and weakly grounded when it was answered from a best passage scoring below
`weak_score`.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rag_core.config import Settings
from rag_core.insights.log import QuestionLog
from rag_core.insights.topics import MAX_CLUSTERED, TOPIC_SIMILARITY, cluster, topic_words
from rag_core.types import CitedCount, DayCount, FloatArray, InsightsReport, LoggedQuestion, Topic

Embed = Callable[[list[str]], FloatArray]
EXAMPLES = 5
TABLES = ("per_day", "documents", "pages", "topics", "thumbs_down")


def uncovered(q: LoggedQuestion, weak_score: float) -> bool:
    """Refused, or answered from a best passage below `weak_score`."""
    return not q.grounded or (q.best_score is not None and q.best_score < weak_score)


def insights(
    log: QuestionLog,
    embed: Embed,
    days: int = 30,
    *,
    weak_score: float = 0.4,
    similarity: float = TOPIC_SIMILARITY,
    now: datetime | None = None,
) -> InsightsReport:
    """The report over the last `days` days of `log`; `embed` turns questions into unit query vectors
    (the engine's `encode_query`), called only when there are uncovered questions to group."""
    if days < 1:
        raise ValueError(f"days must be >= 1; got {days}")
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    asked = [q for q in log.questions(days) if q.asked_at[:10] >= first.isoformat()]
    per: Counter[str] = Counter(q.asked_at[:10] for q in asked)
    refused_per: Counter[str] = Counter(q.asked_at[:10] for q in asked if not q.grounded)
    dates = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    docs: Counter[str] = Counter()
    pages: Counter[tuple[str, int]] = Counter()
    for q in asked:
        docs.update({c.document for c in q.citations})
        pages.update({(c.document, c.page) for c in q.citations})
    missed = [q for q in asked if uncovered(q, weak_score)][:MAX_CLUSTERED]
    return InsightsReport(
        days=days,
        since=first.isoformat(),
        questions=len(asked),
        refused=sum(not q.grounded for q in asked),
        weak=sum(q.grounded and uncovered(q, weak_score) for q in asked),
        per_day=[DayCount(d, per[d], refused_per[d]) for d in dates],
        documents=[CitedCount(d, None, n) for d, n in sorted(docs.items(), key=lambda x: (-x[1], x[0]))],
        pages=[CitedCount(d, p, n) for (d, p), n in sorted(pages.items(), key=lambda x: (-x[1], x[0]))],
        topics=_topics(missed, [q.question for q in asked], embed, similarity),
        thumbs_down=[q for q in asked if q.feedback == "down"],
    )


def _topics(missed: list[LoggedQuestion], background: list[str], embed: Embed, similarity: float) -> list[Topic]:
    """`missed` (newest first) grouped into topics, the topic asked most recently first."""
    if not missed:
        return []
    groups = [[missed[i] for i in g] for g in cluster(embed([q.question for q in missed]), similarity)]
    labels = topic_words([[q.question for q in g] for g in groups], background)
    topics = []
    for group, label in zip(groups, labels, strict=True):
        examples = list(dict.fromkeys(q.question for q in group))[:EXAMPLES]
        topics.append(Topic(", ".join(label), label, len(group), group[0].asked_at, examples))
    return sorted(topics, key=lambda t: (t.last_asked, t.count), reverse=True)


# ---------------------------------------------------------------- exports


def _cell(value: Any) -> Any:
    """A value as a spreadsheet should read it: text that would start a formula is quoted.

    >>> _cell("=HYPERLINK(1)"), _cell(3), _cell(None)
    ("'=HYPERLINK(1)", 3, '')
    """
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _write(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


def report_csv(report: InsightsReport, table: str) -> str:
    """One table of the report as CSV text (`table` one of TABLES), a header row first.

    >>> r = InsightsReport(1, "2026-03-01", 2, 1, 0, [DayCount("2026-03-01", 2, 1)], [], [], [], [])
    >>> print(report_csv(r, "per_day"), end="")
    date,questions,refused
    2026-03-01,2,1
    """
    if table == "per_day":
        return _write(("date", "questions", "refused"), [(d.date, d.questions, d.refused) for d in report.per_day])
    if table == "documents":
        return _write(("document", "citations"), [(c.document, c.citations) for c in report.documents])
    if table == "pages":
        return _write(("document", "page", "citations"), [(c.document, c.page, c.citations) for c in report.pages])
    if table == "topics":
        topics = [(t.label, t.count, t.last_asked, " | ".join(t.examples)) for t in report.topics]
        return _write(("topic", "questions", "last_asked", "examples"), topics)
    if table == "thumbs_down":
        rows = [
            (q.asked_at, q.question, q.answer, q.reason, "; ".join(f"{c.document} p. {c.page}" for c in q.citations))
            for q in report.thumbs_down
        ]
        return _write(("asked_at", "question", "answer", "reason", "citations"), rows)
    raise ValueError(f"unknown insights table {table!r}; choose one of {', '.join(TABLES)}")


def report_text(report: InsightsReport) -> str:
    """The report as the command line prints it without --json."""
    lines = [
        f"Questions since {report.since} ({report.days} days): {report.questions}, "
        f"{report.refused} refused, {report.weak} weakly grounded",
        "",
        "Per day (questions / refused):",
    ]
    lines += [f"  {d.date}  {d.questions:4d} / {d.refused}" for d in report.per_day if d.questions]
    lines += ["", "Most-cited documents:"]
    lines += [f"  {c.citations:4d}  {c.document}" for c in report.documents[:10]] or ["  (none)"]
    lines += ["", "Most-cited pages:"]
    lines += [f"  {c.citations:4d}  {c.document} p. {c.page}" for c in report.pages[:10]] or ["  (none)"]
    lines += ["", "What employees asked that the documents don't cover (newest first):"]
    for t in report.topics:
        lines.append(f"  {t.label}: {t.count} question(s), last {t.last_asked}")
        lines += [f"    - {e}" for e in t.examples]
    if not report.topics:
        lines.append("  (none)")
    lines += ["", "Thumbs-down answers:"]
    lines += [f"  {q.asked_at}  [{q.reason or 'no reason'}]  {q.question}" for q in report.thumbs_down] or ["  (none)"]
    return "\n".join(lines)


def log_note(settings: Settings) -> str | None:
    """The note the chat shows while questions are logged (None when they are not).

    >>> log_note(Settings(log_retention_days=30))
    'Questions and answers are logged (without your name) for 30 days to improve the documents.'
    >>> log_note(Settings(log_questions=False)) is None
    True
    """
    if not settings.log_questions:
        return None
    kept = f"for {settings.log_retention_days} days" if settings.log_retention_days else "until deleted"
    who = "with your user name" if settings.log_user else "(without your name)"
    return f"Questions and answers are logged {who} {kept} to improve the documents."
