"""This repository's settings for the generic local executor (``workflows.localargo``).

The executor knows nothing of the pipeline; what it needs from it (where the code the
stages run lives, the default manifest and state directory, how the stage images are
built) comes from here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from workflows.localargo.cli import RunLocalDefaults

__all__ = ["REPO_ROOT", "DEFAULT_MANIFEST", "STATE", "bake_target", "bake_hint", "run_local_defaults"]

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository: the subprocess runtime's working directory and PYTHONPATH (``python -m stages.<name>``)."""
DEFAULT_MANIFEST = Path("workflows/compiled/workflow.yaml")
STATE = Path(".local")
"""The demo's state directory: ``pg/``, ``mlflow/``, ``artifacts/`` and ``runs/``."""


def bake_target(image: str) -> str | None:
    """The docker-bake.hcl target that builds ``image`` (``.../cybersec-mlops-<target>:tag``), if ours."""
    m = re.search(r"cybersec-mlops-([a-z]+):[^/]+$", image)
    return m.group(1) if m else None


def bake_hint(images: Sequence[str]) -> str | None:
    """``docker buildx bake <targets>`` for the missing images this repository builds, else None."""
    targets = sorted({t for t in map(bake_target, images) if t})
    return f"docker buildx bake {' '.join(targets)}" if targets else None


def run_local_defaults() -> RunLocalDefaults:
    """``python -m workflows run-local``: the compiled workflow, state under ``.local``, run from the repository."""
    return RunLocalDefaults(
        manifest=DEFAULT_MANIFEST,
        artifacts=str(STATE / "artifacts"),
        workdir=STATE / "runs",
        workspace=REPO_ROOT,
        build_hint=bake_hint,
    )
