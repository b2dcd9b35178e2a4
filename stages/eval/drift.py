"""PSI of every feature, train vs holdout, counted one part at a time — the same floats as on all rows at once.

PSI's bins are cut at quantiles of the train values (numpy's default linear interpolation
at 10%, 20%, … 90% of the finite values); values equal to a cut point go to the lower bin,
non-finite values (NaN, ±inf) to a bin of their own, and empty bins are floored at ``eps``.
A quantile of rows spread over many parts is found without holding them together:

1. ``TrainBins.count`` (every train part): each finite float32 value becomes a 32-bit key
   that sorts like the value; the keys are counted by their top 16 bits (65,536 counters
   per feature), which is enough to tell the bucket of every order statistic a cut needs;
2. ``TrainBins.refine`` (every train part again): only the values in those few buckets are
   kept, as distinct keys with counts, which gives the order statistics themselves and how
   many train values lie at or below each cut;
3. ``HoldoutBins.count`` (every holdout part): the holdout values per bin.

Counts are integers and the cut points the same float64 numbers ``np.quantile`` gives, so
metrics.json does not depend on how silver partitioned its output.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "PSI_DRIFT_THRESHOLD",
    "TrainBins",
    "HoldoutBins",
    "psi",
    "drift",
    "drift_document",
    "quantile_positions",
    "lerp",
]

PSI_DRIFT_THRESHOLD = 0.2
"""PSI above this marks a feature as drifted (the usual rule of thumb: > 0.2 is a significant shift)."""

_TOP_BITS = 16
_BUCKETS = 1 << _TOP_BITS
_SIGN = np.uint32(0x80000000)
_ALL = np.uint32(0xFFFFFFFF)
_T = TypeVar("_T")


def _each_feature(fn: Callable[[int], _T], n_features: int) -> list[_T]:
    """``fn(j)`` for every feature, two at a time: numpy releases the GIL, and two keep the copies few."""
    if n_features < 2:
        return [fn(j) for j in range(n_features)]
    with ThreadPoolExecutor(2, thread_name_prefix="psi") as pool:
        return list(pool.map(fn, range(n_features)))


def _keys(values: np.ndarray) -> np.ndarray:
    """uint32 keys that sort like the finite float32 ``values`` (-0.0 counts as 0.0, as comparisons do)."""
    bits = (values.astype(np.float32, copy=False) + np.float32(0)).view(np.uint32)
    return bits ^ np.where(bits >= _SIGN, _ALL, _SIGN)


def _values(keys: np.ndarray) -> np.ndarray:
    """The float64 values of ``_keys``."""
    bits = keys ^ np.where(keys >= _SIGN, _SIGN, _ALL)
    return bits.view(np.float32).astype(np.float64)


def _finite(column: np.ndarray) -> np.ndarray:
    finite = np.isfinite(column)
    return column if finite.all() else column[finite]


def quantile_positions(n: int, qs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(previous rank, following rank, weight) of each quantile ``qs`` of ``n`` sorted values, as ``np.quantile``
    has them.

    This is numpy's index arithmetic for its default "linear" method, step by step, so
    ``lerp`` of the two order statistics gives the same float64 bit for bit
    (tests/eval/test_parts.py checks it for the PSI cut points, test_curves.py for scores).
    """
    virtual = (n - 1) * np.asarray(qs, dtype=np.float64)
    previous = np.floor(virtual)
    following = previous + 1
    last = virtual >= n - 1  # one value only: numpy takes the last element (index -1) for both
    previous[last] = following[last] = -1
    gamma = virtual - previous
    previous[last] = following[last] = n - 1
    return previous.astype(np.int64), following.astype(np.int64), gamma


def lerp(a: np.ndarray, b: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """numpy's quantile interpolation between neighbouring order statistics ``a`` <= ``b``."""
    diff = b - a
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


def _cut_quantiles(bins: int) -> np.ndarray:
    """The PSI cut points are ``np.quantile(x, linspace(0, 1, bins + 1)[1:-1])`` of the train values."""
    return np.linspace(0, 1, bins + 1)[1:-1]


def _shares(below: np.ndarray, finite: int, rows: int) -> np.ndarray:
    """Share of rows per bin (-inf, e1], (e1, e2], ..., (ek, inf), plus the non-finite bin, from #(v <= e)."""
    counts = np.diff(np.array([0, *below, finite], dtype=np.int64))
    return np.append(counts, rows - finite) / max(rows, 1)


class TrainBins:
    """The cut points and train shares of every feature's PSI bins, from train rows seen part by part.

    Call ``count`` on every train part, then ``refine`` on every train part (any order), then
    ``shares``. Memory: 65,536 counters per feature plus the distinct values of the buckets
    the cut points fall in — not the rows.
    """

    def __init__(self, n_features: int, bins: int = 10) -> None:
        self.bins = bins
        self.rows = 0
        self.finite = np.zeros(n_features, dtype=np.int64)
        self.top = np.zeros((n_features, _BUCKETS), dtype=np.int64)
        self._wanted: list[np.ndarray] | None = None
        self._found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(n_features)]
        self._shares: list[tuple[np.ndarray, np.ndarray]] | None = None

    def count(self, X: np.ndarray) -> None:
        """First pass: top-16-bit key counts of the train rows ``X`` (rows × features, float32)."""
        if self._wanted is not None:
            raise RuntimeError("count() after refine(): every part must be counted first")

        def one(j: int) -> None:
            keys = _keys(_finite(X[:, j]))
            self.finite[j] += keys.size
            self.top[j] += np.bincount(keys >> _TOP_BITS, minlength=_BUCKETS)

        _each_feature(one, X.shape[1])
        self.rows += X.shape[0]

    def _ranks(self, j: int) -> np.ndarray:
        """The order statistics (0-based ranks among finite values) feature ``j``'s cut points use."""
        n = int(self.finite[j])
        if n == 0:
            return np.empty(0, dtype=np.int64)
        previous, following, _ = quantile_positions(n, _cut_quantiles(self.bins))
        return np.unique(np.concatenate([previous, following]))

    def refine(self, X: np.ndarray) -> None:
        """Second pass: the distinct keys (with counts) of the buckets holding a needed order statistic."""
        if self._wanted is None:
            self._wanted = []
            for j in range(len(self.finite)):
                ranks = self._ranks(j)
                wanted = np.zeros(_BUCKETS, dtype=bool)
                ends = np.cumsum(self.top[j])
                wanted[np.searchsorted(ends, ranks, side="right")] = True
                self._wanted.append(wanted)
        wanted_by_feature = self._wanted

        def one(j: int) -> None:
            keys = _keys(_finite(X[:, j]))
            keys = keys[wanted_by_feature[j][keys >> _TOP_BITS]]
            if keys.size:
                self._found[j].append(np.unique(keys, return_counts=True))
                if len(self._found[j]) > 8:  # keep the list short: merge what the parts found so far
                    self._found[j] = [self._merged(j)]

        _each_feature(one, X.shape[1])

    def _merged(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        found = self._found[j]
        if not found:
            raise RuntimeError(f"feature {j}: train values counted but none refined; refine() every train part")
        if len(found) == 1:
            return found[0]
        keys, inverse = np.unique(np.concatenate([k for k, _ in found]), return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate([c for _, c in found]), minlength=keys.size)
        return keys, counts.astype(np.int64)

    def edges(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Feature ``j``'s cut points (sorted, distinct, float64) and #(train values <= each)."""
        n = int(self.finite[j])
        if n == 0:
            return np.empty(0), np.empty(0, dtype=np.int64)
        keys, counts = self._merged(j)
        # number of finite values at or below each distinct found key: all values in lower buckets + the bucket's own
        below_bucket = np.concatenate([[0], np.cumsum(self.top[j])])[keys >> _TOP_BITS]
        group_start = np.r_[True, (keys[1:] >> _TOP_BITS) != (keys[:-1] >> _TOP_BITS)]
        running = np.cumsum(counts)
        before_group = np.maximum.accumulate(np.where(group_start, running - counts, 0))
        at_or_below = below_bucket + running - before_group
        found = _values(keys)
        previous, following, gamma = quantile_positions(n, _cut_quantiles(self.bins))
        at = lambda ranks: found[np.searchsorted(at_or_below, ranks, side="right")]  # noqa: E731
        cuts = np.unique(lerp(at(previous), at(following), gamma))
        # a cut lies between two neighbouring order statistics (both found), with no value strictly between them
        return cuts, at_or_below[np.searchsorted(found, cuts, side="right") - 1]

    def shares(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per feature: (cut points, train share per bin); after both passes. The counters are freed."""
        if self._shares is None:
            if self._wanted is None:
                self.refine(np.empty((0, len(self.finite)), dtype=np.float32))
            self._shares = []
            for j in range(len(self.finite)):
                cuts, below = self.edges(j)
                self._shares.append((cuts, _shares(below, int(self.finite[j]), self.rows)))
            self.top, self._found = np.empty((0, _BUCKETS), dtype=np.int64), []
        return self._shares


class HoldoutBins:
    """Holdout rows per PSI bin of every feature, counted part by part against ``TrainBins`` cut points."""

    def __init__(self, cuts: list[np.ndarray]) -> None:
        self.cuts = cuts
        self.rows = 0
        self.finite = np.zeros(len(cuts), dtype=np.int64)
        self.below = [np.zeros(c.size, dtype=np.int64) for c in cuts]

    def count(self, X: np.ndarray) -> None:
        """Add the holdout rows ``X`` (rows × features); compared in float64, as the cut points are."""

        def one(j: int) -> None:
            values = _finite(X[:, j])
            self.finite[j] += values.size
            self.below[j] += np.array(
                [np.count_nonzero(values <= e) for e in self.cuts[j].astype(np.float64)], np.int64
            )

        _each_feature(one, X.shape[1])
        self.rows += X.shape[0]

    def shares(self, j: int) -> np.ndarray:
        return _shares(self.below[j], int(self.finite[j]), self.rows)


def _psi(expected: np.ndarray, actual: np.ndarray, eps: float) -> float:
    p, q = np.maximum(expected, eps), np.maximum(actual, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_values(train: TrainBins, holdout: HoldoutBins, eps: float = 1e-4) -> list[float | None]:
    """PSI per feature; ``None`` where either side has no rows."""
    if train.rows == 0 or holdout.rows == 0:
        return [None] * len(holdout.cuts)
    return [_psi(p, holdout.shares(j), eps) for j, (_, p) in enumerate(train.shares())]


def drift_document(names: list[str], values: list[float | None], threshold: float, bins: int) -> dict[str, Any]:
    """The ``drift`` block of metrics.json: PSI per feature, the maximum, the features above ``threshold``."""
    by_name = dict(zip(names, values, strict=True))
    known = [v for v in values if v is not None]
    return {
        "psi": by_name,
        "max_psi": max(known) if known else None,
        "drifted": sorted(n for n, v in by_name.items() if v is not None and v > threshold),
        "threshold": threshold,
        "bins": bins,
    }


def drift(
    train: np.ndarray, holdout: np.ndarray, names: list[str], threshold: float = PSI_DRIFT_THRESHOLD, bins: int = 10
) -> dict[str, Any]:
    """``drift_document`` of train and holdout rows held in memory (rows × features), as one part each."""
    train_bins = TrainBins(len(names), bins)
    X = np.asarray(train, dtype=np.float32)
    train_bins.count(X)
    train_bins.refine(X)
    holdout_bins = HoldoutBins([cuts for cuts, _ in train_bins.shares()])
    holdout_bins.count(np.asarray(holdout, dtype=np.float32))
    return drift_document(names, psi_values(train_bins, holdout_bins), threshold, bins)


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10, eps: float = 1e-4) -> float | None:
    """Population stability index of ``actual`` against ``expected`` (train), one feature.

    Values are features as silver writes them, float32 (others are rounded to float32 first).
    ``None`` when either side is empty.
    """
    return drift(np.reshape(expected, (-1, 1)), np.reshape(actual, (-1, 1)), ["x"], bins=bins)["psi"]["x"]
