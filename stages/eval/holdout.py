"""Score the holdout one silver part at a time, keeping only what the metrics and the report need.

A silver output is one features file or a directory of parts (``stages.common.silver_parts``);
a single file is one part through the same code. Per part, eval spills the holdout rows' scores
and labels to local disk (``curves``: walked in value ranges at the end), keeps integer counts
(attacks detected per type, PSI bins) and a bounded list of top alerts, so memory follows the
largest part, not the dataset. The train rows are read in
two passes for the exact PSI cut points (``drift``) and a fixed sample of them for the
alert explanations' baseline. Every merged quantity is exactly what one file holding the
same rows gives: integers add up, the sample picks the same rows, ties break the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stages.common.errors import InputError
from stages.common.silver_parts import SilverSet

from . import metrics as M
from .curves import ScoreSpill, ScoreStats
from .drift import PSI_DRIFT_THRESHOLD, HoldoutBins, TrainBins, drift_document, psi_values
from .inputs import EvalData, load_part, no_holdout, survey
from .report import explain, top_rows

__all__ = ["Holdout", "BASELINE_ROWS", "read_holdout", "in_memory"]

log = logging.getLogger(__name__)

BASELINE_ROWS = 100_000
"""Train rows sampled for the medians/IQRs of the top-alert explanations."""


@dataclass
class Holdout:
    """Everything eval measures, merged over the holdout parts."""

    features: list[str]
    stats: ScoreStats
    """Counts, areas, quantiles, histograms and curves of the holdout's scores."""
    by_attack: dict[str, dict[str, Any]]
    """``metrics.recall_by_attack`` of all rows."""
    ts_range: np.ndarray | None
    """The first and last known ``ts`` (empty when none is known), None without a ``ts`` column."""
    drift: dict[str, Any]
    top_alerts: list[dict[str, Any]]
    parts: int = 1

    @property
    def has_labels(self) -> bool:
        return self.stats.labelled > 0


@dataclass
class _Layout:
    """One part's rows on each side of the split (counted from its ``split`` column)."""

    key: str
    train: int
    holdout: int
    passthrough: list[str]
    train_at: int = 0
    """Train (holdout) rows in the parts before this one: where this part's rows start in the whole."""
    holdout_at: int = 0


def _layouts(silver: SilverSet) -> list[_Layout]:
    """Check every part's schema and count its rows before anything is scored (InputError names the part)."""
    features, out = silver.manifest.features, list[_Layout]()
    train_at = holdout_at = 0
    for part in silver.parts:
        passthrough, train, holdout = survey(part.features, features, part.features_uri)
        if part.key and (train, holdout) != (part.train_rows, part.holdout_rows):
            raise InputError(
                f"{part.features_uri}: {train} train and {holdout} holdout rows, but its manifest's split says "
                f"{part.train_rows} and {part.holdout_rows}; the part's files come from different silver runs — "
                f"re-run silver for part {part.key}"
            )
        if out and passthrough != out[0].passthrough:
            raise InputError(
                f"{part.features_uri}: passthrough columns {passthrough} differ from {silver.parts[0].features_uri}'s "
                f"{out[0].passthrough}; re-run silver for every partition with the same silver image and options"
            )
        out.append(_Layout(part.key, train, holdout, passthrough, train_at, holdout_at))
        train_at, holdout_at = train_at + train, holdout_at + holdout
    if not holdout_at:
        first = silver.parts[0].features_uri
        raise InputError(no_holdout(first) if len(out) == 1 else no_holdout(first.rsplit("/", 2)[0], len(out)))
    return out


class _Reader:
    """Loads one part at a time; the last one stays in memory, so a single file is read once."""

    def __init__(self, silver: SilverSet) -> None:
        self.parts = {p.key: p for p in silver.parts}
        self.features = silver.manifest.features
        self._key: str | None = None
        self._data: EvalData | None = None

    def __call__(self, layout: _Layout) -> EvalData:
        if self._data is None or self._key != layout.key:
            self._data = None  # free the previous part before reading the next one
            part = self.parts[layout.key]
            self._data = load_part(part.features, self.features, part.features_uri)
            self._key = layout.key
        return self._data

    def drop_train_rows(self) -> None:
        """The train rows of the part in memory are no longer needed: free them before scoring."""
        if self._data is not None:
            self._data.train_X = np.empty((0, len(self.features)), dtype=np.float32)


class _InMemory:
    """One part already in memory, as the reader gives it (its rows are the caller's: nothing is freed)."""

    def __init__(self, data: EvalData) -> None:
        self.data = data

    def __call__(self, layout: _Layout) -> EvalData:
        return self.data

    def drop_train_rows(self) -> None:
        pass


class _Sample:
    """The same ``BASELINE_ROWS`` rows as sampling all ``rows`` at once (seed 0), gathered part by part."""

    def __init__(self, rows: int, n_features: int, order: str) -> None:
        if rows > BASELINE_ROWS:
            self.pick = np.random.default_rng(0).choice(rows, BASELINE_ROWS, replace=False)
            self.X = np.empty((BASELINE_ROWS, n_features), dtype=np.float32)
        else:  # all rows, laid out like the matrix they come from (``order``), as a whole file would give them
            self.pick = np.arange(rows)
            self.X = np.empty((rows, n_features), dtype=np.float32, order=order)  # type: ignore[call-overload]
        self.order = np.argsort(self.pick)

    def add(self, X: np.ndarray, first_row: int) -> None:
        """Take the picked rows among global rows ``first_row`` .. ``first_row + len(X)``."""
        sorted_pick = self.pick[self.order]
        lo, hi = np.searchsorted(sorted_pick, [first_row, first_row + X.shape[0]])
        slots = self.order[lo:hi]
        self.X[slots] = X[self.pick[slots] - first_row]

    def baseline(self) -> tuple[np.ndarray, np.ndarray]:
        return M.robust_stats(self.X)


@dataclass
class _Merge:
    """The holdout parts' contributions, in part order."""

    features: list[str]
    threshold: float
    top_n: int
    spill: ScoreSpill
    attacks: dict[str, list[int]] = field(default_factory=dict)
    ts: list[np.datetime64] | None = None
    top: list[tuple[float, int, dict[str, Any], np.ndarray]] = field(default_factory=list)

    def add(self, data: EvalData, scores: np.ndarray, first_row: int) -> None:
        self.spill.add(scores, data.y)
        alerts = scores >= self.threshold
        for name, v in M.recall_by_attack(data.y, data.attack_type, alerts).items():
            counts = self.attacks.setdefault(name, [0, 0])
            counts[0], counts[1] = counts[0] + v["rows"], counts[1] + v["detected"]
        if data.ts is not None:
            known = data.ts[~np.isnat(data.ts)]
            self.ts = (self.ts or []) + ([known.min(), known.max()] if known.size else [])
        if self.top_n:
            idx = top_rows(scores, self.threshold, self.top_n)
            rows = data.holdout.take(idx).to_pylist() if idx.size else []
            self.top += [
                (float(scores[i]), first_row + int(i), row, data.holdout_X[i].copy())
                for i, row in zip(idx, rows, strict=True)
            ]
            self.top = sorted(self.top, key=lambda t: (-t[0], t[1]))[: self.top_n]

    def by_attack(self) -> dict[str, dict[str, Any]]:
        return {k: {"rows": r, "detected": d, "recall": d / r} for k, (r, d) in sorted(self.attacks.items())}

    def ts_range(self) -> np.ndarray | None:
        if self.ts is None:
            return None
        known = np.array(self.ts, dtype="datetime64[us]")
        return known[[known.argmin(), known.argmax()]] if known.size else known

    def alerts(self, baseline: tuple[np.ndarray, np.ndarray]) -> list[dict[str, Any]]:
        X = np.array([t[3] for t in self.top]).reshape(len(self.top), len(self.features))
        return explain([t[2] for t in self.top], X, np.array([t[0] for t in self.top]), self.features, baseline)


def read_holdout(
    silver: SilverSet, score: Callable[[str, EvalData], np.ndarray], threshold: float, top_n: int, bins: int = 10
) -> Holdout:
    """Measure the holdout of ``silver`` part by part: ``score(key, part)`` gives the scores of its holdout rows."""
    return _measure(_layouts(silver), _Reader(silver), score, silver.manifest.features, threshold, top_n, bins)


def in_memory(data: EvalData, scores: np.ndarray, threshold: float, top_n: int = 0, bins: int = 10) -> Holdout:
    """The ``Holdout`` of one part already in memory, with its holdout ``scores``."""
    layout = _Layout("", data.train_X.shape[0], data.holdout_X.shape[0], list(data.holdout.column_names))
    return _measure([layout], _InMemory(data), lambda _key, _data: scores, data.features, threshold, top_n, bins)


def _measure(
    layouts: list[_Layout],
    load: _Reader | _InMemory,
    score: Callable[[str, EvalData], np.ndarray],
    features: list[str],
    threshold: float,
    top_n: int,
    bins: int,
) -> Holdout:
    """Two passes over the train parts (PSI cut points, baseline sample), then one over the holdout parts."""
    train = [x for x in layouts if x.train]
    holdout = [x for x in layouts if x.holdout]
    n_train, n_holdout = sum(x.train for x in layouts), sum(x.holdout for x in layouts)
    log.info(
        "scoring holdout",
        extra={"holdout_rows": n_holdout, "train_rows": n_train, "features": len(features), "parts": len(layouts)},
    )
    train_bins = TrainBins(len(features), bins)
    sample = _Sample(n_train or n_holdout, len(features), "F" if n_train else "C")  # no train row: the holdout's
    for x in train:
        data = load(x)
        train_bins.count(data.train_X)
        sample.add(data.train_X, x.train_at)
    for x in reversed(train):  # the part read last is still in memory
        train_bins.refine(load(x).train_X)
    load.drop_train_rows()  # a single file's train rows: ~190 MB per 1M rows not held while scoring
    holdout_bins = HoldoutBins([cuts for cuts, _ in train_bins.shares()])
    merge = _Merge(features, threshold, top_n, ScoreSpill(threshold))
    try:
        for x in holdout:
            data = load(x)
            merge.add(data, score(x.key, data), x.holdout_at)
            holdout_bins.count(data.holdout_X)
            if not n_train:
                sample.add(data.holdout_X, x.holdout_at)
            if len(holdout) > 1:
                log.info("scored part %s", x.key, extra={"holdout_rows": x.holdout})
    except BaseException:
        merge.spill.close()
        raise
    return Holdout(
        features,
        merge.spill.finish(),
        merge.by_attack(),
        merge.ts_range(),
        drift_document(features, psi_values(train_bins, holdout_bins), PSI_DRIFT_THRESHOLD, bins),
        merge.alerts(sample.baseline()) if top_n else [],
        len(layouts),
    )
