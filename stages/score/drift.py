"""drift.json: PSI of features and of the score against the card's training reference, and the
alert rate against the rate the threshold was calibrated to produce.

PSI = Σ (a - e) · ln(a / e) over the reference's bins, with both shares floored at
``EPS`` (an empty bin must not make it infinite). Rule of thumb: < 0.1 stable, 0.1-0.25
moderate, > 0.25 a real shift. ``drifted`` is what the workflow's output parameter shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["EPS", "psi", "drift_report"]

EPS = 1e-4


def psi(expected: np.ndarray, counts: np.ndarray) -> float | None:
    """PSI of observed ``counts`` against ``expected`` shares (None when either side is empty)."""
    total = counts.sum()
    if total == 0 or len(expected) != len(counts) or expected.sum() == 0:
        return None
    a = np.maximum(counts / total, EPS)
    e = np.maximum(expected, EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_report(
    scored: Any, card: dict[str, Any], alerts: int, max_psi: float, max_rate_ratio: float
) -> dict[str, Any]:
    """The drift.json document (see the module docstring)."""
    features = {name: psi(b.expected, b.counts) for name, b in sorted(scored.feature_bins.items())}
    measured = {k: v for k, v in features.items() if v is not None}
    score_psi = psi(scored.score_bins.expected, scored.score_bins.counts) if scored.score_bins else None
    expected_rate = (card.get("train_metrics") or {}).get("val_alert_rate")
    rate = alerts / scored.rows if scored.rows else None
    ratio = rate / expected_rate if rate is not None and expected_rate else None
    reasons = []
    worst = sorted(measured.items(), key=lambda kv: -kv[1])
    if worst and worst[0][1] > max_psi:
        reasons.append(f"feature PSI {worst[0][1]:.3f} ({worst[0][0]}) > {max_psi}")
    if score_psi is not None and score_psi > max_psi:
        reasons.append(f"score PSI {score_psi:.3f} > {max_psi}")
    if ratio is not None and ratio > max_rate_ratio:
        reasons.append(
            f"alert rate {rate:.4f} is {ratio:.1f}x the calibrated {expected_rate:.4f} (> {max_rate_ratio}x)"
        )
    note = None
    if not card.get("reference"):
        note = "the model card has no training reference (trained before scoring existed): PSI not measured; retrain"
    elif scored.rows == 0:
        note = "empty batch: nothing to compare"
    return {
        "rows": scored.rows,
        "features": features,
        "max_feature_psi": worst[0][1] if worst else None,
        "max_feature": worst[0][0] if worst else None,
        "top_features": [{"feature": k, "psi": v} for k, v in worst[:10]],
        "score_psi": score_psi,
        "alert_rate": {"observed": rate, "expected": expected_rate, "ratio": ratio},
        "thresholds": {"max_psi": max_psi, "max_alert_rate_ratio": max_rate_ratio},
        "drifted": bool(reasons),
        "reasons": reasons,
        "note": note,
    }
