"""Run a container template in its image with the docker CLI, as a pod's main container would.

``docker run --network host`` with the template's image, command/args and env; the
securityContext maps to ``--user``, ``--group-add`` (fsGroup), ``--read-only``
(readOnlyRootFilesystem), ``--cap-drop``/``--cap-add`` and ``no-new-privileges``;
``limits.cpu``/``limits.memory`` to ``--cpus``/``--memory``. Input artifacts are bind-mounted
at their paths and emptyDir volumes are sandbox directories mounted at their mountPath
(so a read-only root stays read-only elsewhere, as on the cluster). Outputs are collected
after exit from a mounted directory or with ``docker cp`` from the stopped container,
like Argo's wait container; then the container is removed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import RuntimeUnavailable
from .base import Result, RuntimeTask, stream_process

__all__ = ["DockerRuntime"]


def _memory(limit: str) -> str:
    """Kubernetes quantity → docker memory (``4Gi`` → ``4g``, ``512Mi`` → ``512m``)."""
    m = re.fullmatch(r"(\d+)([KMGT]i?)?", limit.strip())
    if not m:
        return limit
    unit = (m.group(2) or "b")[0].lower()
    return m.group(1) + unit


def _cpus(limit: str) -> str:
    limit = limit.strip()
    return str(int(limit[:-1]) / 1000) if limit.endswith("m") else limit


class DockerRuntime:
    """``run(task)`` = ``docker run`` of the template's image; needs a running docker daemon."""

    name = "docker"

    def __init__(self, docker: str = "docker", build_hint: Callable[[Sequence[str]], str | None] | None = None) -> None:
        self.docker = docker
        self.build_hint = build_hint
        """``build_hint(missing)``: the command that builds those images, when the caller knows one."""

    def check(self, images: set[str]) -> None:
        """Fail early, naming the build command, when docker or an image is missing."""
        if shutil.which(self.docker) is None:
            raise RuntimeUnavailable("docker CLI not found; install docker or use --runtime subprocess")
        ping = subprocess.run(
            [self.docker, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
        )
        if ping.returncode != 0:
            raise RuntimeUnavailable(
                f"docker daemon not reachable ({ping.stderr.strip()[:200]}); start dockerd or use --runtime subprocess"
            )
        missing = [
            i
            for i in sorted(images)
            if subprocess.run([self.docker, "image", "inspect", i], capture_output=True).returncode != 0
        ]
        if missing:
            hint = self.build_hint(missing) if self.build_hint else None
            how = f"build with: {hint}" if hint else "build or load it (docker build -t IMAGE ...)"
            raise RuntimeUnavailable(f"image(s) not found locally: {', '.join(missing)}; {how}")

    def _argv(self, task: RuntimeTask) -> list[str]:
        argv = [self.docker, "run", "--name", task.container_name, "--network", "host", "--init"]
        if task.user:
            argv += ["--user", task.user]
        for group in task.group_add:
            argv += ["--group-add", group]
        if task.read_only_root:
            argv.append("--read-only")
        if task.no_new_privileges:
            argv += ["--security-opt", "no-new-privileges"]
        argv += [f"--cap-drop={c}" for c in task.cap_drop] + [f"--cap-add={c}" for c in task.cap_add]
        if task.cpus:
            argv += ["--cpus", _cpus(task.cpus)]
        if task.memory:
            argv += ["--memory", _memory(task.memory)]
        if task.working_dir:
            argv += ["--workdir", task.working_dir]
        for m in task.mounts:
            argv += [
                "--mount",
                f"type=bind,source={m.host},target={m.container}" + (",readonly" if m.read_only else ""),
            ]
        for name in task.env:
            argv += ["--env", name]  # value passed through the CLI's environment, never on the command line
        if task.command:
            argv += ["--entrypoint", task.command[0], task.image, *task.command[1:], *task.args]
        else:
            argv += [task.image, *task.args]
        return argv

    def _user_check(self, task: RuntimeTask) -> str | None:
        if not task.run_as_non_root:
            return None
        user = task.user
        if user is None:
            out = subprocess.run(
                [self.docker, "image", "inspect", "--format", "{{.Config.User}}", task.image],
                capture_output=True,
                text=True,
            )
            user = out.stdout.strip() or "0"
        if user.split(":")[0] in ("0", "root"):
            return "container has runAsNonRoot and image will run as root"
        return None

    def run(self, task: RuntimeTask) -> Result:
        started = time.monotonic()
        refused = self._user_check(task)
        if refused:
            return Result(None, 0.0, task.log_path, error=refused)
        subprocess.run([self.docker, "rm", "-f", task.container_name], capture_output=True)
        env = {**os.environ, **task.env}  # only the names given with --env reach the container
        proc = subprocess.Popen(
            self._argv(task), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

        def kill() -> None:
            subprocess.run([self.docker, "kill", "--signal", "TERM", task.container_name], capture_output=True)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                subprocess.run([self.docker, "kill", task.container_name], capture_output=True)

        timed_out, cancelled, stdout = stream_process(proc, task, kill)
        code: int | None = proc.returncode
        error = None
        if code in (125, 126, 127) and not self._container_ran(task.container_name):
            error = f"docker could not start the container (exit {code}); see {task.log_path}"
            code = None
        if timed_out or cancelled:
            code = None

        def copy_out(container_path: str, dest: Path) -> bool:
            for m in sorted(task.mounts, key=lambda m: len(m.container), reverse=True):
                root = m.container.rstrip("/")
                if m.host.is_dir() and (container_path == root or container_path.startswith(root + "/")):
                    src = m.host / container_path[len(root) :].lstrip("/")
                    if not src.exists():
                        return False
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    if src.is_dir():
                        shutil.copytree(src, dest, dirs_exist_ok=True)
                    else:
                        shutil.copyfile(src, dest)
                    return True
            dest.parent.mkdir(parents=True, exist_ok=True)
            cp = subprocess.run(
                [self.docker, "cp", f"{task.container_name}:{container_path}", str(dest)], capture_output=True
            )
            return cp.returncode == 0

        def cleanup() -> None:
            subprocess.run([self.docker, "rm", "-f", task.container_name], capture_output=True)

        return Result(
            code,
            time.monotonic() - started,
            task.log_path,
            stdout=stdout,
            timed_out=timed_out,
            cancelled=cancelled,
            error=error,
            copy_out=copy_out,
            cleanup=cleanup,
        )

    def _container_ran(self, name: str) -> bool:
        out = subprocess.run(
            [self.docker, "inspect", "--format", "{{.State.StartedAt}}", name], capture_output=True, text=True
        )
        return out.returncode == 0 and not out.stdout.strip().startswith("0001-")
