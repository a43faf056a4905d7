"""Documents to store, built from records alone: random unit vectors, one page, a few chunks."""

from __future__ import annotations

import numpy as np

from rag_core.types import Chunk, FileKind, NewDocument, Page, sha256_hex

DIM = 8


def new_document(
    name: str,
    data: bytes,
    n: int = 3,
    seed: int = 0,
    embedder: str = "toy",
    dim: int = DIM,
    kind: FileKind = "txt",
) -> NewDocument:
    """A document of `n` chunks "s0", "s1", ... on one page, with seeded random unit vectors."""
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    norms = np.linalg.norm(vecs, axis=1).astype(np.float32)
    vecs /= norms[:, None]
    text = " ".join(f"s{i}" for i in range(n))
    return NewDocument(
        name=name,
        data=data,
        sha256=sha256_hex(data),
        kind=kind,
        page_count=1,
        pages=[Page(1, text)],
        chunks=[Chunk(1, 3 * i, 3 * i + 2, f"s{i}", 1) for i in range(n)],
        vectors=vecs,
        norms=norms,
        embedder=embedder,
    )


def with_vectors(name: str, vecs: np.ndarray, embedder: str = "toy") -> NewDocument:
    """A document whose chunks carry the given unit vectors (all chunks "x"), its bytes its name."""
    n = len(vecs)
    data = name.encode()
    return NewDocument(
        name=name,
        data=data,
        sha256=sha256_hex(data),
        kind="txt",
        page_count=1,
        pages=[Page(1, "x")],
        chunks=[Chunk(1, 0, 1, "x", 1)] * n,
        vectors=np.ascontiguousarray(vecs, dtype=np.float32),
        norms=np.ones(n, np.float32),
        embedder=embedder,
    )
