"""The synthetic generator: determinism, schema, labels, scenarios, Zeek-consistent fields."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from stages.common.schema import FLOW_SCHEMA
from stages.ingest import synthetic
from stages.ingest.synthetic.attacks import SCENARIOS, split_rows


@pytest.fixture(scope="module")
def flows() -> pa.Table:
    return synthetic.generate(40_000, seed=11)


def test_same_arguments_give_identical_tables() -> None:
    assert synthetic.generate(5000, seed=3).equals(synthetic.generate(5000, seed=3))
    assert not synthetic.generate(5000, seed=3).equals(synthetic.generate(5000, seed=4))


def test_batches_stream_the_same_rows_as_generate() -> None:
    batches = list(synthetic.generate_batches(600_000, seed=5, days=1.0))
    assert len(batches) == 3
    assert all(b.num_rows <= 500_000 for b in batches)
    assert sum(b.num_rows for b in batches) == 600_000
    ts = pa.concat_arrays([b.column("ts") for b in batches]).cast(pa.int64()).to_numpy()
    assert (np.diff(ts) >= 0).all(), "rows are sorted by ts across batches"


def test_schema_rows_and_source(flows: pa.Table) -> None:
    assert flows.schema.equals(FLOW_SCHEMA)
    assert flows.num_rows == 40_000
    assert pc.unique(flows["source"]).to_pylist() == ["synthetic:seed=11"]
    assert synthetic.generate(0).num_rows == 0


def test_attack_share_and_every_scenario_present(flows: pa.Table) -> None:
    labels = flows["label"].to_numpy()
    assert labels.sum() == round(40_000 * 0.02)
    attack = flows["attack_type"]
    assert attack.null_count == (labels == 0).sum(), "attack_type is null exactly for benign rows"
    counts = {v["values"].as_py(): v["counts"].as_py() for v in pc.value_counts(attack.drop_null())}
    assert set(counts) == set(SCENARIOS)
    assert dict(zip(SCENARIOS, split_rows(800).tolist(), strict=True)) == counts


@pytest.mark.parametrize("share", [0.0, 0.1, 0.5])
def test_attack_share_is_respected(share: float) -> None:
    t = synthetic.generate(3000, seed=2, attack_share=share)
    assert pc.sum(t["label"]).as_py() == round(3000 * share)


def test_each_scenario_on_both_sides_of_a_time_split(flows: pa.Table) -> None:
    ts = flows["ts"].cast(pa.int64()).to_numpy()
    cut = np.quantile(ts, 0.7)
    attack = np.array(flows["attack_type"].to_pylist(), dtype=object)
    for name in SCENARIOS:
        mine = ts[attack == name]
        assert (mine < cut).any() and (mine >= cut).any(), name


def test_uids_unique_and_zeek_like(flows: pa.Table) -> None:
    uids = flows["uid"].to_pylist()
    assert len(set(uids)) == len(uids)
    assert all(len(u) == 18 and u[0] == "C" and u[1:].isalnum() for u in uids[:1000])


def test_fields_are_consistent_like_zeek(flows: pa.Table) -> None:
    df = flows.to_pandas()
    assert (df.src_ip_bytes >= df.src_bytes.fillna(0) + df.src_pkts * 20).all()
    assert (df.dst_ip_bytes >= df.dst_bytes.fillna(0) + df.dst_pkts * 20).all()
    tcp = df[df.proto == "tcp"]
    assert tcp[tcp.conn_state == "S0"].history.eq("S").all()
    assert tcp[tcp.conn_state == "REJ"].history.eq("Sr").all()
    assert tcp[tcp.conn_state == "SF"].history.str.startswith("ShA").all()
    assert (tcp[tcp.conn_state.isin(["S0", "REJ"])].dst_bytes.fillna(0) == 0).all()
    clients = df[df.src_ip.str.startswith("10.1.") & ~df.service.isin(["ntp"]) & (df.proto != "icmp")]
    assert (clients.src_port >= 32768).mean() > 0.99, "clients use ephemeral ports"
    assert df.conn_state.value_counts(normalize=True)["SF"] > 0.7
    assert {"S0", "REJ", "RSTO", "RSTR", "SH", "OTH"} <= set(df.conn_state)
    assert {"dns", "http", "ssl", "ssh", "smtp", "ntp", "smb", "rdp"} <= set(df.service.dropna())


def test_traffic_follows_the_working_day(flows: pa.Table) -> None:
    df = flows.to_pandas()
    by_hour = df[df.label == 0].groupby(df.ts.dt.hour).size()
    assert by_hour.loc[12:16].mean() > 3 * by_hour.loc[0:4].mean()


def test_attacks_overlap_benign_ranges_on_single_fields(flows: pa.Table) -> None:
    """No attack is separable by one constant: its ports and sizes occur in benign traffic too."""
    df = flows.to_pandas()
    benign, attacks = df[df.label == 0], df[df.label == 1]
    for name, rows in attacks.groupby("attack_type"):
        ports = set(rows.dst_port)
        if name != "vertical_scan":
            assert ports <= set(benign.dst_port), name
        common = rows.src_bytes.dropna().median()
        assert ((benign.src_bytes - common).abs() <= max(common * 0.1, 1)).any(), name


def test_exfiltration_is_large_asymmetric_and_at_night(flows: pa.Table) -> None:
    df = flows.to_pandas()
    ex = df[df.attack_type == "exfiltration"]
    assert (ex.src_bytes > 50 * ex.dst_bytes).all()
    assert ex.ts.dt.hour.isin([21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]).all()
    assert (ex.groupby(ex.ts.dt.date).ts.min().dt.hour.isin([21, 22, 23, 0, 1, 2, 3, 4])).all()


def test_beacons_are_periodic(flows: pa.Table) -> None:
    df = flows.to_pandas()
    for _, rows in df[df.attack_type == "c2_beacon"].groupby(["src_ip", "dst_ip"]):
        gaps = np.diff(rows.ts.astype("int64").to_numpy()) / 1e6
        assert gaps.std() / gaps.mean() < 0.25


def test_scans_fan_out_from_one_source(flows: pa.Table) -> None:
    df = flows.to_pandas()
    hs = df[df.attack_type == "horizontal_scan"].groupby("src_ip")
    assert (hs.dst_ip.nunique() / hs.size() > 0.9).all()
    vs = df[df.attack_type == "vertical_scan"].groupby(["src_ip", "dst_ip"])
    assert (vs.dst_port.nunique() / vs.size() > 0.9).all()


def test_a_million_rows_stream_in_bounded_batches_with_unique_uids() -> None:
    """Scale sanity (no timing asserted): batches stay bounded and uids stay unique across them."""
    sizes, uids = [], set()
    for batch in synthetic.generate_batches(1_000_000, seed=1):
        sizes.append(batch.num_rows)
        uids.update(batch.column("uid").to_pylist())
    assert sum(sizes) == len(uids) == 1_000_000
    assert len(sizes) == 4 and max(sizes) <= 500_000


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("synthetic://", {"rows": 100_000}),
        ("synthetic://?rows=5000&seed=9", {"rows": 5000, "seed": 9}),
        ("synthetic://?rows=1e6&attack_share=0.1&days=0.5", {"rows": 1_000_000, "attack_share": 0.1, "days": 0.5}),
    ],
)
def test_parse_uri(uri: str, expected: dict[str, object]) -> None:
    assert synthetic.parse_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("synthetic://?rowz=5", "unknown key 'rowz'"),
        ("synthetic://?rows=lots", "rows='lots' is not a valid int"),
        ("synthetic://?attack_share=2", "attack_share <= 1"),
        ("synthetic://?start=yesterday", "not an ISO 8601"),
    ],
)
def test_parse_uri_rejects_bad_queries(uri: str, message: str) -> None:
    from stages.common.errors import InputError

    with pytest.raises(InputError, match=message):
        synthetic.parse_uri(uri)
