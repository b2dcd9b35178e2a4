"""Pure conversion rules: attack names, label vocabularies, numbers, timestamps, row checks."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from stages.ingest.normalise import (
    Problems,
    attack_name,
    conform,
    label_value,
    labels,
    parse_numbers,
    parse_timestamps,
)
from stages.ingest.zeek import arrow_type


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("PartOfAHorizontalPortScan", "part_of_a_horizontal_port_scan"),
        ("C&C-HeartBeat", "c&c_heart_beat"),
        ("C&C-FileDownload", "c&c_file_download"),
        ("DDoS", "ddos"),
        ("Okiru", "okiru"),
        ("PortScan", "port_scan"),
        ("FTP-Patator", "ftp_patator"),
        ("DoS Hulk", "dos_hulk"),
        ("Web Attack \u2013 Brute Force", "web_attack_brute_force"),
        ("Web Attack \ufffd Brute Force", "web_attack_brute_force"),
        (" Fuzzers ", "fuzzers"),
        ("SSH-Bruteforce", "ssh_bruteforce"),
        ("Infilteration", "infilteration"),
    ],
)
def test_attack_name(raw: str, expected: str) -> None:
    assert attack_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "names_are_attacks", "expected"),
    [
        ("Benign", False, 0),
        ("BENIGN", True, 0),
        ("benign", False, 0),
        ("normal", False, 0),
        ("0", False, 0),
        ("Malicious", False, 1),
        ("1", False, 1),
        ("DDoS", True, 1),
        ("DDoS", False, None),  # a Zeek label column only speaks Benign/Malicious
        ("Suspicious", False, None),
        ("-", True, None),
        ("", True, None),
        ("Background", False, None),
        (None, True, None),
    ],
)
def test_label_value(raw: str | None, names_are_attacks: bool, expected: int | None) -> None:
    assert label_value(raw, names_are_attacks) == expected


def test_labels_take_attack_type_from_detail_and_count_unknowns() -> None:
    lab, atk, unknown = labels(
        pa.array(["Benign", "Malicious", "Malicious", "Suspicious", "-", None]),
        pa.array(["-", "PartOfAHorizontalPortScan", "-", "Okiru", "-", None]),
        6,
    )
    assert lab.to_pylist() == [0, 1, 1, None, None, None]
    assert atk.to_pylist() == [None, "part_of_a_horizontal_port_scan", None, None, None, None]
    assert unknown == {"Suspicious": 1}


@pytest.mark.parametrize(
    ("zeek", "arrow"),
    [
        ("time", pa.float64()),
        ("interval", pa.float64()),
        ("count", pa.int64()),
        ("port", pa.int64()),
        ("addr", pa.string()),
        ("enum", pa.string()),
        ("bool", pa.bool_()),
        ("set[string]", pa.string()),
        ("vector[interval]", pa.string()),
    ],
)
def test_zeek_type_table(zeek: str, arrow: pa.DataType) -> None:
    assert arrow_type(zeek) == arrow


def test_parse_numbers_flags_only_bad_values() -> None:
    values, bad = parse_numbers(pa.array(["1", "x", None, "0x000b", "9" * 30]), pa.int64())
    assert values.to_pylist() == [1, None, None, 11, None]
    assert bad.tolist() == [False, True, False, False, True]


@pytest.mark.parametrize(
    ("values", "fmt", "unit", "expected"),
    [
        (pa.array([1767571201.5]), None, "s", [1767571201.5]),
        (pa.array([1767571201500]), None, "ms", [1767571201.5]),
        (pa.array(["1767571201.5"]), None, "s", [1767571201.5]),
        (pa.array(["2026-01-05T00:00:01.5Z"]), None, "s", [1767571201.5]),
        (pa.array(["2026-01-05T01:00:01.5+01:00"]), None, "s", [1767571201.5]),
        (pa.array(["2026-01-05 00:00:01.5"]), None, "s", [1767571201.5]),
        (pa.array(["5/1/2026 0:00"]), "%d/%m/%Y %H:%M", "s", [1767571200.0]),
        (pa.array(["yesterday"]), None, "s", [None]),
    ],
)
def test_parse_timestamps(values: pa.Array, fmt: str | None, unit: str, expected: list[float | None]) -> None:
    secs, bad = parse_timestamps(values, fmt, unit)
    got = secs.to_pylist()
    assert [None if g is None else round(g, 6) for g in got] == expected
    assert bad.tolist() == [e is None for e in expected]


def test_conform_flags_each_bad_row_once() -> None:
    cols = {
        "ts": pa.array([1767571201.0, 1e12, 1767571202.0, 1767571203.0, float("nan")]),
        "src_ip": pa.array(["10.0.0.1", "10.0.0.1", None, "10.0.0.1", "10.0.0.1"]),
        "dst_port": pa.array([80, 80, 80, 70000, 80]),
        "src_bytes": pa.array([1, -1, -1, 1, 1]),
        "duration": pa.array([0.1, 0.1, 0.1, -1.0, math.inf]),
    }
    problems = Problems(5)
    table = conform(cols, 5, "t", problems, required=("src_ip",))
    assert table.num_rows == 5
    assert problems.bad.tolist() == [False, True, True, True, True]
    assert problems.field.tolist() == [None, "ts", "src_ip", "dst_port", "ts"]
    assert problems.reason.tolist() == [
        None,
        "timestamp out of range",
        "missing value",
        "port out of range",
        "timestamp out of range",
    ]
