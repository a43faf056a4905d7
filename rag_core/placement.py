"""Put new points on an existing 2-D map by their nearest neighbours, many at once.

Why by neighbours: t-SNE has no cheap out-of-sample mapping (openTSNE's `transform` takes seconds per
batch), but a map is read as neighbourhoods, so a point drawn where its nearest chunks are is faithful
to what the map shows. The same placement serves a typed query, a log of employees' questions, and
the chunks of a fresh ingest drawn on the previous map while the full map is recomputed.

Why in its own module: it needs only arrays (no store, no map type), so rag_core.maps and the question
overlay both use it without importing each other.
"""

from __future__ import annotations

import numpy as np

from rag_core.types import FloatArray

# Weights are exp(SHARPNESS · (similarity − best similarity)): a neighbour 0.05 less similar than the
# best counts e^-1 as much, so a point sits with its closest neighbours rather than at their centroid.
SHARPNESS = 20.0
# Rows of the similarity matrix computed at a time: bounds memory to BATCH × chunks floats.
BATCH = 1024


def place_by_neighbours(
    coords: FloatArray, vectors: FloatArray, points: FloatArray, k: int = 10
) -> tuple[FloatArray, FloatArray]:
    """Map positions of `points` (unit vectors, (m, dim)) on a map whose `vectors` (n, dim) sit at
    `coords` (n, 2), and each point's cosine to its nearest mapped vector.

    Each position is the sharpened similarity-weighted mean of the point's k nearest vectors' coordinates.
    With nothing mapped, every point goes to the origin with similarity -1 (far from everything).

    >>> coords = np.array([[0.0, 0.0], [10.0, 0.0]], dtype=np.float32)
    >>> vectors = np.eye(2, dtype=np.float32)
    >>> xy, nearest = place_by_neighbours(coords, vectors, np.array([[0.0, 1.0]], dtype=np.float32), k=1)
    >>> xy.tolist(), nearest.tolist()
    ([[10.0, 0.0]], [1.0])
    """
    q = np.atleast_2d(np.asarray(points, dtype=np.float32))
    m, n = len(q), len(vectors)
    if n == 0 or m == 0:
        return np.zeros((m, 2), np.float32), np.full(m, -1.0, np.float32)
    k = max(1, min(k, n))
    xy = np.empty((m, 2), np.float32)
    nearest = np.empty(m, np.float32)
    base = np.asarray(vectors, dtype=np.float32)
    where = np.asarray(coords, dtype=np.float32)
    for start in range(0, m, BATCH):
        sims = q[start : start + BATCH] @ base.T  # (b, n)
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(sims), 1))
        top_sims = np.take_along_axis(sims, top, axis=1)  # (b, k)
        best = top_sims.max(axis=1, keepdims=True)
        w = np.exp((top_sims - best) * SHARPNESS)
        xy[start : start + BATCH] = (where[top] * w[:, :, None]).sum(axis=1) / w.sum(axis=1, keepdims=True)
        nearest[start : start + BATCH] = best[:, 0]
    return xy, nearest
