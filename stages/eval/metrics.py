"""Evaluation metrics: detection quality and alert volume from the holdout's ``curves.ScoreStats``
(counted part by part), attack recall,
robust z-scores; drift (PSI) lives in ``drift`` (counted part by part) and is re-exported here.

Conventions: ``scores`` are anomaly scores (higher = more anomalous); a row raises an
alert when ``score >= threshold``. ``y_true`` is a float array with 0 (benign),
1 (malicious) and NaN (unlabelled); metrics that need labels use only labelled rows and
report how many were left out. A metric that cannot be computed (no positives, no
alerts, a single class) is ``None`` — never a made-up 0 — and a reason is given.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .drift import PSI_DRIFT_THRESHOLD, drift, psi

if TYPE_CHECKING:
    from .curves import ScoreStats

__all__ = [
    "PSI_DRIFT_THRESHOLD",
    "stats_metrics",
    "alert_counts",
    "recall_by_attack",
    "psi",
    "drift",
    "robust_stats",
    "benign_alert_rate",
    "robust_z",
]


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def _labelled(y_true: np.ndarray) -> np.ndarray:
    return ~np.isnan(np.asarray(y_true, dtype=float))


def stats_metrics(stats: ScoreStats) -> dict[str, Any]:
    """The detection metrics of metrics.json from the holdout's ``ScoreStats``: precision, recall, F1, FPR
    at the threshold; PR-AUC, ROC-AUC, recall at 1% FPR.

    Only labelled rows count; ``labelled_rows``/``unlabelled_rows`` say how many. PR-AUC
    is average precision (the area a SOC cares about when attacks are rare). When the
    labelled rows hold a single class the AUCs are ``None`` and ``auc_note`` says why.
    """
    c = stats.confusion
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    precision, recall, fpr = _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(fp, fp + tn)
    f1 = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    auc_note = None
    if not stats.positives or not stats.negatives:
        missing = "malicious" if not stats.positives else "benign"
        auc_note = f"no {missing} rows among the {stats.labelled} labelled holdout rows: AUCs are undefined"
    return {
        "labelled_rows": stats.labelled,
        "unlabelled_rows": stats.unlabelled,
        "positives": stats.positives,
        "negatives": stats.negatives,
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "fpr": fpr,
        "pr_auc": stats.pr_auc,
        "roc_auc": stats.roc_auc,
        "recall_at_1pct_fpr": stats.recall_at_1pct_fpr,
        "auc_note": auc_note,
    }


def recall_by_attack(y_true: np.ndarray, attack_type: np.ndarray, alerts: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per attack type among labelled malicious rows: ``{type: {"rows", "detected", "recall"}}``.

    Malicious rows without a type are grouped as ``"unknown"``. Sorted by type name.
    """
    y = np.asarray(y_true, dtype=float)
    malicious = _labelled(y) & (np.nan_to_num(y) > 0.5)
    if not malicious.any():
        return {}
    types = np.array(
        [
            "unknown" if t is None or (isinstance(t, float) and math.isnan(t)) or t == "" else str(t)
            for t in np.asarray(attack_type, dtype=object)[malicious]
        ],
        dtype=object,
    )
    hits = np.asarray(alerts, dtype=bool)[malicious]
    out = {}
    for name in sorted(set(types)):
        sel = types == name
        rows, detected = int(sel.sum()), int(hits[sel].sum())
        out[name] = {"rows": rows, "detected": detected, "recall": detected / rows}
    return out


def benign_alert_rate(stats: ScoreStats) -> float | None:
    """Share of all holdout flows that alert without being labelled malicious (benign or unknown label).

    This is the alert volume that costs an analyst time for nothing. Unlike the plain alert
    rate it does not grow with the attack share of the holdout, so a labelled attack-heavy
    day (a DoS capture is a third attacks) does not fail a model for catching them.
    """
    return stats.benign_alerts / stats.rows if stats.rows else None


def alert_counts(k: int, n: int, ts: np.ndarray | None) -> dict[str, Any]:
    """Alert count ``k`` and rate among ``n`` rows; alerts per day over the holdout's time span (``None`` without ts).

    ``ts`` is a datetime64 array (NaT for unknown); the span is max − min of known ts.
    A span of zero (one instant) gives ``None`` rather than a division by zero.
    """
    out: dict[str, Any] = {"alerts": k, "alert_rate": _ratio(k, n), "alerts_per_day": None, "span_days": None}
    if ts is None:
        return out
    known = np.asarray(ts, dtype="datetime64[us]")
    known = known[~np.isnat(known)]
    if known.size == 0:
        return out
    span_days = float((known.max() - known.min()) / np.timedelta64(1, "s")) / 86400.0
    out["span_days"] = span_days
    out["alerts_per_day"] = k / span_days if span_days > 0 else None
    return out


def robust_stats(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column median and a robust scale from train rows (IQR/1.349, then MAD, std, 1).

    The fallbacks keep the scale positive for near-constant features such as one-hot
    flags, where the IQR is 0 but a rare 1 is still worth pointing at.
    """
    med = np.nanmedian(train, axis=0)
    q75, q25 = np.nanpercentile(train, [75, 25], axis=0)
    scale = (q75 - q25) / 1.349
    mad = 1.4826 * np.nanmedian(np.abs(train - med), axis=0)
    std = np.nanstd(train, axis=0)
    for fallback in (mad, std, np.ones_like(std)):
        scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, fallback)
    return np.nan_to_num(med), scale


def robust_z(rows: np.ndarray, median: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(x − median) / scale, row-wise; NaN stays NaN."""
    return (np.asarray(rows, dtype=float) - median) / scale
