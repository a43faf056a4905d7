"""rag_core.placement: many points placed at once on an existing map by their nearest neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from rag_core import placement
from rag_core.placement import place_by_neighbours


def _unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _one_by_one(coords: np.ndarray, vectors: np.ndarray, q: np.ndarray, k: int) -> tuple[float, float, float]:
    """The loop the vectorised version replaces: one point, plain numpy."""
    sims = vectors @ q
    top = np.argsort(-sims)[:k]
    w = np.exp((sims[top] - sims[top].max()) * placement.SHARPNESS)
    x, y = (coords[top] * w[:, None]).sum(axis=0) / w.sum()
    return float(x), float(y), float(sims.max())


def test_batch_matches_one_at_a_time_across_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    vectors, points = _unit(300), _unit(25, seed=1)
    coords = np.random.default_rng(2).normal(size=(300, 2)).astype(np.float32) * 10
    monkeypatch.setattr(placement, "BATCH", 7)  # several batches, the last one short
    xy, nearest = place_by_neighbours(coords, vectors, points, k=10)
    for i, q in enumerate(points):
        x, y, best = _one_by_one(coords, vectors, q, 10)
        np.testing.assert_allclose(xy[i], [x, y], rtol=1e-4, atol=1e-4)
        assert abs(nearest[i] - best) < 1e-5


def test_a_point_equal_to_a_mapped_vector_lands_on_it() -> None:
    vectors = _unit(50)
    coords = np.random.default_rng(3).normal(size=(50, 2)).astype(np.float32) * 20
    xy, nearest = place_by_neighbours(coords, vectors, vectors[[4, 9]], k=5)
    assert np.hypot(*(xy[0] - coords[4])) < 2.0 and np.hypot(*(xy[1] - coords[9])) < 2.0
    np.testing.assert_allclose(nearest, [1.0, 1.0], atol=1e-5)


def test_edge_sizes() -> None:
    vectors, coords = _unit(3), np.zeros((3, 2), np.float32)
    xy, nearest = place_by_neighbours(coords, vectors, _unit(2, seed=5), k=10)  # k above n
    assert xy.shape == (2, 2) and nearest.shape == (2,)
    xy, nearest = place_by_neighbours(coords[:0], vectors[:0], _unit(2, seed=5))
    assert xy.tolist() == [[0.0, 0.0]] * 2 and nearest.tolist() == [-1.0, -1.0]
    xy, nearest = place_by_neighbours(coords, vectors, np.zeros((0, 16), np.float32))
    assert xy.shape == (0, 2) and nearest.shape == (0,)
