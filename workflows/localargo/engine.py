"""Run a whole workflow: load, check, set up repository and runtime, execute the entrypoint, report.

The workflow's phase is its entrypoint node's; ``run-local`` exits 0 on Succeeded and 1
on Failed or Error, as ``argo submit --wait`` would. State lives in
``<workdir>/<workflow>/``: ``status.json`` (the node tree), ``logs/<pod>.log`` (each
attempt's output) and ``pods/<pod>/`` (the sandboxes).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .artifacts import open_repository
from .bind import Source, bind_artifacts, bind_parameters, template_scope
from .context import RunContext
from .dag import DagRun
from .errors import ExecutorError, ManifestError
from .manifest import Manifest, load_manifest
from .memo import Memo
from .pod import run_pod
from .runtimes import BuildHint, get_runtime
from .status import Node, Phase, write_json
from .templating import TAG, substitute
from .tree import TreeDisplay

__all__ = ["RunOptions", "Outcome", "run_workflow", "execute_template", "read_env_file"]

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """One run. The caller says where things live; nothing here knows what the workflow does."""

    manifest: Path
    artifacts: str
    """The artifact repository: a directory or ``s3://BUCKET[/PREFIX]``."""
    workdir: Path
    """Where runs keep sandboxes, logs and status.json (``<workdir>/<workflow>/``)."""
    parameters: dict[str, str] = field(default_factory=dict)
    runtime: str = "subprocess"
    workspace: Path = field(default_factory=Path.cwd)
    """The subprocess runtime's working directory, put first on ``PYTHONPATH`` (the code the commands run)."""
    build_hint: BuildHint | None = None
    """The docker runtime's advice for images missing locally (default: ``docker build -t IMAGE``)."""
    env_file: Path | None = None
    verbose: bool = False
    name: str | None = None
    namespace: str | None = None
    s3_endpoint: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    """Added to the executor's environment (the demo passes its services this way)."""
    tail_lines: int = 20


@dataclass
class Outcome:
    name: str
    phase: str
    message: str
    status_path: Path
    root: Node

    @property
    def exit_code(self) -> int:
        return 0 if self.phase == Phase.SUCCEEDED else 1


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, optional ``export``, quotes stripped) — values never logged."""
    env: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ExecutorError(f"--env-file {path}: cannot read ({exc.strerror})") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise ExecutorError(f"--env-file {path}:{n}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def execute_template(
    ctx: RunContext,
    node: Node,
    template: dict[str, Any],
    arg_params: dict[str, str],
    arg_artifacts: dict[str, Source | None],
) -> None:
    """Run ``template`` for ``node``: a container/script pod, or a (nested) DAG."""
    where = f"spec.templates[{template['name']}]"
    try:
        params = bind_parameters(template, arg_params, where)
        scope = {**ctx.global_scope, **template_scope(template, params, node.name)}
        memo = Memo.of(template, scope, ctx.run_dir.parent, ctx.namespace)
        if memo is not None and memo.load(node):  # a cache hit: no pod, the cached outputs
            node.type = "DAG" if "dag" in template else "Pod"
            ctx.changed(node)
            return
        if "dag" in template:
            node.type = "DAG"
            inputs = bind_artifacts(template, arg_artifacts, where)
            DagRun(ctx, node, template, scope, inputs, execute_template).run()
        else:
            run_pod(ctx, node, template, params, arg_artifacts)
        if memo is not None:
            memo.save(node)
    except ExecutorError as exc:
        node.finish(Phase.ERROR, str(exc))
        ctx.changed(node)


def _global_scope(m: Manifest) -> dict[str, str]:
    scope = {
        "workflow.name": m.name,
        "workflow.namespace": m.namespace,
        "workflow.uid": str(uuid.uuid4()),
        "workflow.serviceAccountName": str(m.spec.get("serviceAccountName", "default")),
        "workflow.mainEntrypoint": str(m.spec["entrypoint"]),
        "workflow.creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "workflow.priority": str(m.spec.get("priority", 0)),
    }
    scope.update({f"workflow.parameters.{k}": v for k, v in m.parameters.items()})
    scope.update({f"workflow.labels.{k}": str(v) for k, v in m.labels.items()})
    scope.update({f"workflow.annotations.{k}": str(v) for k, v in m.annotations.items()})
    return scope


def _report_ignored(m: Manifest, repo: str) -> None:
    grouped: dict[tuple[str, str], int] = {}
    for f, reason in m.ignored:
        key = (re.sub(r"\[[^\]]*\]", "[*]", f), reason)
        grouped[key] = grouped.get(key, 0) + 1
    for (f, reason), count in sorted(grouped.items()):
        if f == "spec.artifactRepositoryRef":
            ref = m.spec["artifactRepositoryRef"]
            log.info(
                "artifactRepositoryRef %s/%s (a ConfigMap on the cluster) → %s",
                ref.get("configMap"),
                ref.get("key"),
                repo,
            )
        else:
            log.info("ignored (cluster-only) %s%s: %s", f, f" ×{count}" if count > 1 else "", reason)


def _images(m: Manifest, scope: dict[str, str]) -> set[str]:
    images = set()
    for t in m.templates.values():
        for kind in ("container", "script"):
            if kind in t and t[kind].get("image"):
                image = str(substitute(t[kind]["image"], scope))
                if not TAG.search(image):
                    images.add(image)
    return images


def run_workflow(opts: RunOptions, out: TextIO | None = None) -> Outcome:
    """Run the manifest to completion; raises :class:`ExecutorError` before anything runs if it cannot."""
    out = out or sys.stdout
    env = {**os.environ, **(read_env_file(opts.env_file) if opts.env_file else {}), **opts.extra_env}
    m = load_manifest(opts.manifest, opts.parameters, opts.name, opts.namespace, opts.runtime)
    repo = open_repository(opts.artifacts, env, opts.s3_endpoint)
    _report_ignored(m, str(repo))
    scope = _global_scope(m)
    runtime = get_runtime(opts.runtime, opts.workspace.resolve(), opts.build_hint)
    runtime.check(_images(m, scope))
    run_dir = (opts.workdir / m.name).resolve()
    if (run_dir / "status.json").exists():
        raise ManifestError(f"{run_dir} holds an earlier run named {m.name}; use another --name or remove it")
    entry = m.templates[m.spec["entrypoint"]]
    root = Node(m.name, m.name, "DAG" if "dag" in entry else "Pod", entry["name"], m.name)
    header = {
        "Name": m.name,
        "Namespace": m.namespace,
        "Manifest": str(opts.manifest),
        "Runtime": opts.runtime,
        "Artifacts": str(repo),
        "Workdir": str(run_dir),
    }
    display = TreeDisplay(root, header, out, live=out.isatty() and not opts.verbose)
    slots = int(m.spec["parallelism"]) if m.spec.get("parallelism") else None
    ctx = RunContext(
        workflow=m.name,
        namespace=m.namespace,
        templates=m.templates,
        spec=m.spec,
        global_scope=scope,
        repo=repo,
        runtime=runtime,
        runtime_name=opts.runtime,
        run_dir=run_dir,
        repo_root=opts.workspace.resolve(),
        env=env,
        on_change=display.update,
        echo=(lambda task, line: print(f"{task} | {line}", file=out, flush=True)) if opts.verbose else None,
        pod_slots=threading.BoundedSemaphore(slots) if slots else None,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    _cancel_on(ctx, m.spec.get("activeDeadlineSeconds"))
    display.start()
    try:
        execute_template(ctx, root, entry, dict(m.parameters), {})
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
        display.finish()
        if ctx.cancel.is_set() and ctx.cancel_reason and root.phase != Phase.SUCCEEDED:
            root.message = ctx.cancel_reason
        write_json(
            run_dir / "status.json",
            {
                "name": m.name,
                "namespace": m.namespace,
                "kind": m.kind,
                "manifest": str(opts.manifest),
                "phase": root.phase,
                "message": root.message,
                "parameters": m.parameters,
                "runtime": opts.runtime,
                "artifactRepository": str(repo),
                "root": root.as_json(),
            },
        )
    _tails(root, out, opts.tail_lines, opts.verbose)
    out.write(f"\nstatus: {run_dir / 'status.json'}\n")
    return Outcome(m.name, root.phase, root.message, run_dir / "status.json", root)


def _cancel_on(ctx: RunContext, deadline: Any) -> None:
    """Stop the run on the workflow's activeDeadlineSeconds and on Ctrl-C (running tasks are terminated)."""
    if deadline:

        def expire() -> None:
            ctx.cancel_reason = f"Step exceeded its deadline (workflow activeDeadlineSeconds={deadline})"
            ctx.cancel.set()

        timer = threading.Timer(float(deadline), expire)
        timer.daemon = True
        timer.start()
    if threading.current_thread() is threading.main_thread():

        def interrupt(signum: int, frame: Any) -> None:
            ctx.cancel_reason = "Stopped: interrupted (Ctrl-C)"
            ctx.cancel.set()

        signal.signal(signal.SIGINT, interrupt)


def _tails(root: Node, out: TextIO, lines: int, verbose: bool) -> None:
    """Print the end of each failed task's last attempt log (already streamed with --verbose)."""
    if verbose or lines <= 0 or root.phase == Phase.SUCCEEDED:
        return

    def leaves(node: Node) -> list[Node]:
        if node.type == "Retry":
            return node.children[-1:]
        if node.children:
            return [leaf for c in node.children for leaf in leaves(c)]
        return [node]

    for node in leaves(root):
        if node.phase in Phase.FAILED_OR_ERROR and node.log_path and node.log_path.exists():
            text = node.log_path.read_text(errors="replace").splitlines()[-lines:]
            if not text:
                continue
            out.write(f"\n--- {node.display_name}: last {len(text)} lines of {node.log_path} ---\n")
            out.write("\n".join(text) + "\n")
