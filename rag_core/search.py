"""The Searcher: query -> ranked hits with document, page, score and text; dense, BM25 and hybrid.

It owns retrieval only: query encoding (through the embedder it is handed), the vector search in the
store, the BM25 index, and fusing the two. It knows nothing of files, chunking or answers.

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

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import overload

import numpy as np

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.lexical import LexicalIndex
from rag_core.scoping import Scope, Scoper
from rag_core.store import KnowledgeStore
from rag_core.types import METRICS, MODES, FloatArray, Hit, Metric, Mode


def search_vectors(
    store: KnowledgeStore,
    query_vectors: FloatArray,
    query_norms: FloatArray,
    k: int,
    metric: Metric = "cosine",
) -> list[list[Hit]]:
    """Top-k hits for each query vector (rows of `query_vectors`, unit length)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1; got k={k}")
    q = np.atleast_2d(query_vectors).astype(np.float32)
    if metric == "cosine":
        # Ask for a few more than k: a document deleted since our index snapshot has no rows any more.
        scores, ids = store.search(q, k + 8)
        ranked = [list(zip(s.tolist(), i.tolist(), strict=True)) for s, i in zip(scores, ids, strict=True)]
    else:
        ranked = [_scan(store, q[j], float(query_norms[j]), k + 8, metric) for j in range(q.shape[0])]
    all_ids = sorted({cid for row in ranked for _, cid in row if cid >= 0})
    rows = store.chunks_by_ids(all_ids)
    out: list[list[Hit]] = []
    for row in ranked:
        hits: list[Hit] = []
        for score, cid in row:
            chunk = rows.get(cid)
            if chunk is None:
                continue
            hits.append(Hit.from_row(chunk, rank=len(hits) + 1, score=float(score)))
            if len(hits) == k:
                break
        out.append(hits)
    return out


def metric_scores(unit: FloatArray, norms: FloatArray, q_unit: FloatArray, q_norm: float, metric: Metric) -> FloatArray:
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


def _scan(store: KnowledgeStore, q_unit: FloatArray, q_norm: float, k: int, metric: Metric) -> list[tuple[float, int]]:
    ids, unit = store.vectors()
    if len(ids) == 0:
        return []
    norm_by_id = {c.chunk_id: c.norm for c in store.chunks_by_ids(ids.tolist()).values()}
    norms = np.array([norm_by_id.get(int(i), 1.0) for i in ids], dtype=np.float32)
    scores = metric_scores(unit, norms, q_unit, q_norm, metric)
    top = np.argsort(-scores)[:k]
    return [(float(scores[t]), int(ids[t])) for t in top]


@dataclass(frozen=True)
class Fused:
    chunk_id: int
    fused_score: float
    dense_rank: int | None
    bm25_rank: int | None
    bm25_score: float | None


def fuse(
    dense: Sequence[int],
    lexical: Sequence[tuple[float, int]],
    k: int,
    rrf_k: float = 60.0,
    dense_weight: float = 1.0,
    bm25_weight: float = 1.0,
) -> list[Fused]:
    """Reciprocal rank fusion: score(c) = w_dense / (rrf_k + rank_dense(c)) + w_bm25 / (rrf_k + rank_bm25(c)).

    RRF uses ranks only, so BM25's unbounded scores and cosine similarities need no calibration
    against each other; rrf_k = 60 (Cormack et al., 2009) damps the advantage of the very top ranks.

    >>> [(f.chunk_id, f.dense_rank, f.bm25_rank) for f in fuse([7, 8, 9], [(3.0, 9), (2.0, 5)], k=3)]
    [(9, 3, 1), (7, 1, None), (8, 2, None)]
    """
    if k < 1:
        raise ValueError(f"k must be >= 1; got k={k}")
    if rrf_k <= 0:
        raise ValueError(f"rrf_k must be > 0; got rrf_k={rrf_k}")
    dense_rank = {cid: r for r, cid in enumerate(dense, 1)}
    bm25_rank = {cid: r for r, (_, cid) in enumerate(lexical, 1)}
    bm25_score = {cid: s for s, cid in lexical}
    scores: dict[int, float] = {}
    for cid, r in dense_rank.items():
        scores[cid] = scores.get(cid, 0.0) + dense_weight / (rrf_k + r)
    for cid, r in bm25_rank.items():
        scores[cid] = scores.get(cid, 0.0) + bm25_weight / (rrf_k + r)
    order = sorted(scores, key=lambda c: (-scores[c], dense_rank.get(c, 10**9)))[:k]
    return [Fused(c, scores[c], dense_rank.get(c), bm25_rank.get(c), bm25_score.get(c)) for c in order]


def fuse_scores(
    dense: Sequence[tuple[float, int]],
    lexical: Sequence[tuple[float, int]],
    k: int,
    dense_weight: float = 0.7,
) -> list[Fused]:
    """Convex combination of min-max normalised scores: w·dense' + (1 − w)·bm25'.

    Each retriever's scores are scaled to [0, 1] over its own candidates (best = 1, worst kept = 0;
    a chunk the other retriever did not return gets 0 there). Unlike RRF it keeps how far apart the
    scores are: a chunk BM25 ranks first by a wide margin (an exact clause number) can overtake dense
    hits that are only slightly better than each other. Measured better than RRF on our eval set
    (benchmarks/eval_retrieval.py); RRF stays available (fusion="rrf").

    >>> [f.chunk_id for f in fuse_scores([(0.9, 1), (0.8, 2), (0.7, 3)], [(9.0, 3), (1.0, 4)], k=3, dense_weight=0.4)]
    [3, 1, 2]
    """
    if k < 1:
        raise ValueError(f"k must be >= 1; got k={k}")
    if not 0.0 <= dense_weight <= 1.0:
        raise ValueError(f"dense_weight must be in [0, 1] for convex fusion; got dense_weight={dense_weight}")

    def scaled(pairs: Sequence[tuple[float, int]]) -> dict[int, float]:
        if not pairs:
            return {}
        lo, hi = min(p[0] for p in pairs), max(p[0] for p in pairs)
        return {cid: (s - lo) / (hi - lo) if hi > lo else 1.0 for s, cid in pairs}

    d, b = scaled(dense), scaled(lexical)
    dense_rank = {cid: r for r, (_, cid) in enumerate(dense, 1)}
    bm25_rank = {cid: r for r, (_, cid) in enumerate(lexical, 1)}
    bm25_score = {cid: s for s, cid in lexical}
    both = d.keys() | b.keys()
    combined = {cid: dense_weight * d.get(cid, 0.0) + (1 - dense_weight) * b.get(cid, 0.0) for cid in both}
    order = sorted(combined, key=lambda c: (-combined[c], dense_rank.get(c, 10**9)))[:k]
    return [Fused(c, combined[c], dense_rank.get(c), bm25_rank.get(c), bm25_score.get(c)) for c in order]


def ranked_hits(
    store: KnowledgeStore,
    fused: Sequence[Fused],
    q_unit: FloatArray,
    dense_scores: dict[int, float],
    k: int,
) -> list[Hit]:
    """Hits in fused order; `score` is always the chunk's cosine similarity to the query.

    Keeping `score` a cosine in every mode keeps one meaning for the number users see and for the
    answer threshold; BM25 and fused scores travel in their own fields.
    """
    ids = [f.chunk_id for f in fused]
    missing = [cid for cid in ids if cid not in dense_scores]
    if missing:
        got, vecs = store.vectors(missing)
        for cid, v in zip(got.tolist(), vecs, strict=True):
            dense_scores[int(cid)] = float(v @ q_unit)
    rows = store.chunks_by_ids(ids)
    hits: list[Hit] = []
    for f in fused:
        row = rows.get(f.chunk_id)
        if row is None:
            continue  # deleted since our snapshot
        hits.append(
            Hit.from_row(
                row,
                rank=len(hits) + 1,
                score=dense_scores.get(f.chunk_id, 0.0),
                dense_rank=f.dense_rank,
                bm25_score=f.bm25_score,
                bm25_rank=f.bm25_rank,
                fused_score=f.fused_score,
            )
        )
        if len(hits) == k:
            break
    return hits


def with_ranks(hits: Sequence[Hit]) -> list[Hit]:
    """Dense hits annotated with their own rank (for a uniform evidence panel)."""
    return [replace(h, dense_rank=h.rank) for h in hits]


def rank_of_first(hits: Sequence[Hit], document: str, pages: Sequence[int]) -> int | None:
    """1-based rank of the first hit on `document` at one of `pages`, or None."""
    for hit in hits:
        if hit.document == document and hit.page in pages:
            return hit.rank
    return None


class Searcher:
    """Dense, BM25 and hybrid retrieval over one store. Safe to share between threads.

    `embedder` is a function rather than a model so that a process that only lists or deletes
    documents never loads one: it is called on the first query.
    """

    def __init__(self, settings: Settings, store: KnowledgeStore, embedder: Callable[[], Embedder]):
        self.settings = settings
        self.store = store
        self._embedder = embedder
        self.lexical = LexicalIndex(store)
        self.scoper = Scoper(store)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dense-search")

    @property
    def default_metric(self) -> Metric:
        """The settings' metric, except that a DPR knowledge base ranks by dot product, as DPR was
        trained, unless a metric other than the default cosine was configured."""
        if self.settings.metric == "cosine":
            return self._embedder().preferred_metric
        return self.settings.metric

    def refresh(self) -> None:
        """Bring what is derived from the rows (the BM25 index) up to the store's new generation now,
        rather than in the next user's query. A failure loses nothing: readers rebuild it themselves."""
        try:
            self.lexical.refresh()
        except Exception as e:  # never fail an ingest or delete over a cache
            logging.getLogger(__name__).warning("BM25 index refresh failed: %s", e)

    def encode(self, queries: list[str]) -> tuple[FloatArray, FloatArray]:
        """(unit query vectors, their norms), with the knowledge base's own query encoder."""
        return self._embedder().encode_query_with_norms(queries)

    def topic(self, query: str) -> str:
        """The query without the organisation or document it names (rag_core.scoping), as scoped
        retrieval ranks passages inside that document; the query itself when it names none."""
        scope = self.scoper.scope(query) if self.settings.scoping else None
        return scope.query if scope is not None and scope.query else query

    def bm25(self, query: str, depth: int) -> list[tuple[float, int]]:
        """Up to `depth` (BM25 score, chunk id) pairs for one query, best first."""
        return self.lexical.search([query], depth)[0]

    @overload
    def search(
        self, query: str, k: int | None = None, metric: Metric | None = None, mode: Mode | None = None
    ) -> list[Hit]: ...
    @overload
    def search(
        self, query: list[str], k: int | None = None, metric: Metric | None = None, mode: Mode | None = None
    ) -> list[list[Hit]]: ...

    def search(
        self, query: str | list[str], k: int | None = None, metric: Metric | None = None, mode: Mode | None = None
    ) -> list[Hit] | list[list[Hit]]:
        """Top-k hits for a query (or a list of queries: one list of hits each). Empty KB -> no hits.

        mode: dense (embeddings, ranked by `metric`), bm25 (keywords) or hybrid (both, fused as the
        settings say). In every mode each hit's `score` is its cosine similarity (see `Hit`).
        """
        k = k or self.settings.top_k
        mode = mode or self.settings.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
        queries = [query] if isinstance(query, str) else list(query)
        if self.store.size == 0 or not queries:
            empty: list[list[Hit]] = [[] for _ in queries]
            return empty[0] if isinstance(query, str) else empty
        metric = metric or self.default_metric
        vectors, norms = self.encode(queries)
        if mode == "dense":
            results = [with_ranks(h) for h in search_vectors(self.store, vectors, norms, k, metric)]
        else:
            results = self._fused(queries, vectors, norms, k, metric, mode)
        return results[0] if isinstance(query, str) else results

    def _fused(
        self, queries: list[str], vectors: FloatArray, norms: FloatArray, k: int, metric: Metric, mode: Mode
    ) -> list[list[Hit]]:
        """BM25 alone, or BM25 fused with dense search over each retriever's top `fusion_depth`."""
        s = self.settings
        depth = max(k, s.fusion_depth)
        # Both retrievers at once: dense search waits on the database or FAISS (neither holds the GIL)
        # while BM25 sums its columns here; at 1M chunks in PostgreSQL that hides most of BM25's time.
        pending = (
            self._pool.submit(search_vectors, self.store, vectors, norms, depth, metric) if mode == "hybrid" else None
        )
        lexical = self.lexical.search(queries, depth)
        dense = pending.result() if pending is not None else None
        scopes = [self.scoper.scope(q) if s.scoping else None for q in queries]
        results: list[list[Hit]] = []
        for j, q_hits in enumerate(lexical):
            dense_pairs = [(h.score, h.chunk_id) for h in dense[j]] if dense is not None else []
            scope = scopes[j]
            if scope is not None:
                dense_pairs, q_hits = self._within(scope, queries[j], depth, dense is not None)
                fused = fuse_scores(dense_pairs, q_hits, k, dense_weight=s.dense_weight if dense_pairs else 0.0)
                results.append(ranked_hits(self.store, fused, vectors[j], {}, k))
                continue
            if s.fusion == "convex" and dense is not None:
                fused = fuse_scores(dense_pairs, q_hits, k, dense_weight=s.dense_weight)
            else:
                fused = fuse(
                    [cid for _, cid in dense_pairs],
                    q_hits,
                    k,
                    rrf_k=s.rrf_k,
                    dense_weight=s.dense_weight,
                    bm25_weight=s.bm25_weight,
                )
            cosines = {h.chunk_id: h.score for h in dense[j]} if dense is not None and metric == "cosine" else {}
            results.append(ranked_hits(self.store, fused, vectors[j], cosines, k))
        return results

    def _within(
        self, scope: Scope, query: str, depth: int, dense: bool
    ) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
        """Both retrievers' candidates inside the documents a question names, ranked by the question
        without the name (see rag_core.scoping): (dense (cosine, id) pairs, BM25 (score, id) pairs).
        Hits' scores stay cosines to the whole question, as everywhere (the chunks' context carries
        their document's title, so the name belongs in the score users see and refusals read).

        Dense is an exact scan of the named documents' vectors; BM25 ranks the whole knowledge base
        and keeps the named documents' chunks, so its IDF stays the knowledge base's."""
        text = scope.query or query
        ids = set(self.scoper.chunk_ids(scope.document_ids))
        lexical = [(sc, cid) for sc, cid in self.lexical.search([text], max(depth, self.store.size))[0] if cid in ids]
        if not dense or not ids:
            return [], lexical[:depth]
        got, unit = self.store.vectors(sorted(ids))
        cos = unit @ self.encode([text])[0][0]
        top = np.argsort(-cos)[:depth]
        return [(float(cos[t]), int(got[t])) for t in top], lexical[:depth]
