"""Fixtures for the service-fault tier: fault proxies in front of the real services, and a
real ``mlflow server`` over HTTP (the sqlite-URI fixture cannot be made unreachable).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import FAST_RETRIES, base_env
from tests.faults.proxy import FaultProxy


@pytest.fixture
def fault_env(postgres: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Stage environment: real audit database, fast retries, a private TMPDIR (checked for leftovers)."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    return {**base_env(), **postgres, **FAST_RETRIES, "TMPDIR": str(tmpdir)}


@pytest.fixture
def audit(postgres: dict[str, str], audit_db: Any) -> Any:
    """``audit_db`` with the audit schema in place (a test may run before any stage created it)."""
    from stages.common.audit import open_audit
    from stages.common.config import Settings

    open_audit(Settings.from_env(postgres)).close()
    return audit_db


@pytest.fixture
def pg_proxy(postgres: dict[str, str]) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", int(postgres["PG_PORT"]))) as proxy:
        yield proxy


@pytest.fixture
def s3_proxy(s3_server: dict[str, str]) -> Iterator[FaultProxy]:
    port = int(s3_server["MINIO_ENDPOINT"].rsplit(":", 1)[1])
    with FaultProxy(("127.0.0.1", port)) as proxy:
        yield proxy


@pytest.fixture
def mlflow_proxy(mlflow_server: str) -> Iterator[FaultProxy]:
    port = int(mlflow_server.rsplit(":", 1)[1])
    with FaultProxy(("127.0.0.1", port)) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def pipeline_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real silver and train outputs (ingest → silver → train on 4000 synthetic flows, no services).

    Read-only for the tests: the inputs of train and eval fault runs.
    """
    from tests.faults.harness import run

    d = tmp_path_factory.mktemp("pipeline")
    files = {
        name: d / name
        for name in (
            "flows.parquet",
            "rejects.parquet",
            "features.parquet",
            "manifest.json",
            "model.skops",
            "model-card.json",
        )
    }
    env = base_env()
    steps = [
        (
            "ingest",
            "--source",
            "synthetic://?rows=4000&seed=21&attack_share=0.05",
            "--output",
            str(files["flows.parquet"]),
            "--rejects",
            str(files["rejects.parquet"]),
        ),
        (
            "silver",
            "--input",
            str(files["flows.parquet"]),
            "--output",
            str(files["features.parquet"]),
            "--manifest",
            str(files["manifest.json"]),
        ),
        (
            "train",
            "--features",
            str(files["features.parquet"]),
            "--manifest",
            str(files["manifest.json"]),
            "--model-out",
            str(files["model.skops"]),
            "--card-out",
            str(files["model-card.json"]),
            "--n-estimators",
            "50",
        ),
    ]
    for stage, *args in steps:
        done = run(stage, *args, env=env)
        assert done.returncode == 0, f"{stage} failed while building fault-test inputs:\n{done.stderr[-3000:]}"
    return files
