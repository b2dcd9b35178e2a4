"""One policy for every MLflow call a stage makes: what is transient, how often to retry, what then.

- Transient: no answer (connection refused or reset, timeout) or an HTTP answer of 5xx or
  429, whether MLflow's REST client reports it as an ``MlflowException`` (its status comes
  from the error code) or an artifact download as a ``requests.HTTPError``.
- Each call is retried ``Settings.mlflow_retries`` times with backoff (``common.retry``),
  then raises ``TransientError`` (exit 75, which Argo retries) naming MLFLOW_TRACKING_URI.
- Anything else is permanent and is not retried: ``MlflowRefused`` (exit 1), whose
  ``not_found`` lets a caller turn a missing model, alias or run into a bad-input error.
- MLflow's own HTTP retries are capped (``MlflowCalls.limit_http_retries``) so the
  stage's backoff, not minutes of MLflow's, decides how long a dead server is waited for.

Every message goes through ``redact_uri``: MLflow quotes full URLs, credentials included.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .config import Settings, redact_uri
from .errors import StageError, TransientError
from .retry import retry

__all__ = ["MlflowCalls", "MlflowRefused", "is_transient", "http_status"]

T = TypeVar("T")


class MlflowRefused(StageError):
    """A permanent error of an MLflow call: a 4xx answer other than 429, or an error on this side."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def not_found(self) -> bool:
        """The model, version, alias, run or artifact asked for does not exist."""
        return self.status == 404 or "not found" in str(self).lower()


class _Retryable(Exception):
    """A transient fault, wrapped (message already redacted) so ``retry`` can tell it apart."""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an MLflow call failed with, or None when there was no HTTP answer."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return int(exc.get_http_status_code())
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return int(exc.response.status_code)
    return None


def is_transient(exc: BaseException) -> bool:
    """The one definition of a transient MLflow fault (see the module docstring)."""
    import requests

    status = http_status(exc)
    if status is not None:
        return status >= 500 or status == 429
    return isinstance(
        exc,
        requests.ConnectionError | requests.Timeout | requests.exceptions.RetryError | ConnectionError | TimeoutError,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact_uri(f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")


@dataclass(frozen=True)
class MlflowCalls:
    """Calls to one tracking server with the retry policy from ``Settings``."""

    tracking_uri: str
    attempts: int = 5
    """Tries per call before ``TransientError`` (``MLFLOW_RETRIES``)."""
    http_max_retries: int = 2
    http_backoff_factor: float = 1.0
    http_timeout: float = 30.0
    base_delay: float = 0.5
    """First backoff delay in seconds; it doubles per retry (``common.retry``)."""

    @classmethod
    def from_settings(cls, settings: Settings, tracking_uri: str | None = None) -> MlflowCalls:
        uri = tracking_uri or settings.mlflow_tracking_uri
        if not uri:
            raise ValueError("MlflowCalls needs a tracking URI (MLFLOW_TRACKING_URI is not set)")
        return cls(
            uri,
            attempts=settings.mlflow_retries,
            http_max_retries=settings.mlflow_http_max_retries,
            http_backoff_factor=settings.mlflow_http_backoff_factor,
            http_timeout=settings.mlflow_http_timeout,
        )

    @property
    def where(self) -> str:
        """``MLFLOW_TRACKING_URI=<uri without credentials>``, for messages."""
        return f"MLFLOW_TRACKING_URI={redact_uri(self.tracking_uri)}"

    def limit_http_retries(self) -> None:
        """Hand the HTTP limits to MLflow's client, which reads them from the environment per request.

        Side effect on ``os.environ`` (the values came from it through ``Settings``, defaults
        filled in): MLflow's own default is 7 retries with backoff, minutes per call.
        """
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(self.http_max_retries)
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = f"{self.http_backoff_factor:g}"
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = f"{self.http_timeout:g}"

    def call(self, what: str, fn: Callable[[], T], *, attempts: int | None = None) -> T:
        """``fn()`` with retries on transient faults.

        Raises ``TransientError`` when every attempt failed transiently and ``MlflowRefused``
        on the first permanent error (the original exception is its ``__cause__``).
        ``what`` completes "failed to ...", e.g. "read the champion alias".
        """
        tries = self.attempts if attempts is None else attempts

        def attempt() -> T:
            try:
                return fn()
            except StageError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified right here, once for all stages
                if is_transient(exc):
                    raise _Retryable(_first_line(exc)) from exc
                status = http_status(exc)
                raise MlflowRefused(
                    f"MLflow at {self.where}: could not {what} ({_first_line(exc)}); not a transient fault, "
                    "not retried: check the request, the permissions and the tracking server's version",
                    status,
                ) from exc

        try:
            return retry(
                attempt, transient=(_Retryable,), what=f"MLflow {what}", attempts=tries, base_delay=self.base_delay
            )
        except _Retryable as exc:
            raise TransientError(
                f"MLflow at {self.where} failed to {what} after {tries} attempts ({exc}); "
                "check that the tracking server is up and reachable"
            ) from exc
