"""The PostgreSQL store's vectors: the typed vector column, its approximate index (IVFFlat by default, or
HNSW), top-k search and the tuning of the index's search breadth (`ivfflat.probes`, `hnsw.ef_search`).

The `chunks.embedding` column is an untyped `vector` while the store is empty and `vector(dim)` from the
first write on: an index needs a fixed dimension, and the typed column refuses a vector of another
model's dimension. The column's type and its index are dropped when the last document goes.

Why searches stay exact below `ann_threshold`: exact search is perfect and fast for thousands of
chunks, as in the local store. The index (inner product, `vector_ip_ops`; `<#>` is the negative inner
product) is built when the store first reaches the threshold (`PostgresStore._next_generation`); its
breadth is then set to twice the smallest rung of its ladder whose recall@10 against exact search on
the tuning queries (stored vectors pushed away by noise, `tuning_queries`) reaches `ANN_TARGET_RECALL`,
inside the write's transaction, so the recorded breadth and recall describe committed rows.

Why IVFFlat by default, like the local store's FAISS IVF: measured at 1M chunks on this machine
(benchmarks/RESULTS.md, "PostgreSQL at scale"), real questions, which sit away from every passage, lost
whole neighbourhoods in HNSW (recall@10 0.90 at pgvector's largest ef_search, even with a denser graph),
while IVFFlat's lists, routed by centroid, reached 0.99 at a similar latency and built in 1 minute
against 10. IVF lists are trained on the rows there are, so they are rebuilt when the store has doubled
or halved since (`REBUILD_FACTOR`); HNSW grows with every insert. `RAG_PG_INDEX=hnsw` selects HNSW.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rag_core.store.pgrows import as_array
from rag_core.store.pgschema import Conn
from rag_core.store.vectors import ANN_TARGET_RECALL, ANN_TUNE_QUERIES, tuning_queries
from rag_core.types import FloatArray, IndexInfo, IndexKind, IntArray, PgIndexKind

INDEX_NAMES: dict[PgIndexKind, str] = {"ivfflat": "chunks_ivf", "hnsw": "chunks_hnsw"}
MAX_INDEX_DIMENSION = 2000  # pgvector cannot index longer vectors; such stores are searched exactly
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
REBUILD_FACTOR = 2.0  # IVF lists are retrained when the store is this many times larger (or smaller)
EXACT_SCAN_BATCH = 20_000  # rows per fetch of the tuning's exact scan (20k x 384 floats: ~30 MB)
EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1000)  # 1000: pgvector's maximum
PROBE_LADDER = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
_SEARCH = "SELECT id, embedding <#> %(q)s FROM chunks ORDER BY embedding <#> %(q)s LIMIT %(k)s"
_PAD_SCORE = np.float32(-3.4028235e38)  # what FAISS reports beside an id of -1


def set_dimension(db: Conn, dimension: int) -> None:
    """Type the vector column for the store's first vectors (the index comes with the threshold)."""
    db.execute(f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({int(dimension)})".encode())


def ivf_lists(size: int) -> int:
    """pgvector's advice for IVFFlat's list count: rows / 1000 up to 1M rows, their square root above.

    >>> ivf_lists(20_000), ivf_lists(1_000_000), ivf_lists(4_000_000)
    (20, 1000, 2000)
    """
    return max(1, size // 1000 if size <= 1_000_000 else int(math.sqrt(size)))


def build_index(db: Conn, kind: PgIndexKind, size: int) -> int:
    """(Re)build the store's index of `kind`, replacing any other; returns IVF's list count (0 for HNSW).

    The new index is built beside the old one and takes its name only then: other connections keep
    searching with the old index while the new one builds (they cannot see it before the commit), and
    the table lock that dropping the old one takes lasts from the swap to the commit, not through the
    build (rag_core.store.pgindex's docstring: IVF is rebuilt when the store doubles).

    HNSW is built with a denser graph than pgvector's default (m 16, ef_construction 64): near-copies
    (versions, boilerplate) form tight clusters the default graph links poorly; at 100k chunks recall@10
    on questions rose from 0.96 to 0.997 (benchmarks/RESULTS.md)."""
    name, lists = INDEX_NAMES[kind], 0 if kind == "hnsw" else ivf_lists(size)
    db.execute(f"DROP INDEX IF EXISTS {name}_next".encode())
    if kind == "hnsw":
        db.execute(
            f"CREATE INDEX {name}_next ON chunks USING hnsw (embedding vector_ip_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})".encode()
        )
    else:
        db.execute(
            f"CREATE INDEX {name}_next ON chunks USING ivfflat (embedding vector_ip_ops) "
            f"WITH (lists = {lists})".encode()
        )
    drop_index(db)
    db.execute(f"ALTER INDEX {name}_next RENAME TO {name}".encode())
    return lists


def drop_index(db: Conn) -> None:
    for name in INDEX_NAMES.values():
        db.execute(f"DROP INDEX IF EXISTS {name}".encode())


def clear_dimension(db: Conn) -> None:
    """An emptied store forgets its dimension: the next embedder may have another."""
    drop_index(db)
    db.execute("ALTER TABLE chunks ALTER COLUMN embedding TYPE vector")


def existing_index(db: Conn) -> PgIndexKind | None:
    for kind, name in INDEX_NAMES.items():
        if db.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone() == (True,):
            return kind
    return None


def search(
    db: Conn, queries: FloatArray, k: int, breadth: int | None, kind: PgIndexKind = "hnsw"
) -> tuple[FloatArray, IntArray]:
    """Inner-product top-k of each query: exact (a scan of every vector) when `breadth` is None, else
    through the index of `kind` with that breadth (IVF probes, HNSW ef_search). Ids of -1 pad rows the
    index returned short.

    Run in one transaction (a savepoint inside a write), whose settings are set for both kinds every
    time, since a released savepoint keeps them for what follows."""
    scores = np.full((len(queries), k), _PAD_SCORE, dtype=np.float32)
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    exact = breadth is None or (kind == "hnsw" and k > EF_LADDER[-1])
    with db.transaction():
        db.execute("SET LOCAL enable_indexscan = off" if exact else "SET LOCAL enable_indexscan = on")
        db.execute("SET LOCAL enable_seqscan = on" if exact else "SET LOCAL enable_seqscan = off")
        if not exact and kind == "hnsw":
            db.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(max(int(breadth or 0), k)),))
        elif not exact:
            db.execute("SELECT set_config('ivfflat.probes', %s, true)", (str(int(breadth or 1)),))
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


def tuning_truth(db: Conn, size: int) -> tuple[FloatArray, IntArray]:
    """(the tuning queries, their exact top-10 ids): stored vectors pushed away by noise, and one streamed
    exact scan. Needs no index, so a rebuild computes it before it takes the table lock."""
    queries = tuning_queries(sample_vectors(db, ANN_TUNE_QUERIES), seed=0)
    return queries, exact_top_k(db, queries, min(10, size))


def tune(
    db: Conn,
    kind: PgIndexKind,
    truth: tuple[FloatArray, IntArray],
    lists: int = 0,
    target: float = ANN_TARGET_RECALL,
) -> tuple[int, float]:
    """(breadth, its recall@10 against exact search on the tuning queries): twice the smallest rung of the
    kind's ladder (IVF: probes up to its `lists`; HNSW: ef_search) reaching `target`, at most the top rung.
    The doubling is the local IVF index's margin for the same reason: queries away from the stored
    vectors are harder than the perturbed ones (held-out queries in tests/store/test_postgres.py and
    benchmarks/pg_scale.py)."""
    ladder: Sequence[int] = EF_LADDER if kind == "hnsw" else [p for p in PROBE_LADDER if p < lists] + [lists]
    queries, exact = truth

    def recall(breadth: int) -> float:
        return recall_at(exact, search(db, queries, exact.shape[1], breadth, kind)[1])

    reached = next((b for b in ladder if recall(b) >= target), ladder[-1])
    breadth = min(2 * reached, ladder[-1])
    return breadth, recall(breadth)


def serve(db: Conn, kind: PgIndexKind, before: IndexInfo, size: int, tuned_at: int, retune: float = 0.1) -> IndexInfo:
    """The index that serves a store of `size` chunks at or above the threshold, built or tuned as needed:
    built when missing or of the other kind, IVF's lists rebuilt when the store has grown or shrunk
    REBUILD_FACTOR-fold since they were trained (`trained_size`), and the breadth re-tuned when the store
    has changed by more than `retune` since it was tuned (`tuned_at`). Returns `before` itself when
    nothing needed doing (the caller records a new tuning otherwise)."""
    info_kind: IndexKind = "ivf" if kind == "ivfflat" else "hnsw"
    trained, lists = before.trained_size, before.nlist
    stale = kind == "ivfflat" and not (trained / REBUILD_FACTOR <= size <= trained * REBUILD_FACTOR)
    rebuild = existing_index(db) != kind or before.kind != info_kind or stale
    if not rebuild and abs(size - tuned_at) <= retune * tuned_at:
        return before  # tuned on nearly this store; recall as measured then
    truth = tuning_truth(db, size)  # before a rebuild locks the table
    if rebuild:
        lists, trained = build_index(db, kind, size), size
    breadth, recall = tune(db, kind, truth, lists)
    if kind == "hnsw":
        return IndexInfo("hnsw", size, recall_at_10=recall, trained_size=trained, ef_search=breadth)
    return IndexInfo("ivf", size, nlist=lists, nprobe=breadth, recall_at_10=recall, trained_size=trained)
