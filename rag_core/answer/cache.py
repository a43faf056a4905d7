"""A memo for sentence embeddings: the coverage judge and the extractive answerer read the same
passages' sentences for one question, and the same passages come back for related questions.

Embedding those sentences is most of an answer's time on a CPU (about 20 ms per 25 sentences here),
so each sentence is embedded once and kept while there is room; the oldest go first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from rag_core.answer.generators import Encode
from rag_core.types import FloatArray


class EncodeCache:
    """`Encode` with a least-recently-used memo of `size` texts. Safe to share between threads.

    >>> calls = []
    >>> def encode(texts):
    ...     calls.append(list(texts))
    ...     return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)
    >>> cached = EncodeCache(encode, size=10)
    >>> cached(["a", "bb"]).shape, cached(["bb", "ccc"])[0].tolist(), calls
    ((2, 2), [2.0, 1.0], [['a', 'bb'], ['ccc']])
    """

    def __init__(self, encode: Encode, size: int = 4096):
        if size < 1:
            raise ValueError(f"size must be >= 1; got size={size}")
        self.encode = encode
        self.size = size
        self._memo: OrderedDict[str, FloatArray] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget every embedding (a benchmark that times answers without the memo's help)."""
        with self._lock:
            self._memo.clear()

    def __call__(self, texts: list[str]) -> FloatArray:
        with self._lock:
            known = {t: self._memo[t] for t in texts if t in self._memo}
            for t in known:
                self._memo.move_to_end(t)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = dict(zip(missing, self.encode(missing), strict=True))
            known.update(fresh)
            with self._lock:
                self._memo.update(fresh)
                while len(self._memo) > self.size:
                    self._memo.popitem(last=False)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([known[t] for t in texts]).astype(np.float32, copy=False)
