"""The compiled workflow end to end through ``python -m workflows run-local`` (subprocess runtime).

Two real runs on 20k synthetic flows against a real PostgreSQL audit and an MLflow sqlite
store: one into a local artifact directory while PostgreSQL drops the first ingest
attempt's connections (so Argo's exit-75 retry is exercised), one into an S3 bucket
(moto's server) with a gate too strict to pass (eval exits 3, the workflow fails, the
report is still uploaded). The artifact keys are read from the manifest itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "workflows" / "compiled" / "workflow.yaml"
ROWS = 20_000
BUCKET = "cybersec-mlops"
STAGES = ("ingest", "silver", "train", "eval")
PG_CONNECT_ATTEMPTS = 5
"""The audit's own connection attempts (stages.common.audit, PG_RETRIES default) before exit 75."""


@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    status: dict[str, Any]
    name: str

    def task(self, name: str) -> dict[str, Any]:
        return next(c for c in self.status["root"]["children"] if c["displayName"] == name)


def manifest_keys(name: str) -> dict[str, str]:
    """Output artifact name → key, as the compiled manifest names them (``{{workflow.name}}`` filled in)."""
    doc = yaml.safe_load(MANIFEST.read_text())
    keys = {}
    for t in doc["spec"]["templates"]:
        for art in (t.get("outputs") or {}).get("artifacts") or []:
            keys[f"{t['name']}/{art['name']}"] = art["s3"]["key"].replace("{{workflow.name}}", name)
    return keys


def run_local(tmp: Path, env: dict[str, str], *args: str) -> Run:
    workdir = tmp / "runs"
    cmd = [
        sys.executable,
        "-m",
        "workflows",
        "run-local",
        str(MANIFEST),
        "--workdir",
        str(workdir),
        "-p",
        f"source=synthetic://?rows={ROWS}&seed=7&attack_share=0.02",
        *args,
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    runs = list(workdir.glob("*/status.json"))
    assert len(runs) == 1, f"no status.json; stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    status = json.loads(runs[0].read_text())
    return Run(proc, status, status["name"])


def base_env(postgres: dict[str, str], proxy_port: int, mlflow_uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MINIO_", "MLFLOW_", "RUN_ID"))}
    env.update(postgres)
    env.update(
        {
            "PG_PORT": str(proxy_port),
            "MLFLOW_TRACKING_URI": mlflow_uri,
            "RUN_LOCAL_BACKOFF_SCALE": "0.01",
            "PG_PASSWORD": "",
            "MINIO_ENDPOINT": "",
            "MINIO_SECURE": "",
            "MINIO_ACCESS_KEY": "",
            "MINIO_SECRET_KEY": "",
        }
    )
    return env


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A sqlite store whose experiment keeps its artifacts in the temp dir (not ./mlruns in the repo)."""
    from workflows.local.demo import prepare_mlflow

    return prepare_mlflow(tmp_path_factory.mktemp("mlflow-state"))


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, postgres: dict[str, str], mlflow_store: str) -> Iterator[Run]:
    """The pipeline into a local directory; the first ingest attempt finds PostgreSQL unreachable."""
    tmp = tmp_path_factory.mktemp("local")
    with FaultProxy(("127.0.0.1", int(postgres["PG_PORT"]))) as proxy:
        proxy.reset_next(PG_CONNECT_ATTEMPTS)
        run = run_local(tmp, base_env(postgres, proxy.port, mlflow_store), "--artifacts", str(tmp / "artifacts"))
        assert proxy.stats["reset"] >= PG_CONNECT_ATTEMPTS
    run.status["artifacts_dir"] = str(tmp / "artifacts")
    yield run


@pytest.fixture(scope="module")
def s3_gate_run(
    tmp_path_factory: pytest.TempPathFactory, postgres: dict[str, str], s3_server: dict[str, str], mlflow_store: str
) -> Iterator[Run]:
    """The pipeline into S3 with a quality gate no model can pass."""
    tmp = tmp_path_factory.mktemp("s3")
    env = {**base_env(postgres, int(postgres["PG_PORT"]), mlflow_store), **s3_server}
    yield run_local(
        tmp, env, "--artifacts", f"s3://{BUCKET}", "-p", "gate-min-pr-auc=0.999", "-p", "gate-min-recall=0.999"
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def audit_rows(audit_db: Any, run_id: str) -> tuple[list[tuple], list[tuple]]:
    with audit_db.cursor() as cur:
        cur.execute(
            "SELECT stage, attempt, status, exit_code FROM stage_attempts WHERE run_id = %s ORDER BY stage, attempt",
            (run_id,),
        )
        attempts = cur.fetchall()
        cur.execute(
            "SELECT a.stage, a.name, a.sha256, a.rows FROM stage_artifacts a JOIN stage_attempts s "
            "USING (run_id, stage, attempt) WHERE run_id = %s AND a.direction = 'output' "
            "AND s.status = 'SUCCEEDED'",
            (run_id,),
        )
        return attempts, cur.fetchall()


def test_local_run_succeeds_with_artifacts_at_the_manifests_keys(local_run: Run) -> None:
    assert local_run.proc.returncode == 0, local_run.proc.stdout[-4000:]
    assert local_run.status["phase"] == "Succeeded"
    keys = manifest_keys(local_run.name)
    assert sorted(keys.values()) == sorted(
        f"{layer}/{local_run.name}/{file}"
        for layer, file in [
            ("raw", "flows.parquet"),
            ("raw", "rejects.parquet"),
            ("silver", "features.parquet"),
            ("silver", "manifest.json"),
            ("models", "model.skops"),
            ("models", "model-card.json"),
            ("eval", "metrics.json"),
            ("eval", "report.html"),
        ]
    )
    root = Path(local_run.status["artifacts_dir"])
    for key in keys.values():
        assert (root / key).is_file() and (root / key).stat().st_size > 0, key
    assert local_run.task("ingest")["outputs"]["parameters"]["rows"] == str(ROWS)
    assert local_run.task("eval")["outputs"]["parameters"]["verdict"] == "passed"
    assert "✔ eval" in local_run.proc.stdout


def test_unreachable_postgres_is_retried_by_the_workflow(local_run: Run) -> None:
    attempts = local_run.task("ingest")["children"]
    assert [a["exitCode"] for a in attempts] == [75, 0]
    assert "unavailable after" in Path(attempts[0]["log"]).read_text()


def test_audit_holds_one_run_with_four_successful_stages_matching_the_files(local_run: Run, audit_db: Any) -> None:
    attempts, outputs = audit_rows(audit_db, local_run.name)
    succeeded = sorted(stage for stage, _, status, _ in attempts if status == "SUCCEEDED")
    assert succeeded == sorted(STAGES)
    assert ("ingest", 1, "SUCCEEDED", 0) in attempts  # the retried attempt ({{retries}} → STAGE_ATTEMPT)
    root = Path(local_run.status["artifacts_dir"])
    keys = manifest_keys(local_run.name)
    assert len(outputs) == len(keys)
    for stage, name, digest, _ in outputs:
        assert digest == sha256((root / keys[f"{stage}/{name}"]).read_bytes()), f"{stage}/{name}"
    assert local_run.task("ingest")["outputs"]["parameters"]["sha256"] == sha256(
        (root / keys["ingest/flows"]).read_bytes()
    )


def test_rerunning_a_stage_with_the_same_run_id_does_not_duplicate_rows(
    local_run: Run, audit_db: Any, postgres: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **postgres, "RUN_ID": local_run.name, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    for _ in range(2):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "stages.ingest",
                "--source",
                "synthetic://?rows=500&seed=1",
                "--output",
                str(tmp_path / "f.parquet"),
                "--rejects",
                str(tmp_path / "r.parquet"),
                "--attempt",
                "1",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    attempts, _ = audit_rows(audit_db, local_run.name)
    ingest = [a for a in attempts if a[0] == "ingest"]
    assert [(a[1], a[2]) for a in ingest if a[2] == "SUCCEEDED"] == [(1, "SUCCEEDED")]
    assert len(ingest) == len({a[1] for a in ingest})  # one row per attempt
    with audit_db.cursor() as cur:
        cur.execute("SELECT count(*) FROM pipeline_runs WHERE run_id = %s", (local_run.name,))
        assert cur.fetchone()[0] == 1


def test_gate_failure_fails_the_workflow_and_still_uploads_the_report(
    s3_gate_run: Run, s3_server: dict[str, str], audit_db: Any
) -> None:
    import boto3

    assert s3_gate_run.proc.returncode == 1
    assert s3_gate_run.status["phase"] == "Failed"
    ev = s3_gate_run.task("eval")
    assert [a["exitCode"] for a in ev["children"]] == [3]  # a gate failure is not retried
    assert ev["outputs"]["parameters"]["verdict"] == "failed"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server["MINIO_ENDPOINT"],
        aws_access_key_id=s3_server["MINIO_ACCESS_KEY"],
        aws_secret_access_key=s3_server["MINIO_SECRET_KEY"],
        region_name="us-east-1",
    )
    for key in manifest_keys(s3_gate_run.name).values():
        assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0, key
    report = s3.get_object(Bucket=BUCKET, Key=f"eval/{s3_gate_run.name}/report.html")["Body"].read()
    assert b"<html" in report.lower()
    metrics = json.loads(s3.get_object(Bucket=BUCKET, Key=f"eval/{s3_gate_run.name}/metrics.json")["Body"].read())
    assert metrics["gate"]["verdict"] == "failed"
    attempts, _ = audit_rows(audit_db, s3_gate_run.name)
    assert ("eval", 0, "FAILED", 3) in attempts
