"""rag_core.map_questions: employees' questions placed on the map, refused and far ones told apart."""

from __future__ import annotations

import numpy as np
import pytest

from rag_core.map_questions import FAR_BELOW, MapQuestion, question_points, questions_summary
from rag_core.maps import EmbeddingMap
from rag_core.types import ChunkRow, FloatArray


def _emap() -> EmbeddingMap:
    vectors = np.eye(3, dtype=np.float32)
    chunks = [ChunkRow(i + 1, "d", "policy.pdf", 1, 0, 9, f"passage {i}", 1.0) for i in range(3)]
    return EmbeddingMap("tsne", 30.0, 1, np.array([[0, 0], [10, 0], [0, 10]], np.float32), chunks, vectors)


def _encoder(table: dict[str, list[float]]) -> object:
    def encode(texts: list[str]) -> tuple[FloatArray, FloatArray]:
        v = np.array([table[t] for t in texts], dtype=np.float32)
        norms = np.linalg.norm(v, axis=1)
        return v / norms[:, None], norms

    return encode


def test_questions_land_by_their_passages_and_far_ones_are_marked() -> None:
    encode = _encoder({"leave?": [0, 1, 0], "parking?": [-1, -1, -1], "remote?": [0, 0, 1]})
    asked = [("leave?", False), ("parking?", True), ("  ", False), ("remote?", True)]
    points = question_points(_emap(), asked, encode)  # type: ignore[arg-type]
    assert [p.text for p in points] == ["leave?", "parking?", "remote?"]  # the blank one is dropped
    leave, parking, remote = points
    assert leave.xy == pytest.approx((10.0, 0.0), abs=1e-4) and not leave.refused and not leave.far
    assert parking.refused and parking.far and parking.nearest is not None and parking.nearest < FAR_BELOW
    assert remote.xy == pytest.approx((0.0, 10.0), abs=1e-4) and remote.refused and not remote.far  # refused, covered
    assert questions_summary(points).startswith("3 employees' questions: 2 refused, 1 far from any document")


def test_nothing_to_place() -> None:
    def never(texts: list[str]) -> tuple[FloatArray, FloatArray]:
        raise AssertionError("encoded nothing")

    assert question_points(_emap(), [], never) == []
    assert questions_summary([]) == "No employees' questions to show yet."
    assert not MapQuestion("q", (0.0, 0.0), True).far  # unknown distance: never called far
