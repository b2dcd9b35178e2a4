"""Hostile rows that used to crash ingest with exit 1: each one is now a quarantined row with a reason.

Found by review and by the fuzzing harness (tests/ingest/test_fuzz.py); rows in = rows
out + rejected holds for every case (checked by the ``ingest`` fixture).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.common.errors import InputError
from tests.hostile_files import corrupt_pages, duplicate_column

from .conftest import FIXTURES, Ingested

Ingest = Callable[..., Ingested]
CIC = FIXTURES / "cse-cic-ids2018.csv"


def _csv_with(tmp_path: Path, bad_line: str) -> Path:
    lines = CIC.read_text().splitlines()
    path = tmp_path / "cic.csv"
    path.write_text("\n".join([lines[0], bad_line, *lines[1:]]) + "\n", encoding="utf-8")
    return path


def test_csv_field_over_the_csv_module_limit_is_quarantined(ingest: Ingest, tmp_path: Path) -> None:
    """Python's csv refuses fields over 128 KiB ('field larger than field limit'); it was exit 1."""
    got = ingest(_csv_with(tmp_path, '443,6,"' + "x" * 200_000 + '"'))
    [reject] = got.rejects.to_pylist()
    assert reject["line"] == 2 and reject["reason"].startswith("wrong field count") or "CSV" in reject["reason"]
    assert got.flows.num_rows == CIC.read_text().count("\n") - 1


def test_reject_raw_cut_inside_a_multibyte_character(ingest: Ingest, tmp_path: Path) -> None:
    """raw is cut at 4,096 bytes; cutting a 2-byte 'é' in half raised UnicodeDecodeError (exit 1)."""
    got = ingest(_csv_with(tmp_path, "443,6,x" + "é" * 5000))
    [reject] = got.rejects.to_pylist()
    assert reject["line"] == 2 and reject["raw"].startswith("443,6,xéé") and len(reject["raw"]) <= 4096


def test_zeek_json_nested_200k_deep_is_quarantined(ingest: Ingest, tmp_path: Path) -> None:
    """json.loads raises RecursionError on deep nesting (exit 1), in the careful pass and in the schema sniff."""
    lines = (FIXTURES / "conn.json").read_text().splitlines()
    deep = '{"ts": ' + "[" * 200_000 + "]" * 200_000 + "}"
    for at in (0, 2):
        path = tmp_path / f"deep{at}.json"
        path.write_text("\n".join([*lines[:at], deep, *lines[at:]]) + "\n")
        got = ingest(path, fmt="zeek-json")
        [reject] = got.rejects.to_pylist()
        assert reject["line"] == at + 1 and "nested too deeply" in reject["reason"]
        assert got.flows.num_rows == len(lines)


def test_parquet_timestamp_far_in_the_future_is_quarantined(ingest: Ingest, tmp_path: Path) -> None:
    """A timestamp[ms] beyond what int64 microseconds hold overflowed the cast to µs (exit 1)."""
    path = tmp_path / "future.parquet"
    ts = pa.array([1767571201000, 253402300799000, 2**62, None], pa.timestamp("ms", tz="UTC"))
    ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    pq.write_table(pa.table({"ts": ts, "src_ip": ips, "dst_ip": ips}), path)
    got = ingest(path)
    assert [(r["line"], r["field"], r["reason"]) for r in got.rejects.to_pylist()] == [
        (2, "ts", "timestamp out of range"),
        (3, "ts", "timestamp out of range"),
    ]
    assert got.flows.column("ts").to_pylist()[0] == dt.datetime(2026, 1, 5, 0, 0, 1, tzinfo=dt.UTC)


# Whole files that are odd or corrupt: exit 2 (InputError) naming the file, never exit 1.


def _flows_parquet() -> pa.Table:
    ips = [f"10.0.0.{i % 250}" for i in range(5000)]
    return pa.table({"ts": [1767571201.0 + i for i in range(5000)], "src_ip": ips, "dst_ip": ips})


def test_parquet_with_corrupt_pages_is_input_error(ingest: Ingest, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="corrupt.parquet: corrupt Parquet data"):
        ingest(corrupt_pages(_flows_parquet(), tmp_path / "corrupt.parquet"))


def test_parquet_with_a_duplicated_column_is_input_error(ingest: Ingest, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"dup.parquet: column name\(s\) \['src_ip'\] appear more than once"):
        ingest(duplicate_column(_flows_parquet(), "src_ip", tmp_path / "dup.parquet"))


@pytest.mark.parametrize(
    "sep", ["", "\\xe9", "é", "\\x09\\x09", "::"], ids=["empty", "latin1", "utf8", "two-tabs", "two"]
)
def test_odd_separator_header_is_input_error(sep: str, ingest: Ingest, tmp_path: Path) -> None:
    """A multi-character separator matched no row (every row rejected); non-ASCII ones crashed."""
    lines = (FIXTURES / "conn.log").read_text().splitlines()
    path = tmp_path / "sep.log"
    path.write_text("\n".join([f"#separator {sep}", *lines[1:]]) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"sep.log line 1: #separator .* is not one ASCII character"):
        ingest(path)


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"columns": {"src_ip": ["client"]}}, "columns.src_ip"),
        ({"columns": {"src_ip": "client"}, "timestamp": {"column": 3}}, "timestamp.column"),
        ({"columns": {"src_ip": "client"}, "timestamp": {"format": {"a": 1}}}, "timestamp.format"),
        ({"columns": {"src_ip": "client"}, "label": {"column": "verdict", "benign": 5}}, "label.benign"),
        ({"columns": {"src_ip": "client"}, "label": {"column": "verdict", "benign": [{}]}}, r"label.benign\[0\]"),
        ({"columns": {"src_ip": "client"}, "duration_unit": ["s"]}, "duration_unit"),
    ],
)
def test_mapping_values_of_the_wrong_type_are_input_errors(
    doc: object, key: str, ingest: Ingest, tmp_path: Path
) -> None:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=f"mapping.json: {key} must be text"):
        ingest(FIXTURES / "custom-flows.csv", mapping=path)


# Memory: one line without a newline used to be read whole (a 1 MB gzip of 1 GiB of zeros: 5.1 GB RSS).


def _gzip_bomb(path: Path, head: bytes, gib: float = 1.0) -> Path:
    """``head`` then ``gib`` GiB of one repeated byte, no newline, gzipped (about 1 MB on disk)."""
    import gzip

    zeros = (b"0" if head else b"\0") * (1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(head)
        for _ in range(int(gib * 1024)):
            fh.write(zeros)
    return path


_MEASURE = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss // 1024)
"""


def _peak_rss_mib(*args: str) -> tuple[int, int, str]:
    """Run the ingest CLI; return its exit code, its peak RSS in MiB and its stderr.

    Linux keeps a process's RSS high-water mark across exec, so a child forked from this
    (large, late in a session) pytest process would report pytest's size: a small Python
    in between starts the stage and measures it.
    """
    import os
    import subprocess
    import sys

    from tests.helpers import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MINIO_", "MLFLOW_"))}
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "stages.ingest", *args, "--log-format", "text"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    exit_code, peak = (int(v) for v in proc.stdout.split())
    return exit_code, peak, proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("head", "fmt", "code"),
    [
        (b"", "auto", 2),
        # one good row first: a file whose every row is rejected exits 2 (the reject budget)
        (
            (FIXTURES / "conn.json").read_bytes().splitlines(keepends=True)[0] + b'{"ts": 1767571201, "uid": "',
            "zeek-json",
            0,
        ),
        (b"".join((FIXTURES / "conn.log").read_bytes().splitlines(keepends=True)[:9]) + b"1767571201.1\tC", "zeek", 0),
    ],
    ids=["zeros-alone", "json-line", "zeek-after-header"],
)
def test_gzip_bomb_stays_in_bounded_memory(head: bytes, fmt: str, code: int, tmp_path: Path) -> None:
    """1 GiB in one line: rejected as too long (exit 2 when it is all the file has), RSS far below the pod's 4 Gi."""
    bomb = _gzip_bomb(tmp_path / "bomb.gz", head)
    assert bomb.stat().st_size < 8 << 20
    out, rej = tmp_path / "flows.parquet", tmp_path / "rejects.parquet"
    exit_code, peak, err = _peak_rss_mib(
        "--source",
        str(bomb),
        "--format",
        fmt,
        "--output",
        str(out),
        "--rejects",
        str(rej),
        "--max-reject-fraction",
        "1",
    )
    assert exit_code == code, err[-2000:]
    assert peak < 600, f"peak RSS {peak} MiB"
    if code == 0:
        [reject] = pq.read_table(rej).to_pylist()
        assert reject["reason"] == "line too long: over 1048576 bytes" and len(reject["raw"]) == 4096


def test_csv_quoted_newline_next_to_a_bad_row(ingest: Ingest, tmp_path: Path) -> None:
    """The careful pass counted a quoted newline as two records, pyarrow as one: 'internal accounting error' (exit 2)."""
    lines = CIC.read_text().splitlines()
    quoted = lines[1].replace("Benign", '"Be\nnign"')
    path = tmp_path / "quoted.csv"
    path.write_text("\n".join([lines[0], quoted, "1,2,3", *lines[1:], '443,6,"open']) + "\n")
    got = ingest(path)
    rows = [(r["line"], r["reason"]) for r in got.rejects.to_pylist()]
    assert rows == [(4, "wrong field count: 3 fields, expected 12"), (8, "unterminated quoted field")]
    assert got.flows.num_rows == 1 + len(lines) - 1 and got.stats.rows_in == len(lines) + 2


def test_duplicated_fields_header_is_input_error(ingest: Ingest, tmp_path: Path) -> None:
    """Two #fields columns of one name: which one was read depended on pyarrow; now exit 2 naming it."""
    lines = (FIXTURES / "conn.log").read_text().splitlines()
    lines[6] = lines[6].replace("\tservice\t", "\tproto\t")
    path = tmp_path / "dup.log"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="dup.log line 7: #fields names proto more than once"):
        ingest(path)
