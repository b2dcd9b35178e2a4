"""PostgreSQL (the audit) down at stage start, recovering, and dropped mid-stage.

The audit is opened by the shared runner before any stage work, so ingest on a small
synthetic source stands for every stage here; the proxy sits between the stage and the
real server (PG_PORT points at it), while the test reads the audit directly.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.faults.harness import StageRun, artifacts, attempts, run, wait_until
from tests.faults.proxy import FaultProxy

pytestmark = pytest.mark.services


def _ingest_args(out: Path, run_id: str, rows: int = 2000) -> list[str]:
    return [
        "--source",
        f"synthetic://?rows={rows}&seed=3",
        "--output",
        str(out / "flows.parquet"),
        "--rejects",
        str(out / "rejects.parquet"),
        "--run-id",
        run_id,
    ]


def _env(fault_env: dict[str, str], proxy: FaultProxy, **extra: str) -> dict[str, str]:
    return {**fault_env, "PG_PORT": str(proxy.port), **extra}


def test_down_at_start_exits_75_naming_the_settings(
    tmp_path: Path, fault_env: dict[str, str], pg_proxy: FaultProxy, audit: Any
) -> None:
    pg_proxy.refuse()
    run_id = f"pg-down-{uuid.uuid4().hex[:8]}"
    done = run("ingest", *_ingest_args(tmp_path / "out", run_id), env=_env(fault_env, pg_proxy, PG_RETRIES="2"))
    assert done.returncode == 75, done.stderr
    assert "PostgreSQL" in done.error() and f"127.0.0.1:{pg_proxy.port}" in done.error()
    assert "PG_HOST" in done.error() and "PG_PORT" in done.error()
    assert any("retry 1/1" in m for m in done.messages())  # the stage's own retry ran first
    assert not (tmp_path / "out").exists()  # no stage work before the audit is open
    assert attempts(audit, run_id, "ingest") == []  # nothing could be recorded, nothing half-recorded
    assert list(Path(fault_env["TMPDIR"]).iterdir()) == []


def test_down_at_start_then_back_succeeds_on_the_stage_retries(
    tmp_path: Path, fault_env: dict[str, str], pg_proxy: FaultProxy, audit: Any
) -> None:
    pg_proxy.refuse()
    run_id = f"pg-back-{uuid.uuid4().hex[:8]}"
    stage = StageRun("ingest", *_ingest_args(tmp_path / "out", run_id), env=_env(fault_env, pg_proxy, PG_RETRIES="5"))
    # Recover about a second after the stage logs its first failed attempt (the next retry is 1 s later).
    stage.when("retry 1/4", lambda: pg_proxy.after(0.8, pg_proxy.forward))
    done = stage.finish()
    assert done.returncode == 0, done.stderr
    assert any("audit migrate failed (OperationalError); retry 1/4" in m for m in done.messages())
    assert pg_proxy.stats["forwarded"] >= 1
    assert attempts(audit, run_id, "ingest") == [(0, "SUCCEEDED", 0, None)]
    assert pq.read_metadata(tmp_path / "out" / "flows.parquet").num_rows == 2000


def test_dropped_mid_stage_is_retried_and_recorded_once(
    tmp_path: Path, fault_env: dict[str, str], pg_proxy: FaultProxy, audit: Any
) -> None:
    """Connections are cut (and refused for a second) after the start row is written."""
    run_id = f"pg-drop-{uuid.uuid4().hex[:8]}"
    rows = 600_000  # a few seconds of work: time to cut the connection while the body runs
    stage = StageRun("ingest", *_ingest_args(tmp_path / "out", run_id, rows), env=_env(fault_env, pg_proxy))
    wait_until(lambda: attempts(audit, run_id, "ingest") == [(0, "RUNNING", None, None)], timeout=60, every=0.02)
    pg_proxy.refuse()
    assert pg_proxy.drop_connections() >= 1  # the stage holds its audit connection open between start and finish
    pg_proxy.after(1.0, pg_proxy.forward)
    done = stage.finish()
    assert done.returncode == 0, done.stderr
    assert any(m.startswith("audit finish failed") for m in done.messages()), done.stderr
    assert attempts(audit, run_id, "ingest") == [(0, "SUCCEEDED", 0, None)]
    recorded = artifacts(audit, run_id, "ingest")
    assert [(a, d, n, r) for a, d, n, _, r in recorded] == [(0, "output", "flows", rows), (0, "output", "rejects", 0)]
    with audit.cursor() as cur:
        cur.execute("SELECT count(*) FROM pipeline_runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone()[0] == 1
    assert pq.read_metadata(tmp_path / "out" / "flows.parquet").num_rows == rows
