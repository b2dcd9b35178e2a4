"""eval on a partitioned silver run (a directory of part=<k> folders) against eval on one features file.

One silver output is built through the real ingest and silver stages on synthetic flows and one
model through the real train stage; the silver file is then cut into part folders by row range.
Eval of the folder must give the metrics of eval of the file, field by field, and the same gate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.common.contracts import ModelCard, SilverManifest
from stages.common.errors import InputError
from stages.common.model_io import load_model
from stages.common.silver_parts import open_silver
from stages.eval import drift, holdout
from stages.eval.evaluate import metrics_document, score
from tests.common.silver_parts_builders import cut_into_parts
from tests.helpers import REPO, run_stage

pytestmark = pytest.mark.slow

METRIC_FIELDS = [
    "has_labels",
    "rows",
    "threshold",
    "alerts",
    "alert_rate",
    "alerts_per_day",
    "span_days",
    "benign_alert_rate",
    "labelled_rows",
    "unlabelled_rows",
    "positives",
    "negatives",
    "confusion",
    "precision",
    "recall",
    "f1",
    "fpr",
    "pr_auc",
    "roc_auc",
    "recall_at_1pct_fpr",
    "auc_note",
    "score_quantiles",
    "score_histogram",
    "recall_by_attack",
    "attack_rows",
    "drift",
    "gate",
    "champion",
    "version",
]
"""Every field of metrics.json but ``run_id``; each must be equal between the file and its parts."""


def _env() -> dict[str, str]:
    """No audit database, no MLflow: eval still scores, writes and gates."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MINIO_", "MLFLOW_", "RUN_ID"))}
    return {**env, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic flows → silver → a model, through the real stages, once for the module."""
    d = tmp_path_factory.mktemp("eval-parts")
    paths = {
        "flows": d / "raw" / "flows.parquet",
        "features": d / "silver" / "features.parquet",
        "manifest": d / "silver" / "manifest.json",
        "model": d / "models" / "model.skops",
        "card": d / "models" / "model-card.json",
    }
    steps = {
        "ingest": [
            "--source=synthetic://?rows=16000&seed=11&attack_share=0.05&days=2",
            f"--output={paths['flows']}",
            f"--rejects={d / 'raw' / 'rejects.parquet'}",
        ],
        "silver": [f"--input={paths['flows']}", f"--output={paths['features']}", f"--manifest={paths['manifest']}"],
        "train": [
            f"--features={paths['features']}",
            f"--manifest={paths['manifest']}",
            f"--model-out={paths['model']}",
            f"--card-out={paths['card']}",
            "--n-estimators=30",
            "--max-samples=4096",
        ],
    }
    for stage, args in steps.items():
        done = run_stage(stage, *args, "--run-id", "test-parts", env=_env(), cwd=d)
        assert done.returncode == 0, f"{stage} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return paths


def _eval(
    built: dict[str, Path], features: Path, manifest: Path, out: Path, *extra: str
) -> tuple[int, str, dict[str, Any]]:
    """(exit code, stderr, metrics.json or {}) of the eval stage on ``features`` + ``manifest``."""
    args = [
        f"--features={features}",
        f"--manifest={manifest}",
        f"--model={built['model']}",
        f"--card={built['card']}",
        f"--metrics-out={out / 'metrics.json'}",
        f"--report-out={out / 'report.html'}",
        f"--params-dir={out / 'params'}",
        f"--run-id=eval-{uuid.uuid4().hex[:8]}",
        *extra,
    ]
    done = run_stage("eval", *args, env=_env(), cwd=out.parent)
    metrics = out / "metrics.json"
    return done.returncode, done.stderr, json.loads(metrics.read_text()) if metrics.exists() else {}


@pytest.fixture(scope="module")
def single(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("eval-single")
    code, stderr, doc = _eval(built, built["features"], built["manifest"], out)
    assert code in (0, 3) and doc, stderr[-3000:]
    return code, doc, out


def _split(built: dict[str, Path]) -> tuple[int, int]:
    """(train rows, holdout rows) of the single file; train rows come first (time order)."""
    m = SilverManifest.read(built["manifest"], "m")
    return m.train_rows, m.split["holdout_rows"]


@pytest.mark.parametrize("layout", ["two-train-one-holdout", "one-train-two-holdout"])
def test_eval_of_the_parts_equals_eval_of_the_file(
    built: dict[str, Path], single: tuple[int, dict[str, Any], Path], tmp_path: Path, layout: str
) -> None:
    train, hold = _split(built)
    cuts = [train // 2, train] if layout == "two-train-one-holdout" else [train, train + hold // 2]
    parts = cut_into_parts({"features": built["features"], "manifest": built["manifest"]}, tmp_path / "silver", cuts)
    assert len(list(parts.glob("part=*/features.parquet"))) == 3

    code, stderr, doc = _eval(built, parts, parts, tmp_path / "out")
    single_code, single_doc, single_out = single
    assert code == single_code, stderr[-3000:]
    assert sorted(doc) == sorted([*METRIC_FIELDS, "run_id"])
    for name in METRIC_FIELDS:
        assert doc[name] == single_doc[name], f"{name} differs: parts {doc[name]!r}, file {single_doc[name]!r}"
    assert doc["run_id"] != single_doc["run_id"]
    # the gate decided the same, and said so in the output parameters
    assert (tmp_path / "out" / "params" / "verdict").read_text() == (single_out / "params" / "verdict").read_text()
    assert doc["rows"] == hold and doc["has_labels"] and doc["pr_auc"] is not None and doc["drift"]["max_psi"] > 0


def _score_parts(built: dict[str, Path], parts: Path, keys: list[str], out: Path) -> list[str]:
    """Run ``stages.eval.part`` on each holdout part ``keys`` of ``parts`` into ``out/part=<k>/scores.parquet``;
    the stderr of each run."""
    errors = []
    for k in keys:
        done = run_stage(
            "eval.part",
            f"--features={parts / f'part={k}' / 'features.parquet'}",
            f"--manifest={parts / f'part={k}' / 'manifest.json'}",
            f"--model={built['model']}",
            f"--card={built['card']}",
            f"--output={out / f'part={k}' / 'scores.parquet'}",
            f"--params-dir={out / 'params' / k}",
            env=_env(),
            cwd=out.parent,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert (out / "params" / k / "rows").read_text() == str(
            pq.read_metadata(out / f"part={k}" / "scores.parquet").num_rows
        )
        errors.append(done.stderr)
    return errors


def test_scores_of_the_fanned_out_parts_give_the_metrics_of_the_file(
    built: dict[str, Path], single: tuple[int, dict[str, Any], Path], tmp_path: Path
) -> None:
    """Each holdout part scored in its own process (eval's fan-out), eval --scores merges: the same metrics.json."""
    train, hold = _split(built)
    parts = cut_into_parts(
        {"features": built["features"], "manifest": built["manifest"]}, tmp_path / "silver", [train, train + hold // 2]
    )
    scores = tmp_path / "scores"
    _score_parts(built, parts, ["00001", "00002"], scores)

    code, stderr, doc = _eval(built, parts, parts, tmp_path / "out", "--scores", str(scores))
    single_code, single_doc, _ = single
    assert code == single_code, stderr[-3000:]
    for name in METRIC_FIELDS:
        assert doc[name] == single_doc[name], f"{name} differs: fanned out {doc[name]!r}, file {single_doc[name]!r}"
    # a missing part's scores, or scores of other rows, stop eval (exit 2) naming the file
    (scores / "part=00002" / "scores.parquet").unlink()
    code, stderr, _ = _eval(built, parts, parts, tmp_path / "out2", "--scores", str(scores))
    assert code == 2 and "part=00002/scores.parquet: missing" in stderr, stderr[-2000:]
    short = pq.read_table(scores / "part=00001" / "scores.parquet").slice(1)
    pq.write_table(short, scores / "part=00002" / "scores.parquet")
    code, stderr, _ = _eval(built, parts, parts, tmp_path / "out3", "--scores", str(scores))
    assert code == 2 and "part=00002/scores.parquet" in stderr and "holdout rows" in stderr, stderr[-2000:]


def test_a_train_part_is_not_scored(built: dict[str, Path], tmp_path: Path) -> None:
    train, _ = _split(built)
    parts = cut_into_parts({"features": built["features"], "manifest": built["manifest"]}, tmp_path / "silver", [train])
    done = run_stage(
        "eval.part",
        f"--features={parts / 'part=00000' / 'features.parquet'}",
        f"--manifest={parts / 'part=00000' / 'manifest.json'}",
        f"--model={built['model']}",
        f"--card={built['card']}",
        f"--output={tmp_path / 'scores.parquet'}",
        env=_env(),
    )
    assert done.returncode == 2 and "part=00000/features.parquet: no holdout rows" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "scores.parquet").exists()


def _write_part(rows: pa.Table, like: SilverManifest, folder: Path) -> None:
    """A part folder holding ``rows`` as they are (train and holdout rows both, if so) and a manifest that counts them."""
    holdout_rows = rows.column("split").to_pylist().count("holdout")
    split = {**like.split, "train_rows": rows.num_rows - holdout_rows, "holdout_rows": holdout_rows}
    split["cutoff_ts"] = like.split["cutoff_ts"] if holdout_rows else None
    folder.mkdir(parents=True)
    pq.write_table(rows, folder / "features.parquet")
    replace(like, rows=rows.num_rows, split=split).write(folder / "manifest.json")


def test_a_part_holding_both_sides_and_the_top_alerts_across_parts(built: dict[str, Path], tmp_path: Path) -> None:
    """Row ranges across the split boundary: the middle part holds train and holdout rows."""
    train, hold = _split(built)
    table = pq.read_table(built["features"])
    like = SilverManifest.read(built["manifest"], "m")
    edges = [0, train // 2, train + hold // 3, table.num_rows]
    for k, (a, b) in enumerate(zip(edges, edges[1:], strict=False)):
        _write_part(table.slice(a, b - a), like, tmp_path / f"part={k:05d}")

    card = ModelCard.read(built["card"], "c")
    model = load_model(built["model"])

    def measure(features: Path, manifest: Path) -> holdout.Holdout:
        silver = open_silver(features, manifest, str(features), str(manifest))
        return holdout.read_holdout(silver, lambda _k, p: score(model, p, card.score_method, "m"), card.threshold, 25)

    whole, parts = measure(built["features"], built["manifest"]), measure(tmp_path, tmp_path)
    assert parts.parts == 3 and whole.parts == 1
    for a, b in zip(
        (*parts.stats.pr_points, *parts.stats.roc_points),
        (*whole.stats.pr_points, *whole.stats.roc_points),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)  # the report's curves too
    assert metrics_document("r", parts, card.threshold) == metrics_document("r", whole, card.threshold)
    assert len(whole.top_alerts) == 25 and parts.top_alerts == whole.top_alerts  # same rows, z-scores and order


@pytest.mark.parametrize("change", ["feature-column-missing", "manifest-features"])
def test_a_part_with_another_schema_exits_2_naming_it(built: dict[str, Path], tmp_path: Path, change: str) -> None:
    train, hold = _split(built)
    parts = cut_into_parts(
        {"features": built["features"], "manifest": built["manifest"]}, tmp_path / "silver", [train, train + hold // 2]
    )
    odd = parts / "part=00002"
    manifest = SilverManifest.read(odd / "manifest.json", "m")
    if change == "feature-column-missing":
        pq.write_table(pq.read_table(odd / "features.parquet").drop_columns([manifest.features[-1]]), odd / "f.tmp")
        (odd / "f.tmp").replace(odd / "features.parquet")
        expected = rf"part=00002/features.parquet: column\(s\) \['{manifest.features[-1]}'\] missing"
    else:
        fewer = SilverManifest.build(
            manifest.features[:-1],
            rows=manifest.rows,
            has_labels=manifest.has_labels,
            split=manifest.split,
            passthrough=manifest.passthrough,
        )
        fewer.write(odd / "manifest.json")
        expected = "parts 00000 and 00002 were built with different features"
    code, stderr, doc = _eval(built, parts, parts, tmp_path / "out")
    assert code == 2 and not doc
    assert re.search(expected, stderr), stderr[-2000:]


def test_no_holdout_rows_exits_2_for_a_directory_as_for_a_file(built: dict[str, Path], tmp_path: Path) -> None:
    train, _ = _split(built)
    parts = cut_into_parts(
        {"features": built["features"], "manifest": built["manifest"]}, tmp_path / "silver", [train // 2, train]
    )
    shutil.rmtree(parts / "part=00002")  # the holdout part
    code, stderr, doc = _eval(built, parts, parts, tmp_path / "out-dir")
    assert code == 2 and not doc
    assert "no holdout rows (split == 'holdout') in any of its 2 parts" in stderr, stderr[-2000:]

    table = pq.read_table(built["features"]).slice(0, train)  # the train rows as one file
    pq.write_table(table, tmp_path / "features.parquet")
    like = SilverManifest.read(built["manifest"], "m")
    replace(like, rows=train, split={**like.split, "holdout_rows": 0}).write(tmp_path / "manifest.json")
    code, stderr, doc = _eval(built, tmp_path / "features.parquet", tmp_path / "manifest.json", tmp_path / "out-file")
    assert code == 2 and not doc
    assert "features.parquet: no holdout rows (split == 'holdout'); rerun silver" in stderr, stderr[-2000:]


def test_a_manifest_that_miscounts_its_part_is_refused(built: dict[str, Path], tmp_path: Path) -> None:
    train, hold = _split(built)
    parts = cut_into_parts(
        {"features": built["features"], "manifest": built["manifest"]}, tmp_path / "silver", [train, train + hold // 2]
    )
    manifest = SilverManifest.read(parts / "part=00001" / "manifest.json", "m")
    manifest.split["holdout_rows"] += 1
    manifest.write(parts / "part=00001" / "manifest.json")
    silver = open_silver(parts, parts, str(parts), str(parts))
    with pytest.raises(InputError, match=rf"part=00001/features.parquet: 0 train and {hold // 2} holdout rows, but"):
        holdout.read_holdout(silver, lambda _k, p: np.zeros(p.holdout_X.shape[0]), 0.5, 0)


# --- the exact merge of the pieces, on arrays -------------------------------------------------------------------


def _reference_psi(expected: np.ndarray, actual: np.ndarray, bins: int, eps: float = 1e-4) -> float | None:
    """PSI as defined: cuts at np.quantile of the finite train values, (lo, hi] bins, a non-finite bin."""
    e, a = expected.astype(np.float64), actual.astype(np.float64)
    if e.size == 0 or a.size == 0:
        return None
    finite = e[np.isfinite(e)]
    cuts = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if finite.size else np.array([])

    def shares(v: np.ndarray) -> np.ndarray:
        f = v[np.isfinite(v)]
        counts = np.diff([0, *[np.count_nonzero(f <= c) for c in cuts], f.size])
        return np.append(counts, v.size - f.size) / v.size

    p, q = np.maximum(shares(e), eps), np.maximum(shares(a), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def _columns() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    normal = rng.normal(size=3001).astype(np.float32)
    messy = rng.normal(size=4000).astype(np.float32)
    messy[::7], messy[::11], messy[::13], messy[::17] = np.nan, np.inf, -np.inf, -0.0
    return [
        ("normal", normal, (rng.normal(size=900) + 0.3).astype(np.float32)),
        ("one-value", np.array([2.5], np.float32), np.array([1, 2.5, 3], np.float32)),
        ("two-values", np.array([1, 2], np.float32), np.array([1.5, 2, 2], np.float32)),
        ("ties", rng.integers(0, 3, 5000).astype(np.float32), rng.integers(0, 4, 800).astype(np.float32)),
        ("one-hot", np.r_[np.zeros(950), np.ones(50)].astype(np.float32), np.r_[np.zeros(50), np.ones(50)]),
        ("nan-inf-signed-zero", messy, messy[::3].copy()),
        ("all-nan", np.full(40, np.nan, np.float32), rng.normal(size=10).astype(np.float32)),
        ("huge", (rng.lognormal(size=3000) * 1e35).astype(np.float32), (rng.lognormal(size=99) * 1e35)),
        ("tiny", (rng.normal(size=3000) * 1e-40).astype(np.float32), (rng.normal(size=99) * 1e-40)),
        ("mixed-signs", np.r_[-rng.lognormal(size=700), rng.lognormal(size=300)].astype(np.float32), normal[:50]),
    ]


@pytest.mark.parametrize("bins", [2, 10, 17])
def test_psi_part_by_part_is_the_psi_of_all_rows_bit_for_bit(bins: int) -> None:
    """Cut points from two passes over 1-4 parts = np.quantile on all train values; counts add up."""
    rng = np.random.default_rng(bins)
    for name, train, actual in _columns():
        want = _reference_psi(train, actual.astype(np.float32), bins)
        for n_parts in (1, 2, 4):
            train_parts = np.array_split(train.reshape(-1, 1), n_parts)
            bins_ = drift.TrainBins(1, bins)
            for p in train_parts:
                bins_.count(p)
            for p in rng.permutation(len(train_parts)):  # the second pass in any order
                bins_.refine(train_parts[p])
            counted = drift.HoldoutBins([cuts for cuts, _ in bins_.shares()])
            for p in np.array_split(actual.astype(np.float32).reshape(-1, 1), n_parts):
                counted.count(p)
            assert drift.psi_values(bins_, counted) == [want], (name, n_parts)


def test_cut_points_compare_with_holdout_values_in_float64() -> None:
    """A cut between two float32 values (an interpolated quantile) is compared exactly, not rounded to float32."""
    train = np.array([1.0, 1.0000001], np.float32)  # two neighbouring float32: the median lies between them
    holdout = np.array([1.0000001] * 3, np.float32)
    bins_ = drift.TrainBins(1, 2)
    bins_.count(train.reshape(-1, 1))
    bins_.refine(train.reshape(-1, 1))
    (cuts, train_shares), = bins_.shares()  # fmt: skip
    assert cuts[0] == np.quantile(train.astype(np.float64), 0.5) and np.float32(cuts[0]) != cuts[0]
    counted = drift.HoldoutBins([cuts])
    counted.count(holdout.reshape(-1, 1))
    np.testing.assert_array_equal(counted.shares(0), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(train_shares, [0.5, 0.5, 0.0])


def test_the_baseline_sample_picks_the_rows_one_draw_over_all_rows_picks() -> None:
    rows = holdout.BASELINE_ROWS + 12_345
    X = np.random.default_rng(0).normal(size=(rows, 3)).astype(np.float32)
    sample = holdout._Sample(rows, 3, "F")
    for at in (0, 50_000, 50_001, 90_000):  # parts of uneven sizes, in any order
        end = {0: 50_000, 50_000: 50_001, 50_001: 90_000, 90_000: rows}[at]
        sample.add(X[at:end], at)
    np.testing.assert_array_equal(sample.X, X[np.random.default_rng(0).choice(rows, holdout.BASELINE_ROWS, False)])
