"""Metric functions on tiny arrays whose results are computed by hand in the tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stages.eval import metrics as M
from stages.eval.curves import score_stats

nan = float("nan")


def _metrics(y: np.ndarray, s: np.ndarray, threshold: float) -> dict:
    """metrics.json's detection fields of rows in memory, as eval computes them over its parts."""
    return M.stats_metrics(score_stats(np.asarray(s, dtype=float), np.asarray(y, dtype=float), threshold))


@pytest.mark.parametrize(
    ("y", "s", "thr", "expected"),
    [
        # alerts: rows 1 (benign) and 3 (attack) → tp1 fp1 fn1 tn1; AUC 3/4 pairs; AP = .5*1 + .5*(2/3)
        (
            [0, 0, 1, 1],
            [0.1, 0.6, 0.4, 0.9],
            0.5,
            dict(precision=0.5, recall=0.5, fpr=0.5, f1=0.5, roc_auc=0.75, pr_auc=0.5 + 0.5 * 2 / 3, labelled_rows=4),
        ),
        # a score equal to the threshold is an alert
        ([0, 1], [0.2, 0.5], 0.5, dict(precision=1.0, recall=1.0, fpr=0.0, f1=1.0, roc_auc=1.0, pr_auc=1.0)),
        # no alerts: precision undefined, recall 0; AUC 1/2; AP: attack ranked second → 1/2
        ([0, 1, 0], [0.1, 0.2, 0.3], 0.9, dict(precision=None, recall=0.0, fpr=0.0, f1=None, roc_auc=0.5, pr_auc=0.5)),
        # unlabelled rows (NaN) ignored: labelled rows 1, 2, 4 → tp1 fn1 tn1
        (
            [nan, 0, 1, nan, 1],
            [0.9, 0.1, 0.8, 0.7, 0.2],
            0.5,
            dict(
                precision=1.0,
                recall=0.5,
                fpr=0.0,
                f1=2 / 3,
                roc_auc=1.0,
                pr_auc=1.0,
                labelled_rows=3,
                unlabelled_rows=2,
            ),
        ),
        # all benign: one false positive of three; AUCs undefined
        (
            [0, 0, 0],
            [0.1, 0.9, 0.2],
            0.5,
            dict(precision=0.0, recall=None, fpr=1 / 3, f1=None, roc_auc=None, pr_auc=None),
        ),
        # all attacks: FPR and AUCs undefined
        ([1, 1], [0.6, 0.4], 0.5, dict(precision=1.0, recall=0.5, fpr=None, f1=2 / 3, roc_auc=None, pr_auc=None)),
        # nothing labelled
        (
            [nan, nan],
            [0.6, 0.4],
            0.5,
            dict(precision=None, recall=None, fpr=None, f1=None, pr_auc=None, labelled_rows=0, unlabelled_rows=2),
        ),
    ],
    ids=["mixed", "tie-is-alert", "no-alerts", "partial-labels", "all-benign", "all-attack", "unlabelled"],
)
def test_detection_metrics(y: list[float], s: list[float], thr: float, expected: dict[str, float | None]) -> None:
    got = _metrics(np.array(y, dtype=float), np.array(s), thr)
    for key, value in expected.items():
        assert got[key] == (None if value is None else pytest.approx(value)), key


@pytest.mark.parametrize(("y", "missing"), [([0, 0, 0], "malicious"), ([1, 1], "benign"), ([nan, nan], "malicious")])
def test_single_class_gives_null_aucs_with_a_reason(y: list[float], missing: str) -> None:
    got = _metrics(np.array(y), np.linspace(0, 1, len(y)), 0.5)
    assert got["roc_auc"] is None and got["pr_auc"] is None and got["recall_at_1pct_fpr"] is None
    assert f"no {missing} rows" in got["auc_note"]


def test_recall_at_1pct_fpr() -> None:
    # 100 benign scores 0..99, attacks at 99.5, 98.5, 50: at most 1 false positive (score 99) → 2 of 3 attacks
    y = np.array([0] * 100 + [1, 1, 1], dtype=float)
    s = np.array(list(range(100)) + [99.5, 98.5, 50.0])
    assert _metrics(y, s, 99.0)["recall_at_1pct_fpr"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("y", "types", "alerts", "expected"),
    [
        (
            [1, 1, 1, 0, 1, nan],
            ["scan", "scan", "brute", None, None, "scan"],
            [1, 0, 1, 1, 0, 1],
            {"brute": (1, 1, 1.0), "scan": (2, 1, 0.5), "unknown": (1, 0, 0.0)},
        ),
        ([0, 0, nan], ["x", None, "y"], [1, 1, 1], {}),
        ([1, 1], ["<b>&", "<b>&"], [1, 1], {"<b>&": (2, 2, 1.0)}),
    ],
    ids=["grouped", "no-attacks", "odd-names"],
)
def test_recall_by_attack(
    y: list[float], types: list[str | None], alerts: list[int], expected: dict[str, tuple[int, int, float]]
) -> None:
    got = M.recall_by_attack(np.array(y, dtype=float), np.array(types, dtype=object), np.array(alerts, dtype=bool))
    assert {k: (v["rows"], v["detected"], v["recall"]) for k, v in got.items()} == expected


DAY = np.timedelta64(86400, "s")
T0 = np.datetime64("2024-03-01T00:00:00", "us")


@pytest.mark.parametrize(
    ("alerts", "ts", "rate", "per_day"),
    [
        ([1, 0, 0, 1], [T0, T0 + DAY, T0 + DAY, T0 + 2 * DAY], 0.5, 1.0),  # 2 alerts over 2 days
        ([1, 1, 1, 0], [T0, np.datetime64("NaT"), T0 + DAY // 2, T0], 0.75, 6.0),  # NaT ignored; 3 alerts / 0.5 day
        ([1, 0], [T0, T0], 0.5, None),  # one instant: no span
        ([1, 0], None, 0.5, None),  # no ts column
        ([0, 0], [T0, T0 + DAY], 0.0, 0.0),
    ],
)
def test_alert_counts(alerts: list[int], ts: list | None, rate: float, per_day: float | None) -> None:
    got = M.alert_counts(sum(alerts), len(alerts), None if ts is None else np.array(ts, dtype="datetime64[us]"))
    assert got["alert_rate"] == pytest.approx(rate)
    assert got["alerts_per_day"] == (None if per_day is None else pytest.approx(per_day))


EPS = 1e-4
HALF_SHIFT = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.8 - 0.5) * math.log(0.8 / 0.5)
NEW_VALUE = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - EPS) * math.log(0.5 / EPS)


@pytest.mark.parametrize(
    ("expected", "actual", "bins", "psi"),
    [
        (np.arange(1000.0), np.arange(1000.0), 10, 0.0),  # identical
        (np.arange(1000.0), np.arange(1000.0)[::-1], 10, 0.0),  # same values, other order
        ([0.0] * 50 + [1.0] * 50, [0.0] * 20 + [1.0] * 80, 2, HALF_SHIFT),  # bins (-inf, .5], (.5, inf): 50/50 → 20/80
        ([0.0] * 100, [0.0] * 50 + [5.0] * 50, 10, NEW_VALUE),  # empty train bin floored at eps
        (
            [1.0, 2.0, 3.0, 4.0],
            [1.0, 2.0, nan, nan],
            2,
            (0.5 - 0.5) * 0 + (EPS - 0.5) * math.log(EPS / 0.5) + (0.5 - EPS) * math.log(0.5 / EPS),
        ),  # NaN bin: 0 → 50%; the (2.5, inf) bin: 50% → 0
    ],
    ids=["identical", "reordered", "shifted", "new-value", "nan-bin"],
)
def test_psi(expected: list[float], actual: list[float], bins: int, psi: float) -> None:
    assert M.psi(np.array(expected), np.array(actual), bins=bins) == pytest.approx(psi, abs=1e-9)


def test_psi_of_empty_side_is_none() -> None:
    assert M.psi(np.array([]), np.array([1.0])) is None


def test_drift_flags_features_above_threshold() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(5000, 2))
    holdout = rng.normal(size=(5000, 2))
    holdout[:, 1] += 1.0  # a one-sd shift: PSI well above 0.2
    got = M.drift(train, holdout, ["stable", "shifted"])
    assert got["psi"]["stable"] < 0.02 < 0.2 < got["psi"]["shifted"]
    assert got["drifted"] == ["shifted"] and got["max_psi"] == got["psi"]["shifted"]


@pytest.mark.parametrize(
    ("column", "median", "scale"),
    [
        ([1, 2, 3, 4, 5], 3, 2 / 1.349),  # IQR 4 − 2
        ([0, 0, 0, 0, 1], 0, 0.4),  # IQR and MAD 0 → std
        ([2, 2, 2, 2, 2], 2, 1.0),  # constant → 1
    ],
)
def test_robust_stats(column: list[float], median: float, scale: float) -> None:
    med, sc = M.robust_stats(np.array(column, dtype=float)[:, None])
    assert med[0] == pytest.approx(median) and sc[0] == pytest.approx(scale)
    assert M.robust_z(np.array([[median + 2 * scale]]), med, sc)[0, 0] == pytest.approx(2.0)


def test_score_quantiles_and_histogram() -> None:
    s = np.arange(1001.0)  # 0..1000: the p-th quantile is 1000 * p
    got = score_stats(s, np.full(s.size, np.nan), threshold=2000.0)
    assert got.quantiles["p50"] == pytest.approx(500) and got.quantiles["p99"] == pytest.approx(990)
    assert got.quantiles["min"] == 0 and got.quantiles["max"] == 1000 and got.quantiles["mean"] == 500
    assert sum(got.histogram["counts"]) == 1001 and len(got.histogram["edges"]) == 31


def test_benign_alert_rate_counts_alerts_not_labelled_malicious() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, np.nan, 0, 0])
    s = np.array([1, 1, 1, 1, 0, 0, 0, 1, 0, 0], float)  # 3 attacks caught, 1 benign and 1 unknown alerted
    assert M.benign_alert_rate(score_stats(s, y, 0.5)) == 0.2
    assert M.benign_alert_rate(score_stats(np.array([]), np.array([]), 0.5)) is None
