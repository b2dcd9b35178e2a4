"""Validate: the compiled manifests pass; each kind of mistake fails with a message naming the path.

Most tests run twice: ``installed`` validates from what the project installs alone (Hera's
Argo models and kubernetes-validate; the schema location points at an empty directory, as
on a fresh clone), ``vendored`` adds the Argo v4.1.2 schema and CRDs from ``../shared/argo``
and is skipped, with the reason in the summary, when that directory is absent.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.compile import COMPILED_DIR
from workflows.schemas import default_schemas_dir, hera_argo_version
from workflows.validate import Problem, validate_files

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
VENDORED = default_schemas_dir()
Doc = dict[str, Any]


def require_vendored() -> Path:
    """The vendored schema directory, or a skip that says it is missing (shown by ``-ra``)."""
    if not (VENDORED / "schema.json").is_file():
        pytest.skip(
            f"needs the vendored Argo v4.1.2 schema (shared/argo beside the repository): not found at {VENDORED}"
        )
    return VENDORED


@pytest.fixture(params=["installed", "vendored"], autouse=True)
def schemas(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: Any) -> str:
    """Point the schema location at an empty directory (a fresh clone) or at the vendored one."""
    if request.param == "vendored":
        monkeypatch.setenv("ARGO_SCHEMAS_DIR", str(require_vendored()))
    else:
        monkeypatch.setenv("ARGO_SCHEMAS_DIR", str(tmp_path_factory.mktemp("no-argo-schemas")))
    return str(request.param)


@pytest.fixture(scope="module")
def workflow() -> Doc:
    return dict(yaml.safe_load((COMPILED_DIR / "workflow.yaml").read_text()))


def write(tmp_path: Path, *docs: Any, name: str = "manifest.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def messages(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


def test_compiled_and_k8s_manifests_are_valid() -> None:
    files = (
        sorted(COMPILED_DIR.glob("*.yaml")) + sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("argo-controller/*.yaml"))
    )
    assert len(files) >= 8
    assert messages(validate_files(files)) == []


def test_cli_exit_codes(tmp_path: Path, workflow: Doc, schemas: str) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "workflows", "validate", *map(str, COMPILED_DIR.glob("*.yaml"))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "OK: 5 file(s) valid" in ok.stderr
    if schemas == "installed":  # says what it checked against when the vendored schema is absent
        assert f"checked against Hera's models of Argo {hera_argo_version()} only" in ok.stderr
    bad = copy.deepcopy(workflow)
    bad["spec"]["templates"][1]["container"]["image"] = "registry.local/cybersec-mlops-ingest:latest"
    path = write(tmp_path, bad)
    fail = subprocess.run(
        [sys.executable, "-m", "workflows", "validate", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fail.returncode == 2
    assert f"{path}[doc 0] $.spec.templates[1].container.image: image" in fail.stderr
    assert "INVALID: 1 problem(s)" in fail.stderr


def stage(doc: Doc, index: int = 1) -> Doc:
    """Template ``index`` (1..4: ingest, silver, train, eval)."""
    return dict(doc["spec"]["templates"][index])


def env_append(doc: Doc) -> None:
    stage(doc)["container"]["env"].append({"name": "PG_PASSWORD", "value": "hunter2"})


def set_in(path: list[Any], value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        target: Any = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def delete(path: list[Any]) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        target: Any = doc
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return mutate


T1 = ["spec", "templates", 1]
TASKS = ["spec", "templates", 0, "dag", "tasks"]
# (case, mutation of the compiled Workflow, JSON path the message must name, text it must contain)
NEGATIVE = [
    (
        "misspelled field",
        set_in([*T1, "container", "imagePulPolicy"], "Always"),
        "$.spec.templates[1].container.imagePulPolicy",
        "unknown field 'imagePulPolicy' (did you mean 'imagePullPolicy'?)",
    ),
    (
        "misspelled top-level field",
        set_in(["spec", "entrypont"], "x"),
        "$.spec.entrypont",
        "did you mean 'entrypoint'?",
    ),
    (
        "latest image",
        set_in([*T1, "container", "image"], "registry.local/cybersec-mlops-ingest:latest"),
        "$.spec.templates[1].container.image",
        "never latest",
    ),
    (
        "untagged image",
        set_in([*T1, "container", "image"], "registry.local/cybersec-mlops-ingest"),
        "$.spec.templates[1].container.image",
        "has no tag",
    ),
    (
        "image-tag parameter defaulting to latest",
        set_in(["spec", "arguments", "parameters", -1, "value"], "latest"),
        "$.spec.templates[1].container.image",
        "resolves to tag 'latest'",
    ),
    (
        "inline password",
        env_append,
        "$.spec.templates[1].container.env[2].value",
        "env PG_PASSWORD looks like a credential but has an inline value",
    ),
    (
        "secret from a ConfigMap",
        set_in(
            ["spec", "templateDefaults", "container", "env", 9, "valueFrom"],
            {"configMapKeyRef": {"name": "c", "key": "k"}},
        ),
        "$.spec.templateDefaults.container.env[9]",
        "take it from valueFrom.secretKeyRef",
    ),
    (
        "missing retryStrategy",
        delete([*T1, "retryStrategy"]),
        "$.spec.templates[1].retryStrategy",
        "template 'ingest' has no retryStrategy",
    ),
    (
        "memoized and retried",
        set_in([*T1, "memoize"], {"key": "ingest-x", "cache": {"configMap": {"name": "c"}}}),
        "$.spec.templates[1].retryStrategy",
        "is memoized and retried",
    ),
    (
        "retrying every failure",
        set_in([*T1, "retryStrategy", "expression"], "true"),
        "$.spec.templates[1].retryStrategy.expression",
        "must retry exit 75 only",
    ),
    (
        "cpu: 1 integer quirk",
        set_in([*T1, "container", "resources", "limits", "cpu"], 1),
        "$.spec.templates[1].container.resources.limits.cpu",
        "write it as a string: '1'",
    ),
    (
        "no memory limit",
        delete([*T1, "container", "resources", "limits", "memory"]),
        "$.spec.templates[1].container.resources.limits",
        "resources.limits.memory is not set",
    ),
    (
        "root pod",
        set_in([*T1, "securityContext", "runAsNonRoot"], False),
        "$.spec.templates[1].securityContext.runAsNonRoot",
        "runAsNonRoot must be true",
    ),
    (
        "privilege escalation",
        set_in([*T1, "container", "securityContext", "allowPrivilegeEscalation"], True),
        "$.spec.templates[1].container.securityContext.allowPrivilegeEscalation",
        "must be false",
    ),
    (
        "writable root filesystem",
        delete([*T1, "container", "securityContext", "readOnlyRootFilesystem"]),
        "$.spec.templates[1].container.securityContext.readOnlyRootFilesystem",
        "must be true",
    ),
    (
        "capabilities kept",
        set_in([*T1, "container", "securityContext", "capabilities"], {"drop": ["NET_RAW"]}),
        "$.spec.templates[1].container.securityContext.capabilities.drop",
        "must include ALL",
    ),
    (
        "no seccomp",
        lambda doc: (
            delete([*T1, "securityContext", "seccompProfile"])(doc),
            delete([*T1, "container", "securityContext", "seccompProfile"])(doc),
        ),
        "$.spec.templates[1].securityContext.seccompProfile",
        "RuntimeDefault",
    ),
    (
        "input parameter typo",
        set_in([*T1, "container", "args", 2], "--source={{inputs.parameters.sorce}}"),
        "$.spec.templates[1].container.args[2]",
        "template 'ingest' has no input parameter 'sorce'",
    ),
    (
        "workflow parameter typo",
        set_in([*TASKS, 0, "arguments", "parameters", 0, "value"], "{{workflow.parameters.sourc}}"),
        "$.spec.templates[0].dag.tasks[0].arguments.parameters[0].value",
        "no workflow parameter 'sourc'",
    ),
    (
        "task output typo",
        set_in([*TASKS, 3, "arguments", "artifacts", 2, "from"], "{{tasks.train.outputs.artifacts.modle}}"),
        "$.spec.templates[0].dag.tasks[3].arguments.artifacts[2].from",
        "task 'train' (template 'train') has no output artifact 'modle'",
    ),
    (
        "depends on a missing task",
        set_in([*TASKS, 1, "depends"], "ingst"),
        "$.spec.templates[0].dag.tasks[1].depends",
        "depends on 'ingst', which is not a task of this DAG",
    ),
    (
        "missing template",
        set_in([*TASKS, 2, "template"], "trian"),
        "$.spec.templates[0].dag.tasks[2].template",
        "runs template 'trian', which does not exist",
    ),
    (
        "input parameter not supplied",
        delete([*TASKS, 0, "arguments", "parameters", 0]),
        "$.spec.templates[0].dag.tasks[0].arguments",
        "does not supply input parameter 'source' of template 'ingest'",
    ),
    (
        "wrong type",
        set_in(["spec", "activeDeadlineSeconds"], "soon"),
        "$.spec.activeDeadlineSeconds",
        "is not of type 'integer'",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "path", "message"), NEGATIVE, ids=[c[0] for c in NEGATIVE])
def test_mistake_fails_naming_the_path(
    tmp_path: Path, workflow: Doc, case: str, mutate: Callable[[Doc], None], path: str, message: str
) -> None:
    doc = copy.deepcopy(workflow)
    mutate(doc)
    file = write(tmp_path, doc)
    found = messages(validate_files([file]))
    expected = f"{file}[doc 0] {path}: "
    assert any(m.startswith(expected) and message in m for m in found), f"{case}: {found}"


def test_document_index_counts_within_a_multi_document_file(tmp_path: Path, workflow: Doc) -> None:
    config = yaml.safe_load((K8S / "config.yaml").read_text())
    bad = copy.deepcopy(workflow)
    bad["spec"]["templates"][2]["container"]["image"] = "x:latest"
    found = messages(validate_files([write(tmp_path, config, workflow, bad)]))
    assert len(found) == 1 and "[doc 2] $.spec.templates[2].container.image" in found[0]


CORE_CASES = [
    (
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"PG_PASSWORD": "x"}},
        "$.data.PG_PASSWORD",
        "looks like a credential",
    ),
    (
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "x"}},
        "$.data",
        "must not be committed",
    ),
    (
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "dta": {}},
        "$.dta",
        "unknown field 'dta' (did you mean 'data'?)",
    ),
    ({"apiVersion": "v1", "kind": "Gadget", "metadata": {"name": "g"}}, "$.kind", "no Kubernetes"),
    ({"apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {"name": "s"}}, "$.kind", "is not supported"),
    (["not", "an", "object"], "$", "not a Kubernetes object"),
]


@pytest.mark.parametrize(("doc", "path", "message"), CORE_CASES)
def test_core_and_unknown_kinds(tmp_path: Path, doc: Any, path: str, message: str) -> None:
    found = messages(validate_files([write(tmp_path, doc)]))
    assert any(f"[doc 0] {path}: " in m and message in m for m in found), found


def test_job_rules_apply_to_core_pod_specs(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((K8S / "job-submitter.yaml").read_text()))
    job = next(d for d in docs if d["kind"] == "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "registry.local/cybersec-mlops-submitter:latest"
    container["env"].append({"name": "ARGO_TOKEN", "value": "abc"})
    del container["securityContext"]["readOnlyRootFilesystem"]
    found = messages(validate_files([write(tmp_path, job)]))
    base = "$.spec.template.spec.containers[0]"
    token = len(container["env"]) - 1  # the ARGO_TOKEN appended above
    for path in (f"{base}.image", f"{base}.env[{token}].value", f"{base}.securityContext.readOnlyRootFilesystem"):
        assert any(f"[doc 0] {path}: " in m for m in found), (path, found)


def test_kustomization_resources_must_exist(tmp_path: Path) -> None:
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["present.yaml", "absent.yaml"],
    }
    (tmp_path / "present.yaml").write_text("")
    found = messages(validate_files([write(tmp_path, kustomization, name="kustomization.yaml")]))
    assert len(found) == 1 and "$.resources[1]: resource 'absent.yaml' not found" in found[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [("a: [unclosed\n", "invalid YAML: line 2, column 1"), ("", "no YAML documents in file")],
)
def test_unreadable_yaml(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    assert any(message in m for m in messages(validate_files([path])))


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    found = messages(validate_files([tmp_path / "absent.yaml"]))
    assert len(found) == 1 and "cannot read" in found[0]


def test_hera_models_are_those_of_the_cluster_argo() -> None:
    assert hera_argo_version() == "v4.0.5"  # README: the cluster runs Argo v4.0.5


def test_int_or_string_quirk_of_the_vendored_schema(tmp_path: Path, workflow: Doc, schemas: str) -> None:
    """``limit: 3`` is valid for Argo (IntOrString); only the vendored schema.json types it as string."""
    doc = copy.deepcopy(workflow)
    doc["spec"]["templates"][1]["retryStrategy"]["limit"] = 3
    found = messages(validate_files([write(tmp_path, doc)]))
    if schemas == "installed":
        assert found == []
    else:
        assert any("$.spec.templates[1].retryStrategy.limit: " in m and "IntOrString as string" in m for m in found)


def test_schema_dir_override_and_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflows",
            "validate",
            "--schemas",
            str(tmp_path),
            str(COMPILED_DIR / "workflow.yaml"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert f"{tmp_path}: missing schema.json" in result.stderr and "ARGO_SCHEMAS_DIR" in result.stderr


def test_schema_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARGO_SCHEMAS_DIR", str(tmp_path))
    assert default_schemas_dir() == tmp_path


def test_cron_workflow_is_checked_through_its_workflow_spec(tmp_path: Path, workflow: Doc) -> None:
    cron: Doc = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "nightly"},
        "spec": {"schedules": ["0 2 * * *"], "workflowSpec": copy.deepcopy(workflow["spec"])},
    }
    assert messages(validate_files([write(tmp_path, cron)])) == []
    cron["spec"]["schedule"] = "0 2 * * *"  # Argo v4 has only `schedules`
    del cron["spec"]["workflowSpec"]["templates"][3]["retryStrategy"]
    found = messages(validate_files([write(tmp_path, cron)]))
    assert any("$.spec.schedule: unknown field 'schedule' (did you mean 'schedules'?)" in m for m in found), found
    assert any("$.spec.workflowSpec.templates[3].retryStrategy: template 'train'" in m for m in found), found
