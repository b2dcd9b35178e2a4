"""The executor's errors: what it refuses, what a manifest gets wrong, what a run cannot do."""

from __future__ import annotations

__all__ = ["ExecutorError", "ManifestError", "Unsupported", "ResolveError", "RuntimeUnavailable"]


class ExecutorError(Exception):
    """Base of the errors the local executor raises on purpose (CLI exit code 2)."""


class ManifestError(ExecutorError):
    """The manifest is not a valid Argo workflow for this executor (names the file and field)."""


class Unsupported(ManifestError):
    """A valid Argo feature the local executor does not implement; it refuses rather than guess."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ResolveError(ExecutorError):
    """A ``{{...}}`` reference or expression could not be resolved while running a task (node → Error)."""


class RuntimeUnavailable(ExecutorError):
    """The chosen runtime cannot run here (no docker, image not built, ...); the message says what to do."""
