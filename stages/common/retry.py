"""Retry with exponential backoff for transient service faults."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["retry"]

T = TypeVar("T")
log = logging.getLogger(__name__)


def retry(
    fn: Callable[[], T],
    *,
    transient: tuple[type[BaseException], ...],
    what: str,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
) -> T:
    """Call ``fn`` until it succeeds or ``attempts`` are used; re-raise the last error.

    Delays double from ``base_delay`` (0.5, 1, 2, 4 s by default: ~7.5 s in all).
    Only exceptions in ``transient`` are retried; anything else propagates at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except transient as exc:
            if attempt == attempts:
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            log.warning("%s failed (%s); retry %d/%d in %.1fs", what, type(exc).__name__, attempt, attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
