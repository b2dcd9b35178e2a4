"""The eval stage as a real process against real PostgreSQL (audit) and MLflow (sqlite store)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from stages.common.model_io import save_model
from tests.eval import builders as b
from tests.helpers import run_stage

pytestmark = pytest.mark.services

MODEL_NAME = "cybersec-anomaly-detector"
LENIENT = ["--gate-min-pr-auc", "0", "--gate-min-recall", "0", "--gate-max-fpr", "1", "--gate-max-alert-rate", "1"]
CONTRACT_KEYS = {
    "version",
    "run_id",
    "has_labels",
    "rows",
    "threshold",
    "alert_rate",
    "alerts_per_day",
    "precision",
    "recall",
    "f1",
    "fpr",
    "pr_auc",
    "roc_auc",
    "recall_by_attack",
    "score_quantiles",
    "drift",
    "gate",
    "champion",
}


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return b.flows(n=3000, seed=11)


def _eval(inputs: b.Inputs, out: Path, env: dict[str, str], *extra: str) -> tuple[Any, str]:
    run_id = f"eval-{uuid.uuid4().hex[:8]}"
    proc = run_stage(
        "eval",
        *inputs.args(out),
        "--params-dir",
        str(out / "params"),
        "--run-id",
        run_id,
        *extra,
        env=env,
        cwd=out.parent,
    )
    return proc, run_id


def _params(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (out / "params").iterdir()}


def _metrics(out: Path) -> dict[str, Any]:
    text = (out / "metrics.json").read_text()
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, sort_keys=True) + "\n"  # the contract's formatting
    return doc


def _attempt(audit_db: Any, run_id: str) -> tuple[str, int, dict[str, Any], str | None]:
    with audit_db.cursor() as cur:
        cur.execute(
            "SELECT status, exit_code, metrics, error FROM stage_attempts WHERE run_id = %s AND stage = 'eval'",
            (run_id,),
        )
        rows = cur.fetchall()
    assert len(rows) == 1
    return rows[0]


def _registered(table: pa.Table, tmp_path: Path, mlflow_uri: str, name: str, **fit: Any) -> b.Inputs:
    model = b.fit(table, **fit)
    block = b.register(mlflow_uri, model, MODEL_NAME, tmp_path / "mlflow-artifacts")
    inputs = b.write_inputs(tmp_path / name, table, model, mlflow=block)
    b.bind_version(mlflow_uri, inputs)
    return inputs


def test_passing_model_is_recorded_everywhere(
    tmp_path: Path, table: pa.Table, stage_env: dict[str, str], audit_db: Any, mlflow_uri: str
) -> None:
    from mlflow import MlflowClient

    inputs = _registered(table, tmp_path, mlflow_uri, "good")
    out = tmp_path / "out"
    proc, run_id = _eval(inputs, out, stage_env, "--no-promote")
    assert proc.returncode == 0, proc.stderr
    doc = _metrics(out)
    assert CONTRACT_KEYS <= set(doc) and doc["version"] == 1 and doc["run_id"] == run_id
    assert doc["rows"] == table.column("split").to_pylist().count("holdout") and doc["has_labels"] is True
    assert doc["gate"]["verdict"] == "passed" and len(doc["gate"]["checks"]) == 4
    assert doc["champion"] == {
        **doc["champion"],
        "previous_version": None,
        "candidate_version": "1",
        "promoted": False,
        "reason": "promotion disabled (--no-promote)",
    }
    assert set(doc["recall_by_attack"]) == set(b.ATTACK_SHIFTS)
    params = _params(out)
    assert params["verdict"] == "passed" and params["promoted"] == "false"
    assert params["pr_auc"] == f"{doc['pr_auc']:.6g}" and params["fpr"] == f"{doc['fpr']:.6g}"
    assert set(params) == {"verdict", "pr_auc", "roc_auc", "precision", "recall", "fpr", "alert_rate", "promoted"}

    status, code, metrics, error = _attempt(audit_db, run_id)
    assert (status, code, error) == ("SUCCEEDED", 0, None)
    assert metrics["verdict"] == "passed" and metrics["pr_auc"] == pytest.approx(doc["pr_auc"])
    with audit_db.cursor() as cur:
        cur.execute("SELECT direction, name, sha256 FROM stage_artifacts WHERE run_id = %s ORDER BY 1, 2", (run_id,))
        artifacts = cur.fetchall()
    assert [(d, n) for d, n, _ in artifacts] == [
        ("input", "card"),
        ("input", "features"),
        ("input", "manifest"),
        ("input", "model"),
        ("output", "metrics"),
        ("output", "report"),
    ]
    assert artifacts[-1][2] == hashlib.sha256((out / "report.html").read_bytes()).hexdigest()

    client = MlflowClient(mlflow_uri)
    card = json.loads(inputs.card.read_text())
    run = client.get_run(card["mlflow"]["run_id"])
    assert run.data.metrics["holdout_pr_auc"] == pytest.approx(doc["pr_auc"])
    assert run.data.tags["gate_verdict"] == "passed"
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "eval")) == [
        "eval/metrics.json",
        "eval/report.html",
    ]
    version = client.get_model_version(MODEL_NAME, "1")
    assert version.tags["gate_verdict"] == "passed" and float(version.tags["holdout_pr_auc"]) == doc["pr_auc"]
    assert version.aliases == []  # --no-promote: tagged, not promoted


def test_strict_gate_fails_with_everything_written(
    tmp_path: Path, table: pa.Table, stage_env: dict[str, str], audit_db: Any, mlflow_uri: str
) -> None:
    from mlflow import MlflowClient

    inputs = _registered(table, tmp_path, mlflow_uri, "strict")
    out = tmp_path / "out"
    proc, run_id = _eval(inputs, out, stage_env, "--gate-min-pr-auc", "0.999", "--gate-max-fpr", "0.001")
    assert proc.returncode == 3, proc.stderr
    assert "quality gate failed: pr_auc" in proc.stderr and "fpr" in proc.stderr
    doc = _metrics(out)
    assert doc["gate"]["verdict"] == "failed"
    assert {c["name"] for c in doc["gate"]["checks"] if not c["passed"]} == {"pr_auc", "fpr"}
    assert doc["champion"]["promoted"] is False and doc["champion"]["reason"] == "quality gate failed"
    report = (out / "report.html").read_text()
    assert 'class="verdict failed"' in report and "Quality gate FAILED" in report
    assert _params(out)["verdict"] == "failed" and _params(out)["promoted"] == "false"
    status, code, metrics, error = _attempt(audit_db, run_id)
    assert (status, code, metrics["verdict"]) == ("FAILED", 3, "failed") and "quality gate failed" in error
    client = MlflowClient(mlflow_uri)
    assert client.get_model_version(MODEL_NAME, "1").tags["gate_verdict"] == "failed"
    assert client.get_run(json.loads(inputs.card.read_text())["mlflow"]["run_id"]).data.metrics["gate_passed"] == 0
    with pytest.raises(Exception, match="alias champion not found"):
        client.get_model_version_by_alias(MODEL_NAME, "champion")


@pytest.mark.slow
def test_champion_alias_follows_the_better_model(
    tmp_path: Path, table: pa.Table, stage_env: dict[str, str], mlflow_uri: str
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    runs = {}
    for name, fit in [
        ("first", dict(benign_only=False, n_estimators=5, max_samples=32)),
        ("worse", dict(n_estimators=3, max_samples=16)),
        ("better", {}),
    ]:
        inputs = _registered(table, tmp_path, mlflow_uri, name, **fit)
        proc, _ = _eval(inputs, tmp_path / f"out-{name}", stage_env, *LENIENT)
        assert proc.returncode == 0, proc.stderr
        runs[name] = _metrics(tmp_path / f"out-{name}")
        runs[name]["alias"] = str(client.get_model_version_by_alias(MODEL_NAME, "champion").version)

    first, worse, better = runs["first"], runs["worse"], runs["better"]
    assert first["champion"]["promoted"] and first["alias"] == "1"
    assert "no champion yet" in first["champion"]["reason"]
    assert worse["pr_auc"] < first["pr_auc"] < better["pr_auc"]  # preconditions of what follows
    assert not worse["champion"]["promoted"] and worse["champion"]["previous_version"] == "1" and worse["alias"] == "1"
    assert "< champion v1" in worse["champion"]["reason"]
    assert better["champion"] == {
        **better["champion"],
        "previous_version": "1",
        "candidate_version": "3",
        "promoted": True,
    }
    assert better["alias"] == "3"
    assert client.get_model_version(MODEL_NAME, "2").tags["gate_verdict"] == "passed"  # worse passed, stayed out


def test_unlabelled_holdout_gates_on_alert_rate_only(tmp_path: Path, stage_env: dict[str, str]) -> None:
    table = b.flows(n=1500, seed=4, labels="none")
    inputs = b.write_inputs(tmp_path / "in", table, b.fit(b.flows(n=1500, seed=4)))
    out = tmp_path / "out"
    env = {k: v for k, v in stage_env.items() if k != "MLFLOW_TRACKING_URI"}
    proc, _ = _eval(inputs, out, env)
    assert proc.returncode == 0, proc.stderr
    assert "MLFLOW_TRACKING_URI is not set" in proc.stderr
    doc = _metrics(out)
    assert doc["has_labels"] is False and [c["name"] for c in doc["gate"]["checks"]] == ["alert_rate"]
    assert all(doc[k] is None for k in ("precision", "recall", "f1", "fpr", "pr_auc", "roc_auc"))
    params = _params(out)
    assert {k: params[k] for k in ("pr_auc", "roc_auc", "precision", "recall", "fpr")} == dict.fromkeys(
        ("pr_auc", "roc_auc", "precision", "recall", "fpr"), "n/a"
    )
    assert params["alert_rate"] == f"{doc['alert_rate']:.6g}" and params["promoted"] == "false"
    assert "no labels" in (out / "report.html").read_text()


def test_manifest_card_mismatch_is_bad_input(
    tmp_path: Path, table: pa.Table, stage_env: dict[str, str], audit_db: Any
) -> None:
    inputs = b.write_inputs(tmp_path / "in", table, b.fit(table))
    manifest = json.loads(inputs.manifest.read_text())
    other = b.manifest_for(table, features=b.FEATURES[:3])
    card = json.loads(inputs.card.read_text())
    b.write_json(inputs.card, {**card, "features": other["features"], "schema_hash": other["schema_hash"]})
    out = tmp_path / "out"
    proc, run_id = _eval(inputs, out, stage_env)
    assert proc.returncode == 2, proc.stderr
    assert manifest["schema_hash"] in proc.stderr and other["schema_hash"] in proc.stderr
    assert not (out / "metrics.json").exists() and not (out / "report.html").exists()
    status, code, _, error = _attempt(audit_db, run_id)
    assert (status, code) == ("FAILED", 2) and "feature schema mismatch" in error


def _untrusted(path: Path) -> None:
    import skops.io as sio
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    sio.dump(make_pipeline(FunctionTransformer(func=os.system), IsolationForest(n_estimators=2)), path)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda p: p.write_bytes(os.urandom(4096)), "not a readable skops model"),
        (_untrusted, r"model refused, it contains untrusted types \['posix.system'\]"),
    ],
    ids=["random-bytes", "untrusted-type"],
)
def test_tampered_model_is_refused(
    tmp_path: Path, table: pa.Table, stage_env: dict[str, str], tamper: Any, message: str
) -> None:
    import re

    inputs = b.write_inputs(tmp_path / "in", table, b.fit(table, n_estimators=5))
    tamper(inputs.model)
    b.rebind(inputs)  # the card's digest matches: what is refused here is the content
    out = tmp_path / "out"
    proc, _ = _eval(inputs, out, stage_env)
    assert proc.returncode == 2, proc.stderr
    assert re.search(message, proc.stderr) and str(inputs.model) in proc.stderr
    assert not (out / "metrics.json").exists()


def test_unreachable_mlflow_is_transient(
    tmp_path: Path, table: pa.Table, stage_env: dict[str, str], audit_db: Any
) -> None:
    from workflows.local.services import free_port

    mlflow = {
        "tracking_uri_set": True,
        "run_id": "0" * 32,
        "experiment": "cybersec-anomaly",
        "model_name": MODEL_NAME,
        "model_version": "1",
    }
    inputs = b.write_inputs(tmp_path / "in", table, b.fit(table, n_estimators=5), mlflow=mlflow)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    env = {
        **stage_env,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
        "MLFLOW_RETRIES": "2",
    }
    out = tmp_path / "out"
    proc, run_id = _eval(inputs, out, env)
    assert proc.returncode == 75, proc.stderr
    assert f"MLflow at MLFLOW_TRACKING_URI={uri} failed" in proc.stderr
    assert not (out / "metrics.json").exists()  # nothing half-done: the retry of the step starts clean
    status, code, _, _ = _attempt(audit_db, run_id)
    assert (status, code) == ("FAILED", 75)


def test_reads_and_writes_s3(
    tmp_path: Path, table: pa.Table, stage_env: dict[str, str], s3_server: dict[str, str]
) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server["MINIO_ENDPOINT"],
        aws_access_key_id="test-access-key",
        aws_secret_access_key="test-secret-key",
        region_name="us-east-1",
    )
    inputs = b.write_inputs(tmp_path / "in", table, b.fit(table, n_estimators=20))
    prefix = f"s3://cybersec-mlops/{uuid.uuid4().hex[:8]}"
    for path in (inputs.features, inputs.manifest, inputs.model, inputs.card):
        s3.upload_file(str(path), "cybersec-mlops", f"{prefix[len('s3://cybersec-mlops/') :]}/{path.name}")
    args = [
        "--features",
        f"{prefix}/features.parquet",
        "--manifest",
        f"{prefix}/manifest.json",
        "--model",
        f"{prefix}/model.skops",
        "--card",
        f"{prefix}/model-card.json",
        "--metrics-out",
        f"{prefix}/eval/metrics.json",
        "--report-out",
        f"{prefix}/eval/report.html",
    ]
    env = {**{k: v for k, v in stage_env.items() if k != "MLFLOW_TRACKING_URI"}, **s3_server}
    proc = run_stage("eval", *args, *LENIENT, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    key = prefix[len("s3://cybersec-mlops/") :]
    doc = json.loads(s3.get_object(Bucket="cybersec-mlops", Key=f"{key}/eval/metrics.json")["Body"].read())
    assert doc["rows"] == table.column("split").to_pylist().count("holdout") and doc["gate"]["verdict"] == "passed"
    report = s3.get_object(Bucket="cybersec-mlops", Key=f"{key}/eval/report.html")["Body"].read().decode()
    assert report.startswith("<!DOCTYPE html>") and report.rstrip().endswith("</html>")


def _swap_model(inputs: b.Inputs, table: pa.Table, tmp_path: Path, mlflow_uri: str) -> str:
    save_model(b.fit(table, n_estimators=3), inputs.model)  # another model, the card left alone
    return "refusing to score or promote it"


def _card_names_another_version(inputs: b.Inputs, table: pa.Table, tmp_path: Path, mlflow_uri: str) -> str:
    other = b.register(mlflow_uri, b.fit(table, n_estimators=3), MODEL_NAME, tmp_path / "mlflow-artifacts")
    card = json.loads(inputs.card.read_text())
    b.write_json(inputs.card, {**card, "mlflow": other})  # points at a version this eval never scores
    return "was registered for model sha256 \\(none\\)"


def _registry_artifact_replaced(inputs: b.Inputs, table: pa.Table, tmp_path: Path, mlflow_uri: str) -> str:
    [stored] = (tmp_path / "mlflow" / "artifacts").rglob("model.skops")
    save_model(b.fit(table, n_estimators=3), stored)
    return "the model stored for .* has sha256"


@pytest.mark.slow
@pytest.mark.parametrize("tamper", [_swap_model, _card_names_another_version, _registry_artifact_replaced])
def test_champion_only_moves_to_the_model_eval_scored(
    tamper: Any, tmp_path: Path, table: pa.Table, stage_env: dict[str, str], mlflow_uri: str
) -> None:
    """The card binds model.skops (sha256) to its registry version (tag + stored artifact digest)."""
    import re

    from mlflow import MlflowClient

    inputs = _registered(table, tmp_path, mlflow_uri, "bound")
    message = tamper(inputs, table, tmp_path, mlflow_uri)
    proc, _ = _eval(inputs, tmp_path / "out", stage_env, *LENIENT)
    assert proc.returncode == 2, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr[-2000:]
    assert not (tmp_path / "out" / "metrics.json").exists()
    with pytest.raises(Exception, match="alias champion not found"):
        MlflowClient(mlflow_uri).get_model_version_by_alias(MODEL_NAME, "champion")
