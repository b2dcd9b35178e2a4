"""S3 faults that outlast retries end in exit 75 (Argo retries them), and nothing is left behind.

boto3 wraps the final error of ``upload_file`` in ``S3UploadFailedError`` and a repeatedly
cut ``download_file`` in ``RetriesExceededError``; storage unwraps both. Downloaded inputs
are removed when the stage ends.
"""

# ruff: noqa: F811 - the fixtures are imported from test_s3
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import attempts, keys
from tests.faults.proxy import FaultProxy
from tests.faults.test_s3 import _ingest, _no_leftovers, _silver, env, raw_key  # noqa: F401 - fixtures

pytestmark = pytest.mark.services


def test_upload_503_outlasting_exits_75(
    env: dict[str, str], s3_server: dict[str, str], s3_proxy: FaultProxy, audit: Any
) -> None:
    run_id = f"s3-503-{uuid.uuid4().hex[:8]}"
    s3_proxy.fail_http(1000, status=503)
    done = _ingest(run_id, {**env, "MINIO_MAX_ATTEMPTS": "2"})
    assert done.returncode == 75, done.error()
    assert "MINIO_ENDPOINT" in done.error() and s3_proxy.url() in done.error()
    assert keys(s3_server, f"raw/{run_id}/") == {}
    [(attempt, status, code, error)] = attempts(audit, run_id, "ingest")
    assert (status, code) == ("FAILED", 75)
    _no_leftovers(env)


def test_download_cut_outlasting_exits_75(
    raw_key: str, tmp_path: Path, env: dict[str, str], s3_proxy: FaultProxy, audit: Any
) -> None:
    run_id = f"s3-cut-{uuid.uuid4().hex[:8]}"
    s3_proxy.cut_after(4000, times=1000)
    done = _silver(raw_key, tmp_path / "out", run_id, {**env, "MINIO_MAX_ATTEMPTS": "2"})
    assert done.returncode == 75, done.error()
    assert "MINIO_ENDPOINT" in done.error() and s3_proxy.url() in done.error()
    [(attempt, status, code, error)] = attempts(audit, run_id, "silver")
    assert (status, code) == ("FAILED", 75)


def test_downloaded_inputs_are_removed_after_the_stage(
    raw_key: str, tmp_path: Path, env: dict[str, str], audit: Any
) -> None:
    done = _silver(raw_key, tmp_path / "out", f"s3-tmp-{uuid.uuid4().hex[:8]}", env)
    assert done.returncode == 0, done.stderr
    _no_leftovers(env)
