"""Exit codes shared by all stages and the exception tree that maps onto them.

Only ``runner.run_stage`` turns exceptions into exit codes. Argo's retryStrategy
retries exit 75 only, so bad data is never retried and a flaky service is.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode", "StageError", "InputError", "GateFailed", "TransientError"]


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    BAD_INPUT = 2
    GATE_FAILED = 3
    TRANSIENT = 75  # EX_TEMPFAIL from sysexits.h


class StageError(Exception):
    """Base of the errors a stage raises on purpose."""

    exit_code = ExitCode.UNEXPECTED


class InputError(StageError):
    """Bad input or usage: the message names the file, line/column or field."""

    exit_code = ExitCode.BAD_INPUT


class GateFailed(StageError):
    """The quality gate rejected the candidate model (eval only)."""

    exit_code = ExitCode.GATE_FAILED


class TransientError(StageError):
    """A service fault (PostgreSQL, S3, MLflow) that outlasted the stage's own retries."""

    exit_code = ExitCode.TRANSIENT
