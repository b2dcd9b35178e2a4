"""Run a CronWorkflow once, and a workflow that references a WorkflowTemplate, as Argo would.

A CronWorkflow's ``spec.workflowSpec`` becomes a Workflow named like the controller's
(``<cron name>-`` + 5 characters; the schedule, timezone, concurrency and history fields
only matter to the cron controller and are not looked at). A ``workflowTemplateRef``
is resolved from the WorkflowTemplate of that name in the manifest's own directory (the
compiled files sit side by side): its spec, with the referencing workflow's
``arguments.parameters`` overriding the template's by name, as Argo merges them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from .errors import ManifestError, Unsupported

__all__ = ["as_workflow"]

_CRON_ONLY = {"schedule", "schedules", "timezone", "concurrencyPolicy", "startingDeadlineSeconds",
              "successfulJobsHistoryLimit", "failedJobsHistoryLimit", "suspend", "stopStrategy", "when"}  # fmt: skip


def _find_template(name: str, directory: Path) -> dict[str, Any]:
    import yaml

    for path in sorted(directory.glob("*.y*ml")):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except (OSError, yaml.YAMLError):
            continue
        for d in docs:
            if (
                isinstance(d, dict)
                and d.get("kind") == "WorkflowTemplate"
                and (d.get("metadata") or {}).get("name") == name
            ):
                return d
    raise ManifestError(f"workflowTemplateRef {name!r}: no WorkflowTemplate of that name in {directory}/*.yaml")


def _merge_ref(spec: dict[str, Any], path: Path) -> dict[str, Any]:
    ref = spec["workflowTemplateRef"]
    if ref.get("clusterScope"):
        raise Unsupported(str(path), "workflowTemplateRef.clusterScope: ClusterWorkflowTemplates are not resolved")
    template = _find_template(str(ref.get("name")), path.parent)
    merged = copy.deepcopy(template.get("spec") or {})
    own = {p["name"]: p for p in ((spec.get("arguments") or {}).get("parameters") or [])}
    params = (merged.get("arguments") or {}).get("parameters") or []
    unknown = sorted(set(own) - {p["name"] for p in params})
    if unknown:
        raise ManifestError(f"{path}: arguments {unknown} are not parameters of WorkflowTemplate {ref.get('name')!r}")
    merged.setdefault("arguments", {})["parameters"] = [{**p, **own.get(p["name"], {})} for p in params]
    for key, value in spec.items():
        if key not in ("workflowTemplateRef", "arguments"):
            merged[key] = copy.deepcopy(value)
    return merged


def as_workflow(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """``doc`` as a plain Workflow document (CronWorkflow unwrapped, template reference merged)."""
    if doc.get("kind") == "CronWorkflow":
        meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
        if "workflowSpec" not in spec:
            raise ManifestError(f"{path}: CronWorkflow without spec.workflowSpec")
        extra = sorted(set(spec) - _CRON_ONLY - {"workflowSpec", "workflowMetadata"})
        if extra:
            raise Unsupported(str(path), f"CronWorkflow spec fields not understood: {extra}")
        wf_meta = spec.get("workflowMetadata") or {}
        doc = {
            "apiVersion": doc.get("apiVersion"),
            "kind": "Workflow",
            "metadata": {
                "generateName": f"{meta.get('name', 'cron')}-",
                "namespace": meta.get("namespace"),
                "labels": {**(meta.get("labels") or {}), **(wf_meta.get("labels") or {})},
                "annotations": {**(meta.get("annotations") or {}), **(wf_meta.get("annotations") or {})},
            },
            "spec": spec["workflowSpec"],
        }
        doc["metadata"] = {k: v for k, v in doc["metadata"].items() if v}
    spec = doc.get("spec") or {}
    if "workflowTemplateRef" in spec:
        doc = {**doc, "spec": _merge_ref(spec, path)}
    return doc
