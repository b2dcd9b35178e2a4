"""``python -m benchmarks.partitioned``: the partitioned workflow on P files of R flows, cold then memoized.

Steps: write (or reuse) the landing folder of P synthetic hours under ``--state``; start
the demo's PostgreSQL and MLflow store; run the partitioned WorkflowTemplate through the
local executor twice in one workdir (the second run's ingest is answered by the memo
cache); with ``--single`` also run the single-pod workflow on the same number of flows;
write the markdown report (``--results``) and the raw numbers (``--json``). The runs'
artifacts and memo cache are removed afterwards; the landing folder is kept for the next run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from stages.ingest.partitions import positive_int

from . import RSS_LIMIT, STAGES, clean, landing, run_partitioned

log = logging.getLogger("benchmarks.partitioned")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MIB = 1 << 20


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.partitioned", description=__doc__.splitlines()[0])
    p.add_argument("--partitions", type=positive_int, required=True, help="landing files (partitions, one hour each)")
    p.add_argument("--rows-per-partition", type=positive_int, required=True, help="synthetic flows per file")
    p.add_argument(
        "--parallelism",
        type=positive_int,
        default=None,
        help="pods running at once (the workflow's spec.parallelism; default: the manifest's)",
    )
    p.add_argument(
        "--state",
        type=Path,
        default=REPO / "benchmarks" / ".data" / "state",
        help="landing cache, PostgreSQL, MLflow and run folders (default benchmarks/.data/state, git-ignored)",
    )
    p.add_argument("--seed", type=int, default=7, help="generator seed of partition 0; partition k uses seed+k")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="markdown report (default %(default)s)")
    p.add_argument("--json", type=Path, default=None, help="raw numbers (default: the --results path with .json)")
    p.add_argument(
        "--cold-only",
        action="store_true",
        help="skip the memoized second run (it re-runs everything but ingest: about as long as the cold one)",
    )
    p.add_argument(
        "--single",
        type=int,
        nargs="?",
        const=0,
        default=None,
        metavar="ROWS",
        help="also run the single-pod workflow on ROWS synthetic flows (default P*R) and compare time per 1M flows",
    )
    return p


def run_single(rows: int, state: Path, seed: int, scratch: Path) -> dict[str, Any]:
    """The single-pod workflow in a fresh process (``benchmarks.perf.pipeline``), as the perf benchmark runs it."""
    out = scratch / "single.json"
    cmd = [sys.executable, "-m", "benchmarks.perf.pipeline", "--rows", str(rows), "--seed", str(seed)]
    cmd += ["--state", str(state), "--json", str(out)]
    subprocess.run(cmd, check=True, cwd=REPO)
    run: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    run["seconds_per_million_flows"] = round(run["wall_seconds"] / (rows / 1e6), 3)
    return run


def _log_run(label: str, run: dict[str, Any]) -> None:
    per_stage = "  ".join(f"{s} {v['pods']}×/{v['wall_max_seconds']:.1f}s" for s, v in run["stages"].items())
    log.info(
        "%s: %s in %.1f s, CPU %.1f s (%s)", label, run["phase"], run["wall_seconds"], run["cpu_seconds"], per_stage
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)]) + "\n"


def _stage_table(run: dict[str, Any]) -> str:
    rows = []
    for stage in STAGES:
        s = run["stages"][stage]
        rows.append(
            [
                stage,
                str(s["pods"]),
                str(s["memo_hits"]),
                f"{s['cpu_seconds']:.1f}",
                f"{'' if s['peak_rss_exact'] else '~'}{s['peak_rss_bytes'] / MIB:.0f}" if s["pods"] else "–",
                f"{s['wall_sum_seconds']:.1f}",
                f"{s['wall_max_seconds']:.1f}",
            ]
        )
    header = ["stage", "pods", "memo hits", "CPU s", "max peak RSS MiB", "wall sum s", "wall max s"]
    return _table(header, rows)


def render(res: dict[str, Any]) -> str:
    """RESULTS.md from the raw numbers."""
    m, cold, warm = res["machine"], res["cold"], res.get("memoized")
    runs = [("cold", cold)] + ([("memoized", warm)] if warm else [])
    load = ", ".join(f"{x:.1f}" for x in m["load_average"])
    flows = res["partitions"] * res["rows_per_partition"]
    parts = [
        "# Partitioned pipeline benchmark\n",
        f"- Date: {m['date']}; commit {m['git']}",
        f"- Command: `{res['command']}` ({res['seconds']:.0f} s in all)",
        f"- Machine: {m['nproc']} CPUs ({m['usable_cpus']} usable), {m['ram_bytes'] / (1 << 30):.1f} GiB RAM, "
        f"{m['cpu_model']}; load average {load} at the start (the machine is shared)",
        f"- Input: {res['partitions']} files × {res['rows_per_partition']:,} flows = {flows:,} flows, one synthetic "
        f"hour per file (landing folder {'reused' if res['landing_reused'] else 'generated'}: `{res['landing']}`)",
        f"- Workflow parallelism: {cold['parallelism']}",
        "",
        "## Summary\n",
        _table(
            ["run", "phase", "gate", "wall s", "s per 1M flows", "CPU s (all pods)", "pods", "every pod < 2 GiB"],
            [
                [
                    label,
                    run["phase"],
                    str(run["gate"]),
                    f"{run['wall_seconds']:.1f}",
                    f"{run['seconds_per_million_flows']:.1f}" if run["seconds_per_million_flows"] else "n/a",
                    f"{run['cpu_seconds']:.1f}",
                    str(run["pods"]),
                    "yes" if run["every_pod_under_rss_limit"] else "**no**",
                ]
                for label, run in runs
            ],
        ),
    ]
    if warm:
        parts.append(
            f"The memoized run (same landing folder, same workdir) ran {warm['stages']['ingest']['pods']} ingest "
            f"pods ({warm['stages']['ingest']['memo_hits']} of {warm['stages']['ingest']['nodes']} answered by the "
            "cache).\n"
        )
    else:
        parts.append("Cold run only (`--cold-only`): no memoized second run.\n")
    if res.get("single"):
        single = res["single"]
        parts.append(
            f"Single-pod workflow on {single['rows']:,} flows (one synthetic source): {single['phase']} in "
            f"{single['wall_seconds']:.1f} s, {single['seconds_per_million_flows']:.1f} s per 1M flows; "
            f"partitioned / single-pod time per 1M flows = **{res['ratio_to_single']:.2f}**.\n"
        )
    parts += ["## Cold run, per stage\n", _stage_table(cold)]
    if warm:
        parts += ["## Memoized run, per stage\n", _stage_table(warm)]
    parts.append(
        "Wall is the whole `run_workflow` call (services already up). Per stage: pods are the stage processes "
        "seen (a memo hit runs none), CPU is their summed user + sys (exact from `RUSAGE_CHILDREN` at each reap, "
        "split by sampled CPU when pods end within the same 0.1 s), peak RSS the largest high-water mark of any "
        f"one pod (limit checked: {RSS_LIMIT >> 30} GiB; `~`: sampled every 0.1 s, so a pod living "
        "less than a second may show less than it used; exact peaks come from `RUSAGE_CHILDREN`, which only "
        "gives one when it is the largest of the process so far, so the memoized run's are mostly sampled), "
        "wall sum/max over the pods' process lifetimes.\n"
    )
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from benchmarks.perf.report import machine
    from workflows.local.demo import local_env
    from workflows.local.services import EmbeddedPostgres

    started = time.monotonic()
    res: dict[str, Any] = {
        "machine": machine(),
        "command": shlex.join(["python", "-m", "benchmarks.partitioned", *(sys.argv[1:] if argv is None else argv)]),
        "partitions": args.partitions,
        "rows_per_partition": args.rows_per_partition,
        "seed": args.seed,
    }
    state = args.state.resolve()
    try:
        source, reused = landing(state, args.partitions, args.rows_per_partition, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    res["landing"], res["landing_reused"] = str(source), reused
    log.info("landing folder %s (%s)", source, "reused" if reused else "generated")
    bench = state / "partitioned" / time.strftime("%Y%m%dT%H%M%S")
    pg = EmbeddedPostgres(state / "pg")
    already_running = pg.is_running()
    try:
        env = local_env(state)
        for label in ("cold",) if args.cold_only else ("cold", "memoized"):
            res[label] = run_partitioned(source, bench / "runs", bench / "artifacts", env, args.parallelism)
            _log_run(label, res[label])
            for layer in ("silver", "models", "eval"):  # the RAW parts stay: the memoized run reuses them
                shutil.rmtree(bench / "artifacts" / layer, ignore_errors=True)
        if args.single is not None:
            rows = args.single or args.partitions * args.rows_per_partition
            res["single"] = run_single(rows, state, args.seed, bench)
            ratio = res["cold"]["seconds_per_million_flows"] / res["single"]["seconds_per_million_flows"]
            res["ratio_to_single"] = round(ratio, 3)
            log.info(
                "single-pod: %s in %.1f s; ratio %.2f", res["single"]["phase"], res["single"]["wall_seconds"], ratio
            )
    finally:
        clean(bench)
        if not already_running:  # the runs started it: leave nothing running behind
            pg.stop()
    res["seconds"] = time.monotonic() - started
    res["load_average_end"] = list(os.getloadavg())
    json_path = args.json or args.results.with_suffix(".json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")  # first: a report bug loses nothing
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(render(res))
    log.info("wrote %s and %s", args.results, json_path)
    return 0 if all(res[label]["complete"] for label in ("cold", "memoized") if label in res) else 1


if __name__ == "__main__":
    sys.exit(main())
