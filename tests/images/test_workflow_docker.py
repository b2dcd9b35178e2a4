"""The compiled workflow end to end with ``run-local --runtime docker``: every task in its image.

The images are the ones this tier just built from docker-bake.hcl (the tags the compiled
manifest references). The executor stages artifacts outside the containers, as Argo's
executor does; the stages reach the session's PostgreSQL and a real ``mlflow server``
over the host network, like pods reach their services.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.images.conftest import REPO, BuiltImage

pytestmark = [pytest.mark.images, pytest.mark.e2e, pytest.mark.slow]

MANIFEST = REPO / "workflows" / "compiled" / "workflow.yaml"
STAGES = ("ingest", "silver", "train", "eval")
SOURCE = "synthetic://?rows=20000&seed=7&attack_share=0.02&days=2"


def manifest_images() -> dict[str, str]:
    """Template name → image, with the manifest's default image-registry/image-tag parameters filled in."""
    doc = yaml.safe_load(MANIFEST.read_text())
    params = {p["name"]: p.get("value", "") for p in doc["spec"]["arguments"]["parameters"]}
    out = {}
    for template in doc["spec"]["templates"]:
        image = (template.get("container") or {}).get("image")
        if image:
            for name in ("image-registry", "image-tag"):
                image = image.replace(f"{{{{workflow.parameters.{name}}}}}", params[name])
            out[template["name"]] = image
    return out


def output_keys(name: str) -> dict[str, str]:
    """``<template>/<artifact>`` → artifact key of this run, as the manifest names them."""
    doc = yaml.safe_load(MANIFEST.read_text())
    keys = {}
    for template in doc["spec"]["templates"]:
        for art in (template.get("outputs") or {}).get("artifacts") or []:
            keys[f"{template['name']}/{art['name']}"] = art["s3"]["key"].replace("{{workflow.name}}", name)
    return keys


@pytest.fixture(scope="module")
def docker_run(
    images: dict[str, BuiltImage],
    postgres: dict[str, str],
    mlflow_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("workflow-docker")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MINIO_", "MLFLOW_", "RUN_ID"))}
    env.update(postgres)
    env.update({"MLFLOW_TRACKING_URI": mlflow_server, "RUN_LOCAL_BACKOFF_SCALE": "0.01", "PG_PASSWORD": ""})
    cmd = [
        sys.executable,
        "-m",
        "workflows",
        "run-local",
        str(MANIFEST),
        "--runtime",
        "docker",
        "--workdir",
        str(tmp / "runs"),
        "--artifacts",
        str(tmp / "artifacts"),
        "-p",
        f"source={SOURCE}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    runs = list((tmp / "runs").glob("*/status.json"))
    assert len(runs) == 1, f"no status.json (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc, json.loads(runs[0].read_text()), tmp / "artifacts"


def test_the_manifest_references_the_images_this_tier_built(images: dict[str, BuiltImage]) -> None:
    assert manifest_images() == {stage: images[stage].tag for stage in STAGES}


def test_workflow_succeeds_with_every_task_in_its_container(docker_run: tuple) -> None:
    proc, status, _ = docker_run
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-4000:]}"
    assert status["phase"] == "Succeeded" and status["runtime"] == "docker"
    tasks = {c["displayName"]: c for c in status["root"]["children"]}
    assert {name: tasks[name]["phase"] for name in STAGES} == dict.fromkeys(STAGES, "Succeeded")
    for stage in STAGES:
        assert f"{stage}" in proc.stdout  # the argo-get-like tree names every step


def test_artifacts_land_under_the_manifest_keys(docker_run: tuple) -> None:
    _, status, artifacts = docker_run
    keys = output_keys(status["name"])
    assert keys, "the manifest declares no output artifacts"
    for ref, key in keys.items():
        assert (artifacts / key).is_file(), f"{ref}: {key} missing under {artifacts}"
    metrics = json.loads((artifacts / keys["eval/metrics"]).read_text())
    assert metrics["run_id"] == status["name"]
    assert metrics["gate"]["verdict"] == "passed"


def test_each_stage_is_audited_once_as_succeeded(docker_run: tuple, audit_db: Any) -> None:
    _, status, _ = docker_run
    with audit_db.cursor() as cur:
        cur.execute(
            "SELECT stage, status FROM stage_attempts WHERE run_id = %s AND status = 'SUCCEEDED'", (status["name"],)
        )
        assert sorted(cur.fetchall()) == sorted((s, "SUCCEEDED") for s in STAGES)
