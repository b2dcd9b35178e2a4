"""The train stage as a real process: real PostgreSQL audit, MLflow on a sqlite store, moto S3."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from stages.common.model_io import anomaly_scores, load_model
from tests.helpers import run_stage
from tests.train.conftest import train_rows

pytestmark = pytest.mark.services

FAST = ["--n-estimators", "20", "--max-samples", "4096"]
CARD_KEYS = {
    "version",
    "run_id",
    "model_type",
    "score_method",
    "features",
    "schema_hash",
    "model_sha256",
    "reference",
    "threshold",
    "calibration",
    "trained_on",
    "train_rows",
    "params",
    "train_metrics",
    "mlflow",
    "created_at",
}


def _train(env: dict[str, str], silver: dict[str, Path], out: Path, *extra: str) -> tuple[Any, str]:
    run_id = f"train-{uuid.uuid4().hex[:8]}"
    out.mkdir(parents=True, exist_ok=True)
    proc = run_stage(
        "train",
        "--features",
        str(silver["features"]),
        "--manifest",
        str(silver["manifest"]),
        "--model-out",
        str(out / "model.skops"),
        "--card-out",
        str(out / "model-card.json"),
        "--params-dir",
        str(out / "params"),
        "--run-id",
        run_id,
        *extra,
        env=env,
        cwd=out,
    )
    return proc, run_id


def _params(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (out / "params").iterdir()}


def _validation(silver: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, int]:
    """Validation rows (last 20% of the train split) and the benign count of the whole train split."""
    manifest = json.loads(silver["manifest"].read_text())
    table = train_rows(silver)
    n_val = int(round(table.num_rows * 0.2))
    X = np.column_stack([table.column(f).to_numpy() for f in manifest["features"]]).astype(np.float32)
    labels = table.column("label").to_numpy()
    return X[-n_val:], labels[-n_val:], int((labels == 0).sum())


def test_iforest_with_mlflow_and_audit(
    stage_env: dict[str, str], audit_db: Any, silver: dict[str, Path], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    model_name = f"detector-{uuid.uuid4().hex[:6]}"
    proc, run_id = _train(stage_env, silver, tmp_path, *FAST, "--registered-model", model_name)
    assert proc.returncode == 0, proc.stderr

    card = json.loads((tmp_path / "model-card.json").read_text())
    manifest = json.loads(silver["manifest"].read_text())
    params = _params(tmp_path)
    assert set(card) == CARD_KEYS
    assert (card["model_type"], card["score_method"], card["trained_on"]) == ("iforest", "neg_score_samples", "benign")
    assert card["features"] == manifest["features"] and card["schema_hash"] == manifest["schema_hash"]
    assert card["run_id"] == run_id
    X_val, y_val, benign_rows = _validation(silver)
    assert (y_val == 1).sum() > 50  # the fixture must put attacks into the validation rows
    # benign-only: exactly the benign rows of the train split, nothing else
    assert card["train_rows"] == benign_rows == int(params["train_rows"])
    assert params["threshold"] == repr(card["threshold"])
    assert params["sha256"] == hashlib.sha256((tmp_path / "model.skops").read_bytes()).hexdigest()

    model = load_model(tmp_path / "model.skops")
    scores = anomaly_scores(model, X_val, card["score_method"])
    # the threshold stands on the out-of-bag scores of every benign train row
    cal = card["calibration"]
    assert (cal["method"], cal["target"], cal["rows"], cal["min_rows"]) == ("benign_fpr_oob", 0.01, benign_rows, 1000)
    assert "out-of-bag" in cal["scores"] and card["params"]["calibration_scores"] == "out-of-bag"
    assert 0.005 <= cal["achieved"] == card["train_metrics"]["oob_fpr"] <= 0.01
    # the saved model (fitted on all of them) keeps to the budget on the latest benign rows and
    # catches the attacks there about as well as its trees that never drew those rows
    assert np.mean(scores[y_val == 0] >= card["threshold"]) <= 0.01
    recall = float(np.mean(scores[y_val == 1] >= card["threshold"]))
    assert recall == pytest.approx(card["train_metrics"]["val_recall"], abs=0.05)

    client = MlflowClient(stage_env["MLFLOW_TRACKING_URI"])
    run = client.get_run(params["mlflow_run_id"])
    assert run.info.run_name == run_id and run.info.status == "FINISHED"
    assert run.data.tags["pipeline_run_id"] == run_id
    assert run.data.tags["schema_hash"] == manifest["schema_hash"]
    assert run.data.params["model"] == "iforest" and run.data.params["n_estimators"] == "20"
    assert run.data.metrics["threshold"] == pytest.approx(card["threshold"])
    version = client.get_model_version(model_name, params["model_version"])
    assert version.run_id == run.info.run_id and params["model_version"] == "1"
    assert card["mlflow"] == {
        "tracking_uri_set": True,
        "run_id": run.info.run_id,
        "experiment": "cybersec-anomaly",
        "model_name": model_name,
        "model_version": "1",
        "artifact_sha256": card["mlflow"]["artifact_sha256"],
    }
    # eval's champion check: the card binds the published model file to the registry version
    from stages.common.model_io import registry_artifact_sha256
    from stages.common.storage import sha256_file

    assert card["model_sha256"] == sha256_file(tmp_path / "model.skops") == params["sha256"]
    assert version.tags["model_sha256"] == card["model_sha256"]
    stored = registry_artifact_sha256(client, model_name, "1", stage_env["MLFLOW_TRACKING_URI"])
    assert version.tags["artifact_sha256"] == card["mlflow"]["artifact_sha256"] == stored

    with audit_db.cursor() as cur:
        cur.execute("SELECT status, exit_code, metrics->>'threshold' FROM stage_attempts WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("SUCCEEDED", 0, repr(card["threshold"]))
        cur.execute(
            "SELECT direction, name, sha256 FROM stage_artifacts WHERE run_id = %s ORDER BY direction, name", (run_id,)
        )
        assert [r[:2] for r in cur.fetchall()] == [
            ("input", "features"),
            ("input", "manifest"),
            ("output", "card"),
            ("output", "model"),
        ]


def test_without_mlflow(stage_env: dict[str, str], silver_unlabelled: dict[str, Path], tmp_path: Path) -> None:
    env = {k: v for k, v in stage_env.items() if k != "MLFLOW_TRACKING_URI"}
    proc, _ = _train(env, silver_unlabelled, tmp_path, *FAST, "--alert-rate", "0.02")
    assert proc.returncode == 0, proc.stderr
    params, card = _params(tmp_path), json.loads((tmp_path / "model-card.json").read_text())
    assert params["mlflow_run_id"] == params["model_version"] == "n/a"
    assert card["mlflow"]["tracking_uri_set"] is False and card["mlflow"]["run_id"] is None
    assert "MLFLOW_TRACKING_URI is not set" in proc.stderr
    assert card["trained_on"] == "all" and card["calibration"]["method"] == "alert_rate"
    assert card["calibration"]["target"] == 0.02 and abs(card["calibration"]["achieved"] - 0.02) < 0.002
    manifest = json.loads(silver_unlabelled["manifest"].read_text())
    n_val = int(round(manifest["split"]["train_rows"] * 0.2))
    assert card["train_rows"] == manifest["split"]["train_rows"] - n_val
    # unchanged without labels: the alert-rate quantile of the latest 20% of the train rows, no minimum
    assert (card["calibration"]["rows"], card["calibration"]["min_rows"]) == (n_val, 0)
    assert "oof_fpr" not in card["train_metrics"] and "calibration_folds" not in card["params"]
    assert "oob_fpr" not in card["train_metrics"] and "calibration_scores" not in card["params"]


def test_hgb(stage_env: dict[str, str], silver: dict[str, Path], tmp_path: Path) -> None:
    # one OpenMP thread: on a busy shared runner, spinning threads make this test several times slower
    env = {k: v for k, v in stage_env.items() if k != "MLFLOW_TRACKING_URI"} | {"OMP_NUM_THREADS": "1"}
    proc, _ = _train(env, silver, tmp_path, "--model", "hgb")
    assert proc.returncode == 0, proc.stderr
    card = json.loads((tmp_path / "model-card.json").read_text())
    assert (card["model_type"], card["score_method"], card["trained_on"]) == ("hgb", "predict_proba", "all")
    X_val, y_val, _ = _validation(silver)
    scores = anomaly_scores(load_model(tmp_path / "model.skops"), X_val, "predict_proba")
    assert np.mean(scores[y_val == 0] >= card["threshold"]) <= 0.01
    assert card["train_metrics"]["val_pr_auc"] > 0.9


def _holdout(silver: dict[str, Path], features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    table = pq.read_table(silver["features"], filters=[("split", "==", "holdout")])
    X = np.column_stack([table.column(f).to_numpy() for f in features]).astype(np.float32)
    return X, table.column("label").to_numpy()


@pytest.mark.parametrize("model", ["iforest", "hgb"])
def test_attack_majority_threshold_stands_on_benign_rows(
    stage_env: dict[str, str], silver_attack_majority: dict[str, Path], tmp_path: Path, model: str
) -> None:
    """85% attacks and a validation slice without one benign row: benign unseen scores still set it."""
    env = {k: v for k, v in stage_env.items() if k != "MLFLOW_TRACKING_URI"} | {"OMP_NUM_THREADS": "1"}
    _, y_val, benign_rows = _validation(silver_attack_majority)
    assert (y_val == 0).sum() == 0 and benign_rows >= 1000  # the fixture's point
    proc, _ = _train(env, silver_attack_majority, tmp_path, *FAST, "--model", model)
    assert proc.returncode == 0, proc.stderr
    card = json.loads((tmp_path / "model-card.json").read_text())
    cal = card["calibration"]
    # out-of-bag scores for the forest, out-of-fold scores for the boosted trees
    kind, prefix = ("out-of-bag", "oob") if model == "iforest" else ("out-of-fold", "oof")
    assert (cal["method"], cal["rows"], cal["min_rows"]) == (f"benign_fpr_{prefix}", benign_rows, 1000)
    assert f"from {benign_rows} benign {kind} scores" in proc.stderr
    assert "val_fpr" not in card["train_metrics"] and 0.005 <= card["train_metrics"][f"{prefix}_fpr"] <= 0.01
    # on the later holdout the threshold keeps its meaning: few benign alerts, most attacks caught
    X, y = _holdout(silver_attack_majority, card["features"])
    alerts = anomaly_scores(load_model(tmp_path / "model.skops"), X, card["score_method"]) >= card["threshold"]
    assert alerts[y == 0].mean() <= 0.05 and alerts[y == 1].mean() >= 0.5


def test_too_few_benign_rows_exit_2_with_the_count(
    stage_env: dict[str, str], audit_db: Any, silver_attack_majority: dict[str, Path], tmp_path: Path
) -> None:
    _, _, benign_rows = _validation(silver_attack_majority)
    proc, run_id = _train(stage_env, silver_attack_majority, tmp_path, *FAST, "--target-fpr", "0.001")
    assert proc.returncode == 2, proc.stderr
    assert f"only {benign_rows} benign rows in the train split" in proc.stderr
    assert "need at least 10000" in proc.stderr and "raise --target-fpr to at least" in proc.stderr
    assert not (tmp_path / "model.skops").exists() and not (tmp_path / "model-card.json").exists()
    with audit_db.cursor() as cur:
        cur.execute("SELECT status, exit_code FROM stage_attempts WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("FAILED", 2)


@pytest.mark.parametrize(
    ("which", "extra", "message"),
    [
        ("unlabelled", ["--model", "hgb"], "--model hgb is supervised and needs labels"),
        ("unlabelled", ["--train-on", "benign"], "--train-on benign needs labels"),
        ("labelled", ["--target-fpr", "0"], "--target-fpr 0.0: must be between 0 and 1"),
        ("labelled", ["--max-samples", "1"], "--max-samples >= 2"),
    ],
)
def test_bad_options_exit_2(
    stage_env: dict[str, str],
    audit_db: Any,
    silver: dict[str, Path],
    silver_unlabelled: dict[str, Path],
    tmp_path: Path,
    which: str,
    extra: list[str],
    message: str,
) -> None:
    paths = silver if which == "labelled" else silver_unlabelled
    proc, run_id = _train(stage_env, paths, tmp_path, *FAST, *extra)
    assert proc.returncode == 2, proc.stderr
    assert re.search(message, proc.stderr)
    assert not (tmp_path / "model.skops").exists() and not (tmp_path / "model-card.json").exists()
    with audit_db.cursor() as cur:
        cur.execute("SELECT status, exit_code FROM stage_attempts WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("FAILED", 2)


def test_manifest_from_another_run_exits_2(
    stage_env: dict[str, str], silver: dict[str, Path], silver_unlabelled: dict[str, Path], tmp_path: Path
) -> None:
    manifest = json.loads(silver["manifest"].read_text())
    manifest["features"] = manifest["features"][:-1]
    manifest["dtypes"].pop(next(reversed(manifest["dtypes"])), None)
    manifest["dtypes"] = {f: "float32" for f in manifest["features"]}
    from stages.common.contracts import schema_hash

    manifest["schema_hash"] = schema_hash(manifest["features"], manifest["dtypes"])
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    mixed = {"features": silver["features"], "manifest": tmp_path / "manifest.json"}
    proc, _ = _train(stage_env, mixed, tmp_path / "out", *FAST)
    assert proc.returncode == 2
    assert f"{silver['features']}: does not match the manifest" in proc.stderr
    assert "is not in the manifest" in proc.stderr


def test_features_are_not_parquet(stage_env: dict[str, str], silver: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "features.parquet").write_bytes(b"PAR1 but not really")
    proc, _ = _train(
        stage_env, {"features": tmp_path / "features.parquet", "manifest": silver["manifest"]}, tmp_path / "out", *FAST
    )
    assert proc.returncode == 2 and "not a readable Parquet file" in proc.stderr


def test_s3_round_trip(
    stage_env: dict[str, str], s3_server: dict[str, str], silver: dict[str, Path], tmp_path: Path
) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server["MINIO_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=s3_server["MINIO_ACCESS_KEY"],
        aws_secret_access_key=s3_server["MINIO_SECRET_KEY"],
    )
    run = uuid.uuid4().hex[:8]
    for name in ("features", "manifest"):
        s3.upload_file(str(silver[name]), "cybersec-mlops", f"silver/{run}/{silver[name].name}")
    env = {k: v for k, v in stage_env.items() if k != "MLFLOW_TRACKING_URI"} | s3_server
    proc = run_stage(
        "train",
        "--features",
        f"s3://cybersec-mlops/silver/{run}/features.parquet",
        "--manifest",
        f"s3://cybersec-mlops/silver/{run}/manifest.json",
        "--model-out",
        f"s3://cybersec-mlops/models/{run}/model.skops",
        "--card-out",
        f"s3://cybersec-mlops/models/{run}/model-card.json",
        "--params-dir",
        str(tmp_path / "params"),
        *FAST,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    s3.download_file("cybersec-mlops", f"models/{run}/model.skops", str(tmp_path / "model.skops"))
    card = json.loads(s3.get_object(Bucket="cybersec-mlops", Key=f"models/{run}/model-card.json")["Body"].read())
    assert (tmp_path / "params" / "sha256").read_text() == hashlib.sha256(
        (tmp_path / "model.skops").read_bytes()
    ).hexdigest()
    model = load_model(tmp_path / "model.skops")
    X_val, _, _ = _validation(silver)
    assert np.isfinite(anomaly_scores(model, X_val, card["score_method"])).all()
    assert pq.read_metadata(silver["features"]).num_rows > 0


def test_mlflow_unreachable_exits_75_and_publishes_nothing(
    stage_env: dict[str, str], audit_db: Any, silver: dict[str, Path], tmp_path: Path
) -> None:
    from workflows.local.services import free_port

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = stage_env | {"MLFLOW_TRACKING_URI": uri, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    proc, run_id = _train(env, silver, tmp_path / "out", *FAST)
    assert proc.returncode == 75, proc.stderr
    assert f"MLFLOW_TRACKING_URI={uri} unreachable after 3 attempts" in proc.stderr
    assert proc.stderr.count("retry") >= 2  # backed off and retried before giving up
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # no model, no card, no params
    with audit_db.cursor() as cur:
        cur.execute("SELECT status, exit_code FROM stage_attempts WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("FAILED", 75)


def test_credentials_in_an_unreachable_tracking_uri_stay_out_of_logs_and_audit(
    stage_env: dict[str, str], audit_db: Any, silver: dict[str, Path], tmp_path: Path
) -> None:
    from workflows.local.services import free_port

    port, password = free_port(), f"pw-{secrets.token_hex(4)}"  # made at run time: no literal secret in git
    env = stage_env | {
        "MLFLOW_TRACKING_URI": f"http://analyst:{password}@127.0.0.1:{port}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    proc, run_id = _train(env, silver, tmp_path / "out", *FAST)
    assert proc.returncode == 75, proc.stderr
    assert f"MLFLOW_TRACKING_URI=http://127.0.0.1:{port} unreachable" in proc.stderr
    with audit_db.cursor() as cur:
        cur.execute("SELECT error FROM stage_attempts WHERE run_id = %s", (run_id,))
        (error,) = cur.fetchone()
    for text in (proc.stderr, proc.stdout, error):
        assert password not in text and "analyst" not in text
