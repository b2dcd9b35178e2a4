"""Project rules the schemas cannot express, applied to every manifest document.

- every image pinned by tag or digest (no ``:latest``, no untagged image; a tag taken from
  a workflow parameter is checked against that parameter's default);
- Argo stage templates retry transient failures only: ``retryStrategy`` with
  ``expression: asInt(lastRetry.exitCode) == 75`` (a memoized template has none: it recovers by
  re-submission, and Argo v4.0 hangs a DAG on a cache hit of a retried template);
- CPU and memory requests and limits set on every container;
- non-root pods with a RuntimeDefault seccomp profile; containers without privilege
  escalation, with all capabilities dropped and a read-only root filesystem;
- no inline credentials: an env var named like a secret (PASSWORD, SECRET, TOKEN, KEY,
  CREDENTIAL) must come from ``secretKeyRef`` (in a container or in ``templateDefaults``);
  no committed Secret with data; no ConfigMap key named like a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .schemas import Finding, json_path

__all__ = ["RETRY_EXPRESSION", "check_rules", "image_problem"]

RETRY_EXPRESSION = "asInt(lastRetry.exitCode) == 75"
_RETRY_RE = re.compile(r"^\s*asInt\(\s*lastRetry\.exitCode\s*\)\s*==\s*75\s*$")
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|(^|_)KEY($|_)|ACCESS_?KEY|CREDENTIAL|API_?KEY", re.I)
_PARAM_REF = re.compile(r"^\{\{\s*workflow\.parameters\.([A-Za-z0-9_.-]+)\s*\}\}$")
_POD_PATHS = {
    "Job": ("spec", "template", "spec"),
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_ARGO_CONTAINER_KEYS = ("container", "script")
R = tuple[Any, ...]


def _rule(parts: R, message: str) -> Finding:
    return Finding(json_path(parts), message, "project-rule")


def image_problem(image: str, params: dict[str, str] | None = None) -> str | None:
    """Why ``image`` is not pinned (None when it is). ``params``: workflow parameter defaults."""
    if not image:
        return "image is empty"
    if "@sha256:" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return f"image {image!r} has no tag; pin it with :<version> or @sha256:<digest> (never latest)"
    ref = _PARAM_REF.match(tag)
    if ref and params is not None:
        default = params.get(ref.group(1))
        if default is None:
            return f"image tag comes from workflow parameter {ref.group(1)!r}, which has no default value"
        tag = default
    if tag in ("latest", ""):
        return f"image {image!r} resolves to tag {tag or '(empty)'!r}; pin a version or digest (never latest)"
    return None


def _env_findings(env: Any, parts: R) -> Iterator[Finding]:
    for index, var in enumerate(env or []):
        name = str(var.get("name", ""))
        if not _SECRET_NAME.search(name):
            continue
        where = (*parts, index)
        if "value" in var:
            yield _rule(
                (*where, "value"),
                f"env {name} looks like a credential but has an inline value; "
                "take it from a Secret with valueFrom.secretKeyRef",
            )
        elif "secretKeyRef" not in (var.get("valueFrom") or {}):
            yield _rule(
                where,
                f"env {name} looks like a credential; take it from valueFrom.secretKeyRef, not a ConfigMap or field",
            )


def _container_findings(container: dict[str, Any], parts: R, params: dict[str, str] | None) -> Iterator[Finding]:
    problem = image_problem(str(container.get("image", "")), params)
    if problem:
        yield _rule((*parts, "image"), problem)
    resources = container.get("resources") or {}
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(section) or {}):
                yield _rule((*parts, "resources", section), f"resources.{section}.{resource} is not set")
    sc = container.get("securityContext") or {}
    expected = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}
    for key, value in expected.items():
        if sc.get(key) is not value:
            yield _rule((*parts, "securityContext", key), f"securityContext.{key} must be {str(value).lower()}")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        yield _rule(
            (*parts, "securityContext", "capabilities", "drop"), "securityContext.capabilities.drop must include ALL"
        )
    if sc.get("privileged"):
        yield _rule((*parts, "securityContext", "privileged"), "privileged containers are not allowed")
    if sc.get("runAsUser") == 0 or sc.get("runAsNonRoot") is False:
        yield _rule((*parts, "securityContext"), "container must not run as root")
    yield from _env_findings(container.get("env"), (*parts, "env"))


def _pod_findings(pod: dict[str, Any], container_sc: list[dict[str, Any]], parts: R) -> Iterator[Finding]:
    """Pod-level security: non-root and RuntimeDefault seccomp (pod level, or on every container)."""
    sc = pod.get("securityContext") or {}
    if sc.get("runAsNonRoot") is not True or sc.get("runAsUser") == 0:
        yield _rule(
            (*parts, "securityContext", "runAsNonRoot"),
            "pod securityContext.runAsNonRoot must be true (and runAsUser non-zero)",
        )
    pod_seccomp = (sc.get("seccompProfile") or {}).get("type")
    containers_seccomp = [(c.get("seccompProfile") or {}).get("type") for c in container_sc]
    if pod_seccomp != "RuntimeDefault" and not (
        containers_seccomp and all(t == "RuntimeDefault" for t in containers_seccomp)
    ):
        yield _rule((*parts, "securityContext", "seccompProfile"), "seccompProfile.type must be RuntimeDefault")


def _argo_template_findings(
    template: dict[str, Any], parts: R, spec: dict[str, Any], params: dict[str, str]
) -> Iterator[Finding]:
    key = next((k for k in _ARGO_CONTAINER_KEYS if k in template), None)
    if key is None:
        if "containerSet" in template:
            yield _rule(parts, "containerSet templates are not used by this project; use container templates")
        return
    name = template.get("name", "?")
    container = template[key]
    yield from _container_findings(container, (*parts, key), params)
    for extra in ("initContainers", "sidecars"):
        for index, side in enumerate(template.get(extra) or []):
            yield from _container_findings(side, (*parts, extra, index), params)
    pod = {"securityContext": template.get("securityContext") or spec.get("securityContext")}
    yield from _pod_findings(pod, [container.get("securityContext") or {}], parts)
    retry = template.get("retryStrategy") or spec.get("retryStrategy")
    if template.get("memoize"):
        if retry:
            yield _rule(
                (*parts, "retryStrategy"),
                f"template {name!r} is memoized and retried: Argo v4.0 leaves the DAG Running for ever after a "
                "cache hit of a retried template; a memoized template recovers by re-submission instead",
            )
    elif not retry:
        yield _rule(
            (*parts, "retryStrategy"),
            f"template {name!r} has no retryStrategy; retry transient failures "
            f"(exit 75) only with expression: {RETRY_EXPRESSION!r}",
        )
    elif not _RETRY_RE.match(str(retry.get("expression", ""))):
        yield _rule(
            (*parts, "retryStrategy", "expression"),
            f"template {name!r} must retry exit 75 only "
            f"(expression: {RETRY_EXPRESSION!r}), not {retry.get('expression')!r}",
        )


def _argo_findings(doc: dict[str, Any]) -> Iterator[Finding]:
    base: R = ("spec", "workflowSpec") if doc.get("kind") == "CronWorkflow" else ("spec",)
    spec: Any = doc
    for part in base:
        spec = (spec or {}).get(part) or {}
    params = {
        p.get("name"): str(p["value"]) for p in (spec.get("arguments") or {}).get("parameters") or [] if "value" in p
    }
    for index, template in enumerate(spec.get("templates") or []):
        yield from _argo_template_findings(template, (*base, "templates", index), spec, params)
    defaults = (spec.get("templateDefaults") or {}).get("container") or {}  # merged into every container
    yield from _env_findings(defaults.get("env"), (*base, "templateDefaults", "container", "env"))


def _core_findings(doc: dict[str, Any]) -> Iterator[Finding]:
    kind = doc.get("kind")
    if kind == "Secret":
        if doc.get("data") or doc.get("stringData"):
            yield _rule(
                ("data",),
                "a Secret with values must not be committed; create it with "
                "`kubectl create secret generic ... --from-literal` (see README)",
            )
        return
    if kind == "ConfigMap":
        for key in doc.get("data") or {}:
            if _SECRET_NAME.search(str(key)):
                yield _rule(("data", key), f"ConfigMap key {key!r} looks like a credential; put it in a Secret")
        return
    pod_path = _POD_PATHS.get(str(kind))
    if pod_path is None:
        return
    pod: Any = doc
    for part in pod_path:
        pod = (pod or {}).get(part) or {}
    containers = list(pod.get("containers") or [])
    for group in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(group) or []):
            yield from _container_findings(container, (*pod_path, group, index), None)
    yield from _pod_findings(pod, [c.get("securityContext") or {} for c in containers], pod_path)


def check_rules(doc: dict[str, Any], argo: bool) -> list[Finding]:
    """Every project-rule finding of one document (``argo``: an Argo kind)."""
    return list(_argo_findings(doc) if argo else _core_findings(doc))
