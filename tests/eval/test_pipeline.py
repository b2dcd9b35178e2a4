"""ingest → silver → train → eval for real, as four processes sharing the audit and MLflow.

Checks what eval relies on from the other stages: the artifact contract (eval accepts
what silver and train wrote), lineage in the audit, and the registry handshake (eval
tags and promotes the version train registered).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_stage

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_synthetic_run_through_all_stages(
    tmp_path: Path, stage_env: dict[str, str], audit_db: Any, mlflow_uri: str
) -> None:
    from mlflow import MlflowClient

    run_id = f"pipe-{uuid.uuid4().hex[:8]}"
    d = {name: tmp_path / name for name in ("raw", "silver", "models", "eval")}
    common = ["--run-id", run_id]
    steps = [
        (
            "ingest",
            [
                "--source",
                "synthetic://?rows=12000&seed=5&attack_share=0.03&days=1",
                "--output",
                f"{d['raw']}/flows.parquet",
                "--rejects",
                f"{d['raw']}/rejects.parquet",
            ],
        ),
        (
            "silver",
            [
                "--input",
                f"{d['raw']}/flows.parquet",
                "--output",
                f"{d['silver']}/features.parquet",
                "--manifest",
                f"{d['silver']}/manifest.json",
            ],
        ),
        (
            "train",
            [
                "--features",
                f"{d['silver']}/features.parquet",
                "--manifest",
                f"{d['silver']}/manifest.json",
                "--model-out",
                f"{d['models']}/model.skops",
                "--card-out",
                f"{d['models']}/model-card.json",
                "--n-estimators",
                "100",
            ],
        ),
        (
            "eval",
            [
                "--features",
                f"{d['silver']}/features.parquet",
                "--manifest",
                f"{d['silver']}/manifest.json",
                "--model",
                f"{d['models']}/model.skops",
                "--card",
                f"{d['models']}/model-card.json",
                "--metrics-out",
                f"{d['eval']}/metrics.json",
                "--report-out",
                f"{d['eval']}/report.html",
            ],
        ),
    ]
    for stage, args in steps:
        params = tmp_path / f"params-{stage}"
        proc = run_stage(stage, *args, *common, "--params-dir", str(params), env=stage_env, cwd=tmp_path)
        assert proc.returncode == 0, f"{stage} exited {proc.returncode}:\n{proc.stderr[-3000:]}"

    manifest = json.loads((d["silver"] / "manifest.json").read_text())
    card = json.loads((d["models"] / "model-card.json").read_text())
    doc = json.loads((d["eval"] / "metrics.json").read_text())
    assert doc["rows"] == manifest["split"]["holdout_rows"] and doc["has_labels"] is manifest["has_labels"] is True
    assert doc["threshold"] == card["threshold"] and set(doc["drift"]["psi"]) == set(manifest["features"])
    assert doc["gate"]["verdict"] == "passed" and doc["pr_auc"] > 0.3
    version = (tmp_path / "params-train" / "model_version").read_text()
    assert doc["champion"] == {**doc["champion"], "candidate_version": version, "promoted": True}
    assert (tmp_path / "params-eval" / "verdict").read_text() == "passed"

    with audit_db.cursor() as cur:
        cur.execute("SELECT stage, status FROM stage_attempts WHERE run_id = %s ORDER BY started_at", (run_id,))
        assert cur.fetchall() == [
            ("ingest", "SUCCEEDED"),
            ("silver", "SUCCEEDED"),
            ("train", "SUCCEEDED"),
            ("eval", "SUCCEEDED"),
        ]
        cur.execute(
            "SELECT producer, output, input FROM lineage WHERE run_id = %s AND consumer = 'eval' ORDER BY 1, 2",
            (run_id,),
        )
        assert cur.fetchall() == [
            ("silver", "features", "features"),
            ("silver", "manifest", "manifest"),
            ("train", "card", "card"),
            ("train", "model", "model"),
        ]

    client = MlflowClient(mlflow_uri)
    assert str(client.get_model_version_by_alias(card["mlflow"]["model_name"], "champion").version) == version
    assert client.get_run(card["mlflow"]["run_id"]).data.metrics["holdout_pr_auc"] == pytest.approx(doc["pr_auc"])
