"""rag_core.logs.quiet, and that importing PolicyPal changes no one's logging configuration."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_core.logs import quiet

ROOT = Path(__file__).resolve().parent.parent
NOISY = ("pypdf", "transformers.tokenization_utils_base", "bm25s")

_PROBE = """
import json, logging, sys
names = sys.argv[1:]
def levels():
    return {"root": logging.root.level, **{n: logging.getLogger(n).level for n in names}}
before = levels()
import rag_core.loaders, rag_core.chunking, rag_core.lexical
print(json.dumps({"before": before, "after": levels()}))
"""


def test_importing_the_engine_modules_leaves_logger_levels_alone() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *NOISY], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    levels = json.loads(result.stdout.strip().splitlines()[-1])
    assert levels["after"] == levels["before"]


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("policypal.test.noisy")
    log.setLevel(logging.NOTSET)
    yield log
    log.setLevel(logging.NOTSET)


class TestQuiet:
    def test_raises_the_level_and_restores_it(self, logger: logging.Logger) -> None:
        logger.setLevel(logging.INFO)
        with quiet(logger.name):
            assert logger.level == logging.ERROR
            assert not logger.isEnabledFor(logging.WARNING) and logger.isEnabledFor(logging.ERROR)
        assert logger.level == logging.INFO

    def test_children_are_quiet_too(self, logger: logging.Logger) -> None:
        child = logging.getLogger(logger.name + "._reader")
        with quiet(logger.name):
            assert not child.isEnabledFor(logging.WARNING)
        assert child.isEnabledFor(logging.WARNING)

    def test_restores_after_an_exception(self, logger: logging.Logger) -> None:
        with pytest.raises(RuntimeError), quiet(logger.name):
            raise RuntimeError("boom")
        assert logger.level == logging.NOTSET

    def test_never_makes_a_logger_louder(self, logger: logging.Logger) -> None:
        logger.setLevel(logging.CRITICAL)
        with quiet(logger.name):
            assert logger.level == logging.CRITICAL
        assert logger.level == logging.CRITICAL

    def test_nested_uses_restore_once_at_the_end(self, logger: logging.Logger) -> None:
        with quiet(logger.name):
            with quiet(logger.name):
                assert logger.level == logging.ERROR
            assert logger.level == logging.ERROR  # the outer block is still inside
        assert logger.level == logging.NOTSET

    def test_a_level_set_meanwhile_is_kept(self, logger: logging.Logger) -> None:
        with quiet(logger.name):
            logger.setLevel(logging.DEBUG)
        assert logger.level == logging.DEBUG

    def test_overlapping_threads_end_with_the_original_level(self, logger: logging.Logger) -> None:
        # Entered and left out of order: A in, B in, A out (B still inside), B out.
        logger.setLevel(logging.INFO)
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
        seen: list[int] = []

        def a() -> None:
            with quiet(logger.name):
                a_in.set()
                b_in.wait(5)
            a_out.set()

        def b() -> None:
            a_in.wait(5)
            with quiet(logger.name):
                b_in.set()
                a_out.wait(5)
                seen.append(logger.level)  # A has left; B is still inside

        threads = [threading.Thread(target=a), threading.Thread(target=b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert seen == [logging.ERROR]
        assert logger.level == logging.INFO
