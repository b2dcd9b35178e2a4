"""The silver stage as a real process: real PostgreSQL audit, real files, moto's S3 over HTTP."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.common.schema import FLOW_SCHEMA
from tests.helpers import run_stage

pytestmark = pytest.mark.services

MANIFEST_KEYS = {
    "version",
    "features",
    "dtypes",
    "schema_hash",
    "passthrough",
    "split",
    "rows",
    "has_labels",
    "skipped_features",
    "input_sha256",
}


def _silver(env: dict[str, str], tmp_path: Path, source: str, *extra: str) -> tuple[Any, str, Path]:
    run_id = f"silver-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "out"
    proc = run_stage(
        "silver",
        "--input",
        source,
        "--output",
        str(out / "features.parquet"),
        "--manifest",
        str(out / "manifest.json"),
        "--params-dir",
        str(out / "params"),
        "--run-id",
        run_id,
        *extra,
        env=env,
    )
    return proc, run_id, out


def _attempt(audit_db: Any, run_id: str) -> tuple[str, int, str | None]:
    with audit_db.cursor() as cur:
        cur.execute(
            "SELECT status, exit_code, error FROM stage_attempts WHERE run_id = %s AND stage = 'silver'", (run_id,)
        )
        return cur.fetchone()


def test_synthetic_flows_end_to_end(
    stage_env: dict[str, str], audit_db: Any, tmp_path: Path, synthetic_flows: pa.Table, write_flows: Any
) -> None:
    raw = write_flows(synthetic_flows)
    proc, run_id, out = _silver(stage_env, tmp_path, str(raw), "--holdout-fraction", "0.25")
    assert proc.returncode == 0, proc.stderr

    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest) == MANIFEST_KEYS
    params = {p.name: p.read_text() for p in (out / "params").iterdir()}
    features = pq.read_table(out / "features.parquet")
    n = synthetic_flows.num_rows
    assert params["rows"] == str(n) == str(manifest["rows"]) == str(features.num_rows)
    assert int(params["train_rows"]) + int(params["holdout_rows"]) == n
    assert params["train_rows"] == str(manifest["split"]["train_rows"])
    assert params["sha256"] == hashlib.sha256((out / "features.parquet").read_bytes()).hexdigest()
    assert params["schema_hash"] == manifest["schema_hash"]
    assert manifest["input_sha256"] == hashlib.sha256(raw.read_bytes()).hexdigest()
    assert manifest["split"]["method"] == "time" and manifest["split"]["holdout_fraction"] == 0.25
    assert manifest["has_labels"] is True
    assert manifest["dtypes"] == {f: "float32" for f in manifest["features"]}
    cutoff = np.datetime64(manifest["split"]["cutoff_ts"].replace("+00:00", ""), "us")
    ts = features.column("ts").to_numpy()
    split = features.column("split").to_numpy(zero_copy_only=False)
    assert (ts[split == "train"] < cutoff).all() and (ts[split == "holdout"] >= cutoff).all()

    assert _attempt(audit_db, run_id)[:2] == ("SUCCEEDED", 0)
    with audit_db.cursor() as cur:
        cur.execute(
            "SELECT direction, name, rows, sha256 FROM stage_artifacts WHERE run_id = %s ORDER BY name", (run_id,)
        )
        rows = cur.fetchall()
    assert rows == [
        ("output", "features", n, params["sha256"]),
        ("input", "flows", n, manifest["input_sha256"]),
        ("output", "manifest", None, hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()),
    ]


def test_same_input_same_output(
    stage_env: dict[str, str], tmp_path: Path, synthetic_flows: pa.Table, write_flows: Any
) -> None:
    raw = write_flows(synthetic_flows.slice(0, 5000))
    first = _silver(stage_env, tmp_path / "a", str(raw))
    second = _silver(stage_env, tmp_path / "b", str(raw))
    assert first[0].returncode == second[0].returncode == 0
    for name in ("schema_hash", "sha256"):
        assert (first[2] / "params" / name).read_text() == (second[2] / "params" / name).read_text()


def test_format_without_time_and_addresses(
    stage_env: dict[str, str], tmp_path: Path, synthetic_flows: pa.Table, write_flows: Any
) -> None:
    """Like UNSW-NB15's train/test CSVs: no ts, no addresses, no history, no IP-level bytes."""
    table = synthetic_flows.slice(0, 4000)
    for name in ("ts", "src_ip", "dst_ip", "history", "src_ip_bytes", "dst_ip_bytes"):
        field = FLOW_SCHEMA.field(name)
        table = table.set_column(table.column_names.index(name), field, pa.nulls(table.num_rows, field.type))
    proc, _, out = _silver(stage_env, tmp_path, str(write_flows(table)))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split"] == {
        "holdout_fraction": 0.3,
        "cutoff_ts": None,
        "train_rows": 2800,
        "holdout_rows": 1200,
        "method": "row-order",
    }
    assert "ts is null in every row" in manifest["skipped_features"]["pair_periodicity"]
    assert "history" in manifest["skipped_features"]["history"]
    assert "log_src_bytes" in manifest["features"] and "hist_fin" not in manifest["features"]
    result = pq.read_table(out / "features.parquet", columns=["uid"])
    assert result.column("uid").to_pylist() == table.column("uid").to_pylist()  # input order kept


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.drop_columns(["conn_state", "history"]), r"conn_state missing .*history missing"),
        (
            lambda t: t.set_column(t.column_names.index("dst_port"), "dst_port", t.column("dst_port").cast(pa.int64())),
            r"dst_port is int64, expected int32",
        ),
        (lambda t: t.slice(0, 0), r"no rows"),
    ],
)
def test_bad_input_exits_2(
    stage_env: dict[str, str],
    audit_db: Any,
    tmp_path: Path,
    synthetic_flows: pa.Table,
    write_flows: Any,
    mutate: Any,
    message: str,
) -> None:
    raw = write_flows(mutate(synthetic_flows.slice(0, 100)))
    proc, run_id, out = _silver(stage_env, tmp_path, str(raw))
    assert proc.returncode == 2
    assert str(raw) in proc.stderr
    status, code, error = _attempt(audit_db, run_id)
    assert (status, code) == ("FAILED", 2)
    assert error is not None and re.search(message, error)
    assert not (out / "features.parquet").exists() and not (out / "manifest.json").exists()


@pytest.mark.parametrize("fraction", ["1.0", "-0.1"])
def test_bad_holdout_fraction(
    stage_env: dict[str, str], tmp_path: Path, synthetic_flows: pa.Table, write_flows: Any, fraction: str
) -> None:
    proc, _, _ = _silver(
        stage_env, tmp_path, str(write_flows(synthetic_flows.slice(0, 50))), "--holdout-fraction", fraction
    )
    assert proc.returncode == 2
    assert "--holdout-fraction" in proc.stderr and "[0, 1)" in proc.stderr


def test_s3_round_trip(
    stage_env: dict[str, str], s3_server: dict[str, str], tmp_path: Path, synthetic_flows: pa.Table, write_flows: Any
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
    s3.upload_file(str(write_flows(synthetic_flows.slice(0, 3000))), "cybersec-mlops", f"raw/{run}/flows.parquet")
    proc = run_stage(
        "silver",
        "--input",
        f"s3://cybersec-mlops/raw/{run}/flows.parquet",
        "--output",
        f"s3://cybersec-mlops/silver/{run}/features.parquet",
        "--manifest",
        f"s3://cybersec-mlops/silver/{run}/manifest.json",
        "--params-dir",
        str(tmp_path / "params"),
        env={**stage_env, **s3_server},
    )
    assert proc.returncode == 0, proc.stderr
    s3.download_file("cybersec-mlops", f"silver/{run}/features.parquet", str(tmp_path / "f.parquet"))
    manifest = json.loads(s3.get_object(Bucket="cybersec-mlops", Key=f"silver/{run}/manifest.json")["Body"].read())
    assert pq.read_metadata(tmp_path / "f.parquet").num_rows == 3000 == manifest["rows"]
    assert (tmp_path / "params" / "sha256").read_text() == hashlib.sha256(
        (tmp_path / "f.parquet").read_bytes()
    ).hexdigest()
