"""Training on a partitioned silver run: a directory of part=<k> folders, and the bounded sample."""

from __future__ import annotations

import json
import re
import shutil
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from stages.common.contracts import SilverManifest
from stages.common.model_io import anomaly_scores, load_model
from stages.common.silver_parts import SilverSet, open_silver
from stages.train import data
from tests.common.silver_parts_builders import cut_into_parts
from tests.helpers import run_stage
from tests.train.conftest import train_rows

FAST = ["--n-estimators", "20", "--max-samples", "4096"]
TIMINGS = {"fit_seconds", "oob_seconds", "folds_seconds"}


@pytest.fixture(scope="module")
def parts(silver: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The labelled session silver output as three parts: two train, one holdout, the same rows in order."""
    first_holdout = SilverManifest.read(silver["manifest"], "m").train_rows
    return cut_into_parts(silver, tmp_path_factory.mktemp("parts") / "silver", [first_holdout // 3, first_holdout])


def _open(folder: Path) -> SilverSet:
    return open_silver(folder, folder, str(folder), str(folder))


def _all_train_X(silver: dict[str, Path]) -> np.ndarray:
    manifest = SilverManifest.read(silver["manifest"], "m")
    table = train_rows(silver)
    return np.column_stack([table.column(f).to_numpy() for f in manifest.features]).astype(np.float32)


@pytest.mark.parametrize(
    ("rows", "max_rows", "expected"),
    [
        ([10, 20, 30], 100, [10, 20, 30]),  # within the bound: every row
        ([10, 20, 30], 60, [10, 20, 30]),
        ([10, 20, 30], 30, [5, 10, 15]),  # proportional
        ([1, 1, 1], 2, [1, 1, 0]),  # equal remainders: part order
        ([3, 0, 7], 5, [2, 0, 3]),  # 1.5 / 3.5: the tie goes to the first part
        ([1_000_001, 999_999], 2, [1, 1]),
    ],
)
def test_quotas_share_the_bound_in_proportion(rows: list[int], max_rows: int, expected: list[int]) -> None:
    kept = data.quotas(rows, max_rows)
    assert kept == expected and sum(kept) == min(sum(rows), max_rows)


def test_without_sampling_the_parts_give_the_single_files_rows_in_order(silver: dict[str, Path], parts: Path) -> None:
    sample = data.read_train_sample(_open(parts), max_rows=10**9, seed=42)
    np.testing.assert_array_equal(sample.X, _all_train_X(silver))
    assert sample.labels is not None
    assert sample.labels.tolist() == train_rows(silver).column("label").to_pylist()
    assert (sample.rows_seen, sample.rows_kept, sample.parts) == (len(sample.X), len(sample.X), ["00000", "00001"])
    assert sample.as_params()["sampled"] is False


def test_the_sample_is_bounded_reproducible_and_independent_of_the_read_order(
    silver: dict[str, Path], parts: Path
) -> None:
    opened = _open(parts)
    full = _all_train_X(silver)
    a = data.read_train_sample(opened, max_rows=5_000, seed=7)
    assert a.X.shape == (5_000, full.shape[1]) and a.rows_seen == len(full) and a.as_params()["sampled"] is True
    np.testing.assert_array_equal(a.X, data.read_train_sample(opened, max_rows=5_000, seed=7).X)
    # each part's rows are its own (seed, key) draw, in the part's time order
    first = opened.parts[0].train_rows
    keep = data.quotas([p.train_rows for p in opened.train_parts()], 5_000)
    chosen = [data.part_rows(p.train_rows, n, 7, p.key) for p, n in zip(opened.train_parts(), keep, strict=True)]
    assert chosen[0] is not None and chosen[1] is not None
    np.testing.assert_array_equal(a.X, np.concatenate([full[chosen[0]], full[first + chosen[1]]]))
    # read in the other order: every part keeps the same rows
    backwards = data.read_train_sample(SilverSet(opened.manifest, opened.parts[::-1]), max_rows=5_000, seed=7)
    np.testing.assert_array_equal(backwards.X, np.concatenate([full[first + chosen[1]], full[chosen[0]]]))
    other_seed = data.read_train_sample(opened, max_rows=5_000, seed=8)
    assert not np.array_equal(a.X, other_seed.X)


def test_reading_a_sample_holds_the_sample_not_the_split(parts: Path) -> None:
    """numpy's allocations (what tracemalloc sees) stay a fraction of the full train matrix."""
    opened = _open(parts)
    full_bytes = opened.manifest.train_rows * len(opened.manifest.features) * 4
    tracemalloc.start()
    try:
        data.read_train_sample(opened, max_rows=1_000, seed=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < full_bytes / 4, (peak, full_bytes)


# --- the stage as a real process ---------------------------------------------------------------


def _train(env: dict[str, str], features: Path | str, manifest: Path | str, out: Path, *extra: str) -> tuple[Any, str]:
    run_id = f"train-{uuid.uuid4().hex[:8]}"
    out.mkdir(parents=True, exist_ok=True)
    proc = run_stage(
        "train",
        *("--features", str(features), "--manifest", str(manifest)),
        *("--model-out", str(out / "model.skops"), "--card-out", str(out / "model-card.json")),
        *("--params-dir", str(out / "params"), "--run-id", run_id, *extra),
        env=env,
        cwd=out,
    )
    return proc, run_id


def _card(out: Path) -> dict[str, Any]:
    return json.loads((out / "model-card.json").read_text())


@pytest.mark.services
def test_a_directory_of_parts_trains_the_model_the_single_file_does(
    stage_env: dict[str, str], audit_db: Any, silver: dict[str, Path], parts: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in stage_env.items() if k != "MLFLOW_TRACKING_URI"}
    single, _ = _train(env, silver["features"], silver["manifest"], tmp_path / "single", *FAST)
    assert single.returncode == 0, single.stderr
    parted, run_id = _train(env, parts, parts, tmp_path / "parts", *FAST)
    assert parted.returncode == 0, parted.stderr
    a, b = _card(tmp_path / "single"), _card(tmp_path / "parts")
    assert b["threshold"] == a["threshold"] and b["calibration"] == a["calibration"]
    assert (b["features"], b["schema_hash"], b["train_rows"]) == (a["features"], a["schema_hash"], a["train_rows"])
    assert {k: v for k, v in b["train_metrics"].items() if k not in TIMINGS} == {
        k: v for k, v in a["train_metrics"].items() if k not in TIMINGS
    }
    X = _all_train_X(silver)  # the same forest: the same scores (the skops zip itself carries write times)
    np.testing.assert_array_equal(
        anomaly_scores(load_model(tmp_path / "parts" / "model.skops"), X, b["score_method"]),
        anomaly_scores(load_model(tmp_path / "single" / "model.skops"), X, a["score_method"]),
    )
    seen = a["params"]["sample"]["rows_seen"]
    assert a["params"]["sample"] == {
        "rows_seen": seen,
        "rows_kept": seen,
        "max_train_rows": 1_000_000,
        "sampled": False,
        "parts": 1,
        "part_keys": "",
    }
    assert b["params"]["sample"] == {**a["params"]["sample"], "parts": 2, "part_keys": "00000..00001"}
    with audit_db.cursor() as cur:
        cur.execute(
            "SELECT name, uri, rows FROM stage_artifacts WHERE run_id = %s AND direction = 'input' ORDER BY name",
            (run_id,),
        )
        recorded = cur.fetchall()
    assert [r[0] for r in recorded] == [
        *(f"features/part={k}" for k in ("00000", "00001", "00002")),
        *(f"manifest/part={k}" for k in ("00000", "00001", "00002")),
    ]
    assert recorded[1][1] == f"{parts}/part=00001/features.parquet"


@pytest.mark.services
def test_a_sample_is_recorded_in_the_card_and_mlflow(stage_env: dict[str, str], parts: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    model = f"detector-{uuid.uuid4().hex[:6]}"
    proc, _ = _train(stage_env, parts, parts, tmp_path, *FAST, "--max-train-rows", "6000", "--registered-model", model)
    assert proc.returncode == 0, proc.stderr
    card = _card(tmp_path)
    sample = card["params"]["sample"]
    assert (sample["rows_kept"], sample["sampled"], sample["parts"]) == (6_000, True, 2)
    assert sample["rows_seen"] == _open(parts).manifest.train_rows
    run = MlflowClient(stage_env["MLFLOW_TRACKING_URI"]).get_run(card["mlflow"]["run_id"])
    assert run.data.params["max_train_rows"] == "6000"
    assert (run.data.params["sample.rows_kept"], run.data.params["sample.part_keys"]) == ("6000", "00000..00001")
    assert run.data.metrics["val_rows"] == pytest.approx(1_200)  # the latest 20% of the sample


@pytest.mark.services
@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda d: (d / "part=00001" / "manifest.json").unlink(), r"part=00001/manifest.json: part 00001 has no"),
        (
            lambda d: (d / "part=00001" / "features.parquet").write_bytes(b"PAR1 not parquet"),
            r"part=00001/features.parquet: not a readable Parquet file",
        ),
        (
            lambda d: pq.write_table(
                pq.read_table(d / "part=00001" / "features.parquet").drop_columns(["log_src_bytes"]),
                d / "part=00001" / "features.parquet",
            ),
            r"part=00001/features.parquet: does not match the manifest \(log_src_bytes missing",
        ),
    ],
    ids=["no manifest", "not parquet", "a column missing"],
)
def test_a_bad_part_exits_2_naming_it(
    stage_env: dict[str, str], parts: Path, tmp_path: Path, spoil: Any, message: str
) -> None:
    copy = tmp_path / "silver"
    shutil.copytree(parts, copy)
    spoil(copy)
    proc, _ = _train(stage_env, copy, copy, tmp_path / "out", *FAST)
    assert proc.returncode == 2, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "out" / "model-card.json").exists()


@pytest.mark.services
@pytest.mark.parametrize("slash", ["", "/"])
def test_an_s3_prefix_of_parts_is_downloaded_and_trained_on(
    stage_env: dict[str, str], s3_server: dict[str, str], parts: Path, tmp_path: Path, slash: str
) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server["MINIO_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=s3_server["MINIO_ACCESS_KEY"],
        aws_secret_access_key=s3_server["MINIO_SECRET_KEY"],
    )
    run = uuid.uuid4().hex[:8]
    for path in sorted(parts.glob("part=*/*")):
        s3.upload_file(str(path), "cybersec-mlops", f"silver/{run}/{path.parent.name}/{path.name}")
    s3.put_object(Bucket="cybersec-mlops", Key=f"silver/{run}/_SUCCESS", Body=b"")  # not a part: ignored
    prefix = f"s3://cybersec-mlops/silver/{run}{slash}"
    env = {k: v for k, v in stage_env.items() if k != "MLFLOW_TRACKING_URI"} | s3_server
    local, _ = _train(env, parts, parts, tmp_path / "local", *FAST)
    remote, _ = _train(env, prefix, prefix, tmp_path / "s3", *FAST)
    assert local.returncode == 0 and remote.returncode == 0, remote.stderr
    assert _card(tmp_path / "s3")["threshold"] == _card(tmp_path / "local")["threshold"]
    missing, _ = _train(env, prefix + "-nothing", prefix + "-nothing", tmp_path / "none", *FAST)
    assert missing.returncode == 2 and "no such object, and no part=<k>/ parts under it" in missing.stderr


@pytest.mark.services
@pytest.mark.slow
def test_partitions_through_the_silver_stage_train_the_single_runs_model(
    stage_env: dict[str, str], tmp_path: Path
) -> None:
    """Three time-ordered RAW files through ``silver --part-split`` (each with the previous file as
    lookback) give the threshold of one silver run over all the flows with the same split."""
    import pyarrow as pa

    from stages.ingest.synthetic import generate

    env = {k: v for k, v in stage_env.items() if k != "MLFLOW_TRACKING_URI"}
    flows = generate(20_000, seed=9, attack_share=0.05, days=1.0)
    flows = flows.take(pa.array(np.argsort(flows.column("ts").cast(pa.int64()).to_numpy(), kind="stable")))
    n = flows.num_rows
    pq.write_table(flows, tmp_path / "all.parquet")
    edges = [0, n * 4 // 10, n * 7 // 10, n]  # the last file (30%) is the holdout
    for k in range(3):
        pq.write_table(flows.slice(edges[k], edges[k + 1] - edges[k]), tmp_path / f"raw{k}.parquet")
        part = tmp_path / "silver" / f"part={k:05d}"
        proc = run_stage(
            "silver",
            *("--input", str(tmp_path / f"raw{k}.parquet"), "--lookback", str(tmp_path / f"raw{k - 1}.parquet")),
            *("--lookback-optional", "--part-split", "holdout" if k == 2 else "train"),
            *("--output", str(part / "features.parquet"), "--manifest", str(part / "manifest.json")),
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
    single = tmp_path / "single"
    proc = run_stage(
        "silver",
        *("--input", str(tmp_path / "all.parquet"), "--holdout-fraction", "0.3"),
        *("--output", str(single / "features.parquet"), "--manifest", str(single / "manifest.json")),
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        _open(tmp_path / "silver").manifest.split["cutoff_ts"]
        == json.loads((single / "manifest.json").read_text())["split"]["cutoff_ts"]
    )
    one, _ = _train(env, single / "features.parquet", single / "manifest.json", tmp_path / "one", *FAST)
    many, _ = _train(env, tmp_path / "silver", tmp_path / "silver", tmp_path / "many", *FAST)
    assert one.returncode == 0 and many.returncode == 0, one.stderr + many.stderr
    a, b = _card(tmp_path / "one"), _card(tmp_path / "many")
    assert (b["threshold"], b["train_rows"], b["features"]) == (a["threshold"], a["train_rows"], a["features"])
