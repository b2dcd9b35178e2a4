"""End to end: the compiled workflow through the local executor, with a per-stage breakdown.

Same set-up as ``python -m workflows demo`` (its PostgreSQL and MLflow helpers are
reused): an embedded PostgreSQL for the audit, a sqlite MLflow store, the subprocess
runtime and a local artifact directory, all under one state directory. The source is
``synthetic://?rows=N`` (the manifest's default source with ``rows`` replaced).

Run as ``python -m benchmarks.perf.pipeline --rows N --state DIR --json OUT`` — a fresh
process per run, so the rusage of its children is this run's alone (see ``procmon``).
Services start before the clock; ``wall_seconds`` is ``run_workflow`` from call to return.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["STAGES", "run_pipeline"]

STAGES = ("ingest", "silver", "train", "eval")
MANIFEST = Path("workflows/compiled/workflow.yaml")


def _services(state: Path) -> dict[str, str]:
    """Start (or reuse) the demo's PostgreSQL and MLflow store; the stages' environment."""
    from workflows.local.demo import local_env

    return local_env(state)


def _stage_rows(stage: str, params: dict[str, str], metrics: dict[str, Any]) -> int | None:
    key = {"ingest": "rows", "silver": "rows", "train": "train-rows"}.get(stage)
    if key and key in params:
        return int(params[key])
    return int(metrics["rows"]) if stage == "eval" and "rows" in metrics else None


def run_pipeline(rows: int, state: Path, seed: int = 7, keep: bool = False) -> dict[str, Any]:
    """Run the workflow once on ``rows`` synthetic flows; timings, phases and per-stage stats."""
    from workflows.local.demo import synthetic_source
    from workflows.local.project import REPO_ROOT
    from workflows.localargo.engine import RunOptions, run_workflow
    from workflows.localargo.manifest import load_manifest

    from .procmon import ChildMonitor

    state.mkdir(parents=True, exist_ok=True)
    env = _services(state)
    default = load_manifest(MANIFEST, {}).parameters.get("source")
    source = synthetic_source(default, rows).replace("seed=7", f"seed={seed}")
    opts = RunOptions(
        manifest=MANIFEST,
        parameters={"source": source},
        runtime="subprocess",
        artifacts=str(state / "artifacts"),
        workdir=state / "runs",
        workspace=REPO_ROOT,
        extra_env=env,
    )
    with open(state / "executor.log", "a") as out, ChildMonitor() as mon:
        started = time.perf_counter()
        outcome = run_workflow(opts, out=out)
        wall = time.perf_counter() - started
    status = json.loads(outcome.status_path.read_text())
    nodes = {c["displayName"]: c for c in status["root"]["children"]}
    metrics_path = state / "artifacts" / "eval" / outcome.name / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    procs = {c.name: c for c in mon.children if c.name in STAGES}
    stages = {}
    for stage in STAGES:
        node, proc = nodes.get(stage, {}), procs.get(stage)
        params = node.get("outputs", {}).get("parameters", {})
        stages[stage] = {
            "phase": node.get("phase", "not run"),
            "wall_seconds": node.get("durationSeconds"),
            "process_seconds": None if proc is None else round(proc.last_seen - proc.first_seen, 3),
            "cpu_seconds": None if proc is None else proc.cpu_seconds,
            "peak_rss_bytes": None if proc is None else proc.peak_rss_bytes,
            "peak_rss_exact": bool(proc and proc.peak_exact),
            "stage_rows": _stage_rows(stage, params, metrics),
        }
    verdict = nodes.get("eval", {}).get("outputs", {}).get("parameters", {}).get("verdict")
    result = {
        "rows": rows,
        "source": source,
        "workflow": outcome.name,
        "phase": outcome.phase,
        "message": outcome.message,
        "wall_seconds": wall,
        "stages": stages,
        "gate": verdict,
    }
    if not keep:
        _clean(state, outcome.name, outcome.status_path.parent)
    return result


def _clean(state: Path, name: str, run_dir: Path) -> None:
    """Remove the run's artifacts and sandboxes (10M flows leave gigabytes); status.json and logs stay."""
    for layer in ("raw", "silver", "models", "eval"):
        shutil.rmtree(state / "artifacts" / layer / name, ignore_errors=True)
    shutil.rmtree(run_dir / "pods", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf.pipeline", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, required=True, help="synthetic flows to run through the pipeline")
    p.add_argument("--state", type=Path, required=True, help="state directory (pg/, mlflow/, artifacts/, runs/)")
    p.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    p.add_argument("--json", type=Path, required=True, help="write the result here")
    p.add_argument("--keep", action="store_true", help="keep the run's artifacts and sandboxes")
    args = p.parse_args(argv)
    result = run_pipeline(args.rows, args.state.resolve(), args.seed, args.keep)
    args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
