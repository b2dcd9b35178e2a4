"""Helpers shared by the test suites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_stage(
    stage: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m stages.<stage> args...`` as a real process and return it completed."""
    return subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", *args],
        env=env,
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
