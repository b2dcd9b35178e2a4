"""The MLflow side of eval in-process against a real sqlite-backed MLflow: lookups, errors, retries."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from stages.common.errors import InputError, TransientError
from stages.common.mlflow_calls import is_transient as _transient
from stages.eval.registry import Registry, version_tags
from tests.eval import builders as b

pytestmark = pytest.mark.services


@pytest.fixture(autouse=True)
def _mlflow_http_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registry() sets MLflow's HTTP retry defaults in os.environ; keep that inside each test."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")


def _card(**mlflow: Any) -> dict[str, Any]:
    block = {
        "tracking_uri_set": True,
        "run_id": None,
        "experiment": "cybersec-anomaly",
        "model_name": "cybersec-anomaly-detector",
        "model_version": None,
    }
    return {"mlflow": {**block, **mlflow}}


def test_lookups_on_an_empty_registry(mlflow_uri: str) -> None:
    reg = Registry(mlflow_uri, "cybersec-anomaly-detector", retries=1)
    assert reg.champion() == (None, None)  # no registered model at all: no champion, not an error
    assert reg.candidate(_card(), "card.json") is None  # train did not register
    with pytest.raises(
        InputError,
        match=r"card.json: model version cybersec-anomaly-detector v7 does not exist at "
        r"MLFLOW_TRACKING_URI=sqlite",
    ):
        reg.candidate(_card(model_version="7"), "card.json")
    with pytest.raises(
        InputError,
        match="registered as 'other' but --registered-model is 'cybersec-anomaly-detector'; "
        "pass --registered-model other",
    ):
        reg.candidate(_card(model_version="1", model_name="other"), "card.json")
    with pytest.raises(InputError, match="card.json: MLflow run 0+ not found"):
        reg._run_id(_card(run_id="0" * 32), "card.json")


def test_champion_reads_the_alias_and_its_metric_tag(tmp_path: Path, mlflow_uri: str) -> None:
    table = b.flows(n=600, seed=1)
    block = b.register(mlflow_uri, b.fit(table, n_estimators=5), "m", tmp_path / "art")
    reg = Registry(mlflow_uri, "m", retries=1)
    reg.client.set_model_version_tag("m", "1", "model_sha256", "f" * 64)
    assert reg.candidate({**_card(**{**block}), "model_sha256": "f" * 64}, "card.json") == "1"
    assert reg.champion() == (None, None)  # registered, but no alias yet
    reg.client.set_registered_model_alias("m", "champion", "1")
    assert reg.champion() == ("1", None)  # alias without an eval tag
    reg.client.set_model_version_tag("m", "1", "holdout_pr_auc", "0.75")
    assert reg.champion() == ("1", 0.75)
    reg.client.set_model_version_tag("m", "1", "holdout_pr_auc", "garbage")
    assert reg.champion() == ("1", None)


def test_unreachable_server_becomes_transient_error() -> None:
    from workflows.local.services import free_port

    uri = f"http://127.0.0.1:{free_port()}"
    reg = Registry(uri, "m", retries=2)
    with pytest.raises(
        TransientError,
        match=rf"MLflow at MLFLOW_TRACKING_URI={uri} failed to read the champion "
        r"alias after 2 attempts",
    ):
        reg.champion()


def _mlflow_error(code: str) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    return MlflowException("x", error_code=getattr(databricks_pb2, code))


@pytest.mark.parametrize(
    ("make", "transient"),
    [
        (lambda: _mlflow_error("INTERNAL_ERROR"), True),
        (lambda: _mlflow_error("TEMPORARILY_UNAVAILABLE"), True),
        (lambda: _mlflow_error("REQUEST_LIMIT_EXCEEDED"), True),
        (lambda: _mlflow_error("RESOURCE_DOES_NOT_EXIST"), False),
        (lambda: _mlflow_error("INVALID_PARAMETER_VALUE"), False),
        (lambda: _mlflow_error("PERMISSION_DENIED"), False),
        (lambda: __import__("requests").ConnectionError("refused"), True),
        (lambda: ValueError("bug"), False),
    ],
    ids=["500", "503", "429", "404", "400", "403", "connection", "other"],
)
def test_transient_classification(make: Any, transient: bool) -> None:
    assert _transient(make()) is transient


def test_version_tags() -> None:
    doc = {
        "pr_auc": 0.5,
        "roc_auc": None,
        "precision": 0.25,
        "recall": 1.0,
        "fpr": 0.0,
        "f1": 0.4,
        "alert_rate": 0.01,
        "alerts_per_day": None,
        "gate": {"verdict": "passed"},
        "run_id": "r1",
        "rows": 10,
        "has_labels": True,
        "drift": {"max_psi": 0.125},
    }
    tags = version_tags(doc)
    assert tags["holdout_pr_auc"] == "0.5" and tags["holdout_roc_auc"] == "n/a" and tags["gate_verdict"] == "passed"
    assert tags["holdout_max_psi"] == "0.125" and tags["eval_run_id"] == "r1" and tags["holdout_has_labels"] == "true"


def test_record_without_a_train_run_creates_one(
    tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a new experiment's default artifact root is ./mlruns
    files = [tmp_path / "metrics.json", tmp_path / "report.html"]
    for f in files:
        f.write_text("{}\n")
    doc = {
        "pr_auc": 0.5,
        "rows": 10,
        "run_id": "r9",
        "gate": {"verdict": "failed"},
        "drift": {"max_psi": None},
        "champion": {"candidate_version": None, "promoted": False},
    }
    reg = Registry(mlflow_uri, "m", retries=1)
    run_id = reg.record(_card(experiment="eval-only"), "card.json", doc, files)
    run = reg.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["gate_verdict"] == "failed"
    assert run.data.metrics == {"holdout_pr_auc": 0.5, "holdout_rows": 10.0, "gate_passed": 0.0}
    assert reg.client.get_experiment(run.info.experiment_id).name == "eval-only"
    assert sorted(a.path for a in reg.client.list_artifacts(run_id, "eval")) == [
        "eval/metrics.json",
        "eval/report.html",
    ]


def test_credentials_in_the_tracking_uri_never_reach_the_message() -> None:
    from workflows.local.services import free_port

    port, password = free_port(), f"pw-{secrets.token_hex(4)}"  # made at run time: no literal secret in git
    reg = Registry(f"http://analyst:{password}@127.0.0.1:{port}", "m", retries=1)
    with pytest.raises(TransientError, match=rf"MLFLOW_TRACKING_URI=http://127\.0\.0\.1:{port} failed") as err:
        reg.champion()
    assert password not in str(err.value) and "analyst" not in str(err.value)
