"""score_batch on a real Parquet file: every row scored once, in order, by the shared scoring path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.common.contracts import PASSTHROUGH
from stages.common.errors import InputError
from stages.score import scoring

FEATURES = ["f0", "f1", "f2"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, Any]:
    """A silver-like batch of ~2.3 scoring batches of rows (a few far out), and a forest fitted on inliers."""
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(11)
    n = 2 * scoring.BATCH_ROWS + 777
    X = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    X[::5000] += 8.0
    columns: dict[str, Any] = {
        "ts": pa.array(np.arange(n) * 1_000_000, pa.timestamp("us", tz="UTC")),
        "uid": pa.array([f"C{i}" for i in range(n)]),
        "src_ip": pa.array(["10.0.0.1"] * n),
        "dst_ip": pa.array(["10.0.0.2"] * n),
        "dst_port": pa.array(np.full(n, 443, np.int32)),
        "split": pa.array(["score"] * n),
    }
    columns.update({f: pa.array(X[:, j]) for j, f in enumerate(FEATURES)})
    path = tmp_path_factory.mktemp("score-batch") / "features.parquet"
    pq.write_table(pa.table(columns), path, row_group_size=100_000)
    model = IsolationForest(n_estimators=25, max_samples=1024, random_state=0).fit(X[1:20_000])
    return path, X, model


def _card(model: Any, X: np.ndarray, threshold: float) -> dict[str, Any]:
    edges = [-1.0, 0.0, 1.0]
    return {
        "features": FEATURES,
        "threshold": threshold,
        "score_method": "neg_score_samples",
        "reference": {
            "features": {f: {"median": 0.0, "scale": 1.0, "edges": edges, "fractions": [0.25] * 4} for f in FEATURES},
            "score": {"edges": [0.4, 0.5], "fractions": [0.3, 0.4, 0.3]},
        },
    }


def test_every_row_scored_once_as_the_model_scores_it(batch: tuple[Path, np.ndarray, Any]) -> None:
    path, X, model = batch
    want = -model.score_samples(X)
    threshold = float(np.quantile(want, 0.99))
    out = scoring.score_batch(model, _card(model, X, threshold), path, "f.parquet")
    assert out.rows == len(X)
    assert out.score_sum == pytest.approx(float(want.sum()), rel=1e-12)
    alerts = out.alert_table()
    assert alerts is not None and alerts.column_names == [c for c in PASSTHROUGH if c in alerts.column_names] + [
        "score"
    ]
    hit = np.flatnonzero(want >= threshold)
    assert alerts.column("uid").to_pylist() == [f"C{i}" for i in hit]
    np.testing.assert_array_equal(alerts.column("score").to_numpy(), want[hit])
    assert len(out.evidence) == len(hit) and all(len(e) == scoring.TOP_FEATURES for e in out.evidence)
    assert out.score_bins is not None and int(out.score_bins.counts.sum()) == len(X)
    for j, f in enumerate(FEATURES):
        expected = np.bincount(np.searchsorted([-1.0, 0.0, 1.0], X[:, j], "right"), minlength=4)
        np.testing.assert_array_equal(out.feature_bins[f].counts, expected)


def test_missing_feature_column_is_an_input_error(batch: tuple[Path, np.ndarray, Any], tmp_path: Path) -> None:
    path, X, model = batch
    pq.write_table(pq.read_table(path).drop_columns(["f1"]), tmp_path / "f.parquet")
    with pytest.raises(InputError, match=r"f.parquet: feature column\(s\) \['f1'\] missing"):
        scoring.score_batch(model, _card(model, X, 0.5), tmp_path / "f.parquet", "f.parquet")


@pytest.mark.parametrize(
    "edges",
    [
        [-1.0, 0.0, 1.0],
        [0.0, 0.0, 0.5, 0.5, 2.0],  # repeated quantiles (a mostly constant feature)
        [-np.inf, 0.1, np.inf],
        [0.1],
        [],
    ],
)
def test_bins_count_exactly_as_searchsorted(edges: list[float]) -> None:
    """The comparison-per-edge count is the searchsorted count, float32 values near float64 edges included."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=5000).astype(np.float32)
    values[:40] = np.float32(0.1)  # float32(0.1) > float64 0.1: searchsorted compares in float64
    values[40:80] = np.nan
    values[80:90] = np.inf
    values[90:100] = -0.0
    values[100:110] = 0.5
    bins = scoring.Bins.of({"edges": edges, "fractions": [1 / (len(edges) + 1)] * (len(edges) + 1)})
    bins.add(values)
    bins.add(values[::7].astype(np.float64))
    e = np.asarray(edges, dtype=np.float64)
    want = sum(
        np.bincount(np.searchsorted(e, v, "right"), minlength=len(e) + 1)
        for v in (values, values[::7].astype(np.float64))
    )
    np.testing.assert_array_equal(bins.counts, want)


def test_a_reading_error_is_raised_to_the_scorer(batch: tuple[Path, np.ndarray, Any], tmp_path: Path) -> None:
    """A batch that fails to decode on the read-ahead thread fails the scoring, it is not silently dropped."""
    path, X, model = batch
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = b"\x00" * 4096
    (tmp_path / "f.parquet").write_bytes(bytes(data))
    with pytest.raises(Exception):  # noqa: B017,PT011 - pyarrow's error for a corrupt page
        scoring.score_batch(model, _card(model, X, 0.5), tmp_path / "f.parquet", "f.parquet")
