"""Alerts and incidents into PostgreSQL (tables from audit migration 2), keyed by run.

One transaction deletes the run's rows and inserts the new ones, so re-running the
same run replaces them, never duplicates them, and a reader never sees half a run.
Parameterised SQL only (``execute_values`` builds the VALUES list from parameters).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

__all__ = ["replace_run"]

PAGE = 1000


def _ts(value: Any) -> Any:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def replace_run(audit: Any, run_id: str, alerts: pd.DataFrame, incidents: pd.DataFrame) -> None:
    """Replace the run's rows in ``incidents`` and ``alerts`` (``audit``: an enabled ``Audit``)."""
    from psycopg2.extras import execute_values

    inc_rows = [
        (run_id, r.incident_id, r.severity, r.kind, _ts(r.first_seen), _ts(r.last_seen), int(r.alerts),
         int(r.sources), int(r.destinations), int(r.ports), float(r.top_score), r.summary)
        for r in incidents.itertuples()
    ]  # fmt: skip
    alert_rows = [
        (run_id, i, r.incident_id, _ts(r.ts), r.uid, r.src_ip, r.dst_ip, _int(r.dst_port), r.proto, float(r.score),
         json.dumps(list(r.top_features)))
        for i, r in enumerate(alerts.itertuples())
    ]  # fmt: skip

    def run(cur: Any) -> None:
        cur.execute("DELETE FROM alerts WHERE run_id = %s", (run_id,))
        cur.execute("DELETE FROM incidents WHERE run_id = %s", (run_id,))
        execute_values(
            cur,
            "INSERT INTO incidents (run_id, incident_id, severity, kind, first_seen, last_seen, alerts, sources, "
            "destinations, ports, top_score, summary) VALUES %s",
            inc_rows,
            page_size=PAGE,
        )
        execute_values(
            cur,
            "INSERT INTO alerts (run_id, alert_no, incident_id, ts, uid, src_ip, dst_ip, dst_port, proto, score, "
            "top_features) VALUES %s",
            alert_rows,
            page_size=PAGE,
        )

    audit.transaction("store alerts and incidents", run)
