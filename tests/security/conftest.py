"""One full local pipeline run with distinctive secret values, shared by the security tests.

``python -m workflows run-local`` runs the compiled workflow (ingest → silver → train →
eval) as subprocesses against the real services: artifacts in moto's S3 (so the MinIO
keys are really used), the audit in PostgreSQL (trust auth: the password is sent and
ignored), MLflow in a sqlite store. The secrets are random per session, so a match in
any output can only come from a leak.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO

BUCKET = "cybersec-mlops"
ROWS = 4000


def random_secrets() -> dict[str, str]:
    """Fresh, distinctive MINIO_SECRET_KEY and PG_PASSWORD values (a match anywhere is a leak)."""
    return {name: f"{name.lower()}-{secrets.token_hex(12)}" for name in ("MINIO_SECRET_KEY", "PG_PASSWORD")}


@dataclass
class PipelineRun:
    """What one run-local left behind, and the secrets it was given."""

    name: str
    proc: subprocess.CompletedProcess[str]
    status: dict
    workdir: Path
    mlflow_dir: Path
    secrets: dict[str, str]


@pytest.fixture(scope="session")
def pipeline_run(
    tmp_path_factory: pytest.TempPathFactory, postgres: dict[str, str], s3_server: dict[str, str]
) -> PipelineRun:
    from workflows.local.demo import prepare_mlflow

    tmp = tmp_path_factory.mktemp("secure-run")
    values = random_secrets()
    mlflow_uri = prepare_mlflow(tmp)  # artifacts under tmp/mlflow/artifacts, not ./mlruns
    mlflow_dir = tmp / "mlflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MINIO_", "MLFLOW_", "RUN_ID", "AWS_"))}
    env.update(postgres)
    env.update(
        {
            "MINIO_ENDPOINT": s3_server["MINIO_ENDPOINT"],
            "MINIO_ACCESS_KEY": s3_server["MINIO_ACCESS_KEY"],
            "MINIO_SECURE": "false",
            "MLFLOW_TRACKING_URI": mlflow_uri,
            "PYTHONPATH": str(REPO),
            "RUN_LOCAL_BACKOFF_SCALE": "0.01",
            "TMPDIR": str(tmp),
            **values,
        }
    )
    workdir = tmp / "runs"
    cmd = [
        sys.executable, "-m", "workflows", "--log-format", "json", "run-local",
        str(REPO / "workflows" / "compiled" / "workflow.yaml"),
        "--workdir", str(workdir), "--artifacts", f"s3://{BUCKET}", "--verbose",
        "-p", f"source=synthetic://?rows={ROWS}&seed=11&attack_share=0.05",
        "-p", "n-estimators=30",
        "-p", "gate-min-pr-auc=0", "-p", "gate-min-recall=0", "-p", "gate-max-fpr=1", "-p", "gate-max-alert-rate=1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    statuses = list(workdir.glob("*/status.json"))
    assert len(statuses) == 1, f"run-local left no status.json:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    status = json.loads(statuses[0].read_text())
    assert proc.returncode == 0 and status["phase"] == "Succeeded", proc.stdout[-4000:] + proc.stderr[-4000:]
    return PipelineRun(status["name"], proc, status, workdir, mlflow_dir, values)
