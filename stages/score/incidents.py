"""Alerts → incidents: the way an analyst triages, not one row per flow.

Grouping, in order:
1. a destination that draws alerts from ``FLOOD_SOURCES`` or more sources is one
   *target* (a flood or DDoS: one incident, not one per spoofed source);
2. every other alert belongs to its source;
3. a key's alerts split into separate incidents where they pause for more than
   ``SESSION_GAP`` (a beacon every 30-300 s stays one incident all day; a scan tomorrow
   is a new one).
So one source probing 800 ports in 10 minutes is one incident, and so is a beaconing pair.
The kind is read from the incident's shape (distinct ports, hosts, timing regularity);
severity from its size and how far its top score passes the threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FLOOD_SOURCES", "SESSION_GAP", "group", "INCIDENT_COLUMNS"]

FLOOD_SOURCES = 20
SESSION_GAP = pd.Timedelta(minutes=30)
SCAN_TARGETS = 20
INCIDENT_COLUMNS = [
    "incident_id", "severity", "kind", "first_seen", "last_seen", "alerts", "sources", "destinations",
    "ports", "top_score", "key", "summary",
]  # fmt: skip
_SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


def _kind(g: pd.DataFrame, by_target: bool) -> str:
    n_dst, n_port = g["dst_ip"].nunique(), g["dst_port"].nunique()
    if by_target and g["src_ip"].nunique() >= FLOOD_SOURCES // 4:
        return "flood"
    if n_port >= SCAN_TARGETS and n_dst <= 3:
        return "vertical-scan"
    if n_dst >= SCAN_TARGETS:
        return "horizontal-scan"
    if n_dst == 1 and len(g) >= 5:
        gaps = np.diff((g["ts"] - g["ts"].iloc[0]).dt.total_seconds().to_numpy())
        if len(gaps) >= 4 and np.median(gaps) >= 10 and np.std(gaps) < 0.35 * np.mean(gaps):
            return "beaconing"
        return "repeated-connections"
    return "anomalous-flows"


def _severity(n: int, targets: int, top: float, threshold: float) -> str:
    margin = (top - threshold) / max(abs(threshold), 1e-9)
    if n >= 100 or targets >= 100 or margin >= 0.25:
        return "high"
    if n >= 10 or targets >= 10 or margin >= 0.1:
        return "medium"
    return "low"


def _span(first: pd.Timestamp, last: pd.Timestamp) -> str:
    seconds = int((last - first).total_seconds())
    return (
        f"{seconds // 3600} h {seconds % 3600 // 60} min"
        if seconds >= 3600
        else f"{seconds // 60} min {seconds % 60} s"
    )


def _summary(kind: str, g: pd.DataFrame, key: str) -> str:
    n, span = len(g), _span(g["ts"].min(), g["ts"].max())
    src, dst = g["src_ip"].iloc[0], g["dst_ip"].iloc[0]
    ports = g["dst_port"].value_counts()
    top_port = "?" if ports.empty else str(ports.index[0])
    if kind == "flood":
        return f"{key} flooded by {g['src_ip'].nunique()} sources: {n} alerted flows in {span}"
    if key != src:  # a flood target's quieter session: say who hit it
        return f"{key} hit by {g['src_ip'].nunique()} source(s): {n} alerted flows in {span}"
    if kind == "vertical-scan":
        return f"{src} probed {g['dst_port'].nunique()} ports on {g['dst_ip'].nunique()} host(s) in {span}"
    if kind == "horizontal-scan":
        return f"{src} swept {g['dst_ip'].nunique()} hosts (most on port {top_port}) in {span}"
    if kind == "beaconing":
        gap = (g["ts"].max() - g["ts"].min()).total_seconds() / max(n - 1, 1)
        return f"{src} → {dst}:{top_port} beaconing every ~{gap:.0f} s, {n} alerted flows over {span}"
    if kind == "repeated-connections":
        return f"{src} → {dst}:{top_port} {n} alerted connections in {span} (brute force or scripted access?)"
    return f"{src}: {n} unusual flow(s) to {g['dst_ip'].nunique()} host(s) in {span}"


def group(alerts: pd.DataFrame, threshold: float, run_id: str) -> tuple[pd.DataFrame, np.ndarray]:
    """(incidents table, incident id of each alert row) for ``alerts`` (ts, src_ip, dst_ip, dst_port, score)."""
    if alerts.empty:
        return pd.DataFrame(columns=INCIDENT_COLUMNS), np.array([], dtype=object)
    sources_per_dst = alerts.groupby("dst_ip", dropna=False)["src_ip"].transform("nunique")
    by_target = (sources_per_dst >= FLOOD_SOURCES).to_numpy()
    key = np.where(by_target, "dst " + alerts["dst_ip"].astype(str), "src " + alerts["src_ip"].astype(str))
    frame = alerts.assign(_key=key, _target=by_target, _row=np.arange(len(alerts))).sort_values(
        ["_key", "ts", "_row"], kind="stable"
    )
    new_session = (frame["_key"] != frame["_key"].shift()) | (frame["ts"].diff() > SESSION_GAP)
    frame["_session"] = new_session.cumsum()
    records = []
    for _, g in frame.groupby("_session", sort=False):
        kind = _kind(g, bool(g["_target"].iloc[0]))
        n_targets = max(g["dst_ip"].nunique(), g["dst_port"].nunique(), g["src_ip"].nunique())
        records.append(
            {
                "severity": _severity(len(g), n_targets, float(g["score"].max()), threshold),
                "kind": kind,
                "first_seen": g["ts"].min(),
                "last_seen": g["ts"].max(),
                "alerts": len(g),
                "sources": g["src_ip"].nunique(),
                "destinations": g["dst_ip"].nunique(),
                "ports": g["dst_port"].nunique(),
                "top_score": float(g["score"].max()),
                "key": g["_key"].iloc[0],
                "summary": _summary(kind, g, g["_key"].iloc[0].split(" ", 1)[1]),
                "_rows": g["_row"].to_numpy(),
            }
        )
    records.sort(key=lambda r: (_SEVERITY_ORDER[r["severity"]], -r["alerts"], str(r["first_seen"]), r["key"]))
    ids = np.empty(len(alerts), dtype=object)
    for i, r in enumerate(records, start=1):
        r["incident_id"] = f"{run_id}-{i:05d}"
        ids[r.pop("_rows")] = r["incident_id"]
    return pd.DataFrame.from_records(records, columns=INCIDENT_COLUMNS), ids


def per_day(incidents: pd.DataFrame, alerts: int, days: float) -> dict[str, Any]:
    """Alerts and incidents per day and alerts absorbed per incident (the triage load)."""
    n = len(incidents)
    return {
        "alerts_per_day": alerts / days if days else None,
        "incidents_per_day": n / days if days else None,
        "alerts_per_incident": alerts / n if n else None,
    }
