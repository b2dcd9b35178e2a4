"""The performance benchmark's own tools: the Zeek writer, the child-process monitor, the report.

The benchmark itself is not a test (it runs for minutes); these check that what it
measures with is right: the conn.log it writes is one our reader and zat's format
agree on, the monitor sees a child's real CPU and memory, and the report states each
target's verdict from the numbers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from benchmarks.perf.procmon import ChildMonitor
from benchmarks.perf.report import render, targets
from benchmarks.perf.zeekfile import CONN_FIELDS, CONN_TYPES, write_conn_log
from stages.ingest import synthetic
from stages.ingest.readers import read_source
from stages.ingest.writer import write_chunks

COMPARED = ["ts", "uid", "src_ip", "src_port", "dst_ip", "dst_port", "proto", "service", "duration", "src_bytes",
            "dst_bytes", "src_pkts", "dst_pkts", "src_ip_bytes", "dst_ip_bytes", "conn_state", "history"]  # fmt: skip


def test_conn_log_round_trips_through_our_reader(tmp_path: Path) -> None:
    generated = synthetic.generate(4000, seed=3)
    log = tmp_path / "conn.log"
    assert write_conn_log(generated.to_batches(max_chunksize=1500), log) == 4000
    lines = log.read_text().splitlines()
    assert lines[0] == "#separator \\x09" and lines[-1].startswith("#close\t")
    assert lines[6].split("\t")[1:] == list(CONN_FIELDS) and lines[7].split("\t")[1:] == list(CONN_TYPES)
    assert all(len(line.split("\t")) == len(CONN_FIELDS) for line in lines[8:-1])
    stats = write_chunks(read_source(log, str(log)), tmp_path / "flows.parquet", tmp_path / "rejects.parquet")
    assert (stats.rows_in, stats.rows_out, stats.rejected) == (4000, 4000, 0)
    read = pq.read_table(tmp_path / "flows.parquet")
    for name in COMPARED:
        assert read.column(name).equals(generated.column(name)), name
    assert read.column("label").null_count == 4000  # a plain conn.log carries no labels


def test_unset_values_are_written_as_dash(tmp_path: Path) -> None:
    batch = synthetic.generate(2000, seed=5).to_batches()[0]
    nulls = pc.is_null(batch.column("duration"))
    assert pc.any(nulls).as_py(), "the generator should leave some durations unset (S0 connections)"
    log = tmp_path / "conn.log"
    write_conn_log([batch], log)
    rows = [line.split("\t") for line in log.read_text().splitlines() if not line.startswith("#")]
    durations = [r[CONN_FIELDS.index("duration")] for r in rows]
    assert [d == "-" for d in durations] == nulls.to_pylist()
    assert all(r[CONN_FIELDS.index("tunnel_parents")] == "-" for r in rows)


def test_monitor_measures_a_child_it_did_not_start_itself() -> None:
    burn = "import time; x = bytearray(200 << 20); t = time.process_time()\nwhile time.process_time() - t < 0.4: pass"
    import resource

    earlier = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # a bigger child of this process
    with ChildMonitor(interval=0.05) as mon:
        subprocess.run([sys.executable, "-c", burn], check=True)
    (child,) = [c for c in mon.children if c.name == Path(sys.executable).name]
    assert child.cpu_seconds is not None and child.cpu_seconds >= 0.4
    assert 200 << 20 <= child.peak_rss_bytes < 400 << 20
    # RUSAGE_CHILDREN gives the exact peak only for the largest child so far (earlier tests may have run bigger ones)
    assert child.peak_exact == (earlier < 200 << 20)


def _results(ours: float, zat: float, arrow: float, small_wall: float, big_wall: float, rss: int) -> dict[str, Any]:
    def peer(rate: float) -> list[dict[str, Any]]:
        return [{"rows_per_second": rate, "seconds": 1e6 / rate, "cpu_seconds": 1.0, "peak_rss_bytes": 1 << 28}]

    def run(rows: int, wall: float) -> dict[str, Any]:
        stage = {"phase": "Succeeded", "wall_seconds": wall / 4, "cpu_seconds": wall / 4, "peak_rss_bytes": rss,
                 "peak_rss_exact": True, "stage_rows": rows}  # fmt: skip
        stages = {s: dict(stage) for s in ("ingest", "silver", "train", "eval")}
        stages["train"]["wall_seconds"] = wall / 2
        return {"rows": rows, "phase": "Succeeded", "gate": "passed", "workflow": "w", "wall_seconds": wall,
                "stages": stages}  # fmt: skip

    machine = {"date": "d", "git": "g", "nproc": 2, "usable_cpus": 2, "ram_bytes": 1 << 34, "cpu_model": "cpu",
               "python": "3", "load_average": [1.0, 1.0, 1.0], "versions": {k: "1" for k in
               ("pyarrow", "pandas", "numpy", "scikit-learn", "mlflow", "zat")}}  # fmt: skip
    ingest = {"file": "f", "rows": 10**6, "bytes": 1 << 27, "seed": 7, "repeat": 1,
              "runs": {"zat": peer(zat), "pyarrow": peer(arrow), "ours": peer(ours), "ours-read": peer(ours)}}  # fmt: skip
    return {"machine": machine, "command": "python -m benchmarks.perf", "seconds": 1.0, "ingest": ingest,
            "e2e_small": {"rows": 10**6, "runs": [run(10**6, small_wall)]},
            "e2e_big": {"rows": 10**7, "runs": [run(10**7, big_wall)]}}  # fmt: skip


@pytest.mark.parametrize(
    ("ours", "small", "big", "rss", "verdicts"),
    [
        (2.0e6, 30.0, 300.0, 1 << 30, ["met"] * 6),
        (1.0e6, 61.0, 800.0, 5 << 30, ["not met", "met", "not met", "met", "not met", "not met"]),
    ],
)
def test_targets_state_each_verdict(ours: float, small: float, big: float, rss: int, verdicts: list[str]) -> None:
    res = _results(ours, zat=1.0e6 / 1.0, arrow=1.4e6, small_wall=small, big_wall=big, rss=rss)
    got = [verdict.split("**")[1] for _, _, verdict in targets(res)]
    assert got == verdicts
    text = render(res)
    assert text.endswith("\n") and "| **train** |" in text  # the slowest stage is marked
    assert f"{big / small:.1f}" in text
