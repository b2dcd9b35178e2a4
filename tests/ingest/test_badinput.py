"""The bad-input corpus: each case either fails the whole file (exit 2, message) or is quarantined.

Whole-file problems raise InputError (exit 2 via the runner) with a message naming the
file and line/field. Row problems land in rejects.parquet with line, field and reason,
and rows in == rows out + rows rejected always holds (checked by the ``ingest`` fixture).

| case                    | outcome                                                       |
|-------------------------|---------------------------------------------------------------|
| empty file (0 bytes)    | exit 2 "empty file"                                           |
| header only             | valid empty output (0 rows, 0 rejects), warning logged        |
| no #fields line         | exit 2 "#fields"                                              |
| reordered/extra fields  | read by name; extra ignored, missing canonical → null         |
| truncated / corrupt .gz | exit 2 "truncated or corrupt gzip"                            |
| wrong delimiter         | exit 2 "separated by"                                         |
| missing required column | exit 2 "lacks required field(s) id.resp_h" / CSV "missing"    |
| non-numeric value       | quarantined "not a number" (field named)                      |
| negative byte count     | quarantined "negative value"                                  |
| bad/out-of-range ts     | quarantined "unparseable timestamp" / "timestamp out of range"|
| wrong field count       | quarantined "wrong field count"                               |
| non-UTF-8 bytes         | quarantined "non-UTF-8 bytes" (Zeek); CSV is read as cp1252   |
| 10 MB line              | quarantined "line too long"                                   |
| duplicate rows          | kept, counted in metric ``duplicates``                        |
| unknown label word      | kept with label null, counted in ``unknown_labels``           |
| CSV with BOM            | read normally                                                 |
| Parquet, wrong schema   | exit 2 naming the columns                                     |
| missing local file      | exit 2 "no such file"                                         |
| missing S3 key          | exit 2 "not found in S3" (tests/ingest/test_cli.py)           |
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.common.errors import InputError

from .conftest import BADINPUT, FIXTURES, Ingested

Ingest = Callable[..., Ingested]


def _gz(tmp_path: Path, cut: int | None = None, flip: int | None = None) -> Path:
    data = bytearray(gzip.compress((FIXTURES / "conn.log").read_bytes()))
    if flip is not None:
        data[flip] ^= 0xFF
        data[flip + 1] ^= 0xFF
    path = tmp_path / "conn.log.gz"
    path.write_bytes(bytes(data[:cut]) if cut else bytes(data))
    return path


def _wrong_schema_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), path)
    return path


def _nested_ts_parquet(tmp_path: Path) -> Path:
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"ts": [[1.0], [2.0]], "src_ip": ["1.1.1.1", "2.2.2.2"]}), path)
    return path


def _csv_missing_columns(tmp_path: Path) -> Path:
    path = tmp_path / "cic.csv"
    path.write_text(" Destination Port, Flow Duration, Label\n80,100,BENIGN\n")
    return path


def _tab_csv_as_comma(tmp_path: Path) -> Path:
    path = tmp_path / "semicolon-ish.csv"
    path.write_text("a b c\n1 2 3\n")
    return path


def _mapping(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(doc))
    return path


FATAL = [
    ("empty", lambda t: BADINPUT / "empty.log", {}, r"empty file \(0 bytes\)"),
    ("no-fields", lambda t: BADINPUT / "no-fields.log", {}, r"line 7: data before any #fields header line"),
    ("no-fields-forced", lambda t: FIXTURES / "UNSW-NB15_1.csv", {"fmt": "zeek"}, r"line 1: data before any #fields"),
    ("truncated-gz", lambda t: _gz(t, cut=300), {}, "truncated or corrupt gzip"),
    ("corrupt-gz", lambda t: _gz(t, flip=40), {}, "truncated or corrupt gzip"),
    ("wrong-delimiter", lambda t: BADINPUT / "wrong-delimiter.log", {}, r"line 9: 1 field\(s\) separated by .*','-sep"),
    (
        "missing-required",
        lambda t: BADINPUT / "missing-required.log",
        {},
        r"line 7: #fields lacks required .*id\.resp_h",
    ),
    ("csv-missing-required", _csv_missing_columns, {}, r"missing required column\(s\) \['total fwd packets'"),
    ("csv-one-column", _tab_csv_as_comma, {}, "header is one column"),
    ("parquet-wrong-schema", _wrong_schema_parquet, {}, r"columns \['a', 'b'\] include none of the canonical"),
    ("parquet-nested-ts", _nested_ts_parquet, {}, r"column 'ts' has type list"),
    ("missing-file", lambda t: t / "nope.log", {}, "nope.log: no such file"),
]
MAPPING_ERRORS = [
    ({"columns": {"bytes": "bytes_out"}}, r"unknown key\(s\) \['bytes'\]"),
    ({"columns": {"src_ip": "nope"}}, r"missing required column\(s\) \['nope'\] for mapping:mapping.json"),
    ({"columns": {"src_ip": "client"}, "label": "verdict"}, '"label" and "timestamp" must be JSON objects'),
    ({"columns": {"src_ip": "client"}, "duration_unit": "minutes"}, "duration_unit must be one of"),
    ([1, 2], "a mapping is a JSON object"),
]


@pytest.mark.parametrize(("doc", "message"), MAPPING_ERRORS)
def test_bad_mappings_are_input_errors(doc: object, message: str, ingest: Ingest, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=message):
        ingest(FIXTURES / "custom-flows.csv", mapping=_mapping(tmp_path, doc))


@pytest.mark.parametrize(("case", "make", "kwargs", "message"), FATAL, ids=[c[0] for c in FATAL])
def test_whole_file_problems_are_input_errors(
    case: str, make: Callable[[Path], Path], kwargs: dict[str, str], message: str, ingest: Ingest, tmp_path: Path
) -> None:
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as info:
        ingest(path, **kwargs)
    assert path.name in str(info.value), "the message names the file"


QUARANTINED = [
    ("nonnumeric.log", 2, [(10, "orig_bytes", "not a number"), (11, "id.resp_p", "not a number")]),
    ("negative-bytes.log", 2, [(10, "resp_bytes", "negative value"), (11, "orig_pkts", "negative value")]),
    (
        "bad-timestamps.log",
        2,
        [
            (10, "ts", "unparseable timestamp"),
            (11, "ts", "timestamp out of range"),
            (12, "ts", "timestamp out of range"),
            (13, "ts", "missing value"),
        ],
    ),
    ("non-utf8.log", 3, [(10, "history", "non-UTF-8 bytes")]),
    (
        "wrong-field-count.log",
        2,
        [
            (10, None, "wrong field count: 22 fields, expected 21"),
            (11, None, "wrong field count: 10 fields, expected 21"),
        ],
    ),
]


@pytest.mark.parametrize(("name", "kept", "expected"), QUARANTINED, ids=[q[0] for q in QUARANTINED])
def test_bad_rows_are_quarantined_with_line_field_reason(
    name: str, kept: int, expected: list[tuple[int, str | None, str]], ingest: Ingest
) -> None:
    got = ingest(BADINPUT / name)
    assert got.flows.num_rows == kept
    rows = got.rejects.to_pylist()
    assert [(r["line"], r["field"], r["reason"]) for r in rows] == expected
    lines = (BADINPUT / name).read_bytes().split(b"\n")
    for r in rows:
        assert r["source"] == str(BADINPUT / name)
        assert r["raw"] == lines[r["line"] - 1].decode("utf-8", "replace")
    assert sum(got.stats.rejects_by_reason.values()) == len(rows)


def test_non_utf8_in_an_ignored_field_is_harmless(ingest: Ingest) -> None:
    """tunnel_parents is not a canonical field: its bytes are never decoded, the row is kept."""
    got = ingest(BADINPUT / "non-utf8.log")
    assert "C4J4Th3PJpwUYZZ6gc" not in got.flows.column("uid").to_pylist()
    assert "CUM0KZ3MLUfNB0cl11" in got.flows.column("uid").to_pylist()


def test_ten_megabyte_line_is_quarantined(ingest: Ingest, tmp_path: Path) -> None:
    lines = (FIXTURES / "conn.log").read_bytes().split(b"\n")
    huge = lines[9].replace(b"ShADadFf", b"S" * (10 << 20))
    path = tmp_path / "huge.log"
    path.write_bytes(b"\n".join(lines[:9] + [huge] + lines[10:]))
    got = ingest(path)
    assert got.flows.num_rows == 7
    (reject,) = got.rejects.to_pylist()
    assert reject["line"] == 10 and reject["reason"] == "line too long: over 1048576 bytes"
    assert len(reject["raw"]) == 4096


def test_header_only_is_an_empty_valid_output(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    got = ingest(BADINPUT / "header-only.log")
    assert got.flows.num_rows == got.rejects.num_rows == got.stats.rows_in == 0
    assert "header only" in caplog.text


def test_csv_header_only_is_an_empty_valid_output(ingest: Ingest, tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text((FIXTURES / "UNSW_NB15_training-set.csv").read_text().splitlines()[0] + "\n")
    got = ingest(path)
    assert got.flows.num_rows == got.rejects.num_rows == 0


def test_reordered_and_extra_fields_are_read_by_name(ingest: Ingest) -> None:
    reference = ingest(FIXTURES / "conn.log").flows
    got = ingest(BADINPUT / "reordered-fields.log").flows
    assert got.column("history").null_count == got.num_rows, "a canonical field the log lacks is null"
    for name in ("ts", "uid", "src_ip", "src_port", "dst_port", "src_bytes", "dst_bytes", "dst_ip_bytes"):
        assert got.column(name).equals(reference.column(name)), name


def test_duplicates_are_kept_and_counted(ingest: Ingest) -> None:
    got = ingest(BADINPUT / "duplicates.log")
    assert got.flows.num_rows == 6 and got.stats.duplicates == 2
    assert got.stats.metrics()["duplicates"] == 2


def test_unknown_label_words_become_null_and_are_counted(ingest: Ingest) -> None:
    got = ingest(BADINPUT / "unknown-label.log")
    assert got.flows.column("label").to_pylist() == [1, None, None, 1]
    assert got.rejects.num_rows == 0
    assert got.stats.metrics()["unknown_label_values"] == {"Suspicious": 1, "Unlabelled": 1}


def test_csv_with_bom(ingest: Ingest) -> None:
    got = ingest(BADINPUT / "bom.csv")
    assert got.flows.num_rows == 4 and got.flows.column("duration").to_pylist()[0] == pytest.approx(0.121478)


def test_json_lines_with_problems(ingest: Ingest, tmp_path: Path) -> None:
    lines = (FIXTURES / "conn.json").read_text().splitlines()
    lines[1] = lines[1][:40]  # cut mid-record
    lines[2] = lines[2].replace('"orig_bytes": 3201', '"orig_bytes": -3201')
    lines[3] = "[1, 2, 3]"
    lines[4] = lines[4].replace('"ts": 1767571205.25', '"ts": "2026-01-05T00:00:05.25Z"')  # ISO in a numeric log
    lines.insert(5, "   ")  # blank: not a record
    path = tmp_path / "bad.json"
    path.write_text("\n".join(lines) + "\n")
    got = ingest(path, fmt="zeek-json")
    rows = [(r["line"], r["field"], r["reason"].split(":")[0]) for r in got.rejects.to_pylist()]
    assert rows == [(2, None, "invalid JSON"), (3, "orig_bytes", "negative value"), (4, None, "not a JSON object")]
    assert got.flows.num_rows == 5 and got.stats.rows_in == 8
    assert got.flows.column("ts").to_pylist()[1].isoformat() == "2026-01-05T00:00:05.250000+00:00"


def test_csv_rows_with_problems(ingest: Ingest, tmp_path: Path) -> None:
    text = (FIXTURES / "cse-cic-ids2018.csv").read_text().splitlines()
    text[1] = text[1].replace("14/02/2018 08:31:01", "31/31/2018 99:00:00")
    text[2] = text[2].replace(",22,23,", ",22,-23,")
    text.append("443,6,14/02/2018 10:40:00")
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(text) + "\n")
    got = ingest(path)
    rows = [(r["line"], r["field"], r["reason"]) for r in got.rejects.to_pylist()]
    assert rows == [
        (2, "timestamp", "unparseable timestamp"),
        (3, "tot bwd pkts", "negative value"),
        (5, None, "wrong field count: 3 fields, expected 12"),
    ]
    assert got.flows.num_rows == 1
