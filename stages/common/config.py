"""Configuration from the environment, built once in ``main()`` (nothing at import)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["Settings", "redact_uri", "set_mlflow_telemetry"]

_TRUE = {"1", "true", "yes", "on"}
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class Settings:
    """Service settings. Secrets are excluded from ``repr`` so they never reach a log."""

    run_id: str = "local"
    minio_endpoint: str | None = None
    """S3 endpoint URL (MinIO), e.g. ``http://minio:9000``; None means AWS defaults."""
    minio_access_key: str | None = field(default=None, repr=False)
    minio_secret_key: str | None = field(default=None, repr=False)
    minio_secure: bool = False
    """Verify TLS when the endpoint has no scheme (``MINIO_SECURE``)."""
    minio_region: str = "us-east-1"
    minio_max_attempts: int = 5
    """botocore attempts per S3 call (standard retry mode, exponential backoff)."""
    minio_connect_timeout: float = 5.0
    minio_read_timeout: float = 60.0
    """Seconds before a hung S3 connection counts as a (retried) fault."""
    pg_host: str | None = None
    """PostgreSQL host for the audit; None disables the audit (single-stage debugging)."""
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_password: str | None = field(default=None, repr=False)
    pg_database: str = "mlops_audit"
    pg_retries: int = 5
    """Connection attempts (with backoff) to the audit database before exit 75 (``PG_RETRIES``)."""
    mlflow_tracking_uri: str | None = None
    """MLflow tracking URI; None disables tracking and the registry."""
    mlflow_retries: int = 5
    """Attempts (with backoff) per MLflow call before exit 75 (``MLFLOW_RETRIES``)."""
    mlflow_http_max_retries: int = 2
    """MLflow's own HTTP retries inside one call (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``; MLflow's default 7
    waits minutes, and the stage already retries around each call)."""
    mlflow_http_backoff_factor: float = 1.0
    """Backoff factor of MLflow's own HTTP retries (``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``)."""
    mlflow_http_timeout: float = 30.0
    """Seconds MLflow waits for one HTTP answer (``MLFLOW_HTTP_REQUEST_TIMEOUT``)."""
    mlflow_telemetry: bool = False
    """MLflow's usage telemetry to its vendor: only when the operator opts in with
    ``MLFLOW_DISABLE_TELEMETRY=false`` (MLflow's own default is on)."""
    stage_attempt: int = 0
    """Attempt number recorded in the audit (``STAGE_ATTEMPT``; Argo's ``{{retries}}``)."""
    stage_part: str = ""
    """Partition of a fanned-out stage (``STAGE_PART``): each pod of a fan-out is audited on its own row."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = e.get(name, "").strip()
            return value or None

        return cls(
            run_id=get("RUN_ID") or "local",
            minio_endpoint=get("MINIO_ENDPOINT"),
            minio_access_key=get("MINIO_ACCESS_KEY"),
            minio_secret_key=get("MINIO_SECRET_KEY"),
            minio_secure=(get("MINIO_SECURE") or "false").lower() in _TRUE,
            minio_region=get("MINIO_REGION") or "us-east-1",
            minio_max_attempts=_number(get, "MINIO_MAX_ATTEMPTS", 5, int),
            minio_connect_timeout=_number(get, "MINIO_CONNECT_TIMEOUT", 5.0, float),
            minio_read_timeout=_number(get, "MINIO_READ_TIMEOUT", 60.0, float),
            pg_host=get("PG_HOST"),
            pg_port=_number(get, "PG_PORT", 5432, int),
            pg_user=get("PG_USER") or "postgres",
            pg_password=get("PG_PASSWORD"),
            pg_database=get("PG_DATABASE") or "mlops_audit",
            pg_retries=_positive(get, "PG_RETRIES", 5),
            mlflow_tracking_uri=get("MLFLOW_TRACKING_URI"),
            mlflow_retries=_positive(get, "MLFLOW_RETRIES", 5),
            mlflow_http_max_retries=_number(get, "MLFLOW_HTTP_REQUEST_MAX_RETRIES", 2, int),
            mlflow_http_backoff_factor=_number(get, "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", 1.0, float),
            mlflow_http_timeout=_number(get, "MLFLOW_HTTP_REQUEST_TIMEOUT", 30.0, float),
            mlflow_telemetry=(get("MLFLOW_DISABLE_TELEMETRY") or "true").lower() in ("false", "0", "no"),
            stage_attempt=_number(get, "STAGE_ATTEMPT", 0, int),
            stage_part=get("STAGE_PART") or "",
        )


def set_mlflow_telemetry(settings: Settings) -> None:
    """Tell MLflow whether to send usage telemetry to its vendor: not unless the operator opted in.

    Stages run inside the user's network. Written before anything imports mlflow
    (``runner.run_stage``): MLflow reads it when its client starts and before each record.
    Here, not in ``mlflow_calls``, so that stages without MLflow need not import it.
    """
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "false" if settings.mlflow_telemetry else "true"


def _number(get: Callable[[str], str | None], name: str, default: _N, kind: Callable[[str], _N]) -> _N:
    """``kind(value)`` of the variable ``name``, ``default`` when unset; ValueError naming it when malformed."""
    raw = get(name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name}={raw!r}: expected {what}") from None


def _positive(get: Callable[[str], str | None], name: str, default: int) -> int:
    """An attempt count: a whole number of at least 1 (0 attempts would never call the service)."""
    raw = get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}={raw!r}: expected a whole number of attempts, at least 1")
    return value


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact_uri(text: str) -> str:
    """``text`` (a URI, or a message quoting URIs) without any ``user:password@``.

    MLflow's own exceptions quote the full tracking URI, so messages that include them
    go through this too before they reach a log or the audit.
    """
    return _USERINFO.sub("", text)
