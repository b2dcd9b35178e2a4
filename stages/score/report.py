"""alerts.html: the page an analyst opens first — incidents by severity, timeline, top talkers,
and each incident's evidence.

One self-contained file: inline CSS and SVG, a Content-Security-Policy that forbids
loading anything, and every string from the flows, the card or the registry escaped
(flows are attacker-controlled: a src_ip or service may carry markup).
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

__all__ = ["render"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2733;background:#f4f6f8}
main{max-width:1180px;margin:0 auto;padding:20px 28px 60px}h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #d5dbe1;padding-bottom:4px}
.sub{color:#5a6775;font-size:13px}.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{background:#fff;border:1px solid #d5dbe1;border-radius:6px;padding:10px 12px}.card b{display:block;font-size:22px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border:1px solid #d5dbe1;padding:4px 8px;text-align:left;vertical-align:top}th{background:#e9edf1}
td.num{text-align:right;font-variant-numeric:tabular-nums}.sev{font-weight:700;color:#fff;padding:1px 6px;border-radius:4px}
.high{background:#b3261e}.medium{background:#c77700}.low{background:#5a6775}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px;margin:8px 0}
details{background:#fff;border:1px solid #d5dbe1;border-radius:6px;margin:6px 0;padding:6px 10px}
.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
"""
EVIDENCE_ROWS = 5
MAX_INCIDENTS = 200


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _time(value: Any) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _timeline(alerts: pd.DataFrame) -> str:
    """Alerts per hour as an inline SVG bar chart."""
    if alerts.empty or alerts["ts"].isna().all():
        return '<p class="sub">no alerts to plot</p>'
    hours = alerts["ts"].dt.floor("h").value_counts().sort_index()
    width, height, n = 1100, 160, len(hours)
    bar, peak = width / max(n, 1), max(int(hours.max()), 1)
    bars = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - 20 - (c / peak) * (height - 30):.1f}" width="{max(bar - 1, 1):.1f}" '
        f'height="{(c / peak) * (height - 30):.1f}" fill="#b3261e"><title>{_e(_time(h))}: {int(c)}</title></rect>'
        for i, (h, c) in enumerate(hours.items())
    )
    axis = f'<text x="0" y="{height - 4}" font-size="11">{_e(_time(hours.index[0]))}</text>'
    axis += f'<text x="{width}" y="{height - 4}" font-size="11" text-anchor="end">{_e(_time(hours.index[-1]))}</text>'
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="alerts per hour">{bars}{axis}</svg>'
    )


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _evidence(alerts: pd.DataFrame, incident_id: str) -> str:
    rows = alerts[alerts["incident_id"] == incident_id].nlargest(EVIDENCE_ROWS, "score")
    out = []
    for _, a in rows.iterrows():
        feats = "; ".join(f"{_e(f['feature'])}={f['value']:.3g} (z {f['z']:+.1f})" for f in a["top_features"])
        out.append(
            [_e(_time(a["ts"])), f'<span class="mono">{_e(a["src_ip"])} → {_e(a["dst_ip"])}:{_e(a["dst_port"])}</span>',
             _e(a["proto"]), f"{a['score']:.4f}", feats]
        )  # fmt: skip
    return _table(["time", "flow", "proto", "score", "furthest from training (value, robust z)"], out, {3})


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
    parts = [
        f"<h1>Alerts — run {_e(info['run_id'])}</h1>",
        f'<p class="sub">model {_e(info["model"])} · threshold {_e(info["threshold"])} · window {_e(info["window"])}</p>',
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards)
        + "</div>",
    ]
    if info["rows"] == 0:
        parts.append('<p class="note">The window held no flows: nothing was scored, there are no alerts.</p>')
    elif alerts.empty:
        parts.append('<p class="note">No flow reached the threshold: no alerts in this batch.</p>')
    for reason in drift.get("reasons", []):
        parts.append(f'<p class="note">Drift: {_e(reason)}</p>')
    shown = incidents.head(MAX_INCIDENTS)
    rows = [
        [f'<span class="sev {_e(r.severity)}">{_e(r.severity)}</span>', _e(r.kind), _e(r.summary), _e(_time(r.first_seen)),
         _e(_time(r.last_seen)), f"{r.alerts:,}", f"{r.top_score:.4f}"]
        for r in shown.itertuples()
    ]  # fmt: skip
    parts += [
        "<h2>Incidents by severity</h2>",
        _table(["severity", "kind", "summary", "first seen", "last seen", "alerts", "top score"], rows, {5, 6}),
    ]
    if len(incidents) > MAX_INCIDENTS:
        parts.append(f'<p class="sub">{len(incidents) - MAX_INCIDENTS} more in incidents.parquet</p>')
    parts += ["<h2>Timeline (alerts per hour)</h2>", _timeline(alerts)]
    if not alerts.empty:
        talkers = alerts.groupby("src_ip").agg(
            alerts=("score", "size"), top=("score", "max"), hosts=("dst_ip", "nunique")
        )
        talkers = talkers.sort_values("alerts", ascending=False).head(15)
        parts += ["<h2>Top talkers</h2>", _table(
            ["source", "alerts", "hosts", "top score"],
            [[f'<span class="mono">{_e(ip)}</span>', f"{r.alerts:,}", f"{r.hosts:,}", f"{r.top:.4f}"] for ip, r in talkers.iterrows()],
            {1, 2, 3},
        )]  # fmt: skip
        parts.append("<h2>Evidence</h2>")
        for r in shown.head(50).itertuples():
            parts.append(
                f"<details><summary><b>{_e(r.incident_id)}</b> · {_e(r.severity)} · {_e(r.summary)}</summary>"
                f"{_evidence(alerts, r.incident_id)}</details>"
            )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>Alerts {_e(info['run_id'])}</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>\n"
    )
