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
  → 0.97 (65536, 50-100 trees), then flat (131072). 50 trees are the default: on the detection
  benchmark they match 100 on PR-AUC and calibrated recall (BENCHMARKS.md), and every scored
  flow costs half (the trees are most of the scoring stage's time).

HistGradientBoosting is the supervised option when labels exist.

The alert threshold (``calibrate``) stands on benign traffic whenever labels exist: it is a
quantile of scores of every benign train row that no tree (or model) scoring it was fitted
on, so an attack-heavy latest slice cannot push it onto attack rows. For the Isolation Forest
these are *out-of-bag* scores of the final forest (``oob_scores``: each row's path length
averaged over the trees that did not draw it); for HGB *out-of-fold* scores of five
time-blocked folds, each scored by a model fitted on the other four. Too few benign rows to
estimate the target FPR is refused (``min_benign_rows``). Without labels it is the
``alert_rate`` quantile of the latest rows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = [
    "IFOREST_FEATURES",
    "INDICATOR_PREFIXES",
    "FOLDS",
    "MIN_BEYOND_THRESHOLD",
    "OOB_MAX_SHARE",
    "Calibration",
    "build_hgb",
    "build_iforest",
    "calibrate",
    "iforest_columns",
    "min_benign_rows",
    "oob_scores",
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


FOLDS = 5
"""Time-blocked folds of the train split for HGB's out-of-fold calibration scores; the last block
is the latest 20% of the train rows (the validation rows the metrics and scoring reference use)."""
OOB_MAX_SHARE = 0.5
"""With labels, a forest tree draws at most this share of its fit rows, so every fit row is
out-of-bag for about half the trees or more (only small train splits reach the cap: at 1M
flows ``max_samples`` 65,536 is well under it)."""
MIN_BEYOND_THRESHOLD = 10
"""Benign rows that must score above a labelled threshold (see ``min_benign_rows``)."""


def min_benign_rows(target_fpr: float) -> int:
    """Benign rows needed to set a threshold at ``target_fpr``: ``ceil(10 / target_fpr)``.

    The threshold is the (1 - target_fpr) quantile of benign scores, so only about
    ``n * target_fpr`` rows decide where it lies. Their count is roughly Poisson, so the
    FPR the threshold delivers on new benign traffic is uncertain by about 1/sqrt(m) with m
    rows beyond it: ~30% at m = 10 (0.01 lands between ~0.007 and ~0.013), while with one
    or two rows the threshold is one benign outlier and the FPR can be off several-fold.
    At the default 0.01 that is 1,000 benign rows.
    """
    return max(MIN_BEYOND_THRESHOLD, math.ceil(MIN_BEYOND_THRESHOLD / target_fpr - 1e-9))


@dataclass(frozen=True)
class Calibration:
    """An alert threshold: flows with score >= threshold are alerts (eval's convention)."""

    threshold: float
    method: str  # "benign_fpr_oob" (iforest) | "benign_fpr_oof" (hgb) | "benign_fpr" | "alert_rate"
    target: float
    achieved: float
    rows: int
    """Rows whose scores set the threshold: the benign rows with labels, all rows without."""
    scores: str = "latest 20% of the train rows, scored by the model"
    """Where the scores the quantile is taken of come from (for the card)."""
    min_rows: int = 0
    """The fewest benign rows accepted for ``target`` (0: no minimum, the unlabelled path)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "target": self.target,
            "achieved": self.achieved,
            "rows": self.rows,
            "scores": self.scores,
            "min_rows": self.min_rows,
        }


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
    """Fit the model and calibrate its threshold; ``X`` rows are in time order.

    Every row given is used: the stage bounds them (``--max-train-rows``, a seeded sample
    read from the parts) before they reach memory, so there is no second cap here.

    ``labels`` is 0/1 with -1 for unknown, or None. Without labels: fit on the earliest
    part, the threshold is the ``alert_rate`` quantile of the model's scores on the latest
    ``validation_fraction`` of rows (``_train_unlabelled``). With labels: benign scores from
    trees that never saw the row (forest: out-of-bag; hgb: out-of-fold) set the threshold and
    the model is fitted on all train rows
    (``_train_labelled``). ValueError means unusable input (the CLI reports it as such).
    """
    n_val = int(round(len(X) * opts.validation_fraction))
    n_fit = len(X) - n_val
    if n_fit < 2 or n_val < 1:
        raise ValueError(f"{len(X)} train rows are too few to fit and calibrate (need at least 3)")
    has_labels = labels is not None and bool((labels >= 0).any())
    trained_on = _resolve_train_on(opts, has_labels)
    if has_labels and labels is not None:
        return _train_labelled(X, labels, features, opts, trained_on, n_fit)
    return _train_unlabelled(X, features, opts, trained_on, n_fit)


def _train_unlabelled(X: np.ndarray, features: list[str], opts: Options, trained_on: str, n_fit: int) -> Trained:
    """Fit on the earliest rows, threshold at the ``alert_rate`` quantile of the latest rows' scores.

    The model is *not* refitted on all rows afterwards: a refit draws new trees whose
    scores the calibrated threshold does not describe exactly, and without labels there
    is nothing to check the refit's alert rate against.
    """
    import time

    rows = np.arange(n_fit)
    started = time.monotonic()
    est, method, params = _fit(opts, features, X[rows], None)
    fit_seconds = time.monotonic() - started
    val_scores = _score(est, method, X[n_fit:])
    cal = calibrate(val_scores, None, opts.target_fpr, opts.alert_rate)
    metrics = validation_metrics(val_scores, None, cal.threshold)
    metrics.update(fit_rows=float(len(rows)), fit_seconds=round(fit_seconds, 3))
    params.update(
        seed=opts.seed,
        validation_fraction=opts.validation_fraction,
        fit_on=f"earliest {1 - opts.validation_fraction:.0%} of the train rows",
        validation_rows=len(X) - n_fit,
    )
    params["fit_pool_rows"] = n_fit
    ref = _reference(X[n_fit:], features, val_scores, opts.seed)
    return Trained(est, method, trained_on, len(rows), cal, metrics, params, ref)


OOF_ROWS_PER_FOLD = 400_000
"""Rows scored per fold at most (a seeded sample beyond): quantiles settle long before, and
scoring all of a 10M-row train split five times over would double the stage's time."""


def _score(est: Any, method: str, X: np.ndarray) -> np.ndarray:
    """Scores as eval and score compute them (one path: ``model_io.score_rows``), so the threshold fits them."""
    from stages.common.model_io import score_rows

    return np.asarray(score_rows(est, X, method))


def _too_few_benign(benign: int, opts: Options, need: int) -> str:
    feasible = MIN_BEYOND_THRESHOLD / benign if benign else None
    raise_fpr = f"raise --target-fpr to at least {feasible:.3g}, or " if feasible is not None and feasible < 1 else ""
    return (
        f"only {benign} benign rows in the train split: too few to set the threshold at --target-fpr "
        f"{opts.target_fpr:g} (need at least {need}, so that ~{MIN_BEYOND_THRESHOLD} benign rows score above "
        f"it); {raise_fpr}add benign traffic to the training data (a longer period or a benign capture)"
    )


def _train_labelled(
    X: np.ndarray, labels: np.ndarray, features: list[str], opts: Options, trained_on: str, n_fit: int
) -> Trained:
    """Threshold from unseen scores of every benign train row; the model fitted on all train rows.

    Isolation Forest: the final forest's *out-of-bag* scores (``oob_scores``): every tree
    draws ``max_samples`` of the fit rows (at most ``OOB_MAX_SHARE`` of them), and each train
    row is scored by the trees that did not draw it, on the scale of the forest's own scores.
    HGB: ``FOLDS`` time blocks (the last one is the latest ``validation_fraction``), each
    scored by a model fitted on the other blocks' rows, then a refit on everything.
    The threshold is the (1 - target_fpr) quantile of the benign rows' scores. ``val_*``
    metrics and the scoring reference are the latest ``validation_fraction`` rows' unseen
    scores; ``oob_*`` (iforest) or ``oof_*`` (hgb) metrics cover all scored train rows.
    """
    import time

    benign = int((labels == 0).sum())
    need = min_benign_rows(opts.target_fpr)
    if benign < need:
        raise ValueError(_too_few_benign(benign, opts, need))
    if trained_on == "benign":
        keep = labels == 0
    elif opts.model == "hgb":
        keep = labels >= 0
    else:
        keep = np.ones(len(X), dtype=bool)
    rows = np.flatnonzero(keep)
    extra: dict[str, Any] = {}
    if opts.model == "hgb":
        idx, unseen, folds_seconds = _out_of_fold(X, labels, features, opts, keep, n_fit)
        kind, prefix, how = (
            "out-of-fold",
            "oof",
            f"out-of-fold scores of the benign train rows, {FOLDS} time-blocked folds",
        )
        extra["calibration_folds"] = FOLDS
        fit_opts = opts
    else:
        if len(rows) < 2:
            raise ValueError(f"only {len(rows)} {trained_on} train rows to fit the forest on")
        fit_opts = replace(opts, max_samples=min(opts.max_samples, max(2, int(len(rows) * OOB_MAX_SHARE))))
    started = time.monotonic()
    est, method, params = _fit(fit_opts, features, X[rows], labels[rows])
    fit_seconds = time.monotonic() - started
    if opts.model == "hgb":
        timing = {"folds_seconds": round(folds_seconds, 3)}
    else:
        started = time.monotonic()
        idx = _scored_rows(len(X), opts.seed)
        # every row scored (the usual case): X itself, not a copy of it (~0.5 GB at 2M rows)
        unseen, trees = oob_scores(est, X if len(idx) == len(X) else X[idx], idx, rows)
        timing = {"oob_seconds": round(time.monotonic() - started, 3)}
        kind, prefix = "out-of-bag", "oob"
        forest = est.named_steps["iforest"]
        how = (
            f"out-of-bag scores of the benign train rows: each row's path length averaged over the trees "
            f"of the final forest that did not draw it ({len(forest.estimators_)} trees of "
            f"{forest.max_samples_} rows drawn from {len(rows)})"
        )
        benign_trees = trees[labels[idx] == 0]
        timing.update(oob_trees_min=float(benign_trees.min()), oob_trees_mean=round(float(benign_trees.mean()), 2))
        extra["calibration_scores"] = "out-of-bag"
        if (trees == 0).any():
            log.warning("%d train rows were drawn by every tree: scored by all trees", int((trees == 0).sum()))
    cal = calibrate(unseen, labels[idx], opts.target_fpr, opts.alert_rate)
    cal = replace(cal, method=f"benign_fpr_{prefix}", scores=how, min_rows=need)
    last = idx >= n_fit
    metrics = validation_metrics(unseen[last], labels[idx[last]], cal.threshold)
    everything = validation_metrics(unseen, labels[idx], cal.threshold)
    metrics.update({f"{prefix}_{k[4:]}": v for k, v in everything.items()})
    metrics.update(fit_rows=float(len(rows)), fit_seconds=round(fit_seconds, 3), **timing)
    params.update(
        seed=opts.seed,
        validation_fraction=opts.validation_fraction,
        fit_on="all train rows" + (" (benign)" if trained_on == "benign" else ""),
        validation_rows=len(X) - n_fit,
        **extra,
    )
    params["fit_pool_rows"] = int(keep.sum())
    ref = _reference(X[idx[last]], features, unseen[last], opts.seed)
    log.info("threshold %.5f from %d benign %s scores (at least %d needed)", cal.threshold, cal.rows, kind, need)
    return Trained(est, method, trained_on, len(rows), cal, metrics, params, ref)


def _out_of_fold(
    X: np.ndarray, labels: np.ndarray, features: list[str], opts: Options, keep: np.ndarray, n_fit: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """HGB: (scored row indexes, their out-of-fold scores, seconds) over ``FOLDS`` time blocks."""
    import time

    edges = [*np.linspace(0, n_fit, FOLDS).round().astype(int).tolist(), len(X)]
    blocks = [(edges[k], edges[k + 1]) for k in range(FOLDS)]
    pool = min(int(keep.sum() - keep[a:b].sum()) for a, b in blocks)
    if pool < 2:
        raise ValueError(f"only {pool} train rows outside one of the {FOLDS} time blocks to fit on")
    rng = np.random.default_rng(opts.seed)
    scored: list[np.ndarray] = []
    oof: list[np.ndarray] = []
    started = time.monotonic()
    for k, (a, b) in enumerate(blocks):
        outside = keep.copy()
        outside[a:b] = False
        rows = np.flatnonzero(outside)
        try:
            est, method, _ = _fit(opts, features, X[rows], labels[rows])
        except ValueError as exc:
            raise ValueError(f"fitting without train rows {a}-{b - 1} (fold {k + 1} of {FOLDS}): {exc}") from exc
        block = np.arange(a, b)
        if len(block) > OOF_ROWS_PER_FOLD:
            block = np.sort(rng.choice(block, OOF_ROWS_PER_FOLD, replace=False))
        scored.append(block)
        oof.append(_score(est, method, X[block]))
        del est
    return np.concatenate(scored), np.concatenate(oof), time.monotonic() - started


OOB_CHUNK_ROWS = 65_536
"""Rows ``oob_scores`` runs through every tree at a time (and per thread)."""
OOB_ROWS = 250_000
"""Train rows given out-of-bag scores at most (a seeded sample beyond). Scoring is most of the
calibration's time, and the 1% quantile settles long before: on 1M synthetic flows (686k benign
train rows), thresholds from five seeded 250k samples gave a benign FPR of 0.998-1.035% over all
686k rows' out-of-bag scores, for 2.4 s instead of 4.9 s."""


def _scored_rows(n: int, seed: int) -> np.ndarray:
    if n <= OOB_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed + 1).choice(n, OOB_ROWS, replace=False))


def oob_scores(
    estimator: Any, X: np.ndarray, scored: np.ndarray, fit_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-bag anomaly scores of the rows ``scored`` (``X`` holds them) and the trees behind each.

    ``estimator`` is ``build_iforest``'s Pipeline fitted on the rows ``fit_rows``; both index
    arrays are increasing positions in the same train split. Tree ``t`` drew the fit rows
    ``estimators_samples_[t]``; a row it did not draw (or never passed to fit) is out of its
    bag. The score is the forest's own (``model_io.anomaly_scores``, IsolationForest's
    ``_compute_score_samples``): ``2 ** -(mean path length / c(max_samples))`` with the mean
    over that row's out-of-bag trees, so over a set of trees it equals the score of a forest
    of just those trees. Rule for a row drawn by every tree (chance 0.5**n_estimators at most
    with ``OOB_MAX_SHARE``): it gets the score over all trees, and 0 in the returned counts.
    """
    from concurrent.futures import ThreadPoolExecutor

    from sklearn.ensemble._iforest import _average_path_length

    forest = estimator[-1]
    Xt = np.ascontiguousarray(estimator[:-1].transform(X), dtype=np.float32)  # score_samples' dtype
    n, trees = len(scored), len(forest.estimators_)
    subsample = forest._max_features != Xt.shape[1]
    position = np.full(max(scored[-1], fit_rows[-1]) + 1, -1)  # train row -> its position in ``scored``
    position[scored] = np.arange(n)
    in_bag: list[np.ndarray] = []  # per tree: the sorted positions (in ``scored``) it drew
    for bag in forest.estimators_samples_:
        drawn = position[fit_rows[bag]]
        in_bag.append(np.sort(drawn[drawn >= 0]))
    count = trees - np.bincount(np.concatenate(in_bag), minlength=n) if in_bag else np.zeros(n, dtype=np.int64)
    oob_sum = np.zeros(n)

    def chunk(start: int) -> None:
        """Rows ``start`` to ``start + OOB_CHUNK_ROWS``, every tree in order: the chunk stays in cache."""
        stop = min(start + OOB_CHUNK_ROWS, n)
        Xc = Xt[start:stop]
        for t in range(trees):
            leaves = forest.estimators_[t].apply(
                Xc[:, forest.estimators_features_[t]] if subsample else Xc, check_input=False
            )
            depth = forest._decision_path_lengths[t][leaves] + forest._average_path_length_per_tree[t][leaves] - 1.0
            bag = in_bag[t]
            depth[bag[np.searchsorted(bag, start) : np.searchsorted(bag, stop)] - start] = 0.0
            oob_sum[start:stop] += depth

    with ThreadPoolExecutor(2) as pool:  # tree.apply releases the GIL; chunks write disjoint rows
        list(pool.map(chunk, range(0, n, OOB_CHUNK_ROWS)))
    denominator = count * _average_path_length([forest.max_samples_])[0]
    scores = 2 ** -np.divide(oob_sum, denominator, out=np.ones(n), where=denominator != 0)
    none = np.flatnonzero(count == 0)
    if len(none):
        scores[none] = _score(estimator, "neg_score_samples", X[none])
    return scores, count


REFERENCE_ROWS = 200_000
"""Validation rows the scoring reference is computed on at most (deciles settle long before)."""


def _reference(X_val: np.ndarray, features: list[str], scores: np.ndarray, seed: int) -> dict[str, Any]:
    from .reference import reference

    if len(X_val) > REFERENCE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(X_val), REFERENCE_ROWS, replace=False))
        X_val, scores = X_val[rows], scores[rows]
    return reference(X_val, features, scores)
