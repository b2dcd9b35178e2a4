"""Reference checks of an Argo workflow spec: every ``{{...}}`` and name points at something.

The schemas see each field alone; they cannot tell that ``{{inputs.parameters.sorce}}``
names no input, that a task runs a template that does not exist, or that eval reads an
artifact train does not produce. Argo would reject such a workflow only at submit or,
worse, fail it at run time. Checked here:

- ``{{workflow.parameters.X}}`` → X is a workflow argument parameter;
- ``{{inputs.parameters.X}}`` / ``{{inputs.artifacts.X...}}`` → X is an input of the template;
- DAG tasks: the template exists, ``depends`` names tasks of the same DAG, every input
  parameter without a default is supplied, argument artifacts are template inputs, and
  ``{{tasks.T.outputs.(parameters|artifacts).X}}`` names a task of the DAG whose template
  declares output X.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .schemas import Finding, json_path

__all__ = ["check_references"]

_WORKFLOW_PARAM = re.compile(r"\{\{\s*workflow\.parameters\.([A-Za-z0-9_.-]+?)\s*\}\}")
_INPUT = re.compile(r"\{\{\s*inputs\.(parameters|artifacts)\.([A-Za-z0-9_-]+)")
_TASK_OUTPUT = re.compile(r"\{\{\s*tasks\.([A-Za-z0-9_-]+)\.outputs\.(parameters|artifacts)\.([A-Za-z0-9_-]+)")
_DEPENDS_NAME = re.compile(r"[A-Za-z0-9][-A-Za-z0-9]*")
_RESULTS = {"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed"}
Path = tuple[Any, ...]


def _strings(node: Any, parts: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(node, str):
        yield parts, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*parts, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _strings(item, (*parts, index))


def _names(section: Any, kind: str) -> set[str]:
    return {str(item.get("name")) for item in (section or {}).get(kind) or []}


def _finding(parts: Path, message: str) -> Finding:
    return Finding(json_path(parts), message, "reference")


def _template_inputs(template: dict[str, Any], parts: Path) -> Iterator[Finding]:
    inputs = template.get("inputs") or {}
    for where, text in _strings({k: v for k, v in template.items() if k != "inputs"}, parts):
        for kind, name in _INPUT.findall(text):
            if name not in _names(inputs, kind):
                yield _finding(
                    where,
                    f"{{{{inputs.{kind}.{name}}}}}: template {template.get('name')!r} has no "
                    f"input {kind[:-1]} {name!r}",
                )


def _task_findings(
    task: dict[str, Any], parts: Path, tasks: dict[str, dict[str, Any]], templates: dict[str, dict[str, Any]]
) -> Iterator[Finding]:
    name = task.get("name")
    target = templates.get(str(task.get("template")))
    if "template" in task and target is None:
        yield _finding((*parts, "template"), f"task {name!r} runs template {task['template']!r}, which does not exist")
    for dep in _DEPENDS_NAME.findall(str(task.get("depends") or "")):
        if dep not in tasks and dep not in _RESULTS:
            yield _finding((*parts, "depends"), f"task {name!r} depends on {dep!r}, which is not a task of this DAG")
    for dep in task.get("dependencies") or []:
        if dep not in tasks:
            yield _finding((*parts, "dependencies"), f"task {name!r} depends on {dep!r}, which is not a task here")
    arguments = task.get("arguments") or {}
    if target is not None:
        given = _names(arguments, "parameters")
        for param in (target.get("inputs") or {}).get("parameters") or []:
            if param.get("name") not in given and "value" not in param and "default" not in param:
                yield _finding(
                    (*parts, "arguments"),
                    f"task {name!r} does not supply input parameter "
                    f"{param.get('name')!r} of template {target.get('name')!r}",
                )
        known = _names(target.get("inputs"), "artifacts")
        for index, artifact in enumerate(arguments.get("artifacts") or []):
            if artifact.get("name") not in known:
                yield _finding(
                    (*parts, "arguments", "artifacts", index),
                    f"template {target.get('name')!r} has no input artifact {artifact.get('name')!r}",
                )
    for where, text in _strings(task, parts):
        for other, kind, output in _TASK_OUTPUT.findall(text):
            source = templates.get(str(tasks.get(other, {}).get("template")))
            if other not in tasks:
                yield _finding(where, f"{{{{tasks.{other}...}}}}: no task {other!r} in this DAG")
            elif source is not None and output not in _names(source.get("outputs"), kind):
                yield _finding(
                    where, f"task {other!r} (template {source.get('name')!r}) has no output {kind[:-1]} {output!r}"
                )


def check_references(spec: dict[str, Any], base: Path) -> list[Finding]:
    """Every dangling reference in a workflow ``spec`` found at JSON path ``base``."""
    if "workflowTemplateRef" in spec:
        return []  # parameters and templates live in the referenced template
    findings: list[Finding] = []
    declared = _names(spec.get("arguments"), "parameters")
    for where, text in _strings(spec, base):
        for name in _WORKFLOW_PARAM.findall(text):
            if name not in declared:
                findings.append(_finding(where, f"{{{{workflow.parameters.{name}}}}}: no workflow parameter {name!r}"))
    templates = {str(t.get("name")): t for t in spec.get("templates") or []}
    for index, template in enumerate(spec.get("templates") or []):
        parts = (*base, "templates", index)
        findings += _template_inputs(template, parts)
        tasks = {str(t.get("name")): t for t in (template.get("dag") or {}).get("tasks") or []}
        for t_index, task in enumerate((template.get("dag") or {}).get("tasks") or []):
            findings += _task_findings(task, (*parts, "dag", "tasks", t_index), tasks, templates)
    return findings
