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

from stages.common.contracts import PASSTHROUGH
from stages.common.errors import InputError
from stages.common.model_io import score_stream

__all__ = ["BATCH_ROWS", "TOP_FEATURES", "PASSTHROUGH", "Scored", "score_batch"]

log = logging.getLogger(__name__)

BATCH_ROWS = 131_072
TOP_FEATURES = 3


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

    features: list[str] = field(default_factory=list)
    threshold: float = float("inf")
    median: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    """Per feature: the training reference's median and robust scale (the evidence's z)."""
    rows: int = 0
    alerts: list[pa.Table] = field(default_factory=list)
    evidence: list[list[dict[str, Any]]] = field(default_factory=list)
    feature_bins: dict[str, Bins] = field(default_factory=dict)
    score_bins: Bins | None = None
    score_sum: float = 0.0

    def alert_table(self) -> pa.Table | None:
        return pa.concat_tables(self.alerts) if self.alerts else None

    def add(self, batch: pa.RecordBatch, passthrough: list[str], X: np.ndarray, scores: np.ndarray) -> None:
        """Fold one scored batch in: drift counts, score sum, alerts (``passthrough`` columns) and evidence."""
        for j, f in enumerate(self.features):
            if f in self.feature_bins:
                self.feature_bins[f].add(X[:, j])
        if self.score_bins is not None:
            self.score_bins.add(scores)
        self.score_sum += float(scores.sum())
        hit = scores >= self.threshold
        if hit.any():
            idx = np.flatnonzero(hit)
            rows = pa.Table.from_batches([batch.select(passthrough)]).take(pa.array(idx))
            self.alerts.append(rows.append_column("score", pa.array(scores[idx], pa.float64())))
            self.evidence.extend(_evidence(X[idx], self.features, self.median, self.scale))
        self.rows += batch.num_rows


def _evidence(X: np.ndarray, features: list[str], median: np.ndarray, scale: np.ndarray) -> list[list[dict[str, Any]]]:
    """The ``TOP_FEATURES`` features with the largest |z| per row: name, raw value, z."""
    z = (X.astype(np.float64) - median) / scale
    top = np.argsort(-np.abs(z), axis=1, kind="stable")[:, :TOP_FEATURES]
    return [
        [{"feature": features[j], "value": float(X[i, j]), "z": round(float(z[i, j]), 2)} for j in top[i]]
        for i in range(len(X))
    ]


def score_batch(model: Any, card: dict[str, Any], path: Path, uri: str) -> Scored:
    """Score every row of the silver Parquet at ``path`` with ``model``; see the module docstring.

    Batches are scored by ``model_io.score_stream`` (the next ones on worker threads while
    this one is folded into the drift counts and alerts).
    """
    import pyarrow.parquet as pq

    features = list(card["features"])
    ref = card.get("reference") or {}
    ref_features = ref.get("features") or {}
    out = Scored(
        features=features,
        threshold=float(card["threshold"]),
        median=np.array([ref_features.get(f, {}).get("median", 0.0) for f in features]),
        scale=np.array([ref_features.get(f, {}).get("scale", 1.0) for f in features]),
        feature_bins={f: Bins.of(ref_features[f]) for f in features if f in ref_features},
        score_bins=Bins.of(ref["score"]) if ref.get("score") else None,
    )
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{uri}: not a readable Parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    missing = [f for f in features if f not in names]
    if missing:
        raise InputError(f"{uri}: feature column(s) {missing[:8]} missing; features and manifest must match")
    passthrough = [c for c in PASSTHROUGH if c in names]
    total = pf.metadata.num_rows
    batches = ((b, _matrix(b, features)) for b in pf.iter_batches(BATCH_ROWS, columns=[*passthrough, *features]))
    try:
        for batch, X, scores in score_stream(model, batches, card["score_method"], features):
            if not np.all(np.isfinite(scores)):
                raise InputError(f"{uri}: {int(np.sum(~np.isfinite(scores)))} scores are NaN/inf; check the features")
            out.add(batch, passthrough, X, scores)
            log.info("scored %d of %d flows", out.rows, total, extra={"progress": round(out.rows / max(total, 1), 3)})
    except ValueError as exc:
        raise InputError(f"{uri}: the model could not score these features ({exc})") from exc
    return out


def _matrix(batch: pa.RecordBatch, features: list[str]) -> np.ndarray:
    """The batch's features as a C-ordered float32 matrix (rows × features)."""
    X = np.empty((batch.num_rows, len(features)), dtype=np.float32)
    for j, f in enumerate(features):
        X[:, j] = batch.column(f).to_numpy(zero_copy_only=False)
    return X
