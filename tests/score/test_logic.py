"""Pure parts of the score stage: incident grouping, PSI, the page's escaping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.score import drift, incidents, report

T0 = pd.Timestamp("2026-03-01T10:00:00", tz="UTC")


def _alerts(rows: list[tuple[float, str, str, int]]) -> pd.DataFrame:
    """(seconds after T0, src, dst, port) → an alerts frame."""
    return pd.DataFrame(
        {
            "ts": [T0 + pd.Timedelta(seconds=s) for s, *_ in rows],
            "src_ip": [r[1] for r in rows],
            "dst_ip": [r[2] for r in rows],
            "dst_port": [r[3] for r in rows],
            "proto": "tcp",
            "score": np.linspace(0.6, 0.7, len(rows)),
        }
    )


def test_a_port_scan_is_one_incident() -> None:
    """One source probing 800 ports in 10 minutes: one incident, not 800."""
    scan = _alerts([(i * 0.75, "10.9.9.9", "10.0.0.5", 1000 + i) for i in range(800)])
    table, ids = incidents.group(scan, 0.55, "run")
    assert len(table) == 1 and set(ids) == {"run-00001"}
    row = table.iloc[0]
    assert (row.kind, row.alerts, row.ports, row.severity) == ("vertical-scan", 800, 800, "high")
    assert "10.9.9.9 probed 800 ports on 1 host(s)" in row.summary


def test_a_beaconing_pair_is_one_incident_and_quiet_sessions_split() -> None:
    beacon = [(i * 60.0 + (i % 3), "10.1.1.1", "203.0.113.7", 443) for i in range(120)]  # 2 h, every ~60 s
    later = [(6 * 3600 + i * 5.0, "10.1.1.1", "10.0.0.22", 22) for i in range(3)]  # after a 4 h pause
    table, _ = incidents.group(_alerts(beacon + later), 0.55, "run")
    assert sorted(table["kind"]) == ["anomalous-flows", "beaconing"]
    assert table.set_index("kind").loc["beaconing", "alerts"] == 120


def test_a_flood_is_one_incident_per_target() -> None:
    flood = _alerts([(i * 0.1, f"198.51.100.{i % 200}", "10.0.3.10", 80) for i in range(1000)])
    table, ids = incidents.group(flood, 0.55, "run")
    assert len(table) == 1 and table.iloc[0].kind == "flood" and table.iloc[0].sources == 200
    assert "10.0.3.10 flooded by 200 sources" in table.iloc[0].summary


def test_no_alerts_no_incidents() -> None:
    table, ids = incidents.group(_alerts([]), 0.5, "run")
    assert table.empty and len(ids) == 0 and list(table.columns) == incidents.INCIDENT_COLUMNS


@pytest.mark.parametrize(
    ("expected", "counts", "low", "high"),
    [
        ([0.5, 0.5], [50, 50], 0.0, 1e-12),
        ([0.5, 0.5], [90, 10], 0.87, 0.89),  # 0.4 ln 1.8 + 0.4 ln 5
        ([0.5, 0.5], [0, 0], None, None),
    ],
)
def test_psi(expected: list[float], counts: list[int], low: float | None, high: float | None) -> None:
    value = drift.psi(np.array(expected), np.array(counts))
    if low is None:
        assert value is None
    else:
        assert value is not None and low <= value <= high


def test_page_escapes_flow_strings_and_loads_nothing() -> None:
    evil = '"><script>alert(1)</script><img src=http://x/y>'
    alerts = _alerts([(0, evil, "10.0.0.1", 80)])
    alerts["top_features"] = [[{"feature": "<b>f</b>", "value": 1.0, "z": 3.0}]]
    table, ids = incidents.group(alerts, 0.5, "run")
    alerts["incident_id"] = ids
    info = {"run_id": "<r>", "model": "m", "threshold": "0.5", "rows": 1, "window": "w"}
    page = report.render(alerts, table, {"reasons": ["<x>"], "drifted": True}, info)
    assert "<script>" not in page and "<img" not in page and "<b>f</b>" not in page
    assert "&lt;script&gt;" in page and "default-src 'none'" in page
