"""The default answerer: quotes the retrieved passages' best sentences with [n] citations; no weights.

Nothing is paraphrased, so nothing is invented: every sentence of an answer is a sentence of a cited
passage, or a table row quoted whole after its column headers ("Vacation Years Workdays: Tenth … 24").
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from rag_core import numbers
from rag_core.answer.generators import Encode
from rag_core.answer.prompt import EXTRACTIVE_NO_CONTEXT, build_prompt
from rag_core.chunking import split_sentences
from rag_core.display import query_terms
from rag_core.structure import table_headers
from rag_core.tables import LEADER, find_tables
from rag_core.types import Hit


@dataclass(frozen=True)
class _Candidate:
    passage: int  # the passage's number, 1-based, as cited
    position: int  # order within the passage
    text: str  # as quoted: a sentence, or a row after its headers
    table: int | None = None  # rows of one table share a number; None for a sentence


class ExtractiveGenerator:
    """Quotes the 1-3 sentences of the retrieved passages that best answer the question.

    Sentence score = cosine(sentence, question) + 0.3 x the share of the question's content words and
    numbers the sentence contains (a number written any way, or inside a range) + a small bonus for
    higher-ranked passages + a bonus for a sentence that states a quantity when the question asks for
    one (how many / how long / how much / when / what percentage), and meets the numbers the question
    names: the answer then leads with the figure. Table rows are candidates too, quoted whole after
    their column headers. Sentences close to the best one (by score) join it, unless they repeat it; a
    chosen sentence that ends in a colon brings the line after it (the list it introduces, or the best
    row of the table it introduces). The best comes first, the others follow in reading order.
    """

    name = "extractive"

    def __init__(self, encode: Encode, max_sentences: int = 3, margin: float = 0.12):
        self.encode = encode
        self.max_sentences = max_sentences
        self.margin = margin

    def prepare(self, question: str, hits: Sequence[Hit] | None) -> tuple[str, list[Hit]]:
        return build_prompt(question, hits), list(hits or [])

    def stream(self, question: str, hits: Sequence[Hit] | None) -> Iterator[str]:
        if hits is None:
            yield EXTRACTIVE_NO_CONTEXT
            return
        yield self.compose(question, hits)

    def select(self, question: str, hits: Sequence[Hit]) -> list[tuple[int, str]]:
        """(passage number, sentence or table row) pairs: the best first, then the others in reading order."""
        candidates = answer_candidates(hits)
        # A line ending in a colon with nothing after it in its passage ("With respect to working from
        # home:") introduces text the passage does not hold: never an answer on its own.
        following = {(c.passage, c.position) for c in candidates}
        candidates = [
            c for c in candidates if not c.text.rstrip().endswith(":") or (c.passage, c.position + 1) in following
        ]
        if not candidates:
            return [(n, " ".join(h.text.split())) for n, h in enumerate(hits[:1], 1)]
        vectors = self.encode([question] + [c.text for c in candidates])
        q, s = vectors[0], vectors[1:]
        cos = s @ q
        overlap = np.array([term_overlap(question, c.text) for c in candidates], dtype=np.float32)
        rank_bonus = np.array([0.05 / c.passage for c in candidates], dtype=np.float32)
        figure = np.array([QUANTITY_BONUS if answers_with_figure(question, c.text) else 0.0 for c in candidates])
        score = cos + 0.3 * overlap + rank_bonus + figure.astype(np.float32)
        order = np.argsort(-score)
        chosen = [int(order[0])]
        for i in order[1:]:
            if len(chosen) >= self.max_sentences or score[i] < score[order[0]] - self.margin:
                break
            if all(float(s[i] @ s[j]) < 0.9 for j in chosen):
                chosen.append(int(i))
        best = chosen[0]
        lead = {best}  # the best sentence or row, with the sentence that introduces it or its list
        position = {(c.passage, c.position): i for i, c in enumerate(candidates)}
        for i in list(chosen):  # "... aligned to your grade:" is no answer without the list after it
            c = candidates[i]
            nxt = position.get((c.passage, c.position + 1))
            if not c.text.rstrip().endswith(":") or nxt is None or nxt in chosen:
                continue
            table = candidates[nxt].table
            if table is not None:  # "... as follows:" and a table: its best row, not its first
                rows = [j for j in range(len(candidates)) if candidates[j].table == table]
                if any(j in chosen for j in rows):
                    continue
                nxt = max(rows, key=lambda j: float(score[j]))
            elif _LIST_ITEM.match(candidates[nxt].text):  # "... aligned to your grade:" and a list: its best item
                items = []
                j: int | None = nxt
                while j is not None and _LIST_ITEM.match(candidates[j].text):
                    items.append(j)
                    j = position.get((candidates[j].passage, candidates[j].position + 1))
                if any(j in chosen for j in items):
                    continue
                nxt = max(items, key=lambda j: float(score[j]))
            chosen.append(nxt)
            if i == best:
                lead.add(nxt)
        # The answer leads with the best (for "how many": the row or sentence with the figure), the rest
        # follow in reading order.
        chosen.sort(key=lambda i: (i not in lead, candidates[i].passage, candidates[i].position))
        return [(candidates[i].passage, candidates[i].text) for i in chosen]

    def compose(self, question: str, hits: Sequence[Hit]) -> str:
        return " ".join(f"{sentence} [{n}]" for n, sentence in self.select(question, hits))


def answer_candidates(hits: Sequence[Hit]) -> list[_Candidate]:
    """The sentences of the passages that could answer (four words or more, headings left out) and their
    table rows, each quoted whole after its column headers: the headers found above it in the passage,
    else those the passage was indexed with (its table began on the page before or above the chunk)."""
    out: list[_Candidate] = []
    table_number = 0
    for n, hit in enumerate(hits, 1):
        indexed = table_headers(hit.context)
        tables = find_tables(hit.text, min_rows=1 if indexed else None)
        own = {t.header for t in tables}
        carried = next((h for h in indexed if h not in own), "")
        rows: dict[tuple[int, int], tuple[str, int]] = {}
        other: set[tuple[int, int]] = set()  # a Markdown header row, "|---|": no answer, kept whole
        for table in tables:
            table_number += 1
            other.update(table.other_lines)
            for span in table.rows:
                rows[span] = (table.header or carried, table_number)
        pos = 0
        for a, b in split_sentences(hit.text, rows=sorted([*rows, *other])):
            if (a, b) in other:
                continue
            if (a, b) in rows:
                header, number = rows[(a, b)]
                out.append(_Candidate(n, pos, quote_row(hit.text[a:b], header), number))
                pos += 1
                continue
            for sentence in _strip_headings(hit.text[a:b]):
                if len(sentence.split()) >= 4:
                    out.append(_Candidate(n, pos, sentence))
                    pos += 1
    return out


def quote_row(row: str, header: str) -> str:
    """A table row as the answer quotes it: whole, after its column headers when there are any.

    A Markdown table row (a Word, Excel or HTML table) is read cell by cell under its column names, as
    a person would say it, rather than quoted with its pipes.

    >>> quote_row("Tenth … 24", "Vacation Years Workdays")
    'Vacation Years Workdays: Tenth … 24'
    >>> quote_row("| 10 years or more | 28 days |", "| Years of service | Days of leave |")
    'Years of service: 10 years or more; Days of leave: 28 days'
    """
    row = " ".join(row.split())
    header = " ".join(header.split()).rstrip(":").removesuffix(LEADER).strip()
    row_cells, header_cells = _pipe_cells(row), _pipe_cells(header)
    if row_cells and len(row_cells) == len(header_cells):
        return "; ".join(f"{h}: {c}" if h else c for h, c in zip(header_cells, row_cells, strict=True) if c)
    if row_cells:
        row = " | ".join(c for c in row_cells if c)
    return f"{header}: {row}" if header else row


def _pipe_cells(line: str) -> list[str]:
    """The cells of a Markdown table row ("| a | b |"), or [] for a line that is not one."""
    if not (line.startswith("|") and line.endswith("|") and len(line) > 1):
        return []
    return [cell.strip() for cell in line[1:-1].split("|")]


def term_overlap(question: str, text: str) -> float:
    """The share of the question's content words and numbers that the text has. A number counts when
    the text writes it any way ("10 years" ~ "Tenth", "two" ~ "2") or states a range that holds it
    ("about 300 hours" ~ "241-560"), so the row or sentence with the question's number wins.

    >>> term_overlap("Vacation days after 10 years?", "Vacation Years Workdays: Tenth … 24")
    0.6
    """
    terms = {t for t in query_terms(question) if not numbers.NUMBER.fullmatch(t)}
    wanted = numbers.quantities(question)
    if not terms and not wanted:
        return 0.0
    found = len(terms & set(query_terms(text))) + len(numbers.matched(wanted, text))
    return found / (len(terms) + len(wanted))


_LIST_ITEM = re.compile(r"\s*(?:[-\u2022*]|\d+[.)])\s")
QUANTITY_BONUS = 0.1
_ASKS_QUANTITY = re.compile(
    r"\b(how (many|much|long|often|far|soon|early|late)|what (percentage|percent|proportion|share|amount|rate)"
    r"|by how much|when (do|does|did|is|are|can|will|must|should)|what('s| is| are) the (salary|rate|amount|"
    r"maximum|minimum|most|least|longest|shortest|limit|cap|pay|copay|fee|deadline))\b",
    re.IGNORECASE,
)
_STATES_QUANTITY = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
    r"hundred|half|quarter|first|second|third|fourth|fifth|tenth|annually|weekly|monthly|daily|biweekly)\b",
    re.IGNORECASE,
)


def answers_with_figure(question: str, text: str) -> bool:
    """True when the question asks for a figure and the text states one; when the question names numbers
    of its own ("after 10 years", "about 300 hours"), the text must also meet them (rag_core.numbers:
    "Tenth", "241-560") and state a figure besides: the row of the table that applies, not its neighbours,
    and not a sentence that only happens to hold a number.

    >>> q = "How many vacation days after 10 years?"
    >>> answers_with_figure(q, "Tenth … 24"), answers_with_figure(q, "Ninth … 23")
    (True, False)
    >>> answers_with_figure(q, "Employees who earn 10 days' pay a month get vacation.")
    False
    """
    if not asks_for_quantity(question) or not states_quantity(text):
        return False
    wanted = numbers.quantities(question)
    if not wanted:
        return True
    if not numbers.matched(wanted, text):
        return False
    named = {value for value, _ in wanted}
    return any(m.value not in named for m in numbers.mentions(text)) or _FIGURE.search(text) is not None


_FIGURE = re.compile(r"\d%|[$£€]\s?\d|\d\.\d")


def asks_for_quantity(question: str) -> bool:
    """True when the question asks for a number, an amount, a duration or a date.

    >>> asks_for_quantity("How many weeks of vacation do I get?"), asks_for_quantity("Can I work from home?")
    (True, False)
    """
    return _ASKS_QUANTITY.search(question) is not None


def states_quantity(sentence: str) -> bool:
    """True when the sentence states a figure, in digits or in words.

    >>> states_quantity("Leave is twenty (20) days."), states_quantity("Leave must be approved.")
    (True, False)
    """
    return _STATES_QUANTITY.search(sentence) is not None


_HEADING_LINE = re.compile(r"^[^.!?;:]{1,80}$")


def _is_heading(line: str) -> bool:
    """A short line without sentence punctuation whose words are mostly capitalised ("Leave Policy")."""
    words = line.split()
    if not 1 <= len(words) <= 8 or not _HEADING_LINE.match(line):
        return False
    capitalised = sum(1 for w in words if w[:1].isupper() or w[:1].isdigit())
    return capitalised >= max(1, (len(words) + 1) // 2)


def _strip_headings(text: str) -> list[str]:
    r"""Split a sentence span at heading lines and drop them: a title is no answer. A line that the
    next line carries on in lower case ("Meals during\nbusiness travel are covered") is the sentence
    wrapping, not a heading.

    >>> _strip_headings("Smoking Policy\nSmoking is allowed only in\ndesignated areas.")
    ['Smoking is allowed only in designated areas.']
    >>> _strip_headings("Meals during\nbusiness travel are covered up to 60 dollars per day.")
    ['Meals during business travel are covered up to 60 dollars per day.']
    """
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    out: list[list[str]] = [[]]
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if not nxt[:1].islower() and _is_heading(line):
            out.append([])
        else:
            out[-1].append(line)
    return [" ".join(" ".join(part).split()) for part in out if part]
