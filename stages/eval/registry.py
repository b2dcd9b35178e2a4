"""MLflow side of eval: log results into the train run, tag the candidate, move ``champion``.

Only ``MlflowClient`` calls that the REST API serves are used, so the stage image can
ship mlflow-skinny. Every call goes through ``common.mlflow_calls`` (retried on transient
faults, then ``TransientError`` naming MLFLOW_TRACKING_URI: exit 75, which Argo retries).
"Not found" answers are not faults: a missing alias means no champion yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from stages.common.config import Settings, redact_uri
from stages.common.errors import InputError
from stages.common.mlflow_calls import MlflowCalls, MlflowRefused
from stages.common.model_io import ARTIFACT_DIGEST_TAG, FILE_DIGEST_TAG, registry_artifact_sha256

__all__ = ["Registry", "CHAMPION_ALIAS", "METRIC_TAG", "version_tags"]

log = logging.getLogger(__name__)
T = TypeVar("T")

CHAMPION_ALIAS = "champion"
METRIC_TAG = "holdout_pr_auc"
"""Version tag holding the primary metric that later evals compare against."""
_TAGGED = ["pr_auc", "roc_auc", "precision", "recall", "fpr", "f1", "alert_rate", "alerts_per_day"]


def _not_found(exc: BaseException) -> bool:
    return isinstance(exc, MlflowRefused) and exc.not_found


def version_tags(metrics: dict[str, Any]) -> dict[str, str]:
    """Tags for the candidate model version: gate verdict and holdout metrics (``n/a`` when missing)."""
    tags = {f"holdout_{k}": ("n/a" if metrics.get(k) is None else repr(float(metrics[k]))) for k in _TAGGED}
    tags.update(
        gate_verdict=metrics["gate"]["verdict"],
        eval_run_id=str(metrics.get("run_id")),
        holdout_rows=str(metrics.get("rows")),
        holdout_has_labels=str(bool(metrics.get("has_labels"))).lower(),
    )
    max_psi = metrics.get("drift", {}).get("max_psi")
    tags["holdout_max_psi"] = "n/a" if max_psi is None else repr(float(max_psi))
    return tags


class Registry:
    """One MLflow tracking server and registered model name."""

    def __init__(
        self, tracking_uri: str, model_name: str, retries: int | None = None, settings: Settings | None = None
    ) -> None:
        """Connect lazily to ``tracking_uri`` with the MLflow call policy of ``settings``.

        ``settings`` defaults to ``Settings.from_env()``; ``retries`` overrides its
        ``mlflow_retries`` (MLFLOW_RETRIES, 5). Side effect:
        MLflow's own HTTP retries are capped (``MlflowCalls.limit_http_retries``), so our
        retry owns the backoff and a dead server ends in exit 75 within about a minute.
        """
        from mlflow import MlflowClient

        calls = MlflowCalls.from_settings(settings or Settings.from_env(), tracking_uri)
        self.calls = calls if retries is None else replace(calls, attempts=retries)
        self.calls.limit_http_retries()
        self.uri = redact_uri(tracking_uri)  # for messages: the client keeps the real URI
        self._tracking_uri = tracking_uri
        self.model_name = model_name
        self.retries = self.calls.attempts
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one MLflow call under the policy: ``TransientError`` when it keeps failing, ``MlflowRefused`` at once."""
        return self.calls.call(what, fn)

    def candidate(self, card: dict[str, Any], card_uri: str) -> str | None:
        """The card's registered version, checked to exist and to be the card's model (None if train did not register)."""
        ml = card.get("mlflow") or {}
        version = ml.get("model_version")
        if version is None:
            return None
        name = ml.get("model_name") or self.model_name
        if name != self.model_name:
            raise InputError(
                f"{card_uri}: the model was registered as {name!r} but --registered-model is "
                f"{self.model_name!r}; pass --registered-model {name}"
            )
        try:
            self.call("get the candidate model version", lambda: self.client.get_model_version(name, str(version)))
        except Exception as exc:
            if _not_found(exc):
                raise InputError(
                    f"{card_uri}: model version {name} v{version} does not exist at "
                    f"MLFLOW_TRACKING_URI={self.uri}; is this the registry train used?"
                ) from exc
            raise
        self.verify(card, card_uri, str(version))
        return str(version)

    def verify(self, card: dict[str, Any], card_uri: str, version: str) -> None:
        """Refuse (InputError) unless registry version ``version`` is the model the card describes.

        Its ``model_sha256`` tag must be the card's model file digest (the file eval scores)
        and the model file the registry stores must hash to the card's ``artifact_sha256``;
        otherwise the champion alias could move to a model this eval never scored.
        """
        want_file = card.get("model_sha256")
        want_artifact = (card.get("mlflow") or {}).get("artifact_sha256")
        where = f"{self.model_name} v{version} at MLFLOW_TRACKING_URI={self.uri}"
        mv = self.call(
            "get the candidate model version", lambda: self.client.get_model_version(self.model_name, version)
        )
        tagged = (mv.tags or {}).get(FILE_DIGEST_TAG)
        if tagged != want_file:
            raise InputError(
                f"{card_uri}: registry version {where} was registered for model sha256 {tagged or '(none)'}, "
                f"but the card's model has sha256 {want_file}; refusing to evaluate or promote it"
            )
        stored = self.call(
            "hash the candidate's stored model",
            lambda: registry_artifact_sha256(self.client, self.model_name, version, self._tracking_uri),
        )
        if not want_artifact or stored != want_artifact or (mv.tags or {}).get(ARTIFACT_DIGEST_TAG) != stored:
            raise InputError(
                f"{card_uri}: the model stored for {where} has sha256 {stored}, the card says "
                f"mlflow.artifact_sha256 {want_artifact or '(none)'}; refusing to evaluate or promote it"
            )

    def champion(self) -> tuple[str | None, float | None]:
        """The version holding the ``champion`` alias and its recorded primary metric (None, None if none)."""
        try:
            mv = self.call(
                "read the champion alias",
                lambda: self.client.get_model_version_by_alias(self.model_name, CHAMPION_ALIAS),
            )
        except Exception as exc:
            if _not_found(exc):
                return None, None
            raise
        raw = (mv.tags or {}).get(METRIC_TAG)
        try:
            value = float(raw) if raw not in (None, "n/a") else None
        except ValueError:
            log.warning("champion v%s has an unreadable %s tag %r; treating it as missing", mv.version, METRIC_TAG, raw)
            value = None
        return str(mv.version), value

    def _run_id(self, card: dict[str, Any], card_uri: str) -> str:
        ml = card.get("mlflow") or {}
        if ml.get("run_id"):
            run_id = str(ml["run_id"])
            try:
                self.call("find the train run", lambda: self.client.get_run(run_id))
            except Exception as exc:
                if _not_found(exc):
                    raise InputError(
                        f"{card_uri}: MLflow run {run_id} not found at MLFLOW_TRACKING_URI={self.uri}; "
                        "is this the tracking server train used?"
                    ) from exc
                raise
            return run_id
        name = ml.get("experiment") or "cybersec-anomaly"
        exp = self.call("find the experiment", lambda: self.client.get_experiment_by_name(name))
        exp_id = (
            exp.experiment_id
            if exp
            else self.call("create the experiment", lambda: self.client.create_experiment(name))
        )
        run = self.call("create a run", lambda: self.client.create_run(exp_id, run_name="eval"))
        log.info("the card has no MLflow run id; logging into new run %s in experiment %s", run.info.run_id, name)
        return str(run.info.run_id)

    def record(
        self,
        card: dict[str, Any],
        card_uri: str,
        metrics: dict[str, Any],
        files: list[Path],
        check_model: Callable[[], None] = lambda: None,
    ) -> str:
        """Log metrics, tags and ``files`` into the train run; tag the version; move the alias if promoted.

        Returns the MLflow run id used. The alias moves last, after everything else is
        recorded, so a champion always has its evaluation attached; right before it moves,
        ``check_model()`` and ``verify`` check again that the scored file and the registry
        version are still the card's model.
        """
        from mlflow.entities import Metric, RunTag

        run_id = self._run_id(card, card_uri)
        created = not (card.get("mlflow") or {}).get("run_id")
        now = _now_ms()
        numbers = {f"holdout_{k}": metrics.get(k) for k in _TAGGED} | {
            "holdout_max_psi": metrics["drift"]["max_psi"],
            "holdout_rows": metrics["rows"],
            "gate_passed": 1.0 if metrics["gate"]["verdict"] == "passed" else 0.0,
        }
        batch = [Metric(k, float(v), now, 0) for k, v in sorted(numbers.items()) if v is not None]
        tags = [RunTag("gate_verdict", metrics["gate"]["verdict"]), RunTag("eval_run_id", str(metrics["run_id"]))]
        self.call("log eval metrics", lambda: self.client.log_batch(run_id, metrics=batch, tags=tags))
        for path in files:
            self.call(f"upload {path.name}", partial(self.client.log_artifact, run_id, str(path), "eval"))
        if created:
            self.call("finish the run", lambda: self.client.set_terminated(run_id))
        version = metrics["champion"]["candidate_version"]
        if version is not None:
            for key, value in version_tags(metrics).items():
                self.call(
                    "tag the model version",
                    partial(self.client.set_model_version_tag, self.model_name, version, key, value),
                )
            if metrics["champion"]["promoted"]:
                check_model()
                self.verify(card, card_uri, version)
                self.call(
                    "move the champion alias",
                    lambda: self.client.set_registered_model_alias(self.model_name, CHAMPION_ALIAS, version),
                )
                log.info("%s v%s is now the champion", self.model_name, version)
        return run_id


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
