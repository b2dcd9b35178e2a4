"""The markdown report: machine, command, medians, per-stage breakdown, targets met or not.

Pure functions of the results dict that ``__main__`` assembles (also written as JSON),
so the report can be re-rendered from a saved run.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["machine", "median_of", "render", "targets"]

GIB = 1 << 30
MIB = 1 << 20
REPO_ROOT = Path(__file__).resolve().parents[2]
STAGE_ORDER = ("ingest", "silver", "train", "eval")
ZAT_TARGET, PYARROW_TARGET, E2E_SECONDS, RSS_LIMIT, SCALE_LIMIT = 2.0, 0.7, 60.0, 4 * GIB, 12.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}{' (with uncommitted changes)' if dirty else ''}"


def machine() -> dict[str, Any]:
    """Where and with what the numbers were taken."""
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "ram_bytes": _ram_bytes(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "versions": {d: _version(d) for d in ("pyarrow", "pandas", "numpy", "scikit-learn", "mlflow", "zat")},
        "load_average": os.getloadavg(),
        "git": _git(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    values = [float(r[key]) for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def _verdict(ok: bool, detail: str) -> str:
    return f"**met** ({detail})" if ok else f"**not met** ({detail})"


def targets(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows for every target that was measured."""
    rows: list[tuple[str, str, str]] = []
    ing = res.get("ingest")
    if ing:
        ours, zat, arrow = (median_of(ing["runs"][p], "rows_per_second") for p in ("ours", "zat", "pyarrow"))
        r1, r2 = ours / zat, ours / arrow
        rows.append(
            (
                "ingest ≥ 2× zat LogToDataFrame (rows/s)",
                f"{r1:.2f}×",
                _verdict(r1 >= ZAT_TARGET, f"{r1 / ZAT_TARGET - 1:+.0%} vs target"),
            )
        )
        rows.append(
            (
                "ingest ≥ 0.7× bare pyarrow.csv.read_csv (rows/s)",
                f"{r2:.2f}×",
                _verdict(r2 >= PYARROW_TARGET, f"{r2 / PYARROW_TARGET - 1:+.0%} vs target"),
            )
        )
    small, big = res.get("e2e_small"), res.get("e2e_big")
    if small:
        wall = median_of(small["runs"], "wall_seconds")
        ok = wall < E2E_SECONDS and all(r["phase"] == "Succeeded" for r in small["runs"])
        rows.append(
            (
                f"end to end {small['rows']:,} flows < {E2E_SECONDS:.0f} s wall",
                f"{wall:.1f} s",
                _verdict(ok, f"{wall - E2E_SECONDS:+.1f} s vs limit"),
            )
        )
    if big:
        run = big["runs"][0]
        rows.append(
            (
                f"end to end {big['rows']:,} flows completes",
                run["phase"],
                _verdict(run["phase"] == "Succeeded", f"gate {run.get('gate')}"),
            )
        )
        peaks = {s: v["peak_rss_bytes"] or 0 for s, v in run["stages"].items()}
        worst = max(peaks, key=lambda s: peaks[s])
        rows.append(
            (
                f"every stage's peak RSS < 4 GiB at {big['rows']:,}",
                f"{worst} {peaks[worst] / GIB:.2f} GiB",
                _verdict(peaks[worst] < RSS_LIMIT, f"{peaks[worst] / RSS_LIMIT:.0%} of the limit"),
            )
        )
        if small:
            ratio = median_of(big["runs"], "wall_seconds") / median_of(small["runs"], "wall_seconds")
            rows.append(
                (
                    f"time({big['rows']:,}) / time({small['rows']:,}) ≤ 12",
                    f"{ratio:.1f}",
                    _verdict(ratio <= SCALE_LIMIT, f"{ratio - SCALE_LIMIT:+.1f} vs limit"),
                )
            )
    return rows


def notes(res: dict[str, Any]) -> list[str]:
    """Why a target is missed, and how to read the numbers, from the measurements themselves."""
    out: list[str] = []
    ing = res.get("ingest")
    if ing and "ours-read" in ing["runs"]:
        rate = {p: median_of(r, "rows_per_second") for p, r in ing["runs"].items()}
        cpu = {p: median_of(r, "cpu_seconds") for p, r in ing["runs"].items()}
        cores = max(1, int(res["machine"]["usable_cpus"]))
        out.append(
            f"Ingest does more than either peer: every row validated and quarantined, a 64-bit hash per row for "
            f"the duplicate count, and zstd Parquet written. Its reader alone (parse + validate) runs at "
            f"{rate['ours-read']:,.0f} rows/s = {rate['ours-read'] / rate['zat']:.2f}× zat and "
            f"{rate['ours-read'] / rate['pyarrow']:.2f}× bare pyarrow; the whole stage needs {cpu['ours']:.2f} CPU s "
            f"against {cpu['pyarrow']:.2f} for pyarrow and {cpu['zat']:.2f} for zat (process totals), so on "
            f"{cores} cores its wall time cannot drop below {cpu['ours'] / cores:.2f} s."
        )
    for key in ("e2e_small", "e2e_big"):
        if not res.get(key):
            continue
        run = sorted(res[key]["runs"], key=lambda r: r["wall_seconds"])[(len(res[key]["runs"]) - 1) // 2]
        stages = run["stages"]
        total_cpu = sum(s["cpu_seconds"] or 0 for s in stages.values())
        slowest = max(stages, key=lambda k: stages[k]["wall_seconds"] or 0)
        out.append(
            f"{res[key]['rows']:,} flows: the stages used {total_cpu:.0f} CPU s in {run['wall_seconds']:.0f} s of wall "
            f"time; the slowest stage is {slowest} ({stages[slowest]['wall_seconds']:.1f} s). A CPU/wall ratio "
            "below 1 for a single-threaded stage means it waited for a core on this shared machine."
        )
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ingest_section(ing: dict[str, Any]) -> str:
    what = {
        "zat": "zat `LogToDataFrame().create_dataframe` → pandas (parse only)",
        "pyarrow": "bare `pyarrow.csv.read_csv` → Arrow table (parse only)",
        "ours": "ours: `read_source` + `write_chunks` (parse, validate, rejects, duplicates, RAW Parquet)",
        "ours-read": "ours, reader only: parse, validate, quarantine (no Parquet, no duplicate count)",
        "ours-cli": "ours: `python -m stages.ingest` subprocess (+ start-up, imports, sha256)",
    }
    rows = []
    for peer, runs in ing["runs"].items():
        rows.append(
            [
                what.get(peer, peer),
                f"{median_of(runs, 'seconds'):.2f}",
                f"{median_of(runs, 'cpu_seconds'):.2f}",
                f"{median_of(runs, 'peak_rss_bytes') / MIB:.0f}",
                f"{median_of(runs, 'rows_per_second'):,.0f}",
                " / ".join(f"{r['seconds']:.2f}" for r in runs),
            ]
        )
    header = ["reader", "wall s (median)", "CPU s", "peak RSS MiB", "rows/s (median)", "all runs, s"]
    return (
        f"### Ingest: Zeek conn.log TSV, {ing['rows']:,} rows, {ing['bytes'] / MIB:.0f} MiB\n\n"
        f"File: `{ing['file']}` (21 conn fields, written from the synthetic generator, seed {ing['seed']}). "
        f"Median of {ing['repeat']} runs each, peers interleaved run by run, each in a fresh process; the wall "
        "time covers the read call only (interpreter start-up and imports excluded, for every peer); CPU "
        "(user + sys) and peak RSS are the whole child process's, from `wait4`.\n\n" + _table(header, rows) + "\n"
    )


def _stage_table(run: dict[str, Any]) -> str:
    stages = run["stages"]
    total = sum(s["wall_seconds"] or 0 for s in stages.values()) or 1.0
    slowest = max(stages, key=lambda s: stages[s]["wall_seconds"] or 0)
    rows = []
    for name in sorted(stages, key=lambda k: STAGE_ORDER.index(k) if k in STAGE_ORDER else 99):
        s = stages[name]
        wall, cpu, rss = s["wall_seconds"], s["cpu_seconds"], s["peak_rss_bytes"]
        mark = "**" if name == slowest else ""
        rows.append(
            [
                f"{mark}{name}{mark}",
                s["phase"],
                f"{mark}{wall:.1f}{mark}" if wall is not None else "-",
                f"{wall / total:.0%}" if wall else "-",
                f"{cpu:.1f}" if cpu is not None else "-",
                f"{cpu / wall:.2f}" if cpu and wall else "-",
                f"{rss / MIB:,.0f}{'' if s['peak_rss_exact'] else ' ~'}" if rss else "-",
                f"{run['rows'] / wall:,.0f}" if wall else "-",
                f"{s['stage_rows']:,}" if s["stage_rows"] is not None else "-",
            ]
        )
    header = ["stage", "phase", "wall s", "share", "CPU s", "CPU/wall", "peak RSS MiB", "flows/s", "stage rows"]
    return _table(header, rows)


def _e2e_section(e2e: dict[str, Any]) -> str:
    runs = e2e["runs"]
    med = sorted(runs, key=lambda r: r["wall_seconds"])[(len(runs) - 1) // 2]
    walls = " / ".join(f"{r['wall_seconds']:.1f}" for r in runs)
    return (
        f"### End to end: {e2e['rows']:,} synthetic flows\n\n"
        f"Wall (median of {len(runs)}): **{median_of(runs, 'wall_seconds'):.1f} s** (runs: {walls} s); "
        f"workflow {med['phase']}, gate {med.get('gate')}. Per stage, for the median run (`{med['workflow']}`):\n\n"
        + _stage_table(med)
        + "\n"
    )


def render(res: dict[str, Any]) -> str:
    """The whole markdown section."""
    m = res["machine"]
    v = m["versions"]
    load = ", ".join(f"{x:.1f}" for x in m["load_average"])
    load_end = ", ".join(f"{x:.1f}" for x in res.get("load_average_end", m["load_average"]))
    parts = [
        "## Performance\n",
        f"- Date: {m['date']}; commit {m['git']}",
        f"- Command: `{res['command']}` ({res['seconds']:.0f} s in all)",
        f"- Machine: {m['nproc']} CPUs ({m['usable_cpus']} usable), {m['ram_bytes'] / GIB:.1f} GiB RAM, "
        f"{m['cpu_model']}; load average {load} at the start, {load_end} at the end (the machine is shared)",
        f"- Python {m['python']}; pyarrow {v['pyarrow']}, pandas {v['pandas']}, numpy {v['numpy']}, "
        f"scikit-learn {v['scikit-learn']}, mlflow {v['mlflow']}, zat {v['zat']}",
        "",
        "### Targets\n",
        _table(["target", "measured", "verdict"], [list(t) for t in targets(res)]),
        "",
    ]
    all_notes = [*res.get("notes", []), *notes(res)]
    if all_notes:
        parts += ["Notes:", "", *[f"- {n}" for n in all_notes], ""]
    if res.get("ingest"):
        parts.append(_ingest_section(res["ingest"]))
    for key in ("e2e_small", "e2e_big"):
        if res.get(key):
            parts.append(_e2e_section(res[key]))
    parts.append(
        "Stage wall time is the executor's node duration (staging artifacts in and out included); "
        "CPU is user + sys of the stage process (exact, from `RUSAGE_CHILDREN` when it is reaped); "
        "peak RSS is the process's high-water mark (exact from `RUSAGE_CHILDREN` where marked without "
        "`~`, else sampled every 0.1 s); flows/s is the pipeline's flow count over the stage's wall time; "
        "stage rows: ingest flows written, silver rows, train rows fitted, eval holdout rows scored.\n"
    )
    return "\n".join(parts).rstrip("\n") + "\n"
