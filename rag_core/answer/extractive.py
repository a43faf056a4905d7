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
    sentence contains + a small bonus for higher-ranked passages. Sentences close to the best one (by
    score) join it, unless they repeat it. Nothing is paraphrased, so nothing is invented.
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
        score = cos + 0.3 * overlap + rank_bonus
        order = np.argsort(-score)
        chosen = [int(order[0])]
        for i in order[1:]:
            if len(chosen) >= self.max_sentences or score[i] < score[order[0]] - self.margin:
                break
            if all(float(s[i] @ s[j]) < 0.9 for j in chosen):
                chosen.append(int(i))
        chosen.sort(key=lambda i: (candidates[i][0], candidates[i][1]))
        return [(candidates[i][0], candidates[i][2]) for i in chosen]

    def compose(self, question: str, hits: Sequence[Hit]) -> str:
        return " ".join(f"{sentence} [{n}]" for n, sentence in self.select(question, hits))


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
