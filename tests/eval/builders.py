"""Small eval inputs built by the tests, following the brief's artifact contract exactly.

features.parquet (passthrough columns + split + float32 features, sorted by ts),
manifest.json, model.skops (RobustScaler → IsolationForest saved with model_io) and
model-card.json. Attacks are shifted in one feature each, so a model fitted on benign
rows separates them and a deliberately weak one separates them less well.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stages.common.model_io import (
    ARTIFACT_DIGEST_TAG,
    FILE_DIGEST_TAG,
    anomaly_scores,
    registry_artifact_sha256,
    save_model,
)
from stages.common.storage import sha256_file

FEATURES = ["log_src_bytes", "log_dst_pkts", "duration_s", "distinct_ports_5m"]
ATTACK_SHIFTS = {"port_scan": ((1, 3), 4.0), "ssh_bruteforce": ((1, 2), 3.5), "exfiltration": ((0, 2), 3.0)}
"""attack type → (indices of the features it shifts, shift in benign standard deviations)."""
START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


@dataclass
class Inputs:
    """Paths of one eval input set."""

    dir: Path
    features: Path
    manifest: Path
    model: Path
    card: Path

    def args(self, out: Path) -> list[str]:
        return [
            "--features",
            str(self.features),
            "--manifest",
            str(self.manifest),
            "--model",
            str(self.model),
            "--card",
            str(self.card),
            "--metrics-out",
            str(out / "metrics.json"),
            "--report-out",
            str(out / "report.html"),
        ]


def flows(
    n: int = 2000,
    seed: int = 7,
    attack_share: float = 0.05,
    holdout_fraction: float = 0.4,
    days: float = 2.0,
    labels: str = "all",
    attack_types: dict[str, tuple[tuple[int, ...], float]] | None = None,
) -> pa.Table:
    """A silver-like table; ``labels``: "all", "none" (all null) or "partial" (every 4th row null)."""
    shifts = attack_types or ATTACK_SHIFTS
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    label = (rng.random(n) < attack_share).astype(np.int8)
    names = list(shifts)
    attack = np.array([names[i % len(names)] if y else None for i, y in enumerate(label)], dtype=object)
    for name, (cols, shift) in shifts.items():
        for j in cols:
            X[attack == name, j] += np.float32(shift)
    ts = [START + dt.timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, days * 86400, n))]
    n_train = int(round(n * (1 - holdout_fraction)))
    label_arr = pa.array(label, pa.int8())
    if labels == "none":
        label_arr, attack = pa.nulls(n, pa.int8()), np.full(n, None, dtype=object)
    elif labels == "partial":
        label_arr = pa.array([None if i % 4 == 0 else int(v) for i, v in enumerate(label)], pa.int8())
    columns: dict[str, Any] = {
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "uid": pa.array([f"C{seed}x{i:06d}" for i in range(n)]),
        "src_ip": pa.array([f"10.0.{i % 7}.{i % 250 + 1}" for i in range(n)]),
        "dst_ip": pa.array([f"192.168.1.{i % 200 + 1}" for i in range(n)]),
        "dst_port": pa.array(rng.choice([22, 53, 80, 443, 8080], n).astype(np.int32)),
        "proto": pa.array(["tcp"] * n),
        "service": pa.array(rng.choice(["ssh", "dns", "http", "ssl"], n).tolist()),
        "conn_state": pa.array(["SF"] * n),
        "label": label_arr,
        "attack_type": pa.array(list(attack), pa.string()),
        "split": pa.array(["train"] * n_train + ["holdout"] * (n - n_train)),
    }
    columns.update({name: pa.array(X[:, j], pa.float32()) for j, name in enumerate(FEATURES)})
    return pa.table(columns)


def manifest_for(table: pa.Table, features: list[str] = FEATURES) -> dict[str, Any]:
    dtypes = {f: "float32" for f in features}
    split = table.column("split").to_pylist()
    has_labels = table.column("label").null_count < table.num_rows
    return {
        "version": 1,
        "features": features,
        "dtypes": dtypes,
        "schema_hash": hashlib.sha256(
            json.dumps({"features": features, "dtypes": dtypes}, sort_keys=True).encode()
        ).hexdigest(),
        "passthrough": [
            "ts",
            "uid",
            "src_ip",
            "dst_ip",
            "dst_port",
            "proto",
            "service",
            "conn_state",
            "label",
            "attack_type",
        ],
        "split": {
            "holdout_fraction": split.count("holdout") / len(split),
            "cutoff_ts": None,
            "train_rows": split.count("train"),
            "holdout_rows": split.count("holdout"),
            "method": "time",
        },
        "rows": table.num_rows,
        "has_labels": has_labels,
        "skipped_features": {},
        "input_sha256": "0" * 64,
    }


def fit(
    table: pa.Table, n_estimators: int = 100, max_samples: int = 256, seed: int = 0, benign_only: bool = True
) -> Any:
    """RobustScaler → IsolationForest on train rows (benign ones by default)."""
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import RobustScaler

    train = train_matrix(table, benign_only)
    model = make_pipeline(
        RobustScaler(), IsolationForest(n_estimators=n_estimators, max_samples=max_samples, random_state=seed)
    )
    return model.fit(train)


def train_matrix(table: pa.Table, benign_only: bool = True) -> np.ndarray:
    split = np.array(table.column("split").to_pylist())
    label = table.column("label").to_numpy(zero_copy_only=False)
    keep = (split == "train") & ((np.nan_to_num(label, nan=0.0) == 0) if benign_only else True)
    return np.column_stack([table.column(f).to_numpy()[keep] for f in FEATURES])


def calibrated_threshold(model: Any, table: pa.Table, target_fpr: float = 0.01) -> float:
    """The (1 − target_fpr) quantile of benign train scores, as train calibrates it."""
    return float(np.quantile(anomaly_scores(model, train_matrix(table), "neg_score_samples"), 1 - target_fpr))


def card_for(
    manifest: dict[str, Any], threshold: float, mlflow: dict[str, Any] | None = None, model_sha256: str = "0" * 64
) -> dict[str, Any]:
    return {
        "model_sha256": model_sha256,
        "version": 1,
        "run_id": "test-run",
        "model_type": "iforest",
        "score_method": "neg_score_samples",
        "features": manifest["features"],
        "schema_hash": manifest["schema_hash"],
        "threshold": threshold,
        "calibration": {"method": "benign_fpr", "target": 0.01, "achieved": 0.01, "rows": 1000},
        "trained_on": "benign",
        "train_rows": manifest["split"]["train_rows"],
        "params": {"n_estimators": 100},
        "train_metrics": {},
        "mlflow": mlflow
        or {
            "tracking_uri_set": False,
            "run_id": None,
            "experiment": "cybersec-anomaly",
            "model_name": "cybersec-anomaly-detector",
            "model_version": None,
        },
        "created_at": "2024-03-03T00:00:00+00:00",
    }


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def write_inputs(
    dir: Path, table: pa.Table, model: Any, threshold: float | None = None, mlflow: dict[str, Any] | None = None
) -> Inputs:
    """Write features.parquet, manifest.json, model.skops and model-card.json into ``dir``."""
    dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, dir / "features.parquet")
    manifest = manifest_for(table)
    write_json(dir / "manifest.json", manifest)
    save_model(model, dir / "model.skops")
    thr = calibrated_threshold(model, table) if threshold is None else threshold
    write_json(dir / "model-card.json", card_for(manifest, thr, mlflow, sha256_file(dir / "model.skops")))
    return Inputs(dir, dir / "features.parquet", dir / "manifest.json", dir / "model.skops", dir / "model-card.json")


def rebind(inputs: Inputs) -> None:
    """Make the card name the model file as it is now (an attacker who can write both)."""
    card = json.loads(inputs.card.read_text())
    write_json(inputs.card, {**card, "model_sha256": sha256_file(inputs.model)})


def bind_version(tracking_uri: str, inputs: Inputs) -> None:
    """Tag the card's registered version with the model file's sha256, as train does."""
    from mlflow import MlflowClient

    card = json.loads(inputs.card.read_text())
    ml = card["mlflow"]
    MlflowClient(tracking_uri).set_model_version_tag(
        ml["model_name"], ml["model_version"], FILE_DIGEST_TAG, card["model_sha256"]
    )


def register(tracking_uri: str, model: Any, name: str, artifact_dir: Path) -> dict[str, Any]:
    """Log ``model`` to MLflow and register a version, as train does; returns the card's ``mlflow`` block.

    The version gets the stored model's digest tag; ``bind_version`` adds the model file's."""
    import mlflow
    import sklearn
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("cybersec-anomaly")
    exp_id = (
        exp.experiment_id
        if exp
        else client.create_experiment("cybersec-anomaly", artifact_location=artifact_dir.as_uri())
    )
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id=exp_id) as run:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="skops",
            skops_trusted_types=["sklearn.tree._tree.Tree"],
            registered_model_name=name,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],  # inferring them takes ~9 s
        )
    version = str(info.registered_model_version)
    digest = registry_artifact_sha256(client, name, version, tracking_uri)
    client.set_model_version_tag(name, version, ARTIFACT_DIGEST_TAG, digest)
    return {
        "tracking_uri_set": True,
        "run_id": run.info.run_id,
        "experiment": "cybersec-anomaly",
        "model_name": name,
        "model_version": version,
        "artifact_sha256": digest,
    }


def render_report(dir: Path, table: pa.Table, limits: Any = None) -> tuple[str, dict[str, Any]]:
    """Score ``table``'s holdout with a small fitted model and render the report in-process (no services)."""
    from stages.eval import metrics as M
    from stages.eval.curves import score_stats
    from stages.eval.evaluate import build_metrics, score
    from stages.eval.gate import GateThresholds, champion_decision, gate_checks
    from stages.eval.inputs import load_features
    from stages.eval.report import ReportData, render, top_alerts

    pq.write_table(table, dir / "f.parquet")
    manifest = manifest_for(table)
    data = load_features(dir / "f.parquet", manifest["features"], "f.parquet")
    model = fit(table, n_estimators=30)
    card = card_for(manifest, calibrated_threshold(model, table))
    scores = score(model, data, card["score_method"], "model.skops")
    doc, by_attack = build_metrics("run-<b>1</b>", data, scores, card["threshold"])
    doc["gate"] = gate_checks(doc, limits or GateThresholds())
    doc["champion"] = champion_decision(
        gate_passed=doc["gate"]["verdict"] == "passed",
        promote=True,
        candidate_version="4",
        candidate_metric=doc["pr_auc"],
        champion_version=None,
        champion_metric=None,
    )
    baseline = M.robust_stats(data.train_X)
    alerts = top_alerts(data.holdout, data.holdout_X, scores, card["threshold"], data.features, baseline, n=10)
    stats = score_stats(scores, data.y, card["threshold"])
    html = render(ReportData(doc, card, stats, by_attack, alerts, {"features": "s3://bucket/f.parquet"}))
    return html, doc
