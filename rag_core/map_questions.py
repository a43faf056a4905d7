"""Employees' questions on the embedding map: which regions of the documents are asked about, which
questions were refused, and which land far from any document (the gaps HR could fill).

Why it takes plain (question, refused) pairs: where questions are logged is another module's business;
this one only places them, so any source of questions can be drawn.

Why "far" means a nearest passage below 0.25 cosine: that is the engine's default refusal floor
(`Settings.min_score`), chosen by cross-validation on answerable and uncovered questions. A question
whose closest passage is below it is one the documents do not speak to. A question is still drawn next
to its nearest passages (a map has no place for "nowhere"), so it is marked rather than moved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag_core.maps import EmbeddingMap, place_questions
from rag_core.types import FloatArray

FAR_BELOW = 0.25
Encoder = Callable[[list[str]], tuple[FloatArray, FloatArray]]  # texts -> (unit vectors, norms)


@dataclass(frozen=True)
class MapQuestion:
    """One asked question as drawn: its text, map position, whether it was refused, and its cosine to
    the nearest passage (None when not known; then it is never called far)."""

    text: str
    xy: tuple[float, float]
    refused: bool
    nearest: float | None = None
    far_below: float = FAR_BELOW

    @property
    def far(self) -> bool:
        return self.nearest is not None and self.nearest < self.far_below


def question_points(
    emap: EmbeddingMap,
    questions: Sequence[tuple[str, bool]],
    encode: Encoder,
    far_below: float = FAR_BELOW,
    k: int = 10,
) -> list[MapQuestion]:
    """Place each (question, refused) on the map by its k nearest passages, in one batch."""
    asked = [(q.strip(), refused) for q, refused in questions if q.strip()]
    if not asked or not emap.chunks:
        return []
    unit, _ = encode([q for q, _ in asked])
    xy, nearest = place_questions(emap, np.asarray(unit, dtype=np.float32), k)
    return [
        MapQuestion(q, (float(x), float(y)), refused, float(s), far_below)
        for (q, refused), (x, y), s in zip(asked, xy.tolist(), nearest.tolist(), strict=True)
    ]


def questions_summary(points: Sequence[MapQuestion]) -> str:
    """One sentence for under the map: how many questions, refused, and far from any document.

    >>> q = lambda refused, nearest: MapQuestion("q", (0.0, 0.0), refused, nearest)
    >>> questions_summary([q(False, 0.6), q(True, 0.1), q(True, 0.5)])
    "3 employees' questions: 2 refused, 1 far from any document (nearest passage below 0.25 similarity)."
    """
    if not points:
        return "No employees' questions to show yet."
    refused = sum(p.refused for p in points)
    far = sum(p.far for p in points)
    noun = "question" if len(points) == 1 else "questions"
    floor = points[0].far_below
    return (
        f"{len(points)} employees' {noun}: {refused} refused, {far} far from any document "
        f"(nearest passage below {floor:g} similarity)."
    )
