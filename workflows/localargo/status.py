"""Node status, as Argo records it in ``status.nodes``: phase, times, message, outputs, children.

Phases and node types mirror Argo's (``Pod``, ``Retry``, ``DAG``, ``Skipped``). The whole
tree is written as JSON (``<workdir>/<workflow>/status.json``) for tests and tooling.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Phase", "ArtifactRef", "Node", "fnv32a", "node_id", "pod_name", "write_json"]


class Phase:
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERROR = "Error"
    SKIPPED = "Skipped"
    OMITTED = "Omitted"

    FULFILLED = frozenset({SUCCEEDED, FAILED, ERROR, SKIPPED, OMITTED})
    COMPLETED = frozenset({SUCCEEDED, FAILED, ERROR})
    FAILED_OR_ERROR = frozenset({FAILED, ERROR})


@dataclass(frozen=True)
class ArtifactRef:
    """Where an artifact lives in the repository, as passed between tasks by ``from``."""

    name: str
    key: str
    bucket: str | None = None
    archived: bool | None = False
    """True: stored as Argo's default tar.gz (unpacked when staged); None: unknown, detected on staging."""
    uri: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "bucket": self.bucket,
            "archive": {True: "tgz", False: "none", None: "auto"}[self.archived],
            "uri": self.uri,
        }


def fnv32a(text: str) -> int:
    """32-bit FNV-1a, the hash Argo uses in node IDs and pod names."""
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def node_id(workflow: str, node_name: str) -> str:
    """Argo's node ID: ``<workflow>-<fnv32a(node name)>`` (the workflow's own node is its name)."""
    return workflow if node_name == workflow else f"{workflow}-{fnv32a(node_name)}"


def pod_name(workflow: str, node_name: str, template: str) -> str:
    """Argo's v2 pod name: ``<workflow>-<template>-<fnv32a(node name)>`` (prefix cut to fit 253 chars)."""
    if node_name == workflow:
        return workflow
    prefix = f"{workflow}-{template}"[:242]
    return f"{prefix}-{fnv32a(node_name)}"


@dataclass
class Node:
    """One node of the workflow's status tree. Mutated under ``lock`` by the thread that runs it."""

    name: str
    display_name: str
    type: str
    template: str
    workflow: str
    phase: str = Phase.PENDING
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    pod_name: str | None = None
    log_path: Path | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)
    result: str | None = None
    children: list[Node] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    """DAG tasks that never started (failFast halted the DAG, or the run was stopped)."""
    memoization: dict[str, Any] | None = None
    """Argo's ``memoizationStatus`` (``hit``, ``key``, ``cacheName``) of a memoized template's node."""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def id(self) -> str:
        return node_id(self.workflow, self.name)

    @property
    def fulfilled(self) -> bool:
        return self.phase in Phase.FULFILLED

    def start(self) -> None:
        with self.lock:
            self.phase, self.started_at = Phase.RUNNING, time.time()

    def finish(self, phase: str, message: str = "") -> None:
        with self.lock:
            now = time.time()
            self.started_at = self.started_at or now
            self.phase, self.message, self.finished_at = phase, message, now

    def add_child(self, child: Node) -> Node:
        with self.lock:
            self.children.append(child)
        return child

    def duration(self, now: float | None = None) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else (now or time.time())
        return max(0.0, end - self.started_at)

    def as_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "id": self.id,
                "name": self.name,
                "displayName": self.display_name,
                "type": self.type,
                "templateName": self.template,
                "phase": self.phase,
                "message": self.message,
                "startedAt": _iso(self.started_at),
                "finishedAt": _iso(self.finished_at),
                "durationSeconds": None if self.duration() is None else round(self.duration() or 0.0, 3),
                "exitCode": self.exit_code,
                "podName": self.pod_name,
                "log": str(self.log_path) if self.log_path else None,
                "outputs": {
                    "parameters": dict(self.parameters),
                    "result": self.result,
                    "artifacts": {k: v.as_json() for k, v in self.artifacts.items()},
                },
                "children": [c.as_json() for c in list(self.children)],
                "notStarted": list(self.not_started),
                "memoizationStatus": dict(self.memoization) if self.memoization else None,
            }


def _iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as deterministic JSON (indent 2, sorted keys, trailing newline), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
