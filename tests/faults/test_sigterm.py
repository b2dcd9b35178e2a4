"""A real stage killed with SIGTERM mid-write (a pod deleted, a workflow stopped)."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import StageRun, artifacts, attempts

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_ingest_killed_mid_write_leaves_nothing(tmp_path: Path, fault_env: dict[str, str], audit: Any) -> None:
    out = tmp_path / "out"
    out.mkdir()
    run_id = f"sigterm-{uuid.uuid4().hex[:8]}"
    stage = StageRun(
        "ingest",
        "--source",
        "synthetic://?rows=50000000&seed=1",  # minutes of work: it is always mid-write when killed
        "--output",
        str(out / "flows.parquet"),
        "--rejects",
        str(out / "rejects.parquet"),
        "--run-id",
        run_id,
        env=fault_env,
    )
    try:
        assert stage.wait_for('"msg": "progress:', timeout=90), "ingest never logged progress"
        assert attempts(audit, run_id, "ingest") == [(0, "RUNNING", None, None)]
        assert [p.name for p in out.iterdir() if p.name.endswith(".part")] != []  # really writing right now
        stage.proc.send_signal(signal.SIGTERM)
        done = stage.finish(timeout=60)
    finally:
        if stage.proc.poll() is None:
            stage.proc.kill()
    assert done.returncode == 1, done.stderr
    assert "terminated by SIGTERM" in done.error()
    assert list(out.iterdir()) == []  # no flows.parquet, no rejects.parquet, no .part temp files
    assert [p for p in Path(fault_env["TMPDIR"]).rglob("*") if p.is_file()] == []
    [(attempt, status, code, error)] = attempts(audit, run_id, "ingest")
    assert (attempt, status, code, error) == (0, "FAILED", 1, "terminated by SIGTERM")
    assert artifacts(audit, run_id, "ingest") == []  # nothing recorded as published
