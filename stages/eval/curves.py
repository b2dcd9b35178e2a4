"""The holdout's score statistics, merged from its parts in bounded memory.

Eval needs, over every holdout row: the confusion counts at the threshold, PR-AUC, ROC-AUC,
recall at 1% FPR, score quantiles, min/max/mean and histogram, and for the report the PR and
ROC curves and the score histograms by class. Holding every score and sorting them all costs
~50 bytes per holdout row (at 30M rows most of eval's 3.7 GiB); instead:

1. ``ScoreSpill.add`` (each holdout part, as it is scored): its scores and labels go to a
   local spill file (9 bytes a row); counts at the threshold, min and max are added up;
2. ``ScoreSpill.finish``: the scores are counted in 65,536 equal-width buckets over
   [min, max], consecutive buckets are grouped into at most 64 value ranges of at most
   ``group_rows`` rows (more when the holdout needs it), one pass moves every part's rows
   to its range's file, and the ranges are walked from the highest score down: each is
   read, sorted, and folded into running sums — true and false positives at each distinct
   score (the curves), the order statistics the quantiles need, the sum for the mean, the
   histogram counts.

Memory is one part plus one range; the spill is read three times, whatever the row count. Buckets, ranges and sort order depend only on the score
values, never on how the rows were split into parts, so any split of the same rows gives the
same floats. The areas are the sums sklearn computes (``average_precision_score``: precision
times the recall gained at each distinct score; ``roc_auc_score``: trapezoids under the ROC
points), accumulated range by range; tests/eval/test_curves.py compares them with sklearn.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .drift import lerp, quantile_positions

__all__ = ["QUANTILES", "ScoreSpill", "ScoreStats", "GROUP_ROWS", "score_stats"]

QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99, "p999": 0.999}
GROUP_ROWS = 4_000_000
"""Rows per value range walked at once (~100 MB with the sort): more when the holdout has over
``MAX_RANGES`` / 2 times as many rows; a single bucket may exceed it."""
MAX_RANGES = 64
"""Range files open at once while the spill is split (two each)."""
HISTOGRAM_BINS = 30
"""metrics.json's score histogram (``np.histogram(scores, 30)``)."""
PLOT_BINS = 60
"""The report's histograms by class, over [min, max] widened to the threshold."""
_BUCKETS = 65_536
_BENIGN, _MALICIOUS, _UNLABELLED = 0, 1, -1
_CURVE_STEPS = 500
"""The report's curves keep a point each time recall, FPR or log FPR moves by about 1/500 of its range."""


@dataclass
class ScoreStats:
    """Everything eval reports about the holdout's scores; arrays are small (bins, curve points)."""

    rows: int
    alerts: int
    benign_alerts: int
    """Alerts on rows not labelled malicious (benign or unlabelled)."""
    confusion: dict[str, int]
    """tp/fp/tn/fn among the labelled rows."""
    unlabelled: int
    pr_auc: float | None = None
    roc_auc: float | None = None
    recall_at_1pct_fpr: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)
    histogram: dict[str, list[Any]] = field(default_factory=lambda: {"edges": [], "counts": []})
    plot_edges: np.ndarray = field(default_factory=lambda: np.empty(0))
    plot_counts: dict[str, np.ndarray] = field(default_factory=dict)
    """Per class ("benign", "attack", "unlabelled") over ``plot_edges``; classes without rows are absent."""
    pr_points: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))
    """(recall, precision) at thinned distinct scores, highest score first."""
    roc_points: tuple[np.ndarray, np.ndarray] = (np.zeros(1), np.zeros(1))
    """(fpr, tpr) from (0, 0), thinned."""

    @property
    def positives(self) -> int:
        return self.confusion["tp"] + self.confusion["fn"]

    @property
    def negatives(self) -> int:
        return self.confusion["fp"] + self.confusion["tn"]

    @property
    def labelled(self) -> int:
        return self.positives + self.negatives


def _codes(y: np.ndarray) -> np.ndarray:
    """int8 labels: 1 malicious, 0 benign, -1 unlabelled (NaN)."""
    y = np.asarray(y, dtype=float)
    codes = np.full(y.shape, _UNLABELLED, dtype=np.int8)
    known = ~np.isnan(y)
    codes[known] = (y[known] > 0.5).astype(np.int8)
    return codes


class ScoreSpill:
    """Holdout scores and labels gathered part by part on local disk; ``finish`` gives the ``ScoreStats``."""

    def __init__(self, threshold: float, folder: Path | None = None, group_rows: int = GROUP_ROWS) -> None:
        self.threshold = float(threshold)
        self.group_rows = group_rows
        self._tmp = tempfile.TemporaryDirectory(prefix="eval-scores-", dir=folder)
        self.folder = Path(self._tmp.name)
        self.files: list[tuple[Path, Path]] = []
        self.rows = 0
        self.lo, self.hi = math.inf, -math.inf
        self.counts = dict.fromkeys(("alerts", "benign_alerts", "tp", "fp", "tn", "fn", "unlabelled"), 0)

    def add(self, scores: np.ndarray, y: np.ndarray) -> None:
        """One part's holdout scores (finite) and labels (0/1/NaN), in any order."""
        scores = np.asarray(scores, dtype=np.float64)
        codes = _codes(y)
        if not scores.size:
            return
        alert = scores >= self.threshold
        malicious, benign = codes == _MALICIOUS, codes == _BENIGN
        c = self.counts
        c["alerts"] += int(alert.sum())
        c["benign_alerts"] += int((alert & ~malicious).sum())
        c["tp"] += int((alert & malicious).sum())
        c["fp"] += int((alert & benign).sum())
        c["fn"] += int((~alert & malicious).sum())
        c["tn"] += int((~alert & benign).sum())
        c["unlabelled"] += int((codes == _UNLABELLED).sum())
        self.rows += scores.size
        self.lo, self.hi = min(self.lo, float(scores.min())), max(self.hi, float(scores.max()))
        n = len(self.files)
        paths = (self.folder / f"s{n:06d}.npy", self.folder / f"y{n:06d}.npy")
        np.save(paths[0], scores)
        np.save(paths[1], codes)
        self.files.append(paths)

    def close(self) -> None:
        self._tmp.cleanup()

    def finish(self) -> ScoreStats:
        """Walk the spilled scores from the highest down (see the module docstring); the spill is removed."""
        try:
            return self._walk()
        finally:
            self.close()

    # -- the walk ------------------------------------------------------------------------
    def _stats(self) -> ScoreStats:
        c = self.counts
        confusion = {k: c[k] for k in ("tp", "fp", "tn", "fn")}
        return ScoreStats(self.rows, c["alerts"], c["benign_alerts"], confusion, c["unlabelled"])

    def _bucket(self, scores: np.ndarray) -> np.ndarray:
        if self.hi <= self.lo:
            return np.zeros(scores.size, dtype=np.int64)
        b = ((scores - self.lo) * (_BUCKETS / (self.hi - self.lo))).astype(np.int64)
        return np.minimum(b, _BUCKETS - 1)

    def _ranges(self) -> list[tuple[int, int]]:
        """Bucket ranges [first, last] holding rows, highest first: at most ``MAX_RANGES`` of them, each at
        most ``group_rows`` rows (or 2 * rows / ``MAX_RANGES``, if more) unless one bucket holds more."""
        counts = np.zeros(_BUCKETS, dtype=np.int64)
        for s_path, _ in self.files:
            counts += np.bincount(self._bucket(np.load(s_path)), minlength=_BUCKETS)
        # greedy packing: two neighbouring ranges hold more than ``limit``, so 2 * rows / MAX_RANGES caps their number
        limit = max(self.group_rows, -(-2 * self.rows // MAX_RANGES))
        ranges, last, held = [], _BUCKETS - 1, 0
        for b in range(_BUCKETS - 1, -1, -1):
            if held and held + counts[b] > limit:
                ranges.append((b + 1, last))
                last, held = b, 0
            held += int(counts[b])
        ranges.append((0, last))
        return [r for r in ranges if counts[r[0] : r[1] + 1].any()]

    def _split(self, ranges: list[tuple[int, int]]) -> list[tuple[Path, Path]]:
        """One pass over the spill: every row to its range's pair of raw files (scores, labels); parts' files go."""
        firsts = np.array([first for first, _ in ranges][::-1])  # ascending
        paths = [(self.folder / f"r{i:03d}.f64", self.folder / f"r{i:03d}.i8") for i in range(len(ranges))]
        with contextlib.ExitStack() as stack:
            out = [(stack.enter_context(open(a, "wb")), stack.enter_context(open(b, "wb"))) for a, b in paths]
            for s_path, y_path in self.files:
                s, y = np.load(s_path), np.load(y_path)
                which = len(ranges) - np.searchsorted(firsts, self._bucket(s), side="right")
                order = np.argsort(which, kind="stable")
                ends = np.cumsum(np.bincount(which, minlength=len(ranges)))
                for i, (lo, hi) in enumerate(zip(np.r_[0, ends[:-1]], ends, strict=True)):
                    if hi > lo:
                        out[i][0].write(s[order[lo:hi]].tobytes())
                        out[i][1].write(y[order[lo:hi]].tobytes())
                s_path.unlink()
                y_path.unlink()
        self.files = []
        return paths

    @staticmethod
    def _read_range(paths: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
        """One range's scores, highest first, with their label codes (the files are removed)."""
        s, y = np.fromfile(paths[0], dtype=np.float64), np.fromfile(paths[1], dtype=np.int8)
        paths[0].unlink()
        paths[1].unlink()
        order = np.argsort(s, kind="stable")[::-1]
        return s[order], y[order]

    def _walk(self) -> ScoreStats:
        stats = self._stats()
        if not self.rows:
            return stats
        n, lo, hi = self.rows, self.lo, self.hi
        hist_edges = np.histogram_bin_edges(np.array([lo, hi]), bins=HISTOGRAM_BINS)
        p_lo, p_hi = min(lo, self.threshold), max(hi, self.threshold)
        plot_edges = np.linspace(p_lo, p_hi if p_hi > p_lo else p_lo + 1.0, PLOT_BINS + 1)
        hist = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        plot = {code: np.zeros(PLOT_BINS, dtype=np.int64) for code in (_BENIGN, _MALICIOUS, _UNLABELLED)}
        qs = np.array(list(QUANTILES.values()))
        previous, following, gamma = quantile_positions(n, qs)
        wanted = np.unique(np.concatenate([previous, following]))  # ascending ranks
        order_stats: dict[int, float] = {}
        curve = _Curve(stats.positives, stats.negatives)
        total, done = 0.0, 0  # rows walked so far (from the top)
        for paths in self._split(self._ranges()):
            s, y = self._read_range(paths)
            m = s.size
            # ascending rank r is descending index n - 1 - r
            here = wanted[(wanted >= n - done - m) & (wanted < n - done)]
            order_stats.update(zip(here.tolist(), s[n - 1 - done - here].tolist(), strict=True))
            total += float(np.sum(s))
            hist += np.histogram(s, bins=hist_edges)[0]
            for code, counts in plot.items():
                counts += np.histogram(s[y == code], bins=plot_edges)[0]
            labelled = y != _UNLABELLED
            curve.add(s[labelled], y[labelled] == _MALICIOUS)
            done += m
        at = lambda ranks: np.array([order_stats[int(r)] for r in ranks])  # noqa: E731
        stats.quantiles = dict(zip(QUANTILES, lerp(at(previous), at(following), gamma).tolist(), strict=True))
        stats.quantiles.update(min=lo, max=hi, mean=total / n)
        stats.histogram = {"edges": hist_edges.tolist(), "counts": hist.tolist()}
        names = {_BENIGN: "benign", _MALICIOUS: "attack", _UNLABELLED: "unlabelled"}
        stats.plot_edges = plot_edges
        stats.plot_counts = {names[code]: counts for code, counts in plot.items() if counts.any()}
        if stats.positives and stats.negatives:
            stats.pr_auc, stats.roc_auc, stats.recall_at_1pct_fpr = curve.ap, curve.auc, curve.recall_at_1pct
            stats.pr_points, stats.roc_points = curve.points()
        return stats


class _Curve:
    """Running PR and ROC sums over distinct scores, fed highest first, one value range at a time."""

    def __init__(self, positives: int, negatives: int) -> None:
        self.P, self.N = positives, negatives
        self.tp = self.fp = 0
        self.recall = self.fpr = self.tpr = 0.0
        self.ap = self.auc = 0.0
        self.recall_at_1pct = 0.0
        self._points: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._last_key: tuple[int, int, int] | None = None

    def add(self, scores: np.ndarray, malicious: np.ndarray) -> None:
        """Labelled rows of one value range, sorted by score, highest first."""
        if not scores.size or not self.P or not self.N:
            return
        ends = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # last row of each distinct score
        tps = self.tp + np.cumsum(malicious)[ends]
        fps = self.fp + np.cumsum(~malicious)[ends]
        recall, precision = tps / self.P, tps / (tps + fps)
        fpr, tpr = fps / self.N, recall
        self.ap += float(np.sum(np.diff(np.r_[self.recall, recall]) * precision))
        self.auc += float(
            np.sum(np.diff(np.r_[self.fpr, fpr]) * (np.r_[self.tpr, tpr][1:] + np.r_[self.tpr, tpr][:-1]) / 2)
        )
        within = fpr <= 0.01
        if within.any():
            self.recall_at_1pct = max(self.recall_at_1pct, float(tpr[within].max()))
        self._keep(recall, precision, fpr)
        self.tp, self.fp = int(tps[-1]), int(fps[-1])
        self.recall, self.fpr, self.tpr = float(recall[-1]), float(fpr[-1]), float(tpr[-1])

    def _keep(self, recall: np.ndarray, precision: np.ndarray, fpr: np.ndarray) -> None:
        """The first point of each step of recall, FPR and log FPR (about ``_CURVE_STEPS`` each), and the last."""
        with np.errstate(divide="ignore"):
            log_fpr = np.where(fpr > 0, np.floor(np.log10(np.maximum(fpr, 1e-300)) * (_CURVE_STEPS / 6)), -(2**40))
        keys = np.stack([np.floor(recall * _CURVE_STEPS), np.floor(fpr * _CURVE_STEPS), log_fpr]).astype(np.int64)
        change = np.r_[True, np.any(keys[:, 1:] != keys[:, :-1], axis=0)]
        if self._last_key is not None and tuple(keys[:, 0]) == self._last_key:
            change[0] = False
        change[-1] = True
        self._last_key = tuple(int(k) for k in keys[:, -1])  # type: ignore[assignment]
        self._points.append((recall[change], precision[change], fpr[change]))

    def points(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        recall, precision, fpr = (np.concatenate([p[i] for p in self._points]) for i in range(3))
        return (recall, precision), (np.r_[0.0, fpr], np.r_[0.0, recall])


def score_stats(scores: np.ndarray, y: np.ndarray, threshold: float, group_rows: int = GROUP_ROWS) -> ScoreStats:
    """``ScoreStats`` of rows held in memory, as one part."""
    spill = ScoreSpill(threshold, group_rows=group_rows)
    spill.add(scores, y)
    return spill.finish()
