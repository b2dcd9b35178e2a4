"""The ingest CLI as a real process: exit codes, params files, audit rows in PostgreSQL, S3."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from tests.helpers import REPO, run_stage

from .conftest import BADINPUT, FIXTURES

pytestmark = pytest.mark.services


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _args(tmp_path: Path, source: str, *extra: str) -> list[str]:
    return [
        "--source",
        source,
        "--output",
        str(tmp_path / "out" / "flows.parquet"),
        "--rejects",
        str(tmp_path / "out" / "rejects.parquet"),
        "--params-dir",
        str(tmp_path / "params"),
        "--log-format",
        "json",
        *extra,
    ]


def _attempts(audit_db: Any, run_id: str) -> list[tuple[Any, ...]]:
    with audit_db.cursor() as cur:
        cur.execute(
            "SELECT attempt, status, exit_code, metrics, error FROM stage_attempts "
            "WHERE run_id = %s AND stage = 'ingest' ORDER BY attempt",
            (run_id,),
        )
        return cur.fetchall()


def test_help_is_instant_and_imports_nothing_heavy() -> None:
    code = (
        "import sys, stages.ingest.__main__ as m; m.build_parser().format_help(); "
        "print(sorted(k for k in ('pyarrow', 'numpy', 'pandas', 'boto3') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert run_stage("ingest", "--help").returncode == 0


def test_zeek_file_success_params_and_audit(tmp_path: Path, stage_env: dict[str, str], audit_db: Any) -> None:
    args = _args(
        tmp_path, str(BADINPUT / "nonnumeric.log"), "--run-id", "ingest-cli-ok", "--max-reject-fraction", "0.5"
    )
    done = run_stage("ingest", *args, env=stage_env)
    assert done.returncode == 0, done.stderr
    flows = tmp_path / "out" / "flows.parquet"
    assert pq.read_table(flows).num_rows == 2
    assert pq.read_table(tmp_path / "out" / "rejects.parquet").num_rows == 2
    params = {p.name: p.read_text() for p in (tmp_path / "params").iterdir()}
    assert params == {"rows": "2", "rejected": "2", "sha256": _sha256(flows)}
    with audit_db.cursor() as cur:
        cur.execute(
            "SELECT direction, name, sha256, rows FROM stage_artifacts WHERE run_id = %s ORDER BY direction, name",
            ("ingest-cli-ok",),
        )
        artifacts = cur.fetchall()
    assert artifacts == [
        ("input", "source", _sha256(BADINPUT / "nonnumeric.log"), None),
        ("output", "flows", _sha256(flows), 2),
        ("output", "rejects", _sha256(tmp_path / "out" / "rejects.parquet"), 2),
    ]
    ((attempt, status, code, metrics, error),) = _attempts(audit_db, "ingest-cli-ok")
    assert (status, code, error) == ("SUCCEEDED", 0, None)
    assert metrics["rows_in"] == 4 and metrics["rows_out"] == 2 and metrics["rejected"] == 2
    assert metrics["rejects_by_reason"] == {"not a number": 2}
    progress = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(e["msg"].startswith("ingested 2 rows") for e in progress)


def test_rerun_same_run_id_keeps_one_success(tmp_path: Path, stage_env: dict[str, str], audit_db: Any) -> None:
    args = _args(tmp_path, "synthetic://?rows=2000&seed=5", "--run-id", "ingest-cli-rerun")
    for _ in range(2):
        assert run_stage("ingest", *args, env=stage_env).returncode == 0
    rows = _attempts(audit_db, "ingest-cli-rerun")
    assert [(a, s) for a, s, *_ in rows] == [(0, "SUCCEEDED")]
    with audit_db.cursor() as cur:
        cur.execute("SELECT count(*) FROM stage_artifacts WHERE run_id = %s", ("ingest-cli-rerun",))
        assert cur.fetchone() == (2,)
    assert (tmp_path / "params" / "rows").read_text() == "2000"
    assert rows[0][3]["attack_rows"] == 40


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (str(BADINPUT / "empty.log"), "empty file"),
        (str(BADINPUT / "missing-required.log"), "lacks required field"),
        ("/nonexistent/conn.log", "no such file"),
        ("synthetic://?rows=-4", "need rows >= 0"),
    ],
)
def test_bad_input_exits_2_and_publishes_nothing(
    source: str, message: str, tmp_path: Path, stage_env: dict[str, str], audit_db: Any
) -> None:
    run_id = f"ingest-cli-bad-{abs(hash(source)) % 10**8}"
    done = run_stage("ingest", *_args(tmp_path, source, "--run-id", run_id), env=stage_env)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "out" / "flows.parquet").exists()
    assert not (tmp_path / "params").exists()
    ((_, status, code, _, error),) = _attempts(audit_db, run_id)
    assert (status, code) == ("FAILED", 2) and message in error


def test_usage_error_exits_2(tmp_path: Path) -> None:
    done = run_stage("ingest", "--source", "x", "--format", "xml", "--output", "a", "--rejects", "b")
    assert done.returncode == 2 and "invalid choice: 'xml'" in done.stderr


def test_s3_round_trip(tmp_path: Path, stage_env: dict[str, str], s3_server: dict[str, str]) -> None:
    env = {**stage_env, **s3_server}
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server["MINIO_ENDPOINT"],
        aws_access_key_id=s3_server["MINIO_ACCESS_KEY"],
        aws_secret_access_key=s3_server["MINIO_SECRET_KEY"],
        region_name="us-east-1",
    )
    s3.upload_file(str(FIXTURES / "iot23-conn.log.labeled"), "cybersec-mlops", "landing/iot23.log")
    out, rej = "s3://cybersec-mlops/raw/ingest-s3/flows.parquet", "s3://cybersec-mlops/raw/ingest-s3/rejects.parquet"
    done = run_stage(
        "ingest",
        "--source",
        "s3://cybersec-mlops/landing/iot23.log",
        "--output",
        out,
        "--rejects",
        rej,
        "--run-id",
        "ingest-s3",
        "--params-dir",
        str(tmp_path / "params"),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    local = tmp_path / "flows.parquet"
    s3.download_file("cybersec-mlops", "raw/ingest-s3/flows.parquet", str(local))
    table = pq.read_table(local)
    assert table.num_rows == 7 and table.column("label").to_pylist() == [1, 1, 0, 1, 1, 0, 1]
    assert set(table.column("source").to_pylist()) == {"s3://cybersec-mlops/landing/iot23.log"}
    assert (tmp_path / "params" / "sha256").read_text() == _sha256(local)

    missing = run_stage("ingest", *_args(tmp_path, "s3://cybersec-mlops/landing/nope.log"), env=env)
    assert missing.returncode == 2 and "not found in S3" in missing.stderr
