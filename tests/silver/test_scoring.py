"""Silver in scoring mode: the training feature path on new flows, context from the lookback."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from stages.common.errors import InputError
from stages.silver.scoring import parse_window
from tests.helpers import run_stage

NOW = dt.datetime(2026, 3, 10, 14, 25, tzinfo=dt.UTC)


def _us(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1_000_000)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("all", (None, None)),
        ("previous-hour", (_us(2026, 3, 10, 13), _us(2026, 3, 10, 14))),
        ("previous-day", (_us(2026, 3, 9), _us(2026, 3, 10))),
        ("last-2d", (_us(2026, 3, 8, 14, 25), _us(2026, 3, 10, 14, 25))),
        ("2026-03-01T00:00/2026-03-02T00:00", (_us(2026, 3, 1), _us(2026, 3, 2))),
        ("2026-03-01T00:00+01:00/", (_us(2026, 2, 28, 23), None)),
    ],
)
def test_parse_window(spec: str, expected: tuple[int | None, int | None]) -> None:
    assert parse_window(spec, NOW) == expected


@pytest.mark.parametrize(
    ("spec", "match"), [("yesterday", "expected all"), ("x/2026-01-01", "not an ISO"), ("2026-03-02/2026-03-01", "end")]
)
def test_parse_window_refuses(spec: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        parse_window(spec, NOW)


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two synthetic days as one file and as day 1 / day 2 files."""
    from stages.ingest.synthetic import generate

    table = generate(30_000, seed=11, attack_share=0.05, days=2.0)
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    cut = int(ts.min() + (ts.max() - ts.min()) // 2)
    d = tmp_path_factory.mktemp("days")
    paths = {"all": d / "all.parquet", "day1": d / "day1.parquet", "day2": d / "day2.parquet"}
    pq.write_table(table, paths["all"])
    pq.write_table(table.filter(pa.array(ts < cut)), paths["day1"])
    pq.write_table(table.filter(pa.array(ts >= cut)), paths["day2"])
    return paths


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MINIO_", "MLFLOW_", "RUN_ID"))}


def _silver(out: Path, source: Path, *extra: str) -> tuple[pa.Table, dict]:
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
    return pq.read_table(out / "features.parquet"), json.loads((out / "manifest.json").read_text())


def _by_uid(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table, [("uid", "ascending")]))


def test_scoring_features_are_bit_identical_to_training(days: dict[str, Path], tmp_path: Path) -> None:
    """Same flows → the same bytes in every feature column, in training and in scoring mode; and a
    later batch scored with the previous batch as lookback gets exactly its training-mode features."""
    train, manifest = _silver(tmp_path / "train", days["all"], "--holdout-fraction", "0")
    training_manifest = str(tmp_path / "train" / "manifest.json")
    score, score_manifest = _silver(
        tmp_path / "score", days["all"], "--mode", "score", "--training-manifest", training_manifest
    )
    assert score_manifest["features"] == manifest["features"] and score_manifest["mode"] == "score"
    assert set(score.column("split").to_pylist()) == {"score"}
    for name in manifest["features"]:
        a = train.column(name).to_numpy().view(np.uint32)
        b = score.column(name).to_numpy().view(np.uint32)
        assert np.array_equal(a, b), name

    later, later_manifest = _silver(
        tmp_path / "later",
        days["day2"],
        "--mode",
        "score",
        "--training-manifest",
        training_manifest,
        "--lookback",
        str(days["day1"]),
    )
    assert later_manifest["context_rows"] > 0
    same = _by_uid(train.filter(pc.is_in(train.column("uid"), later.column("uid"))))
    later = _by_uid(later)
    assert same.num_rows == later.num_rows == pq.read_metadata(days["day2"]).num_rows
    for name in manifest["features"]:
        a, b = same.column(name).to_numpy(), later.column(name).to_numpy()
        # exact for every feature: each reads only flows inside its window, at most the lookback's hour
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), name

    starved, _ = _silver(
        tmp_path / "starved", days["day2"], "--mode", "score", "--training-manifest", training_manifest
    )
    starved = _by_uid(starved)
    differ = np.zeros(starved.num_rows, dtype=bool)
    for name in manifest["features"]:
        differ |= starved.column(name).to_numpy() != same.column(name).to_numpy()
    # without the lookback only the first hour or so of the batch differs
    assert 0 < differ.sum() < 0.2 * starved.num_rows


def test_empty_window_is_an_empty_batch(days: dict[str, Path], tmp_path: Path) -> None:
    _, _ = _silver(tmp_path / "train", days["day1"])
    score, manifest = _silver(
        tmp_path / "score",
        days["day1"],
        "--mode",
        "score",
        "--training-manifest",
        str(tmp_path / "train" / "manifest.json"),
        "--window",
        "2030-01-01T00:00/2030-01-02T00:00",
    )
    assert score.num_rows == 0 and manifest["rows"] == 0
    assert score.schema.names[-len(manifest["features"]) :] == manifest["features"]


def test_feature_mismatch_exits_2(days: dict[str, Path], tmp_path: Path) -> None:
    _silver(tmp_path / "train", days["day1"])
    doc = json.loads((tmp_path / "train" / "manifest.json").read_text())
    from stages.common.contracts import schema_hash

    doc["features"] = doc["features"][:-1]
    doc["dtypes"] = {f: "float32" for f in doc["features"]}
    doc["schema_hash"] = schema_hash(doc["features"], doc["dtypes"])
    other = tmp_path / "other-manifest.json"
    other.write_text(json.dumps(doc))
    out = tmp_path / "score"
    proc = run_stage(
        "silver",
        "--input",
        str(days["day2"]),
        "--output",
        str(out / "f.parquet"),
        "--manifest",
        str(out / "m.json"),
        "--mode",
        "score",
        "--training-manifest",
        str(other),
        env=_env(),
    )
    assert proc.returncode == 2, proc.stderr
    assert "other features than the training manifest" in proc.stderr
    assert not (out / "m.json").exists()


def test_training_on_a_window_keeps_only_its_flows(days: dict[str, Path], tmp_path: Path) -> None:
    """Retraining on the latest days: ``--window last-1d --now END`` keeps the last day only."""
    ts = pq.read_table(days["all"], columns=["ts"]).column("ts")
    end = pc.max(ts).as_py() + dt.timedelta(seconds=1)
    table, manifest = _silver(tmp_path / "t", days["all"], "--window", "last-1d", "--now", end.isoformat())
    start = end - dt.timedelta(days=1)
    assert manifest["rows"] == table.num_rows == pc.sum(pc.greater_equal(ts, pa.scalar(start, ts.type))).as_py()
