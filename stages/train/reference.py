"""The training reference a later scoring run compares new traffic with (``card["reference"]``).

Computed on the validation rows — the latest train rows, never fitted on, the rows the
threshold was calibrated on — so it describes what the model sees out of sample:
per feature the median and a robust scale (for z-scores in alert explanations) and
decile bin edges with the share of rows in each bin (for PSI), and the same bins for the
anomaly score. Edges are interior cut points; a value v falls in bin
``searchsorted(edges, v, "right")``. Small: ~60 features × 11 numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BINS", "distribution", "reference"]

BINS = 10
_MIN_SCALE = 1e-6


def distribution(values: np.ndarray, bins: int = BINS) -> dict[str, list[float]]:
    """Quantile cut points of ``values`` (duplicates merged) and the share of rows per bin."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {"edges": [], "fractions": []}
    cuts = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(cuts)
    counts = np.bincount(np.searchsorted(edges, values, "right"), minlength=len(edges) + 1)
    return {"edges": [float(e) for e in edges], "fractions": [float(c) for c in counts / len(values)]}


def _robust(values: np.ndarray) -> tuple[float, float]:
    """Median and a robust scale: IQR / 1.349 (the std of a normal), else the std, else 1."""
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    scale = (q3 - q1) / 1.349
    if scale < _MIN_SCALE:
        scale = float(np.std(values))
    return float(median), float(scale if scale >= _MIN_SCALE else 1.0)


def reference(X: np.ndarray, features: list[str], scores: np.ndarray) -> dict[str, Any]:
    """The reference block of the model card for validation rows ``X`` and their ``scores``."""
    out: dict[str, Any] = {"rows": int(len(X)), "bins": BINS, "features": {}, "score": distribution(scores)}
    for j, name in enumerate(features):
        column = np.asarray(X[:, j], dtype=np.float64)
        median, scale = _robust(column) if len(column) else (0.0, 1.0)
        out["features"][name] = {"median": median, "scale": scale, **distribution(column)}
    return out
