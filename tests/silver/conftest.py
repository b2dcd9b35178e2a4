"""Builders for small canonical flow tables (hand-made rows or the synthetic generator)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.common.schema import FLOW_SCHEMA, conform

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def flows(rows: list[dict[str, Any]]) -> pa.Table:
    """A canonical table from partial rows; ``t`` (seconds after T0) becomes ``ts``."""
    full = []
    for i, row in enumerate(rows):
        r = {"uid": f"C{i}", "proto": "tcp", "conn_state": "SF", "src_bytes": 100, "dst_bytes": 200, **row}
        if "t" in r:
            r["ts"] = T0 + dt.timedelta(seconds=r.pop("t"))
        full.append(r)
    columns = {f.name: pa.array([r.get(f.name) for r in full], f.type) for f in FLOW_SCHEMA}
    return conform(pa.table(columns))


@pytest.fixture
def write_flows(tmp_path: Path) -> Any:
    """Write a table to a Parquet file in tmp_path and return the path."""

    def write(table: pa.Table, name: str = "flows.parquet") -> Path:
        path = tmp_path / name
        pq.write_table(table, path)
        return path

    return write


@pytest.fixture(scope="session")
def synthetic_flows() -> pa.Table:
    """20k labelled synthetic flows (all attack scenarios), generated once per session."""
    from stages.ingest.synthetic import generate

    return generate(20_000, seed=3, attack_share=0.05, days=1.0)
