"""What every node of one workflow run shares: names, scopes, templates, services and switches."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import LocalRepository, S3Repository
from .runtimes import Runtime
from .status import Node

__all__ = ["RunContext"]

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    workflow: str
    namespace: str
    templates: dict[str, dict[str, Any]]
    spec: dict[str, Any]
    global_scope: dict[str, str]
    repo: LocalRepository | S3Repository
    runtime: Runtime
    runtime_name: str
    run_dir: Path
    """``<workdir>/<workflow>``: sandboxes, logs and status.json."""
    repo_root: Path
    env: dict[str, str]
    """The executor's environment (plus --env-file): the source of secretKeyRef/configMapKeyRef values."""
    echo: Callable[[str, str], None] | None = None
    """``echo(task, line)`` streams a task's output (``--verbose``); None keeps it in the log files only."""
    on_change: Callable[[Node], None] = lambda node: None
    cancel: threading.Event = field(default_factory=threading.Event)
    pod_slots: threading.BoundedSemaphore | None = None
    """``spec.parallelism``: how many pods may run at once in the whole workflow."""
    cancel_reason: str = ""

    def changed(self, node: Node) -> None:
        try:
            self.on_change(node)
        except Exception:  # noqa: BLE001 - the display must never break a run
            log.debug("display update failed", exc_info=True)
