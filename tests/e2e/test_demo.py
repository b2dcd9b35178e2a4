"""``python -m workflows demo`` (the README's ``make demo``) and ``services``, in a throwaway state dir."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from workflows.local.demo import EXPERIMENT, synthetic_source

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("default", "rows", "expected"),
    [
        ("synthetic://?rows=100000&seed=7&attack_share=0.02", 5000, "synthetic://?rows=5000&seed=7&attack_share=0.02"),
        ("synthetic://", 10, "synthetic://?rows=10"),
        ("s3://bucket/flows.parquet", 10, "synthetic://?seed=7&rows=10"),
        (None, 10, "synthetic://?rows=10"),
    ],
)
def test_synthetic_source_keeps_the_manifests_defaults(default: str | None, rows: int, expected: str) -> None:
    assert synthetic_source(default, rows) == expected


def python(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflows", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.slow
def test_demo_runs_the_pipeline_and_summarises_it() -> None:
    # not pytest's tmp_path: as root, PostgreSQL runs as 'postgres', which cannot enter pytest's 0700 dirs
    state = Path(tempfile.mkdtemp(prefix="demo-state-"))
    state.chmod(0o755)
    try:
        proc = python("demo", "--rows", "5000", "--state", str(state))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out = proc.stdout
        assert "Succeeded" in out and "gate verdict: passed" in out
        assert "ingest Succeeded rows=5000  rejected=0" in out
        assert out.count("SUCCEEDED  exit 0") == 4  # the four stage rows from the audit
        # The demo ends with a scoring run beside the training run: take the one eval ran in.
        runs = [p.name for p in (state / "runs").iterdir() if not p.name.startswith("cybersec-mlops-scoring-")]
        assert len(runs) == 1, runs
        assert (state / "artifacts" / "eval" / runs[0] / "report.html").is_file()
        # MLflow's artifacts sit beside its sqlite store, not in its default ./mlruns (the repository)
        with sqlite3.connect(state / "mlflow" / "mlflow.db") as db:
            (location,) = db.execute(
                "SELECT artifact_location FROM experiments WHERE name = ?", (EXPERIMENT,)
            ).fetchone()
        assert location == (state / "mlflow" / "artifacts").resolve().as_uri()
        assert any((state / "mlflow" / "artifacts").iterdir())
        assert f"services stop --state {state.resolve()}" in out
        status = python("services", "status", "--state", str(state), timeout=60)
        assert status.returncode == 0 and "PostgreSQL running" in status.stdout
    finally:
        stop = python("services", "stop", "--state", str(state), timeout=120)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    after = python("services", "status", "--state", str(state), timeout=60)
    assert after.returncode == 3 and "not running" in after.stdout
    shutil.rmtree(state, ignore_errors=True)


def test_demo_says_why_postgres_cannot_start(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    proc = python("demo", "--rows", "100", "--state", str(blocker), timeout=120)
    assert proc.returncode == 2
    assert "state" in proc.stderr and "Traceback" not in proc.stderr
