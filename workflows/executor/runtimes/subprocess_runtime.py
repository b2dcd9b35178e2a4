"""Run a container template as a local process in the repository root (no image, no isolation).

Mapping, documented in ``run-local --help``: the process runs in the repo root with
``PYTHONPATH`` set to it; ``command[0]`` ``python``/``python3`` is this interpreter; the
container paths ``/tmp/inputs`` and ``/tmp/outputs`` (and any emptyDir mount path) are
rewritten to a per-task sandbox wherever they appear in ``command``, ``args`` and ``env``
values, and artifact/parameter paths are read from there. The environment is the
template's ``env`` plus PATH/HOME/locale from this process: nothing else leaks in.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .base import Result, RuntimeTask, stream_process

__all__ = ["SubprocessRuntime", "remap", "host_path"]

_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "TMPDIR")


def remap(text: str, path_map: dict[str, Path]) -> str:
    """Rewrite each mapped container path prefix in ``text`` to its host directory, in one pass.

    The longest prefix wins (``/tmp/outputs`` before ``/tmp``), a prefix matches only as a
    whole path component, and text already rewritten is never rewritten again.
    """
    if not path_map:
        return text
    prefixes = sorted((p.rstrip("/") for p in path_map), key=len, reverse=True)
    hosts = {p.rstrip("/"): str(h) for p, h in path_map.items()}
    pattern = re.compile(r"(?<![\w./-])(" + "|".join(map(re.escape, prefixes)) + r")(?=/|$|[^\w.-])")
    return pattern.sub(lambda m: hosts[m.group(1)], text)


def host_path(container_path: str, path_map: dict[str, Path]) -> Path | None:
    """The host path standing in for ``container_path``, or None when no mapped prefix covers it."""
    for prefix in sorted(path_map, key=len, reverse=True):
        p = prefix.rstrip("/")
        if container_path == p or container_path.startswith(p + "/"):
            return path_map[prefix] / container_path[len(p) :].lstrip("/")
    return None


class SubprocessRuntime:
    """``run(task)`` starts ``command + args`` as a child process group and streams its output."""

    name = "subprocess"

    def __init__(self, repo_root: Path) -> None:
        self.repo_root = repo_root

    def check(self, images: set[str]) -> None:
        """Nothing to check: images are not used."""

    def run(self, task: RuntimeTask) -> Result:
        argv = [remap(a, task.path_map) for a in [*task.command, *task.args]]
        started = time.monotonic()
        if not task.command:
            return Result(
                None,
                0.0,
                task.log_path,
                error="the subprocess runtime needs the template's "
                "container.command (an image's entrypoint is unknown here); use --runtime docker",
            )
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        elif shutil.which(argv[0]) is None:
            return Result(None, 0.0, task.log_path, error=f"{argv[0]!r}: executable file not found in $PATH")
        env = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ}
        env.update({k: remap(v, task.path_map) for k, v in task.env.items()})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.repo_root), task.env.get("PYTHONPATH")]))
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.repo_root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return Result(None, time.monotonic() - started, task.log_path, error=f"{argv[0]}: {exc.strerror}")

        def kill() -> None:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    return
                try:
                    proc.wait(timeout=wait)
                    return
                except subprocess.TimeoutExpired:
                    continue

        timed_out, cancelled, stdout = stream_process(proc, task, kill)
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode  # signal N → 128+N
        if timed_out or cancelled:
            code = None

        def copy_out(container_path: str, dest: Path) -> bool:
            src = host_path(container_path, task.path_map)
            if src is None or not src.exists():
                return False
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dest, dirs_exist_ok=True)
            else:
                shutil.copyfile(src, dest)
            return True

        return Result(
            code,
            time.monotonic() - started,
            task.log_path,
            stdout=stdout,
            timed_out=timed_out,
            cancelled=cancelled,
            copy_out=copy_out,
        )
