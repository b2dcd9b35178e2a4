"""The self-contained HTML report for SOC analysts and model owners.

One file, no external resources (plots are inline SVG, CSS is inline, a Content-Security-
Policy forbids loading anything), readable offline from MinIO or the Argo UI. The page is
rendered from ``templates/report.html.j2`` by Jinja2 with autoescaping on: every value from
data, the card or the registry is escaped when it is written (flows are untrusted). This
module only shapes plain values for the template; the only markup it passes through
unescaped is the inline SVG drawn by ``plots`` (which escapes its own labels).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from markupsafe import Markup

from stages.common import pages
from stages.common.feature_units import raw_text, raw_value

from . import plots
from .curves import ScoreStats
from .metrics import robust_z

__all__ = ["ReportData", "top_rows", "explain", "top_alerts", "render", "raw_value"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
"""Beside this module, so the stage image (which copies the whole stage folder) carries them."""


@dataclass
class ReportData:
    """Everything the report shows; ``metrics`` is the metrics.json document."""

    metrics: dict[str, Any]
    card: dict[str, Any]
    stats: ScoreStats
    by_attack: dict[str, dict[str, Any]]
    alerts: list[dict[str, Any]]
    sources: dict[str, str]


def environment() -> jinja2.Environment:
    """This stage's template environment (autoescaping, strict: see ``stages.common.pages``)."""
    return pages.environment(TEMPLATES)


def fmt(value: Any, kind: str = "num") -> str:
    """Plain display text for a metric: 'n/a' for missing or non-finite values."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "1f":
        return f"{value:,.1f}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def top_rows(scores: np.ndarray, threshold: float, n: int) -> np.ndarray:
    """Indices of the ``n`` highest-scoring alerts (score >= threshold), highest first; ties: earlier row first."""
    alerted = np.flatnonzero(scores >= threshold)
    return alerted[np.argsort(-scores[alerted], kind="stable")[:n]]


def explain(
    rows: list[dict[str, Any]],
    X: np.ndarray,
    scores: np.ndarray,
    features: list[str],
    baseline: tuple[np.ndarray, np.ndarray],
    k: int = 3,
) -> list[dict[str, Any]]:
    """Add to each alert row (passthrough fields) its score and its ``k`` most unusual features.

    "Unusual" = largest absolute robust z-score against train rows (``baseline`` is
    median and scale from ``metrics.robust_stats``), which tells an analyst where to look.
    ``X`` and ``scores`` hold the same rows as ``rows``, in the same order.
    """
    z = robust_z(X, *baseline) if len(rows) else np.empty((0, len(features)))
    for row, zi, xi, score in zip(rows, z, X, scores, strict=True):
        order = np.argsort(-np.nan_to_num(np.abs(zi)), kind="stable")[:k]
        row["score"] = float(score)
        row["unusual"] = [{"feature": features[j], "z": float(zi[j]), "value": float(xi[j])} for j in order]
    return rows


def top_alerts(
    holdout: Any,
    X: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    features: list[str],
    baseline: tuple[np.ndarray, np.ndarray],
    n: int = 25,
    k: int = 3,
) -> list[dict[str, Any]]:
    """The ``n`` highest-scoring alerts of one table of holdout rows, explained (``top_rows``, ``explain``)."""
    top = top_rows(scores, threshold, n)
    rows = holdout.take(top).to_pylist() if top.size else []
    return explain(rows, X[top], scores[top], features, baseline, k)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _header(d: ReportData) -> dict[str, Any]:
    m, champ = d.metrics, d.metrics.get("champion", {})
    failed = [c["name"] for c in m["gate"]["checks"] if not c["passed"]]
    promo = ("promoted to champion" if champ.get("promoted") else "not promoted") + f" — {champ.get('reason', '')}"
    version = champ.get("candidate_version")
    return {
        "run_id": m.get("run_id"),
        "model_type": d.card.get("model_type"),
        "version": f"v{version}" if version else "(not registered)",
        "generated": _now(),
        "verdict": m["gate"]["verdict"],
        "detail": "all gate checks passed" if not failed else "failed checks: " + ", ".join(failed),
        "promotion": promo,
    }


def _cards(m: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, hint) of the headline cards."""
    cards = [
        ("holdout flows", fmt(m["rows"], "int"), ""),
        ("alerts", fmt(m.get("alerts"), "int"), "flows with score ≥ threshold"),
        ("alert rate", fmt(m["alert_rate"], "pct"), ""),
        ("alerts per day", fmt(m["alerts_per_day"], "1f"), "alerts / time span of the holdout"),
    ]
    if m["has_labels"]:
        cards += [
            ("precision", fmt(m["precision"], "pct"), "share of alerts that are attacks"),
            ("recall", fmt(m["recall"], "pct"), "share of attack flows alerted"),
            ("false-positive rate", fmt(m["fpr"], "pct"), "share of benign flows alerted"),
            ("F1", fmt(m["f1"]), ""),
            ("PR-AUC", fmt(m["pr_auc"]), "average precision over all thresholds"),
            ("ROC-AUC", fmt(m["roc_auc"]), ""),
            ("recall at 1% FPR", fmt(m.get("recall_at_1pct_fpr"), "pct"), ""),
        ]
    cards.append(("max feature PSI", fmt(m["drift"]["max_psi"]), "population stability, > 0.2 = drift"))
    return cards


def _notes(m: dict[str, Any]) -> list[str]:
    notes = []
    if not m["has_labels"]:
        notes.append("The holdout has no labels: only alert volume, score distribution and drift can be measured.")
    if m.get("unlabelled_rows"):
        notes.append(
            f"{m['unlabelled_rows']:,} holdout flows are unlabelled; detection metrics use the "
            f"{m['labelled_rows']:,} labelled flows."
        )
    if m.get("auc_note"):
        notes.append(m["auc_note"])
    return notes


def _gate(m: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": c["name"],
            "value": fmt(c["value"]),
            "op": c["op"],
            "limit": fmt(float(c["threshold"])),
            "passed": bool(c["passed"]),
            "note": c.get("note", ""),
        }
        for c in m["gate"]["checks"]
    ]


def _curves(d: ReportData) -> dict[str, Any]:
    """Inline SVG plots (markup ``plots`` escaped itself) and, without labels, why there are no curves."""
    m, st = d.metrics, d.stats
    out: dict[str, Any] = {"histogram": Markup(plots.score_histograms(st.plot_edges, st.plot_counts, m["threshold"]))}
    if m["pr_auc"] is not None:
        pr_point = (m["recall"], m["precision"]) if m["precision"] is not None else None
        base_rate = st.positives / st.labelled
        out["pr"] = Markup(plots.pr_curve(*st.pr_points, base_rate, pr_point, m["pr_auc"]))
        out["roc"] = Markup(plots.roc_curve(*st.roc_points, st.negatives, (m["fpr"], m["recall"]), m["roc_auc"]))
    else:
        out["missing"] = m.get("auc_note") or "the holdout has no labels"
    return out


def _attacks(d: ReportData) -> dict[str, Any] | None:
    if not d.by_attack:
        return None
    rows = [
        {"name": name, "rows": fmt(v["rows"], "int"), "detected": fmt(v["detected"], "int"), "recall": fmt(v["recall"], "pct")}
        for name, v in sorted(d.by_attack.items(), key=lambda kv: -kv[1]["rows"])
    ]  # fmt: skip
    return {"bars": Markup(plots.attack_recall_bars(d.by_attack)), "rows": rows}


def _alerts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for a in alerts:
        ts = a.get("ts")
        label = {0: "benign", 1: a.get("attack_type") or "malicious"}.get(a.get("label"), "unknown")  # type: ignore[arg-type]
        unusual = [
            {"feature": u["feature"], "input": f"{u['value']:.4g}", "raw": raw_text(u["feature"], u["value"]),
             "z": f"{u['z']:+.1f}"}
            for u in a["unusual"]
        ]  # fmt: skip
        rows.append(
            {
                "ts": ts.strftime("%Y-%m-%d %H:%M:%S") if ts else "",
                "src_ip": a.get("src_ip"),
                "dst_ip": a.get("dst_ip"),
                "dst_port": a.get("dst_port"),
                "proto": a.get("proto"),
                "service": a.get("service"),
                "score": f"{a['score']:.4f}",
                "label": label,
                "unusual": unusual,
            }
        )
    return rows


def _drift(m: dict[str, Any]) -> dict[str, Any]:
    dr = m["drift"]
    items = sorted(dr["psi"].items(), key=lambda kv: -(kv[1] if kv[1] is not None else -1))
    rows = [{"name": name, "psi": fmt(v), "drifted": name in dr["drifted"]} for name, v in items]
    return {"bins": dr["bins"], "threshold": dr["threshold"], "drifted": len(dr["drifted"]), "rows": rows}


def _model(d: ReportData) -> list[tuple[str, Any]]:
    c, ml = d.card, d.card.get("mlflow") or {}
    cal = c.get("calibration") or {}
    items = [
        ("model type", c.get("model_type")),
        ("score method", c.get("score_method")),
        ("threshold", fmt(float(c["threshold"]))),
        ("trained on", c.get("trained_on")),
        ("train rows", c.get("train_rows")),
        (
            "calibration",
            f"{cal.get('method')} target {cal.get('target')} achieved {cal.get('achieved')} on {cal.get('rows')} rows"
            if cal
            else None,
        ),
        ("features", len(c.get("features", []))),
        ("schema hash", c.get("schema_hash")),
        ("MLflow run", ml.get("run_id")),
        ("registered model", ml.get("model_name")),
        ("model version", ml.get("model_version")),
        ("card created", c.get("created_at")),
        *[(f"input: {k}", v) for k, v in d.sources.items()],
    ]
    return [(k, "n/a" if v is None else v) for k, v in items]


def render(d: ReportData) -> str:
    """The complete report as an HTML string."""
    m = d.metrics
    template = environment().get_template("report.html.j2")
    return template.render(
        header=_header(d),
        cards=_cards(m),
        notes=_notes(m),
        gate=_gate(m),
        curves=_curves(d),
        attacks=_attacks(d),
        alerts=_alerts(d.alerts),
        drift=_drift(m),
        model=_model(d),
        threshold=fmt(float(m["threshold"])),
        has_labels=bool(m["has_labels"]),
    )
