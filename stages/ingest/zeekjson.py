"""Zeek conn logs as JSON lines (``LogAscii::use_json``): ts as epoch number or ISO 8601 string.

Fast path: pyarrow's multi-threaded JSON reader with the canonical Zeek keys typed
explicitly (other keys ignored). A block it cannot read — a line that is not a JSON
object, bad UTF-8, a value of an unexpected type, a huge line — is re-read line by line
with ``json.loads`` so each bad line is quarantined with its line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pjson

from .chunk import Chunk, SourceLines
from .normalise import raw_text, reject_rows
from .textblocks import MAX_LINE_BYTES, TOO_LONG, blocks, numbered_lines
from .zeek import CONN_FIELDS, DETAIL_FIELDS, LABEL_FIELDS, ZEEK_TYPES, to_chunk

__all__ = ["read_json"]

_KEYS = [*CONN_FIELDS, *LABEL_FIELDS, *DETAIL_FIELDS]
_TYPES = {
    "id.orig_p": "port",
    "id.resp_p": "port",
    "duration": "interval",
    **{k: "count" for k in ("orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes")},
}


def read_json(path: Path, source: str) -> Iterator[Chunk]:
    """Chunks of a Zeek JSON log (plain or gzip)."""
    line = 1
    for block in blocks(path):
        yield _fast(block, line, source) or _careful(block, line, source)
        line += block.count(b"\n")


def _schema(block: bytes | bytearray) -> pa.Schema:
    """Canonical keys with their Zeek types; ts typed as the block's first record writes it."""
    first = next((raw for raw in bytes(block[: 1 << 16]).split(b"\n") if raw.strip()), b"{}")
    try:
        ts = json.loads(first).get("ts")
    except (ValueError, AttributeError, RecursionError):
        ts = None
    fields = [(k, ZEEK_TYPES.get(_TYPES.get(k, "string"), pa.string())) for k in _KEYS if k != "ts"]
    return pa.schema([("ts", pa.float64() if isinstance(ts, (int, float)) else pa.string()), *fields])


def _fast(block: bytes | bytearray, line: int, source: str) -> Chunk | None:
    try:
        table = pjson.read_json(
            pa.BufferReader(block),
            read_options=pjson.ReadOptions(use_threads=True, block_size=1 << 20),
            parse_options=pjson.ParseOptions(explicit_schema=_schema(block), unexpected_field_behavior="ignore"),
        )
        table.validate(full=True)  # Arrow's JSON reader passes non-UTF-8 bytes into strings unchecked
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return to_chunk(table, source, SourceLines(lambda: numbered_lines(block, line, "blank")), table.num_rows, [])


def _careful(block: bytes | bytearray, line: int, source: str) -> Chunk:
    """Each line decoded with ``json.loads``; every wanted value kept as text and typed by ``conform``."""
    rejects: list[tuple[int | None, str | None, str, str]] = []
    good: list[tuple[int, bytes]] = []
    columns: dict[str, list[str | None]] = {k: [] for k in _KEYS}
    all_lines = numbered_lines(block, line, "blank")
    for no, raw in all_lines:
        text = raw_text(raw)
        if len(raw) > MAX_LINE_BYTES:
            rejects.append((no, None, TOO_LONG, text))
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            rejects.append((no, None, "non-UTF-8 bytes", text))
            continue
        except ValueError as exc:
            rejects.append((no, None, f"invalid JSON: {exc}", text))
            continue
        except RecursionError:
            rejects.append((no, None, "invalid JSON: nested too deeply", text))
            continue
        if not isinstance(record, dict):
            rejects.append((no, None, "not a JSON object", text))
            continue
        for k in _KEYS:
            v = record.get(k)
            columns[k].append(None if v is None else v if isinstance(v, str) else json.dumps(v))
        good.append((no, raw))
    present = [k for k in _KEYS if any(v is not None for v in columns[k])]
    table = pa.table(
        {k: pa.array(columns[k], pa.string()) for k in present} or {"ts": pa.nulls(len(good), pa.string())}
    )
    return to_chunk(table, source, SourceLines(good), len(all_lines), [reject_rows(source, rejects)])
