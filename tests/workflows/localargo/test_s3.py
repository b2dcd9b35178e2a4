"""The executor with an S3 artifact repository (moto's server over HTTP, the MinIO stand-in)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from workflows.localargo.engine import RunOptions, run_workflow
from workflows.localargo.errors import ExecutorError

FIXTURES = Path(__file__).parent / "fixtures"
BUCKET = "cybersec-mlops"


def s3_client(env: dict[str, str]):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["MINIO_ENDPOINT"],
        aws_access_key_id=env["MINIO_ACCESS_KEY"],
        aws_secret_access_key=env["MINIO_SECRET_KEY"],
        region_name="us-east-1",
    )


def test_artifacts_land_at_their_keys_in_the_bucket(tmp_path: Path, s3_server: dict[str, str]) -> None:
    outcome = run_workflow(
        RunOptions(
            manifest=FIXTURES / "params-artifacts.yaml",
            workdir=tmp_path,
            artifacts=f"s3://{BUCKET}",
            extra_env=s3_server,
        ),
        out=io.StringIO(),
    )
    assert outcome.phase == "Succeeded"
    s3 = s3_client(s3_server)
    combined = s3.get_object(Bucket=BUCKET, Key=f"messages/{outcome.name}/combined.txt")["Body"].read().decode()
    assert combined.startswith(f"HELLO WORLD FROM {outcome.name.upper()} | ")
    status = json.loads(outcome.status_path.read_text())
    shout = next(c for c in status["root"]["children"] if c["displayName"] == "shout")
    ref = shout["outputs"]["artifacts"]["out"]
    assert ref["uri"] == f"s3://{BUCKET}/{ref['key']}"
    body = s3.get_object(Bucket=BUCKET, Key=ref["key"])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.extractfile("out.txt").read().decode() == combined.split(" | ")[0]  # type: ignore[union-attr]


def test_a_missing_input_key_errors_the_task(tmp_path: Path, s3_server: dict[str, str]) -> None:
    doc = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "missing-key"},
        "spec": {
            "entrypoint": "read",
            "templates": [
                {
                    "name": "read",
                    "inputs": {
                        "artifacts": [{"name": "data", "path": "/tmp/inputs/data", "s3": {"key": "no/such/key"}}]
                    },
                    "container": {"image": "python:3.11-slim", "command": ["python", "-c", "pass"]},
                }
            ],
        },
    }
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(doc))
    outcome = run_workflow(
        RunOptions(manifest=path, workdir=tmp_path, artifacts=f"s3://{BUCKET}", extra_env=s3_server), out=io.StringIO()
    )
    assert outcome.phase == "Error" and outcome.exit_code == 1
    assert outcome.message == f"failed to load artifacts: inputs.artifacts.data: s3://{BUCKET}/no/such/key: not found"


def test_artifacts_option_takes_a_bucket_only(tmp_path: Path, s3_server: dict[str, str]) -> None:
    with pytest.raises(ExecutorError, match=r"give the bucket only"):
        run_workflow(
            RunOptions(
                manifest=FIXTURES / "handled-failure.yaml",
                workdir=tmp_path,
                artifacts=f"s3://{BUCKET}/prefix",
                extra_env=s3_server,
            ),
            out=io.StringIO(),
        )
