"""Pure training logic: calibration, train-on resolution, IF column choice, benign-only fitting."""

from __future__ import annotations

import numpy as np
import pytest

from stages.train import models
from stages.train.models import Options


@pytest.mark.parametrize(
    ("scores", "labels", "target", "threshold", "achieved", "method"),
    [
        (np.arange(100.0), np.zeros(100), 0.05, 95.0, 0.05, "benign_fpr"),
        (np.arange(100.0), np.zeros(100), 0.01, 99.0, 0.01, "benign_fpr"),
        # attack rows (label 1) and unknown (-1) do not count towards the benign budget
        (
            np.r_[np.arange(100.0), [500.0] * 50],
            np.r_[np.zeros(100), np.ones(40), -np.ones(10)],
            0.05,
            95.0,
            0.05,
            "benign_fpr",
        ),
        (np.arange(200.0), None, 0.1, 180.0, 0.1, "alert_rate"),
        (np.ones(50), np.zeros(50), 0.01, np.nextafter(1.0, 2.0), 0.0, "benign_fpr"),  # ties never overspend
    ],
)
def test_calibrate(
    scores: np.ndarray, labels: np.ndarray | None, target: float, threshold: float, achieved: float, method: str
) -> None:
    cal = models.calibrate(scores, labels, target, target)
    assert (cal.threshold, cal.achieved, cal.method, cal.target) == (threshold, pytest.approx(achieved), method, target)
    pool = scores if labels is None else scores[labels == 0]
    assert cal.rows == len(pool) and np.mean(pool >= cal.threshold) <= target


@pytest.mark.parametrize(
    ("model", "train_on", "has_labels", "expected"),
    [
        ("iforest", "auto", True, "benign"),
        ("iforest", "auto", False, "all"),
        ("iforest", "all", True, "all"),
        ("iforest", "benign", True, "benign"),
        ("iforest", "benign", False, "needs labels"),
        ("hgb", "auto", True, "all"),
        ("hgb", "benign", True, "needs both classes"),
        ("hgb", "auto", False, "supervised and needs labels"),
    ],
)
def test_train_on(model: str, train_on: str, has_labels: bool, expected: str) -> None:
    opts = Options(model, train_on, 10, 256, 0.01, 0.01, 0)
    if expected in ("benign", "all"):
        assert models._resolve_train_on(opts, has_labels) == expected
    else:
        with pytest.raises(ValueError, match=expected):
            models._resolve_train_on(opts, has_labels)


@pytest.mark.parametrize(
    ("features", "chosen"),
    [
        (["log_src_bytes", "proto_tcp", "src_conns_1m", "bytes_asym", "pair_regularity_1h"], [0, 2, 4]),
        (["log_src_bytes", "proto_tcp", "bytes_asym", "cs_failed"], [0, 2]),  # too few curated: non-indicators
        (["proto_tcp", "cs_failed"], [0, 1]),  # only indicators: all of them
    ],
)
def test_iforest_columns(features: list[str], chosen: list[int]) -> None:
    assert models.iforest_columns(features) == chosen


def _data(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    features = ["log_src_bytes", "log_dst_bytes", "src_conns_1m", "pair_conns_1m", "proto_tcp"]
    X = rng.normal(0, 1, (n, len(features))).astype(np.float32)
    labels = (rng.random(n) < 0.05).astype(np.int8)
    X[labels == 1, 2:4] += 6  # attacks: many connections from one source to one destination
    return X, labels, features


def test_benign_only_fit_uses_every_benign_train_row_and_out_of_bag_calibration() -> None:
    X, labels, features = _data()
    trained = models.train(X, labels, features, Options("iforest", "auto", 20, 100_000, 0.02, 0.02, 1))
    benign = int((labels == 0).sum())
    assert trained.trained_on == "benign"
    assert trained.fit_rows == benign  # the one model: all benign train rows
    # each tree draws at most half of them, so every row is out of the bag of about half the trees
    assert trained.estimator.named_steps["iforest"].max_samples_ == int(benign * models.OOB_MAX_SHARE)
    assert 1 <= trained.metrics["oob_trees_min"] <= trained.metrics["oob_trees_mean"] < 20
    assert trained.params["model_features"] == features[:4] and trained.params["calibration_scores"] == "out-of-bag"
    cal = trained.calibration
    assert (cal.method, cal.rows, cal.min_rows) == ("benign_fpr_oob", benign, 500)
    assert cal.achieved <= 0.02 and trained.metrics["oob_fpr"] == cal.achieved
    assert trained.metrics["val_recall"] > 0.8 and trained.metrics["val_roc_auc"] > 0.9
    assert trained.metrics["oob_recall"] > 0.8 and trained.metrics["val_rows"] == 400
    assert "oof_fpr" not in trained.metrics and "calibration_folds" not in trained.params


def _sub_forest(estimator: object, trees: list[int]) -> object:
    """A copy of the fitted Pipeline whose forest keeps only ``trees`` (sklearn's per-tree lists)."""
    import copy

    sub = copy.deepcopy(estimator)
    forest = sub[-1]  # type: ignore[index]
    for name in ("estimators_", "estimators_features_", "_decision_path_lengths", "_average_path_length_per_tree"):
        setattr(forest, name, [getattr(forest, name)[t] for t in trees])
    return sub


def test_oob_scores_are_the_forest_score_over_the_trees_that_did_not_draw_the_row() -> None:
    from stages.common.model_io import anomaly_scores, score_rows

    X, _, features = _data(3000, seed=5)
    X = X.astype(np.float64)
    fit_rows = np.arange(0, 3000, 2)  # odd rows are never passed to fit: out of every bag
    est = models.build_iforest(features, 25, 400, 3, len(fit_rows)).fit(X[fit_rows])
    scored = np.arange(3000)
    oob, trees = models.oob_scores(est, X, scored, fit_rows)
    full = score_rows(est, X, "neg_score_samples")
    odd = scored % 2 == 1
    assert (trees[odd] == 25).all()
    np.testing.assert_allclose(oob[odd], full[odd], rtol=0, atol=1e-12)
    # a row drawn by some trees: the score of a forest made of exactly the others
    bags = [set(b.tolist()) for b in est[-1].estimators_samples_]
    checked = 0
    for position in range(0, 1500, 97):
        others = [t for t, bag in enumerate(bags) if position not in bag]
        if 0 < len(others) < 25:
            row = fit_rows[position]
            assert trees[row] == len(others)
            alone = anomaly_scores(_sub_forest(est, others), X[row : row + 1], "neg_score_samples")[0]
            assert abs(oob[row] - alone) <= 1e-12
            checked += 1
    assert checked >= 10
    # only a subset of rows scored (the sampled path): same scores for the same rows
    some = np.sort(np.random.default_rng(0).choice(3000, 500, replace=False))
    oob_some, trees_some = models.oob_scores(est, X[some], some, fit_rows)
    np.testing.assert_allclose(oob_some, oob[some], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(trees_some, trees[some])


def test_rows_drawn_by_every_tree_get_the_score_over_all_trees() -> None:
    from stages.common.model_io import score_rows

    X, _, features = _data(600, seed=6)
    est = models.build_iforest(features, 10, 10_000, 3, 600).fit(X)  # max_samples = every row
    oob, trees = models.oob_scores(est, X, np.arange(600), np.arange(600))
    assert (trees == 0).all()
    np.testing.assert_allclose(oob, score_rows(est, X, "neg_score_samples"), rtol=0, atol=1e-12)


def test_fit_on_all_rows_without_labels_uses_alert_rate() -> None:
    X, _, features = _data()
    trained = models.train(X, None, features, Options("iforest", "auto", 20, 256, 0.02, 0.05, 1))
    assert (trained.trained_on, trained.fit_rows, trained.calibration.method) == ("all", 1600, "alert_rate")
    assert trained.metrics["val_alert_rate"] == pytest.approx(0.05, abs=1 / 400)
    assert "val_recall" not in trained.metrics


def test_hgb_needs_both_classes() -> None:
    X, labels, features = _data()
    trained = models.train(X, labels, features, Options("hgb", "auto", 0, 0, 0.01, 0.01, 1))
    assert trained.score_method == "predict_proba" and trained.metrics["val_pr_auc"] > 0.9
    # supervised too: the threshold stands on every benign row's out-of-fold score, the model on all rows
    assert (trained.calibration.method, trained.calibration.rows) == ("benign_fpr_oof", int((labels == 0).sum()))
    assert trained.fit_rows == len(X) and trained.metrics["oof_fpr"] == trained.calibration.achieved <= 0.01
    with pytest.raises(ValueError, match="benign and malicious"):
        models.train(X, np.zeros_like(labels), features, Options("hgb", "auto", 0, 0, 0.01, 0.01, 1))


def test_too_few_rows() -> None:
    X, labels, features = _data(2)
    with pytest.raises(ValueError, match="too few"):
        models.train(X, labels, features, Options("iforest", "auto", 5, 256, 0.01, 0.01, 1))


def test_validation_without_benign_rows_still_calibrates_on_benign_rows() -> None:
    X, labels, features = _data()
    labels[-400:] = 1  # the latest rows (validation) are all attacks, as in some IoT-23 captures
    trained = models.train(X, labels, features, Options("iforest", "auto", 20, 256, 0.01, 0.05, 1))
    cal = trained.calibration
    assert trained.trained_on == "benign"
    assert (cal.method, cal.target, cal.rows) == ("benign_fpr_oob", 0.01, int((labels == 0).sum()))
    assert 0.005 <= trained.metrics["oob_fpr"] == cal.achieved <= 0.01
    assert "val_fpr" not in trained.metrics and trained.metrics["val_recall"] < 0.5  # plain noise labelled 1


@pytest.mark.parametrize(
    ("target", "rows"), [(0.01, 1000), (0.05, 200), (0.001, 10_000), (0.03, 334), (0.5, 20), (0.99, 11)]
)
def test_min_benign_rows_leave_ten_beyond_the_threshold(target: float, rows: int) -> None:
    assert models.min_benign_rows(target) == rows
    assert rows * target >= models.MIN_BEYOND_THRESHOLD > (rows - 1) * target


def test_attack_majority_too_few_benign_rows_is_refused_with_the_count() -> None:
    X, labels, features = _data()
    labels[:] = 1
    labels[np.random.default_rng(3).choice(len(labels), 500, replace=False)] = 0  # 75% attacks, 500 benign
    with pytest.raises(ValueError, match=r"only 500 benign rows .*need at least 1000\b.*--target-fpr to at least 0.02"):
        models.train(X, labels, features, Options("iforest", "auto", 20, 256, 0.01, 0.05, 1))
    trained = models.train(X, labels, features, Options("iforest", "auto", 20, 256, 0.02, 0.05, 1))  # exactly enough
    assert (trained.calibration.rows, trained.calibration.min_rows, trained.fit_rows) == (500, 500, 500)


def test_no_benign_rows_to_fit_on() -> None:
    X, labels, features = _data()
    with pytest.raises(ValueError, match=r"only 0 benign rows in the train split: too few .*need at least 1000\b"):
        models.train(X, np.ones_like(labels), features, Options("iforest", "benign", 20, 256, 0.01, 0.05, 1))


def test_reference_deciles_and_robust_scale() -> None:
    """The card's scoring reference: interior cut points, shares that sum to 1, robust z scale."""
    from stages.train.reference import reference

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(5.0, 2.0, 10_000), np.zeros(10_000), rng.integers(0, 2, 10_000)])
    ref = reference(X, ["normal", "constant", "flag"], rng.random(10_000))
    normal, constant, flag = (ref["features"][k] for k in ("normal", "constant", "flag"))
    assert len(normal["edges"]) == 9 and abs(sum(normal["fractions"]) - 1.0) < 1e-9
    assert abs(normal["median"] - 5.0) < 0.1 and abs(normal["scale"] - 2.0) < 0.1
    assert constant == {"median": 0.0, "scale": 1.0, "edges": [0.0], "fractions": [0.0, 1.0]}
    assert len(flag["edges"]) <= 2 and abs(sum(flag["fractions"]) - 1.0) < 1e-9
    assert ref["rows"] == 10_000 and len(ref["score"]["edges"]) == 9
