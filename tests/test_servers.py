"""Several processes on one knowledge base, as several app servers (and the CLI, and workers) share
one: a document stored by one process is found by another that was already running, in dense, BM25
and hybrid search and on the Analysis map, without reopening anything. Both backends: two processes
on one data dir, and two on one PostgreSQL database (each with its own cache dir, as on two machines).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag_core import maps
from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine, follow_other_writers
from rag_core.types import KnowledgeChanged, Mode

from .conftest import ROOT

BACKENDS = ["local", "postgresql"]
MODES: tuple[Mode, ...] = ("dense", "bm25", "hybrid")
LEAVE = b"Annual leave. Employees accrue twenty days of paid annual leave per year. " * 10
SABBATICAL = b"Sabbatical policy. After seven years of service staff may take a Zanzibar sabbatical. " * 10
QUERY = "Zanzibar sabbatical after seven years"


def _settings(request: pytest.FixtureRequest, data_dir: Path) -> Settings:
    if request.param == "local":
        return Settings(data_dir=data_dir / "kb")
    return Settings(data_dir=data_dir, database_url=request.getfixturevalue("pg_url"))


@pytest.fixture(params=BACKENDS)
def here(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """This process's view of the knowledge base."""
    return _settings(request, tmp_path / "here")


def _cli(settings: Settings, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Another process on the same knowledge base: the same data dir, or the same database with a cache
    dir of its own (another machine)."""
    url = settings.database_url
    where = ["--data-dir", str(settings.data_dir if url is None else tmp_path / "there")]
    where += [] if url is None else ["--database-url", url]
    done = subprocess.run(
        [sys.executable, "-m", "rag_core", *args, *where],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_another_process_ingests_and_a_running_engine_finds_it(
    here: Settings, tmp_path: Path, embedder: Embedder
) -> None:
    engine = Engine(here, embedder=embedder)
    engine.ingest_uploads([("leave.txt", LEAVE)])
    for mode in MODES:  # every derived state loaded and cached at this generation
        assert engine.search(QUERY, k=3, mode=mode)[0].document == "leave.txt"
    before = engine.query_view("").emap
    (tmp_path / "sabbatical.txt").write_bytes(SABBATICAL)

    result = json.loads(_cli(here, tmp_path, "ingest", str(tmp_path / "sabbatical.txt"), "--json").stdout)
    assert result["status"] == "added"

    for mode in MODES:
        assert engine.search(QUERY, k=3, mode=mode)[0].document == "sabbatical.txt", mode
    after = engine.query_view(QUERY).emap
    assert after.generation == engine.store.generation() > before.generation
    assert {c.document for c in after.chunks} == {"leave.txt", "sabbatical.txt"}


def test_this_process_ingests_and_another_process_finds_it(here: Settings, tmp_path: Path, embedder: Embedder) -> None:
    engine = Engine(here, embedder=embedder)
    engine.ingest_uploads([("leave.txt", LEAVE)])
    assert json.loads(_cli(here, tmp_path, "search", QUERY, "--json").stdout)["hits"][0]["document"] == "leave.txt"
    engine.ingest_uploads([("sabbatical.txt", SABBATICAL)])
    for mode in ("bm25", "hybrid"):  # the other process's BM25 cache was built before the new document
        out = _cli(here, tmp_path, "search", QUERY, "--json", "--mode", mode).stdout
        assert json.loads(out)["hits"][0]["document"] == "sabbatical.txt", mode


def test_an_engine_following_other_writers_hears_of_their_changes_and_maps_them(
    here: Settings, tmp_path: Path, embedder: Embedder
) -> None:
    engine = Engine(here, embedder=embedder)
    heard: list[KnowledgeChanged] = []
    arrived = threading.Event()

    def listen(event: KnowledgeChanged) -> None:
        heard.append(event)
        arrived.set()

    engine.subscribe(listen)
    engine.subscribe(maps.follow_changes(engine.store))  # as the app's engine does
    stop = follow_other_writers(engine, interval_s=0.05)
    try:
        engine.ingest_uploads([("leave.txt", LEAVE)])
        time.sleep(0.5)  # the watch has looked several times since
        assert [e.kind for e in heard] == ["added"]
        arrived.clear()
        (tmp_path / "sabbatical.txt").write_bytes(SABBATICAL)
        _cli(here, tmp_path, "ingest", str(tmp_path / "sabbatical.txt"))
        assert arrived.wait(10)
        assert [e.kind for e in heard] == ["added", "external"]
        assert heard[-1].generation == engine.store.generation()
        assert maps.MAP_WORKER.wait_idle(120) and maps.map_is_cached(engine.store)  # the map of their state
    finally:
        stop.set()
