"""Schema check, time order and split, manifest hash, and skipped features on real tables."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.common.contracts import schema_hash
from stages.common.errors import InputError
from stages.common.schema import FLOW_SCHEMA
from stages.silver import dataset
from tests.silver.conftest import flows


def _schema_without(name: str) -> pa.Schema:
    return pa.schema([f for f in FLOW_SCHEMA if f.name != name])


def _schema_retyped(name: str, typ: pa.DataType) -> pa.Schema:
    return pa.schema([pa.field(f.name, typ) if f.name == name else f for f in FLOW_SCHEMA])


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (_schema_without("dst_port"), r"dst_port missing \(expected int32\)"),
        (_schema_retyped("ts", pa.timestamp("ns")), r"ts is timestamp\[ns\], expected timestamp\[us, tz=UTC\]"),
        (_schema_retyped("src_bytes", pa.string()), r"src_bytes is string, expected int64"),
    ],
)
def test_schema_check_names_the_column(schema: pa.Schema, message: str) -> None:
    with pytest.raises(InputError, match=message):
        dataset.check_schema(schema, "s3://b/raw/flows.parquet")


def test_canonical_schema_passes_and_extra_columns_are_ignored(tmp_path: Path) -> None:
    table = flows([{"t": 1}, {"t": 2}]).append_column("note", pa.array(["a", "b"]))
    pq.write_table(table, tmp_path / "f.parquet")
    assert dataset.read_flows(tmp_path / "f.parquet", "f").column_names == FLOW_SCHEMA.names


def test_not_parquet_is_input_error(tmp_path: Path) -> None:
    (tmp_path / "f.parquet").write_text("ts,uid\n1,C1\n")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        dataset.read_flows(tmp_path / "f.parquet", "f.parquet")


US = 1_000_000


@pytest.mark.parametrize(
    ("ts_s", "fraction", "train_rows"),
    [
        (list(range(10)), 0.3, 7),
        (list(range(10)), 0.0, 10),
        (list(range(10)), 0.5, 5),
        ([0, 1, 2, 3, 4, 5, 6, 6, 6, 9], 0.3, 6),  # all rows at the cutoff instant go to holdout
        ([0, 0, 0, 0], 0.5, 0),
    ],
)
def test_time_split(ts_s: list[int], fraction: float, train_rows: int) -> None:
    ts = np.asarray(ts_s, dtype=np.int64) * US
    split = dataset.split_rows(ts, len(ts), fraction)
    assert (split.train_rows, split.holdout_rows, split.method) == (train_rows, len(ts) - train_rows, "time")
    if split.holdout_rows and split.train_rows:
        assert ts[split.train_rows - 1] < ts[split.train_rows]  # no instant on both sides
        assert split.cutoff_ts == pa.scalar(int(ts[split.train_rows]), pa.timestamp("us", tz="UTC")).as_py().isoformat()


def test_row_order_split_without_timestamps() -> None:
    split = dataset.split_rows(None, 10, 0.3)
    assert (split.train_rows, split.holdout_rows, split.cutoff_ts, split.method) == (7, 3, None, "row-order")


@pytest.mark.parametrize(
    ("features", "other"),
    [(["a", "b"], ["b", "a"]), (["a"], ["a", "b"])],
)
def test_schema_hash_is_stable_and_sensitive(features: list[str], other: list[str]) -> None:
    dtypes = {f: "float32" for f in features}
    expected = hashlib.sha256(json.dumps({"features": features, "dtypes": dtypes}, sort_keys=True).encode()).hexdigest()
    assert schema_hash(features, dtypes) == expected == schema_hash(list(features), dict(dtypes))
    assert schema_hash(other, {f: "float32" for f in other}) != expected


def _build(table: pa.Table, tmp_path: Path, fraction: float = 0.3) -> tuple[pa.Table, dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    plan = dataset.plan(table)
    split = dataset.split_rows(plan.ts_sorted_us, table.num_rows, fraction)
    features = dataset.write_silver(table, plan, split, tmp_path / "features.parquet", chunk_rows=4_000)
    manifest = dataset.manifest(features, split, table.num_rows, True, plan.skipped, "0" * 64)
    return pq.read_table(tmp_path / "features.parquet"), manifest.as_dict()


def test_output_sorted_split_and_typed(synthetic_flows: pa.Table, tmp_path: Path) -> None:
    shuffled = synthetic_flows.take(pa.array(np.random.default_rng(0).permutation(synthetic_flows.num_rows)))
    out, manifest = _build(shuffled, tmp_path)
    ts = out.column("ts").cast(pa.int64()).to_numpy()
    assert out.num_rows == synthetic_flows.num_rows
    assert (np.diff(ts) >= 0).all()
    split = out.column("split").to_numpy(zero_copy_only=False)
    n_train = manifest["split"]["train_rows"]
    assert (split[:n_train] == "train").all() and (split[n_train:] == "holdout").all()
    assert ts[:n_train].max() < ts[n_train:].min()
    assert abs(n_train - 0.7 * out.num_rows) <= 5
    assert out.column_names == [*dataset.PASSTHROUGH, "split", *manifest["features"]]
    assert all(out.schema.field(f).type == pa.float32() for f in manifest["features"])
    assert manifest["skipped_features"] == {}
    assert sorted(set(out.column("uid").to_pylist())) == sorted(set(synthetic_flows.column("uid").to_pylist()))


def test_train_features_do_not_depend_on_later_flows(synthetic_flows: pa.Table, tmp_path: Path) -> None:
    """No leakage: the train rows' features are the same whether or not the holdout exists."""
    full, manifest = _build(synthetic_flows, tmp_path / "full")
    n_train = manifest["split"]["train_rows"]
    cutoff = full.column("ts")[n_train]
    earlier = synthetic_flows.filter(pa.compute.less(synthetic_flows.column("ts"), cutoff))
    alone, _ = _build(earlier, tmp_path / "alone", fraction=0.0)
    assert alone.num_rows == n_train
    for name in manifest["features"]:
        np.testing.assert_array_equal(alone.column(name).to_numpy(), full.column(name).to_numpy()[:n_train], name)


@pytest.mark.parametrize(
    ("nulled", "skipped", "reason"),
    [
        (["ts"], "src_conns", "ts is null in every row"),
        (["src_ip", "dst_ip"], "pair_conns", "needs src_ip, dst_ip"),
        (["dst_port"], "port_class", "needs dst_port"),
        (["history"], "history", "needs history"),
        (["src_ip_bytes", "dst_ip_bytes"], "ip_bytes", "needs src_ip_bytes, dst_ip_bytes"),
    ],
)
def test_missing_fields_skip_features_with_reason(
    synthetic_flows: pa.Table, tmp_path: Path, nulled: list[str], skipped: str, reason: str
) -> None:
    table = synthetic_flows.slice(0, 3000)
    for name in nulled:
        i = table.column_names.index(name)
        table = table.set_column(i, FLOW_SCHEMA.field(name), pa.nulls(table.num_rows, FLOW_SCHEMA.field(name).type))
    out, manifest = _build(table, tmp_path)
    assert reason in manifest["skipped_features"][skipped]
    assert out.num_rows == 3000
    assert not any(f.startswith(skipped) for f in manifest["features"])
    if "ts" in nulled:
        assert manifest["split"]["method"] == "row-order"
        assert not any(f.startswith(("src_", "pair_", "dst_")) for f in manifest["features"])


def test_partly_null_ts_falls_back_to_row_order(tmp_path: Path) -> None:
    table = flows([{"t": 5, "src_ip": "10.0.0.1"}, {"src_ip": "10.0.0.1"}, {"t": 1, "src_ip": "10.0.0.2"}])
    out, manifest = _build(table, tmp_path, fraction=0.34)
    assert manifest["split"]["method"] == "row-order"
    assert "ts is null in 1 rows" in manifest["skipped_features"]["src_conns"]
    assert out.column("uid").to_pylist() == ["C0", "C1", "C2"]


def test_corrupt_or_ambiguous_flows_are_input_errors(synthetic_flows: pa.Table, tmp_path: Path) -> None:
    """Corrupt pages and a duplicated column were exit 1 (OSError, KeyError); they are bad input."""
    from stages.silver.dataset import read_flows
    from tests.hostile_files import corrupt_pages, duplicate_column

    with pytest.raises(InputError, match="f.parquet: corrupt Parquet data"):
        read_flows(corrupt_pages(synthetic_flows, tmp_path / "f.parquet"), "f.parquet")
    with pytest.raises(InputError, match="d.parquet: not the canonical flow schema .*src_ip appears 2 times"):
        read_flows(duplicate_column(synthetic_flows, "src_ip", tmp_path / "d.parquet"), "d.parquet")
