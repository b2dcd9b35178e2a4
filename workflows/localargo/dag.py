"""A DAG template: which task runs when, what it receives, and the phase the DAG ends with.

Scheduling follows Argo's controller. After every task completion the executor makes one
pass over the tasks in dependency order (a reconcile): a task whose dependencies are all
fulfilled is evaluated — its ``depends`` (or legacy ``dependencies``) false → ``Omitted``;
its ``when`` false → ``Skipped``; an unresolvable reference → ``Error``; otherwise it
starts. Omitted/Skipped nodes are final at once, so their dependants are decided in the
same pass. Only ``dag.target`` (default: the leaf tasks) and their ancestors run; like
Argo, the target is templated (``{{inputs.parameters.x}}``, ``{{workflow.parameters.x}}``)
before it is split on spaces.

failFast (default true): once the DAG's outcome is already Failed — a target task, or a task
omitted below a failure, has a failed branch without ``continueOn`` — no new task starts;
running tasks finish, then the DAG fails. Dependants decided in the same pass as the
failure (an ``A.Failed`` handler) still run, as in Argo. This is the documented behaviour;
Argo's controller also starts tasks that become ready while others still run
(argoproj/argo-workflows#5223), which this executor does not copy.

The DAG's phase is Argo's assessDAGPhase: each target's branch phase (its own when it
completed, else the worst of its dependencies' branches) — Failed/Error without
``continueOn`` fails the DAG, otherwise it succeeds.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from typing import Any

from .bind import Source
from .context import RunContext
from .errors import ExecutorError, ManifestError, ResolveError
from .expr import depends_tasks, eval_depends, eval_when, expand_dependencies
from .loops import Group, expand, is_loop
from .status import ArtifactRef, Node, Phase
from .templating import TAG, require_resolved, substitute

__all__ = ["DagRun", "TemplateRunner"]

TemplateRunner = Callable[[RunContext, Node, dict[str, Any], dict[str, str], dict[str, Source | None]], None]
_RANK = {Phase.SUCCEEDED: 0, Phase.FAILED: 1, Phase.ERROR: 2}


class DagRun:
    """Runs one DAG template for ``node``; ``execute`` runs a task's template (container or nested DAG)."""

    def __init__(
        self,
        ctx: RunContext,
        node: Node,
        template: dict[str, Any],
        scope: dict[str, str],
        inputs: dict[str, Source | None],
        execute: TemplateRunner,
    ) -> None:
        self.ctx, self.node, self.template, self.scope, self.inputs, self.execute = (
            ctx,
            node,
            template,
            scope,
            inputs,
            execute,
        )
        self.where = f"spec.templates[{template['name']}].dag"
        dag = template["dag"]
        self.tasks: dict[str, dict[str, Any]] = {t["name"]: t for t in dag["tasks"]}
        self.fail_fast = dag.get("failFast", True) is not False
        self.parallelism = int(template["parallelism"]) if template.get("parallelism") else None
        self.logic = {
            n: t.get("depends") or expand_dependencies(t.get("dependencies") or []) for n, t in self.tasks.items()
        }
        self.deps = {
            n: depends_tasks(expr, f"{self.where}.tasks[{n}].depends") if expr else [] for n, expr in self.logic.items()
        }
        leaves = sorted(n for n in self.tasks if not any(n in d for d in self.deps.values()))
        # Argo substitutes the template's parameters first, then splits the target on single spaces
        target = str(substitute(str(dag.get("target") or ""), scope, f"{self.where}.target"))
        require_resolved(target, f"{self.where}.target", scope)
        self.targets = target.split(" ") if target else leaves
        self.order = self._order()
        self.nodes: dict[str, Node] = {}
        self.not_started: list[str] = []
        self.events: queue.Queue[str] = queue.Queue()
        self.running: set[str] = set()
        self.groups: dict[str, Group] = {}
        """Expanded tasks (withItems/withParam), see loops.py."""

    def _order(self) -> list[str]:
        """Targets and their ancestors, dependencies first, otherwise in definition order."""
        needed: set[str] = set()

        def need(name: str, path: tuple[str, ...]) -> None:
            if name in path:
                raise ManifestError(f"{self.where}: dependency cycle {' -> '.join((*path, name))}")
            if name not in needed:
                for dep in self.deps[name]:
                    need(dep, (*path, name))
                needed.add(name)

        for target in self.targets:
            if target not in self.tasks:
                raise ManifestError(f"{self.where}.target: no task named {target!r}")
            need(target, ())
        order: list[str] = []

        def visit(name: str) -> None:
            if name not in order:
                for dep in self.deps[name]:
                    visit(dep)
                order.append(name)

        for name in self.tasks:
            if name in needed:
                visit(name)
        return order

    # -- results and phases ----------------------------------------------------------
    def _results(self, name: str) -> dict[str, bool]:
        node = self.nodes[name]
        phase = node.phase
        return {
            "Succeeded": phase == Phase.SUCCEEDED,
            "Failed": phase == Phase.FAILED,
            "Errored": phase == Phase.ERROR,
            "Skipped": phase == Phase.SKIPPED,
            "Omitted": phase == Phase.OMITTED,
            "Daemoned": False,
            "AnySucceeded": False,
            "AllFailed": False,
            **(self.groups[name].results() if name in self.groups else {}),
        }

    def _continue_on(self, name: str) -> tuple[bool, bool]:
        c = self.tasks[name].get("continueOn") or {}
        return bool(c.get("error")), bool(c.get("failed"))

    def _branch(self, name: str, memo: dict[str, str]) -> str:
        if name in memo:
            return memo[name]
        node = self.nodes.get(name)
        phase = node.phase if node is not None else ""
        if phase not in Phase.COMPLETED:
            phase = Phase.SUCCEEDED
            for dep in self.deps[name]:
                dep_phase = self._branch(dep, memo)
                phase = dep_phase if _RANK[dep_phase] > _RANK[phase] else phase
        memo[name] = phase
        return phase

    def _target_failed(self, name: str, memo: dict[str, str]) -> str | None:
        if name not in self.nodes:
            return None
        branch = self._branch(name, memo)
        error, failed = self._continue_on(name)
        if branch == Phase.FAILED and not failed or branch == Phase.ERROR and not error:
            return branch
        return None

    def _doomed(self) -> bool:
        memo: dict[str, str] = {}
        return any(self._target_failed(t, memo) for t in self.targets)

    def assess(self) -> tuple[str, str]:
        """The DAG's phase and message once nothing runs (Argo's assessDAGPhase)."""
        memo: dict[str, str] = {}
        result, missing = Phase.SUCCEEDED, False
        for target in self.targets:
            if target not in self.nodes:
                missing = True  # never started: failFast halted the DAG, or the run was cancelled
                continue
            failed = self._target_failed(target, memo)
            if failed:
                result = failed
                if self.fail_fast:
                    break
        if result == Phase.SUCCEEDED and not missing:
            return result, ""
        culprit = next(
            (n for n in self.order if n in self.nodes and self.nodes[n].phase in Phase.FAILED_OR_ERROR), None
        )
        if result == Phase.SUCCEEDED:
            result = Phase.FAILED
        return result, f"child '{self.nodes[culprit].name}' failed" if culprit else "not all targets ran"

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        """Block until every task that can run has finished; sets the DAG node's phase."""
        self.node.start()
        self.ctx.changed(self.node)
        while True:
            if not self.ctx.cancel.is_set():
                self._pass()
            if not self.running:
                break
            name = self.events.get()
            self.running.discard(name)
            while not self.events.empty():
                self.running.discard(self.events.get_nowait())
        for group in self.groups.values():
            if not group.node.fulfilled:
                group.settle()
                self.ctx.changed(group.node)
        self.not_started = [n for n in self.order if n not in self.nodes]
        self.node.not_started = list(self.not_started)
        phase, message = self.assess()
        if self.ctx.cancel.is_set() and phase == Phase.SUCCEEDED and self.not_started:
            phase, message = Phase.FAILED, self.ctx.cancel_reason
        self._outputs(phase)
        self.node.finish(phase, message)
        self.ctx.changed(self.node)

    def _pass(self) -> None:
        halted = self.fail_fast and self._doomed()
        for name in self.order:
            if name in self.groups:
                self._advance(self.groups[name], halted)
                continue
            if name in self.nodes:
                continue
            if any(d not in self.nodes or not self.nodes[d].fulfilled for d in self.deps[name]):
                continue
            field = f"{self.where}.tasks[{name}]"
            try:
                run = not self.logic[name] or eval_depends(
                    self.logic[name], self._results, self._continue_on, f"{field}.depends"
                )
            except ExecutorError as exc:
                self._final(name, "Skipped", Phase.ERROR, str(exc))
                continue
            if not run:
                self._final(name, "Skipped", Phase.OMITTED, "omitted: depends condition not met")
                continue
            if halted:
                continue
            if is_loop(self.tasks[name]):
                self._expand(name, field)
                continue
            if self.parallelism is not None and len(self.running) >= self.parallelism:
                continue
            self._start(name, field)

    def _expand(self, name: str, field: str) -> None:
        """Create the TaskGroup of a withItems/withParam task, then start what its children may."""
        task = self.tasks[name]
        try:
            scope = {**self.scope, **self._task_scope(self._ancestors(name))}
            loop = {k: task[k] for k in ("withItems", "withParam") if k in task}
            loop = substitute(loop, scope, field)
            require_resolved(loop, field, scope)
            children = expand({**task, **loop}, field)
        except ExecutorError as exc:
            self._final(name, "Skipped", Phase.ERROR, str(exc))
            return
        if not children:
            self._final(name, "Skipped", Phase.SKIPPED, "Skipped, empty params")
            return
        node = self.node.add_child(
            Node(f"{self.node.name}.{name}", name, "TaskGroup", task.get("template", ""), self.ctx.workflow)
        )
        node.start()
        self.nodes[name] = node
        self.groups[name] = Group(name, node, children, self._continue_on(name))
        self.ctx.changed(node)
        self._advance(self.groups[name], False)

    def _advance(self, group: Group, halted: bool) -> None:
        """Start the group's next children (parallelism, failFast), or settle it once they are done."""
        if group.node.fulfilled:
            return
        stop = halted or self.ctx.cancel.is_set() or (self.fail_fast and group.failed())
        for child in group.pending():
            if stop or (self.parallelism is not None and len(self.running) >= self.parallelism):
                break
            self._start(child.name, f"{self.where}.tasks[{group.name}]", child.task, group)
        if not group.running() and (stop or not group.pending()):
            group.settle()
            self.ctx.changed(group.node)

    def _final(
        self,
        name: str,
        node_type: str,
        phase: str,
        message: str,
        task: dict[str, Any] | None = None,
        group: Group | None = None,
    ) -> Node:
        task = task if task is not None else self.tasks[name]
        parent = group.node if group is not None else self.node
        node = parent.add_child(
            Node(f"{self.node.name}.{name}", name, node_type, task.get("template", ""), self.ctx.workflow)
        )
        node.finish(phase, message)
        (group.nodes if group is not None else self.nodes)[name] = node
        self.ctx.changed(node)
        return node

    def _start(self, name: str, field: str, task: dict[str, Any] | None = None, group: Group | None = None) -> None:
        """Start a task, or (``group``) one child ``task`` of an expanded task."""
        task = task if task is not None else self.tasks[name]
        try:
            allowed = self._ancestors(group.name if group is not None else name)
            scope = {**self.scope, **self._task_scope(allowed)}
            resolved = substitute({k: v for k, v in task.items() if k != "arguments"}, scope, field)
            args = substitute(task.get("arguments") or {}, scope, f"{field}.arguments")
            params = {p["name"]: str(p["value"]) for p in args.get("parameters") or [] if "value" in p}
            require_resolved(params, f"{field}.arguments.parameters", scope)
            artifacts = {
                a["name"]: self._artifact(a, f"{field}.arguments.artifacts[{a['name']}]", allowed)
                for a in args.get("artifacts") or []
            }
            when = resolved.get("when")
            if when:
                require_resolved(when, f"{field}.when", scope)
                if not eval_when(str(when), f"{field}.when"):
                    self._final(name, "Skipped", Phase.SKIPPED, f"when '{when}' evaluated false", task, group)
                    return
            template = self.ctx.templates[task["template"]]
        except ExecutorError as exc:
            self._final(name, "Skipped", Phase.ERROR, str(exc), task, group)
            return
        parent = group.node if group is not None else self.node
        node = parent.add_child(Node(f"{self.node.name}.{name}", name, "Pod", template["name"], self.ctx.workflow))
        (group.nodes if group is not None else self.nodes)[name] = node
        self.running.add(name)

        def work() -> None:
            try:
                self.execute(self.ctx, node, template, params, artifacts)
            except Exception as exc:  # noqa: BLE001 - a crash in one task must not hang the DAG
                node.finish(Phase.ERROR, f"executor error: {type(exc).__name__}: {exc}")
                self.ctx.changed(node)
            finally:
                self.events.put(name)

        threading.Thread(target=work, name=f"task-{name}", daemon=True).start()

    def _ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.deps[name])
        while stack:
            dep = stack.pop()
            if dep not in seen:
                seen.add(dep)
                stack.extend(self.deps[dep])
        return seen

    def _task_scope(self, names: set[str]) -> dict[str, str]:
        """``tasks.X.*`` for X in ``names`` (a task sees its ancestors only, as in Argo)."""
        scope: dict[str, str] = {}
        for dep in sorted(names):
            node = self.nodes[dep]
            prefix = f"tasks.{dep}"
            scope[f"{prefix}.status"] = node.phase
            scope[f"{prefix}.id"] = node.id
            if node.started_at is not None:
                scope[f"{prefix}.startedAt"] = _iso(node.started_at)
            if node.finished_at is not None:
                scope[f"{prefix}.finishedAt"] = _iso(node.finished_at)
            if node.exit_code is not None:
                scope[f"{prefix}.exitCode"] = str(node.exit_code)
            if dep in self.groups:  # an expanded task: the fan-in of its children
                scope.update(self.groups[dep].fan_in(prefix))
                continue
            if node.result is not None:
                scope[f"{prefix}.outputs.result"] = node.result
            for k, v in node.parameters.items():
                scope[f"{prefix}.outputs.parameters.{k}"] = v
            if node.parameters:
                scope[f"{prefix}.outputs.parameters"] = json.dumps(
                    [{"name": k, "value": v} for k, v in node.parameters.items()]
                )
        return scope

    def _artifact(self, art: dict[str, Any], field: str, allowed: set[str]) -> Source | None:
        """Resolve a task argument artifact: ``from`` a task/input, or its own ``s3``/``raw``."""
        from .bind import artifact_source

        ref = art.get("from")
        if not ref:
            require_resolved(art, field, {})
            return artifact_source(art)
        m = TAG.fullmatch(str(ref).strip())
        target = m.group(1).strip() if m else ""
        parts = target.split(".")
        found: Source | None = None
        if len(parts) == 5 and parts[0] == "tasks" and parts[2:4] == ["outputs", "artifacts"]:
            task, name = parts[1], parts[4]
            if task not in allowed:
                raise ResolveError(f"{field}.from: {ref} names task {task!r}, which is not a dependency of this task")
            node = self.nodes.get(task)
            found = node.artifacts.get(name) if node is not None else None
        elif len(parts) == 3 and parts[:2] == ["inputs", "artifacts"]:
            found = self.inputs.get(parts[2])
        else:
            raise ResolveError(
                f"{field}.from: {ref!r} is not {{{{tasks.X.outputs.artifacts.Y}}}} or {{{{inputs.artifacts.Y}}}}"
            )
        if found is None and not art.get("optional"):
            raise ResolveError(f"{field}.from: Unable to resolve: {ref} (the task produced no such artifact)")
        if isinstance(found, ArtifactRef):
            found = ArtifactRef(art["name"], found.key, found.bucket, found.archived, found.uri)
        return found

    def _outputs(self, phase: str) -> None:
        """A DAG template's outputs: parameters ``valueFrom.parameter`` and artifacts ``from``."""
        outputs = self.template.get("outputs") or {}
        if phase != Phase.SUCCEEDED or not outputs:
            return
        scope = {**self.scope, **self._task_scope(set(self.nodes))}
        for p in outputs.get("parameters") or []:
            vf = p.get("valueFrom") or {}
            value = substitute(vf.get("parameter"), scope) if "parameter" in vf else vf.get("default")
            if value is None or TAG.search(str(value)):
                value = vf.get("default", value)
            self.node.parameters[p["name"]] = str(value)
        for a in outputs.get("artifacts") or []:
            try:
                found = self._artifact(
                    a, f"spec.templates[{self.template['name']}].outputs.artifacts[{a['name']}]", set(self.nodes)
                )
            except ExecutorError:
                found = None
            if isinstance(found, ArtifactRef):
                self.node.artifacts[a["name"]] = found


def _iso(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
