"""The time breakdown's arithmetic on a real profile and a real ``-X importtime`` trace."""

from __future__ import annotations

import cProfile
import importlib.util
import pstats
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.perf.breakdown import PHASES, Phase, import_times, phase_rows, render_table

STAGE_CODE = """
import time

def read():
    time.sleep(0.10)

def fit():
    time.sleep(0.20)

def plot():
    time.sleep(0.05)

def report():
    plot()
    time.sleep(0.05)

def body():
    read()
    fit()
    report()
    time.sleep(0.15)  # the body's own work

def audit():
    time.sleep(0.05)

def main():
    audit()
    body()
    time.sleep(0.05)  # the runner's own work
"""


def _profiled_stage(tmp_path: Path) -> tuple[dict, float]:
    path = tmp_path / "stages" / "demo" / "__main__.py"
    path.parent.mkdir(parents=True)
    path.write_text(STAGE_CODE)
    spec = importlib.util.spec_from_file_location("demo_stage", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    module.main()
    profiler.disable()
    profiled = time.perf_counter() - started
    return pstats.Stats(profiler).stats, profiled  # type: ignore[attr-defined]


def test_phase_rows_split_a_real_profile_and_sum_to_the_process_wall(tmp_path: Path) -> None:
    stats, profiled = _profiled_stage(tmp_path)
    src = "stages/demo/__main__.py"
    phases = (
        Phase("audit", ((src, "audit"),), within_body=False),
        Phase("read", ((src, "read"),)),
        Phase("fit", ((src, "fit"),)),
        Phase("plots", ((src, "plot"),)),
        Phase("report without plots", ((src, "report"),), minus=((src, "plot"),)),
    )
    rows = dict(
        phase_rows(
            stats,
            phases,
            "demo",
            process_wall=profiled + 1.5,
            import_seconds=1.0,
            profiled_seconds=profiled,
            dump_seconds=0.25,
        )
    )
    assert rows["interpreter start-up and exit"] == pytest.approx(0.25, abs=1e-9)
    assert rows["writing the profile (measurement only)"] == 0.25
    assert rows["imports (all, incl. lazy)"] == 1.0
    expected = {"audit": 0.05, "read": 0.10, "fit": 0.20, "plots": 0.05, "report without plots": 0.05,
                "demo body, rest (own compute)": 0.15, "runner, logging, other": 0.05}  # fmt: skip
    for label, seconds in expected.items():
        assert seconds * 0.9 <= rows[label] <= seconds + 0.1, (label, rows[label])
    assert sum(rows.values()) == pytest.approx(profiled + 1.5, rel=1e-6)


def test_every_stage_phase_names_a_function_that_exists() -> None:
    root = Path(__file__).resolve().parents[2]
    for stage, phases in PHASES.items():
        for phase in phases:
            for suffix, name in phase.functions + phase.minus:
                source = (root / suffix).read_text()
                assert f"def {name}(" in source, (stage, phase.label, suffix, name)


def test_import_times_reads_a_real_importtime_trace() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import json, xml.dom.minidom"],
        capture_output=True,
        text=True,
        check=True,
    )
    by_package, top = import_times(proc.stderr)
    assert by_package["json"] > 0 and by_package["xml"] > 0
    assert "json" in top and "xml.dom.minidom" in top
    assert "json.decoder" not in top  # nested under json: imported by it, not by the script
    assert sum(by_package.values()) < 5.0


def test_render_table_gives_shares_of_the_total() -> None:
    table = render_table("phase", [("a", 3.0), ("b", 1.0)])
    assert "| a | 3.00 | 75% |" in table and "| b | 1.00 | 25% |" in table
    assert table.splitlines()[-1] == "| **total** | **4.00** | 100% |"
