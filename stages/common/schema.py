"""The canonical flow schema every ingest reader produces (see DESIGN.md).

Fields a source format lacks are null, never invented.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["FLOW_SCHEMA", "FLOW_COLUMNS", "NUMERIC_COLUMNS", "conform"]

FLOW_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("uid", pa.string()),
        pa.field("src_ip", pa.string()),
        pa.field("src_port", pa.int32()),
        pa.field("dst_ip", pa.string()),
        pa.field("dst_port", pa.int32()),
        pa.field("proto", pa.string()),
        pa.field("service", pa.string()),
        pa.field("duration", pa.float64()),  # seconds
        pa.field("src_bytes", pa.int64()),
        pa.field("dst_bytes", pa.int64()),
        pa.field("src_pkts", pa.int64()),
        pa.field("dst_pkts", pa.int64()),
        pa.field("src_ip_bytes", pa.int64()),
        pa.field("dst_ip_bytes", pa.int64()),
        pa.field("conn_state", pa.string()),
        pa.field("history", pa.string()),
        pa.field("label", pa.int8()),  # 0 benign, 1 malicious, null unknown
        pa.field("attack_type", pa.string()),  # null when benign or unknown
        pa.field("source", pa.string()),  # where the row came from (file, preset, generator)
    ]
)

FLOW_COLUMNS = FLOW_SCHEMA.names
NUMERIC_COLUMNS = [f.name for f in FLOW_SCHEMA if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]


def conform(table: pa.Table) -> pa.Table:
    """Return ``table`` with exactly the canonical columns, order and types.

    Missing columns are added as nulls; extra columns are dropped. Casting is safe
    (raises ``pa.ArrowInvalid`` on overflow or unparseable values) so callers decide
    whether a bad value is an input error or a quarantined row.
    """
    columns = []
    for field in FLOW_SCHEMA:
        if field.name in table.column_names:
            col = table.column(field.name)
            columns.append(col if col.type == field.type else col.cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=FLOW_SCHEMA)
