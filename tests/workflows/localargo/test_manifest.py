"""Loading manifests: names, parameters, and refusing — by field — what the executor does not run."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.localargo.errors import ManifestError, Unsupported
from workflows.localargo.manifest import load_manifest, parse_overrides

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).parent / "fixtures"

BASE: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "base-"},
    "spec": {
        "entrypoint": "main",
        "arguments": {
            "parameters": [
                {"name": "size", "value": "small", "enum": ["small", "large"]},
                {"name": "label", "value": "x"},
            ]
        },
        "templates": [
            {
                "name": "main",
                "dag": {
                    "tasks": [{"name": "a", "template": "work"}, {"name": "b", "template": "work", "depends": "a"}]
                },
            },
            {"name": "work", "container": {"image": "python:3.11-slim", "command": ["python", "-c", "pass"]}},
        ],
    },
}


def write(tmp_path: Path, doc: dict[str, Any], name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def mutate(path: str, value: Any) -> dict[str, Any]:
    """BASE with ``value`` set at a dotted path (``templates.0.container.x``; list items by index)."""
    doc = copy.deepcopy(BASE)
    node: Any = doc["spec"]
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[keys[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (
            "templates.0.dag.tasks.0.withSequence",
            {"count": "2"},
            r"spec.templates\[main\].dag.tasks\[a\].withSequence: withSequence",
        ),
        ("templates.0.dag.tasks.1.withSequence", {"count": "1"}, r"tasks\[b\].withSequence: withSequence"),
        ("templates.0.dag.tasks.0.onExit", "work", r"tasks\[a\].onExit: exit handlers"),
        ("templates.0.dag.tasks.0.templateRef", {"name": "x", "template": "y"}, r"tasks\[a\].templateRef"),
        ("onExit", "work", r"spec.onExit: exit handlers"),
        ("templates.1.steps", [[{"name": "s", "template": "work"}]], r"spec.templates\[work\].steps: steps templates"),
        ("templates.1.resource", {"action": "create"}, r"templates\[work\].resource: resource templates"),
        ("templates.1.suspend", {}, r"templates\[work\].suspend"),
        ("templates.1.container.envFrom", [{"secretRef": {"name": "s"}}], r"container.envFrom"),
        ("templates.1.container.comand", ["python"], r"container.comand: unknown field"),
        (
            "templates.1.memoize",
            {"key": "k", "cache": {"configMap": {"name": "c", "key": "k"}}},
            r"templates\[work\].memoize.cache.configMap.key: unknown field",
        ),
        (
            "templates.1.outputs",
            {"artifacts": [{"name": "o", "path": "/tmp/o", "http": {"url": "http://x"}}]},
            r"outputs.artifacts\[o\].http: http artifacts are not supported",
        ),
        (
            "templates.1.outputs",
            {"artifacts": [{"name": "o", "path": "/tmp/o", "archive": {"zip": {}}}]},
            r"archive.zip: zip archives",
        ),
        (
            "templates.1.outputs",
            {"parameters": [{"name": "p", "valueFrom": {"expression": "1"}}]},
            r"valueFrom.expression",
        ),
        ("templates.1.volumes", [{"name": "v", "hostPath": {"path": "/"}}], r"volumes\[v\].hostPath: hostPath volumes"),
        ("templateDefaults", {"timeout": "30s"}, r"spec.templates\[work\].timeout: template timeout"),
    ],
)
def test_refuses_unsupported_fields_by_path(tmp_path: Path, path: str, value: Any, field: str) -> None:
    with pytest.raises(Unsupported, match=field):
        load_manifest(write(tmp_path, mutate(path, value)), {})


def test_lists_every_refused_field_at_once(tmp_path: Path) -> None:
    doc = mutate("onExit", "work")
    doc["spec"]["templates"][0]["dag"]["tasks"][0]["withSequence"] = {"count": "1"}
    with pytest.raises(Unsupported, match=r"refuses 2 field\(s\)") as info:
        load_manifest(write(tmp_path, doc), {})
    assert "spec.onExit" in str(info.value) and "tasks[a].withSequence" in str(info.value)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("templates.0.dag.tasks.1.depends", "a && nope", r"depends on 'nope', which is not a task"),
        ("templates.0.dag.tasks.1.template", "missing", r"no template named 'missing'"),
        ("entrypoint", "nowhere", r"spec.entrypoint 'nowhere' is not a template"),
        ("templates.1.script", {"image": "x", "source": "pass", "command": ["python"]}, r"needs exactly one of"),
        ("templates.0.dag.target", "b nope", r"dag.target: no task named 'nope'"),
    ],
)
def test_invalid_manifests(tmp_path: Path, path: str, value: Any, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        load_manifest(write(tmp_path, mutate(path, value)), {})


def test_cluster_only_fields_are_ignored_and_reported(tmp_path: Path) -> None:
    doc = mutate("podGC", {"strategy": "OnPodSuccess", "deleteDelayDuration": "30s"})
    doc["spec"]["templates"][1]["container"]["resources"] = {"limits": {"cpu": "1"}}
    doc["spec"]["artifactRepositoryRef"] = {"configMap": "artifact-repositories", "key": "minio"}
    m = load_manifest(write(tmp_path, doc), {})
    ignored = dict(m.ignored)
    assert "spec.podGC.deleteDelayDuration" in ignored and "spec.podGC" not in ignored  # podGC itself runs
    assert "spec.templates[work].container.resources" in ignored
    assert "spec.artifactRepositoryRef" in ignored


def test_generate_name_gets_five_random_lowercase_characters(tmp_path: Path) -> None:
    names = {load_manifest(write(tmp_path, BASE), {}).name for _ in range(5)}
    assert len(names) == 5
    assert all(re.fullmatch(r"base-[a-z0-9]{5}", n) for n in names)


def test_workflow_template_runs_like_argo_submit_from(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["kind"] = "WorkflowTemplate"
    doc["metadata"] = {"name": "my-template", "namespace": "argo"}
    m = load_manifest(write(tmp_path, doc), {})
    assert m.kind == "WorkflowTemplate"
    assert re.fullmatch(r"my-template-[a-z0-9]{5}", m.name)
    assert m.namespace == "argo"


def test_parameters_overrides_and_enum(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    assert load_manifest(path, {}).parameters == {"size": "small", "label": "x"}
    assert load_manifest(path, {"size": "large", "label": "a=b"}).parameters == {"size": "large", "label": "a=b"}
    with pytest.raises(ManifestError, match=r"-p size=huge: not one of small, large"):
        load_manifest(path, {"size": "huge"})
    with pytest.raises(ManifestError, match=r"-p sise: not a parameter .*\(parameters: label, size\)"):
        load_manifest(path, {"sise": "large"})


def test_parameter_without_value_needs_p(tmp_path: Path) -> None:
    doc = mutate("arguments", {"parameters": [{"name": "source"}]})
    with pytest.raises(ManifestError, match=r"parameters\[source\].value is required \(pass -p source=...\)"):
        load_manifest(write(tmp_path, doc), {})
    assert load_manifest(write(tmp_path, doc), {"source": "s3://b/k"}).parameters == {"source": "s3://b/k"}


def test_parse_overrides() -> None:
    assert parse_overrides(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ManifestError, match="expected name=value"):
        parse_overrides(["novalue"])


def test_one_workflow_per_file(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([BASE, BASE]))
    with pytest.raises(ManifestError, match=r"exactly one Workflow, WorkflowTemplate or CronWorkflow"):
        load_manifest(path, {})


def test_every_fixture_loads() -> None:
    for path in sorted(FIXTURES.glob("*.yaml")):
        assert load_manifest(path, {}).templates, path


def test_cli_exit_code_2_names_the_refused_field(tmp_path: Path) -> None:
    path = write(tmp_path, mutate("templates.1.steps", []))
    proc = subprocess.run(
        [sys.executable, "-m", "workflows", "run-local", str(path), "--workdir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "spec.templates[work].steps: steps templates are not supported" in proc.stderr


def test_run_local_help_documents_the_path_mapping() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "workflows", "run-local", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "/tmp/inputs and /tmp/outputs" in proc.stdout
    assert "secretKeyRef" in proc.stdout


def test_unsupported_retry_policy_is_refused_before_running(tmp_path: Path) -> None:
    doc = mutate("templates.1.retryStrategy", {"limit": 2, "retryPolicy": "OnTransientError"})
    with pytest.raises(Unsupported, match=r"templates\[work\].retryStrategy.retryPolicy: 'OnTransientError'"):
        load_manifest(write(tmp_path, doc), {})


LATE: dict[str, Any] = {"name": "late", "container": {"image": "python:3.11-slim", "command": ["python", "-c", "pass"]}}


def with_late(change: dict[str, Any], when: str | None = None) -> dict[str, Any]:
    """BASE whose task ``b`` (after ``a``) runs template ``late`` = LATE updated with ``change``."""
    doc = copy.deepcopy(BASE)
    doc["spec"]["templates"].append({**copy.deepcopy(LATE), **change})
    task = doc["spec"]["templates"][0]["dag"]["tasks"][1]
    task["template"] = "late"
    if when:
        task["when"] = when
    return doc


REFUSED_BY_VALUE = [
    (
        {"container": {**LATE["container"], "args": ["{{=sprig.upper('x')}}"]}},
        None,
        "spec.templates[late].container.args[0]: expression tag",
    ),
    (
        {"outputs": {"parameters": [{"name": "x", "valueFrom": {"path": "/var/run/x"}}]}},
        None,
        "spec.templates[late].outputs.parameters[x].valueFrom.path: /var/run/x is outside",
    ),
    (
        {"inputs": {"artifacts": [{"name": "d", "path": "{{inputs.parameters.dir}}/d", "raw": {"data": "x"}}]}},
        None,
        "spec.templates[late].inputs.artifacts[d].path",
    ),
    ({"container": {"image": "python:3.11-slim"}}, None, "spec.templates[late].container.command: the subprocess"),
    (
        {"container": None, "script": {"image": "ruby", "command": ["ruby"], "source": "puts 1"}},
        None,
        "spec.templates[late].script.command: ['ruby'] is not a supported script language",
    ),
    (
        {"retryStrategy": {"limit": "1", "expression": "lastRetry.exitcode == 75"}},
        None,
        "spec.templates[late].retryStrategy.expression: unknown variable 'lastRetry.exitcode'",
    ),
    ({}, "{{tasks.a.exitCode}} + 1 > 2", "spec.templates[main].dag.tasks[b].when: cannot parse"),
    (
        {
            "container": {
                **LATE["container"],
                "command": ["sh", "-c", "grep /mnt/vol /proc/mounts"],
                "volumeMounts": [{"name": "v", "mountPath": "/mnt/vol"}],
            },
            "volumes": [{"name": "v", "emptyDir": {}}],
        },
        None,
        "spec.templates[late].container.command[2]: a mapped container path appears inside this value",
    ),
    (
        {"container": None, "script": {"image": "python", "command": ["python"], "source": "open('/tmp/outputs/x')"}},
        None,
        "spec.templates[late].script.source: the script mentions a mapped container path",
    ),
    (
        {
            "container": {
                **LATE["container"],
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            }
        },
        None,
        "spec.templates[late].container.env[N].valueFrom.fieldRef: 'spec.nodeName' is not known locally",
    ),
]


@pytest.mark.parametrize(("change", "when", "message"), REFUSED_BY_VALUE)
def test_value_refusals_are_found_when_loading(
    tmp_path: Path, change: dict[str, Any], when: str | None, message: str
) -> None:
    doc = with_late(change, when)
    doc["spec"]["templates"][-1] = {k: v for k, v in doc["spec"]["templates"][-1].items() if v is not None}
    with pytest.raises(Unsupported) as info:
        load_manifest(write(tmp_path, doc), {}, runtime="subprocess")
    assert message in str(info.value)


def test_refusals_exit_2_before_any_task_runs(tmp_path: Path) -> None:
    doc = with_late({"outputs": {"parameters": [{"name": "x", "valueFrom": {"path": "/var/run/x"}}]}})
    doc["spec"]["templates"][1]["container"]["args"] = ["{{=sprig.upper('x')}}"]  # task a's template too
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflows",
            "run-local",
            str(write(tmp_path, doc)),
            "--workdir",
            str(tmp_path / "runs"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "refuses 2 field(s)" in proc.stderr
    assert "spec.templates[work].container.args[0]: expression tag" in proc.stderr
    assert "spec.templates[late].outputs.parameters[x].valueFrom.path" in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_docker_runtime_maps_any_path(tmp_path: Path) -> None:
    doc = with_late({"outputs": {"parameters": [{"name": "x", "valueFrom": {"path": "/var/run/x"}}]}})
    assert load_manifest(write(tmp_path, doc), {}, runtime="docker").templates["late"]


def _cron(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "nightly", "labels": {"team": "soc"}},
        "spec": {"schedules": ["0 1 * * *"], "timezone": "UTC", "concurrencyPolicy": "Forbid", "workflowSpec": spec},
    }


def test_cron_workflow_runs_its_workflow_spec_once(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, _cron(copy.deepcopy(BASE["spec"]))), {"size": "large"})
    assert m.kind == "Workflow" and re.fullmatch(r"nightly-[a-z0-9]{5}", m.name)
    assert m.parameters == {"size": "large", "label": "x"} and m.labels == {"team": "soc"}


def test_workflow_template_ref_is_resolved_beside_the_manifest(tmp_path: Path) -> None:
    """Argo's merge: the template's spec, the referencing workflow's arguments override by name."""
    template = copy.deepcopy(BASE) | {"kind": "WorkflowTemplate", "metadata": {"name": "train"}}
    write(tmp_path, template, "template.yaml")
    ref = {"workflowTemplateRef": {"name": "train"}, "arguments": {"parameters": [{"name": "label", "value": "y"}]}}
    m = load_manifest(write(tmp_path, _cron(ref), "cron.yaml"), {})
    assert m.parameters == {"size": "small", "label": "y"} and set(m.templates) == {"main", "work"}
    missing = {"workflowTemplateRef": {"name": "absent"}}
    with pytest.raises(ManifestError, match="no WorkflowTemplate of that name"):
        load_manifest(write(tmp_path, _cron(missing), "cron2.yaml"), {})
    unknown = ref | {"arguments": {"parameters": [{"name": "nope", "value": "1"}]}}
    with pytest.raises(ManifestError, match=r"\['nope'\] are not parameters"):
        load_manifest(write(tmp_path, _cron(unknown), "cron3.yaml"), {})


def test_compiled_cron_workflows_load() -> None:
    for name in ("cron-scoring.yaml", "cron-retrain.yaml"):
        m = load_manifest(REPO / "workflows" / "compiled" / name, {})
        assert m.kind == "Workflow" and m.parameters["source"].startswith("s3://")
