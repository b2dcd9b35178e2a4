"""Quality gate checks and the champion decision as tables."""

from __future__ import annotations

import re
from typing import Any

import pytest

from stages.eval.gate import GateThresholds, champion_decision, failed_summary, gate_checks

GOOD = {
    "has_labels": True,
    "pr_auc": 0.8,
    "recall": 0.7,
    "fpr": 0.01,
    "alert_rate": 0.02,
    "benign_alert_rate": 0.01,
    "drift": {"max_psi": 0.1},
}


@pytest.mark.parametrize(
    ("metrics", "limits", "verdict", "failed", "names"),
    [
        (GOOD, GateThresholds(), "passed", [], ["pr_auc", "recall", "fpr", "benign_alert_rate"]),
        ({**GOOD, "recall": 0.49}, GateThresholds(), "failed", ["recall"], None),
        (
            {**GOOD, "recall": 0.5, "pr_auc": 0.3, "fpr": 0.05, "benign_alert_rate": 0.1},
            GateThresholds(),
            "passed",
            [],
            None,
        ),
        (
            {**GOOD, "fpr": 0.2, "benign_alert_rate": 0.3},
            GateThresholds(),
            "failed",
            ["fpr", "benign_alert_rate"],
            None,
        ),
        # a third of the holdout is attacks: 40% alerted is the model doing its job, not an alert flood
        ({**GOOD, "alert_rate": 0.4, "benign_alert_rate": 0.02}, GateThresholds(), "passed", [], None),
        ({**GOOD, "benign_alert_rate": None}, GateThresholds(), "failed", ["benign_alert_rate"], None),
        ({**GOOD, "pr_auc": None, "auc_note": "no malicious rows"}, GateThresholds(), "failed", ["pr_auc"], None),
        (
            {"has_labels": False, "alert_rate": 0.02, "drift": {"max_psi": 0.5}},
            GateThresholds(),
            "passed",
            [],
            ["alert_rate"],
        ),
        (
            {"has_labels": False, "alert_rate": 0.02, "drift": {"max_psi": 0.5}},
            GateThresholds(max_psi=0.25),
            "failed",
            ["max_psi"],
            ["alert_rate", "max_psi"],
        ),
        ({**GOOD, "pr_auc": 0.4}, GateThresholds(min_pr_auc=0.9), "failed", ["pr_auc"], None),
    ],
    ids=[
        "all-pass",
        "low-recall",
        "on-the-limits",
        "two-fail",
        "attack-heavy",
        "benign-alerts-unmeasurable",
        "unmeasurable",
        "no-labels",
        "drift-gated",
        "strict",
    ],
)
def test_gate_checks(
    metrics: dict[str, Any], limits: GateThresholds, verdict: str, failed: list[str], names: list[str] | None
) -> None:
    gate = gate_checks(metrics, limits)
    assert gate["verdict"] == verdict
    assert [c["name"] for c in gate["checks"] if not c["passed"]] == failed
    if names is not None:
        assert [c["name"] for c in gate["checks"]] == names
    assert all(set(c) >= {"name", "value", "op", "threshold", "passed"} for c in gate["checks"])


def test_unmeasurable_check_says_why() -> None:
    gate = gate_checks({**GOOD, "pr_auc": None, "auc_note": "no malicious rows among 10"}, GateThresholds())
    assert gate["checks"][0]["note"] == "no malicious rows among 10"
    assert failed_summary(gate) == "pr_auc n/a (no malicious rows among 10)"


def test_failed_summary_names_values_and_limits() -> None:
    gate = gate_checks({**GOOD, "recall": 0.31, "fpr": 0.08}, GateThresholds())
    assert failed_summary(gate) == "recall 0.31 < 0.5; fpr 0.08 > 0.05"


@pytest.mark.parametrize(
    ("kw", "promoted", "reason"),
    [
        (dict(champion_version=None, champion_metric=None), True, "no champion yet"),
        (dict(champion_version="1", champion_metric=0.7), True, r"0\.8000 >= champion v1 0\.7000"),
        (dict(champion_version="1", champion_metric=0.8), True, ">= champion"),  # tie: newer wins
        (dict(champion_version="1", champion_metric=0.9), False, r"0\.8000 < champion v1 0\.9000"),
        (dict(champion_version="1", champion_metric=0.1, gate_passed=False), False, "gate failed"),
        (dict(champion_version="1", champion_metric=0.1, promote=False), False, "--no-promote"),
        (dict(champion_version=None, champion_metric=None, candidate_version=None), False, "no registered"),
        (dict(champion_version="2", champion_metric=0.9, candidate_version="2"), True, "already is the champion"),
        (dict(champion_version="1", champion_metric=None), True, "has no recorded"),
        (dict(champion_version="1", champion_metric=0.5, candidate_metric=None), False, "cannot be shown"),
        (dict(champion_version="1", champion_metric=None, candidate_metric=None), True, "neither model"),
    ],
    ids=[
        "first",
        "better",
        "tie",
        "worse",
        "gate-failed",
        "no-promote",
        "unregistered",
        "same-version",
        "champion-unmeasured",
        "candidate-unlabelled",
        "both-unlabelled",
    ],
)
def test_champion_decision(kw: dict[str, Any], promoted: bool, reason: str) -> None:
    args: dict[str, Any] = dict(gate_passed=True, promote=True, candidate_version="3", candidate_metric=0.8)
    args.update(kw)
    got = champion_decision(**args)
    assert got["promoted"] is promoted
    assert got["previous_version"] == args["champion_version"] and got["candidate_version"] == args["candidate_version"]
    assert re.search(reason, got["reason"]), got["reason"]
