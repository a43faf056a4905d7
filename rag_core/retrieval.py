"""Query -> ranked hits with document, page, score and text.

Similarity metrics (the seed lab's dot-vs-cosine experiment):

* cosine: q·d / (|q||d|). The FAISS index holds unit vectors, so cosine is one inner-product search.
* dot:    q·d on the raw (un-normalised) vectors = cosine · |q| · |d|. Long vectors win more often.
* l2:     |q - d| on the raw vectors; smaller is closer. We report it as a negative distance so that
          "higher is better" holds for every metric.

For unit vectors the three rank identically: |q - d|² = |q|² + |d|² - 2 q·d = 2 - 2 cos, and q·d = cos.
all-MiniLM-L6-v2 ends in a Normalize layer, so its raw vectors already have norm 1 and the three
metrics agree exactly. They differ for models whose vectors vary in length (mean-pooled BERT, DPR):
there dot product favours long vectors (often long or frequent-word passages), and L2 favours vectors
of a similar length to the query. The KB keeps each chunk's original norm so dot and L2 are computed on
the true raw vectors, by an exact scan (they are for analysis; cosine is the fast path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from rag_core.config import METRICS
from rag_core.embedding import FloatArray
from rag_core.store import KnowledgeBase


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    document: str
    document_id: str
    page: int
    chunk_id: int
    text: str
    start: int = 0
    end: int = 0

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("start")
        d.pop("end")
        return d


def search_vectors(
    kb: KnowledgeBase,
    query_vectors: FloatArray,
    query_norms: FloatArray,
    k: int,
    metric: str = "cosine",
) -> list[list[Hit]]:
    """Top-k hits for each query vector (rows of `query_vectors`, unit length)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1; got k={k}")
    q = np.atleast_2d(query_vectors).astype(np.float32)
    if metric == "cosine":
        # Ask for a few more than k: a document deleted since our index snapshot has no rows any more.
        scores, ids = kb.search(q, k + 8)
        ranked = [list(zip(s.tolist(), i.tolist(), strict=True)) for s, i in zip(scores, ids, strict=True)]
    else:
        ranked = [_scan(kb, q[j], float(query_norms[j]), k + 8, metric) for j in range(q.shape[0])]
    all_ids = sorted({cid for row in ranked for _, cid in row if cid >= 0})
    rows = kb.chunks_by_ids(all_ids)
    out: list[list[Hit]] = []
    for row in ranked:
        hits: list[Hit] = []
        for score, cid in row:
            chunk = rows.get(cid)
            if chunk is None:
                continue
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    score=float(score),
                    document=chunk.document,
                    document_id=chunk.document_id,
                    page=chunk.page,
                    chunk_id=chunk.chunk_id,
                    text=chunk.text,
                    start=chunk.start,
                    end=chunk.end,
                )
            )
            if len(hits) == k:
                break
        out.append(hits)
    return out


def metric_scores(unit: FloatArray, norms: FloatArray, q_unit: FloatArray, q_norm: float, metric: str) -> FloatArray:
    """Scores of every row of `unit` for one query under `metric` (higher = closer).

    >>> u = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> metric_scores(u, np.array([2.0, 1.0], dtype=np.float32), u[1], 1.0, "dot").tolist()
    [0.0, 1.0]
    """
    cos = unit @ q_unit
    if metric == "cosine":
        return cos.astype(np.float32)
    if metric == "dot":
        return (cos * norms * q_norm).astype(np.float32)
    if metric == "l2":
        sq = norms**2 + q_norm**2 - 2 * cos * norms * q_norm
        return (-np.sqrt(np.maximum(sq, 0.0))).astype(np.float32)
    raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")


def _scan(kb: KnowledgeBase, q_unit: FloatArray, q_norm: float, k: int, metric: str) -> list[tuple[float, int]]:
    ids, unit = kb.vectors()
    if len(ids) == 0:
        return []
    norm_by_id = {c.chunk_id: c.norm for c in kb.chunks_by_ids(ids.tolist()).values()}
    norms = np.array([norm_by_id.get(int(i), 1.0) for i in ids], dtype=np.float32)
    scores = metric_scores(unit, norms, q_unit, q_norm, metric)
    top = np.argsort(-scores)[:k]
    return [(float(scores[t]), int(ids[t])) for t in top]


def rank_of_first(hits: Sequence[Hit], document: str, pages: Sequence[int]) -> int | None:
    """1-based rank of the first hit on `document` at one of `pages`, or None."""
    for hit in hits:
        if hit.document == document and hit.page in pages:
            return hit.rank
    return None
