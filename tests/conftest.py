"""Session fixtures for the real services the tests use.

PostgreSQL: a throwaway server (Debian binaries, else pgserver). S3: moto's server over
real HTTP (MinIO cannot run here). MLflow: a sqlite store in a temp folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def postgres() -> Iterator[dict[str, str]]:
    """PG_* environment of a fresh PostgreSQL server for this test session."""
    from workflows.local.services import EmbeddedPostgres

    data_dir = Path(tempfile.mkdtemp(prefix="pg-test-"))
    server = EmbeddedPostgres(data_dir).start()
    yield server.env
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def audit_db(postgres: dict[str, str]) -> Iterator[object]:
    """A psycopg2 connection to the audit database (autocommit)."""
    import psycopg2

    conn = psycopg2.connect(
        host=postgres["PG_HOST"],
        port=int(postgres["PG_PORT"]),
        user=postgres["PG_USER"],
        dbname=postgres["PG_DATABASE"],
    )
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """MINIO_* environment of a moto S3 server on 127.0.0.1, with bucket ``cybersec-mlops``."""
    import boto3
    from moto.server import ThreadedMotoServer

    from workflows.local.services import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "MINIO_ENDPOINT": f"http://127.0.0.1:{port}",
        "MINIO_ACCESS_KEY": "test-access-key",
        "MINIO_SECRET_KEY": "test-secret-key",
    }
    boto3.client(
        "s3",
        endpoint_url=env["MINIO_ENDPOINT"],
        aws_access_key_id="test-access-key",
        aws_secret_access_key="test-secret-key",
        region_name="us-east-1",
    ).create_bucket(Bucket="cybersec-mlops")
    yield env
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 (sqlite store, proxied artifacts); yields its URL.

    Stage images carry mlflow-skinny, which speaks HTTP only, and the fault tests need a
    server to put a proxy in front of: both use this one.
    """
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from workflows.local.services import free_port

    state = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{state / 'mlflow.db'}",
        "--artifacts-destination",
        str(state / "artifacts"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PG_", "MINIO_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # job workers starve 2 cores
    log = state / "server.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start ({' '.join(cmd)}):\n{log.read_text()[-3000:]}", pytrace=False)
        time.sleep(0.3)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture
def mlflow_uri(tmp_path: Path) -> str:
    """A sqlite MLflow store whose default experiment keeps its artifacts in ``tmp_path``."""
    from workflows.local.demo import prepare_mlflow

    return prepare_mlflow(tmp_path)


@pytest.fixture
def stage_env(postgres: dict[str, str], mlflow_uri: str) -> dict[str, str]:
    """Environment for running a stage as a subprocess against the test services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MINIO_", "MLFLOW_", "RUN_ID"))}
    env.update(postgres)
    env["MLFLOW_TRACKING_URI"] = mlflow_uri
    env["PYTHONPATH"] = str(REPO)
    return env
