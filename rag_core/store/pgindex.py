"""The PostgreSQL store's vectors: the typed vector column, its HNSW index, top-k search and the tuning
of `hnsw.ef_search`.

The `chunks.embedding` column is an untyped `vector` while the store is empty and `vector(dim)` from the
first write on: an HNSW index needs a fixed dimension, and the typed column refuses a vector of another
model's dimension. The HNSW index (inner product, `vector_ip_ops`; `<#>` is the negative inner product)
is created with the typed column and dropped, with the type, when the last document goes.

Why searches stay exact below `ann_threshold`: exact search is perfect and fast for thousands of
chunks, as in the local store. At or above it, searches use the HNSW index with `hnsw.ef_search` set to
twice the smallest of `EF_LADDER` whose recall@10 against exact search on the tuning queries (stored
vectors pushed away by noise, `tuning_queries`) reaches `ANN_TARGET_RECALL`. It is tuned inside the write's
transaction, so the recorded ef_search and recall describe committed rows, when the store first
reaches the threshold and whenever it has changed by more than 10% since the last tuning
(`PostgresStore._next_generation`).
Measurements: benchmarks/RESULTS.md ("PostgreSQL store").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag_core.store.pgrows import as_array
from rag_core.store.pgschema import Conn
from rag_core.store.vectors import ANN_TARGET_RECALL, ANN_TUNE_QUERIES, tuning_queries
from rag_core.types import FloatArray, IntArray

HNSW_MAX_DIMENSION = 2000  # pgvector cannot index longer vectors; such stores are searched exactly
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
EXACT_SCAN_BATCH = 20_000  # rows per fetch of the tuning's exact scan (20k x 384 floats: ~30 MB)
EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1000)  # 1000: pgvector's maximum
_SEARCH = "SELECT id, embedding <#> %(q)s FROM chunks ORDER BY embedding <#> %(q)s LIMIT %(k)s"
_PAD_SCORE = np.float32(-3.4028235e38)  # what FAISS reports beside an id of -1


def set_dimension(db: Conn, dimension: int, *, index: bool = True) -> None:
    """Type the vector column for the store's first vectors and, unless `index` is False (a bulk copy
    builds it once its rows are in: `create_index`), index it."""
    db.execute(f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({int(dimension)})".encode())
    if index:
        create_index(db, dimension)


def create_index(db: Conn, dimension: int) -> None:
    """The HNSW index, with a denser graph than pgvector's default (m 16, ef_construction 64).

    Why: a knowledge base holds many near-copies (versions, boilerplate repeated in every document,
    and the benchmarks' synthetic chunks), tight clusters the default graph links poorly; real questions
    then miss whole neighbourhoods at any ef_search. With `HNSW_M` / `HNSW_EF_CONSTRUCTION` recall@10 on
    real questions rose from 0.96 to 0.997 at 100k chunks, at ef_search 400 instead of 1000, for a
    build ~2.4x as long (benchmarks/RESULTS.md, "PostgreSQL at scale"). An index built before keeps its
    parameters until it is rebuilt (`REINDEX INDEX chunks_hnsw`) or the store is emptied."""
    if dimension <= HNSW_MAX_DIMENSION:
        db.execute(
            "CREATE INDEX IF NOT EXISTS chunks_hnsw ON chunks USING hnsw (embedding vector_ip_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})".encode()
        )


def clear_dimension(db: Conn) -> None:
    """An emptied store forgets its dimension: the next embedder may have another."""
    db.execute("DROP INDEX IF EXISTS chunks_hnsw")
    db.execute("ALTER TABLE chunks ALTER COLUMN embedding TYPE vector")


def has_index(db: Conn) -> bool:
    return db.execute("SELECT to_regclass('chunks_hnsw') IS NOT NULL").fetchone() == (True,)


def search(db: Conn, queries: FloatArray, k: int, ef_search: int | None) -> tuple[FloatArray, IntArray]:
    """Inner-product top-k of each query: exact (a scan of every vector) when `ef_search` is None, else
    through the HNSW index with that breadth. Ids of -1 pad rows the index returned short.

    Run in one transaction (a savepoint inside a write), whose settings are set for both kinds every
    time, since a released savepoint keeps them for what follows."""
    scores = np.full((len(queries), k), _PAD_SCORE, dtype=np.float32)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    exact = ef_search is None or k > EF_LADDER[-1]
    with db.transaction():
        db.execute("SET LOCAL enable_indexscan = off" if exact else "SET LOCAL enable_indexscan = on")
        db.execute("SET LOCAL enable_seqscan = on" if exact else "SET LOCAL enable_seqscan = off")
        if not exact:
            db.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(max(int(ef_search or 0), k)),))
        for row, q in enumerate(queries):
            found = db.execute(_SEARCH, {"q": np.ascontiguousarray(q, dtype=np.float32), "k": k}).fetchall()
            for col, (chunk_id, distance) in enumerate(found):
                ids[row, col], scores[row, col] = int(chunk_id), -float(distance)
    return scores, ids


def sample_vectors(db: Conn, n: int, seed: int = 0) -> FloatArray:
    """Up to `n` stored vectors, drawn at random (reproducibly for one set of chunk ids)."""
    all_ids = np.asarray([int(r[0]) for r in db.execute("SELECT id FROM chunks ORDER BY id").fetchall()])
    rng = np.random.default_rng(seed)
    pick = sorted(int(i) for i in rng.choice(all_ids, size=min(n, len(all_ids)), replace=False))
    with db.cursor(binary=True) as cur:
        found = cur.execute("SELECT embedding FROM chunks WHERE id = ANY(%s) ORDER BY id", (pick,)).fetchall()
    return np.vstack([as_array(v) for (v,) in found])


def exact_top_k(db: Conn, queries: FloatArray, k: int, batch: int = EXACT_SCAN_BATCH) -> IntArray:
    """Chunk ids of each query's exact inner-product top-k (best first), from one pass over every
    stored vector in batches, scored here with NumPy.

    Why not `search(..., None)`: it scans the whole table once per query, ~2.5 s per query at 1M chunks,
    so the 200 tuning queries took 10 minutes of a 1M load; one streamed pass serves them all."""
    best_scores = np.full((len(queries), 0), _PAD_SCORE, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    with db.cursor(name="exact_scan", binary=True) as cur:
        cur.itersize = batch
        cur.execute("SELECT id, embedding FROM chunks")
        while rows := cur.fetchmany(batch):
            ids = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.vstack([as_array(r[1]) for r in rows])
            scores = np.hstack([best_scores, queries @ vecs.T])
            pool = np.hstack([best_ids, np.broadcast_to(ids, (len(queries), len(ids)))])
            keep = np.argpartition(-scores, k - 1, axis=1)[:, :k] if scores.shape[1] > k else None
            if keep is not None:
                scores, pool = np.take_along_axis(scores, keep, 1), np.take_along_axis(pool, keep, 1)
            best_scores, best_ids = scores, pool
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_ids, order, 1)


def recall_at(truth: IntArray, got: IntArray) -> float:
    """Mean share of each exact top-k found by the approximate search."""
    k = truth.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got.tolist(), truth.tolist(), strict=True)]))


def tune_ef_search(
    db: Conn, size: int, target: float = ANN_TARGET_RECALL, ladder: Sequence[int] = EF_LADDER
) -> tuple[int, float]:
    """(ef_search, its recall@10 against exact search on the tuning queries): twice the smallest of
    `ladder` reaching `target` (at most the largest). The doubling is the local IVF index's margin for the
    same reason: queries away from the stored vectors are harder than the perturbed ones (measured on
    held-out queries in tests/store/test_postgres.py and benchmarks/pg_store.py)."""
    queries = tuning_queries(sample_vectors(db, ANN_TUNE_QUERIES), seed=0)
    k = min(10, size)
    truth = exact_top_k(db, queries, k)
    reached = next((ef for ef in ladder if recall_at(truth, search(db, queries, k, ef)[1]) >= target), ladder[-1])
    ef = min(2 * reached, ladder[-1])
    return ef, recall_at(truth, search(db, queries, k, ef)[1])
