"""k8s/: schema-valid core manifests, least-privilege RBAC, image tags from the bake file, no credentials."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.images import load_bake
from workflows.pipeline import CONFIG_KEYS, CONFIG_MAP
from workflows.schemas import check_core

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
COMPILED = REPO / "workflows" / "compiled"
CORE_FILES = ["config.yaml", "artifact-repositories.yaml", "workflow-rbac.yaml", "job-submitter.yaml"]
SECRETS = {"cybersec-mlops-postgres": {"username", "password"}, "cybersec-mlops-minio": {"accesskey", "secretkey"}}


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    found = {}
    for path in K8S.glob("*.yaml"):
        for doc in docs(path):
            if doc["kind"] == kind:
                found[doc["metadata"]["name"]] = doc
    return found


def walk(node: Any, path: str = "$") -> Iterator[tuple[str, Any, Any]]:
    """(path, key, value) of every mapping entry, recursively."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from walk(item, f"{path}[{index}]")


@pytest.mark.parametrize("name", CORE_FILES)
def test_core_manifests_pass_kubernetes_validate_strict(name: str) -> None:
    for index, doc in enumerate(docs(K8S / name)):
        assert check_core(doc) == [], f"{name}[doc {index}]"


def test_kustomization_lists_every_manifest_and_the_template_copy_is_current() -> None:
    kustomization = docs(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    for name in (
        "workflow-template.yaml",
        "workflow-template-partitioned.yaml",
        "cron-scoring.yaml",
        "cron-retrain.yaml",
    ):
        assert (K8S / name).read_text() == (COMPILED / name).read_text(), name
    for subject in by_kind("RoleBinding").values():
        assert {s["namespace"] for s in subject["subjects"]} == {kustomization["namespace"]}


def rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_roles_grant_only_what_each_identity_uses() -> None:
    roles = by_kind("Role")
    # submit (any mode, see tests/workflows/test_submit.py): POST workflow (create), GET it while following
    # (get), PUT .../stop (the Argo Server gets it and patches spec.shutdown). No workflowtemplates: the
    # Argo Server resolves a workflowTemplateRef through its own informer and ServiceAccount.
    assert rules(roles["cybersec-mlops-submitter"]) == {("argoproj.io", "workflows"): {"create", "get", "patch"}}
    # The Argo executor in each workflow pod reports outputs as WorkflowTaskResults.
    assert rules(roles["cybersec-mlops-workflow"]) == {("argoproj.io", "workflowtaskresults"): {"create", "patch"}}
    assert not by_kind("ClusterRole") and not by_kind("ClusterRoleBinding")
    for role in roles.values():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], role["metadata"]["name"]


def test_role_bindings_tie_each_role_to_the_service_account_that_runs() -> None:
    bindings = by_kind("RoleBinding")
    accounts = set(by_kind("ServiceAccount"))
    for name, binding in bindings.items():
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert [s["name"] for s in binding["subjects"]] == [name]
        assert name in accounts
    job = by_kind("Job")["cybersec-mlops-submit"]
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "cybersec-mlops-submitter"
    workflow = docs(COMPILED / "workflow.yaml")[0]
    assert workflow["spec"]["serviceAccountName"] == "cybersec-mlops-workflow"


def test_both_service_accounts_pull_with_the_optional_registry_secret() -> None:
    """A private registry needs only `kubectl create secret docker-registry cybersec-mlops-registry`."""
    accounts = by_kind("ServiceAccount")
    assert set(accounts) == {"cybersec-mlops-submitter", "cybersec-mlops-workflow"}
    for name, account in accounts.items():
        assert account.get("imagePullSecrets") == [{"name": "cybersec-mlops-registry"}], name
    pod = by_kind("Job")["cybersec-mlops-submit"]["spec"]["template"]["spec"]
    assert "imagePullSecrets" not in pod, "the ServiceAccount carries it, so it is named in one place"


def test_image_tags_agree_with_the_bake_file() -> None:
    bake = load_bake()
    job = by_kind("Job")["cybersec-mlops-submit"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == bake.image("submitter")
    for name in ("workflow.yaml", "workflow-template.yaml", "workflow-template-partitioned.yaml"):
        params = {p["name"]: p["value"] for p in docs(COMPILED / name)[0]["spec"]["arguments"]["parameters"]}
        assert (params["image-registry"], params["image-tag"]) == (bake.registry, bake.tag)


def test_job_is_a_one_shot_hardened_submitter() -> None:
    job = by_kind("Job")["cybersec-mlops-submit"]
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert spec["ttlSecondsAfterFinished"] > 0
    (container,) = pod["containers"]
    command = container["command"]
    assert command[:3] == ["python", "-m", "workflows"]
    assert {"submit", "--wait", "--from-template", "--stop-on-timeout"} <= set(command)
    timeout = float(command[command.index("--timeout") + 1])
    assert spec["activeDeadlineSeconds"] > timeout, "the submitter must time out (and stop the workflow) first"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {e["name"] for e in container["env"]} >= {"ARGO_SERVER", "ARGO_NAMESPACE"}


def test_submitter_trusts_the_argo_server_ca_from_an_optional_config_map() -> None:
    """ConfigMap argo-server-ca (key ca.crt) is mounted if it exists, and ARGO_CA_FILE points at it."""
    pod = by_kind("Job")["cybersec-mlops-submit"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volume = next(v for v in pod["volumes"] if v.get("configMap", {}).get("name") == "argo-server-ca")
    assert volume["configMap"]["optional"] is True, "the Job must start without the ConfigMap"
    (item,) = volume["configMap"]["items"]
    assert item["key"] == "ca.crt"
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ARGO_CA_FILE"] == f"{mount['mountPath']}/{item['path']}" == "/etc/argo-server-ca/ca.crt"
    assert by_kind("ConfigMap")["cybersec-mlops-config"]["data"]["ARGO_INSECURE_SKIP_VERIFY"] == "false"


def references(kind: str) -> set[tuple[str, str]]:
    """(name, key) of every configMapKeyRef/secretKeyRef in k8s/ and the compiled workflow."""
    found = set()
    for path in [*K8S.glob("*.yaml"), *COMPILED.glob("*.yaml")]:
        for doc in docs(path):
            for _, key, value in walk(doc):
                if key == kind:
                    found.add((value["name"], value["key"]))
    return found


def test_config_map_holds_every_key_the_pods_read() -> None:
    config = by_kind("ConfigMap")["cybersec-mlops-config"]["data"]
    refs = references("configMapKeyRef")
    assert {name for name, _ in refs} == {"cybersec-mlops-config"}
    assert {key for _, key in refs} <= set(config)
    assert all(isinstance(v, str) for v in config.values())


def test_the_config_map_holds_every_setting_the_stages_read() -> None:
    """The keys the workflows name (templateDefaults, once per manifest) are the settings the stages read."""
    data = by_kind("ConfigMap")[CONFIG_MAP]["data"]
    assert set(CONFIG_KEYS) <= set(data), f"missing: {set(CONFIG_KEYS) - set(data)}"
    settings = (REPO / "stages" / "common" / "config.py").read_text()
    assert [key for key in CONFIG_KEYS if f'"{key}"' not in settings] == [], "keys stages/common/config.py never reads"
    for name in ("workflow-template.yaml", "workflow-template-partitioned.yaml", "cron-scoring.yaml"):
        doc = docs(COMPILED / name)[0]
        spec = doc["spec"].get("workflowSpec") or doc["spec"]
        named = [
            e["valueFrom"]["configMapKeyRef"]
            for e in spec["templateDefaults"]["container"]["env"]
            if "configMapKeyRef" in e.get("valueFrom", {})
        ]
        assert named == [{"name": CONFIG_MAP, "key": key} for key in CONFIG_KEYS], name


def test_secrets_are_referenced_by_the_documented_names_and_keys_only() -> None:
    refs = references("secretKeyRef")
    repository = yaml.safe_load(by_kind("ConfigMap")["artifact-repositories"]["data"]["minio"])["s3"]
    for field in ("accessKeySecret", "secretKeySecret"):
        refs.add((repository[field]["name"], repository[field]["key"]))
    documented = {(name, key) for name, keys in SECRETS.items() for key in keys}
    assert refs == documented


def test_artifact_repository_is_the_one_the_workflow_names() -> None:
    repository = by_kind("ConfigMap")["artifact-repositories"]
    s3 = yaml.safe_load(repository["data"]["minio"])["s3"]
    assert s3["bucket"] == "cybersec-mlops" and s3["endpoint"] and "://" not in s3["endpoint"]
    workflow = docs(COMPILED / "workflow.yaml")[0]
    assert workflow["spec"]["artifactRepositoryRef"] == {"configMap": "artifact-repositories", "key": "minio"}


CREDENTIAL_KEY = re.compile(r"pass(word|wd)?$|secret(key)?$|token$|access_?key$|api_?key$|private_?key$", re.I)
CREDENTIAL_TEXT = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"minioadmin|changeme|hunter2", re.I),
    re.compile(r"(postgres(ql)?|mysql)://[^\s/:@]+:[^\s/@]+@", re.I),  # URL with user:password
    re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."),  # JWT / ServiceAccount token
]


def holds_value(value: Any) -> bool:
    """A string or number (a reference is a mapping; a flag like automountServiceAccountToken is a bool)."""
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


SCANNED = sorted([*K8S.glob("*.yaml"), *COMPILED.glob("*.yaml")])


@pytest.mark.parametrize("path", SCANNED, ids=[f"{p.parent.name}/{p.name}" for p in SCANNED])
def test_no_credential_values(path: Path) -> None:
    text = path.read_text()
    for pattern in CREDENTIAL_TEXT:
        assert not pattern.search(text), f"{path}: {pattern.pattern}"
    for doc in docs(path):
        assert doc["kind"] != "Secret", f"{path}: Secrets are created out of band, never committed"
        for where, key, value in walk(doc):
            if isinstance(key, str) and CREDENTIAL_KEY.search(key):
                assert not holds_value(value), f"{path} {where}: a credential-named field holds a value"


def test_credential_scanner_catches_what_it_is_for() -> None:
    """The scan above must be able to fail: it flags an inline value and a URL with a password."""
    leaked = {"kind": "ConfigMap", "data": {"x": {"secretKey": "abc"}}}
    assert any(CREDENTIAL_KEY.search(k) and holds_value(v) for _, k, v in walk(leaked))
    assert any(p.search("postgresql://app:s3cr3t@db:5432/x") for p in CREDENTIAL_TEXT)
