"""Write synthetic flows as a Zeek ``conn.log`` TSV, the way Zeek 6 writes it.

The ingest package reads Zeek logs but has no writer (a pipeline never writes Zeek), so
the benchmark brings its own. Output: the ``#separator``/``#set_separator``/
``#empty_field``/``#unset_field``/``#path``/``#open``/``#fields``/``#types`` header, 21
tab-separated conn fields per row (``-`` for unset values, times with 6 decimals,
``local_orig``/``local_resp`` from RFC 1918 addresses) and a ``#close`` trailer. Each
generator batch is formatted column-wise with Arrow compute, so 10M rows stay within
one batch (~250k rows) of memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["CONN_FIELDS", "CONN_TYPES", "header", "format_batch", "write_conn_log"]

CONN_FIELDS = (
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
)
CONN_TYPES = (
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "string",
    "interval",
    "count",
    "count",
    "string",
    "bool",
    "bool",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "set[string]",
)
_PRIVATE = r"^(10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.)"


def header(opened: float) -> str:
    """The eight ``#`` lines Zeek writes before the first row (``opened``: epoch seconds)."""
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(opened))
    return (
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
        f"#open\t{stamp}\n#fields\t" + "\t".join(CONN_FIELDS) + "\n#types\t" + "\t".join(CONN_TYPES) + "\n"
    )


def _fixed6(micros: pa.Array) -> pa.Array:
    """int64 microseconds → ``S.ffffff`` strings (Zeek's fixed 6 decimals); null stays null."""
    secs = pc.cast(pc.divide(micros, 1_000_000), pa.string())
    frac = pc.utf8_lpad(
        pc.cast(pc.subtract(micros, pc.multiply(pc.divide(micros, 1_000_000), 1_000_000)), pa.string()), 6, "0"
    )
    return pc.binary_join_element_wise(secs, frac, ".")


def _text(arr: pa.Array) -> pa.Array:
    return pc.fill_null(arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string()), "-")


def format_batch(batch: pa.RecordBatch) -> bytes:
    """One FLOW_SCHEMA batch → the TSV bytes of its rows (each line ends with ``\\n``)."""
    n = batch.num_rows
    col = batch.column
    ts_us = pc.cast(pc.cast(col("ts"), pa.timestamp("us")), pa.int64())
    dur_us = pc.cast(pc.round(pc.multiply(col("duration"), 1e6)), pa.int64())
    local = {name: pc.if_else(pc.match_substring_regex(col(name), _PRIVATE), "T", "F") for name in ("src_ip", "dst_ip")}
    parts = [
        _fixed6(ts_us),
        col("uid"),
        col("src_ip"),
        col("src_port"),
        col("dst_ip"),
        col("dst_port"),
        col("proto"),
        col("service"),
        _fixed6(dur_us),
        col("src_bytes"),
        col("dst_bytes"),
        col("conn_state"),
        local["src_ip"],
        local["dst_ip"],
        pa.array([0] * n, pa.int64()),
        col("history"),
        col("src_pkts"),
        col("src_ip_bytes"),
        col("dst_pkts"),
        col("dst_ip_bytes"),
        pa.nulls(n, pa.string()),
    ]
    lines = pc.binary_join_element_wise(*[_text(p) for p in parts], "\t")
    body = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), lines), "\n")[0].as_py()
    return body.encode() + b"\n" if n else b""


def write_conn_log(batches: Iterable[pa.RecordBatch], path: Path) -> int:
    """Write ``batches`` to ``path`` (atomically, via ``.tmp``); returns the data rows written."""
    tmp, rows, opened = path.with_name(path.name + ".tmp"), 0, time.time()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as fh:
        fh.write(header(opened).encode())
        for batch in batches:
            fh.write(format_batch(batch))
            rows += batch.num_rows
        fh.write(f"#close\t{time.strftime('%Y-%m-%d-%H-%M-%S', time.gmtime())}\n".encode())
    tmp.replace(path)
    return rows
