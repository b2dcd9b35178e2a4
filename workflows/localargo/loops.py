"""Expanded DAG tasks (``withItems`` / ``withParam``), as Argo's controller expands them.

A task with ``withItems`` (a list in the manifest) or ``withParam`` (a JSON list, usually
``{{tasks.X.outputs.parameters.Y}}`` or ``{{inputs.parameters.Y}}``) becomes a ``TaskGroup``
node named like the task, whose children are one task per item, named
``task(0:item)``, ``task(1:item)``... — for a map item the sorted ``key:value`` pairs
joined by commas (``task(0:os:debian,v:1)``), for a list item ``[a b c]``, parentheses
dropped. In each child ``{{item}}`` is the item (a map or list as compact JSON),
``{{item.key}}`` a map item's field and ``{{index}}`` its position. An empty list makes a ``Skipped`` node (``Skipped, empty params``); a
``withParam`` that is not a JSON list is an ``Error`` node.

Each child is scheduled like a task of its own: the DAG template's ``parallelism`` and the
workflow's ``spec.parallelism`` bound how many run at once. The group is fulfilled when
all its children are; its phase is that of the last child that Failed/Errored without the
task's ``continueOn``, else Succeeded. Under the DAG's failFast (the default), once a
child failed no further child of that group starts (running ones finish); with
``failFast: false`` every child runs.

Dependants see the group's fan-in, as Argo's processAggregateNodeOutputs builds it: the
succeeded children, ordered by start time (whole seconds, as Argo stores it; ties in item
order), give ``tasks.X.outputs.parameters.Y`` — the JSON list of their values — and
``tasks.X.outputs.result`` — the JSON list of their results (each parsed as JSON when it
is JSON). Output artifacts are not aggregated (Argo does not either); pass their keys as
parameters, or have each child write under one key prefix and read that prefix as a
directory input (see ``artifacts``). ``depends`` gets ``X.AnySucceeded`` and ``X.AllFailed``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ResolveError
from .status import Node, Phase
from .templating import substitute, unresolved

__all__ = ["LOOP_FIELDS", "Child", "Group", "is_loop", "expand"]

LOOP_FIELDS = ("withItems", "withParam")


def is_loop(task: dict[str, Any]) -> bool:
    return any(k in task for k in LOOP_FIELDS)


def _text(value: Any) -> str:
    """Go's ``%v`` of a wfv1.Item: a string as is, anything else as its JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass
class Child:
    name: str
    """``task(index:description)``."""
    task: dict[str, Any]
    """The task with the item substituted and the loop fields removed."""


def _items(task: dict[str, Any], field: str) -> list[Any]:
    if "withItems" in task:
        items = task["withItems"]
        if not isinstance(items, list):
            raise ResolveError(f"{field}.withItems: expected a list, got {type(items).__name__}")
        return items
    raw = task["withParam"]
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list):
        raise ResolveError(f"{field}.withParam: withParam value could not be parsed as a JSON list: {str(raw).strip()}")
    return items


def expand(task: dict[str, Any], field: str) -> list[Child]:
    """One :class:`Child` per item of the (already substituted) ``withItems``/``withParam``."""
    items = _items(task, field)
    body = {k: v for k, v in task.items() if k not in LOOP_FIELDS and k != "name"}
    children = []
    for i, item in enumerate(items):
        scope = {"item": _text(item), "index": str(i)}
        if isinstance(item, dict):
            scope.update({f"item.{k}": _text(v) for k, v in item.items()})
            desc = ",".join(sorted(f"{k}:{_text(v)}" for k, v in item.items()))
        elif isinstance(item, list):
            desc = "[" + " ".join(_text(v) for v in item) + "]"  # Go's fmt.Sprint of the list
        else:
            desc = _text(item)
        # parentheses are dropped from the text so the index stays recoverable from the name
        desc = desc.replace("(", "").replace(")", "")
        name = f"{task['name']}({i}:{desc})" if item is not None else f"{task['name']}({i})"
        child = substitute(body, scope, field)
        # an item reference must resolve at expansion ({{item.x}} of a string item is an error)
        left = [(f, t) for f, t in unresolved(child, field) if t[2:-2].strip().split(".")[0] in ("item", "index")]
        if left:
            raise ResolveError(f"{left[0][0]}: cannot resolve {left[0][1]} for item {i} ({_text(item)})")
        children.append(Child(name, {**child, "name": name}))
    return children


@dataclass
class Group:
    """The ``TaskGroup`` node of one expanded task and its children's nodes."""

    name: str
    node: Node
    children: list[Child]
    continue_on: tuple[bool, bool]
    """``(error, failed)`` of the task's continueOn."""
    nodes: dict[str, Node] = field(default_factory=dict)

    def pending(self) -> list[Child]:
        return [c for c in self.children if c.name not in self.nodes]

    def running(self) -> bool:
        return any(not n.fulfilled for n in self.nodes.values())

    def _continues(self, phase: str) -> bool:
        error, failed = self.continue_on
        return phase == Phase.ERROR and error or phase == Phase.FAILED and failed

    def failed(self) -> bool:
        """A child failed without continueOn: the group's outcome is already decided."""
        return any(n.phase in Phase.FAILED_OR_ERROR and not self._continues(n.phase) for n in self.nodes.values())

    def settle(self) -> None:
        """Finish the group node from its children (Argo's task-group phase)."""
        phase = Phase.SUCCEEDED
        for child in self.children:
            node = self.nodes.get(child.name)
            if node is not None and node.phase in Phase.FAILED_OR_ERROR and not self._continues(node.phase):
                phase = node.phase
        missing = [c.name for c in self.children if c.name not in self.nodes]
        self.node.not_started = missing
        message = ""
        if missing and phase == Phase.SUCCEEDED:
            phase, message = Phase.FAILED, "not all children ran"
        self.node.finish(phase, message)

    def results(self) -> dict[str, bool]:
        phases = [n.phase for n in self.nodes.values()]
        return {
            "AnySucceeded": any(p == Phase.SUCCEEDED for p in phases),
            "AllFailed": bool(phases) and all(p == Phase.FAILED for p in phases),
        }

    def fan_in(self, prefix: str) -> dict[str, str]:
        """``tasks.X.outputs.parameters.Y`` and ``tasks.X.outputs.result`` as JSON lists of the children's."""
        done: list[tuple[int, int, Node]] = []
        for index, child in enumerate(self.children):
            node = self.nodes.get(child.name)
            if node is None or node.phase != Phase.SUCCEEDED:
                continue
            if node.type == "Retry" and node.children:  # the attempt that succeeded holds the outputs
                node = node.children[-1]
            done.append((int(node.started_at or 0), index, node))
        done.sort(key=lambda t: (t[0], t[1]))
        params: dict[str, list[str]] = {}
        results: list[Any] = []
        for _, _, node in done:
            for k, v in node.parameters.items():
                params.setdefault(k, []).append(v)
            if node.result is not None:
                try:
                    results.append(json.loads(node.result))
                except json.JSONDecodeError:
                    results.append(node.result)
        compact = (",", ":")  # Go's json.Marshal
        scope = {f"{prefix}.outputs.parameters.{k}": json.dumps(v, separators=compact) for k, v in params.items()}
        scope[f"{prefix}.outputs.result"] = json.dumps(results, separators=compact)
        return scope
