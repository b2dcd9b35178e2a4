"""``retryStrategy``: limit, retryPolicy, expression and backoff, decided as Argo's controller does.

- ``limit`` counts retries (attempts = limit + 1); no limit means retry until success.
- ``retryPolicy``: ``OnFailure`` retries Failed attempts, ``OnError`` Error ones, ``Always`` both;
  unset, it is ``OnFailure``, or ``Always`` when an ``expression`` is given (Argo's RetryPolicyActual).
- ``expression`` must also be true (see :func:`expr.eval_retry`), e.g. ``asInt(lastRetry.exitCode) == 75``.
- backoff: wait ``duration * factor**(attempts-1)`` (capped by ``cap``), and stop retrying once the time
  since the first attempt plus the wait would pass ``maxDuration``.

``RUN_LOCAL_BACKOFF_SCALE`` (a float, default 1) multiplies every backoff duration, cap and maxDuration,
so tests can exercise a 30 s backoff in 0.3 s.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ManifestError, Unsupported
from .expr import eval_retry
from .status import Node, Phase

__all__ = ["RetrySpec", "parse_duration", "last_retry_vars"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any, field: str) -> float:
    """Seconds from an int/str of seconds or a Go duration (``30s``, ``1m30s``, ``500ms``)."""
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ManifestError(f"{field}: {value!r} is not a duration (e.g. 30s, 1m30s, 500ms or seconds)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _number(value: Any, field: str) -> float:
    try:
        return float(str(value))
    except ValueError:
        raise ManifestError(f"{field}: {value!r} is not a number") from None


def last_retry_vars(node: Node | None) -> dict[str, str]:
    """``lastRetry.*`` as Argo exposes them (strings; exitCode ``-1`` when the attempt had none)."""
    if node is None:
        return {"exitCode": "0", "status": "", "duration": "0", "message": ""}
    return {
        "exitCode": str(node.exit_code) if node.exit_code is not None else "-1",
        "status": node.phase,
        "duration": str(round(node.duration() or 0.0, 3)),
        "message": node.message,
    }


@dataclass(frozen=True)
class RetrySpec:
    limit: int | None
    policy: str
    expression: str | None
    duration: float
    factor: float | None
    cap: float | None
    max_duration: float | None
    field: str

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, field: str) -> RetrySpec | None:
        """Build from an already substituted ``retryStrategy`` (None when absent)."""
        if raw is None:
            return None
        policy = raw.get("retryPolicy") or ("Always" if raw.get("expression") else "OnFailure")
        if policy not in ("Always", "OnFailure", "OnError"):
            raise Unsupported(
                f"{field}.retryPolicy", f"{policy!r} is not supported locally (Always, OnFailure, OnError)"
            )
        limit = raw.get("limit")
        backoff = raw.get("backoff") or {}
        scale = float(os.environ.get("RUN_LOCAL_BACKOFF_SCALE", "1") or 1)

        def dur(key: str) -> float | None:
            return None if backoff.get(key) is None else parse_duration(backoff[key], f"{field}.backoff.{key}") * scale

        return cls(
            limit=None if limit is None else int(_number(limit, f"{field}.limit")),
            policy=policy,
            expression=raw.get("expression") or None,
            duration=dur("duration") or 0.0,
            factor=None if backoff.get("factor") is None else _number(backoff["factor"], f"{field}.backoff.factor"),
            cap=dur("cap"),
            max_duration=dur("maxDuration"),
            field=field,
        )

    def delay(self, attempts: int) -> float:
        """Seconds to wait before the next attempt, after ``attempts`` attempts so far."""
        wait = self.duration
        if self.factor is not None and self.factor > 0:
            wait = self.duration * self.factor ** (attempts - 1)
        return min(wait, self.cap) if self.cap is not None else wait

    def decide(self, last: Node, attempts: int, first_started: float) -> tuple[bool, str]:
        """``(retry?, why not)`` after ``attempts`` attempts, the last one being ``last``."""
        if self.limit is not None and attempts > self.limit:
            return False, "No more retries left"
        allowed = {"Always": Phase.FAILED_OR_ERROR, "OnFailure": {Phase.FAILED}, "OnError": {Phase.ERROR}}[self.policy]
        if last.phase not in allowed:
            return False, last.message
        if self.expression and not eval_retry(self.expression, last_retry_vars(last), f"{self.field}.expression"):
            return False, "retryStrategy.expression evaluated to false"
        if self.max_duration is not None and time.time() + self.delay(attempts) - first_started > self.max_duration:
            return False, "Max duration limit exceeded"
        return True, ""
