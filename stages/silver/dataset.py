"""RAW flows in, silver features out: schema check, time order, split, chunked write, manifest.

Two reads keep the peak memory low: first only the columns the time windows need
(their features are computed for all rows at once, because each row needs its past),
then the whole table, from which the per-flow features and the output are built and
written one chunk of rows at a time. 10M rows peak at ~3.5 GB.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stages.common.contracts import PASSTHROUGH, SilverManifest
from stages.common.errors import InputError
from stages.common.schema import FLOW_SCHEMA

from .features import FAILED_STATES, flow_features, flow_groups
from .windows import Flows, context_features, context_groups

__all__ = [
    "CONTEXT_COLUMNS",
    "PASSTHROUGH",
    "Plan",
    "Split",
    "add_flow_groups",
    "check_schema",
    "partition_split",
    "plan",
    "plan_context",
    "read_flows",
    "split_rows",
    "write_silver",
]

log = logging.getLogger(__name__)

CONTEXT_COLUMNS = ["ts", "src_ip", "dst_ip", "dst_port", "conn_state", "src_bytes", "dst_bytes"]
"""What the time-window features read; silver reads these first, on their own, to keep the peak low."""
_DICTIONARY = ["src_ip", "dst_ip", "proto", "service", "conn_state", "history", "attack_type", "source"]
"""Read as dictionaries: repetitive strings cost 4 bytes a row instead of ~15 (10M rows: ~1 GB less)."""
_DICT_OUT = ["src_ip", "dst_ip", "proto", "service", "conn_state", "attack_type", "split"]
CHUNK_ROWS = 500_000


def check_schema(schema: pa.Schema, where: str) -> None:
    """Raise InputError naming every missing or mistyped canonical column."""
    problems = [
        f"{n} appears {schema.names.count(n)} times" for n in dict.fromkeys(schema.names) if schema.names.count(n) > 1
    ]
    for field in FLOW_SCHEMA:
        if field.name not in schema.names:
            problems.append(f"{field.name} missing (expected {field.type})")
        elif schema.names.count(field.name) == 1 and schema.field(field.name).type != field.type:
            problems.append(f"{field.name} is {schema.field(field.name).type}, expected {field.type}")
    if problems:
        raise InputError(
            f"{where}: not the canonical flow schema ({'; '.join(problems)}); "
            "produce it with the ingest stage (python -m stages.ingest)"
        )


def read_flows(path: Path, where: str, columns: list[str] | None = None, allow_empty: bool = False) -> pa.Table:
    """Read a RAW flows Parquet file (all canonical columns, or ``columns``) after checking
    its schema; extra columns are ignored. Memory the reader held is returned to the OS.
    No rows is an InputError unless ``allow_empty`` (scoring: an empty window is a valid batch)."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{where}: not a readable Parquet file ({exc})") from exc
    check_schema(schema, where)
    extra = sorted(set(schema.names) - set(FLOW_SCHEMA.names))
    if extra:
        log.warning("ignoring non-canonical columns %s in %s", extra, where)
    columns = columns or FLOW_SCHEMA.names
    try:
        table = pq.read_table(path, columns=columns, read_dictionary=[c for c in _DICTIONARY if c in columns])
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{where}: corrupt Parquet data ({exc}); re-run the ingest stage") from exc
    pa.default_memory_pool().release_unused()
    if table.num_rows == 0 and not allow_empty:
        raise InputError(f"{where}: no rows; nothing to build features from")
    return table


@dataclass(frozen=True)
class Split:
    """Rows ``[0, train_rows)`` of the ordered output are train, the rest holdout."""

    holdout_fraction: float
    train_rows: int
    holdout_rows: int
    cutoff_ts: str | None
    method: str  # "time" | "row-order" | "partition"
    side: str | None = None  # "partition": the side every row of this partition is on

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "holdout_fraction": self.holdout_fraction,
            "cutoff_ts": self.cutoff_ts,
            "train_rows": self.train_rows,
            "holdout_rows": self.holdout_rows,
            "method": self.method,
        }
        if self.side is not None:
            doc["side"] = self.side
        return doc


def _iso_us(us: int) -> str:
    return str(pa.scalar(us, pa.timestamp("us", tz="UTC")).as_py().isoformat())


def split_rows(ts_sorted_us: np.ndarray | None, n: int, holdout_fraction: float) -> Split:
    """Earliest ``1 - holdout_fraction`` of rows by time is train; rows sharing the cutoff
    timestamp all go to holdout so no instant is split across both sides. Without
    timestamps the split is by row order."""
    target = int(round(n * (1.0 - holdout_fraction)))
    if ts_sorted_us is None:
        return Split(holdout_fraction, target, n - target, None, "row-order")
    if target >= n:
        return Split(holdout_fraction, n, 0, None, "time")
    cutoff = ts_sorted_us[target]
    train = int(np.searchsorted(ts_sorted_us, cutoff, "left"))
    return Split(holdout_fraction, train, n - train, _iso_us(int(cutoff)), "time")


def partition_split(ts_sorted_us: np.ndarray | None, n: int, side: str) -> Split:
    """Every row of a time partition on one ``side``; the list step chose it from the
    partition's place in time. ``cutoff_ts`` is where this side ends in time, like the time
    split's: the first flow of a holdout partition, or just after (+1 µs) the last flow of a
    train partition."""
    cutoff = None
    if ts_sorted_us is not None and n:
        cutoff = _iso_us(int(ts_sorted_us[0]) if side == "holdout" else int(ts_sorted_us[-1]) + 1)
    if side == "holdout":
        return Split(1.0, 0, n, cutoff, "partition", side)
    return Split(0.0, n, 0, cutoff, "partition", side)


@dataclass
class Plan:
    """What will be built for one input: row order, feature groups, skipped groups."""

    order: np.ndarray | None  # row indexes in time order; None keeps the input order
    ts_sorted_us: np.ndarray | None
    flow_groups: list[str]
    context_groups: list[str]
    skipped: dict[str, str]
    context: dict[str, np.ndarray]


def _codes(column: pa.ChunkedArray, order: np.ndarray) -> np.ndarray:
    """Dense int32 codes of a string column in ``order``; null gets its own code."""
    enc = column.combine_chunks()  # unifies the chunks' dictionaries
    if not pa.types.is_dictionary(enc.type):
        enc = pc.dictionary_encode(enc)
    idx = pc.fill_null(enc.indices, len(enc.dictionary)).to_numpy().astype(np.int32)
    return idx[order]


def _flows(table: pa.Table, order: np.ndarray, ts_sorted_us: np.ndarray, available: set[str]) -> Flows:
    # whole milliseconds of the clock, then relative: a flow's window edges must not depend on
    # which flow came first in this input (scoring a later batch gives the same features)
    flows = Flows(rel_ms=ts_sorted_us // 1000 - ts_sorted_us[0] // 1000)
    if "src_ip" in available:
        flows.src = _codes(table.column("src_ip"), order)
    if "dst_ip" in available:
        flows.dst = _codes(table.column("dst_ip"), order)
    if "dst_port" in available:
        flows.port = pc.fill_null(table.column("dst_port"), -1).to_numpy()[order]
    if "conn_state" in available:
        states = pc.utf8_upper(table.column("conn_state").cast(pa.string()))
        flows.failed = pc.fill_null(pc.is_in(states, pa.array(sorted(FAILED_STATES))), False).to_numpy()[order]
    for col in ("src_bytes", "dst_bytes"):
        if col in available:
            values = pc.fill_null(table.column(col), 0).to_numpy().astype(np.int64)
            setattr(flows, col, np.maximum(values[order], 0))
    return flows


def _available(table: pa.Table) -> set[str]:
    return {c for c in table.column_names if table.column(c).null_count < table.num_rows}


def plan_context(table: pa.Table) -> Plan:
    """Row order and contextual features from ``table`` (``CONTEXT_COLUMNS`` suffice)."""
    available = _available(table)
    ts_nulls = table.column("ts").null_count
    if ts_nulls:
        why = "ts is null in every row" if ts_nulls == table.num_rows else f"ts is null in {ts_nulls} rows"
        log.warning("%s: time windows skipped, split by row order", why)
        _, ctx_skipped = context_groups(set())
        return Plan(None, None, [], [], {k: f"needs ts ({why})" for k in ctx_skipped}, {})
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    order = np.argsort(ts, kind="stable")
    ts_sorted = ts[order]
    del ts
    flows = _flows(table, order, ts_sorted, available)
    fields = {"rel_ms"} | {
        f for f in ("src", "dst", "port", "failed", "src_bytes", "dst_bytes") if getattr(flows, f) is not None
    }
    ctx_groups, ctx_skipped = context_groups(fields)
    try:
        context = context_features(flows, ctx_groups)
    except OverflowError as exc:
        raise InputError(f"input: {exc}") from exc
    return Plan(order, ts_sorted, [], ctx_groups, ctx_skipped, context)


def add_flow_groups(p: Plan, table: pa.Table) -> None:
    """Decide the per-flow feature groups from the columns ``table`` has values in."""
    groups, skipped = flow_groups(_available(table))
    p.flow_groups = groups
    p.skipped.update(skipped)


def plan(table: pa.Table) -> Plan:
    """Row order, contextual features and per-flow groups of a table held in memory."""
    p = plan_context(table)
    add_flow_groups(p, table)
    return p


def output_schema(features: list[str]) -> pa.Schema:
    fields = [FLOW_SCHEMA.field(c) for c in PASSTHROUGH] + [pa.field("split", pa.string())]
    return pa.schema(fields + [pa.field(f, pa.float32()) for f in features])


def write_silver(
    table: pa.Table,
    p: Plan,
    split: Split,
    path: Path,
    chunk_rows: int = CHUNK_ROWS,
    keep: np.ndarray | None = None,
    split_label: str | None = None,
) -> list[str]:
    """Write the silver Parquet chunk by chunk; returns the feature names in column order.

    ``keep`` (bool per row in time order) is False for context-only rows such as the
    lookback's, which feed the windows but are not written; ``split.train_rows`` counts
    written rows. Scoring mode passes ``split_label`` ("score") instead of the split.
    """
    n = table.num_rows
    written = 0
    features: list[str] | None = None
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, n, chunk_rows):
            stop = min(n, start + chunk_rows)
            idx = p.order[start:stop] if p.order is not None else np.arange(start, stop)
            rows = np.arange(start, stop) if keep is None else np.flatnonzero(keep[start:stop]) + start
            if keep is not None:
                idx = idx[rows - start]
            chunk = table.take(pa.array(idx))
            feats = flow_features(chunk, p.flow_groups)
            feats.update({name: values[rows] for name, values in p.context.items()})
            if features is None:
                features = list(feats)
                # zstd: smaller and faster to read than snappy here; dictionaries only pay
                # off for the repetitive string columns, not for float features or uid.
                writer = pq.ParquetWriter(path, output_schema(features), compression="zstd", use_dictionary=_DICT_OUT)
            cols = [chunk.column(c).cast(FLOW_SCHEMA.field(c).type) for c in PASSTHROUGH]
            if split_label is not None:
                cols.append(pa.array(np.full(len(rows), split_label)))
            else:
                position = np.arange(written, written + len(rows))
                cols.append(pa.array(np.where(position < split.train_rows, "train", "holdout")))
            written += len(rows)
            cols.extend(pa.array(feats[f], pa.float32()) for f in features)
            assert writer is not None
            writer.write_table(pa.Table.from_arrays(cols, schema=writer.schema))
            log.info("wrote rows %d-%d of %d", start, stop, n, extra={"progress": round(stop / n, 3)})
    finally:
        if writer is not None:
            writer.close()
    return features or []


def manifest(
    features: list[str], split: Split, rows: int, has_labels: bool, skipped: dict[str, str], input_sha256: str
) -> SilverManifest:
    """The training-mode manifest of a silver output (``write`` it beside the features)."""
    return SilverManifest.build(
        features,
        rows=rows,
        has_labels=has_labels,
        skipped_features=skipped,
        input_sha256=input_sha256,
        split=split.as_dict(),
        passthrough=list(PASSTHROUGH),
    )
