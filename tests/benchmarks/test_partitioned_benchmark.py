"""The partitioned benchmark on 3 files × 3,000 flows: its numbers have the right shape and agree.

The smoke test runs ``python -m benchmarks.partitioned`` for real (its own PostgreSQL and
MLflow store, the subprocess runtime) and checks the JSON it writes: one pod per file for
ingest and silver, none for ingest on the memoized run, and totals that add up. Its state
lives under benchmarks/.data, not /tmp: the local executor maps /tmp paths into each pod.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from benchmarks.partitioned import STAGES, partition_source
from stages.ingest import synthetic
from tests.helpers import host_scratch_dir

REPO = Path(__file__).resolve().parents[2]
PARTITIONS, ROWS = 3, 3_000
PER_FILE = {"partitions": 1, "ingest": PARTITIONS, "silver": PARTITIONS, "train": 1, "eval-part": 1, "eval": 1}
"""Pods per stage: 3 files of equal size, holdout-fraction 0.3 → the latest file is the one holdout part."""


def test_partitions_are_consecutive_hours_with_their_own_seed() -> None:
    first, second = (synthetic.parse_uri(partition_source(k, ROWS, seed=7)) for k in (0, 1))
    assert (first["rows"], first["seed"], second["seed"]) == (ROWS, 7, 8)
    assert first["days"] == second["days"] == pytest.approx(1 / 24)
    assert (first["start"], second["start"]) == ("2026-01-05T00:00:00Z", "2026-01-05T01:00:00Z")


def test_a_state_directory_under_tmp_is_refused_before_anything_runs(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "benchmarks.partitioned", "--partitions", "2", "--rows-per-partition", "10"]
    proc = subprocess.run([*cmd, "--state", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"--state {tmp_path}" in proc.stderr and "sandbox" in proc.stderr
    assert not (tmp_path / "landing").exists()


@pytest.fixture(scope="module")
def bench() -> Iterator[tuple[dict[str, Any], Path, Path]]:
    """One benchmark run: (its JSON, its markdown report, its state directory)."""
    state = host_scratch_dir("test-partitioned-")  # not under /tmp, wherever the clone lives
    try:
        out, md = state / "out.json", state / "out.md"
        cmd = [sys.executable, "-m", "benchmarks.partitioned", "--partitions", str(PARTITIONS)]
        cmd += ["--rows-per-partition", str(ROWS), "--parallelism", "2", "--state", str(state / "state")]
        cmd += ["--json", str(out), "--results", str(md)]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
        assert out.exists(), proc.stderr[-3000:]
        yield json.loads(out.read_text()), md, state / "state"
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.slow
def test_landing_folder_holds_one_file_per_hour(bench: tuple[dict[str, Any], Path, Path]) -> None:
    res, _, _ = bench
    files = sorted(Path(res["landing"]).iterdir())
    assert [f.name for f in files] == [f"conn.{k:05d}.parquet" for k in range(PARTITIONS)]
    for k, f in enumerate(files):
        ts = pq.read_table(f, columns=["ts"]).column("ts")
        assert len(ts) == ROWS
        assert ts[0].as_py().hour == ts[-1].as_py().hour == k  # partition k is hour k of 2026-01-05


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.slow
def test_both_runs_complete_with_one_pod_per_file(bench: tuple[dict[str, Any], Path, Path]) -> None:
    res, _, _ = bench
    for label in ("cold", "memoized"):
        run = res[label]
        assert run["complete"], f"{label} run {run['phase']}: {run['message']}"
        assert run["parallelism"] == 2 and run["flows"] == PARTITIONS * ROWS
        assert {s: v["nodes"] for s, v in run["stages"].items()} == PER_FILE
    assert {s: v["pods"] for s, v in res["cold"]["stages"].items()} == PER_FILE
    assert {s: v["pods"] for s, v in res["memoized"]["stages"].items()} == {**PER_FILE, "ingest": 0}
    assert res["memoized"]["stages"]["ingest"]["memo_hits"] == PARTITIONS
    assert res["cold"]["stages"]["ingest"]["memo_hits"] == 0


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.slow
def test_numbers_are_positive_and_add_up(bench: tuple[dict[str, Any], Path, Path]) -> None:
    res, _, _ = bench
    for run in (res["cold"], res["memoized"]):
        assert set(run["stages"]) == set(STAGES)
        procs = [p for s in run["stages"].values() for p in s["processes"]]
        assert run["pods"] == len(procs) == sum(s["pods"] for s in run["stages"].values())
        assert run["cpu_seconds"] == pytest.approx(sum(p["cpu_seconds"] for p in procs), abs=0.01)
        assert run["seconds_per_million_flows"] == pytest.approx(run["wall_seconds"] / (run["flows"] / 1e6), rel=1e-3)
        assert run["peak_rss_bytes"] == max(p["peak_rss_bytes"] for p in procs)
        assert run["every_pod_under_rss_limit"] is (run["peak_rss_bytes"] < 2 << 30)
        for name, stage in run["stages"].items():
            if not stage["pods"]:
                continue
            assert all(p["cpu_seconds"] > 0 and p["peak_rss_bytes"] > 0 for p in stage["processes"]), name
            assert stage["cpu_seconds"] == pytest.approx(sum(p["cpu_seconds"] for p in stage["processes"]), abs=0.01)
            assert stage["wall_max_seconds"] <= stage["wall_sum_seconds"] + 1e-6
            assert stage["wall_max_seconds"] < run["wall_seconds"]
        assert 0 < run["stages"]["train"]["cpu_seconds"] < run["cpu_seconds"] < 20 * run["wall_seconds"]


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.slow
def test_report_is_written_and_run_artifacts_are_removed(bench: tuple[dict[str, Any], Path, Path]) -> None:
    res, md, state = bench
    text = md.read_text()
    assert res["command"] in text and res["machine"]["cpu_model"] in text
    assert "## Cold run, per stage" in text and "## Memoized run, per stage" in text
    assert "ran 0 ingest pods" in text
    (bench_dir,) = (state / "partitioned").iterdir()
    assert not (bench_dir / "artifacts").exists() and not (bench_dir / "runs" / "_configmaps").exists()
    statuses = list((bench_dir / "runs").glob("*/status.json"))
    assert len(statuses) == 2 and not list((bench_dir / "runs").glob("*/pods"))
    assert Path(res["landing"]).is_dir(), "the landing folder is kept for the next run"


@pytest.mark.e2e
@pytest.mark.services
@pytest.mark.slow
def test_a_cold_only_report_says_so_and_has_no_memoized_rows(bench: tuple[dict[str, Any], Path, Path]) -> None:
    from benchmarks.partitioned.__main__ import render

    res, _, _ = bench
    text = render({k: v for k, v in res.items() if k != "memoized"})  # what --cold-only leaves to render
    assert "Cold run only (`--cold-only`): no memoized second run." in text and "## Cold run, per stage" in text
    assert "## Memoized run, per stage" not in text and "| memoized |" not in text and "ran 0 ingest pods" not in text
