"""Which manifest fields the local executor runs, ignores (cluster-only) or refuses.

Every field of a loaded manifest is checked against this table before anything runs.
``OK`` fields are implemented; ``ignore(reason)`` fields only matter on a cluster
(scheduling, pod garbage collection, ...) and are reported once at INFO; ``refuse(reason)``
fields would change what runs, so the executor stops with the field's path rather than
guess. A field that is not in the table is refused too (a misspelling, or a feature newer
than this table).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["OK", "ignore", "refuse", "check"]

OK = ("ok", "")


def ignore(reason: str) -> tuple[str, str]:
    return ("ignore", reason)


def refuse(reason: str) -> tuple[str, str]:
    return ("refuse", reason)


def obj(kind: str) -> tuple[str, str]:
    return ("obj", kind)


def each(kind: str) -> tuple[str, str]:
    return ("list", kind)


_SCHED = ignore("pod scheduling only matters on a cluster")
_META = ignore("labels/annotations only matter on a cluster")
_SA = ignore("no Kubernetes API locally; the service account is not used")
_CLEANUP = ignore("cluster cleanup policy; local runs keep their state in the workdir")
_SEQUENCE = refuse("withSequence is not supported by the local executor; use withItems or withParam")
_HOOKS = refuse("exit handlers and lifecycle hooks are not run by the local executor")
_S3_CONN = ignore("the local artifact repository (--artifacts) replaces the artifact's endpoint and credentials")

TABLE: dict[str, dict[str, tuple[str, str]]] = {
    "Document": {
        "apiVersion": OK,
        "kind": OK,
        "metadata": obj("ObjectMeta"),
        "spec": obj("WorkflowSpec"),
        "status": ignore("a previous run's status is not resumed"),
    },
    "ObjectMeta": {
        "name": OK,
        "generateName": OK,
        "namespace": OK,
        "labels": OK,
        "annotations": OK,
        "uid": _META,
        "resourceVersion": _META,
        "creationTimestamp": _META,
        "generation": _META,
        "managedFields": _META,
        "finalizers": _META,
        "ownerReferences": _META,
    },
    "WorkflowSpec": {
        "entrypoint": OK,
        "arguments": obj("WorkflowArguments"),
        "templates": each("Template"),
        "activeDeadlineSeconds": OK,
        "parallelism": OK,
        "securityContext": obj("PodSecurityContext"),
        "volumes": each("Volume"),
        "artifactRepositoryRef": ignore("the artifact repository is --artifacts (a directory or s3://bucket)"),
        "serviceAccountName": _SA,
        "automountServiceAccountToken": _SA,
        "executor": _SA,
        "affinity": _SCHED,
        "nodeSelector": _SCHED,
        "tolerations": _SCHED,
        "schedulerName": _SCHED,
        "podPriorityClassName": _SCHED,
        "priority": _SCHED,
        "podDisruptionBudget": _SCHED,
        "hostAliases": _SCHED,
        "dnsConfig": _SCHED,
        "dnsPolicy": _SCHED,
        "imagePullSecrets": _SCHED,
        "podResources": _SCHED,
        "resourceClaims": _SCHED,
        "hostNetwork": ignore("the docker runtime always uses the host network"),
        "podMetadata": _META,
        "workflowMetadata": _META,
        "metrics": ignore("no Prometheus metrics locally"),
        "podGC": obj("PodGC"),
        "ttlStrategy": _CLEANUP,
        "archiveLogs": _CLEANUP,
        "artifactGC": _CLEANUP,
        "volumeClaimGC": _CLEANUP,
        "synchronization": ignore("one local run at a time: no other workflow competes for the lock"),
        "onExit": _HOOKS,
        "hooks": _HOOKS,
        "retryStrategy": refuse("a workflow-level retryStrategy is not supported; set it per template"),
        "podSpecPatch": refuse("a pod spec patch cannot be applied to a local process"),
        "templateDefaults": OK,  # merged into the templates before this check (defaults.py)
        "volumeClaimTemplates": refuse("persistent volume claims are not available locally"),
        "workflowTemplateRef": refuse("workflowTemplateRef: run the WorkflowTemplate's own file instead"),
        "executorPlugins": refuse("executor plugins are not supported"),
        "shutdown": refuse("a shut-down workflow does not run"),
        "suspend": refuse("suspend is not supported"),
    },
    "WorkflowArguments": {
        "parameters": each("WorkflowParameter"),
        "artifacts": refuse("workflow-level argument artifacts are not supported"),
    },
    "WorkflowParameter": {
        "name": OK,
        "value": OK,
        "default": OK,
        "description": OK,
        "enum": OK,
        "globalName": ignore("no workflow outputs locally"),
        "valueFrom": refuse("workflow parameters must have a value (or -p name=value)"),
    },
    "Template": {
        "name": OK,
        "inputs": obj("Inputs"),
        "outputs": obj("Outputs"),
        "container": obj("Container"),
        "script": obj("Script"),
        "dag": obj("DAGTemplate"),
        "retryStrategy": obj("RetryStrategy"),
        "activeDeadlineSeconds": OK,
        "securityContext": obj("PodSecurityContext"),
        "volumes": each("Volume"),
        "parallelism": OK,
        "metadata": _META,
        "annotations": _META,
        "failFast": ignore("a template's failFast governs steps templates, which are refused; see dag.failFast"),
        "serviceAccountName": _SA,
        "automountServiceAccountToken": _SA,
        "executor": _SA,
        "affinity": _SCHED,
        "nodeSelector": _SCHED,
        "tolerations": _SCHED,
        "schedulerName": _SCHED,
        "priorityClassName": _SCHED,
        "hostAliases": _SCHED,
        "podResources": _SCHED,
        "resourceClaims": _SCHED,
        "pendingTimeout": ignore("a local task is never Pending"),
        "metrics": ignore("no Prometheus metrics locally"),
        "podSpecPatch": refuse("a pod spec patch cannot be applied to a local process"),
        "archiveLocation": refuse("archiveLocation is not supported; artifacts go to --artifacts"),
        "memoize": obj("Memoize"),
        "synchronization": refuse("template locks are not supported"),
        "timeout": refuse("template timeout is not supported; use activeDeadlineSeconds"),
        "daemon": refuse("daemon templates are not supported"),
        "sidecars": refuse("sidecars are not supported"),
        "initContainers": refuse("init containers are not supported"),
        "steps": refuse("steps templates are not supported by the local executor; use a dag"),
        "resource": refuse("resource templates need a Kubernetes API"),
        "suspend": refuse("suspend templates are not supported"),
        "http": refuse("http templates are not supported"),
        "plugin": refuse("plugin templates are not supported"),
        "data": refuse("data templates are not supported"),
        "containerSet": refuse("containerSet templates are not supported"),
    },
    "DAGTemplate": {"tasks": each("DAGTask"), "failFast": OK, "target": OK},
    "DAGTask": {
        "name": OK,
        "template": OK,
        "arguments": obj("TaskArguments"),
        "depends": OK,
        "dependencies": OK,
        "continueOn": obj("ContinueOn"),
        "when": OK,
        "templateRef": refuse("templateRef is not supported; reference a template of this manifest"),
        "inline": refuse("inline templates are not supported"),
        "onExit": _HOOKS,
        "hooks": _HOOKS,
        "withItems": OK,  # expanded by loops.py
        "withParam": OK,
        "withSequence": _SEQUENCE,
    },
    "PodGC": {
        # a pod Argo deletes takes its emptyDirs with it: locally its sandbox (staged inputs, outputs,
        # volumes) is removed when the node ends so; its log stays in <run>/logs
        "strategy": OK,
        "labelSelector": refuse("a podGC labelSelector is not supported locally; drop it or the podGC"),
        "deleteDelayDuration": ignore("the sandbox is removed when the pod ends"),
    },
    "Memoize": {"key": OK, "maxAge": OK, "cache": obj("MemoizeCache")},  # memo.py
    "MemoizeCache": {"configMap": obj("ConfigMapRef")},
    "ConfigMapRef": {"name": OK},
    "ContinueOn": {"error": OK, "failed": OK},
    "TaskArguments": {"parameters": each("ArgParameter"), "artifacts": each("ArgArtifact")},
    "ArgParameter": {
        "name": OK,
        "value": OK,
        "description": OK,
        "enum": OK,
        "default": OK,
        "valueFrom": refuse("valueFrom in task arguments is not supported; use value: '{{...}}'"),
        "globalName": ignore("no workflow outputs locally"),
    },
    "Inputs": {"parameters": each("InputParameter"), "artifacts": each("InputArtifact")},
    "InputParameter": {
        "name": OK,
        "value": OK,
        "default": OK,
        "description": OK,
        "enum": OK,
        "valueFrom": refuse("input parameters from a ConfigMap or suspend are not supported"),
        "globalName": ignore("no workflow outputs locally"),
    },
    "Outputs": {
        "parameters": each("OutputParameter"),
        "artifacts": each("OutputArtifact"),
        "result": ignore("set by the executor"),
        "exitCode": ignore("set by the executor"),
    },
    "OutputParameter": {
        "name": OK,
        "description": OK,
        "valueFrom": obj("ValueFrom"),
        "globalName": ignore("no workflow outputs locally"),
        "enum": ignore("not checked on outputs"),
        "default": refuse("use valueFrom.default for an output parameter's default"),
        "value": refuse("a fixed output value is not supported; use valueFrom"),
    },
    "ValueFrom": {
        "path": OK,
        "default": OK,
        "parameter": OK,
        "expression": refuse("valueFrom.expression is not supported"),
        "jqFilter": refuse("resource outputs are not supported"),
        "jsonPath": refuse("resource outputs are not supported"),
        "supplied": refuse("suspend outputs are not supported"),
        "event": refuse("events are not supported"),
        "configMapKeyRef": refuse("ConfigMaps are not available locally"),
    },
}

_ART_COMMON: dict[str, tuple[str, str]] = {
    "name": OK,
    "optional": OK,
    "archive": obj("ArchiveStrategy"),
    "s3": obj("S3Artifact"),
    "globalName": ignore("no workflow outputs locally"),
    "artifactGC": _CLEANUP,
    "deleted": _CLEANUP,
    "archiveLogs": _CLEANUP,
    "fromExpression": refuse("fromExpression is not supported; use from"),
    "subPath": refuse("subPath is not supported"),
    "recurseMode": refuse("recurseMode is not supported"),
    **{
        k: refuse(f"{k} artifacts are not supported (only s3 and raw)")
        for k in ("http", "git", "gcs", "azure", "oss", "hdfs", "artifactory", "plugin")
    },
}
TABLE["InputArtifact"] = {
    **_ART_COMMON,
    "path": OK,
    "mode": OK,
    "raw": obj("RawArtifact"),
    "from": refuse("from belongs in a task's arguments.artifacts"),
}
TABLE["OutputArtifact"] = {
    **_ART_COMMON,
    "path": OK,
    "mode": OK,
    "from": OK,
    "raw": refuse("raw output artifacts are not supported"),
}
TABLE["ArgArtifact"] = {
    **_ART_COMMON,
    "from": OK,
    "raw": obj("RawArtifact"),
    "path": refuse("an argument artifact has no path; the template's input sets it"),
    "mode": refuse("mode belongs on the template's input artifact"),
}
TABLE["RawArtifact"] = {"data": OK}
TABLE["ArchiveStrategy"] = {
    "none": OK,
    "tar": obj("TarStrategy"),
    "zip": refuse("zip archives are not supported (use none or tar)"),
}
TABLE["TarStrategy"] = {"compressionLevel": OK}
TABLE["S3Artifact"] = {
    "key": OK,
    "bucket": OK,
    **{
        k: _S3_CONN
        for k in (
            "endpoint",
            "accessKeySecret",
            "secretKeySecret",
            "sessionTokenSecret",
            "region",
            "insecure",
            "useSDKCreds",
            "roleARN",
            "caSecret",
            "encryptionOptions",
            "addressingStyle",
            "createBucketIfNotPresent",
        )
    },
}
TABLE["RetryStrategy"] = {
    "limit": OK,
    "retryPolicy": OK,
    "backoff": obj("Backoff"),
    "expression": OK,
    "affinity": ignore("node anti-affinity between retries only matters on a cluster"),
}
TABLE["Backoff"] = {"duration": OK, "factor": OK, "maxDuration": OK, "cap": OK}

_IGN_CONTAINER = ignore("no effect on a local run")
TABLE["Container"] = {
    "image": OK,
    "command": OK,
    "args": OK,
    "env": each("EnvVar"),
    "workingDir": OK,
    "securityContext": obj("SecurityContext"),
    "volumeMounts": each("VolumeMount"),
    "resources": ignore("requests are not enforced; the docker runtime applies limits.cpu and limits.memory"),
    "name": _IGN_CONTAINER,
    "imagePullPolicy": ignore("images are never pulled locally"),
    "ports": _IGN_CONTAINER,
    "livenessProbe": _IGN_CONTAINER,
    "readinessProbe": _IGN_CONTAINER,
    "startupProbe": _IGN_CONTAINER,
    "terminationMessagePath": _IGN_CONTAINER,
    "terminationMessagePolicy": _IGN_CONTAINER,
    "stdin": _IGN_CONTAINER,
    "stdinOnce": _IGN_CONTAINER,
    "tty": _IGN_CONTAINER,
    "resizePolicy": _IGN_CONTAINER,
    "restartPolicy": _IGN_CONTAINER,
    "restartPolicyRules": _IGN_CONTAINER,
    "lifecycle": refuse("container lifecycle hooks are not run locally"),
    "envFrom": refuse("envFrom is not supported; list each variable with valueFrom"),
    "volumeDevices": refuse("volume devices are not available locally"),
}
TABLE["Script"] = {**TABLE["Container"], "source": OK}
TABLE["EnvVar"] = {"name": OK, "value": OK, "valueFrom": obj("EnvVarSource")}
TABLE["EnvVarSource"] = {
    "secretKeyRef": OK,
    "configMapKeyRef": OK,
    "fieldRef": OK,
    "resourceFieldRef": refuse("resourceFieldRef is not supported"),
    "fileKeyRef": refuse("fileKeyRef is not supported"),
}
_SEC_IGN = ignore("enforced by the cluster, not by the local runtimes")
TABLE["SecurityContext"] = {
    "runAsUser": OK,
    "runAsGroup": OK,
    "runAsNonRoot": OK,
    "readOnlyRootFilesystem": OK,
    "allowPrivilegeEscalation": OK,
    "capabilities": OK,
    "privileged": refuse("privileged containers are not run"),
    **{k: _SEC_IGN for k in ("appArmorProfile", "procMount", "seLinuxOptions", "seccompProfile", "windowsOptions")},
}
TABLE["PodSecurityContext"] = {
    "runAsUser": OK,
    "runAsGroup": OK,
    "runAsNonRoot": OK,
    "fsGroup": OK,
    "supplementalGroups": OK,
    **{
        k: _SEC_IGN
        for k in (
            "appArmorProfile",
            "fsGroupChangePolicy",
            "seLinuxChangePolicy",
            "seLinuxOptions",
            "seccompProfile",
            "supplementalGroupsPolicy",
            "sysctls",
            "windowsOptions",
        )
    },
}
TABLE["Volume"] = {"name": OK, "emptyDir": OK}
TABLE["VolumeMount"] = {
    "name": OK,
    "mountPath": OK,
    "readOnly": OK,
    "subPath": refuse("volume subPath is not supported"),
    "subPathExpr": refuse("volume subPathExpr is not supported"),
    "mountPropagation": _IGN_CONTAINER,
    "recursiveReadOnly": _IGN_CONTAINER,
}


def _label(path: str, key: str, value: Any) -> str:
    return f"{path}.{key}" if path else key


def check(value: Any, kind: str = "Document", path: str = "") -> Iterator[tuple[str, str, str]]:
    """Yield ``(verdict, field_path, reason)`` for every ignored, refused or unknown field under ``value``.

    List items are named by their ``name`` when they have one (``spec.templates[ingest].steps``),
    so a message points at the template or task, not at an index.
    """
    table = TABLE[kind]
    if kind == "Volume" and isinstance(value, dict) and set(value) - {"name", "emptyDir"}:
        other = sorted(set(value) - {"name", "emptyDir"})[0]
        yield ("refuse", f"{path}.{other}", f"{other} volumes are not supported (only emptyDir)")
        return
    if not isinstance(value, dict):
        yield ("refuse", path, f"expected an object, found {type(value).__name__}")
        return
    for key, sub in value.items():
        where = _label(path, key, sub)
        rule = table.get(key)
        if rule is None:
            yield ("refuse", where, "unknown field (not in Argo's schema for this object; check the spelling)")
            continue
        verdict, arg = rule
        if verdict in ("ignore", "refuse"):
            yield (verdict, where, arg)
        elif verdict == "obj" and sub is not None:
            yield from check(sub, arg, where)
        elif verdict == "list" and sub is not None:
            if not isinstance(sub, list):
                yield ("refuse", where, "expected a list")
                continue
            for i, item in enumerate(sub):
                name = item.get("name") if isinstance(item, dict) else None
                yield from check(item, arg, f"{where}[{name if name else i}]")
