"""Many people at once through one server: AppTest sessions in threads upload, chat and browse together.

The app serves every session from one process and one cached Engine (st.cache_resource). Here several
sessions, each in its own thread and started together, upload files through the Documents page (two
of them the very same file), ask questions on the Chat page, list the documents and draw the analysis
map, all against one data dir. No session may see an exception, every upload must land exactly once,
the KB must be whole afterwards, and all of it must have gone through one shared Engine.

AppTest is written for one session at a time: each run installs a mock Runtime and a config flag and
takes them away at its end, under any other run still going. The `parallel_apptest` fixture installs
them once for the whole test instead, which is what a real server has: one runtime, many sessions.
"""

from __future__ import annotations

import builtins
import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from rag_core.config import Settings
from rag_core.embedding import Embedder
from rag_core.engine import Engine
from rag_core.jobs import LocalJobQueue

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 300

pytestmark = pytest.mark.slow


def _wait_for_jobs(data_dir: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while any(j.status in ("queued", "running") for j in LocalJobQueue(data_dir).jobs()):
        assert time.monotonic() < deadline, "the upload jobs did not finish"
        time.sleep(0.2)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = tmp_path / "kb"
    monkeypatch.setenv("RAG_DATA_DIR", str(d))
    yield d


class _RuntimeSink:
    """Takes AppTest's per-run `Runtime._instance = ...` assignments, so they cannot undo each other."""

    _instance: object = None


@pytest.fixture
def parallel_apptest(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from unittest.mock import MagicMock

    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
    from streamlit.runtime.dataframe_source_manager import DataframeSourceManager
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1.util import patch_config_options

    if not (hasattr(app_test, "Runtime") and hasattr(app_test, "patch_config_options")):
        pytest.skip("this Streamlit's AppTest internals changed; the parallel harness needs updating")
    runtime = MagicMock(spec=Runtime)
    runtime.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    runtime.dataframe_source_mgr = DataframeSourceManager()
    runtime.cache_storage_manager = MemoryCacheStorageManager()
    monkeypatch.setattr(app_test, "Runtime", _RuntimeSink)
    monkeypatch.setattr(app_test, "patch_config_options", lambda options: contextlib.nullcontext())
    monkeypatch.setattr(Runtime, "_instance", runtime)
    # CPython 3.11 can fail compiling in two threads at once ("SystemError: AST constructor recursion
    # depth mismatch", fixed in later CPython releases). A Streamlit server compiles each page once,
    # under its script cache's lock; here every AppTest has a cache of its own, so the harness takes
    # that lock's place. The sessions still run, upload, search and answer concurrently.
    compile_lock = threading.Lock()
    real_compile = builtins.compile

    def serial_compile(*args: Any, **kwargs: Any) -> Any:
        with compile_lock:
            return real_compile(*args, **kwargs)

    monkeypatch.setattr(builtins, "compile", serial_compile)
    with patch_config_options({"global.appTest": True}):
        yield


def _session(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    if page != "documents":
        at.switch_page(f"pages/{page}.py").run()
    return at


def _texts(at: AppTest) -> str:
    """The messages shown, Markdown escapes removed."""
    return re.sub(r"\\(.)", r"\1", "\n".join(str(e.value) for e in (*at.success, *at.info, *at.error, *at.warning)))


def test_sessions_uploading_chatting_and_browsing_at_once(
    data_dir: Path,
    embedder: Embedder,
    policy_pdf: Path,
    pdf_maker: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    parallel_apptest: None,
) -> None:
    Engine(Settings(data_dir=data_dir), embedder=embedder).ingest_paths([policy_pdf])
    uploads = {
        name: pdf_maker([f"{topic} policy. " + text * 3], name=name).read_bytes()
        for name, topic, text in (
            ("parking.pdf", "Parking", "Permits are issued by facilities for one year. "),
            ("laptops.pdf", "Laptop", "Laptops must be encrypted and locked when unattended. "),
            ("training.pdf", "Training", "Each employee has a yearly training budget of 1500 dollars. "),
            ("gifts.pdf", "Gifts", "Gifts from suppliers above 50 dollars must be declared. "),
        )
    }
    engines: list[Engine] = []
    real_init = Engine.__init__

    def counting_init(self: Engine, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        engines.append(self)

    monkeypatch.setattr(Engine, "__init__", counting_init)

    def upload(names: list[str]) -> Callable[[AppTest], str]:
        def act(at: AppTest) -> str:
            at.get("file_uploader")[0].set_value([(n, uploads[n], "application/pdf") for n in names])
            at.run()  # the Ingest button enables once files are chosen
            at.button(key="documents_ingest").click().run()
            _wait_for_jobs(data_dir)  # an upload is a job that the server's worker runs
            at.run()
            return _texts(at)

        return act

    def chat(questions: list[str]) -> Callable[[AppTest], str]:
        def act(at: AppTest) -> str:
            for q in questions:
                at.chat_input(key="chat_input").set_value(q).run()
                assert not at.exception, at.exception
            assert len(at.chat_message) == 2 * len(questions)
            return ""

        return act

    def browse(at: AppTest) -> str:
        for _ in range(4):
            at.run()
            assert not at.exception and at.dataframe[0].value["name"].tolist()  # never an empty or broken list
        return ""

    def analyse(at: AppTest) -> str:
        at.selectbox(key="analysis_method").set_value("pca").run()
        at.text_input(key="analysis_query").set_value("encrypted laptops").run()
        return ""

    plan: list[tuple[str, str, Callable[[AppTest], str]]] = [
        ("upload A", "documents", upload(["parking.pdf", "laptops.pdf"])),
        ("upload B", "documents", upload(["training.pdf", "gifts.pdf"])),
        ("upload A again", "documents", upload(["parking.pdf"])),  # the same bytes at the same moment
        ("chat 1", "chat", chat(["How many vacation days?", "Can I work from home?", "Are meals covered?"])),
        ("chat 2", "chat", chat(["Parking permits", "Is my laptop encrypted?", "training budget"])),
        ("browse", "documents", browse),
        ("analysis", "analysis", analyse),
    ]
    barrier = threading.Barrier(len(plan))
    outcome: dict[str, str] = {}
    errors: dict[str, str] = {}

    def run(label: str, page: str, act: Callable[[AppTest], str]) -> None:
        try:
            at = _session(page)
            assert not at.exception, at.exception
            barrier.wait(timeout=TIMEOUT)  # every session loaded; now all act at once
            outcome[label] = act(at)
            if at.exception:
                errors[label] = str(at.exception)
        except BaseException as e:
            errors[label] = f"{type(e).__name__}: {e}"
            barrier.abort()  # the others stop waiting

    threads = [threading.Thread(target=run, args=item, name=item[0]) for item in plan]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not any(t.is_alive() for t in threads), "a session hung"
    assert not errors, "\n".join(f"{k}: {v}" for k, v in errors.items())

    results = {(j.job_id, f.name): f.result for j in LocalJobQueue(data_dir).jobs() for f in j.files}
    assert len(results) == 5 and all(r is not None for r in results.values())
    parking = sorted(r.status for (_, name), r in results.items() if name == "parking.pdf" and r is not None)
    assert parking == ["added", "duplicate"]  # the same bytes at the same moment: stored once
    assert all(r.status == "added" for (_, name), r in results.items() if name != "parking.pdf" and r is not None)
    for label in ("upload A", "upload B", "upload A again"):  # every session sees every upload's results
        shown = outcome[label]
        assert "laptops.pdf**: added" in shown and "gifts.pdf**: added" in shown and "failed" not in shown
        assert "parking.pdf**: already in the knowledge base" in shown

    kb = Engine(Settings(data_dir=data_dir), embedder=embedder).store
    docs = kb.documents()
    assert sorted(d.name for d in docs) == sorted(["policy.pdf", *uploads])  # each once: parking is not doubled
    chunks = kb.all_chunks()
    assert kb.size == len(chunks) == sum(d.chunks for d in docs)
    shared = {id(e) for e in engines if e.settings.data_dir == data_dir and e.store is not kb}
    assert len(shared) == 1, f"{len(shared)} engines served the sessions; st.cache_resource should share one"
