"""Stream chunks into flows.parquet and rejects.parquet, with counts, duplicates and progress.

Flows are written in row groups as they arrive (``ParquetWriter``), so memory stays
bounded by one chunk plus 8 bytes per row for duplicate detection. Duplicates are kept
and counted: dropping them would change row counts silently, and a repeated log line is
evidence worth keeping — silver may deduplicate explicitly. What is compared is what a
user means by a duplicate row: the whole source record, byte for byte, where the reader
hands it over (CSV: a mapping keeps a dozen of UNSW-NB15's 49 columns, and rows equal in
those alone are not duplicates); otherwise (Zeek TSV/JSON, Parquet) every canonical column
but ``source`` — for Zeek that includes the connection ``uid``. ``Stats.duplicates_compared``
names it in the log and the metrics.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stages.common.errors import InputError
from stages.common.schema import FLOW_SCHEMA

from .chunk import Chunk
from .normalise import REJECT_SCHEMA

__all__ = ["Stats", "write_chunks", "row_hashes"]

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 5.0
RECORDS = "whole source records"
CANONICAL = "canonical columns (all but source)"
EXAMPLES = 3  # example rejects kept per reason for the reject-budget message
# One random odd 64-bit key per byte position (cycling after 4096): a string's hash is the
# mixed sum of (byte + 1) * key[position], computed for all strings at once.
_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
_UNIQUE_STRINGS = frozenset({"uid"})  # about one value per row: hashed directly, not via a dictionary
# Only these columns repeat enough for Parquet dictionary pages to pay off; trying (and
# abandoning) dictionaries on uid, ts and the counters doubled the write time.
_DICTIONARY_COLUMNS = ["src_ip", "dst_ip", "proto", "service", "conn_state", "history", "attack_type", "source"]
_POSITION_KEYS = np.random.default_rng(20260105).integers(0, 2**63, 4096, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


@dataclass
class Stats:
    """Counts of one ingest; ``rows_in == rows_out + rejected`` is checked before publishing."""

    rows_in: int = 0
    rows_out: int = 0
    rejected: int = 0
    duplicates: int = 0
    duplicates_compared: set[str] = field(default_factory=set)  # RECORDS and/or CANONICAL
    rejects_by_reason: Counter[str] = field(default_factory=Counter)
    # up to EXAMPLES rejects (line, field, full reason, raw) per reason, for the reject-budget message
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unknown_labels: Counter[str] = field(default_factory=Counter)
    labelled_rows: int = 0
    attack_rows: int = 0
    seconds: float = 0.0

    def reject_fraction(self) -> float:
        return self.rejected / self.rows_in if self.rows_in else 0.0

    def reject_summary(self, reasons: int = 3) -> str:
        """The top reasons with counts and EXAMPLES example lines (the top reason's first)."""
        top = self.rejects_by_reason.most_common(reasons)
        lines = [f"{count} x {reason}" for reason, count in top]
        shown = [ex for reason, _ in top for ex in self.examples.get(reason, [])][:EXAMPLES]
        for ex in shown:
            raw = ex["raw"] if len(ex["raw"]) <= 160 else ex["raw"][:160] + "..."
            lines.append(f"line {ex['line']} ({ex['field'] or 'record'}: {ex['reason']}): {raw}")
        return "\n  ".join(["", *lines])

    def metrics(self) -> dict[str, Any]:
        """Headline numbers for ``ctx.metrics`` (JSON-ready)."""
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rejected": self.rejected,
            "rejects_by_reason": dict(sorted(self.rejects_by_reason.items())),
            "duplicates": self.duplicates,
            "duplicates_compared": " + ".join(sorted(self.duplicates_compared)) or None,
            "unknown_labels": sum(self.unknown_labels.values()),
            "unknown_label_values": dict(self.unknown_labels.most_common(20)),
            "labelled_rows": self.labelled_rows,
            "attack_rows": self.attack_rows,
            "rows_per_second": round(self.rows_in / self.seconds) if self.seconds > 0 else None,
        }


def write_chunks(chunks: Iterable[Chunk], flows_path: Path, rejects_path: Path, count_duplicates: bool = True) -> Stats:
    """Write every chunk; log progress every few seconds; return the counts.

    Each chunk is written in one background thread and hashed (for duplicates) in
    another while the reader parses the next one — Parquet encoding, zstd, Arrow compute
    and numpy release the GIL — with at most one chunk in flight, so memory stays
    bounded. Raises InputError if a reader ever lost or invented a row (a bug, but never
    silent).
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    stats, started, last = Stats(), time.monotonic(), time.monotonic()
    hashes: list[np.ndarray] = []
    pending: list[Future[Any]] = []
    with (
        pq.ParquetWriter(flows_path, FLOW_SCHEMA, compression="zstd", use_dictionary=_DICTIONARY_COLUMNS) as flows,
        pq.ParquetWriter(rejects_path, REJECT_SCHEMA, compression="zstd") as rejects,
        ThreadPoolExecutor(1, thread_name_prefix="write") as write_pool,
        ThreadPoolExecutor(1, thread_name_prefix="hash") as hash_pool,
    ):
        for chunk in chunks:
            if chunk.rows_in != chunk.flows.num_rows + chunk.rejects.num_rows:
                raise InputError(
                    f"internal accounting error: {chunk.rows_in} records in, {chunk.flows.num_rows} flows + "
                    f"{chunk.rejects.num_rows} rejects out; please report with the input file"
                )
            _account(stats, chunk)
            for done in pending:
                done.result()
            pending = [write_pool.submit(_store, chunk, flows, rejects)]
            if count_duplicates and chunk.flows.num_rows:
                stats.duplicates_compared.add(CANONICAL if chunk.records is None else RECORDS)
                pending.append(hash_pool.submit(_hash_into, hashes, chunk))
            if time.monotonic() - last >= PROGRESS_SECONDS:
                last = time.monotonic()
                rate = stats.rows_in / max(last - started, 1e-9)
                log.info("progress: %d rows read, %d rejected, %.0f rows/s", stats.rows_in, stats.rejected, rate)
        for done in pending:
            done.result()
    if hashes:
        everything = np.sort(np.concatenate(hashes))  # sorting beats np.unique's hash table ~50x here
        stats.duplicates = int(np.count_nonzero(everything[1:] == everything[:-1]))
    stats.seconds = time.monotonic() - started
    return stats


def _hash_into(hashes: list[np.ndarray], chunk: Chunk) -> None:
    # one hashing thread: chunks append in order
    hashes.append(row_hashes(chunk.flows) if chunk.records is None else record_hashes(chunk.records))


def record_hashes(records: pa.Array, slice_bytes: int = 4 << 20) -> np.ndarray:
    """``_string_hashes`` of whole records, a few MB at a time: it needs ~24 bytes of scratch per
    input byte, which over a 32 MB block of 300-byte CSV lines would be most of a GiB."""
    n = len(records)
    per = max(1, int(n * slice_bytes // max(records.nbytes, 1)))
    return np.concatenate([_string_hashes(records.slice(i, per)) for i in range(0, n, per)] or [np.zeros(0, np.uint64)])


def _store(chunk: Chunk, flows: pq.ParquetWriter, rejects: pq.ParquetWriter) -> None:
    if chunk.flows.num_rows:
        flows.write_table(chunk.flows, row_group_size=1 << 20)
    if chunk.rejects.num_rows:
        rejects.write_table(chunk.rejects)


def _account(stats: Stats, chunk: Chunk) -> None:
    stats.rows_in += chunk.rows_in
    stats.rows_out += chunk.flows.num_rows
    stats.rejected += chunk.rejects.num_rows
    stats.unknown_labels.update(chunk.unknown_labels)
    if chunk.rejects.num_rows:
        for item in pc.value_counts(chunk.rejects.column("reason").combine_chunks()):
            stats.rejects_by_reason[str(item["values"].as_py()).split(":", 1)[0]] += item["counts"].as_py()
        if any(len(stats.examples.get(r, ())) < EXAMPLES for r in stats.rejects_by_reason):
            for row in chunk.rejects.slice(0, 1000).to_pylist():
                kept = stats.examples.setdefault(str(row["reason"]).split(":", 1)[0], [])
                if len(kept) < EXAMPLES:
                    kept.append(row)
    label = chunk.flows.column("label")
    stats.labelled_rows += len(label) - label.null_count
    stats.attack_rows += int(pc.sum(label).as_py() or 0)


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def row_hashes(table: pa.Table) -> np.ndarray:
    """A 64-bit hash per row over every column but ``source`` (stable within one process)."""
    n = table.num_rows
    h = np.zeros(n, np.uint64)
    for name in table.column_names:
        if name == "source":
            continue
        arr = table.column(name).combine_chunks()
        if pa.types.is_string(arr.type):
            col = _string_hashes(arr) if name in _UNIQUE_STRINGS else _dictionary_hashes(arr)
        else:
            wide = pa.float64() if pa.types.is_floating(arr.type) else pa.int64()
            if not arr.null_count:  # same value as below with an all-zero null mask, without the copies
                col = arr.cast(wide).to_numpy().view(np.uint64)
            else:
                filled = pc.fill_null(arr.cast(wide), 0).to_numpy(zero_copy_only=False)
                nulls = arr.is_null().to_numpy(zero_copy_only=False).astype(np.uint64) << np.uint64(63)
                col = filled.view(np.uint64) ^ nulls
        with np.errstate(over="ignore"):
            h = _mix(h * np.uint64(0x100000001B3) ^ col.astype(np.uint64, copy=False))
    return h


def _dictionary_hashes(arr: pa.Array) -> np.ndarray:
    """``_string_hashes`` of each distinct value once, broadcast by dictionary index (same values)."""
    encoded = pc.dictionary_encode(arr)
    table = np.append(_string_hashes(encoded.dictionary), _NULL_HASH)  # null index → the last entry
    return table[pc.fill_null(encoded.indices, len(encoded.dictionary)).to_numpy(zero_copy_only=False)]


def _string_hashes(arr: pa.Array) -> np.ndarray:
    """Vectorised 64-bit hash of each string from Arrow's offsets/data buffers (null → constant)."""
    n = len(arr)
    _validity, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32, count=n + 1, offset=arr.offset * 4).astype(np.int64)
    start, lengths = offsets[:-1], np.diff(offsets)
    lo, hi = int(offsets[0]), int(offsets[-1])
    out = np.zeros(n, np.uint64)
    width = int(lengths[0]) if n else 0
    if 0 < width <= len(_POSITION_KEYS) and hi - lo == n * width and bool((lengths == width).all()):
        # Equal lengths (Zeek uids): the bytes form an n x width matrix — one product, same hashes, ~7x faster.
        data = np.frombuffer(data_buf, np.uint8)[lo:hi].reshape(n, width)
        with np.errstate(over="ignore"):
            out = (data.astype(np.uint64) + np.uint64(1)) @ _POSITION_KEYS[:width]
    elif hi > lo:
        data = np.frombuffer(data_buf, np.uint8)[lo:hi]
        local = np.arange(hi - lo, dtype=np.int64) - np.repeat(start - lo, lengths)
        keys = _POSITION_KEYS[local & (len(_POSITION_KEYS) - 1)]
        with np.errstate(over="ignore"):
            weighted = (data.astype(np.uint64) + np.uint64(1)) * keys
        nonempty = lengths > 0
        out[nonempty] = np.add.reduceat(weighted, (start - lo)[nonempty])
    out = _mix(out ^ (lengths.astype(np.uint64) + np.uint64(0x632BE59BD9B4E019)))
    if arr.null_count:
        out[arr.is_null().to_numpy(zero_copy_only=False)] = _NULL_HASH
    return out
