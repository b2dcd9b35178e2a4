"""Stream the silver batch through the model: scores, alerts with their evidence, drift counts.

The batch is read ``BATCH_ROWS`` rows at a time, so memory follows the batch size and
the number of alerts, not the number of flows (10M flows fit a 4 GiB pod). For every
row the score is compared with the card's calibrated threshold; for alerts the
features furthest from training (robust z against the card's reference) are kept as
evidence. Every row also lands in the PSI bins of the card's reference.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from stages.common.contracts import PASSTHROUGH
from stages.common.errors import InputError
from stages.common.model_io import score_stream

__all__ = [
    "BATCH_ROWS",
    "READ_AHEAD",
    "TOP_FEATURES",
    "PASSTHROUGH",
    "Batches",
    "Scored",
    "open_batches",
    "score_batch",
]

log = logging.getLogger(__name__)

BATCH_ROWS = 131_072
READ_AHEAD = 8
"""Batches read ahead of the model: ~50 MB each (the feature matrix and the passthrough columns);
1M flows are read while scikit-learn is imported and the model loaded."""
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
        """Count ``values`` into the bins: exactly ``searchsorted(edges, values, "right")``'s bins.

        With a few sorted, NaN-free edges, a comparison per edge (in float64, as searchsorted
        compares) is ~5x cheaper than a binary search per value: the values at or past edge k
        are ``ge[k]``, bin k holds ``ge[k-1] - ge[k]``, and NaN (past every edge) lands last.
        """
        e = self.edges
        if len(e) == 0 or len(e) > 32 or np.isnan(e).any() or np.any(e[1:] < e[:-1]):
            self.counts += np.bincount(np.searchsorted(e, values, "right"), minlength=len(self.counts))
            return
        ge = np.array([np.count_nonzero(values >= e[k : k + 1]) for k in range(len(e))], dtype=np.int64)
        nan = np.count_nonzero(np.isnan(values))
        self.counts[0] += len(values) - nan - ge[0]
        self.counts[1:-1] += ge[:-1] - ge[1:]
        self.counts[-1] += ge[-1] + nan


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
        """Fold one scored batch in: score drift counts, score sum, alerts (``passthrough`` columns) and
        evidence (the feature drift counts are taken as the batch is read, see ``Batches``)."""
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
    names = np.asarray(features, dtype=object)[top].tolist()
    values = np.take_along_axis(X, top, axis=1).astype(np.float64).tolist()
    zs = np.take_along_axis(z, top, axis=1).tolist()
    return [
        [{"feature": f, "value": v, "z": round(zz, 2)} for f, v, zz in zip(fr, vr, zr, strict=True)]
        for fr, vr, zr in zip(names, values, zs, strict=True)
    ]


class Batches:
    """The silver batch's ``(RecordBatch, feature matrix)`` pairs, read ahead on a thread.

    Opening checks the file and its columns (InputError naming the URI). Reading, decoding
    and building the matrices (pyarrow and numpy, mostly outside the GIL) start at once
    and stay up to ``READ_AHEAD`` batches ahead, so they overlap loading the model and,
    later, the trees; the feature drift counts (``bins``) are taken on that thread too.
    A reading error is raised where the batch would have been consumed.
    """

    def __init__(self, path: Path, uri: str, features: list[str], bins: dict[str, Bins] | None = None) -> None:
        import queue
        import threading

        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{uri}: not a readable Parquet file ({exc})") from exc
        names = pf.schema_arrow.names
        missing = [f for f in features if f not in names]
        if missing:
            raise InputError(f"{uri}: feature column(s) {missing[:8]} missing; features and manifest must match")
        self.uri, self.features, self.bins = uri, features, bins or {}
        self.passthrough = [c for c in PASSTHROUGH if c in names]
        self.total = pf.metadata.num_rows
        self._file = pf
        self._queue: queue.Queue[Any] = queue.Queue(READ_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="score-read", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for b in self._file.iter_batches(BATCH_ROWS, columns=[*self.passthrough, *self.features]):
                X = _matrix(b, self.features)
                for j, f in enumerate(self.features):
                    if f in self.bins:
                        self.bins[f].add(X[:, j])
                if not self._put((b.select(self.passthrough), X)):  # the matrix holds the features
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(exc)
            return
        self._put(None)

    def __iter__(self) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
        try:
            while (item := self._queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading ahead (the thread ends within a fraction of a second)."""
        self._stop.set()


def open_batches(card: dict[str, Any], path: Path, uri: str) -> tuple[Batches, Scored]:
    """Check the silver Parquet at ``path`` against the card and start reading it (see ``Batches``)."""
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
    return Batches(path, uri, features, out.feature_bins), out


def score_batch(
    model: Any, card: dict[str, Any], path: Path, uri: str, opened: tuple[Batches, Scored] | None = None
) -> Scored:
    """Score every row of the silver Parquet at ``path`` with ``model``; see the module docstring.

    ``opened``: what ``open_batches`` returned, when reading started before the model was
    loaded. Batches are scored by ``model_io.score_stream`` (the next ones on worker
    threads while this one is folded into the score counts and alerts).
    """
    batches, out = opened or open_batches(card, path, uri)
    try:
        for batch, X, scores in score_stream(model, iter(batches), card["score_method"], out.features):
            if not np.all(np.isfinite(scores)):
                raise InputError(f"{uri}: {int(np.sum(~np.isfinite(scores)))} scores are NaN/inf; check the features")
            out.add(batch, batches.passthrough, X, scores)
            log.info(
                "scored %d of %d flows",
                out.rows,
                batches.total,
                extra={"progress": round(out.rows / max(batches.total, 1), 3)},
            )
    except ValueError as exc:
        raise InputError(f"{uri}: the model could not score these features ({exc})") from exc
    finally:
        batches.close()
    return out


def _matrix(batch: pa.RecordBatch, features: list[str]) -> np.ndarray:
    """The batch's features as a float32 matrix (rows × features), column-major.

    Each column is one contiguous copy (filling a row-major matrix column by column costs
    ~5x more); the model's pipeline selects its columns into a row-major copy anyway, and
    drift counts read columns. Scores depend on the values only, not on the layout.
    """
    T = np.empty((len(features), batch.num_rows), dtype=np.float32)
    for j, f in enumerate(features):
        T[j] = batch.column(f).to_numpy(zero_copy_only=False)
    return T.T
