"""templateDefaults merged into every template as Argo merges them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import yaml

from workflows.localargo.defaults import merge_template
from workflows.localargo.engine import RunOptions, run_workflow
from workflows.localargo.manifest import load_manifest

REPO = Path(__file__).resolve().parents[3]

DEFAULTS: dict[str, Any] = {
    "container": {
        "env": [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app", "key": "token"}}},
            {"name": "MODE", "value": "default"},
        ],
        "args": ["--from-defaults"],
    },
    "activeDeadlineSeconds": 60,
}


def test_env_merges_by_name_and_the_template_wins() -> None:
    template: dict[str, Any] = {
        "name": "work",
        "container": {
            "image": "python:3.11-slim",
            "env": [{"name": "MODE", "value": "own"}, {"name": "X", "value": "1"}],
        },
    }
    merged = merge_template(DEFAULTS, template)
    assert merged["container"]["env"] == [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app", "key": "token"}}},
        {"name": "MODE", "value": "own"},
        {"name": "X", "value": "1"},
    ]
    assert merged["container"]["image"] == "python:3.11-slim"
    assert merged["activeDeadlineSeconds"] == 60
    assert template["container"]["env"][0] == {"name": "MODE", "value": "own"}, "the template is not changed"


def test_a_list_without_merge_key_is_the_templates_and_scalars_are_overridden() -> None:
    template = {"name": "work", "activeDeadlineSeconds": 5, "container": {"image": "i", "args": ["--own"]}}
    merged = merge_template(DEFAULTS, template)
    assert merged["container"]["args"] == ["--own"]
    assert merged["activeDeadlineSeconds"] == 5


def test_a_dag_template_keeps_its_type() -> None:
    """Argo's Template.SetType: container fields of the defaults do not turn a dag into a container."""
    dag = {"name": "main", "dag": {"tasks": [{"name": "a", "template": "work"}]}}
    merged = merge_template(DEFAULTS, dag)
    assert "container" not in merged and merged["dag"] == dag["dag"]


def manifest(tmp_path: Path) -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "defaults-"},
        "spec": {
            "entrypoint": "main",
            "templateDefaults": {
                "container": {
                    "env": [
                        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app", "key": "token"}}},
                        {"name": "HOST", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "host"}}},
                        {"name": "MODE", "value": "default"},
                    ]
                }
            },
            "templates": [
                {"name": "main", "dag": {"tasks": [{"name": "show", "template": "show"}]}},
                {
                    "name": "show",
                    "container": {
                        "image": "python:3.11-slim",
                        "command": ["python", "-c"],
                        "args": [
                            "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
                            "('TOKEN', 'HOST', 'MODE', 'OWN')}))"
                        ],
                        "env": [{"name": "OWN", "value": "mine"}, {"name": "MODE", "value": "own"}],
                    },
                },
            ],
        },
    }
    path = tmp_path / "defaults.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_run_gets_the_defaults_environment(tmp_path: Path) -> None:
    (tmp_path / "local.env").write_text("TOKEN=test-token\nHOST=db.local\n")
    opts = RunOptions(
        manifest=manifest(tmp_path),
        workdir=tmp_path / "runs",
        artifacts=str(tmp_path / "artifacts"),
        env_file=tmp_path / "local.env",
    )
    outcome = run_workflow(opts, out=io.StringIO())
    assert outcome.phase == "Succeeded", outcome.message
    status = json.loads(outcome.status_path.read_text())
    (show,) = status["root"]["children"]
    seen = json.loads(Path(show["log"]).read_text().strip().splitlines()[-1])
    assert seen == {"TOKEN": "test-token", "HOST": "db.local", "MODE": "own", "OWN": "mine"}


def test_the_compiled_pipeline_gives_every_stage_the_shared_environment() -> None:
    """Every stage of the compiled workflow gets the settings and the four secrets; the dag stays a dag."""
    m = load_manifest(REPO / "workflows/compiled/workflow.yaml", {})
    assert "templateDefaults" not in m.spec
    assert "container" not in m.templates["pipeline"]
    for name in ("ingest", "silver", "train", "eval"):
        env = {e["name"]: e for e in m.templates[name]["container"]["env"]}
        assert env["STAGE_ATTEMPT"]["value"] == "{{retries}}"
        for secret in ("PG_USER", "PG_PASSWORD", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
            assert "secretKeyRef" in env[secret]["valueFrom"]
        for setting in ("PG_HOST", "MINIO_ENDPOINT", "MLFLOW_TRACKING_URI"):
            assert "configMapKeyRef" in env[setting]["valueFrom"]
