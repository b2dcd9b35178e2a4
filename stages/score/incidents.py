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


def _kinds(a: pd.DataFrame) -> np.ndarray:
    """The kind of each incident from its aggregates (see the module docstring)."""
    beacon = (a["gaps"] >= 4) & (a["gap_median"] >= 10) & (a["gap_std"] < 0.35 * a["gap_mean"])
    choices = [
        a["by_target"] & (a["sources"] >= FLOOD_SOURCES // 4),
        (a["ports"] >= SCAN_TARGETS) & (a["destinations"] <= 3),
        a["destinations"] >= SCAN_TARGETS,
        (a["destinations"] == 1) & (a["alerts"] >= 5) & beacon,
        (a["destinations"] == 1) & (a["alerts"] >= 5),
    ]
    names = ["flood", "vertical-scan", "horizontal-scan", "beaconing", "repeated-connections"]
    return np.select(choices, names, default="anomalous-flows")


def _severities(a: pd.DataFrame, threshold: float) -> np.ndarray:
    """high: ≥ 100 alerts or targets, or a top score 25% past the threshold; medium: ≥ 10 or 10%."""
    margin = (a["top_score"] - threshold) / max(abs(threshold), 1e-9)
    targets = a[["destinations", "ports", "sources"]].max(axis=1)
    high = (a["alerts"] >= 100) | (targets >= 100) | (margin >= 0.25)
    medium = (a["alerts"] >= 10) | (targets >= 10) | (margin >= 0.1)
    return np.select([high, medium], ["high", "medium"], default="low")


def _span(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600} h {s % 3600 // 60} min" if s >= 3600 else f"{s // 60} min {s % 60} s"


def _summary(r: Any) -> str:
    """One line an analyst reads first (``r``: one row of the aggregates)."""
    span, who = _span((r.last_seen - r.first_seen).total_seconds()), r.key.split(" ", 1)[1]
    if r.kind == "flood":
        return f"{who} flooded by {r.sources} sources: {r.alerts} alerted flows in {span}"
    if r.by_target:  # a flood target's quieter session: say who hit it
        return f"{who} hit by {r.sources} source(s): {r.alerts} alerted flows in {span}"
    if r.kind == "vertical-scan":
        return f"{who} probed {r.ports} ports on {r.destinations} host(s) in {span}"
    if r.kind == "horizontal-scan":
        return f"{who} swept {r.destinations} hosts (most on port {r.top_port}) in {span}"
    if r.kind == "beaconing":
        return f"{who} → {r.top_dst}:{r.top_port} beaconing every ~{r.gap_mean:.0f} s, {r.alerts} alerted flows over {span}"
    if r.kind == "repeated-connections":
        return f"{who} → {r.top_dst}:{r.top_port} {r.alerts} alerted connections in {span} (brute force or scripted access?)"
    return f"{who}: {r.alerts} unusual flow(s) to {r.destinations} host(s) in {span}"


def _mode(frame: pd.DataFrame, column: str) -> pd.Series:
    """The most frequent value of ``column`` per session."""
    counts = frame.groupby(["_session", column], dropna=False, observed=True).size().reset_index(name="n")
    top = counts.sort_values(["_session", "n"], ascending=[True, False], kind="stable").drop_duplicates("_session")
    return top.set_index("_session")[column]


def group(alerts: pd.DataFrame, threshold: float, run_id: str) -> tuple[pd.DataFrame, np.ndarray]:
    """(incidents table, incident id of each alert row) for ``alerts`` (ts, src_ip, dst_ip, dst_port, score).

    Vectorised (group-bys, no Python loop per incident but the summary line): 100k alerts take a second.
    """
    if alerts.empty:
        return pd.DataFrame(columns=INCIDENT_COLUMNS), np.array([], dtype=object)
    sources_per_dst = alerts.groupby("dst_ip", dropna=False, observed=True)["src_ip"].transform("nunique")
    by_target = (sources_per_dst >= FLOOD_SOURCES).to_numpy()
    key = np.where(by_target, "dst " + alerts["dst_ip"].astype(str), "src " + alerts["src_ip"].astype(str))
    frame = alerts.assign(_key=key, _target=by_target, _row=np.arange(len(alerts))).sort_values(
        ["_key", "ts", "_row"], kind="stable"
    )
    same_key = frame["_key"].eq(frame["_key"].shift())
    gap = frame["ts"].diff().dt.total_seconds()
    frame["_session"] = (~same_key | (gap > SESSION_GAP.total_seconds())).cumsum()
    frame["_gap"] = gap.where(same_key & frame["_session"].eq(frame["_session"].shift()))
    g = frame.groupby("_session", sort=False)
    a = g.agg(
        key=("_key", "first"),
        by_target=("_target", "first"),
        first_seen=("ts", "min"),
        last_seen=("ts", "max"),
        alerts=("_row", "size"),
        sources=("src_ip", "nunique"),
        destinations=("dst_ip", "nunique"),
        ports=("dst_port", "nunique"),
        top_score=("score", "max"),
        gaps=("_gap", "count"),
        gap_mean=("_gap", "mean"),
        gap_std=("_gap", "std"),
        gap_median=("_gap", "median"),
    )
    a["gap_std"] = a["gap_std"].fillna(0.0)
    a["top_port"] = _mode(frame, "dst_port").reindex(a.index).fillna(-1).astype(int).astype(str).replace("-1", "?")
    a["top_dst"] = _mode(frame, "dst_ip").reindex(a.index).astype(str)
    a["kind"] = _kinds(a)
    a["severity"] = _severities(a, threshold)
    a["summary"] = [_summary(r) for r in a.itertuples()]
    a["_rank"] = a["severity"].map(_SEVERITY_ORDER)
    a = a.sort_values(["_rank", "alerts", "first_seen", "key"], ascending=[True, False, True, True], kind="stable")
    a["incident_id"] = [f"{run_id}-{i:05d}" for i in range(1, len(a) + 1)]
    ids = np.empty(len(alerts), dtype=object)
    ids[frame["_row"].to_numpy()] = a["incident_id"].reindex(frame["_session"]).to_numpy()
    return a[INCIDENT_COLUMNS].reset_index(drop=True), ids


def per_day(incidents: pd.DataFrame, alerts: int, days: float) -> dict[str, Any]:
    """Alerts and incidents per day and alerts absorbed per incident (the triage load)."""
    n = len(incidents)
    return {
        "alerts_per_day": alerts / days if days else None,
        "incidents_per_day": n / days if days else None,
        "alerts_per_incident": alerts / n if n else None,
    }
