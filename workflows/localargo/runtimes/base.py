"""The one-method runtime interface: ``run(task) -> Result``, and the log streaming both share."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

__all__ = ["Mount", "RuntimeTask", "Result", "Runtime", "stream_process"]

RESULT_LIMIT = 256 * 1024
"""Argo keeps at most 256 KiB of a container's stdout as ``outputs.result``."""


@dataclass(frozen=True)
class Mount:
    """A host directory or file visible in the container at ``container`` (docker runtime)."""

    host: Path
    container: str
    read_only: bool = False


@dataclass
class RuntimeTask:
    """Everything a runtime needs to run one attempt of a container template."""

    name: str
    """Node display name, used to prefix streamed lines."""
    container_name: str
    """Argo's pod name for this attempt; the docker container is named after it."""
    image: str
    command: list[str]
    args: list[str]
    env: dict[str, str]
    """The container's environment; values may be secrets and are never logged."""
    sandbox: Path
    script: str | None = None
    """Host path of a script template's source, run after ``args`` as Argo does (a host path: never mapped)."""
    path_map: dict[str, Path] = field(default_factory=dict)
    """Container path prefix → host directory (subprocess runtime rewrites these prefixes)."""
    mounts: list[Mount] = field(default_factory=list)
    working_dir: str | None = None
    user: str | None = None
    group_add: list[str] = field(default_factory=list)
    run_as_non_root: bool = False
    read_only_root: bool = False
    no_new_privileges: bool = False
    cap_drop: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cpus: str | None = None
    memory: str | None = None
    deadline: float | None = None
    """Seconds the attempt may run (``activeDeadlineSeconds``); then it is killed."""
    kill_at: float | None = None
    """Epoch seconds at which the attempt is killed (a retry's ``backoff.maxDuration`` deadline, Argo's ARGO_DEADLINE)."""
    cancel: threading.Event = field(default_factory=threading.Event)
    log_path: Path = Path("task.log")
    echo: Callable[[str], None] | None = None


@dataclass
class Result:
    """How an attempt ended. ``exit_code`` is None when the process never ran or was killed."""

    exit_code: int | None
    duration: float
    log_path: Path
    stdout: str = ""
    timed_out: str | None = None
    """Why a deadline killed it (Argo's node message), None when none did."""
    cancelled: bool = False
    error: str | None = None
    """Why the container could not start (the node becomes Error)."""
    copy_out: Callable[[str, Path], bool] = lambda path, dest: False
    """Copy a container path to a host path after the run; False when it does not exist."""
    cleanup: Callable[[], None] = lambda: None


class Runtime(Protocol):
    name: str

    def check(self, images: set[str]) -> None:
        """Raise RuntimeUnavailable (with what to do) when tasks cannot run here."""

    def run(self, task: RuntimeTask) -> Result: ...


def stream_process(
    proc: subprocess.Popen[bytes], task: RuntimeTask, kill: Callable[[], None]
) -> tuple[str | None, bool, str]:
    """Pump the child's stdout and stderr line by line into the log (and ``echo``); enforce deadline/cancel.

    Returns ``(timed_out, cancelled, stdout_text)``, ``timed_out`` being Argo's message for the
    deadline that killed the process (None when none did). The log file gets both streams
    interleaved as they arrive; stdout alone (first 256 KiB) becomes ``outputs.result``.
    """
    lock = threading.Lock()
    stdout_parts: list[bytes] = []
    kept = [0]
    task.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(task.log_path, "ab") as log_file:

        def pump(pipe: IO[bytes], is_stdout: bool) -> None:
            for line in iter(pipe.readline, b""):
                with lock:
                    log_file.write(line)
                    log_file.flush()
                    if is_stdout and kept[0] < RESULT_LIMIT:
                        stdout_parts.append(line[: RESULT_LIMIT - kept[0]])
                        kept[0] += len(line)
                if task.echo is not None:
                    task.echo(line.decode(errors="replace").rstrip("\n"))
            pipe.close()

        assert proc.stdout is not None and proc.stderr is not None
        threads = [
            threading.Thread(target=pump, args=(proc.stdout, True), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, False), daemon=True),
        ]
        for t in threads:
            t.start()
        started = time.monotonic()
        timed_out: str | None = None
        cancelled = False
        while proc.poll() is None:
            if task.deadline is not None and time.monotonic() - started > task.deadline:
                timed_out = "Pod was active on the node longer than the specified deadline"
                kill()
                break
            if task.kill_at is not None and time.time() >= task.kill_at:
                timed_out = "Step exceeded its deadline"  # the wait container's message when ARGO_DEADLINE passes
                kill()
                break
            if task.cancel.is_set():
                cancelled = True
                kill()
                break
            time.sleep(0.05)
        proc.wait()
        for t in threads:
            t.join(timeout=10)
    text = b"".join(stdout_parts).decode(errors="replace")
    return timed_out, cancelled, text.removesuffix("\n")
