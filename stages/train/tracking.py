"""MLflow tracking and registry for a trained model (only when MLFLOW_TRACKING_URI is set).

Uses only calls that work over HTTP with mlflow-skinny (the stage image has no
sqlalchemy); the tests point it at a sqlite store. Connectivity is probed with retries
and backoff before training (``check_reachable``), so an unreachable server fails fast
with TransientError (exit 75, which Argo retries) before anything is fitted or logged.
A fault in the middle of the run is also a TransientError; mlflow marks that run
FAILED, and the retried attempt deletes it before starting its own.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from stages.common.config import redact_uri
from stages.common.errors import TransientError
from stages.common.model_io import ARTIFACT_DIGEST_TAG, FILE_DIGEST_TAG, TRUSTED_TYPES, registry_artifact_sha256
from stages.common.retry import retry

__all__ = ["Tracked", "check_reachable", "track"]

log = logging.getLogger(__name__)

PROBE_ATTEMPTS = 3
# mlflow's own HTTP retries default to 7 with backoff factor 2 (minutes of waiting);
# the stage retries around them and Argo retries the stage, so keep each call short.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED", "INTERNAL_ERROR"}


class _Unreachable(Exception):
    """A transient MLflow fault, wrapped so ``retry`` can tell it apart."""


@dataclass(frozen=True)
class Tracked:
    run_id: str
    model_version: str | None


def _is_transient(exc: BaseException) -> bool:
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout | ConnectionError):
        return True
    if isinstance(exc, MlflowException):
        msg = str(exc)
        if "API request to" in msg and ("failed with exception" in msg or "timeout" in msg):
            return True
        return exc.error_code in _TRANSIENT_CODES and "API request" in msg
    return False


def _call(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:
        if _is_transient(exc):
            raise _Unreachable(redact_uri(f"{type(exc).__name__}: {exc}")) from exc
        raise


def check_reachable(uri: str) -> None:
    """Ask the tracking server for one experiment, with retries; TransientError when it never answers.

    Called before training, so an unreachable server costs seconds, not a wasted fit.
    """
    from mlflow.tracking import MlflowClient

    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)

    client = MlflowClient(tracking_uri=uri)
    try:
        retry(
            lambda: _call(lambda: client.search_experiments(max_results=1)),
            transient=(_Unreachable,),
            what=f"MLflow at {redact_uri(uri)}",
            attempts=PROBE_ATTEMPTS,
        )
    except _Unreachable as exc:
        raise TransientError(
            f"MLflow at MLFLOW_TRACKING_URI={redact_uri(uri)} unreachable after {PROBE_ATTEMPTS} attempts ({exc}); "
            "check the server and MLFLOW_TRACKING_URI"
        ) from exc


def _drop_unfinished(experiment_id: str, pipeline_run_id: str) -> None:
    """Delete runs an earlier, interrupted attempt of this pipeline run left behind.

    A retried stage then leaves one finished MLflow run per pipeline run, not one per attempt.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    quoted = pipeline_run_id.replace("\\", "\\\\").replace("'", "\\'")
    for run in client.search_runs([experiment_id], f"tags.pipeline_run_id = '{quoted}'"):
        if run.info.status != "FINISHED":
            log.warning("deleting MLflow run %s (%s) left by an earlier attempt", run.info.run_id, run.info.status)
            client.delete_run(run.info.run_id)


def track(
    uri: str,
    experiment: str,
    run_name: str,
    tags: dict[str, str],
    params: dict[str, Any],
    metrics: dict[str, float],
    model: Any,
    input_example: Any,
    registered_model: str,
    card: dict[str, Any],
    manifest: dict[str, Any] | None = None,
) -> Tracked:
    """Log one training run, the model (skops), the card and the silver manifest; register a version.

    The manifest travels with the model so scoring can build features exactly as in
    training from the registry alone (``models:/<name>@champion`` → run → manifest.json).

    ``card["mlflow"]`` is filled in (run id, version, the digest of the model file the
    registry stores) before the card is logged, so the copy in MLflow equals the one the
    stage writes. The version is tagged with both digests (``card["model_sha256"]`` is the
    published model.skops), which eval checks before it scores and before it promotes.
    """
    import mlflow
    import mlflow.sklearn
    import sklearn
    import skops

    mlflow.set_tracking_uri(uri)
    try:
        exp = mlflow.set_experiment(experiment)
        _drop_unfinished(exp.experiment_id, tags["pipeline_run_id"])
        with mlflow.start_run(run_name=run_name, tags=tags) as run:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                serialization_format="skops",
                skops_trusted_types=TRUSTED_TYPES,
                registered_model_name=registered_model,
                input_example=input_example,
                # explicit requirements: inference would load the model in a subprocess
                pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"],
            )
            version = str(info.registered_model_version) if info.registered_model_version is not None else None
            artifact_sha256 = None
            if version is not None:
                client = mlflow.tracking.MlflowClient()
                artifact_sha256 = registry_artifact_sha256(client, registered_model, version, uri)
                digests = {FILE_DIGEST_TAG: card["model_sha256"], ARTIFACT_DIGEST_TAG: artifact_sha256}
                for key, value in (tags | digests).items():
                    client.set_model_version_tag(registered_model, version, key, value)
            card["mlflow"].update(run_id=run.info.run_id, model_version=version, artifact_sha256=artifact_sha256)
            mlflow.log_dict(card, "model-card.json")
            if manifest is not None:
                mlflow.log_dict(manifest, "manifest.json")
    except Exception as exc:
        if _is_transient(exc):
            raise TransientError(
                f"MLflow at MLFLOW_TRACKING_URI={redact_uri(uri)} failed during the run ({type(exc).__name__}: {redact_uri(str(exc))}); "
                "the stage can be retried"
            ) from exc
        raise
    log.info("logged MLflow run %s, registered %s version %s", run.info.run_id, registered_model, version)
    return Tracked(run.info.run_id, version)
