"""Look inside the embedding space, in numbers: 2-D maps of all chunks, the query placed on them, metric
comparisons and document-to-document similarity. The plotly figures drawn from these are in
rag_core.figures; this module needs only a knowledge store and a searcher.

Why the query is placed by interpolation, not re-projection: t-SNE has no cheap out-of-sample mapping
(openTSNE's `transform` of one point takes seconds). A query lands where its nearest chunks are, so we
put it at the similarity-weighted mean of its k nearest chunks' map coordinates: milliseconds, and
faithful to what the map shows (neighbourhoods).

Why maps are cached on disk per KB generation: a t-SNE of thousands of chunks takes seconds to tens
of seconds; the KB generation changes on every ingest or delete, so the cache key is exact. The app
subscribes `follow_changes` to the engine's change events, so the default map is computed in a
background thread after each ingest or delete and the page usually finds it ready; a page that asks
while it is being computed waits for that computation instead of starting a second one.

Why a stale map is shown after an ingest: a t-SNE of a few thousand chunks takes up to a minute on a
small server. Until the map of the new state lands, `query_view` draws the previous state's map with
the new chunks placed by their nearest old neighbours (rag_core.placement, as a query is placed), and
says how many were placed so; the page is usable at once instead of waiting behind a spinner.

Why this t-SNE schedule: PCA to 50 dims, then openTSNE with the FFT gradient, 2 interpolation points
per interval and 125 + 375 iterations instead of openTSNE's 250 + 500 with 3 points: several times
faster at nearly the same neighbourhood preservation (`knn_preservation`; benchmarks/RESULTS.md).

What it leaves out: UMAP (no well-kept offline-friendly package in our pins); the page only draws.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from rag_core.display import short_name
from rag_core.placement import place_by_neighbours
from rag_core.search import Searcher, search_vectors
from rag_core.store import KnowledgeStore
from rag_core.types import METRICS, ChunkRow, FloatArray, Hit, KnowledgeChanged, Metric

Method = Literal["tsne", "pca"]
Colouring = Literal["document", "dense", "bm25"]
METHODS: tuple[Method, ...] = get_args(Method)
COLOURINGS: tuple[Colouring, ...] = get_args(Colouring)
DEFAULT_PERPLEXITY = 30.0
# The t-SNE schedule (see the module docstring); openTSNE's defaults are 250, 500 and 3.
TSNE_EARLY_ITER = 125
TSNE_ITER = 375
TSNE_INTERPOLATION_POINTS = 2

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddingMap:
    """2-D coordinates of every chunk, in the order of `chunks`.

    `placed` > 0: an older state's map with that many new chunks placed by their nearest neighbours
    (an approximation shown while the map of this state is computed in the background).
    """

    method: Method
    perplexity: float
    generation: int
    coords: FloatArray  # (n, 2)
    chunks: list[ChunkRow]
    vectors: FloatArray  # (n, dim) unit vectors, same order
    placed: int = 0

    @property
    def documents(self) -> list[str]:
        return sorted({c.document for c in self.chunks})


def project(
    vectors: FloatArray,
    method: Method = "tsne",
    perplexity: float = DEFAULT_PERPLEXITY,
    seed: int = 0,
    *,
    tsne_defaults: bool = False,
) -> FloatArray:
    """Project unit vectors to 2-D with t-SNE (openTSNE after PCA to 50 dims) or PCA.

    Small inputs are handled: t-SNE needs perplexity < n/3, so it is clamped, and below 5 points we
    fall back to PCA (t-SNE of 4 points means nothing). `tsne_defaults` runs openTSNE's own schedule
    (the benchmarks compare against it).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if perplexity <= 0:
        raise ValueError(f"perplexity must be > 0; got perplexity={perplexity}")
    x = np.asarray(vectors, dtype=np.float32)
    n = x.shape[0]
    if n == 0:
        return np.zeros((0, 2), np.float32)
    if n == 1:
        return np.zeros((1, 2), np.float32)
    if method == "pca" or n < 5:
        return _pca(x, 2)
    from openTSNE import TSNE

    reduced = _pca(x, min(50, n - 1, x.shape[1]))
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    if tsne_defaults:
        tsne = TSNE(perplexity=perp, random_state=seed, n_jobs=2, initialization="pca", verbose=False)
    else:
        tsne = TSNE(
            perplexity=perp,
            random_state=seed,
            n_jobs=2,
            initialization="pca",
            early_exaggeration_iter=TSNE_EARLY_ITER,
            n_iter=TSNE_ITER,
            n_interpolation_points=TSNE_INTERPOLATION_POINTS,
            negative_gradient_method="fft" if n >= 1000 else "bh",
            verbose=False,
        )
    emb = tsne.fit(reduced.astype(np.float64))
    return np.asarray(emb, dtype=np.float32)


def _pca(x: FloatArray, dims: int) -> FloatArray:
    """Coordinates on the top `dims` principal axes (eigenvectors of the covariance: O(n·d²), not an
    SVD of the data), each axis signed so that its largest loading is positive (reproducible maps)."""
    centred = (x - x.mean(axis=0, keepdims=True)).astype(np.float32)
    cov = (centred.T.astype(np.float64) @ centred.astype(np.float64)) / max(1, len(x) - 1)
    values, axes = np.linalg.eigh(cov)
    top = axes[:, np.argsort(values)[::-1][: min(dims, len(x))]]
    top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(top.shape[1])])
    out: FloatArray = (centred @ top.astype(np.float32)).astype(np.float32)
    if out.shape[1] < dims:  # fewer points than dims: pad so callers always get (n, dims)
        out = np.hstack([out, np.zeros((out.shape[0], dims - out.shape[1]), np.float32)])
    return out


def knn_preservation(high: FloatArray, low: FloatArray, k: int = 10) -> float:
    """Mean share of each point's k nearest neighbours (cosine, in `high`) that are also among its k
    nearest on the map (Euclidean, in `low`): 1.0 = every neighbourhood kept.

    >>> angles = np.array([0.0, 0.1, 0.3, 0.6, 1.0, 1.5], dtype=np.float32)
    >>> arc = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    >>> knn_preservation(arc, angles[:, None] * 10, k=2)  # unrolled onto a line: every neighbour kept
    1.0
    >>> knn_preservation(arc, angles[::-1, None] * 10, k=2) < 1.0  # the order scrambled
    True
    """
    import faiss

    n = len(high)
    if n <= 1:
        return 1.0
    k = min(k, n - 1)
    hi = np.ascontiguousarray(high, dtype=np.float32)
    hi = hi / np.maximum(np.linalg.norm(hi, axis=1, keepdims=True), 1e-12)
    lo = np.ascontiguousarray(low, dtype=np.float32)
    ih = faiss.IndexFlatIP(hi.shape[1])
    ih.add(hi)
    il = faiss.IndexFlatL2(lo.shape[1])
    il.add(lo)
    _, nh = ih.search(hi, k + 1)
    _, nl = il.search(lo, k + 1)
    kept = [len(_without(a, i, k) & _without(b, i, k)) for i, (a, b) in enumerate(zip(nh, nl, strict=True))]
    return float(np.mean(kept) / k)


def _without(row: npt.NDArray[np.int64], i: int, k: int) -> set[int]:
    """The k neighbours in a search row that included the point itself (wherever ties put it)."""
    return set([int(j) for j in row if j != i][:k])


_INFLIGHT: dict[Path, threading.Event] = {}
_INFLIGHT_LOCK = threading.Lock()


def embedding_map(
    store: KnowledgeStore, method: Method = "tsne", perplexity: float = DEFAULT_PERPLEXITY, *, wait: bool = True
) -> EmbeddingMap:
    """The map of every chunk in the KB, from the disk cache when the KB has not changed since.

    If another thread of this process is computing the same map (the background job after an ingest),
    wait for it rather than computing it twice. With `wait=False`, a t-SNE map that is not ready yet is
    approximated from an older state's cached map (see `EmbeddingMap.placed`) while the background
    worker computes the exact one; only without any usable older map is it computed here.
    """
    generation = store.generation()
    chunks = store.all_chunks()
    ids, vectors = store.vectors([c.chunk_id for c in chunks])
    if len(ids) != len(chunks):  # a delete landed between the two reads: keep what both saw
        present = set(ids.tolist())
        chunks = [c for c in chunks if c.chunk_id in present]
    cache = _cache_path(store.cache_dir, generation, method, perplexity)
    while True:
        coords = _read_cached(cache, ids)
        if coords is not None:
            return EmbeddingMap(method, perplexity, generation, coords, chunks, vectors)
        key = (method, perplexity, generation)
        stale = None if wait or method != "tsne" else _stale_map(cache, key, ids, chunks, vectors)
        if stale is not None:
            schedule_map(store, method, perplexity)
            return stale
        with _INFLIGHT_LOCK:
            running = _INFLIGHT.get(cache)
            if running is None:
                # Read again under the lock: a thread that finished since our first read wrote the
                # cache before it left _INFLIGHT, so this sees its map and does not compute it twice.
                coords = _read_cached(cache, ids)
                if coords is None:
                    mine = _INFLIGHT[cache] = threading.Event()
        if running is None:
            if coords is not None:
                return EmbeddingMap(method, perplexity, generation, coords, chunks, vectors)
            break
        running.wait()  # then read what it wrote (or compute, if it failed)
    try:
        coords = project(vectors, method, perplexity)
        _write_cached(cache, generation, ids, coords)
    finally:
        with _INFLIGHT_LOCK:
            _INFLIGHT.pop(cache, None)
        mine.set()
    return EmbeddingMap(method, perplexity, generation, coords, chunks, vectors)


def _stale_map(
    cache: Path,
    key: tuple[Method, float, int],
    ids: npt.NDArray[np.int64],
    chunks: list[ChunkRow],
    vectors: FloatArray,
) -> EmbeddingMap | None:
    """The newest older cached map of the same method and perplexity, with deleted chunks dropped and
    new ones placed by their nearest kept neighbours; None when there is none or it shares no chunk."""
    method, perplexity, generation = key
    older: list[tuple[int, Path]] = []
    for path in cache.parent.glob(f"map-*-{cache.name.split('-', 2)[2]}"):
        with contextlib.suppress(ValueError):
            if (gen := int(path.name.split("-")[1])) < generation:
                older.append((gen, path))
    if not older:
        return None
    try:
        with np.load(max(older)[1]) as data:
            old_ids, old_coords = np.asarray(data["ids"]), np.asarray(data["coords"], dtype=np.float32)
    except (OSError, ValueError, KeyError, EOFError):
        return None  # removed by the worker that just wrote the new map, or damaged
    pos = {int(i): j for j, i in enumerate(old_ids.tolist())}
    known = np.array([pos.get(int(i), -1) for i in ids.tolist()], dtype=np.int64)
    kept = known >= 0
    if not kept.any():
        return None
    coords = np.empty((len(ids), 2), np.float32)
    coords[kept] = old_coords[known[kept]]
    new = ~kept
    if new.any():
        coords[new], _ = place_by_neighbours(coords[kept], vectors[kept], vectors[new])
    return EmbeddingMap(method, perplexity, generation, coords, chunks, vectors, placed=int(new.sum()))


def _read_cached(cache: Path, ids: npt.NDArray[np.int64]) -> FloatArray | None:
    if not cache.exists():
        return None
    try:
        with np.load(cache) as data:
            if np.array_equal(data["ids"], ids):
                return np.asarray(data["coords"], dtype=np.float32)
    except (OSError, ValueError, KeyError, EOFError):
        pass  # damaged or half-written by a crashed process: compute it again
    return None


def _write_cached(cache: Path, generation: int, ids: npt.NDArray[np.int64], coords: FloatArray) -> None:
    try:
        cache.parent.mkdir(exist_ok=True)
        for old in cache.parent.glob("map-*.npz"):
            if not old.name.startswith(f"map-{generation}-"):
                old.unlink(missing_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
        np.savez(tmp, ids=ids, coords=coords)
        tmp.replace(cache)
    except OSError as e:  # a read-only or full disk costs a recomputation next time, nothing more
        _log.warning("could not cache the embedding map: %s", e)


def _cache_path(data_dir: Path, generation: int, method: Method, perplexity: float) -> Path:
    return data_dir / "analysis" / f"map-{generation}-{method}-{perplexity:g}.npz"


def map_is_cached(store: KnowledgeStore, method: Method = "tsne", perplexity: float = DEFAULT_PERPLEXITY) -> bool:
    """True when the map of the KB's current generation is on disk (the page then shows it at once)."""
    return _cache_path(store.cache_dir, store.generation(), method, perplexity).exists()


class _MapWorker:
    """One daemon thread that computes maps after ingests and deletes, newest request per KB first.

    Requests arriving while one is pending replace it (a burst of uploads costs one map, of the final
    state). The thread runs at a lower CPU priority where the OS allows, so ingests and queries that
    come meanwhile are served first. Failures are logged, never raised: the page computes the map
    itself if the background one is missing.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._pending: dict[Path, tuple[KnowledgeStore, Method, float]] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.busy = False
        self.done = 0  # maps computed (tests read it)

    def submit(self, store: KnowledgeStore, method: Method, perplexity: float) -> None:
        with self._cond:
            self._pending[store.cache_dir.resolve()] = (store, method, perplexity)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="policypal-map", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until nothing is pending or running (tests and benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        _lower_priority()
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                self.busy = True
            time.sleep(self.delay)  # let a burst of ingests finish before computing
            with self._cond:
                key = next(iter(self._pending))
                store, method, perplexity = self._pending.pop(key)
            try:
                if store.cache_dir.exists() and store.size:
                    embedding_map(store, method, perplexity)
                    self.done += 1
            except Exception as e:
                _log.warning("background embedding map of %s failed: %s", store.cache_dir, e)
            finally:
                with self._cond:
                    self.busy = False
                    self._cond.notify_all()


def _lower_priority() -> None:
    """Nice the calling thread (Linux: priorities are per thread; the threads it starts inherit it)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


MAP_WORKER = _MapWorker(delay=0.5)


def schedule_map(store: KnowledgeStore, method: Method = "tsne", perplexity: float = DEFAULT_PERPLEXITY) -> None:
    """Compute (and cache) the map of the KB's current state in the background; returns at once."""
    MAP_WORKER.submit(store, method, perplexity)


def place_query(emap: EmbeddingMap, query: FloatArray, k: int = 10) -> tuple[float, float]:
    """Map position of a query: the similarity-weighted mean of its k nearest chunks' coordinates."""
    xy, _ = place_questions(emap, np.asarray(query, dtype=np.float32)[None, :], k)
    return float(xy[0, 0]), float(xy[0, 1])


def place_questions(emap: EmbeddingMap, query_vectors: FloatArray, k: int = 10) -> tuple[FloatArray, FloatArray]:
    """Map positions (m, 2) of many unit query vectors (m, dim) at once, as `place_query` places one,
    and each one's cosine to its nearest chunk (how close the documents come to the question)."""
    return place_by_neighbours(emap.coords, emap.vectors, query_vectors, k)


def document_similarity(store: KnowledgeStore) -> tuple[list[str], FloatArray]:
    """Mean chunk-to-chunk cosine between every pair of documents.

    The mean of all pairwise cosines between two sets of unit vectors equals the dot product of their
    mean vectors, so this is O(chunks) rather than O(chunks²).
    """
    chunks = store.all_chunks()
    if not chunks:
        return [], np.zeros((0, 0), np.float32)
    _, vectors = store.vectors([c.chunk_id for c in chunks])
    by_doc: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        by_doc.setdefault(c.document_id, []).append(i)
    names = {c.document_id: c.document for c in chunks}
    doc_ids = sorted(by_doc, key=lambda d: names[d])
    means = np.vstack([vectors[by_doc[d]].mean(axis=0) for d in doc_ids])
    labels = _unique_labels([names[d] for d in doc_ids])
    return labels, (means @ means.T).astype(np.float32)


def _unique_labels(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out


METRICS_EXPLAINED = (
    "For unit-length embeddings (all-MiniLM-L6-v2 normalises its output) the three agree: "
    "|q − d|² = 2 − 2·cos(q, d) and q·d = cos(q, d). They differ only when vector lengths vary."
)


@dataclass(frozen=True)
class QueryView:
    """Everything the analysis page draws for one query (no query: `hits` empty, `query_xy` None)."""

    emap: EmbeddingMap
    query: str = ""
    query_xy: tuple[float, float] | None = None
    hits: list[Hit] = field(default_factory=list)
    by_metric: dict[Metric, list[Hit]] = field(default_factory=dict)
    agreement: str = ""
    colour_values: FloatArray | None = None  # one per chunk of the map, when coloured by a score
    colour_label: str = "score"


def query_view(
    store: KnowledgeStore,
    searcher: Searcher,
    query: str,
    method: Method = "tsne",
    perplexity: float = DEFAULT_PERPLEXITY,
    k: int = 5,
    colour: Colouring = "document",
    *,
    wait: bool = False,
) -> QueryView:
    """The map (cached), the query placed on it with its top-k, and the top-k under every metric.

    colour: "document", or "dense" / "bm25" to colour every chunk by its similarity to the query, so
    a user sees where lexical and semantic neighbours differ. Without `wait`, a map still being computed
    after a change is drawn approximately from the previous one (`EmbeddingMap.placed`).
    """
    if colour not in COLOURINGS:
        raise ValueError(f"colour must be one of {COLOURINGS}; got {colour!r}")
    emap = embedding_map(store, method, perplexity, wait=wait)
    query = query.strip()
    if not query or not emap.chunks:
        return QueryView(emap)
    q_unit, q_norm = searcher.encode([query])
    by_metric = {m: search_vectors(store, q_unit, q_norm, k, m)[0] for m in METRICS}
    hits = by_metric[searcher.default_metric]
    values: FloatArray | None = None
    if colour == "dense":
        values = (emap.vectors @ q_unit[0]).astype(np.float32)
    elif colour == "bm25":
        by_id = {cid: score for score, cid in searcher.bm25(query, max(1, len(emap.chunks)))}
        values = np.array([by_id.get(c.chunk_id, 0.0) for c in emap.chunks], dtype=np.float32)
    label = {"dense": "cosine", "bm25": "BM25"}.get(colour, "score")
    xy = place_query(emap, q_unit[0])
    return QueryView(emap, query, xy, hits, by_metric, metric_agreement(by_metric), values, label)


def metric_table(by_metric: dict[Metric, list[Hit]]) -> list[dict[str, object]]:
    """Rows rank 1..k, one column per metric: "page · score · document" of the hit at that rank."""
    depth = max((len(h) for h in by_metric.values()), default=0)
    rows: list[dict[str, object]] = []
    for i in range(depth):
        row: dict[str, object] = {"rank": i + 1}
        for metric, hits in by_metric.items():
            h = hits[i] if i < len(hits) else None
            row[metric] = f"p{h.page} · {h.score:.3f} · {short_name(h.document, 24)}" if h else ""
        rows.append(row)
    return rows


def metric_agreement(by_metric: dict[Metric, list[Hit]]) -> str:
    """A sentence saying whether the metrics' rankings agree.

    >>> h = lambda *ids: [Hit(i + 1, 0.0, "d", "d", 1, c, "") for i, c in enumerate(ids)]
    >>> metric_agreement({"cosine": h(1, 2), "dot": h(1, 2), "l2": h(1, 2)})
    'cosine, dot and l2 return the same passages in the same order.'
    """
    orders = {m: [h.chunk_id for h in hits] for m, hits in by_metric.items()}
    names = list(orders)
    if len({tuple(o) for o in orders.values()}) == 1:
        return f"{', '.join(names[:-1])} and {names[-1]} return the same passages in the same order."
    base = orders[names[0]]
    diffs = [m for m in names[1:] if orders[m] != base]
    return f"{' and '.join(diffs)} rank differently from {names[0]}: this model's vectors vary in length."


def follow_changes(store: KnowledgeStore) -> Callable[[KnowledgeChanged], None]:
    """A change listener (`Engine.subscribe`) that computes the default map of each new state in the
    background, so the Analysis page opens at once after an upload or a delete."""

    def on_change(event: KnowledgeChanged) -> None:
        schedule_map(store)

    return on_change
