"""Load a Workflow or WorkflowTemplate manifest, check every field, bind the workflow parameters.

A WorkflowTemplate runs like ``argo submit --from workflowtemplate/NAME``: a Workflow named
``NAME-`` + 5 random characters. ``generateName`` gets the same 5 lowercase alphanumerics
Kubernetes appends. ``-p name=value`` overrides ``spec.arguments.parameters`` (an unknown
name is an error, to catch typos); a parameter left without a value is an error, and
``enum`` is enforced, as ``argo submit`` does.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .defaults import apply_template_defaults
from .errors import ManifestError, Unsupported
from .expr import depends_tasks
from .policy import check
from .refusals import refusals
from .templating import TAG

__all__ = ["Manifest", "load_manifest", "generated_name"]

log = logging.getLogger(__name__)
KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate")


def generated_name(prefix: str) -> str:
    """``prefix`` + 5 random lowercase alphanumerics, like the Kubernetes API server's generateName."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the API server's alphabet: no vowels, no 0/1/3
    return prefix + "".join(random.choices(alphabet, k=5))


@dataclass
class Manifest:
    """A checked workflow: its name, parameters, templates and raw spec."""

    source: Path
    kind: str
    name: str
    namespace: str
    spec: dict[str, Any]
    templates: dict[str, dict[str, Any]]
    parameters: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    ignored: list[tuple[str, str]] = field(default_factory=list)


def _read(path: Path) -> dict[str, Any]:
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    flows = [d for d in docs if isinstance(d, dict) and d.get("kind") in (*KINDS, "CronWorkflow")]
    if len(flows) != 1:
        kinds = [d.get("kind") if isinstance(d, dict) else type(d).__name__ for d in docs]
        raise ManifestError(
            f"{path}: expected exactly one Workflow, WorkflowTemplate or CronWorkflow document, found {kinds}"
        )
    from .cron import as_workflow

    return as_workflow(flows[0], path)  # a CronWorkflow runs once; a workflowTemplateRef is resolved


def load_manifest(
    path: Path,
    overrides: Mapping[str, str],
    name: str | None = None,
    namespace: str | None = None,
    runtime: str | None = None,
) -> Manifest:
    """Read, check and bind ``path``; raise :class:`Unsupported` listing every refused field.

    ``runtime`` adds that runtime's refusals (the subprocess runtime's unmappable paths).
    """
    doc = apply_template_defaults(_read(path))  # the templates as Argo runs them
    if doc.get("apiVersion") != "argoproj.io/v1alpha1":
        raise ManifestError(f"{path}: apiVersion {doc.get('apiVersion')!r} is not argoproj.io/v1alpha1")
    verdicts = list(check(doc))
    refused = [(f, r) for v, f, r in verdicts if v == "refuse"]
    if not refused:  # the fields have the expected shapes: look at their values
        refused = refusals(doc.get("spec") or {}, runtime)
    if refused:
        lines = "\n".join(f"  {f}: {r}" for f, r in refused)
        raise Unsupported(str(path), f"the local executor refuses {len(refused)} field(s):\n{lines}")
    meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
    templates = _templates(spec, path)
    _check_dags(templates, path)
    if doc["kind"] == "Workflow":
        wf_name = (
            name or meta.get("name") or (generated_name(meta["generateName"]) if meta.get("generateName") else None)
        )
    else:
        wf_name = name or (generated_name(f"{meta['name']}-") if meta.get("name") else None)
    if not wf_name:
        raise ManifestError(f"{path}: metadata.name or metadata.generateName is required")
    return Manifest(
        source=path,
        kind=doc["kind"],
        name=wf_name,
        namespace=namespace or meta.get("namespace") or "default",
        spec=spec,
        templates=templates,
        parameters=_parameters(spec, overrides, path),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        ignored=[(f, r) for v, f, r in verdicts if v == "ignore"],
    )


def _templates(spec: dict[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    templates: dict[str, dict[str, Any]] = {}
    for i, t in enumerate(spec.get("templates") or []):
        tname = t.get("name")
        if not tname or tname in templates:
            raise ManifestError(f"{path}: spec.templates[{i}]: missing or duplicate name {tname!r}")
        kinds = [k for k in ("container", "script", "dag") if k in t]
        if len(kinds) != 1:
            raise ManifestError(
                f"{path}: spec.templates[{tname}]: needs exactly one of container, script, dag "
                f"(found {kinds or 'none'})"
            )
        policy = (t.get("retryStrategy") or {}).get("retryPolicy")
        if policy not in (None, "Always", "OnFailure", "OnError"):
            raise Unsupported(
                f"{path}: spec.templates[{tname}].retryStrategy.retryPolicy",
                f"{policy!r} is not supported locally (Always, OnFailure, OnError)",
            )
        templates[tname] = t
    entry = spec.get("entrypoint")
    if entry not in templates:
        raise ManifestError(f"{path}: spec.entrypoint {entry!r} is not a template (have: {', '.join(templates)})")
    return templates


def _check_dags(templates: dict[str, dict[str, Any]], path: Path) -> None:
    for tname, t in templates.items():
        if "dag" not in t:
            continue
        tasks = t["dag"].get("tasks") or []
        names = [task.get("name") for task in tasks]
        for target in str(t["dag"].get("target") or "").split(" "):
            if target and target not in names and not TAG.search(target):  # a tag is checked once substituted
                raise ManifestError(f"{path}: spec.templates[{tname}].dag.target: no task named {target!r}")
        for task in tasks:
            where = f"{path}: spec.templates[{tname}].dag.tasks[{task.get('name')}]"
            if names.count(task.get("name")) != 1:
                raise ManifestError(f"{where}: missing or duplicate task name")
            if task.get("template") not in templates:
                raise ManifestError(f"{where}.template: no template named {task.get('template')!r}")
            if task.get("depends") and task.get("dependencies"):
                raise ManifestError(f"{where}: use either depends or dependencies, not both")
            deps = (
                depends_tasks(task["depends"], f"{where}.depends")
                if task.get("depends")
                else list(task.get("dependencies") or [])
            )
            for dep in deps:
                if dep not in names:
                    raise ManifestError(f"{where}: depends on {dep!r}, which is not a task of this dag")


def _parameters(spec: dict[str, Any], overrides: Mapping[str, str], path: Path) -> dict[str, str]:
    declared = (spec.get("arguments") or {}).get("parameters") or []
    known = {p["name"] for p in declared}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ManifestError(f"-p {unknown[0]}: not a parameter of {path} (parameters: {', '.join(sorted(known))})")
    values: dict[str, str] = {}
    for p in declared:
        name = p["name"]
        value = overrides.get(name, p.get("value", p.get("default")))
        if value is None:
            raise ManifestError(f"{path}: spec.arguments.parameters[{name}].value is required (pass -p {name}=...)")
        value = str(value)
        enum = [str(e) for e in p.get("enum") or []]
        if enum and value not in enum:
            raise ManifestError(f"-p {name}={value}: not one of {', '.join(enum)}")
        values[name] = value
    return values


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` → ``{"a": "1", "b": "x=y"}``; a pair without ``=`` is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ManifestError(f"-p {pair}: expected name=value")
        out[key] = value
    return out
