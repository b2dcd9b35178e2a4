"""Dataset variants that used to become zero rows silently, and the reject budget that stops that.

The corrected CIC-IDS2017 release (Engelen et al. 2021: ``id``/``Src IP``/``Attempted Category``
header, ISO timestamps with microseconds) and a Zeek log whose ``ts`` counts from the capture
start were rejected row by row while ingest exited 0. Fixtures are written in each variant's
exact shape (header names and value formats), with made-up rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from stages.common.errors import InputError
from stages.ingest.__main__ import check_reject_budget
from stages.ingest.writer import Stats
from tests.helpers import run_stage

from .conftest import FIXTURES, Ingested

Ingest = Callable[..., Ingested]
CORRECTED = FIXTURES / "cicids2017-corrected.csv"
RELATIVE = FIXTURES / "conn-relative-ts.log"


def _cli(tmp_path: Path, source: Path | str, *extra: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MLFLOW_", "MINIO_"))}
    done = run_stage(
        "ingest",
        "--source",
        str(source),
        "--output",
        str(tmp_path / "out" / "flows.parquet"),
        "--rejects",
        str(tmp_path / "out" / "rejects.parquet"),
        "--log-format",
        "text",
        *extra,
        env=env,
    )
    return done.returncode, done.stderr


def test_corrected_cicids2017_release_is_recognised(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        got = ingest(CORRECTED)
    assert got.rejects.num_rows == 0 and got.flows.num_rows == 6
    ts = got.flows.column("ts").to_pylist()
    assert ts[0] == dt.datetime(2017, 7, 6, 12, 39, 6, 818901, tzinfo=dt.UTC)
    assert ts[5] == dt.datetime(2017, 7, 6, 12, 41, 59, tzinfo=dt.UTC)
    assert got.flows.column("duration").to_pylist()[1] == pytest.approx(0.030846)  # microseconds
    assert got.flows.column("src_ip").to_pylist()[0] == "192.168.10.5"
    assert got.flows.column("label").to_pylist() == [0, 0, 0, 1, 1, 1]
    assert "corrected release" in caplog.text and "ISO 8601" in caplog.text


def test_original_cicids2017_release_is_named_too(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        got = ingest(FIXTURES / "cicids2017.csv", preset="cicids2017")
    assert got.rejects.num_rows == 0
    assert "original release" in caplog.text and "day-first" in caplog.text


def test_relative_zeek_timestamps_are_rejected_with_the_fix_named(ingest: Ingest) -> None:
    got = ingest(RELATIVE)
    assert got.flows.num_rows == 0 and got.rejects.num_rows == 5
    assert all("--time-origin" in r for r in got.rejects.column("reason").to_pylist())
    assert got.stats.rejects_by_reason == Counter({"timestamp out of range": 5})


def test_budget_fails_all_rejected_whatever_the_fraction() -> None:
    stats = Stats(rows_in=4, rows_out=0, rejected=4, rejects_by_reason=Counter({"unparseable timestamp": 4}))
    stats.examples["unparseable timestamp"] = [
        {"line": n, "field": "Timestamp", "reason": "unparseable timestamp", "raw": f"row {n}"} for n in (2, 3, 4)
    ]
    with pytest.raises(InputError, match=r"4 of 4 rows rejected \(100.0%") as err:
        check_reject_budget(stats, "x.csv", 1.0)
    assert "4 x unparseable timestamp" in str(err.value)
    assert "line 2 (Timestamp: unparseable timestamp): row 2" in str(err.value)
    check_reject_budget(Stats(), "empty.csv", 0.0)  # header only: nothing in, nothing rejected — fine


def test_cli_relative_timestamps_exit_2_then_time_origin_reads_them(tmp_path: Path) -> None:
    code, err = _cli(tmp_path, RELATIVE)
    assert code == 2, err
    assert "5 of 5 rows rejected" in err and "--time-origin" in err and "line 9" in err
    assert not (tmp_path / "out" / "flows.parquet").exists()
    code, err = _cli(tmp_path, RELATIVE, "--time-origin", "2026-01-05T00:00:01.104811")
    assert code == 0, err
    ts = pq.read_table(tmp_path / "out" / "flows.parquet").column("ts").to_pylist()
    assert ts[0] == dt.datetime(2026, 1, 5, 0, 0, 1, 104811, tzinfo=dt.UTC) and len(ts) == 5


def test_cli_reject_budget_default_and_override(tmp_path: Path) -> None:
    lines = CORRECTED.read_text().splitlines()
    broken = [*lines, lines[1].replace("2017-07-06 12:39:06.818901", "yesterday")]
    path = tmp_path / "one-bad.csv"
    path.write_text("\n".join(broken) + "\n")  # 1 of 7 rows rejected: over the 5% default
    code, err = _cli(tmp_path, path)
    assert code == 2 and "1 of 7 rows rejected" in err and "line 8" in err and "yesterday" in err
    code, err = _cli(tmp_path, path, "--max-reject-fraction", "0.2")
    assert code == 0, err
    assert pq.read_table(tmp_path / "out" / "rejects.parquet").num_rows == 1
    code, err = _cli(tmp_path, path, "--max-reject-fraction", "2")
    assert code == 2 and "not a fraction between 0 and 1" in err


def test_original_release_twelve_hour_clock_is_read_as_afternoon(ingest: Ingest, tmp_path: Path) -> None:
    """The original release writes the 15:56 DDoS as ``7/7/2017 3:56`` (no AM/PM); capture days only."""
    lines = (FIXTURES / "cicids2017.csv").read_bytes().splitlines()
    last = lines[-1]
    assert b"7/7/2017 15:56" in last
    path = tmp_path / "twelve-hour.csv"
    rows = [last.replace(b"15:56", b"3:56"), last.replace(b"7/7/2017 15:56", b"8/7/2017 3:56"), lines[1]]
    path.write_bytes(b"\n".join([lines[0], *rows]) + b"\n")
    ts = ingest(path).flows.column("ts").to_pylist()
    assert ts[0] == dt.datetime(2017, 7, 7, 15, 56, tzinfo=dt.UTC)
    assert ts[1] == dt.datetime(2017, 7, 8, 3, 56, tzinfo=dt.UTC)  # after the capture: left alone
    assert ts[2] == dt.datetime(2017, 7, 3, 8, 55, tzinfo=dt.UTC)  # morning stays morning


def test_empty_records_are_rejected_but_not_counted_against_the_budget(tmp_path: Path) -> None:
    """The original CIC-IDS2017 Thursday morning file ends in ~288,000 records of only commas."""
    lines = CORRECTED.read_text().splitlines()
    path = tmp_path / "trailing-empty.csv"
    path.write_text("\n".join([*lines, *["," * 90] * 10]) + "\n")  # 10 of 16 records empty
    code, err = _cli(tmp_path, path)
    assert code == 0, err
    rejects = pq.read_table(tmp_path / "out" / "rejects.parquet").to_pylist()
    assert len(rejects) == 10 and all(r["reason"].startswith("empty record") for r in rejects)
    path.write_text("\n".join([lines[0], *["," * 90] * 3]) + "\n")  # nothing but empty records
    code, err = _cli(tmp_path, path)
    assert code == 2 and "all 3 records are empty" in err
