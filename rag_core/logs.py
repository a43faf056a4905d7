"""Scoped quieting of third-party loggers: `with quiet("pypdf"): ...`.

Why: pypdf warns on every recoverable quirk of a PDF, bm25s logs its progress, and both are noise in
our logs. Importing a PolicyPal module must not change anyone's logging configuration, so instead of
setting a library's logger level once at import, each call into the library is wrapped in `quiet`,
which raises that logger's level to ERROR and puts the previous level back afterwards.

Logger levels are process-wide, so `quiet` counts its holders per logger: overlapping uses (nested,
or in several threads) raise the level once and the last one out restores it. While any holder is
inside, the logger is quiet for every thread. A level someone else set in the meantime is kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.Lock()
# logger name -> (holders, level before the first holder, level the first holder set)
_HELD: dict[str, tuple[int, int, int]] = {}


@contextmanager
def quiet(name: str) -> Iterator[None]:
    """Drop the named logger's (and its children's) records below ERROR for the duration of the block.

    >>> log = logging.getLogger("example.noisy")
    >>> with quiet("example.noisy"):
    ...     logging.getLevelName(log.level)
    'ERROR'
    >>> logging.getLevelName(log.level)
    'NOTSET'
    """
    logger = logging.getLogger(name)
    with _LOCK:
        held = _HELD.get(name)
        if held is None:
            before = logger.level
            level = max(logging.ERROR, logger.getEffectiveLevel())  # never louder than it was
            logger.setLevel(level)
            _HELD[name] = (1, before, level)
        else:
            _HELD[name] = (held[0] + 1, held[1], held[2])
    try:
        yield
    finally:
        with _LOCK:
            holders, before, level = _HELD[name]
            if holders > 1:
                _HELD[name] = (holders - 1, before, level)
            else:
                del _HELD[name]
                if logger.level == level:  # unless someone set another level meanwhile
                    logger.setLevel(before)


__all__ = ["quiet"]
