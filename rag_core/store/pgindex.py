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
    if dimension <= HNSW_MAX_DIMENSION:
        db.execute("CREATE INDEX IF NOT EXISTS chunks_hnsw ON chunks USING hnsw (embedding vector_ip_ops)")


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
    _, truth = search(db, queries, k, None)
    reached = next((ef for ef in ladder if recall_at(truth, search(db, queries, k, ef)[1]) >= target), ladder[-1])
    ef = min(2 * reached, ladder[-1])
    return ef, recall_at(truth, search(db, queries, k, ef)[1])
