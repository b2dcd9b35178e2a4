"""MLflow unreachable or answering 503, for train and eval, against a real ``mlflow server``.

MLFLOW_TRACKING_URI points at the fault proxy in front of the server. A fault that
outlasts the stage's retries ends with exit 75 naming MLFLOW_TRACKING_URI, a FAILED audit
row and nothing published at the output paths; a re-run of the same run id succeeds
without a second SUCCEEDED row or a duplicate MLflow run.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import Finished, attempts, run
from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.services, pytest.mark.slow]

LENIENT = ["--gate-min-pr-auc", "0", "--gate-min-recall", "0", "--gate-max-fpr", "1", "--gate-max-alert-rate", "1"]


def _train(inputs: dict[str, Path], out: Path, run_id: str, model: str, env: dict[str, str]) -> Finished:
    return run(
        "train",
        "--features",
        str(inputs["features.parquet"]),
        "--manifest",
        str(inputs["manifest.json"]),
        "--model-out",
        str(out / "model.skops"),
        "--card-out",
        str(out / "model-card.json"),
        "--n-estimators",
        "20",
        "--registered-model",
        model,
        "--experiment",
        model,
        "--run-id",
        run_id,
        env=env,
    )


def _eval(inputs: dict[str, Path], out: Path, run_id: str, env: dict[str, str]) -> Finished:
    return run(
        "eval",
        "--features",
        str(inputs["features.parquet"]),
        "--manifest",
        str(inputs["manifest.json"]),
        "--model",
        str(inputs["model.skops"]),
        "--card",
        str(inputs["model-card.json"]),
        "--metrics-out",
        str(out / "metrics.json"),
        "--report-out",
        str(out / "report.html"),
        "--registered-model",
        f"eval-faults-{uuid.uuid4().hex[:6]}",
        "--run-id",
        run_id,
        *LENIENT,
        env=env,
    )


def _published(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def _mlflow_runs(server: str, experiment: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(server)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def _assert_failed_75(done: Finished, audit: Any, run_id: str, stage: str, proxy: FaultProxy) -> None:
    assert done.returncode == 75, done.stderr[-3000:]
    assert "MLFLOW_TRACKING_URI" in done.error() and proxy.url() in done.error()
    [(attempt, status, code, error)] = attempts(audit, run_id, stage)
    assert (attempt, status, code) == (0, "FAILED", 75) and "MLFLOW_TRACKING_URI" in (error or "")


def test_train_with_mlflow_down_exits_75_then_a_rerun_rides_out_transient_503s(
    pipeline_inputs: dict[str, Path],
    tmp_path: Path,
    fault_env: dict[str, str],
    mlflow_server: str,
    mlflow_proxy: FaultProxy,
    audit: Any,
) -> None:
    run_id, model = f"ml-down-{uuid.uuid4().hex[:8]}", f"faults-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "out"
    env = {**fault_env, "MLFLOW_TRACKING_URI": mlflow_proxy.url()}
    mlflow_proxy.refuse()
    done = _train(pipeline_inputs, out, run_id, model, env)
    _assert_failed_75(done, audit, run_id, "train", mlflow_proxy)
    assert _published(out) == []  # no model.skops a later step could pick up, no card
    assert _mlflow_runs(mlflow_server, model) == []

    mlflow_proxy.fail_http(2, status=503)  # back, but still answering 503 twice: retried inside the stage
    again = _train(pipeline_inputs, out, run_id, model, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert mlflow_proxy.stats["http_failed"] == 2
    assert attempts(audit, run_id, "train") == [(0, "SUCCEEDED", 0, None)]
    assert _published(out) == ["model-card.json", "model.skops"]
    card = json.loads((out / "model-card.json").read_text())
    assert card["mlflow"]["model_version"] == "1" and card["mlflow"]["run_id"]
    assert [r.info.run_id for r in _mlflow_runs(mlflow_server, model)] == [card["mlflow"]["run_id"]]


def test_train_with_mlflow_always_503_exits_75(
    pipeline_inputs: dict[str, Path],
    tmp_path: Path,
    fault_env: dict[str, str],
    mlflow_proxy: FaultProxy,
    audit: Any,
) -> None:
    run_id, model = f"ml-503x-{uuid.uuid4().hex[:8]}", f"faults-{uuid.uuid4().hex[:6]}"
    mlflow_proxy.fail_http(1000, status=503)
    out = tmp_path / "out"
    done = _train(pipeline_inputs, out, run_id, model, {**fault_env, "MLFLOW_TRACKING_URI": mlflow_proxy.url()})
    _assert_failed_75(done, audit, run_id, "train", mlflow_proxy)
    assert _published(out) == []


def test_eval_with_mlflow_down_exits_75_publishes_nothing_and_reruns_cleanly(
    pipeline_inputs: dict[str, Path],
    tmp_path: Path,
    fault_env: dict[str, str],
    mlflow_proxy: FaultProxy,
    audit: Any,
) -> None:
    run_id = f"ml-eval-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "out"
    env = {**fault_env, "MLFLOW_TRACKING_URI": mlflow_proxy.url()}
    mlflow_proxy.refuse()
    done = _eval(pipeline_inputs, out, run_id, env)
    _assert_failed_75(done, audit, run_id, "eval", mlflow_proxy)
    assert _published(out) == []  # neither metrics.json nor report.html

    mlflow_proxy.forward()
    again = _eval(pipeline_inputs, out, run_id, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert attempts(audit, run_id, "eval") == [(0, "SUCCEEDED", 0, None)]
    assert _published(out) == ["metrics.json", "report.html"]


def test_eval_with_mlflow_always_503_exits_75(
    pipeline_inputs: dict[str, Path],
    tmp_path: Path,
    fault_env: dict[str, str],
    mlflow_proxy: FaultProxy,
    audit: Any,
) -> None:
    run_id = f"ml-eval503-{uuid.uuid4().hex[:8]}"
    mlflow_proxy.fail_http(1000, status=503)
    done = _eval(pipeline_inputs, tmp_path / "out", run_id, {**fault_env, "MLFLOW_TRACKING_URI": mlflow_proxy.url()})
    _assert_failed_75(done, audit, run_id, "eval", mlflow_proxy)
    assert mlflow_proxy.stats["http_failed"] >= 2  # retried before giving up
    assert _published(tmp_path / "out") == []


def _train_retry_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "MLflow" in line and "retry" in line]


def test_train_rides_out_connection_resets_after_fitting_without_a_refit(
    pipeline_inputs: dict[str, Path],
    tmp_path: Path,
    fault_env: dict[str, str],
    mlflow_server: str,
    mlflow_proxy: FaultProxy,
    audit: Any,
) -> None:
    """Two connections reset while the run, the model and its registration are logged: each step is retried."""
    from mlflow import MlflowClient

    run_id, model = f"ml-blip-{uuid.uuid4().hex[:8]}", f"faults-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "out"
    env = {**fault_env, "MLFLOW_TRACKING_URI": mlflow_proxy.url(), "MLFLOW_RETRIES": "3"}
    # The probe before fitting reads far less than 4 kB; the logging after it reads more on one connection.
    mlflow_proxy.cut_after(4000, times=2)
    done = _train(pipeline_inputs, out, run_id, model, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert mlflow_proxy.stats["cut"] == 2
    warnings = _train_retry_warnings(done.stderr)
    assert len(warnings) == 2, warnings
    assert not any("list experiments" in w for w in warnings)  # not the probe: the calls after fitting
    assert done.stderr.count("fitted iforest on") == 1  # one fit: the blips cost seconds, not a refit
    assert attempts(audit, run_id, "train") == [(0, "SUCCEEDED", 0, None)]
    card = json.loads((out / "model-card.json").read_text())
    runs = _mlflow_runs(mlflow_server, model)
    assert [(r.info.run_id, r.info.status) for r in runs] == [(card["mlflow"]["run_id"], "FINISHED")]
    versions = MlflowClient(mlflow_server).search_model_versions(f"name = '{model}'")
    assert [v.version for v in versions] == ["1"] == [card["mlflow"]["model_version"]]  # registered once
    assert versions[0].tags["model_sha256"] == card["model_sha256"]


def test_train_fault_outlasting_the_retries_after_fitting_exits_75_and_a_rerun_leaves_one_run(
    pipeline_inputs: dict[str, Path],
    tmp_path: Path,
    fault_env: dict[str, str],
    mlflow_server: str,
    mlflow_proxy: FaultProxy,
    audit: Any,
) -> None:
    run_id, model = f"ml-cut-{uuid.uuid4().hex[:8]}", f"faults-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "out"
    env = {**fault_env, "MLFLOW_TRACKING_URI": mlflow_proxy.url(), "MLFLOW_RETRIES": "3"}
    mlflow_proxy.cut_after(4000, times=1000)  # every answer of 4 kB or more is cut: the model never comes back
    done = _train(pipeline_inputs, out, run_id, model, env)
    _assert_failed_75(done, audit, run_id, "train", mlflow_proxy)
    assert "after 3 attempts" in done.error()
    assert _published(out) == []
    assert all(r.info.status != "FINISHED" for r in _mlflow_runs(mlflow_server, model))

    mlflow_proxy.forward()
    mlflow_proxy.cut_after(0, times=0)
    again = _train(pipeline_inputs, out, run_id, model, env)
    assert again.returncode == 0, again.stderr[-3000:]
    card = json.loads((out / "model-card.json").read_text())
    runs = _mlflow_runs(mlflow_server, model)
    assert [(r.info.run_id, r.info.status) for r in runs] == [(card["mlflow"]["run_id"], "FINISHED")]
