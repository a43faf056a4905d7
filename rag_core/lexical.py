"""BM25 keyword search over the knowledge base's chunks (bm25s), kept in the data dir per generation.

Why BM25 beside dense search: MiniLM misses exact terms (clause numbers such as "2635.204", dollar
amounts, names), BM25 misses paraphrases ("days off when a relative dies" vs "bereavement leave").
Fused (rag_core.search.fuse) they beat either alone.

Why per generation: the BM25 index is derived from the chunk rows, like a cache. It is rebuilt from
one consistent SQLite snapshot (generation + every chunk's id and text) and saved as
`bm25-<generation>/` (written to a temp dir, then renamed), so it always matches the FAISS index of the
same generation and uses the same chunk ids. The engine rebuilds it right after each ingest or delete;
a reader that finds no index for the current generation builds it (and saves it) itself. Rebuilding
is fast (~0.1 s per 2,000 chunks).

Tokens: lower-cased words of 2+ characters and dotted numbers kept whole ("18.3", "2635.204"),
English stop words removed, Snowball-stemmed ("reviews" ~ "review").

Numbers in a query are also searched in their other spellings (rag_core.numbers.query_variants): "after
10 years" finds the table row "Tenth … 24", "2 weeks" finds "two (2) weeks". The index itself keeps the
document's words.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rag_core.logs import quiet
from rag_core.numbers import query_variants
from rag_core.store import KnowledgeStore

TOKEN_PATTERN = r"(?u)\d+(?:\.\d+)+|\b\w\w+\b"
IntArray = npt.NDArray[np.int64]


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> list[list[str]]:
    """BM25 tokens of each text.

    >>> tokenize(["Gifts under 5 CFR 2635.204 and the reviews"])
    [['gift', 'under', 'cfr', '2635.204', 'review']]
    """
    import bm25s  # sets its own logger to DEBUG on first import, hence quiet() after it

    with quiet("bm25s"):
        out = bm25s.tokenize(
            texts,
            lower=True,
            token_pattern=TOKEN_PATTERN,
            stopwords="en",
            stemmer=_stemmer(),
            return_ids=False,
            show_progress=False,
        )
    return [list(t) for t in out]


def expand_query(query: str) -> str:
    """The query with the other spellings of its numbers added (see rag_core.numbers.query_variants).

    >>> expand_query("Vacation after 10 years")
    'Vacation after 10 years ten tenth 10th'
    """
    extra = query_variants(query)
    return f"{query} {extra}" if extra else query


@dataclass
class _Loaded:
    generation: int
    retriever: Any
    ids: IntArray
    vocab: set[str]


class LexicalIndex:
    """BM25 over one knowledge base; safe to share between threads."""

    def __init__(self, store: KnowledgeStore, k1: float = 1.5, b: float = 0.75):
        if k1 <= 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 > 0 and 0 <= b <= 1; got k1={k1}, b={b}")
        self.store = store
        self.k1 = k1
        self.b = b
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    def _dir(self, generation: int) -> Path:
        return self.store.cache_dir / f"bm25-{generation}"

    def refresh(self) -> int:
        """Make sure the index of the current generation exists on disk and in memory; return its size."""
        loaded = self._current()
        return 0 if loaded is None else len(loaded.ids)

    def _current(self) -> _Loaded | None:
        with self._lock:
            generation = self.store.generation()
            if self._loaded is not None and self._loaded.generation == generation:
                return self._loaded
            loaded = self._load(generation)
            if loaded is None:
                loaded = self._build()
            self._loaded = loaded
            self._cleanup(loaded.generation if loaded else generation)
            return loaded

    def _load(self, generation: int) -> _Loaded | None:
        import bm25s

        path = self._dir(generation)
        if not (path / "ids.npy").exists():
            return None
        try:
            with quiet("bm25s"):
                retriever = bm25s.BM25.load(str(path), show_progress=False)
            ids = np.load(path / "ids.npy")
        except (OSError, ValueError, json.JSONDecodeError):
            return None  # a half-written or damaged cache: rebuild it
        return _Loaded(generation, retriever, ids.astype(np.int64), set(retriever.vocab_dict))

    def _build(self) -> _Loaded | None:
        import bm25s

        generation, ids, texts = self.store.chunk_texts()
        if not texts:
            return _Loaded(generation, None, np.zeros(0, np.int64), set())
        final = self._dir(generation)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        with quiet("bm25s"):
            retriever = bm25s.BM25(k1=self.k1, b=self.b)
            tokens = bm25s.tokenize(
                texts, token_pattern=TOKEN_PATTERN, stopwords="en", stemmer=_stemmer(), show_progress=False
            )
            retriever.index(tokens, show_progress=False)
            retriever.save(str(tmp), show_progress=False)
        np.save(tmp / "ids.npy", np.asarray(ids, dtype=np.int64))
        with contextlib.suppress(OSError):  # another process built the same generation first: fine
            tmp.rename(final)
        shutil.rmtree(tmp, ignore_errors=True)
        return _Loaded(generation, retriever, np.asarray(ids, dtype=np.int64), set(retriever.vocab_dict))

    def _cleanup(self, current: int) -> None:
        for path in self.store.cache_dir.glob("bm25-*"):
            stem = path.name.removeprefix("bm25-").removesuffix(".tmp")
            if stem.isdigit() and int(stem) < current - 1:
                shutil.rmtree(path, ignore_errors=True)

    def vocabulary(self) -> set[str]:
        """Every token of the current generation's chunks (what a question's words are looked up in)."""
        loaded = self._current()
        return loaded.vocab if loaded is not None else set()

    def search(self, queries: list[str], k: int) -> list[list[tuple[float, int]]]:
        """For each query, up to k (BM25 score, chunk id) pairs, best first; no matching term -> []."""
        if k < 1:
            raise ValueError(f"k must be >= 1; got k={k}")
        loaded = self._current()
        if loaded is None or loaded.retriever is None or len(loaded.ids) == 0:
            return [[] for _ in queries]
        out: list[list[tuple[float, int]]] = []
        for tokens in tokenize([expand_query(q) for q in queries]):
            known = [t for t in tokens if t in loaded.vocab]
            if not known:
                out.append([])
                continue
            docs, scores = top_k(loaded.retriever.scores, [loaded.retriever.vocab_dict[t] for t in known], k)
            out.append([(float(s), int(loaded.ids[int(d)])) for d, s in zip(docs, scores, strict=True) if s > 0])
        return out


def top_k(matrix: dict[str, Any], token_ids: list[int], k: int) -> tuple[IntArray, npt.NDArray[np.float64]]:
    """(row numbers, BM25 scores) of the k best-scoring chunks for these query tokens, best first (ties by
    row number); chunks sharing no token are never returned.

    Reads the eager score matrix bm25s builds (`BM25.scores`: CSC arrays, one column of precomputed BM25
    terms per token) and sums only the columns the query touches, with one `np.bincount`. Why not
    `BM25.retrieve`: it scatters with `np.add.at` and partitions the whole corpus through a thread pool,
    ~36 ms p50 per query at 1M chunks against ~9 ms here for the same scores (benchmarks/RESULTS.md,
    "PostgreSQL at scale"); the sum is the same, token for token (a repeated query token counts twice, as
    in bm25s).
    """
    data, indices, indptr = matrix["data"], matrix["indices"], matrix["indptr"]
    spans = [(int(indptr[t]), int(indptr[t + 1])) for t in token_ids]
    if len(spans) == 1:
        start, end = spans[0]
        rows = indices[start:end].astype(np.int64)
        scores = data[start:end].astype(np.float64)
    else:
        summed = np.bincount(
            np.concatenate([indices[a:b] for a, b in spans]),
            weights=np.concatenate([data[a:b] for a, b in spans]),
            minlength=int(matrix["num_docs"]),
        )
        rows = np.flatnonzero(summed)
        scores = summed[rows]
    if len(scores) > k:
        keep = np.argpartition(-scores, k - 1)[:k]
        rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores))
    return rows[order], scores[order]
