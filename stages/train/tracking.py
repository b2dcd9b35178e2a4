"""MLflow tracking and registry for a trained model (only when MLFLOW_TRACKING_URI is set).

Uses only calls that work over HTTP with mlflow-skinny (the stage image has no
sqlalchemy); the tests point it at a sqlite store. Every call goes through the shared
MLflow call policy (``stages.common.mlflow_calls``): a transient fault is retried
``MLFLOW_RETRIES`` times with backoff, so a network blip after fitting costs seconds, not
a refit. Connectivity is probed before training (``check_reachable``), so an unreachable
server fails fast with TransientError (exit 75, which Argo retries) before anything is
fitted. A fault that outlasts the retries mid-run is also a TransientError; the run is
marked FAILED where the server still answers, and the retried attempt deletes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from stages.common.config import Settings, redact_uri
from stages.common.errors import TransientError
from stages.common.mlflow_calls import MlflowCalls
from stages.common.model_io import ARTIFACT_DIGEST_TAG, FILE_DIGEST_TAG, TRUSTED_TYPES, registry_artifact_sha256

__all__ = ["Tracked", "check_reachable", "track"]

log = logging.getLogger(__name__)

PROBE_ATTEMPTS = 3
"""Tries of the probe before fitting: its own short budget (about 1.5 s of backoff)."""


@dataclass(frozen=True)
class Tracked:
    run_id: str
    model_version: str | None


def check_reachable(settings: Settings) -> None:
    """Ask the tracking server for one experiment, with retries; TransientError when it never answers.

    Called before training, so an unreachable server costs seconds, not a wasted fit.
    """
    from mlflow.tracking import MlflowClient

    calls = MlflowCalls.from_settings(settings)
    calls.limit_http_retries()
    client = MlflowClient(tracking_uri=calls.tracking_uri)
    try:
        calls.call("list experiments", lambda: client.search_experiments(max_results=1), attempts=PROBE_ATTEMPTS)
    except TransientError as exc:
        raise TransientError(
            f"MLflow at {calls.where} unreachable after {PROBE_ATTEMPTS} attempts ({exc.__cause__}); "
            "check the server and MLFLOW_TRACKING_URI"
        ) from exc


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _drop_unfinished(client: Any, experiment_id: str, pipeline_run_id: str, keep: str | None = None) -> None:
    """Delete runs an interrupted attempt of this pipeline run left behind (all but ``keep``).

    A retried stage, or a retried ``create run`` whose answer was lost, then leaves one
    finished MLflow run per pipeline run, not one per attempt.
    """
    for run in client.search_runs([experiment_id], f"tags.pipeline_run_id = '{_quote(pipeline_run_id)}'"):
        if run.info.status != "FINISHED" and run.info.run_id != keep:
            log.warning("deleting MLflow run %s (%s) left by an earlier attempt", run.info.run_id, run.info.status)
            client.delete_run(run.info.run_id)


def track(
    settings: Settings,
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
    Each step is retried on its own; a retried step is safe to repeat (the model is
    registered once per run, see ``_log_and_register``).
    """
    import mlflow

    calls = MlflowCalls.from_settings(settings)
    calls.limit_http_retries()
    mlflow.set_tracking_uri(calls.tracking_uri)
    client = mlflow.tracking.MlflowClient(calls.tracking_uri)
    exp_id = calls.call("set the experiment", lambda: mlflow.set_experiment(experiment).experiment_id)
    calls.call("list earlier runs", lambda: _drop_unfinished(client, exp_id, tags["pipeline_run_id"]))
    run_id = calls.call(
        "start the run", lambda: mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags).info.run_id
    )
    try:
        calls.call("log params", lambda: mlflow.log_params({k: str(v)[:500] for k, v in params.items()}))
        calls.call("log metrics", lambda: mlflow.log_metrics({k: float(v) for k, v in metrics.items()}))
        version = calls.call(
            "log and register the model",
            lambda: _log_and_register(client, run_id, model, input_example, registered_model),
        )
        artifact_sha256 = None
        if version is not None:
            artifact_sha256 = calls.call(
                "hash the registered model",
                lambda: registry_artifact_sha256(client, registered_model, version, calls.tracking_uri),
            )
            digests = {FILE_DIGEST_TAG: card["model_sha256"], ARTIFACT_DIGEST_TAG: artifact_sha256}
            for key, value in (tags | digests).items():
                calls.call(
                    "tag the model version",
                    partial(client.set_model_version_tag, registered_model, version, key, value),
                )
        card["mlflow"].update(run_id=run_id, model_version=version, artifact_sha256=artifact_sha256)
        calls.call("log the model card", lambda: mlflow.log_dict(card, "model-card.json"))
        if manifest is not None:
            calls.call("log the manifest", lambda: mlflow.log_dict(manifest, "manifest.json"))
        calls.call("finish the run", lambda: client.set_terminated(run_id, "FINISHED"))
    except BaseException:
        _end_active_run("FAILED")
        raise
    _end_active_run("FINISHED")
    calls.call("clean up earlier runs", lambda: _drop_unfinished(client, exp_id, tags["pipeline_run_id"], run_id))
    log.info("logged MLflow run %s, registered %s version %s", run_id, registered_model, version)
    return Tracked(run_id, version)


def _log_and_register(client: Any, run_id: str, model: Any, input_example: Any, name: str) -> str | None:
    """Log the model into the active run and register it; a repeat finds the version already made.

    Without the lookup a retry whose first answer was lost would register a second version.
    """
    import mlflow.sklearn
    import sklearn
    import skops

    made = client.search_model_versions(f"name = '{_quote(name)}' and run_id = '{_quote(run_id)}'")
    if made:
        return str(max(int(v.version) for v in made))
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        serialization_format="skops",
        skops_trusted_types=TRUSTED_TYPES,
        registered_model_name=name,
        input_example=input_example,
        # explicit requirements: inference would load the model in a subprocess
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"],
    )
    return str(info.registered_model_version) if info.registered_model_version is not None else None


def _end_active_run(status: str) -> None:
    """Take the run off MLflow's active-run stack (and mark it ``status``), best effort.

    On success the run is already FINISHED on the server; on failure the server may be
    down, and the next attempt deletes the unfinished run anyway.
    """
    import mlflow

    try:
        mlflow.end_run(status)
    except Exception as exc:  # noqa: BLE001 - the stack is popped before the call that failed
        log.warning("could not mark the MLflow run %s: %s", status, redact_uri(f"{type(exc).__name__}: {exc}"))
