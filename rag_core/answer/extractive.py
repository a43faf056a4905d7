"""The default answerer: quotes the retrieved passages' best sentences with [n] citations; no weights.

Nothing is paraphrased, so nothing is invented: every sentence of an answer is a sentence of a cited
passage.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np

from rag_core.answer.generators import Encode
from rag_core.answer.prompt import EXTRACTIVE_NO_CONTEXT, build_prompt
from rag_core.chunking import split_sentences
from rag_core.display import query_terms
from rag_core.types import Hit


class ExtractiveGenerator:
    """Quotes the 1-3 sentences of the retrieved passages that best answer the question.

    Sentence score = cosine(sentence, question) + 0.3 x the share of the question's content words the
    sentence contains + a small bonus for higher-ranked passages + a bonus for a sentence that states a
    quantity when the question asks for one (how many / how long / how much / when / what percentage):
    the answer then leads with the figure. Sentences close to the best one (by score) join it, unless
    they repeat it; a chosen sentence that ends in a colon brings the line after it (the list it
    introduces). Nothing is paraphrased, so nothing is invented.
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
        """(passage number, sentence) pairs, in reading order."""
        candidates: list[tuple[int, int, str]] = []  # (passage number, position, sentence)
        for n, hit in enumerate(hits, 1):
            pos = 0
            for a, b in split_sentences(hit.text):
                for sentence in _strip_headings(hit.text[a:b]):
                    if len(sentence.split()) >= 4:
                        candidates.append((n, pos, sentence))
                        pos += 1
        # A line ending in a colon with nothing after it in its passage ("With respect to working from
        # home:") introduces text the passage does not hold: never an answer on its own.
        following = {(c[0], c[1]) for c in candidates}
        candidates = [c for c in candidates if not c[2].rstrip().endswith(":") or (c[0], c[1] + 1) in following]
        if not candidates:
            return [(n, " ".join(h.text.split())) for n, h in enumerate(hits[:1], 1)]
        vectors = self.encode([question] + [c[2] for c in candidates])
        q, s = vectors[0], vectors[1:]
        cos = s @ q
        terms = set(query_terms(question))
        overlap = np.array(
            [len(terms & set(query_terms(c[2]))) / len(terms) if terms else 0.0 for c in candidates], dtype=np.float32
        )
        rank_bonus = np.array([0.05 / c[0] for c in candidates], dtype=np.float32)
        wants_quantity = asks_for_quantity(question)
        figure = np.array([QUANTITY_BONUS if wants_quantity and states_quantity(c[2]) else 0.0 for c in candidates])
        score = cos + 0.3 * overlap + rank_bonus + figure.astype(np.float32)
        order = np.argsort(-score)
        chosen = [int(order[0])]
        for i in order[1:]:
            if len(chosen) >= self.max_sentences or score[i] < score[order[0]] - self.margin:
                break
            if all(float(s[i] @ s[j]) < 0.9 for j in chosen):
                chosen.append(int(i))
        position = {(c[0], c[1]): i for i, c in enumerate(candidates)}
        for i in list(chosen):  # "... aligned to your grade:" is no answer without the list after it
            nxt = position.get((candidates[i][0], candidates[i][1] + 1))
            if candidates[i][2].rstrip().endswith(":") and nxt is not None and nxt not in chosen:
                chosen.append(nxt)
        chosen.sort(key=lambda i: (candidates[i][0], candidates[i][1]))
        return [(candidates[i][0], candidates[i][2]) for i in chosen]

    def compose(self, question: str, hits: Sequence[Hit]) -> str:
        return " ".join(f"{sentence} [{n}]" for n, sentence in self.select(question, hits))


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
    r"""Split a sentence span at heading lines and drop them: a title is no answer.

    >>> _strip_headings("Smoking Policy\nSmoking is allowed only in\ndesignated areas.")
    ['Smoking is allowed only in designated areas.']
    """
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    out: list[list[str]] = [[]]
    for line in lines:
        if _is_heading(line):
            out.append([])
        else:
            out[-1].append(line)
    return [" ".join(" ".join(part).split()) for part in out if part]
