"""Credentials never leave the process that uses them: not in logs, audit, artifacts or MLflow.

The whole pipeline ran once (see conftest) with random MINIO_SECRET_KEY and PG_PASSWORD
values; every byte it left behind is searched for them, and for their base64 and
URL-encoded forms. A stage failing on a service fault is where secrets usually leak
(connection strings in exception text), so failures are run with the secrets too.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import base_env, run
from tests.security.conftest import BUCKET, PipelineRun, random_secrets

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.slow]


def _forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw), urllib.parse.quote(secret).encode(), secret[4:].encode()]


def _leaks(blob: bytes, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if any(form in blob for form in _forms(value))]


def test_the_run_used_the_secrets(pipeline_run: PipelineRun) -> None:
    """The executor resolved every secretKeyRef from its environment (it warns for each one it cannot)."""
    out = pipeline_run.proc.stdout + pipeline_run.proc.stderr
    assert "which is not set" not in out
    assert [c["displayName"] for c in pipeline_run.status["root"]["children"]] == ["ingest", "silver", "train", "eval"]


def test_no_secret_in_console_logs_or_run_files(pipeline_run: PipelineRun) -> None:
    assert _leaks((pipeline_run.proc.stdout + pipeline_run.proc.stderr).encode(), pipeline_run.secrets) == []
    files = [p for p in pipeline_run.workdir.rglob("*") if p.is_file()]
    logs = [p for p in files if p.suffix == ".log" or "log" in p.name]
    assert len(logs) >= 4, f"expected a log per stage under {pipeline_run.workdir}, found {logs}"
    leaks = {
        str(p.relative_to(pipeline_run.workdir)): names
        for p in files
        if (names := _leaks(p.read_bytes(), pipeline_run.secrets))
    }
    assert leaks == {}


def test_no_secret_in_the_audit(pipeline_run: PipelineRun, audit_db: Any) -> None:
    with audit_db.cursor() as cur:
        cur.execute(
            "SELECT stage, params::text, metrics::text, coalesce(error, ''), coalesce(host, '') "
            "FROM stage_attempts WHERE run_id = %s",
            (pipeline_run.name,),
        )
        rows = cur.fetchall()
        cur.execute("SELECT uri FROM stage_artifacts WHERE run_id = %s", (pipeline_run.name,))
        uris = [r[0] for r in cur.fetchall()]
    assert sorted(r[0] for r in rows) == ["eval", "ingest", "silver", "train"]
    assert len(uris) >= 8
    assert _leaks(json.dumps([rows, uris]).encode(), pipeline_run.secrets) == []


def test_no_secret_in_artifacts_or_mlflow(pipeline_run: PipelineRun, s3_server: dict[str, str]) -> None:
    from tests.faults.harness import keys, s3_client

    client = s3_client(s3_server)
    objects = [k for k in keys(s3_server, "") if f"/{pipeline_run.name}/" in k]
    assert len(objects) == 8  # raw ×2, silver ×2, models ×2, eval ×2
    for key in objects:
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert _leaks(body, pipeline_run.secrets) == [], key
    mlflow_files = [p for p in pipeline_run.mlflow_dir.rglob("*") if p.is_file()]
    for root in _artifact_roots(pipeline_run.mlflow_dir / "mlflow.db"):
        mlflow_files += [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in mlflow_files) and any(p.suffix == ".skops" for p in mlflow_files)
    for path in mlflow_files:
        assert _leaks(path.read_bytes(), pipeline_run.secrets) == [], path


def _artifact_roots(db: Path) -> list[Path]:
    """Local artifact locations of the experiments in an MLflow sqlite store (MLflow may put them elsewhere)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        locations = [row[0] for row in conn.execute("SELECT artifact_location FROM experiments")]
    roots = [Path(urllib.parse.urlparse(loc).path if loc.startswith("file:") else loc) for loc in locations]
    return [r for r in roots if r.is_dir()]


@pytest.mark.parametrize("broken", ["postgres", "s3"])
def test_no_secret_in_failure_messages(
    broken: str, tmp_path: Path, postgres: dict[str, str], s3_server: dict[str, str]
) -> None:
    """A stage failing on a dead service, at DEBUG level, still names settings, never values."""
    secrets = random_secrets()
    env = {**base_env(), **postgres, **s3_server, **secrets, "PG_RETRIES": "1", "MINIO_MAX_ATTEMPTS": "1"}
    if broken == "postgres":
        env["PG_PORT"] = "1"
    else:
        env["MINIO_ENDPOINT"] = "http://127.0.0.1:1"
    done = run(
        "ingest",
        "--source", "synthetic://?rows=100",
        "--output", f"s3://{BUCKET}/leak-{uuid.uuid4().hex[:6]}/flows.parquet",
        "--rejects", f"s3://{BUCKET}/leak-{uuid.uuid4().hex[:6]}/rejects.parquet",
        "--log-level", "DEBUG",
        env=env,
    )  # fmt: skip
    assert done.returncode == 75, done.stderr[-2000:]
    assert ("PG_PORT" if broken == "postgres" else "MINIO_ENDPOINT") in done.error()
    assert _leaks((done.stdout + done.stderr).encode(), secrets) == []
