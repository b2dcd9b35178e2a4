"""``retryStrategy``: limit, retryPolicy, expression and backoff, decided as Argo's controller does.

After each failed attempt, :meth:`RetrySpec.decide` follows ``processNodeRetries`` (operator.go)
step by step, in its order:

1. with a ``backoff``: past ``maxDuration`` since the first attempt started → stop ("Max duration
   limit exceeded"); the next wait (``duration * factor**(attempts-1)``, capped by ``cap``) would end
   past it → stop ("Backoff would exceed max duration limit"); else, **only when ``limit`` is set**
   and retries remain, wait until the last attempt's finish + that wait. The next attempt gets
   the maxDuration deadline (the pod's ARGO_DEADLINE): it is killed there with "Step exceeded its
   deadline", and not run at all if it would only start after it.
2. ``retryPolicy``: ``OnFailure`` retries Failed attempts, ``OnError`` Error ones, ``Always`` both;
   unset, it is ``OnFailure``, or ``Always`` when an ``expression`` is given (RetryPolicyActual).
3. ``limit`` counts retries (attempts = limit + 1); no limit means retry until success.
4. ``expression`` must be true (see :func:`expr.eval_retry`), e.g. ``asInt(lastRetry.exitCode) == 75``.

So, as on the cluster, an attempt that will not be retried (an exit code the
expression rejects) still waits its backoff before the node fails, and without ``limit`` retries
start at once whatever the backoff says.

``RUN_LOCAL_BACKOFF_SCALE`` (a float, default 1) multiplies every backoff duration, cap and maxDuration,
so tests can exercise a 30 s backoff in 0.3 s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ManifestError, Unsupported
from .expr import eval_retry
from .status import Node, Phase

__all__ = ["RetrySpec", "Step", "parse_duration", "last_retry_vars"]

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
class Step:
    """What follows a failed attempt: wait and decide again, stop (with the node's message), or retry."""

    wait: float = 0.0
    stop: str | None = None
    deadline: float | None = None
    """Epoch seconds at which the next attempt is killed: the first attempt's start + maxDuration."""


def _int_or_string(value: Any, field: str) -> int:
    """Argo's intstr.Int: an int, or a string holding one (``"1.5"`` is an error there too)."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise ManifestError(f"{field}: value '{value}' cannot be resolved to an int") from None


@dataclass(frozen=True)
class RetrySpec:
    limit: int | None
    policy: str
    expression: str | None
    backoff: bool
    duration: float | None
    factor: int | None
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
        backoff = raw.get("backoff")
        scale = float(os.environ.get("RUN_LOCAL_BACKOFF_SCALE", "1") or 1)

        def dur(key: str) -> float | None:
            value = (backoff or {}).get(key)
            return None if value in (None, "") else parse_duration(value, f"{field}.backoff.{key}") * scale

        factor = (backoff or {}).get("factor")
        return cls(
            limit=None if limit is None else _int_or_string(limit, f"{field}.limit"),
            policy=policy,
            expression=raw.get("expression") or None,
            backoff=backoff is not None,
            duration=dur("duration"),
            factor=None if factor is None else _int_or_string(factor, f"{field}.backoff.factor"),
            cap=dur("cap"),
            max_duration=dur("maxDuration"),
            field=field,
        )

    def delay(self, attempts: int) -> float:
        """Seconds to wait before the next attempt, after ``attempts`` attempts so far."""
        wait = self.duration or 0.0
        if self.factor is not None and self.factor > 0:
            wait = wait * self.factor ** (attempts - 1)
        return min(wait, self.cap) if self.cap is not None else wait

    def decide(self, last: Node, first_started: float, attempts: int, now: float) -> Step:
        """The step after ``attempts`` attempts, the last one being ``last`` (operator.go's order)."""
        deadline = None
        if self.backoff:
            if self.max_duration is not None:
                deadline = first_started + self.max_duration
                if now > deadline:
                    return Step(stop="Max duration limit exceeded")
            if self.duration is None:
                raise ManifestError(f"{self.field}.backoff: no base duration specified for retryStrategy")
            wait_until = (last.finished_at or now) + self.delay(attempts)
            if deadline is not None and wait_until > deadline:
                return Step(stop="Backoff would exceed max duration limit")
            if now < wait_until and self.limit is not None and attempts <= self.limit:
                return Step(wait=wait_until - now)
        allowed = {"Always": Phase.FAILED_OR_ERROR, "OnFailure": {Phase.FAILED}, "OnError": {Phase.ERROR}}[self.policy]
        if last.phase not in allowed:
            return Step(stop=last.message)
        if self.limit is not None and attempts > self.limit:
            return Step(stop="No more retries left")
        if self.expression and not eval_retry(self.expression, last_retry_vars(last), f"{self.field}.expression"):
            return Step(stop="retryStrategy.expression evaluated to false")
        return Step(deadline=deadline)
