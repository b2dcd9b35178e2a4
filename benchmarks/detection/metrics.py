"""Ranking metrics for the benchmark: ROC-AUC, PR-AUC and recall at a fixed false-positive rate.

Recall at 1% FPR uses the threshold that lets exactly 1% of the *holdout's* benign flows
alert (an oracle threshold), so two detectors are compared on ranking alone; the
calibrated threshold of our model is reported separately (does it hold on later data?).
Per attack type, PR-AUC is computed on benign flows plus that type only, so a large
scenario cannot hide a small one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = ["detection_metrics", "at_threshold"]


def _recall_at_fpr(scores: np.ndarray, benign: np.ndarray, target: np.ndarray, fpr: float) -> float:
    threshold = np.quantile(scores[benign], 1.0 - fpr, method="higher")
    return float(np.mean(scores[target] > threshold)) if target.any() else float("nan")


def detection_metrics(y: np.ndarray, scores: np.ndarray, attack_type: np.ndarray, fpr: float = 0.01) -> dict[str, Any]:
    """Overall and per-attack-type metrics; ``y`` is 0/1, ``attack_type`` a string per row (None if benign)."""
    benign, attack = y == 0, y == 1
    out: dict[str, Any] = {
        "rows": int(len(y)),
        "attacks": int(attack.sum()),
        "roc_auc": float(roc_auc_score(attack, scores)),
        "pr_auc": float(average_precision_score(attack, scores)),
        "recall_at_fpr": _recall_at_fpr(scores, benign, attack, fpr),
        "by_attack": {},
    }
    kinds = sorted({str(a) for a in attack_type[attack] if a is not None})
    for kind in kinds:
        this = attack & (attack_type == kind)
        pool = benign | this
        out["by_attack"][kind] = {
            "rows": int(this.sum()),
            "pr_auc": float(average_precision_score(this[pool], scores[pool])),
            "recall_at_fpr": _recall_at_fpr(scores, benign, this, fpr),
        }
    return out


def at_threshold(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """FPR, recall and precision of the alerts ``scores >= threshold`` (the pipeline's convention)."""
    alerts = scores >= threshold
    benign, attack = y == 0, y == 1
    return {
        "fpr": float(alerts[benign].mean()) if benign.any() else float("nan"),
        "recall": float(alerts[attack].mean()) if attack.any() else float("nan"),
        "precision": float(attack[alerts].mean()) if alerts.any() else float("nan"),
    }
