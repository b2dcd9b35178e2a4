"""The partitioned WorkflowTemplate end to end through ``python -m workflows run-local``.

A landing folder of four files (synthetic flows cut by time, as hourly sensor exports
would be) runs as: the list step, one ingest pod per file, one silver pod per file with
the previous file's RAW flows as lookback, train on every part, eval on the held-out
file(s). A second run of the unchanged folder is answered by the memo cache (no ingest
pod runs, no RAW object is rewritten) and gives the same features; a folder with one
unreadable file fails that file's pod with exit 2 and nothing downstream runs.
Real PostgreSQL audit, MLflow sqlite store, subprocess runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.helpers import host_scratch_dir
from tests.helpers import landing_files as landing

pytestmark = [pytest.mark.e2e, pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "workflows" / "compiled" / "workflow-template-partitioned.yaml"
ROWS = 40_000
FILES = 4


def run_local(workdir: Path, artifacts: Path, env: dict[str, str], source: Path) -> dict[str, Any]:
    before = {p.parent.name for p in workdir.glob("*/status.json")}
    cmd = [sys.executable, "-m", "workflows", "run-local", str(MANIFEST), "--workdir", str(workdir)]
    cmd += ["--artifacts", str(artifacts), "-p", f"source={source}/", "-p", "gate-min-recall=0"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    (status_file,) = [p for p in workdir.glob("*/status.json") if p.parent.name not in before]
    status = json.loads(status_file.read_text())
    status["_proc"] = proc
    return status


def task(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in status["root"]["children"] if c["displayName"] == name)


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A folder for the landing files outside /tmp (see ``tests.helpers.HOST_SCRATCH``)."""
    folder = host_scratch_dir("landing-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def env(postgres: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from workflows.local.demo import prepare_mlflow

    base = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MINIO_", "MLFLOW_", "RUN_ID"))}
    mlflow = prepare_mlflow(tmp_path_factory.mktemp("mlflow-state"))
    return {**base, **postgres, "MLFLOW_TRACKING_URI": mlflow, "RUN_LOCAL_BACKOFF_SCALE": "0.01", "PG_PASSWORD": ""}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Two runs of the same landing folder in one workdir (so the second finds the memo cache)."""
    tmp = tmp_path_factory.mktemp("partitioned")
    folder = host_scratch_dir("landing-")
    try:
        files = landing(folder / "landing", ROWS, FILES)
        first = run_local(tmp / "runs", tmp / "artifacts", env, folder / "landing")
        raw = {p: p.stat().st_mtime_ns for p in (tmp / "artifacts" / "raw" / "parts").glob("*/flows.parquet")}
        second = run_local(tmp / "runs", tmp / "artifacts", env, folder / "landing")
        yield {"first": first, "second": second, "files": files, "artifacts": tmp / "artifacts", "raw": raw}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_first_run_fans_out_one_pod_per_file_and_succeeds(runs: dict[str, Any]) -> None:
    first = runs["first"]
    assert first["phase"] == "Succeeded", first["_proc"].stderr[-4000:]
    for name in ("ingest", "silver"):
        children = task(first, name)["children"]
        assert len(children) == FILES and all(c["phase"] == "Succeeded" for c in children), name
    assert len(runs["raw"]) == FILES, "one content-addressed RAW object per file"
    parts = sorted((runs["artifacts"] / "silver" / first["name"]).glob("part=*/features.parquet"))
    assert [p.parent.name for p in parts] == [f"part={k:05d}" for k in range(FILES)]
    holdout = [json.loads((p.parent / "manifest.json").read_text())["split"]["side"] for p in parts]
    assert holdout[0] == "train" and holdout[-1] == "holdout" and holdout == sorted(holdout, reverse=True)
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    assert rows == sum(pq.ParquetFile(f).metadata.num_rows for f in runs["files"]), "every flow, once"
    metrics = json.loads((runs["artifacts"] / "eval" / first["name"] / "metrics.json").read_text())
    held_out = sum(
        pq.ParquetFile(p).metadata.num_rows for p, side in zip(parts, holdout, strict=True) if side == "holdout"
    )
    assert metrics["rows"] == held_out, "eval scored every holdout part's rows, once"
    assert metrics["gate"]["verdict"] == "passed" and metrics["pr_auc"] > 0.5
    # the holdout was scored by one eval-part pod per holdout file; eval merged their scores
    keys = [p.parent.name for p, side in zip(parts, holdout, strict=True) if side == "holdout"]
    scored = task(first, "eval-part")["children"]
    assert len(scored) == len(keys) and all(c["phase"] == "Succeeded" for c in scored)
    scores = runs["artifacts"] / "eval" / first["name"] / "parts"
    assert sorted(p.parent.name for p in scores.glob("part=*/scores.parquet")) == keys
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in scores.glob("*/scores.parquet")) == held_out


def test_every_pod_of_a_fan_out_is_audited_on_its_own_row(runs: dict[str, Any], audit_db: Any) -> None:
    first = runs["first"]
    with audit_db.cursor() as cur:
        cur.execute("SELECT stage, status FROM stage_attempts WHERE run_id = %s ORDER BY stage", (first["name"],))
        rows = cur.fetchall()
        cur.execute(
            "SELECT stage, uri FROM stage_artifacts WHERE run_id = %s AND name = 'flows' AND direction = 'output'",
            (first["name"],),
        )
        raw = dict(cur.fetchall())
    stages = [stage for stage, _ in rows]
    assert all(status == "SUCCEEDED" for _, status in rows), rows
    for name in ("ingest", "silver"):
        assert [s for s in stages if s.startswith(name + "/")] == [f"{name}/part={k:05d}" for k in range(FILES)]
    holdout = [s for s in stages if s.startswith("eval-part/")]
    assert holdout and holdout == [f"eval-part/part={k:05d}" for k in range(FILES - len(holdout), FILES)]
    assert {"ingest-partitions", "train", "eval"} <= set(stages)
    # each partition's RAW output keeps its own lineage row
    assert len(set(raw.values())) == FILES and all(uri.endswith("/flows.parquet") for uri in raw.values())


def test_a_second_run_of_the_same_files_does_no_ingest_work(runs: dict[str, Any]) -> None:
    first, second = runs["first"], runs["second"]
    assert second["phase"] == "Succeeded", second["_proc"].stderr[-4000:]
    children = task(second, "ingest")["children"]
    assert len(children) == FILES
    assert all((c.get("memoizationStatus") or {}).get("hit") for c in children), children
    now = {p: p.stat().st_mtime_ns for p in (runs["artifacts"] / "raw" / "parts").glob("*/flows.parquet")}
    assert now == runs["raw"], "a memoized partition's RAW object is neither rewritten nor duplicated"
    for k in range(FILES):
        a = runs["artifacts"] / "silver" / first["name"] / f"part={k:05d}" / "features.parquet"
        b = runs["artifacts"] / "silver" / second["name"] / f"part={k:05d}" / "features.parquet"
        assert pq.read_table(a).equals(pq.read_table(b)), f"part {k}"


def test_one_unreadable_file_fails_its_own_pod_and_nothing_downstream_runs(
    tmp_path: Path, env: dict[str, str], outside_tmp: Path
) -> None:
    files = landing(outside_tmp / "landing", rows=8_000, files=3)
    files[1].write_bytes(b"PAR1 not really a parquet file")
    status = run_local(tmp_path / "runs", tmp_path / "artifacts", env, outside_tmp / "landing")
    assert status["phase"] == "Failed"
    children = {c["displayName"]: c for c in task(status, "ingest")["children"]}
    failed = [c for c in children.values() if c["phase"] == "Failed"]
    # the memoized ingest has no retryStrategy: the item is the pod itself, one attempt
    assert len(failed) == 1 and failed[0]["type"] == "Pod" and failed[0]["exitCode"] == 2, failed
    assert "conn.01.parquet" in failed[0]["displayName"]
    assert "conn.01.parquet" in Path(failed[0]["log"]).read_text(), "the stage names the file"
    names = [c["displayName"] for c in status["root"]["children"]]
    assert "silver" not in names or task(status, "silver")["phase"] in ("Omitted", "Skipped")
    assert not (tmp_path / "artifacts" / "silver").exists(), "nothing of a failed partition is read downstream"
