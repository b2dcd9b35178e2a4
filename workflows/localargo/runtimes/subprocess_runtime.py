"""Run a container template as a local process in the repository root (no image, no isolation).

Mapping, documented in ``run-local --help``: the process runs in the repo root with
``PYTHONPATH`` set to it; ``command[0]`` ``python``/``python3`` is this interpreter; the
container paths ``/tmp/inputs`` and ``/tmp/outputs`` (and any emptyDir mount path) map to a
per-task sandbox, where artifact and parameter paths are read. A ``command``/``args`` item or
``env`` value is rewritten only when it is a path (see :func:`map_arg`); one that holds a
mapped path inside other text is refused, never rewritten. The environment is the
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

__all__ = ["SubprocessRuntime", "UNMAPPABLE", "host_path", "map_arg", "mentions", "unmappable"]

UNMAPPABLE = (
    "a mapped container path appears inside this value, not as a path argument (the whole value, "
    "or the value of --flag=PATH); the subprocess runtime cannot tell a path from data there: pass "
    "the path as its own argument or use --runtime docker"
)
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT", "TMPDIR")


def mentions(text: str, roots: list[str]) -> bool:
    """Whether a mapped container path appears in ``text`` as a whole path component."""
    prefixes = sorted((r.rstrip("/") or "/" for r in roots), key=len, reverse=True)
    return (
        bool(prefixes)
        and re.search(r"(?<![\w./-])(" + "|".join(map(re.escape, prefixes)) + r")(?=/|$|[^\w.-])", text) is not None
    )


def map_arg(arg: str, path_map: dict[str, Path]) -> str | None:
    """``arg`` with its mapped path rewritten to the sandbox; None when it cannot be mapped.

    Only a path argument is rewritten: one equal to a mapped path or starting with it and
    ``/``, or the value after ``=`` of a ``--flag=path``. A mapped path anywhere else in the
    text (``sh -c "cat /tmp/inputs/x"``, ``grep /mnt/vol /proc/mounts``) may be data or a path;
    the runtime cannot tell, so it refuses (None) rather than rewrite data or leave a path unmapped.
    """
    head, value = "", arg
    if arg.startswith("-") and "=" in arg:
        flag, _, value = arg.partition("=")
        head = flag + "="
    for prefix in sorted(path_map, key=len, reverse=True):
        root = prefix.rstrip("/")
        if value == root or value.startswith(root + "/"):
            rest = value[len(root) :]
            return None if mentions(head + rest, list(path_map)) else head + str(path_map[prefix]) + rest
    return None if mentions(arg, list(path_map)) else arg


def unmappable(text: str, roots: list[str]) -> bool:
    """Whether :func:`map_arg` refuses ``text`` given the container paths ``roots``."""
    return map_arg(text, {r: Path("/") for r in roots}) is None


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
        mapped = [map_arg(a, task.path_map) for a in [*task.command, *task.args]]
        env_mapped = {k: map_arg(v, task.path_map) for k, v in task.env.items()}
        refused = [a for a, m in zip([*task.command, *task.args], mapped, strict=True) if m is None]
        refused += [f"env {k}" for k, m in env_mapped.items() if m is None]
        if refused:  # a value filled in at run time; literal ones are refused when the manifest loads
            return Result(None, 0.0, task.log_path, error=f"{refused[0]!r}: {UNMAPPABLE}")
        argv = [m for m in mapped if m is not None] + ([task.script] if task.script else [])
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
        env.update({k: m for k, m in env_mapped.items() if m is not None})
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
