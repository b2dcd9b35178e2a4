"""The S3 endpoint (moto's server behind the fault proxy) down, restarting, slow and answering 5xx.

Ingest writes its two outputs to s3:// through the proxy (MINIO_ENDPOINT points at it);
the test lists the real bucket directly. Transient faults must be absorbed by botocore's
standard retries (MINIO_MAX_ATTEMPTS); a fault that outlasts them ends the stage with
exit 75 naming MINIO_ENDPOINT — and in no case may an object appear at an output key
unless it is complete.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.faults.harness import Finished, attempts, base_env, keys, run, s3_client
from tests.faults.proxy import FaultProxy

pytestmark = pytest.mark.services

BUCKET = "cybersec-mlops"
ROWS = 3000


def _ingest(run_id: str, env: dict[str, str], *extra: str) -> Finished:
    return run(
        "ingest",
        "--source",
        f"synthetic://?rows={ROWS}&seed=5",
        "--output",
        f"s3://{BUCKET}/raw/{run_id}/flows.parquet",
        "--rejects",
        f"s3://{BUCKET}/raw/{run_id}/rejects.parquet",
        "--run-id",
        run_id,
        *extra,
        env=env,
    )


@pytest.fixture
def env(fault_env: dict[str, str], s3_server: dict[str, str], s3_proxy: FaultProxy) -> dict[str, str]:
    return {**fault_env, **s3_server, "MINIO_ENDPOINT": s3_proxy.url()}


def _rows(s3_env: dict[str, str], key: str) -> int:
    body = s3_client(s3_env).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return pq.read_metadata(io.BytesIO(body)).num_rows


def _no_leftovers(env: dict[str, str]) -> None:
    left = [p for p in Path(env["TMPDIR"]).rglob("*") if p.is_file()]
    assert left == [], f"temporary files left behind: {left}"


def _assert_published(s3_server: dict[str, str], run_id: str) -> None:
    assert set(keys(s3_server, f"raw/{run_id}/")) == {f"raw/{run_id}/flows.parquet", f"raw/{run_id}/rejects.parquet"}
    assert _rows(s3_server, f"raw/{run_id}/flows.parquet") == ROWS


@pytest.mark.parametrize(
    ("fault", "counter"),
    [
        pytest.param(lambda p: p.fail_http(2, status=503), "http_failed", id="503-twice"),
        pytest.param(lambda p: p.reset_next(2), "reset", id="restarting"),
    ],
)
def test_transient_fault_is_retried_inside_the_stage(
    fault: Any, counter: str, env: dict[str, str], s3_server: dict[str, str], s3_proxy: FaultProxy, audit: Any
) -> None:
    run_id = f"s3-blip-{uuid.uuid4().hex[:8]}"
    fault(s3_proxy)
    done = _ingest(run_id, env)
    assert done.returncode == 0, done.stderr
    assert s3_proxy.stats[counter] == 2  # the fault was really hit, twice, and absorbed
    _assert_published(s3_server, run_id)
    assert attempts(audit, run_id, "ingest") == [(0, "SUCCEEDED", 0, None)]
    _no_leftovers(env)


def test_slow_endpoint_within_timeouts_succeeds(
    env: dict[str, str], s3_server: dict[str, str], s3_proxy: FaultProxy, audit: Any
) -> None:
    run_id = f"s3-slow-{uuid.uuid4().hex[:8]}"
    s3_proxy.forward(delay=0.3)  # every answer from S3 arrives late
    done = _ingest(run_id, env)
    assert done.returncode == 0, done.stderr
    assert s3_proxy.stats["delayed"] >= 2  # both uploads' answers came late
    _assert_published(s3_server, run_id)
    assert attempts(audit, run_id, "ingest") == [(0, "SUCCEEDED", 0, None)]


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda p: p.refuse(), id="down"),
        pytest.param(lambda p: p.reset_next(1000), id="resets-always"),
    ],
)
def test_outlasting_fault_exits_75_and_a_rerun_succeeds(
    fault: Any, env: dict[str, str], s3_server: dict[str, str], s3_proxy: FaultProxy, audit: Any
) -> None:
    run_id = f"s3-down-{uuid.uuid4().hex[:8]}"
    fault(s3_proxy)
    done = _ingest(run_id, {**env, "MINIO_MAX_ATTEMPTS": "2"})
    assert done.returncode == 75, done.stderr
    assert "MINIO_ENDPOINT" in done.error() and s3_proxy.url() in done.error()
    assert keys(s3_server, f"raw/{run_id}/") == {}  # nothing published, not even the small rejects file
    [(attempt, status, code, error)] = attempts(audit, run_id, "ingest")
    assert (attempt, status, code) == (0, "FAILED", 75) and "MINIO_ENDPOINT" in (error or "")
    _no_leftovers(env)

    s3_proxy.reset_next(0)  # service back: Argo's retry (attempt 1) of the same run id
    again = _ingest(run_id, env, "--attempt", "1")
    assert again.returncode == 0, again.stderr
    _assert_published(s3_server, run_id)
    assert attempts(audit, run_id, "ingest") == [(0, "FAILED", 75, error), (1, "SUCCEEDED", 0, None)]


@pytest.fixture(scope="module")
def raw_key(s3_server: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """RAW flows written by the real ingest stage, uploaded straight to the bucket (no proxy)."""
    out = tmp_path_factory.mktemp("raw")
    done = run(
        "ingest",
        "--source",
        f"synthetic://?rows={ROWS}&seed=9",
        "--output",
        str(out / "flows.parquet"),
        "--rejects",
        str(out / "rejects.parquet"),
        env=base_env(),
    )
    assert done.returncode == 0, done.stderr
    key = f"raw/fault-input-{uuid.uuid4().hex[:8]}/flows.parquet"
    s3_client(s3_server).upload_file(str(out / "flows.parquet"), BUCKET, key)
    return key


def _silver(raw_key: str, out: Path, run_id: str, env: dict[str, str]) -> Finished:
    return run(
        "silver",
        "--input",
        f"s3://{BUCKET}/{raw_key}",
        "--output",
        str(out / "features.parquet"),
        "--manifest",
        str(out / "manifest.json"),
        "--run-id",
        run_id,
        env=env,
    )


def test_download_cut_mid_stream_is_retried(
    raw_key: str, tmp_path: Path, env: dict[str, str], s3_proxy: FaultProxy, audit: Any
) -> None:
    run_id = f"s3-cut-{uuid.uuid4().hex[:8]}"
    s3_proxy.cut_after(4000, times=1)
    done = _silver(raw_key, tmp_path / "out", run_id, env)
    assert done.returncode == 0, done.stderr
    assert s3_proxy.stats["cut"] == 1
    assert pq.read_metadata(tmp_path / "out" / "features.parquet").num_rows == ROWS
    assert attempts(audit, run_id, "silver") == [(0, "SUCCEEDED", 0, None)]


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda p: p.refuse(), id="down"),
        pytest.param(lambda p: p.fail_http(1000, status=503), id="503-always"),
    ],
)
def test_input_fault_outlasting_exits_75(
    fault: Any, raw_key: str, tmp_path: Path, env: dict[str, str], s3_proxy: FaultProxy, audit: Any
) -> None:
    run_id = f"s3-in-{uuid.uuid4().hex[:8]}"
    fault(s3_proxy)
    done = _silver(raw_key, tmp_path / "out", run_id, {**env, "MINIO_MAX_ATTEMPTS": "2"})
    assert done.returncode == 75, done.stderr
    assert "MINIO_ENDPOINT" in done.error() and s3_proxy.url() in done.error()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    [(attempt, status, code, error)] = attempts(audit, run_id, "silver")
    assert (attempt, status, code) == (0, "FAILED", 75) and "MINIO_ENDPOINT" in (error or "")
    _no_leftovers(env)
