"""Each supported format on small files written exactly as the tools write them."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.common.schema import FLOW_SCHEMA
from stages.ingest import synthetic
from stages.ingest.readers import detect_format

from .conftest import FIXTURES, Ingested

Ingest = Callable[..., Ingested]


def _col(t: pa.Table, name: str) -> list[object]:
    return t.column(name).to_pylist()


def test_zeek_tsv_fields_types_and_nulls(ingest: Ingest) -> None:
    got = ingest(FIXTURES / "conn.log")
    t = got.flows
    assert t.schema.equals(FLOW_SCHEMA)
    assert t.num_rows == 8 and got.rejects.num_rows == 0
    assert _col(t, "uid")[0] == "CHhAvVGS1DHFjwGM9"
    assert _col(t, "src_ip")[:2] == ["10.1.0.23", "10.1.0.23"]
    assert _col(t, "dst_port") == [53, 443, 22, 445, 3389, 123, 0, 80]
    assert _col(t, "service") == ["dns", "ssl", "ssh", None, None, "ntp", None, "http"]
    s0 = t.slice(3, 1).to_pylist()[0]  # "-" stays null, never 0
    assert (s0["duration"], s0["src_bytes"], s0["dst_bytes"], s0["src_pkts"]) == (None, None, None, 1)
    assert _col(t, "ts")[0].isoformat() == "2026-01-05T00:00:01.104811+00:00"
    assert _col(t, "label") == [None] * 8, "an unlabelled log has unknown labels, not benign ones"
    assert set(_col(t, "source")) == {str(FIXTURES / "conn.log")}


def test_concatenated_logs_with_two_headers(ingest: Ingest, tmp_path: Path) -> None:
    """``cat a.log b.log``: the second header (other fields, the IoT-23 quirk) takes over mid-file."""
    path = tmp_path / "cat.log"
    path.write_bytes((FIXTURES / "conn.log").read_bytes() + (FIXTURES / "iot23-conn.log.labeled").read_bytes())
    got = ingest(path)
    assert got.flows.num_rows == 15 and got.rejects.num_rows == 0
    assert _col(got.flows, "label") == [None] * 8 + [1, 1, 0, 1, 1, 0, 1]


def test_gzip_gives_the_same_rows(ingest: Ingest, tmp_path: Path) -> None:
    gz = tmp_path / "conn.log.gz"
    with open(FIXTURES / "conn.log", "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain = ingest(FIXTURES / "conn.log").flows.drop_columns(["source"])
    assert ingest(gz).flows.drop_columns(["source"]).equals(plain)


def test_iot23_three_space_quirk_and_labels(ingest: Ingest) -> None:
    got = ingest(FIXTURES / "iot23-conn.log.labeled")
    t = got.flows
    assert t.num_rows == 7 and got.rejects.num_rows == 0
    assert _col(t, "label") == [1, 1, 0, 1, 1, 0, 1]
    assert _col(t, "attack_type") == [
        "part_of_a_horizontal_port_scan",
        "part_of_a_horizontal_port_scan",
        None,
        "c&c_heart_beat",
        "ddos",
        None,
        "okiru",
    ]
    assert _col(t, "history")[0] == "S" and _col(t, "src_ip_bytes")[0] == 180


@pytest.mark.parametrize("name", ["conn.json", "conn-iso.json"])
def test_zeek_json_matches_tsv(ingest: Ingest, name: str) -> None:
    tsv = ingest(FIXTURES / "conn.log").flows.drop_columns(["source"])
    got = ingest(FIXTURES / name)
    assert got.rejects.num_rows == 0
    assert got.flows.drop_columns(["source"]).equals(tsv)


def test_cicids2017_bom_leading_spaces_infinity_and_cp1252(ingest: Ingest) -> None:
    got = ingest(FIXTURES / "cicids2017.csv")
    t = got.flows
    assert t.num_rows == 7 and got.rejects.num_rows == 0, "Infinity/NaN sit in unmapped rate columns"
    assert _col(t, "dst_port")[:2] == [54865, 53]
    assert _col(t, "proto")[:3] == ["tcp", "udp", "hopopt"]  # IANA 0 is HOPOPT
    assert _col(t, "duration")[1] == pytest.approx(0.030846)  # microseconds → seconds
    assert _col(t, "src_pkts")[3] == 11 and _col(t, "dst_bytes")[3] == 318
    assert _col(t, "label") == [0, 0, 0, 1, 1, 1, 1]
    assert _col(t, "attack_type")[3:] == ["ftp_patator", "web_attack_brute_force", "port_scan", "ddos"]
    assert _col(t, "ts")[0].isoformat() == "2017-07-03T08:55:00+00:00"  # 3/7/2017 is day-first


def test_cse_cic_ids2018_naming_variant(ingest: Ingest) -> None:
    t = ingest(FIXTURES / "cse-cic-ids2018.csv").flows
    assert _col(t, "src_pkts") == [3, 22, 2]
    assert _col(t, "ts")[1].isoformat() == "2018-02-14T10:32:23+00:00"
    assert _col(t, "attack_type") == [None, "ssh_bruteforce", "ftp_brute_force"]
    assert _col(t, "src_ip") == [None, None, None], "fields a format lacks stay null"


def test_unsw_full_file_without_header(ingest: Ingest) -> None:
    t = ingest(FIXTURES / "UNSW-NB15_1.csv").flows
    assert t.num_rows == 5
    assert _col(t, "dst_port") == [53, 111, 80, 11, 32780], "0x000b is a hex port"
    assert _col(t, "service") == ["dns", None, "http", None, None]
    assert _col(t, "conn_state")[2] == "FIN"
    assert _col(t, "label") == [0, 0, 1, 1, 1]
    assert _col(t, "attack_type") == [None, None, "exploits", "reconnaissance", "fuzzers"]
    assert _col(t, "ts")[0].isoformat() == "2015-01-22T11:50:14+00:00"


def test_unsw_training_set_has_no_time_or_addresses(ingest: Ingest) -> None:
    t = ingest(FIXTURES / "UNSW_NB15_training-set.csv").flows
    assert t.num_rows == 4
    assert t.column("ts").null_count == t.column("src_ip").null_count == 4
    assert _col(t, "label") == [0, 0, 1, 1]
    assert _col(t, "attack_type") == [None, None, "generic", "exploits"]
    assert _col(t, "src_bytes") == [258, 734, 114, 860]


def test_user_mapping(ingest: Ingest) -> None:
    t = ingest(FIXTURES / "custom-flows.csv", mapping=FIXTURES / "custom-mapping.json").flows
    assert _col(t, "src_ip") == ["10.0.0.5", "10.0.0.6", "10.0.0.7"]
    assert _col(t, "label") == [0, 1, 0]
    assert _col(t, "attack_type") == [None, "ssh_brute", None]
    assert _col(t, "ts")[1].isoformat() == "2026-01-05T10:00:05+00:00"


def test_parquet_round_trip(ingest: Ingest, tmp_path: Path) -> None:
    table = synthetic.generate(3000, seed=4)
    path = tmp_path / "in.parquet"
    pq.write_table(table.drop_columns(["source"]), path)
    got = ingest(path)
    assert got.flows.drop_columns(["source"]).equals(table.drop_columns(["source"]))


def test_parquet_with_string_labels_and_extra_columns(ingest: Ingest, tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(
        pa.table(
            {"src_ip": ["1.2.3.4", "5.6.7.8"], "src_bytes": ["10", "-3"], "label": ["Benign", "Malicious"], "x": [1, 2]}
        ),
        path,
    )
    got = ingest(path)
    assert _col(got.flows, "label") == [0]
    assert got.rejects.to_pylist()[0]["line"] == 2 and got.rejects.to_pylist()[0]["reason"] == "negative value"


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("conn.log", "zeek"),
        ("iot23-conn.log.labeled", "zeek"),
        ("conn.json", "zeek-json"),
        ("cicids2017.csv", "csv"),
        ("UNSW-NB15_1.csv", "csv"),
    ],
)
def test_detect_format_from_content(name: str, fmt: str) -> None:
    assert detect_format(FIXTURES / name) == fmt


def test_large_file_streams_in_several_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ingest: Ingest) -> None:
    """Blocks split mid-file; line numbers in rejects still point at the right line."""
    import stages.ingest.textblocks as textblocks

    lines = (FIXTURES / "conn.log").read_text().splitlines()
    header, data = lines[:8], lines[8:-1]
    body = data * 40
    body[152] = body[152].replace("\t38\t", "\t-38\t")
    path = tmp_path / "many.log"
    path.write_text("\n".join(header + body) + "\n")
    monkeypatch.setattr("stages.ingest.zeek.blocks", lambda p: textblocks.blocks(p, 4096))
    got = ingest(path)
    assert got.stats.rows_in == 320 and got.flows.num_rows == 319
    assert got.rejects.to_pylist()[0]["line"] == 8 + 152 + 1
    assert got.stats.duplicates == 319 - 8
