"""The holdout's score statistics from spilled parts (``stages.eval.curves``) against numpy and sklearn
on all rows at once, and against themselves under other splits into parts and smaller value ranges."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from stages.eval.curves import MAX_RANGES, QUANTILES, ScoreSpill, ScoreStats, score_stats


def _data(n: int, seed: int, ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Scores with many ties (rounded, as a forest's averaged path lengths often are), labels 0/1/NaN."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.05).astype(float)
    scores = rng.normal(0.4, 0.05, n) + 0.15 * y * rng.random(n)
    if ties:
        scores = np.round(scores, 3)
    y[rng.random(n) < 0.1] = np.nan
    return scores, y


def _spilled(parts: list[tuple[np.ndarray, np.ndarray]], threshold: float, group_rows: int) -> ScoreStats:
    spill = ScoreSpill(threshold, group_rows=group_rows)
    for scores, y in parts:
        spill.add(scores, y)
    return spill.finish()


def _fields(stats: ScoreStats) -> dict[str, Any]:
    """Every field as plain lists, for an exact comparison."""
    out = asdict(stats)
    out["plot_edges"] = stats.plot_edges.tolist()
    out["plot_counts"] = {k: v.tolist() for k, v in stats.plot_counts.items()}
    out["pr_points"] = [a.tolist() for a in stats.pr_points]
    out["roc_points"] = [a.tolist() for a in stats.roc_points]
    return out


@pytest.mark.parametrize("group_rows", [10**9, 2_000, 97])
def test_the_statistics_are_numpys_and_sklearns_on_all_rows(group_rows: int) -> None:
    scores, y = _data(20_000, seed=3)
    threshold = float(np.quantile(scores, 0.97))
    got = score_stats(scores, y, threshold, group_rows=group_rows)

    labelled = ~np.isnan(y)
    yl, sl = y[labelled] > 0.5, scores[labelled]
    alert = sl >= threshold
    assert got.confusion == {
        "tp": int((alert & yl).sum()),
        "fp": int((alert & ~yl).sum()),
        "tn": int((~alert & ~yl).sum()),
        "fn": int((~alert & yl).sum()),
    }
    assert got.unlabelled == int((~labelled).sum())
    assert got.rows == scores.size and got.alerts == int((scores >= threshold).sum())
    assert got.benign_alerts == int(((scores >= threshold) & ~(np.nan_to_num(y) > 0.5)).sum())
    assert got.pr_auc == pytest.approx(average_precision_score(yl, sl), rel=1e-12)
    assert got.roc_auc == pytest.approx(roc_auc_score(yl, sl), rel=1e-12)
    fpr, tpr, _ = roc_curve(yl, sl, drop_intermediate=False)
    assert got.recall_at_1pct_fpr == tpr[fpr <= 0.01].max()
    # quantiles bit for bit (the same order statistics and interpolation), min/max exact, histogram counts exact
    assert list(got.quantiles.values())[: len(QUANTILES)] == np.quantile(scores, list(QUANTILES.values())).tolist()
    assert (got.quantiles["min"], got.quantiles["max"]) == (scores.min(), scores.max())
    assert got.quantiles["mean"] == pytest.approx(scores.mean(), rel=1e-12)
    counts, edges = np.histogram(scores, bins=30)
    assert got.histogram == {"edges": edges.tolist(), "counts": counts.tolist()}
    # the report's class histograms hold every row once; the curves run from (0, 0) to (1, 1)
    assert sum(int(c.sum()) for c in got.plot_counts.values()) == scores.size
    assert int(got.plot_counts["attack"].sum()) == int(yl.sum())
    fpr_points, tpr_points = got.roc_points
    assert (fpr_points[0], tpr_points[0], fpr_points[-1], tpr_points[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr_points) >= 0) and np.all(np.diff(tpr_points) >= 0)
    assert 10 < fpr_points.size < 2_000


@pytest.mark.parametrize("group_rows", [10**9, 1_500])
def test_any_split_into_parts_in_any_order_gives_the_same_floats(group_rows: int) -> None:
    scores, y = _data(12_000, seed=5)
    threshold = float(np.quantile(scores, 0.95))
    whole = _fields(_spilled([(scores, y)], threshold, group_rows))
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, scores.size), 6, replace=False))
    parts = [(s, yy) for s, yy in zip(np.split(scores, cuts), np.split(y, cuts), strict=True)]
    assert _fields(_spilled(parts, threshold, group_rows)) == whole
    assert _fields(_spilled(parts[::-1], threshold, group_rows)) == whole


@pytest.mark.parametrize(("group_rows", "limit"), [(1_000, 1_000), (10, -(-60_000 // MAX_RANGES))])
def test_ranges_stay_within_the_group_size_and_their_number_is_capped(group_rows: int, limit: int) -> None:
    scores, y = _data(30_000, seed=9, ties=False)
    spill = ScoreSpill(0.5, group_rows=group_rows)
    for part in np.array_split(np.arange(scores.size), 3):
        spill.add(scores[part], y[part])
    try:
        ranges = spill._split(spill._ranges())
        assert not spill.files and len(ranges) <= MAX_RANGES  # the parts' spill files are gone once split
        walked = [spill._read_range(paths) for paths in ranges]
    finally:
        spill.close()
    sizes = [s.size for s, _ in walked]
    assert sum(sizes) == scores.size and max(sizes) <= limit and len(sizes) >= 30_000 // limit
    highest_first = np.concatenate([s for s, _ in walked])
    assert np.array_equal(highest_first, np.sort(scores)[::-1])


def test_one_class_one_value_and_no_labels() -> None:
    benign = score_stats(np.array([0.3, 0.5, 0.5, 0.9]), np.zeros(4), 0.5)
    assert benign.pr_auc is None and benign.roc_auc is None and benign.confusion == {"tp": 0, "fp": 3, "tn": 1, "fn": 0}
    flat = score_stats(np.full(5, 0.25), np.array([0, 1, 0, 1, np.nan]), 0.2)
    assert flat.quantiles["min"] == flat.quantiles["max"] == flat.quantiles["p50"] == 0.25
    assert flat.roc_auc == 0.5 and flat.pr_auc == 0.5 and sum(flat.histogram["counts"]) == 5
    unlabelled = score_stats(np.array([0.1, 0.7]), np.full(2, np.nan), 0.5)
    assert unlabelled.labelled == 0 and unlabelled.unlabelled == 2 and unlabelled.alerts == 1
    assert list(unlabelled.plot_counts) == ["unlabelled"]
    empty = score_stats(np.empty(0), np.empty(0), 0.5)
    assert empty.rows == 0 and empty.quantiles == {}


def test_the_spill_folder_is_removed() -> None:
    spill = ScoreSpill(0.5)
    spill.add(np.array([0.1, 0.9]), np.array([0.0, 1.0]))
    folder = spill.folder
    assert any(folder.iterdir())
    spill.finish()
    assert not folder.exists()
