"""Model building, threshold calibration and validation metrics — pure functions on arrays.

Isolation Forest (default) is unsupervised; it scores how easily a flow is isolated from
the benign traffic it was fitted on. Two choices matter most, both measured on held-out
synthetic traffic (see benchmarks/detection/RESULTS.md):

* the features it sees: one axis per independent signal (five raw magnitudes and the
  time-window context). 0/1 indicator columns (proto, service, state, history, port
  class) let it isolate rare-but-benign categories cheaply, and derived volume ratios
  re-weight the heavy-tailed volume axes; both push benign flows above real attacks.
  The selection happens inside the Pipeline, so the model's input is always the full
  manifest feature list and callers never need to know the subset.
* the subsample per tree: a large ``max_samples`` lets every tree see the benign tails,
  so only flows beyond them isolate quickly. On 1M synthetic flows (2% attacks, two
  generator seeds) holdout PR-AUC went 0.48-0.74 (256) → 0.89-0.93 (16384, 200 trees)
  → 0.97 (65536, 50-100 trees), then flat (131072); 100 trees of 65536 fit in ~6 CPU s.

HistGradientBoosting is the supervised option when labels exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "IFOREST_FEATURES",
    "INDICATOR_PREFIXES",
    "Calibration",
    "build_hgb",
    "build_iforest",
    "calibrate",
    "iforest_columns",
    "validation_metrics",
]

IFOREST_FEATURES = (
    # per flow: the raw magnitudes, log-scaled (ratios and per-packet sizes are functions of these)
    "log_duration",
    "log_src_bytes",
    "log_dst_bytes",
    "log_src_pkts",
    "log_dst_pkts",
    # per source (scans, brute force), per pair (vertical scans, beacons), per destination (floods)
    *(f"src_conns_{w}" for w in ("1m", "10m")),
    *(f"src_distinct_dst_{w}" for w in ("1m", "10m")),
    *(f"src_distinct_port_{w}" for w in ("1m", "10m")),
    *(f"src_failed_share_{w}" for w in ("1m", "10m")),
    *(f"pair_conns_{w}" for w in ("1m", "10m")),
    *(f"pair_distinct_port_{w}" for w in ("1m", "10m")),
    "pair_bytes_asym_10m",
    "pair_regularity_1h",
    *(f"dst_distinct_src_{w}" for w in ("1m", "10m")),
    "dst_conns_1m",
    "dst_failed_share_1m",
)
"""Features the Isolation Forest uses when the manifest has them (in manifest order)."""
log = logging.getLogger(__name__)

INDICATOR_PREFIXES = ("proto_", "service_", "cs_", "hist_", "port_")
MIN_IFOREST_FEATURES = 3


def iforest_columns(features: list[str]) -> list[int]:
    """Positions (in ``features``) the Isolation Forest uses.

    The curated set when at least ``MIN_IFOREST_FEATURES`` of it exist; otherwise (a
    format with few fields) every non-indicator feature; otherwise everything.
    """
    chosen = [i for i, f in enumerate(features) if f in IFOREST_FEATURES]
    if len(chosen) >= MIN_IFOREST_FEATURES:
        return chosen
    chosen = [i for i, f in enumerate(features) if not f.startswith(INDICATOR_PREFIXES)]
    return chosen if chosen else list(range(len(features)))


def build_iforest(features: list[str], n_estimators: int, max_samples: int, seed: int, fit_rows: int) -> Any:
    """Pipeline: pick the IF columns → RobustScaler → IsolationForest (2 cores)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import RobustScaler

    select = ColumnTransformer([("iforest", "passthrough", iforest_columns(features))], remainder="drop")
    forest = IsolationForest(
        n_estimators=n_estimators,
        max_samples=max(2, min(max_samples, fit_rows)),
        random_state=seed,
        n_jobs=2,
    )
    return Pipeline([("select", select), ("scale", RobustScaler()), ("iforest", forest)])


def build_hgb(seed: int) -> Any:
    """HistGradientBoosting with balanced class weights (attacks are a few percent of rows)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.1,
        class_weight="balanced",
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=20,
        random_state=seed,
    )


@dataclass(frozen=True)
class Calibration:
    """An alert threshold: flows with score >= threshold are alerts (eval's convention)."""

    threshold: float
    method: str  # "benign_fpr" | "alert_rate"
    target: float
    achieved: float
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "target": self.target, "achieved": self.achieved, "rows": self.rows}


def calibrate(scores: np.ndarray, labels: np.ndarray | None, target_fpr: float, alert_rate: float) -> Calibration:
    """Threshold at the score quantile that spends the alert budget on validation rows.

    With labels: the (1 - target_fpr) quantile of benign validation scores, so about
    ``target_fpr`` of benign flows alert. Without: the (1 - alert_rate) quantile of all
    validation scores. ``achieved`` is the share at or above the threshold; the
    threshold is nudged past ties so it never overspends (it can be a little lower).
    """
    if labels is not None:
        pool, method, target = scores[labels == 0], "benign_fpr", target_fpr
    else:
        pool, method, target = scores, "alert_rate", alert_rate
    if len(pool) == 0:
        raise ValueError(f"no validation rows to calibrate the threshold on ({method})")
    threshold = float(np.quantile(pool, 1.0 - target, method="higher"))
    if np.mean(pool >= threshold) > target:  # the quantile row itself (and ties) would overspend
        threshold = float(np.nextafter(threshold, np.inf))
    achieved = float(np.mean(pool >= threshold))
    return Calibration(threshold, method, target, achieved, int(len(pool)))


def validation_metrics(scores: np.ndarray, labels: np.ndarray | None, threshold: float) -> dict[str, float]:
    """Alert rate always; with both classes present also FPR, recall, precision, PR-AUC, ROC-AUC."""
    alerts = scores >= threshold
    out = {"val_rows": float(len(scores)), "val_alert_rate": float(alerts.mean()) if len(scores) else 0.0}
    if labels is None:
        return out
    benign, attack = labels == 0, labels == 1
    if benign.any():
        out["val_fpr"] = float(alerts[benign].mean())
    if attack.any():
        out["val_recall"] = float(alerts[attack].mean())
        out["val_precision"] = float(attack[alerts].mean()) if alerts.any() else 0.0
    if benign.any() and attack.any():
        from sklearn.metrics import average_precision_score, roc_auc_score

        out["val_pr_auc"] = float(average_precision_score(attack, scores))
        out["val_roc_auc"] = float(roc_auc_score(attack, scores))
    return out


@dataclass(frozen=True)
class Options:
    model: str  # "iforest" | "hgb"
    train_on: str  # "auto" | "all" | "benign"
    n_estimators: int
    max_samples: int
    target_fpr: float
    alert_rate: float
    seed: int
    validation_fraction: float = 0.2


@dataclass
class Trained:
    estimator: Any
    score_method: str
    trained_on: str
    fit_rows: int
    calibration: Calibration
    metrics: dict[str, float]
    params: dict[str, Any]
    reference: dict[str, Any] = field(default_factory=dict)
    """What scoring compares new traffic with (``reference.reference``); goes into the card."""


def _resolve_train_on(opts: Options, has_labels: bool) -> str:
    if opts.model == "hgb":
        if not has_labels:
            raise ValueError("--model hgb is supervised and needs labels, and the features have none; use iforest")
        if opts.train_on == "benign":
            raise ValueError("--train-on benign cannot train the supervised hgb model (it needs both classes)")
        return "all"
    if opts.train_on == "benign" and not has_labels:
        raise ValueError("--train-on benign needs labels, and the features have none (use auto or all)")
    if opts.train_on == "auto":
        return "benign" if has_labels else "all"
    return opts.train_on


MAX_FIT_ROWS = 2_000_000
"""Rows a model is fitted on at most: a forest draws only max_samples rows per tree and the
scaler's quantiles are settled long before; capping keeps 10M-row inputs at ~3 GB."""


def _fit_rows(candidates: np.ndarray, seed: int) -> np.ndarray:
    """``candidates`` (row indexes, increasing), or a seeded random subset of MAX_FIT_ROWS in order."""
    if len(candidates) <= MAX_FIT_ROWS:
        return candidates
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, MAX_FIT_ROWS, replace=False))


def _fit(opts: Options, features: list[str], X_fit: np.ndarray, y_fit: np.ndarray | None) -> tuple[Any, str, dict]:
    """Fit the chosen model; returns (estimator, score method, model params for the card)."""
    if opts.model == "hgb":
        assert y_fit is not None
        if len(np.unique(y_fit)) < 2:
            raise ValueError("the hgb model needs labelled benign and malicious rows in the train split")
        est = build_hgb(opts.seed).fit(X_fit, y_fit)
        return est, "predict_proba", {"n_iter": int(est.n_iter_), "class_weight": "balanced"}
    est = build_iforest(features, opts.n_estimators, opts.max_samples, opts.seed, len(X_fit)).fit(X_fit)
    params = {
        "n_estimators": opts.n_estimators,
        "max_samples": int(est.named_steps["iforest"].max_samples_),
        "model_features": [features[i] for i in iforest_columns(features)],
    }
    return est, "neg_score_samples", params


def train(X: np.ndarray, labels: np.ndarray | None, features: list[str], opts: Options) -> Trained:
    """Fit on the earliest part of the train rows, calibrate on the latest part.

    ``X`` rows are in time order; ``labels`` is 0/1 with -1 for unknown, or None. The last
    ``validation_fraction`` of rows (by time) never reach the model: the threshold is a
    quantile of the model's scores on them. The model is *not* refitted on all rows
    afterwards — a refit draws new trees (or boosting rounds) whose scores the
    calibrated threshold does not describe; the 20% it gives up matters little to a
    subsampling forest. ValueError means unusable input (the CLI reports it as such).
    """
    import time

    n_val = int(round(len(X) * opts.validation_fraction))
    n_fit = len(X) - n_val
    if n_fit < 2 or n_val < 1:
        raise ValueError(f"{len(X)} train rows are too few to fit and calibrate (need at least 3)")
    has_labels = labels is not None and bool((labels >= 0).any())
    trained_on = _resolve_train_on(opts, has_labels)
    y_fit = labels[:n_fit] if labels is not None else None
    keep = np.ones(n_fit, dtype=bool)
    if trained_on == "benign" or opts.model == "hgb":
        assert y_fit is not None
        keep = y_fit == 0 if trained_on == "benign" else y_fit >= 0
    rows = _fit_rows(np.flatnonzero(keep), opts.seed)
    if len(rows) < 2:
        hint = " (try --train-on all)" if trained_on == "benign" else ""
        raise ValueError(f"only {len(rows)} {trained_on} rows in the fitting part of the train split{hint}")
    started = time.monotonic()
    est, method, params = _fit(opts, features, X[rows], y_fit[rows] if y_fit is not None else None)
    fit_seconds = time.monotonic() - started
    val_scores = -est.score_samples(X[n_fit:]) if method == "neg_score_samples" else est.predict_proba(X[n_fit:])[:, 1]
    y_val = labels[n_fit:] if has_labels and labels is not None else None
    if y_val is not None and not (y_val == 0).any():
        log.warning("no benign rows among the %d validation rows: threshold set by --alert-rate instead", n_val)
        cal = calibrate(val_scores, None, opts.target_fpr, opts.alert_rate)
    else:
        cal = calibrate(val_scores, y_val, opts.target_fpr, opts.alert_rate)
    metrics = validation_metrics(val_scores, y_val, cal.threshold)
    metrics.update(fit_rows=float(len(rows)), fit_seconds=round(fit_seconds, 3))
    params.update(
        seed=opts.seed,
        validation_fraction=opts.validation_fraction,
        fit_on=f"earliest {1 - opts.validation_fraction:.0%} of the train rows",
        validation_rows=n_val,
    )
    params["fit_pool_rows"] = int(keep.sum())
    ref = _reference(X[n_fit:], features, val_scores, opts.seed)
    return Trained(est, method, trained_on, len(rows), cal, metrics, params, ref)


REFERENCE_ROWS = 200_000
"""Validation rows the scoring reference is computed on at most (deciles settle long before)."""


def _reference(X_val: np.ndarray, features: list[str], scores: np.ndarray, seed: int) -> dict[str, Any]:
    from .reference import reference

    if len(X_val) > REFERENCE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(X_val), REFERENCE_ROWS, replace=False))
        X_val, scores = X_val[rows], scores[rows]
    return reference(X_val, features, scores)
