"""The local store's vectors: one pair of FAISS files per generation, and the approximate index's upkeep.

    index-<g>.faiss   IndexIDMap2(IndexFlatIP): chunk id -> unit vector (exact; the source of truth)
    ann-<g>.faiss     IndexIVFFlat over the same vectors and ids, only at or above `ann_threshold` vectors

A generation's files are written before the rows that name it are committed (temp file, fsync, rename)
and never changed afterwards; a new generation starts from a copy of the current one, so searches keep
using the current one while a writer works. The previous generation's files are kept one round, so a
reader that has just read its number can still open them; older ones, and temp files a crash left
behind, are removed when the next generation is published.

The exact index answers `vectors`, deletes and exact searches. The IVF index, when there is one, is
updated by adds and deletes, retrained once the vectors have doubled since its lists were trained, and
its `nprobe` is re-tuned at every write (`tune_nprobe`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from rag_core.store.protocol import EmbedderMismatch, StoreError
from rag_core.types import FloatArray, IndexInfo, IntArray

DEFAULT_ANN_THRESHOLD = 20_000
ANN_TARGET_RECALL = 0.99  # tuned to this on perturbed stored vectors; the promise is >= 0.98 on queries
ANN_TUNE_QUERIES = 200
_LOAD_ATTEMPTS = 20

_EMPTY_IDS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Generation:
    """One generation's indexes as readers use them."""

    number: int
    flat: Any  # faiss.IndexIDMap2(IndexFlatIP), or None for a store never written to
    ann: Any  # faiss.IndexIVFFlat, or None below the threshold
    info: IndexInfo
    sorted_ids: IntArray  # chunk ids in ascending order
    positions: IntArray  # positions[i] = row in `flat` of sorted_ids[i]

    @classmethod
    def of(cls, number: int, flat: Any, ann: Any, info: IndexInfo) -> Generation:
        if flat is None or flat.ntotal == 0:
            return cls(number, flat, ann, info, _EMPTY_IDS, _EMPTY_IDS)
        ids = faiss.vector_to_array(flat.id_map).astype(np.int64)
        order = np.argsort(ids, kind="stable")
        return cls(number, flat, ann, info, ids[order], order.astype(np.int64))

    @property
    def size(self) -> int:
        return 0 if self.flat is None else int(self.flat.ntotal)


class VectorGenerations:
    """The FAISS files of one directory and the generation readers use now.

    `snapshot` reads the committed (generation, index info) in one go; `lock` is the writer's thread lock,
    also taken to load a generation so two threads never load the same files at once.
    """

    def __init__(
        self,
        directory: Path,
        snapshot: Callable[[], tuple[int, IndexInfo]],
        lock: contextlib.AbstractContextManager[Any],
        *,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
    ):
        if ann_threshold < 1:
            raise ValueError(f"ann_threshold must be >= 1; got ann_threshold={ann_threshold}")
        self.directory = directory
        self.ann_threshold = ann_threshold
        self._snapshot = snapshot
        self._lock = lock
        self._loaded: Generation | None = None

    def index_path(self, generation: int) -> Path:
        return self.directory / f"index-{generation}.faiss"

    def ann_path(self, generation: int) -> Path:
        return self.directory / f"ann-{generation}.faiss"

    # ---------------------------------------------------------------- reading

    def current(self) -> Generation:
        """The indexes of the committed generation, reloaded when a writer has moved it on."""
        number, _ = self._snapshot()
        loaded = self._loaded
        if loaded is not None and loaded.number == number:
            return loaded  # no lock: a writer busy on the next generation does not hold up readers
        with self._lock:
            for _ in range(_LOAD_ATTEMPTS):
                number, info = self._snapshot()  # again: a writer may have committed while we waited
                if self._loaded is not None and self._loaded.number == number:
                    return self._loaded
                if number == 0:
                    self._loaded = Generation.of(0, None, None, IndexInfo("flat", 0))
                    return self._loaded
                index_path, ann_path = self.index_path(number), self.ann_path(number)
                try:
                    flat = faiss.read_index(str(index_path))
                    ann = faiss.read_index(str(ann_path)) if info.kind == "ivf" else None
                except RuntimeError:
                    if index_path.exists() and (info.kind != "ivf" or ann_path.exists()):
                        raise
                    time.sleep(0.05)  # a writer moved on and removed it; read the generation again
                    continue
                self._loaded = Generation.of(number, flat, ann, info)
                return self._loaded
            raise StoreError(f"index file for generation {self._snapshot()[0]} is missing in {self.directory}")

    def vectors(self, ids: Sequence[int] | None) -> tuple[IntArray, FloatArray] | None:
        """(chunk ids, unit vectors) of the given ids in the order asked (unknown ones left out), or of all
        in id order; None when the generation holds no vectors."""
        loaded = self.current()
        if not loaded.size:
            return None
        if ids is None:
            ids_arr, rows = loaded.sorted_ids, loaded.positions
        else:
            asked = np.asarray(ids, dtype=np.int64).reshape(-1)
            at = np.searchsorted(loaded.sorted_ids, asked)
            at = np.minimum(at, len(loaded.sorted_ids) - 1)
            found = loaded.sorted_ids[at] == asked
            ids_arr, rows = asked[found], loaded.positions[at[found]]
        return ids_arr, _flat_view(loaded.flat)[rows]  # fancy indexing copies only the rows asked for

    def search(self, query: FloatArray, k: int, *, exact: bool = False) -> tuple[FloatArray, IntArray]:
        """Inner-product top-k: the approximate index when this generation has one (unless `exact`)."""
        loaded = self.current()
        q = np.ascontiguousarray(np.atleast_2d(query), dtype=np.float32)
        if not loaded.size:
            return np.zeros((q.shape[0], 0), np.float32), np.zeros((q.shape[0], 0), np.int64)
        index = loaded.flat
        if q.shape[1] != index.d:
            raise EmbedderMismatch(f"query vectors are {q.shape[1]}-d but the index holds {index.d}-d vectors")
        k = min(k, int(index.ntotal))
        with _threads_for(q.shape[0]):
            if loaded.ann is not None and not exact:
                scores, ids = loaded.ann.search(q, k, params=_ivf_params(loaded.info.nprobe))
            else:
                scores, ids = index.search(q, k)
        return scores, ids

    # ---------------------------------------------------------------- writing (under the writer lock)

    def stage(
        self,
        number: int,
        *,
        dimension: int,
        added: tuple[IntArray, FloatArray] | None = None,
        removed: IntArray | None = None,
    ) -> Generation:
        """Write generation `number`'s files: the current vectors plus `added` (ids, vectors), less the
        `removed` ids. Readers keep the current generation until `publish`."""
        current = self.current()
        # An emptied store may have held another embedder's dimension: it starts afresh.
        previous = current if current.size else None
        flat: Any = (  # a copy: never mutate the index readers are using
            faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)) if previous is None else faiss.clone_index(previous.flat)
        )
        if removed is not None and len(removed):
            flat.remove_ids(np.asarray(removed, dtype=np.int64))
        if added is not None:
            flat.add_with_ids(np.ascontiguousarray(added[1], dtype=np.float32), added[0])
        ann, info = self._next_ann(previous, flat, None if added is None else added[0], removed)
        _write_index(flat, self.index_path(number))
        if ann is not None:
            _write_index(ann, self.ann_path(number))
        return Generation.of(number, flat, ann, info)

    def publish(self, staged: Generation) -> None:
        """Serve `staged` (its rows are committed) and remove the files no reader can want any more."""
        self._loaded = staged
        for path in [*self.directory.glob("index-*.faiss*"), *self.directory.glob("ann-*.faiss*")]:
            stem = path.name.split(".")[0].split("-", 1)[1]
            if not stem.isdigit():
                continue
            g = int(stem)
            if path.name.endswith(".tmp") or g > staged.number or g < staged.number - 1:
                path.unlink(missing_ok=True)

    def _next_ann(
        self, previous: Generation | None, flat: Any, added: IntArray | None, removed: IntArray | None
    ) -> tuple[Any, IndexInfo]:
        """The approximate index for the new exact index `flat`: none below the threshold; else the
        previous one updated (add / remove_ids), or a fresh one when there was none or the vectors have
        doubled since its lists were trained. nprobe is re-tuned every time (it takes ~0.1 s)."""
        n = int(flat.ntotal)
        if n < self.ann_threshold:
            return None, IndexInfo("flat", n)
        old = previous.ann if previous is not None else None
        trained = previous.info.trained_size if previous is not None else 0
        if old is not None and n <= 2 * trained:
            ann: Any = faiss.clone_index(old)
            if removed is not None and len(removed):
                ann.remove_ids(np.asarray(removed, dtype=np.int64))
            if added is not None and len(added):
                ids, vecs = _flat_rows(flat, added)
                ann.add_with_ids(vecs, ids)
        else:
            ann, trained = build_ivf(flat), n
        nprobe, recall = tune_nprobe(ann, flat)
        return ann, IndexInfo("ivf", n, int(ann.nlist), nprobe, recall, trained)


# ---------------------------------------------------------------------------- the IVF index


def ivf_lists(n: int) -> int:
    """IVF list count for n vectors: a power of two near 4·sqrt(n), 64 to 16,384.

    >>> ivf_lists(20_000), ivf_lists(100_000), ivf_lists(1_000_000)
    (512, 1024, 4096)
    """
    target = 4 * np.sqrt(max(n, 1))
    return int(min(16_384, max(64, 2 ** round(np.log2(target)))))


def build_ivf(flat: Any, seed: int = 0) -> Any:
    """An IndexIVFFlat (inner product) over every vector of `flat`, trained on a sample of them."""
    ids = faiss.vector_to_array(flat.id_map).astype(np.int64)
    vecs = _flat_vectors(flat)
    nlist = min(ivf_lists(len(ids)), max(1, len(ids) // 39))  # k-means wants >= 39 points per list
    quantizer = faiss.IndexFlatIP(flat.d)
    ivf = faiss.IndexIVFFlat(quantizer, flat.d, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = seed
    rng = np.random.default_rng(seed)
    sample = vecs[rng.permutation(len(vecs))[: 64 * nlist]] if len(vecs) > 64 * nlist else vecs
    ivf.train(np.ascontiguousarray(sample))
    ivf.add_with_ids(vecs, ids)
    return ivf


def tune_nprobe(ann: Any, flat: Any, target: float = ANN_TARGET_RECALL, seed: int = 0) -> tuple[int, float]:
    """(nprobe, its recall@10 against exact search on the tuning queries): twice the smallest nprobe
    that reaches `target` on them.

    The tuning queries are stored vectors pushed away by noise twice as long as the vector (cosine ~0.45
    to their source). Real questions are harder for an IVF index than perturbed passages at the same
    similarity, hence the doubling (benchmarks/RESULTS.md, "Vector index").
    """
    q = tuning_queries(_flat_vectors(flat), seed)
    k = min(10, int(flat.ntotal))
    _, truth = flat.search(q, k)

    def recall_at(nprobe: int) -> float:
        _, got = ann.search(q, k, params=_ivf_params(nprobe))
        return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got.tolist(), truth.tolist(), strict=True)]))

    nprobe, recall = 1, 0.0
    while True:
        nprobe = min(nprobe * 2 if recall else 8, int(ann.nlist))
        recall = recall_at(nprobe)
        if recall >= target or nprobe >= ann.nlist:
            break
    nprobe = min(2 * nprobe, int(ann.nlist))
    return nprobe, recall_at(nprobe)


def tuning_queries(vecs: FloatArray, seed: int = 0, n: int = ANN_TUNE_QUERIES) -> FloatArray:
    """Up to `n` unit queries made from stored vectors pushed away by noise twice as long as the vector
    (cosine ~0.45 to their source): what an approximate index is tuned and checked on."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(vecs), size=min(n, len(vecs)), replace=False)
    noise = rng.normal(size=(len(pick), vecs.shape[1])).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = vecs[pick] + 2.0 * noise
    return np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True), dtype=np.float32)


def _ivf_params(nprobe: int) -> Any:
    params: Any = faiss.SearchParametersIVF()  # per call, so concurrent searches never share a setting
    params.nprobe = nprobe
    return params


# ---------------------------------------------------------------------------- the exact index


def _flat_view(flat: Any) -> FloatArray:
    """The vectors of an IndexIDMap2(IndexFlatIP) in insertion order, as a read-only view of the index's
    own memory (no copy). Valid while `flat` lives; index it to copy rows out."""
    inner: Any = faiss.downcast_index(flat.index)
    n = int(inner.ntotal)
    if n == 0:
        return np.zeros((0, inner.d), dtype=np.float32)
    view = faiss.rev_swig_ptr(inner.get_xb(), n * inner.d).reshape(n, inner.d)
    view.flags.writeable = False
    return np.asarray(view, dtype=np.float32)


def _flat_vectors(flat: Any) -> FloatArray:
    """All vectors of an IndexIDMap2(IndexFlatIP), in insertion order (a copy)."""
    inner = faiss.downcast_index(flat.index)
    n = int(inner.ntotal)
    return np.asarray(inner.reconstruct_n(0, n), dtype=np.float32).reshape(n, inner.d)


def _flat_rows(flat: Any, ids: IntArray) -> tuple[IntArray, FloatArray]:
    """(ids, vectors) of the given ids, read from an IndexIDMap2(IndexFlatIP)."""
    all_ids = faiss.vector_to_array(flat.id_map).astype(np.int64)
    rows = np.flatnonzero(np.isin(all_ids, ids))
    return all_ids[rows], np.ascontiguousarray(_flat_vectors(flat)[rows])


@contextlib.contextmanager
def _threads_for(n_queries: int) -> Iterator[None]:
    """One OpenMP thread for a handful of queries: waking a second one costs more than it saves, and on a
    busy machine it can cost milliseconds. (The setting is per calling thread in OpenMP.)"""
    if n_queries > 4:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


# ---------------------------------------------------------------------------- durable files


def _write_index(index: Any, final: Path) -> None:
    tmp = final.with_suffix(".faiss.tmp")
    faiss.write_index(index, str(tmp))
    fsync_file(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets you fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
