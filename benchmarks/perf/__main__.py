"""``python -m benchmarks.perf``: ingest vs its peers, then the pipeline end to end at two sizes.

Steps: install the pinned zat if missing; write a Zeek conn.log of ``--rows`` synthetic
flows under benchmarks/.data/ (kept and reused); time zat, bare pyarrow and our ingest on
it, interleaved, ``--repeat`` times; run the whole workflow through the local executor
on ``--rows`` (``--repeat`` times) and on ``--big-rows`` (``--big-repeat`` times); write
the markdown report (``--out``) and the raw numbers (``--json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("benchmarks.perf")

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / ".data"
ZAT_PIN = "zat==0.4.9"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 20,000 / 60,000 rows, 1 repeat (overrides --rows, --big-rows, --repeat)",
    )
    p.add_argument("--repeat", type=int, default=3, help="runs per figure; the report shows medians (default 3)")
    p.add_argument(
        "--rows",
        type=int,
        default=1_000_000,
        help="rows of the ingest file and of the first end-to-end run (default 1,000,000)",
    )
    p.add_argument(
        "--big-rows",
        type=int,
        default=10_000_000,
        help="rows of the large end-to-end run; 0 skips it (default 10,000,000)",
    )
    p.add_argument("--big-repeat", type=int, default=1, help="runs of the large end-to-end run (default 1)")
    p.add_argument("--seed", type=int, default=7, help="synthetic generator seed (default 7)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: ingest, e2e, big")
    p.add_argument(
        "--data",
        type=Path,
        default=DATA,
        help="where inputs, state and scratch files go (default benchmarks/.data, git-ignored)",
    )
    p.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="markdown report (default %(default)s)")
    p.add_argument("--json", type=Path, default=None, help="raw numbers (default: the --out path with .json)")
    p.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="JSON",
        help="only re-render the markdown report (--out) from the raw numbers of an earlier run",
    )
    return p


def ensure_zat() -> None:
    """Install the pinned zat into this interpreter's environment when it is missing or another version."""
    from importlib import metadata

    want = ZAT_PIN.split("==")[1]
    try:
        have = metadata.version("zat")
    except metadata.PackageNotFoundError:
        have = None
    if have == want:
        log.info("zat %s already installed", have)
        return
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", ZAT_PIN]
    log.info("zat %s; installing the peer: %s", have or "not installed", shlex.join(cmd))
    subprocess.run(cmd, check=True)


def conn_log(data: Path, rows: int, seed: int) -> Path:
    """The benchmark's Zeek conn.log of ``rows`` flows (written once, then reused)."""
    from stages.ingest import synthetic

    from .zeekfile import write_conn_log

    path = data / f"conn-{rows}-seed{seed}.log"
    if path.exists():
        log.info("reusing %s", path)
        return path
    log.info("writing %s (%d rows) ...", path, rows)
    started = time.monotonic()
    write_conn_log(synthetic.generate_batches(rows, seed=seed), path)
    log.info("wrote %s in %.1f s (%.0f MiB)", path, time.monotonic() - started, path.stat().st_size / 2**20)
    return path


def bench_ingest(path: Path, data: Path, repeat: int, rows: int, seed: int) -> dict[str, Any]:
    """Every peer ``repeat`` times, interleaved (run 1 of each, then run 2 ...) so drifting load hits all alike."""
    from .peers import PEERS, as_dict, run_peer

    with open(path, "rb") as fh:  # warm the page cache once, for everyone
        while fh.read(1 << 24):
            pass
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PEERS}
    for i in range(repeat):
        for peer in PEERS:
            run = run_peer(peer, path, data / "scratch" / peer)
            runs[peer].append(as_dict(run))
            log.info(
                "ingest run %d/%d %-8s %6.2f s  %10.0f rows/s  CPU %.2f s  peak RSS %.0f MiB",
                i + 1,
                repeat,
                peer,
                run.seconds,
                run.rows_per_second,
                run.cpu_seconds,
                run.peak_rss_bytes / 2**20,
            )
    return {
        "file": str(path.relative_to(HERE.parents[1]) if path.is_relative_to(HERE.parents[1]) else path),
        "rows": rows,
        "bytes": path.stat().st_size,
        "seed": seed,
        "repeat": repeat,
        "runs": runs,
    }


def bench_e2e(rows: int, repeat: int, data: Path, seed: int) -> dict[str, Any]:
    """The workflow ``repeat`` times on ``rows`` flows, each in a fresh ``benchmarks.perf.pipeline`` process."""
    runs = []
    for i in range(repeat):
        out = data / "scratch" / f"e2e-{rows}-{i}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.perf.pipeline",
            "--rows",
            str(rows),
            "--seed",
            str(seed),
            "--state",
            str(data / "state"),
            "--json",
            str(out),
        ]
        subprocess.run(cmd, check=True, cwd=HERE.parents[1])
        run = json.loads(out.read_text())
        runs.append(run)
        stages = "  ".join(f"{k} {v['wall_seconds'] or 0:.1f}s" for k, v in run["stages"].items())
        log.info(
            "e2e %d rows run %d/%d: %s in %.1f s (%s)", rows, i + 1, repeat, run["phase"], run["wall_seconds"], stages
        )
    return {"rows": rows, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.quick:
        args.rows, args.big_rows, args.repeat, args.big_repeat = 20_000, 60_000, 1, 1
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    from .report import machine, render

    if args.render is not None:
        args.out.write_text(render(json.loads(args.render.read_text())))
        log.info("wrote %s from %s", args.out, args.render)
        return 0

    started = time.monotonic()
    res: dict[str, Any] = {
        "machine": machine(),
        "command": shlex.join(["python", "-m", "benchmarks.perf", *(sys.argv[1:] if argv is None else argv)]),
    }
    data = args.data.resolve()
    if "ingest" not in skip:
        ensure_zat()
        path = conn_log(data, args.rows, args.seed)
        res["ingest"] = bench_ingest(path, data, args.repeat, args.rows, args.seed)
    pipeline_runs = [("e2e_small", args.rows, args.repeat)] if "e2e" not in skip else []
    if "big" not in skip and args.big_rows > 0:
        pipeline_runs.append(("e2e_big", args.big_rows, args.big_repeat))
    if pipeline_runs:
        from workflows.local.services import EmbeddedPostgres

        pg = EmbeddedPostgres(data / "state" / "pg")
        already_running = pg.is_running()
        try:
            for key, rows, repeat in pipeline_runs:
                res[key] = bench_e2e(rows, repeat, data, args.seed)
        finally:
            if not already_running:  # the runs started it: leave nothing running behind
                pg.stop()
    res["seconds"] = time.monotonic() - started
    res["load_average_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path = args.json or args.out.with_suffix(".json")
    json_path.write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")  # first: a report bug loses nothing
    args.out.write_text(render(res))
    log.info("wrote %s and %s", args.out, json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
