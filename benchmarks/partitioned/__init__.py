"""The partitioned pipeline at scale: a landing folder of P files, fanned out through the local executor.

``landing`` writes the folder once per (P, R, seed) with the real ingest stage, one
synthetic hour per file; ``run_partitioned`` runs the compiled partitioned
WorkflowTemplate on it and measures every stage process (see ``benchmarks.perf.procmon``).
The CLI (``__main__``) runs it twice in one workdir — the second run finds the memo cache —
and writes RESULTS.md and the raw numbers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "STAGES", "RSS_LIMIT", "landing", "partition_source", "run_partitioned", "clean"]

MANIFEST = Path("workflows/compiled/workflow-template-partitioned.yaml")
STAGES = ("partitions", "ingest", "silver", "train", "eval-part", "eval")
PROCESS_STAGE = {"ingest.partitions": "partitions", "eval.part": "eval-part"}
PROCESS_STAGE |= {s: s for s in STAGES if s not in PROCESS_STAGE.values()}
"""``ChildMonitor`` names a child by its ``-m`` module (``stages.`` dropped): the list step runs
``stages.ingest.partitions``, eval's fan-out ``stages.eval.part``."""
RSS_LIMIT = 2 << 30
PARTITION_DAYS = 1 / 24
"""Each file is one hour of traffic, as an hourly sensor export would be; R sets how busy that hour is."""
T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
ATTACK_SHARE = 0.02
SANDBOXED = Path("/tmp")
"""The manifest mounts an emptyDir at /tmp: the subprocess runtime maps every /tmp/... argument into the
pod's sandbox, so a landing folder there would not be found by the list step or the ingest pods."""
GATE_FAILED = 3
"""eval's exit code when the quality gate fails: the run is complete, the model just did not pass."""


def partition_source(k: int, rows: int, seed: int) -> str:
    """Partition ``k``'s synthetic source: its own seed and the hour after partition ``k - 1``'s."""
    start = (T0 + dt.timedelta(days=k * PARTITION_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"synthetic://?rows={rows}&seed={seed + k}&attack_share={ATTACK_SHARE}&days={PARTITION_DAYS!r}&start={start}"


def _ingest_partition(k: int, rows: int, seed: int, folder: Path, scratch: Path) -> None:
    """One landing file, written by the real ingest stage (audit off: PG_HOST empty)."""
    cmd = [
        sys.executable,
        "-m",
        "stages.ingest",
        "--source",
        partition_source(k, rows, seed),
        "--output",
        str(folder / f"conn.{k:05d}.parquet"),
        "--rejects",
        str(scratch / f"rejects.{k:05d}.parquet"),
    ]
    env = {**os.environ, "PG_HOST": ""}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ingest of landing partition {k} exited {proc.returncode}:\n{proc.stderr[-2000:]}")


def landing(state: Path, partitions: int, rows: int, seed: int, workers: int = 2) -> tuple[Path, bool]:
    """The landing folder of (partitions, rows, seed) under ``state``, and whether it was reused.

    Written into a scratch folder and renamed when every file is there, so an interrupted
    generation is never mistaken for a finished one. Each partition is its own ingest
    process (generator batches of 250k rows: memory stays bounded whatever P and R are).
    """
    folder = state / "landing" / f"p{partitions}-r{rows}-seed{seed}"
    if folder.is_relative_to(SANDBOXED):
        raise ValueError(
            f"--state {state}: the landing folder would be under {SANDBOXED}, which the local executor maps "
            "into each pod's sandbox; give a state directory elsewhere (default benchmarks/.data/state)"
        )
    if folder.is_dir():
        return folder, True
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    scratch = partial.with_name(f"{partial.name}-rejects")
    partial.mkdir(parents=True)
    scratch.mkdir()
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            jobs = [pool.submit(_ingest_partition, k, rows, seed, partial, scratch) for k in range(partitions)]
            for job in jobs:
                job.result()
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return folder, False


def _manifest_with(path: Path, parallelism: int | None, out: Path) -> tuple[Path, int | None]:
    """``path`` itself, or a copy with ``spec.parallelism`` set; and the parallelism the run gets."""
    import yaml

    doc = yaml.safe_load(path.read_text())
    if parallelism is None:
        return path, doc["spec"].get("parallelism")
    doc["spec"]["parallelism"] = parallelism
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out, parallelism


def _pod_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pod node of the status tree (a fan-out task's children are its pods)."""
    found = [node] if node.get("type") == "Pod" else []
    for child in node.get("children", []):
        found += _pod_nodes(child)
    return found


def _stage_summary(procs: list[dict[str, Any]], nodes: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [p["wall_seconds"] for p in procs]
    rss = [p["peak_rss_bytes"] for p in procs]
    return {
        "pods": len(procs),
        "nodes": len(nodes),
        "memo_hits": sum(1 for n in nodes if (n.get("memoizationStatus") or {}).get("hit")),
        "phases": sorted({n["phase"] for n in nodes}),
        "cpu_seconds": round(sum(p["cpu_seconds"] for p in procs), 3),
        "peak_rss_bytes": max(rss, default=0),
        "peak_rss_exact": bool(procs) and max(procs, key=lambda p: p["peak_rss_bytes"])["peak_rss_exact"],
        "wall_sum_seconds": round(sum(walls), 3),
        "wall_max_seconds": round(max(walls, default=0.0), 3),
        "processes": procs,
    }


def _complete(stages: dict[str, dict[str, Any]], eval_exit: int | None) -> bool:
    """Every stage ran to the end: all nodes Succeeded, except eval may have failed its gate (exit 3)."""
    for name, s in stages.items():
        if not s["nodes"]:
            return False
        if s["phases"] != ["Succeeded"] and not (name == "eval" and eval_exit == GATE_FAILED):
            return False
    return True


def run_partitioned(
    source: Path, runs: Path, artifacts: Path, env: dict[str, str], parallelism: int | None
) -> dict[str, Any]:
    """One run of the partitioned workflow on the landing folder ``source``: timings and per-stage stats.

    ``runs`` is the executor's workdir: a second call with the same ``runs`` and
    ``artifacts`` finds the first's memo cache (and its content-addressed RAW objects).
    """
    from benchmarks.perf.procmon import ChildMonitor
    from workflows.local.project import REPO_ROOT
    from workflows.localargo.engine import RunOptions, run_workflow

    runs.mkdir(parents=True, exist_ok=True)
    manifest, slots = _manifest_with(REPO_ROOT / MANIFEST, parallelism, runs / MANIFEST.name)
    opts = RunOptions(
        manifest=manifest,
        parameters={"source": f"{source}/"},
        runtime="subprocess",
        artifacts=str(artifacts),
        workdir=runs,
        workspace=REPO_ROOT,
        extra_env=env,
    )
    with open(runs / "executor.log", "a") as out, ChildMonitor() as mon:
        started = time.perf_counter()
        outcome = run_workflow(opts, out=out)
        wall = time.perf_counter() - started
    status = json.loads(outcome.status_path.read_text())
    pods = _pod_nodes(status["root"])
    stages = {}
    for stage in STAGES:
        procs = [
            {
                "pid": c.pid,
                "wall_seconds": round(c.last_seen - c.first_seen, 3),
                "cpu_seconds": c.cpu_seconds if c.cpu_seconds is not None else c.cpu_sampled,
                "peak_rss_bytes": c.peak_rss_bytes,
                "peak_rss_exact": c.peak_exact,
            }
            for c in mon.children
            if PROCESS_STAGE.get(c.name) == stage
        ]
        stages[stage] = _stage_summary(procs, [n for n in pods if n["templateName"] == stage])
    ingest_rows = [n["outputs"]["parameters"].get("rows") for n in pods if n["templateName"] == "ingest"]
    eval_node = next((n for n in pods if n["templateName"] == "eval"), {})
    flows = sum(int(r) for r in ingest_rows if r is not None)
    every = [p for s in stages.values() for p in s["processes"]]
    return {
        "workflow": outcome.name,
        "phase": outcome.phase,
        "message": outcome.message,
        "run_dir": str(outcome.status_path.parent),
        "parallelism": slots,
        "flows": flows,
        "wall_seconds": round(wall, 3),
        "seconds_per_million_flows": round(wall / (flows / 1e6), 3) if flows else None,
        "cpu_seconds": round(sum(p["cpu_seconds"] for p in every), 3),
        "pods": len(every),
        "peak_rss_bytes": max((p["peak_rss_bytes"] for p in every), default=0),
        "every_pod_under_rss_limit": all(p["peak_rss_bytes"] < RSS_LIMIT for p in every),
        "gate": eval_node.get("outputs", {}).get("parameters", {}).get("verdict"),
        "complete": _complete(stages, eval_node.get("exitCode")),
        "stages": stages,
    }


def clean(bench: Path) -> None:
    """Remove what the runs left that is big or would mislead a later run; status.json and logs stay.

    The artifacts (RAW parts, silver, models) and the memo cache go together: a cache
    entry pointing at deleted RAW objects would turn the next run's ingest into hits on nothing.
    """
    shutil.rmtree(bench / "artifacts", ignore_errors=True)
    runs = bench / "runs"
    shutil.rmtree(runs / "_configmaps", ignore_errors=True)
    for pods in runs.glob("*/pods"):
        shutil.rmtree(pods, ignore_errors=True)
