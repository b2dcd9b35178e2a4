"""alerts.html: the page an analyst opens first — incidents by severity, timeline, top talkers,
and each incident's evidence.

One self-contained file (inline CSS and SVG, a Content-Security-Policy that forbids loading
anything), rendered from ``templates/alerts.html.j2`` by Jinja2 with autoescaping on: every
string from the flows, the card or the registry is escaped when it is written (flows are
attacker-controlled: a src_ip or service may carry markup). This module only shapes plain
values for the template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from stages.common import pages
from stages.common.feature_units import raw_text

__all__ = ["render"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
"""Beside this module, so the stage image (which copies the whole stage folder) carries them."""
EVIDENCE_ROWS = 5
MAX_INCIDENTS = 200
EVIDENCE_INCIDENTS = 50
TALKERS = 15
TIMELINE = (1100, 160)
"""Width and height of the alerts-per-hour chart (SVG user units)."""


def environment() -> jinja2.Environment:
    """This stage's template environment (autoescaping, strict: see ``stages.common.pages``)."""
    return pages.environment(TEMPLATES)


def _time(value: Any) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _timeline(alerts: pd.DataFrame) -> dict[str, Any] | None:
    """Alerts per hour as bars (SVG user units) for the template's inline chart; None with nothing to plot."""
    if alerts.empty or alerts["ts"].isna().all():
        return None
    hours = alerts["ts"].dt.floor("h").value_counts().sort_index()
    width, height = TIMELINE
    bar, peak = width / max(len(hours), 1), max(int(hours.max()), 1)
    bars = [
        {"x": f"{i * bar:.1f}", "y": f"{height - 20 - (c / peak) * (height - 30):.1f}",
         "width": f"{max(bar - 1, 1):.1f}", "height": f"{(c / peak) * (height - 30):.1f}",
         "title": f"{_time(h)}: {int(c)}"}
        for i, (h, c) in enumerate(hours.items())
    ]  # fmt: skip
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "first": _time(hours.index[0]),
        "last": _time(hours.index[-1]),
    }


def _features(top: Any) -> list[dict[str, str]]:
    """One evidence row's features: name, raw value with unit, model input, z."""
    return [
        {"feature": str(f["feature"]), "raw": raw_text(str(f["feature"]), float(f["value"])),
         "input": f"{float(f['value']):.4g}", "z": f"{float(f['z']):+.1f}"}
        for f in top
    ]  # fmt: skip


def _evidence(alerts: pd.DataFrame, positions: Any) -> list[dict[str, Any]]:
    """The incident's top alerts by score (``positions``: its rows in ``alerts``, in order)."""
    scores = alerts["score"].iloc[positions].reset_index(drop=True)
    rows = alerts.iloc[[positions[i] for i in scores.nlargest(EVIDENCE_ROWS).index]]
    return [
        {"ts": _time(a["ts"]), "src_ip": a["src_ip"], "dst_ip": a["dst_ip"], "dst_port": a["dst_port"],
         "proto": a["proto"], "score": f"{a['score']:.4f}", "features": _features(a["top_features"])}
        for _, a in rows.iterrows()
    ]  # fmt: skip


def _talkers(alerts: pd.DataFrame) -> list[dict[str, Any]]:
    talkers = alerts.groupby("src_ip").agg(alerts=("score", "size"), top=("score", "max"), hosts=("dst_ip", "nunique"))
    talkers = talkers.sort_values("alerts", ascending=False).head(TALKERS)
    return [
        {"ip": ip, "alerts": f"{r.alerts:,}", "hosts": f"{r.hosts:,}", "top": f"{r.top:.4f}"}
        for ip, r in talkers.iterrows()
    ]


def _incidents(shown: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"id": r.incident_id, "severity": r.severity, "kind": r.kind, "summary": r.summary,
         "first_seen": _time(r.first_seen), "last_seen": _time(r.last_seen), "alerts": f"{r.alerts:,}",
         "top_score": f"{r.top_score:.4f}"}
        for r in shown.itertuples()
    ]  # fmt: skip


def render(alerts: pd.DataFrame, incidents: pd.DataFrame, drift: dict[str, Any], info: dict[str, Any]) -> str:
    """The whole page; ``info``: run_id, model, threshold, rows, window (already plain values)."""
    counts = incidents["severity"].value_counts() if not incidents.empty else pd.Series(dtype=int)
    cards = [
        ("flows scored", f"{info['rows']:,}"),
        ("alerts", f"{len(alerts):,}"),
        ("incidents", f"{len(incidents):,}"),
        ("high", f"{int(counts.get('high', 0))}"),
        ("medium", f"{int(counts.get('medium', 0))}"),
        ("drift", "yes" if drift.get("drifted") else "no"),
    ]
    shown = _incidents(incidents.head(MAX_INCIDENTS))
    evidence = []
    if not alerts.empty:
        ids = [r["id"] for r in shown[:EVIDENCE_INCIDENTS]]
        rows = alerts["incident_id"].isin(ids).to_numpy().nonzero()[0]
        where = pd.Series(rows).groupby(alerts["incident_id"].to_numpy()[rows], sort=False).indices
        evidence = [(r, _evidence(alerts, rows[where.get(r["id"], [])])) for r in shown[:EVIDENCE_INCIDENTS]]
    template = environment().get_template("alerts.html.j2")
    return template.render(
        info=info,
        cards=cards,
        alert_count=len(alerts),
        drift_reasons=list(drift.get("reasons", [])),
        incidents=shown,
        more=max(len(incidents) - MAX_INCIDENTS, 0),
        timeline=_timeline(alerts),
        talkers=[] if alerts.empty else _talkers(alerts),
        evidence=evidence,
    )
