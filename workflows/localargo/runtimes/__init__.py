"""Runtimes, picked by name from :data:`RUNTIMES`; each implements ``run(task) -> Result``."""

from __future__ import annotations

from pathlib import Path

from .base import Mount, Result, Runtime, RuntimeTask

__all__ = ["RUNTIMES", "Mount", "Result", "Runtime", "RuntimeTask", "get_runtime"]

RUNTIMES = ("subprocess", "docker")


def get_runtime(name: str, repo_root: Path) -> Runtime:
    """The runtime called ``name`` (``subprocess`` or ``docker``)."""
    if name == "subprocess":
        from .subprocess_runtime import SubprocessRuntime

        return SubprocessRuntime(repo_root)
    if name == "docker":
        from .docker_runtime import DockerRuntime

        return DockerRuntime()
    raise ValueError(f"unknown runtime {name!r} (choose from {', '.join(RUNTIMES)})")
