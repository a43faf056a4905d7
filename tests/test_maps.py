"""rag_core.maps and rag_core.figures: projections, the 10-NN preservation measure, the per-generation map cache, the
background map after an ingest, and placing a query on a map."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rag_core import maps as analysis
from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import serving_engine
from rag_core.maps import (
    _pca,
    embedding_map,
    knn_preservation,
    map_is_cached,
    place_query,
    project,
)
from rag_core.store import LocalStore
from rag_core.types import Chunk, NewDocument, Page, sha256_hex


def _clusters(n: int, dim: int = 24, k: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 3
    v = centres[np.arange(n) % k] + rng.normal(size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _kb(tmp_path: Path, n: int = 40, name: str = "a.txt") -> LocalStore:
    kb = LocalStore(tmp_path / "kb")
    vecs = _clusters(n, seed=len(name))
    kb.add(
        NewDocument(
            name=name,
            data=name.encode(),
            sha256=sha256_hex(name.encode()),
            kind="txt",
            pages=[Page(1, "x")],
            page_count=1,
            chunks=[Chunk(1, 0, 1, f"chunk {i}", 2) for i in range(n)],
            vectors=vecs,
            norms=np.ones(n, np.float32),
            embedder="toy",
        )
    )
    return kb


class TestProjection:
    def test_shapes_and_small_inputs(self) -> None:
        x = _clusters(60)
        assert project(x).shape == (60, 2) and project(x, "pca").shape == (60, 2)
        assert project(x[:3]).shape == (3, 2) and project(x[:1]).shape == (1, 2) and project(x[:0]).shape == (0, 2)
        with pytest.raises(ValueError, match="method"):
            project(x, "umap")

    def test_pca_matches_svd_up_to_sign_and_is_deterministic(self) -> None:
        x = _clusters(80, dim=10)
        ours = _pca(x, 3)
        centred = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        ref = centred @ vt[:3].T
        for j in range(3):
            assert abs(abs(float(np.corrcoef(ours[:, j], ref[:, j])[0, 1])) - 1) < 1e-4
        np.testing.assert_array_equal(ours, _pca(x.copy(), 3))
        assert _pca(x[:2], 5).shape == (2, 5)

    def test_fast_schedule_keeps_neighbourhoods_like_the_defaults(self) -> None:
        x = _clusters(300)
        ours = knn_preservation(x, project(x))
        defaults = knn_preservation(x, project(x, tsne_defaults=True))
        assert ours >= defaults - 0.05 and ours > 0.3


class TestKnnPreservation:
    def test_identity_and_random(self) -> None:
        x = _clusters(100, dim=2)
        assert knn_preservation(x, x * 5) == pytest.approx(1.0)
        rng = np.random.default_rng(1)
        assert knn_preservation(x, rng.normal(size=(100, 2)).astype(np.float32)) < 0.3
        assert knn_preservation(x[:1], x[:1]) == 1.0


class TestMapCache:
    def test_cached_per_generation(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        kb = _kb(tmp_path)
        assert not map_is_cached(kb)
        first = embedding_map(kb)
        assert map_is_cached(kb) and first.coords.shape == (40, 2) and len(first.chunks) == 40

        def boom(*a: object, **k: object) -> None:
            raise AssertionError("recomputed although cached")

        monkeypatch.setattr(analysis, "project", boom)
        again = embedding_map(kb)
        np.testing.assert_array_equal(again.coords, first.coords)
        monkeypatch.undo()
        _kb(tmp_path, 10, "b.txt")  # a new generation: a new map, the old file goes
        kb2 = LocalStore(tmp_path / "kb")
        assert not map_is_cached(kb2)
        assert embedding_map(kb2).coords.shape == (50, 2)
        assert len(list((tmp_path / "kb" / "analysis").glob("map-*.npz"))) == 1

    def test_damaged_cache_is_recomputed(self, tmp_path: Path) -> None:
        kb = _kb(tmp_path)
        embedding_map(kb)
        (cache,) = (tmp_path / "kb" / "analysis").glob("map-*.npz")
        cache.write_bytes(b"not a zip")
        assert embedding_map(kb).coords.shape == (40, 2)

    def test_concurrent_requests_compute_once(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        kb = _kb(tmp_path)
        # A background map job left by an earlier test (another KB) would call project() too.
        assert analysis.MAP_WORKER.wait_idle(120)
        calls = []
        real = analysis.project

        def slow(*a: object, **k: object) -> np.ndarray:
            calls.append(1)
            time.sleep(0.3)
            return real(*a, **k)  # type: ignore[arg-type]

        monkeypatch.setattr(analysis, "project", slow)
        maps = []
        threads = [threading.Thread(target=lambda: maps.append(embedding_map(kb))) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(calls) == 1 and len(maps) == 3
        assert all(np.array_equal(m.coords, maps[0].coords) for m in maps)

    def test_place_query_lands_by_its_nearest_chunks(self, tmp_path: Path) -> None:
        emap = embedding_map(_kb(tmp_path))
        x, y = place_query(emap, emap.vectors[7])
        assert np.hypot(x - emap.coords[7, 0], y - emap.coords[7, 1]) < 1e-3 + 0.5 * np.ptp(emap.coords)


class TestBackgroundMap:
    def test_ingest_then_map_ready_without_asking(self, tmp_path: Path, embedder: Embedder, policy_pdf: Path) -> None:
        engine = serving_engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        assert engine.ingest_paths([policy_pdf])[0].status == "added"
        assert analysis.MAP_WORKER.wait_idle(120)
        assert map_is_cached(engine.store)

    def test_off_by_setting_and_failure_never_breaks_ingest(
        self, tmp_path: Path, embedder: Embedder, policy_pdf: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        off = serving_engine(Settings(data_dir=tmp_path / "off", background_map=False), embedder=embedder)
        assert off.ingest_paths([policy_pdf])[0].status == "added"
        assert analysis.MAP_WORKER.wait_idle(120) and not map_is_cached(off.store)

        def boom(*a: object, **k: object) -> None:
            raise RuntimeError("projection failed")

        monkeypatch.setattr(analysis, "project", boom)
        engine = serving_engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        assert engine.ingest_paths([policy_pdf])[0].status == "added"
        assert analysis.MAP_WORKER.wait_idle(120) and not map_is_cached(engine.store)
        assert engine.search("annual leave days")  # the engine carries on

    def test_one_map_per_batch(
        self,
        tmp_path: Path,
        embedder: Embedder,
        policy_pdf: Path,
        pdf_maker: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        scheduled: list[int] = []
        monkeypatch.setattr(analysis, "schedule_map", lambda kb, *a: scheduled.append(kb.generation()))
        other = pdf_maker(["Parking permits are issued by facilities."], name="other.pdf")
        engine = serving_engine(Settings(data_dir=tmp_path / "kb"), embedder=embedder)
        engine.ingest_paths([policy_pdf, other])
        assert scheduled == [2]  # after the batch, of its final state
        engine.delete("other.pdf")
        assert scheduled == [2, 3]


def _delete_document(kb: LocalStore, name: str) -> None:
    (doc,) = [d for d in kb.documents() if d.name == name]
    kb.delete(doc.document_id)


class TestStaleMap:
    """After a change, the previous map with the new chunks placed on it, while the new one is computed."""

    def test_new_chunks_placed_on_the_old_map_and_the_full_map_scheduled(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        old = embedding_map(_kb(tmp_path))
        _kb(tmp_path, 10, "b.txt")
        kb = LocalStore(tmp_path / "kb")
        scheduled: list[tuple[int, str, float]] = []
        monkeypatch.setattr(analysis, "schedule_map", lambda s, m, p: scheduled.append((s.generation(), m, p)))

        def boom(*a: object, **k: object) -> None:
            raise AssertionError("computed instead of showing the stale map")

        monkeypatch.setattr(analysis, "project", boom)
        stale = embedding_map(kb, wait=False)
        assert stale.placed == 10 and stale.generation == kb.generation() and len(stale.chunks) == 50
        assert scheduled == [(kb.generation(), "tsne", 30.0)]
        kept = [i for i, c in enumerate(stale.chunks) if c.document == "a.txt"]
        np.testing.assert_array_equal(stale.coords[kept], old.coords)  # the old chunks do not move
        new = [i for i, c in enumerate(stale.chunks) if c.document == "b.txt"]
        lo, hi = old.coords.min(axis=0), old.coords.max(axis=0)
        assert np.all((stale.coords[new] >= lo - 1e-3) & (stale.coords[new] <= hi + 1e-3))  # on the map
        monkeypatch.undo()
        exact = embedding_map(kb)  # wait=True computes the real one
        assert exact.placed == 0 and map_is_cached(kb)
        assert embedding_map(kb, wait=False).placed == 0  # and then it is what the page gets

    def test_deleted_chunks_leave_the_stale_map(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        _kb(tmp_path)
        kb = _kb(tmp_path, 10, "b.txt")
        embedding_map(kb)
        _delete_document(kb, "b.txt")
        monkeypatch.setattr(analysis, "schedule_map", lambda *a: None)
        stale = embedding_map(LocalStore(tmp_path / "kb"), wait=False)
        assert len(stale.chunks) == 40 and stale.coords.shape == (40, 2) and stale.placed == 0

    def test_no_older_map_pca_or_nothing_shared_compute_at_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(analysis, "schedule_map", lambda *a: None)
        kb = _kb(tmp_path)
        assert embedding_map(kb, wait=False).placed == 0 and map_is_cached(kb)  # the first map: computed
        _kb(tmp_path, 10, "b.txt")
        kb = LocalStore(tmp_path / "kb")
        assert embedding_map(kb, "pca", wait=False).placed == 0  # PCA takes milliseconds
        embedding_map(kb)
        _delete_document(kb, "a.txt")
        _delete_document(kb, "b.txt")
        _kb(tmp_path, 12, "c.txt")
        fresh = embedding_map(LocalStore(tmp_path / "kb"), wait=False)  # the old map shares no chunk
        assert fresh.placed == 0 and len(fresh.chunks) == 12

    def test_query_view_does_not_wait(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        seen: list[bool] = []
        real = analysis.embedding_map

        def spy(store: LocalStore, method: analysis.Method, perplexity: float, *, wait: bool) -> analysis.EmbeddingMap:
            seen.append(wait)
            return real(store, method, perplexity, wait=wait)

        monkeypatch.setattr(analysis, "embedding_map", spy)
        view = analysis.query_view(_kb(tmp_path), None, "")  # type: ignore[arg-type]  # no query: no searcher
        assert seen == [False] and view.emap.placed == 0


class TestPlaceQuestions:
    def test_batch_agrees_with_place_query_and_reports_the_nearest_similarity(self, tmp_path: Path) -> None:
        emap = embedding_map(_kb(tmp_path))
        queries = _clusters(6, seed=9)
        xy, nearest = analysis.place_questions(emap, queries)
        for q, (x, y) in zip(queries, xy.tolist(), strict=True):
            assert place_query(emap, q) == pytest.approx((x, y), abs=1e-4)
        np.testing.assert_allclose(nearest, (queries @ emap.vectors.T).max(axis=1), atol=1e-5)


class TestFigures:
    def _two_documents(self, tmp_path: Path) -> analysis.EmbeddingMap:
        _kb(tmp_path, 20, "annual-leave-and-holidays-policy-2024.txt")
        return embedding_map(_kb(tmp_path, 20, "b.txt"), "pca")

    def test_documents_get_clearly_different_colours_and_full_names_in_hover(self, tmp_path: Path) -> None:
        from rag_core.figures import DOCUMENT_COLOURS, document_colours, map_figure

        emap = self._two_documents(tmp_path)
        fig = map_figure(emap)
        colours = [t.marker.color for t in fig.data]
        assert len(set(colours)) == 2 and set(colours) <= set(DOCUMENT_COLOURS)
        long = fig.data[0]
        assert len(long.name) < len("annual-leave-and-holidays-policy-2024.txt")  # short in the legend...
        assert all(h.startswith("annual-leave-and-holidays-policy-2024.txt · page") for h in long.hovertext)  # full
        cycled = document_colours([f"d{i}" for i in range(30)])
        assert all(cycled[f"d{i}"] != cycled[f"d{i + 1}"] for i in range(29))

    def test_score_colouring_shows_the_score_in_hover(self, tmp_path: Path) -> None:
        from rag_core.figures import map_figure

        emap = self._two_documents(tmp_path)
        values = np.linspace(0, 1, len(emap.chunks)).astype(np.float32)
        (trace,) = map_figure(emap, color_values=values, color_label="cosine").data
        assert trace.hovertext[-1].endswith("<br>cosine: 1.000") and trace.hovertext[0].endswith("cosine: 0.000")

    def test_heatmap_numbers_are_rounded(self) -> None:
        from rag_core.figures import heatmap_figure

        matrix = np.array([[1.0, 0.8299999833106995], [0.8299999833106995, 1.0]], np.float32)
        long = "annual-leave-and-holidays-policy-2024.pdf"
        fig = heatmap_figure([long, "b.pdf"], matrix)
        (trace,) = fig.data
        assert trace.texttemplate == "%{z:.2f}" and trace.text is None
        assert trace.customdata[0][1] == f"{long} ↔ b.pdf" and long not in trace.x  # full names on hover
        assert fig.layout.yaxis.autorange == "reversed"  # the diagonal runs top left to bottom right

    def test_questions_layer_marks_refused_and_far_and_escapes_the_text(self, tmp_path: Path) -> None:
        from rag_core.figures import map_figure
        from rag_core.map_questions import MapQuestion

        emap = self._two_documents(tmp_path)
        questions = [
            MapQuestion("<b>leave</b>?", (0.0, 0.0), False, 0.6),
            MapQuestion("parking?", (1.0, 1.0), True, 0.1),
            MapQuestion("remote?", (2.0, 2.0), True, 0.5),
        ]
        fig = map_figure(emap, questions=questions)
        layers = {t.name: t for t in fig.data if "question" in t.name or "far" in t.name}
        assert set(layers) == {"asked questions", "refused questions", "far from any document"}
        assert layers["asked questions"].marker.symbol == "diamond"
        assert layers["refused questions"].marker.symbol == "x" and len(layers["refused questions"].x) == 2
        assert list(layers["far from any document"].x) == [1.0]
        assert layers["far from any document"].marker.symbol == "hexagon-open"  # not the top-k circles
        assert "&lt;b&gt;leave&lt;/b&gt;?" in layers["asked questions"].hovertext[0]
        assert "far from any document" in layers["refused questions"].hovertext[0]
        assert len(map_figure(emap).data) == 2  # no questions: no layers

    def test_stale_map_says_so_in_its_title(self, tmp_path: Path) -> None:
        from dataclasses import replace

        from rag_core.figures import map_figure

        emap = self._two_documents(tmp_path)
        assert "placed approximately" not in map_figure(emap).layout.title.text
        assert "(7 placed approximately)" in map_figure(replace(emap, placed=7)).layout.title.text
