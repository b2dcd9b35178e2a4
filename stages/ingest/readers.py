"""Source readers: format detection, byte blocks, Parquet input and the dispatch to each format.

Every reader yields ``Chunk``s — canonical flows, quarantined rows and how many input
records the chunk covered — so the CLI streams any file size in bounded memory and can
check ``rows_in == rows_out + rows_rejected``. Text formats are read in blocks of whole
lines (``blocks``) with line numbers kept for the rejects file; gzip is recognised by its
magic bytes, and a truncated or corrupt stream is an ``InputError`` naming the file.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pyarrow as pa

from stages.common.errors import InputError
from stages.common.schema import FLOW_COLUMNS

from .normalise import REJECT_SCHEMA, Problems, conform, labels, parse_timestamps, split

__all__ = ["Chunk", "FORMATS", "MAX_LINE_BYTES", "TOO_LONG", "detect_format", "read_source", "open_binary", "blocks"]

log = logging.getLogger(__name__)

FORMATS = ("auto", "zeek", "zeek-json", "csv", "parquet")
BLOCK_BYTES = 32 << 20  # text read per block; a block ends on a line boundary
MAX_LINE_BYTES = 1 << 20  # longer lines are quarantined ("line too long"), and only this much of them is read
TOO_LONG = f"line too long: over {MAX_LINE_BYTES} bytes"
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_BOM = b"\xef\xbb\xbf"


@dataclass
class Chunk:
    """One block's outcome: flows in FLOW_SCHEMA, rejects in REJECT_SCHEMA, records read."""

    flows: pa.Table
    rejects: pa.Table
    rows_in: int
    unknown_labels: dict[str, int] = field(default_factory=dict)
    # the whole source record of each flow row (binary), where the reader has it: duplicates
    # are then counted over source records, not over the canonical columns a mapping kept
    records: pa.Array | None = None


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, transparently gunzipped when it starts with the gzip magic."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")  # noqa: SIM115


def blocks(path: Path, size: int = BLOCK_BYTES) -> Iterator[bytearray]:
    """Yield the (decompressed) file in blocks of ~``size`` bytes that end with a newline.

    The next block is read (and gunzipped) in a background thread while the caller parses
    the current one. Each block is completed to the end of its last line with ``readline``,
    so nothing is copied twice; a UTF-8 BOM is dropped. Memory stays bounded whatever the
    input: a line that goes on past MAX_LINE_BYTES (a gzip bomb of zeros has no newline at
    all) is kept only up to the limit, so it is rejected as too long, and the rest of it is
    read and dropped in 1 MiB pieces. Raises InputError when a gzip
    stream is truncated or corrupt (nothing after the damage can be trusted, so the whole
    file is refused rather than half-ingested).
    """
    from concurrent.futures import ThreadPoolExecutor

    with open_binary(path) as fh, ThreadPoolExecutor(1, thread_name_prefix="read") as pool:
        ahead = pool.submit(_read_block, fh, size, path)
        first = True
        while True:
            block = ahead.result()
            if not block:
                return
            ahead = pool.submit(_read_block, fh, size, path)
            if first and block.startswith(_BOM):
                del block[: len(_BOM)]
            first = False
            yield block


def _read_block(fh: IO[bytes], size: int, path: Path) -> bytearray:
    try:
        block = bytearray(fh.read(size))
        if block and not block.endswith(b"\n"):
            rest = fh.readline(MAX_LINE_BYTES + 1)
            block += rest
            if len(rest) > MAX_LINE_BYTES:  # over the limit and still going: drop the remainder
                while (piece := fh.readline(1 << 20)) and not piece.endswith(b"\n"):
                    pass
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(f"{path}: truncated or corrupt gzip stream ({exc}); re-copy or re-export the file") from exc
    if block and not block.endswith(b"\n"):
        block += b"\n"
    return block


def _head(path: Path, n: int = 4096) -> bytes:
    try:
        with open_binary(path) as fh:
            return fh.read(n).removeprefix(_BOM)
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(f"{path}: truncated or corrupt gzip stream ({exc}); re-copy or re-export the file") from exc


def detect_format(path: Path, declared: str = "auto") -> str:
    """The declared format, or one read from the content (magic bytes, first character)."""
    if declared != "auto":
        return declared
    with open(path, "rb") as fh:
        if fh.read(4) == _PARQUET_MAGIC:
            return "parquet"
    head = _head(path).lstrip()
    if not head:
        raise InputError(f"{path}: empty file (no bytes after decompression); nothing to ingest")
    if head.startswith(b"#"):
        return "zeek"
    if head.startswith(b"{"):
        return "zeek-json"
    return "csv"


def read_source(
    path: Path, source: str, fmt: str = "auto", preset: str | None = None, mapping: Path | None = None
) -> Iterator[Chunk]:
    """Chunks of any supported file; ``source`` is the URI written into the ``source`` column."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes); nothing to ingest — check the export that produced it")
    fmt = detect_format(path, fmt)
    log.info("reading %s as %s", source, fmt)
    if fmt == "zeek":
        from .zeek import read_tsv

        return read_tsv(path, source)
    if fmt == "zeek-json":
        from .zeekjson import read_json

        return read_json(path, source)
    if fmt == "csv":
        from .csvflows import read_csv

        return read_csv(path, source, preset, mapping)
    if fmt == "parquet":
        return read_parquet(path, source)
    raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def read_parquet(path: Path, source: str, batch_rows: int = 262144) -> Iterator[Chunk]:
    """Parquet with canonical column names (extra columns ignored, missing ones null).

    ``line`` in rejects is the 1-based row number in the file; ``raw`` the row as JSON.
    """
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise InputError(f"{path}: column name(s) {twice[:10]} appear more than once; which one is meant is ambiguous")
    present = [c for c in FLOW_COLUMNS if c in names and c != "source"]
    if not present:
        raise InputError(
            f"{path}: Parquet columns {names[:12]} include none of the canonical flow columns "
            f"({', '.join(FLOW_COLUMNS)}); convert it or use --format csv with --mapping"
        )
    for name in present:
        typ = pf.schema_arrow.field(name).type
        if pa.types.is_nested(typ) or pa.types.is_binary(typ):
            raise InputError(f"{path}: column {name!r} has type {typ}, which cannot hold a flow's {name}")
    extra = [c for c in names if c not in FLOW_COLUMNS]
    if extra:
        log.warning("%s: ignoring non-canonical columns %s", source, extra[:20])
    return _parquet_chunks(pf, present, source, batch_rows)


def _parquet_chunks(pf: object, present: list[str], source: str, batch_rows: int) -> Iterator[Chunk]:
    offset = 0
    for batch in _batches(pf, present, source, batch_rows):
        n = batch.num_rows
        problems = Problems(n)
        cols = {name: batch.column(name) for name in present}
        unknown: dict[str, int] = {}
        if "ts" in cols:
            cols["ts"], bad = parse_timestamps(cols["ts"])
            problems.add(bad, "ts", "unparseable timestamp")
        if "label" in cols and not pa.types.is_integer(cols["label"].type):
            cols["label"], atk, unknown = labels(cols["label"], cols.get("attack_type"), n)
            cols["attack_type"] = atk
        table = conform(cols, n, source, problems)

        def raw(idx: object, batch: pa.RecordBatch = batch, base: int = offset) -> tuple[list[int | None], list[str]]:
            rows = _plain(batch.take(pa.array(idx))).to_pylist()
            return [base + int(i) + 1 for i in idx], [json.dumps(r, default=str, sort_keys=True) for r in rows]  # type: ignore[attr-defined]

        good, rejects = split(table, problems, source, raw)
        offset += n
        yield Chunk(good, rejects, n, unknown)


def _batches(pf: object, columns: list[str], source: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The file's record batches; a page that cannot be decoded ends the file with an InputError."""
    batches = pf.iter_batches(batch_size=batch_rows, columns=columns)  # type: ignore[attr-defined]
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{source}: corrupt Parquet data ({exc}); re-copy or re-export the file") from exc
        yield batch


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Temporal columns as their stored integers: a year past 9999 has no Python datetime."""
    cols = [
        c.view(pa.int64() if c.type.bit_width == 64 else pa.int32()) if pa.types.is_temporal(c.type) else c
        for c in batch.columns
    ]
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def empty_rejects() -> pa.Table:
    return REJECT_SCHEMA.empty_table()
