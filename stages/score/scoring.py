"""Stream the silver batch through the model: scores, alerts with their evidence, drift counts.

The batch is read ``BATCH_ROWS`` rows at a time, so memory follows the batch size and
the number of alerts, not the number of flows (10M flows fit a 4 GiB pod). For every
row the score is compared with the card's calibrated threshold; for alerts the
features furthest from training (robust z against the card's reference) are kept as
evidence. Every row also lands in the PSI bins of the card's reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from stages.common.errors import InputError
from stages.common.model_io import anomaly_scores

__all__ = ["BATCH_ROWS", "TOP_FEATURES", "PASSTHROUGH", "Scored", "score_batch"]

log = logging.getLogger(__name__)

BATCH_ROWS = 131_072
TOP_FEATURES = 3
PASSTHROUGH = ["ts", "uid", "src_ip", "dst_ip", "dst_port", "proto", "service", "conn_state", "label", "attack_type"]


@dataclass
class Bins:
    """Counts of one variable in the reference's bins (``searchsorted(edges, v, "right")``)."""

    edges: np.ndarray
    expected: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, ref: dict[str, Any]) -> Bins:
        edges = np.asarray(ref.get("edges", []), dtype=np.float64)
        return cls(edges, np.asarray(ref.get("fractions", []), dtype=np.float64), np.zeros(len(edges) + 1, np.int64))

    def add(self, values: np.ndarray) -> None:
        self.counts += np.bincount(np.searchsorted(self.edges, values, "right"), minlength=len(self.counts))


@dataclass
class Scored:
    """What one pass over the batch produced."""

    rows: int = 0
    alerts: list[pa.Table] = field(default_factory=list)
    evidence: list[list[dict[str, Any]]] = field(default_factory=list)
    feature_bins: dict[str, Bins] = field(default_factory=dict)
    score_bins: Bins | None = None
    score_sum: float = 0.0

    def alert_table(self) -> pa.Table | None:
        return pa.concat_tables(self.alerts) if self.alerts else None


def _evidence(X: np.ndarray, features: list[str], median: np.ndarray, scale: np.ndarray) -> list[list[dict[str, Any]]]:
    """The ``TOP_FEATURES`` features with the largest |z| per row: name, raw value, z."""
    z = (X.astype(np.float64) - median) / scale
    top = np.argsort(-np.abs(z), axis=1, kind="stable")[:, :TOP_FEATURES]
    return [
        [{"feature": features[j], "value": float(X[i, j]), "z": round(float(z[i, j]), 2)} for j in top[i]]
        for i in range(len(X))
    ]


def score_batch(model: Any, card: dict[str, Any], path: Path, uri: str) -> Scored:
    """Score every row of the silver Parquet at ``path`` with ``model``; see the module docstring."""
    import pyarrow.parquet as pq

    features = list(card["features"])
    threshold = float(card["threshold"])
    ref = card.get("reference") or {}
    ref_features = ref.get("features") or {}
    median = np.array([ref_features.get(f, {}).get("median", 0.0) for f in features])
    scale = np.array([ref_features.get(f, {}).get("scale", 1.0) for f in features])
    out = Scored(feature_bins={f: Bins.of(ref_features[f]) for f in features if f in ref_features})
    if ref.get("score"):
        out.score_bins = Bins.of(ref["score"])
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{uri}: not a readable Parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    missing = [f for f in features if f not in names]
    if missing:
        raise InputError(f"{uri}: feature column(s) {missing[:8]} missing; features and manifest must match")
    passthrough = [c for c in PASSTHROUGH if c in names]
    frame = getattr(model, "feature_names_in_", None) is not None
    total = pf.metadata.num_rows
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[*passthrough, *features]):
        X = np.column_stack([batch.column(f).to_numpy(zero_copy_only=False) for f in features]).astype(np.float32)
        data: Any = X
        if frame:
            import pandas as pd

            data = pd.DataFrame(X, columns=features)
        try:
            scores = anomaly_scores(model, data, card["score_method"])
        except ValueError as exc:
            raise InputError(f"{uri}: the model could not score these features ({exc})") from exc
        if not np.all(np.isfinite(scores)):
            raise InputError(f"{uri}: {int(np.sum(~np.isfinite(scores)))} scores are NaN/inf; check the features")
        for j, f in enumerate(features):
            if f in out.feature_bins:
                out.feature_bins[f].add(X[:, j])
        if out.score_bins is not None:
            out.score_bins.add(scores)
        out.score_sum += float(scores.sum())
        hit = scores >= threshold
        if hit.any():
            idx = np.flatnonzero(hit)
            rows = pa.Table.from_batches([batch.select(passthrough)]).take(pa.array(idx))
            out.alerts.append(rows.append_column("score", pa.array(scores[idx], pa.float64())))
            out.evidence.extend(_evidence(X[idx], features, median, scale))
        out.rows += batch.num_rows
        log.info("scored %d of %d flows", out.rows, total, extra={"progress": round(out.rows / max(total, 1), 3)})
    return out
