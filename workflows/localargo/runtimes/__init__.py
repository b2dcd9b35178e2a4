"""Runtimes, picked by name from :data:`RUNTIMES`; each implements ``run(task) -> Result``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from .base import Mount, Result, Runtime, RuntimeTask

__all__ = ["RUNTIMES", "BuildHint", "Mount", "Result", "Runtime", "RuntimeTask", "get_runtime"]

RUNTIMES = ("subprocess", "docker")

BuildHint = Callable[[Sequence[str]], str | None]
"""``hint(missing_images)``: how to build them (a command to print), or None to use the generic advice."""


def get_runtime(name: str, workspace: Path, build_hint: BuildHint | None = None) -> Runtime:
    """The runtime called ``name``: ``subprocess`` (run in ``workspace``) or ``docker``."""
    if name == "subprocess":
        from .subprocess_runtime import SubprocessRuntime

        return SubprocessRuntime(workspace)
    if name == "docker":
        from .docker_runtime import DockerRuntime

        return DockerRuntime(build_hint=build_hint)
    raise ValueError(f"unknown runtime {name!r} (choose from {', '.join(RUNTIMES)})")
