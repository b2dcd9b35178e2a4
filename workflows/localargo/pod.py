"""One container (or script) node: its attempts under ``retryStrategy``, inputs in, outputs out.

Each attempt is what a pod is on the cluster: the template is resolved with ``pod.name``,
``retries`` and ``lastRetry.*``, input artifacts are staged from the repository into the
attempt's sandbox, the runtime runs it, then output parameters are read and output
artifacts uploaded — also when the attempt failed, whenever the file exists (Argo's wait
container saves the outputs of failed steps too; a missing output fails only a
successful attempt, as Error). With a retryStrategy the node is a ``Retry`` node whose
children ``name(0)``, ``name(1)``, ... are the attempts, as ``argo get`` shows them.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from .artifacts import ArtifactNotFound, pack, unpack_or_copy
from .bind import RawData, Source, artifact_source, resolve_env, template_scope
from .context import RunContext
from .errors import ExecutorError, ResolveError, Unsupported
from .refusals import SCRIPT_LANGS, SOURCE_PATHS
from .retry import RetrySpec, Step, last_retry_vars
from .runtimes import Mount, Result, RuntimeTask
from .runtimes.subprocess_runtime import host_path, mentions
from .status import ArtifactRef, Node, Phase, pod_name
from .templating import require_resolved, substitute

__all__ = ["run_pod"]

log = logging.getLogger(__name__)

SCRIPT_PATH = "/argo/staging/script"


def run_pod(
    ctx: RunContext,
    node: Node,
    template: dict[str, Any],
    params: dict[str, str],
    arg_artifacts: dict[str, Source | None],
) -> None:
    """Run ``template`` (container or script) for ``node`` until it succeeds or its retries end."""
    where = f"spec.templates[{template['name']}]"
    scope = {**ctx.global_scope, **template_scope(template, params, node.name)}
    node.start()
    try:
        raw_retry = substitute(template.get("retryStrategy"), scope, f"{where}.retryStrategy")
        strategy = RetrySpec.parse(raw_retry, f"{where}.retryStrategy")
    except ExecutorError as exc:
        node.finish(Phase.ERROR, str(exc))
        ctx.changed(node)
        return
    node.type = "Retry" if strategy else "Pod"
    ctx.changed(node)
    first_started, attempts, last, error, deadline = 0.0, 0, None, "", None
    why: str | None = ""
    while True:
        attempt = node
        if strategy is not None:
            attempt = node.add_child(
                Node(
                    f"{node.name}({attempts})",
                    f"{node.display_name}({attempts})",
                    "Pod",
                    template["name"],
                    ctx.workflow,
                )
            )
        _attempt(ctx, attempt, template, scope, arg_artifacts, attempts, last, deadline)
        first_started = first_started or attempt.started_at or time.time()
        attempts, last = attempts + 1, attempt
        if strategy is None or attempt.phase == Phase.SUCCEEDED:
            break
        try:
            step = _next_step(ctx, node, strategy, attempt, first_started, attempts)
        except ExecutorError as exc:  # Argo marks the Retry node Error (e.g. a backoff without duration)
            error = str(exc)
            break
        why, deadline = step.stop, step.deadline
        if why is not None:
            break
    if strategy is not None and last is not None:
        with node.lock:
            node.parameters, node.artifacts = dict(last.parameters), dict(last.artifacts)
            node.result, node.exit_code, node.pod_name = last.result, last.exit_code, last.pod_name
        if error:
            node.finish(Phase.ERROR, error)
        else:
            node.finish(last.phase, (why or "") if last.phase != Phase.SUCCEEDED else "")
        ctx.changed(node)


def _next_step(
    ctx: RunContext, node: Node, strategy: RetrySpec, last: Node, first_started: float, attempts: int
) -> Step:
    """Wait out the backoff where Argo would, then decide: retry (``stop`` None) or stop with a message."""
    while not ctx.cancel.is_set():
        step = strategy.decide(last, first_started, attempts, time.time())
        if not step.wait:
            if step.stop is None:
                log.info("%s: retrying (attempt %d: %s)", node.display_name, attempts, last.message)
            return step
        node.message = f"Backoff for {step.wait:.1f}s"  # what argo get shows while it waits
        ctx.changed(node)
        ctx.cancel.wait(step.wait)
    return Step(stop=ctx.cancel_reason)


def _attempt(
    ctx: RunContext,
    node: Node,
    template: dict[str, Any],
    scope: dict[str, str],
    arg_artifacts: dict[str, Source | None],
    retries: int,
    last: Node | None,
    deadline: float | None = None,
) -> None:
    where = f"spec.templates[{template['name']}]"
    pod = pod_name(ctx.workflow, node.name, template["name"])
    node.pod_name = pod
    node.log_path = ctx.run_dir / "logs" / f"{pod}.log"
    node.log_path.unlink(missing_ok=True)
    attempt_scope = {
        **scope,
        "pod.name": pod,
        "retries": str(retries),
        **{f"lastRetry.{k}": v for k, v in last_retry_vars(last).items()},
    }
    if ctx.pod_slots is not None:
        while not ctx.pod_slots.acquire(timeout=0.2):
            if ctx.cancel.is_set():
                node.finish(Phase.FAILED, ctx.cancel_reason)
                return
    try:
        node.start()
        ctx.changed(node)
        if deadline is not None and time.time() >= deadline:  # Argo's executor kills it at once
            node.finish(Phase.FAILED, "Step exceeded its deadline")
            ctx.changed(node)
            return
        sandbox = ctx.run_dir / "pods" / pod
        shutil.rmtree(sandbox, ignore_errors=True)
        result: Result | None = None
        try:
            spec = substitute(template, attempt_scope, where)
            spec.pop("retryStrategy", None)
            require_resolved(spec, where, attempt_scope)
            task = _prepare(ctx, node, spec, arg_artifacts, pod, sandbox, where)
            task.kill_at = deadline
            result = ctx.runtime.run(task)
            phase, message = _phase(ctx, result)
            node.exit_code, node.result = result.exit_code, result.stdout
            phase, message = _collect(ctx, node, spec, result, phase, message, sandbox)
        except (ExecutorError, OSError) as exc:
            phase, message = Phase.ERROR, str(exc)
        finally:
            if result is not None:
                result.cleanup()
        node.finish(phase, message)
        if _collected_by_pod_gc(ctx.spec, phase):
            shutil.rmtree(sandbox, ignore_errors=True)
        ctx.changed(node)
    finally:
        if ctx.pod_slots is not None:
            ctx.pod_slots.release()


def _collected_by_pod_gc(spec: dict[str, Any], phase: str) -> bool:
    """Argo's ``podGC`` deletes a pod (and its emptyDirs) when it ends so; locally its sandbox goes.

    Outputs are already in the artifact repository and the log in ``<run>/logs``: at 100 files of
    1M flows, keeping every sandbox would hold each pod's staged inputs and outputs twice over.
    ``OnWorkflowSuccess``/``OnWorkflowCompletion`` keep them (the run is inspected as a whole).
    """
    strategy = (spec.get("podGC") or {}).get("strategy")
    return strategy == "OnPodCompletion" or (strategy == "OnPodSuccess" and phase == Phase.SUCCEEDED)


def _phase(ctx: RunContext, result: Result) -> tuple[str, str]:
    if result.error:
        return Phase.ERROR, result.error
    if result.cancelled:
        return Phase.FAILED, ctx.cancel_reason or "terminated"
    if result.timed_out:
        return Phase.FAILED, result.timed_out
    if result.exit_code == 0:
        return Phase.SUCCEEDED, ""
    return Phase.FAILED, f"Error (exit code {result.exit_code})"


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o777)  # a container user (runAsUser) must be able to write here
    return path


def _prepare(
    ctx: RunContext,
    node: Node,
    spec: dict[str, Any],
    arg_artifacts: dict[str, Source | None],
    pod: str,
    sandbox: Path,
    where: str,
) -> RuntimeTask:
    """Sandbox, volumes and staged inputs, then the RuntimeTask for this attempt."""
    kind = "script" if "script" in spec else "container"
    c = spec[kind]
    docker = ctx.runtime_name == "docker"
    path_map, mounts = _filesystem(ctx, node, spec, c, arg_artifacts, sandbox, docker, where)
    command, args = list(c.get("command") or []), [str(a) for a in c.get("args") or []]
    if kind == "script":
        if not command or Path(command[0]).name not in SCRIPT_LANGS:
            raise Unsupported(
                f"{where}.script.command",
                f"{command[:1]} is not a supported script language ({', '.join(SCRIPT_LANGS)})",
            )
        script = sandbox / "script"
        code = str(c.get("source", ""))
        if not docker and mentions(code, list(path_map)):  # code, not a path: it is never rewritten
            raise Unsupported(f"{where}.script.source", SOURCE_PATHS)
        script.write_text(code)
        os.chmod(script, 0o755)
        if docker:
            mounts.append(Mount(script, SCRIPT_PATH, read_only=True))
            args.append(SCRIPT_PATH)  # after the args, as Argo's executeScript appends it
    env = resolve_env(c.get("env") or [], ctx.env, pod, ctx.namespace, f"{where}.{kind}")
    task = RuntimeTask(
        name=node.display_name,
        container_name=pod,
        image=str(c.get("image", "")),
        command=[str(x) for x in command],
        args=args,
        script=str(script) if kind == "script" and not docker else None,
        env=env,
        sandbox=sandbox,
        path_map=path_map,
        mounts=mounts,
        working_dir=c.get("workingDir") if docker else None,
        deadline=float(spec["activeDeadlineSeconds"]) if spec.get("activeDeadlineSeconds") else None,
        cancel=ctx.cancel,
        log_path=node.log_path or sandbox / "log",
        echo=(lambda line: ctx.echo(node.display_name, line)) if ctx.echo else None,  # type: ignore[misc]
    )
    _security(
        task, spec.get("securityContext") or ctx.spec.get("securityContext") or {}, c.get("securityContext") or {}
    )
    limits = (c.get("resources") or {}).get("limits") or {}
    task.cpus = str(limits["cpu"]) if "cpu" in limits else None
    task.memory = str(limits["memory"]) if "memory" in limits else None
    return task


def _filesystem(
    ctx: RunContext,
    node: Node,
    spec: dict[str, Any],
    c: dict[str, Any],
    arg_artifacts: dict[str, Source | None],
    sandbox: Path,
    docker: bool,
    where: str,
) -> tuple[dict[str, Path], list[Mount]]:
    """Container path → sandbox mapping (subprocess) or bind mounts (docker), with inputs staged in place.

    Subprocess: /tmp/inputs, /tmp/outputs and each emptyDir mountPath map to sandbox dirs, and
    every artifact/parameter path must fall under one of them. Docker: emptyDir volumes and
    each input artifact are bind-mounted; outputs elsewhere are fetched with docker cp.
    An optional input whose key is not in the repository is skipped: its path is not created.
    """
    path_map = {"/tmp/inputs": _mkdir(sandbox / "tmp" / "inputs"), "/tmp/outputs": _mkdir(sandbox / "tmp" / "outputs")}
    mounts: list[Mount] = []
    volumes = {v["name"]: v for v in (ctx.spec.get("volumes") or []) + (spec.get("volumes") or [])}
    for vm in c.get("volumeMounts") or []:
        if vm["name"] not in volumes:
            raise ResolveError(
                f"{where}.volumeMounts[{vm['name']}]: no volume named {vm['name']!r} in the "
                "template's or the workflow's volumes"
            )
        host = _mkdir(sandbox / "volumes" / vm["name"])
        path_map[vm["mountPath"]] = host
        mounts.append(Mount(host, vm["mountPath"], bool(vm.get("readOnly"))))
    for art in (spec.get("inputs") or {}).get("artifacts") or []:
        source = arg_artifacts.get(art["name"]) if art["name"] in arg_artifacts else artifact_source(art)
        if source is None:
            if not art.get("optional"):
                raise ResolveError(f"{where}: inputs.artifacts.{art['name']} was not supplied (required artifact)")
            continue
        path = str(art["path"])
        if docker:
            dest = sandbox / "artifacts" / art["name"] / Path(path).name
        else:
            dest = host_path(path, path_map) or _unmapped(where, f"inputs.artifacts[{art['name']}].path", path)
        if _stage(ctx, node, source, dest, art, sandbox / "staging") and docker:
            mounts.append(Mount(dest, path))
    if not docker:
        outputs = spec.get("outputs") or {}
        for kind, items in (("parameters", outputs.get("parameters")), ("artifacts", outputs.get("artifacts"))):
            for item in items or []:
                out_path = item.get("path") or (item.get("valueFrom") or {}).get("path")
                if out_path and host_path(str(out_path), path_map) is None:
                    _unmapped(where, f"outputs.{kind}[{item['name']}].path", str(out_path))
    return path_map, mounts


def _unmapped(where: str, field: str, path: str) -> Path:
    raise ResolveError(
        f"{where}.{field}: {path} is outside /tmp/inputs, /tmp/outputs and the template's volume "
        "mounts, so the subprocess runtime cannot map it to the sandbox; use --runtime docker"
    )


def _security(task: RuntimeTask, pod: dict[str, Any], ctr: dict[str, Any]) -> None:
    """Container securityContext fields override the pod's, as in Kubernetes."""
    uid, gid = ctr.get("runAsUser", pod.get("runAsUser")), ctr.get("runAsGroup", pod.get("runAsGroup"))
    if uid is not None:
        task.user = f"{uid}:{gid}" if gid is not None else str(uid)
    task.group_add = [
        str(g) for g in ([pod["fsGroup"]] if "fsGroup" in pod else []) + list(pod.get("supplementalGroups") or [])
    ]
    task.run_as_non_root = bool(ctr.get("runAsNonRoot", pod.get("runAsNonRoot", False)))
    task.read_only_root = bool(ctr.get("readOnlyRootFilesystem", False))
    task.no_new_privileges = ctr.get("allowPrivilegeEscalation") is False
    caps = ctr.get("capabilities") or {}
    task.cap_drop, task.cap_add = [str(c) for c in caps.get("drop") or []], [str(c) for c in caps.get("add") or []]


def _stage(ctx: RunContext, node: Node, source: Source, dest: Path, art: dict[str, Any], staging: Path) -> bool:
    """Put an input artifact at ``dest``: raw data, or a file or directory downloaded (into ``staging``)
    and unpacked like Argo does. False when it is optional and its key is not in the repository:
    as in Argo's executor, it is skipped and nothing is created on the artifact's path.
    """
    if isinstance(source, RawData):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(source.data)
    else:
        staging.mkdir(parents=True, exist_ok=True)
        tmp = staging / art["name"]
        try:
            ctx.repo.get(source.key, tmp, source.bucket)
        except ExecutorError as exc:
            if art.get("optional") and isinstance(exc, ArtifactNotFound):
                log.info(
                    "%s: skipping optional input artifact %s that was not found: %s",
                    node.display_name,
                    art["name"],
                    exc,
                )
                return False
            raise ExecutorError(f"failed to load artifacts: inputs.artifacts.{art['name']}: {exc}") from exc
        archived = False if "none" in (art.get("archive") or {}) else source.archived
        unpack_or_copy(tmp, dest, archived)
    if art.get("mode") is not None:
        os.chmod(dest, int(art["mode"]))
    else:
        for p in [dest, *dest.rglob("*")] if dest.is_dir() else [dest]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return True


def _collect(
    ctx: RunContext, node: Node, spec: dict[str, Any], result: Result, phase: str, message: str, sandbox: Path
) -> tuple[str, str]:
    """Read output parameters and upload output artifacts; a missing one fails only a successful attempt."""
    ok, problems = phase == Phase.SUCCEEDED, []
    out = sandbox / "collected"
    outputs = spec.get("outputs") or {}
    for p in outputs.get("parameters") or []:
        vf = p.get("valueFrom") or {}
        if "parameter" in vf:
            problems.append(f"outputs.parameters.{p['name']}: valueFrom.parameter is only valid in a dag template")
            continue
        dest = out / "params" / p["name"]
        if vf.get("path") and result.copy_out(str(vf["path"]), dest) and dest.is_file():
            node.parameters[p["name"]] = dest.read_text(errors="replace").removesuffix("\n")
        elif "default" in vf:
            node.parameters[p["name"]] = str(vf["default"])
        elif ok:
            problems.append(f"output parameter {p['name']}: {vf.get('path')} does not exist")
    for a in outputs.get("artifacts") or []:
        dest = out / "artifacts" / a["name"] / Path(str(a["path"])).name
        if not result.copy_out(str(a["path"]), dest):
            if not a.get("optional") and ok:
                problems.append(f"output artifact {a['name']}: {a['path']} does not exist")
            elif not a.get("optional"):
                log.warning(
                    "%s: output artifact %s not found at %s (the task failed before writing it)",
                    node.display_name,
                    a["name"],
                    a["path"],
                )
            continue
        try:
            node.artifacts[a["name"]] = _upload(ctx, node, a, dest, out / "packed" / a["name"])
        except ExecutorError as exc:
            problems.append(str(exc))
    if problems and ok:
        return Phase.ERROR, "failed to save outputs: " + "; ".join(problems)
    if problems:
        log.warning("%s: %s", node.display_name, "; ".join(problems))
    return phase, message


def _upload(ctx: RunContext, node: Node, art: dict[str, Any], local: Path, pack_dir: Path) -> ArtifactRef:
    none = "none" in (art.get("archive") or {})
    if none and local.is_dir():
        raise ExecutorError(
            f"output artifact {art['name']}: {art['path']} is a directory; archive: none of a "
            "directory is not supported locally (drop archive: none to store a tar.gz)"
        )
    upload = local
    if not none:
        pack_dir.mkdir(parents=True, exist_ok=True)
        upload = pack(local, pack_dir)
    s3 = art.get("s3") or {}
    key = str(s3.get("key") or f"{ctx.workflow}/{node.pod_name}/{upload.name}")
    bucket = s3.get("bucket")
    ctx.repo.put(upload, key, bucket)
    return ArtifactRef(art["name"], key, bucket, archived=not none, uri=ctx.repo.uri(key, bucket))
