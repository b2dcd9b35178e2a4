"""The quality gate and the champion decision, as pure functions on metric dicts.

The gate never assumes success: a check whose metric cannot be computed (for example
recall on a labelled holdout without any attack) fails, with a note saying why.

With labels the gate judges detection: PR-AUC, recall and FPR at the card's threshold, and
the alert budget counts only the alerts that are not attacks (``benign_alert_rate``): a
holdout that is a third DoS flows must alert on them, and the plain alert rate would fail
a model for doing its job. Without labels the budget is the plain ``alert_rate`` — the one
thing that can be judged — plus the optional drift check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["GateThresholds", "gate_checks", "failed_summary", "champion_decision", "PRIMARY_METRIC"]

PRIMARY_METRIC = "pr_auc"
"""The metric a candidate must not be worse on to replace the champion (stored as a version tag)."""


@dataclass(frozen=True)
class GateThresholds:
    """Gate limits; ``max_psi`` None means drift does not gate."""

    min_pr_auc: float = 0.3
    min_recall: float = 0.5
    max_fpr: float = 0.05
    max_alert_rate: float = 0.1
    max_psi: float | None = None


def _check(name: str, value: float | None, op: str, threshold: float, why_missing: str | None) -> dict[str, Any]:
    passed = value is not None and (value >= threshold if op == ">=" else value <= threshold)
    check: dict[str, Any] = {"name": name, "value": value, "op": op, "threshold": threshold, "passed": passed}
    if value is None:
        check["note"] = why_missing or f"{name} could not be computed"
    return check


def gate_checks(metrics: dict[str, Any], limits: GateThresholds) -> dict[str, Any]:
    """Evaluate the gate on ``metrics`` (keys as in metrics.json); verdict ``passed`` only if every check passes."""
    note = metrics.get("auc_note")
    checks = []
    if metrics.get("has_labels"):
        checks += [
            _check("pr_auc", metrics.get("pr_auc"), ">=", limits.min_pr_auc, note),
            _check("recall", metrics.get("recall"), ">=", limits.min_recall, "no malicious labelled rows"),
            _check("fpr", metrics.get("fpr"), "<=", limits.max_fpr, "no benign labelled rows"),
        ]
        checks.append(
            _check(
                "benign_alert_rate",
                metrics.get("benign_alert_rate"),
                "<=",
                limits.max_alert_rate,
                "no holdout rows",
            )
        )
    else:
        checks.append(_check("alert_rate", metrics.get("alert_rate"), "<=", limits.max_alert_rate, "no holdout rows"))
    if limits.max_psi is not None:
        checks.append(
            _check(
                "max_psi",
                metrics.get("drift", {}).get("max_psi"),
                "<=",
                limits.max_psi,
                "no feature had both train and holdout values",
            )
        )
    verdict = "passed" if all(c["passed"] for c in checks) else "failed"
    return {"verdict": verdict, "checks": checks}


def failed_summary(gate: dict[str, Any]) -> str:
    """One line naming the failed checks, e.g. ``recall 0.31 < 0.5; fpr 0.08 > 0.05``."""
    parts = []
    for c in gate["checks"]:
        if not c["passed"]:
            value = "n/a" if c["value"] is None else f"{c['value']:.4g}"
            wrong = "<" if c["op"] == ">=" else ">"
            parts.append(
                f"{c['name']} {value} {wrong} {c['threshold']:g}"
                if c["value"] is not None
                else f"{c['name']} n/a ({c.get('note')})"
            )
    return "; ".join(parts)


def champion_decision(
    *,
    gate_passed: bool,
    promote: bool,
    candidate_version: str | None,
    candidate_metric: float | None,
    champion_version: str | None,
    champion_metric: float | None,
) -> dict[str, Any]:
    """Decide whether the candidate takes the ``champion`` alias.

    It does when the gate passed, promotion is enabled, and it is not worse than the
    current champion on ``PRIMARY_METRIC`` (ties promote: the newer model wins). Without
    a metric on the candidate it replaces a champion only if that one has none either.
    Returns the ``champion`` block of metrics.json.
    """
    out: dict[str, Any] = {
        "previous_version": champion_version,
        "candidate_version": candidate_version,
        "promoted": False,
        "metric": PRIMARY_METRIC,
        "candidate_value": candidate_metric,
        "champion_value": champion_metric,
    }

    def no(reason: str) -> dict[str, Any]:
        return {**out, "reason": reason}

    def yes(reason: str) -> dict[str, Any]:
        return {**out, "promoted": True, "reason": reason}

    if candidate_version is None:
        return no("no registered model version for this candidate (MLflow off during train or eval)")
    if not gate_passed:
        return no("quality gate failed")
    if not promote:
        return no("promotion disabled (--no-promote)")
    if champion_version is None:
        return yes("no champion yet: the first model that passes the gate becomes champion")
    if champion_version == candidate_version:
        return yes(f"version {candidate_version} already is the champion")
    if champion_metric is None:
        if candidate_metric is None:
            return yes(f"neither model has a {PRIMARY_METRIC} (no labels); the newer passing model wins")
        return yes(f"champion v{champion_version} has no recorded {PRIMARY_METRIC}")
    if candidate_metric is None:
        return no(
            f"candidate has no {PRIMARY_METRIC} (no labels), so it cannot be shown to be as good as "
            f"champion v{champion_version} ({PRIMARY_METRIC} {champion_metric:.4f})"
        )
    if candidate_metric >= champion_metric:
        return yes(f"{PRIMARY_METRIC} {candidate_metric:.4f} >= champion v{champion_version} {champion_metric:.4f}")
    return no(f"{PRIMARY_METRIC} {candidate_metric:.4f} < champion v{champion_version} {champion_metric:.4f}")
