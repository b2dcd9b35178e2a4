"""Silver per partition: the previous partition's flows as lookback, every row on one split side.

The key property: RAW flows cut by time into partitions, each run through silver with
the previous partition as ``--lookback``, give — concatenated in partition order — the
bytes a single silver run over all the flows gives, in every feature and passthrough column.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from stages.common.contracts import PASSTHROUGH, SilverManifest
from stages.silver.windows import PERIOD_WINDOW, Flows, context_features
from tests.helpers import run_stage

CUTS = (0.3, 0.55, 0.8)
"""Row quantiles to cut at: cuts fall where flows are, so windows straddle every cut."""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MINIO_", "MLFLOW_", "RUN_ID"))}


def _silver(out: Path, source: Path, *extra: str) -> tuple[pa.Table, dict, str]:
    """Run silver into ``out``; returns the features, the manifest and the stage's log."""
    proc = run_stage(
        "silver",
        "--input",
        str(source),
        "--output",
        str(out / "features.parquet"),
        "--manifest",
        str(out / "manifest.json"),
        *extra,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    return pq.read_table(out / "features.parquet"), json.loads((out / "manifest.json").read_text()), proc.stderr


def _silver_fails(tmp_path: Path, source: Path, *extra: str) -> str:
    """Run silver expecting exit 2 and no output; returns its log."""
    out = tmp_path / "refused"
    proc = run_stage(
        "silver",
        "--input",
        str(source),
        "--output",
        str(out / "features.parquet"),
        "--manifest",
        str(out / "manifest.json"),
        *extra,
        env=_env(),
    )
    assert proc.returncode == 2, proc.stderr
    assert not (out / "manifest.json").exists() and not (out / "features.parquet").exists()
    return proc.stderr


@dataclass(frozen=True)
class Partitioned:
    whole: Path
    parts: list[Path]
    missing: Path  # where the first partition's lookback would be: nothing there
    single: pa.Table
    single_manifest: dict
    outputs: list[pa.Table]
    manifests: list[dict]
    logs: list[str]


def _ts_us(table: pa.Table) -> np.ndarray:
    return table.column("ts").cast(pa.int64()).to_numpy()


@pytest.fixture(scope="module")
def partitioned(synthetic_flows: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Partitioned:
    """The synthetic day cut into 4 time partitions; silver on the whole and on each part."""
    d = tmp_path_factory.mktemp("partitions")
    ts = _ts_us(synthetic_flows)
    cuts = [int(np.quantile(ts, q)) for q in CUTS]
    whole = d / "whole.parquet"
    pq.write_table(synthetic_flows, whole)
    parts = []
    for k, (lo, hi) in enumerate(zip([None, *cuts], [*cuts, None], strict=True)):
        keep = np.ones(len(ts), dtype=bool)
        if lo is not None:
            keep &= ts >= lo
        if hi is not None:
            keep &= ts < hi
        parts.append(d / f"part-{k}.parquet")
        pq.write_table(synthetic_flows.filter(pa.array(keep)), parts[-1])
    single, single_manifest, _ = _silver(d / "single", whole)
    missing = d / "none" / "flows.parquet"
    outputs, manifests, logs = [], [], []
    for k, part in enumerate(parts):
        side = "holdout" if k == len(parts) - 1 else "train"
        lookback = parts[k - 1] if k else missing
        table, manifest, log = _silver(
            d / f"part={k:05d}", part, "--lookback", str(lookback), "--lookback-optional", "--part-split", side
        )
        outputs.append(table)
        manifests.append(manifest)
        logs.append(log)
    return Partitioned(whole, parts, missing, single, single_manifest, outputs, manifests, logs)


def test_cuts_fall_inside_busy_periods(partitioned: Partitioned) -> None:
    """The test below only means something if sources talk on both sides of every cut."""
    for before, after in zip(partitioned.parts, partitioned.parts[1:], strict=False):
        a, b = pq.read_table(before), pq.read_table(after)
        first = int(_ts_us(b).min())
        near = a.filter(pa.array(_ts_us(a) >= first - 600_000_000))  # the last 10 min before the cut
        opening = b.filter(pa.array(_ts_us(b) < first + 600_000_000))
        shared = set(near.column("src_ip").to_pylist()) & set(opening.column("src_ip").to_pylist())
        assert near.num_rows > 20 and opening.num_rows > 20 and len(shared) > 5


def test_partitions_concatenate_to_the_single_pod_output(partitioned: Partitioned) -> None:
    single, joined = partitioned.single, pa.concat_tables(partitioned.outputs)
    features = partitioned.single_manifest["features"]
    assert all(m["features"] == features for m in partitioned.manifests)
    assert all(m["schema_hash"] == partitioned.single_manifest["schema_hash"] for m in partitioned.manifests)
    assert joined.num_rows == single.num_rows
    for name in features:
        a, b = joined.column(name).to_numpy(), single.column(name).to_numpy()
        assert a.dtype == b.dtype == np.float32, name
        assert np.array_equal(a, b) and np.array_equal(a.view(np.uint32), b.view(np.uint32)), name
    for name in PASSTHROUGH:
        assert joined.column(name).combine_chunks().equals(single.column(name).combine_chunks()), name


def test_lookback_matters_at_the_cuts(partitioned: Partitioned, tmp_path: Path) -> None:
    """Without its lookback a partition's first flows get thinner windows: the lookback is read."""
    starved, _, _ = _silver(tmp_path, partitioned.parts[1], "--part-split", "train")
    fed = partitioned.outputs[1]
    differ = np.zeros(fed.num_rows, dtype=bool)
    for name in partitioned.single_manifest["features"]:
        differ |= starved.column(name).to_numpy() != fed.column(name).to_numpy()
    assert differ.sum() > 50
    first_hour = _ts_us(fed) < int(_ts_us(fed).min()) + PERIOD_WINDOW[1] * 1000
    assert not differ[~first_hour].any()


def test_part_split_in_manifest_and_split_column(partitioned: Partitioned) -> None:
    last = len(partitioned.parts) - 1
    for k, (table, doc) in enumerate(zip(partitioned.outputs, partitioned.manifests, strict=True)):
        side = "holdout" if k == last else "train"
        ts = table.column("ts")
        n = pq.read_metadata(partitioned.parts[k]).num_rows
        cutoff = pc.min(ts).as_py() if side == "holdout" else pc.max(ts).as_py() + dt.timedelta(microseconds=1)
        assert doc["rows"] == table.num_rows == n
        assert doc["split"] == {
            "method": "partition",
            "side": side,
            "train_rows": n if side == "train" else 0,
            "holdout_rows": n if side == "holdout" else 0,
            "holdout_fraction": 1.0 if side == "holdout" else 0.0,
            "cutoff_ts": cutoff.isoformat(),
        }
        assert set(table.column("split").to_pylist()) == {side}
        manifest_path = partitioned.parts[k].parent / f"part={k:05d}" / "manifest.json"
        assert SilverManifest.read(manifest_path, str(manifest_path)).train_rows == doc["split"]["train_rows"]


def test_first_partition_without_its_optional_lookback(partitioned: Partitioned) -> None:
    """Partition 0's lookback does not exist: it is the first, logged with the path, and its
    output is the single pod's first rows."""
    assert not partitioned.missing.exists()
    assert str(partitioned.missing) in partitioned.logs[0] and "first partition" in partitioned.logs[0]
    assert str(partitioned.missing) not in partitioned.logs[1]


def test_time_split_with_a_lookback_counts_written_rows_only(partitioned: Partitioned, tmp_path: Path) -> None:
    table, doc, _ = _silver(tmp_path, partitioned.parts[2], "--lookback", str(partitioned.parts[1]))
    n = pq.read_metadata(partitioned.parts[2]).num_rows
    split = doc["split"]
    assert split["method"] == "time" and "side" not in split
    assert split["train_rows"] + split["holdout_rows"] == doc["rows"] == table.num_rows == n
    labels = table.column("split").to_pylist()
    assert labels == ["train"] * split["train_rows"] + ["holdout"] * split["holdout_rows"]
    for name in doc["features"]:
        assert np.array_equal(table.column(name).to_numpy(), partitioned.outputs[2].column(name).to_numpy()), name


def test_an_overlapping_lookback_is_cut_at_the_first_flow(partitioned: Partitioned, tmp_path: Path) -> None:
    """The whole day as lookback of partition 2: its rows from the partition's first flow on
    are left out (said in a warning), so no flow counts twice."""
    table, _, log = _silver(
        tmp_path, partitioned.parts[2], "--lookback", str(partitioned.whole), "--part-split", "train"
    )
    assert "lookback rows are at or after this input's first flow" in log
    for name in partitioned.single_manifest["features"]:
        assert np.array_equal(table.column(name).to_numpy(), partitioned.outputs[2].column(name).to_numpy()), name


def test_missing_lookback_without_the_flag_exits_2(partitioned: Partitioned, tmp_path: Path) -> None:
    log = _silver_fails(tmp_path, partitioned.parts[0], "--lookback", str(partitioned.missing))
    assert f"{partitioned.missing}: no such file" in log


def test_part_split_in_scoring_mode_exits_2(partitioned: Partitioned, tmp_path: Path) -> None:
    training = partitioned.parts[0].parent / "single" / "manifest.json"
    log = _silver_fails(
        tmp_path,
        partitioned.parts[1],
        "--mode",
        "score",
        "--training-manifest",
        str(training),
        "--part-split",
        "train",
    )
    assert "--part-split is a training-mode flag" in log


def test_unknown_part_split_exits_2(partitioned: Partitioned, tmp_path: Path) -> None:
    assert "invalid choice: 'test'" in _silver_fails(tmp_path, partitioned.parts[1], "--part-split", "test")


def _periodicity_by_hand(t_ms: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """jitter / regularity of one pair from the contacts inside each row's window, one row at a time."""
    jitter, regularity = np.ones(len(t_ms)), np.zeros(len(t_ms))
    for i, t in enumerate(t_ms):
        inside = t_ms[(t_ms > t - w) & (t_ms <= t)]
        gaps = np.diff(inside)
        dgaps = np.abs(np.diff(gaps))
        if len(dgaps) >= 3 and gaps.mean() > 0:
            jitter[i] = min(dgaps.mean() / gaps.mean(), 3.0)
            regularity[i] = (1.0 - min(jitter[i], 1.0)) * np.sqrt(len(dgaps))
    return jitter, regularity


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_periodicity_reads_only_its_window(seed: int) -> None:
    """What makes one window of lookback enough: the gap back to an older contact never counts."""
    rng = np.random.default_rng(seed)
    t_ms = np.sort(np.concatenate([rng.integers(0, 4 * 3_600_000, 60), 3_600_000 + 90_000 * np.arange(20)]))
    zeros = np.zeros(len(t_ms), dtype=np.int32)
    out = context_features(Flows(rel_ms=t_ms, src=zeros, dst=zeros), ["pair_periodicity"])
    jitter, regularity = _periodicity_by_hand(t_ms, PERIOD_WINDOW[1])
    assert np.array_equal(out["pair_gap_jitter_1h"], jitter.astype(np.float32))
    assert np.allclose(out["pair_regularity_1h"], regularity.astype(np.float32), rtol=1e-6)
