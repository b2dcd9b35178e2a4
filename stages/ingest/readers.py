"""Source readers: format detection, Parquet input and the dispatch to each format.

Every reader yields ``Chunk``s (``chunk.py``) — canonical flows, quarantined rows and how
many input records the chunk covered — so the CLI streams any file size in bounded memory
and can check ``rows_in == rows_out + rows_rejected``. The text formats (``zeek``,
``zeekjson``, ``csvflows``) read their files through ``textblocks``; they never import this
module, so the readers form no import circle.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from stages.common.errors import InputError
from stages.common.schema import FLOW_COLUMNS

from .chunk import Chunk
from .normalise import Problems, conform, labels, parse_timestamps, split
from .textblocks import head

__all__ = ["FORMATS", "detect_format", "read_parquet", "read_source"]

log = logging.getLogger(__name__)

FORMATS = ("auto", "zeek", "zeek-json", "csv", "parquet")
_PARQUET_MAGIC = b"PAR1"


def detect_format(path: Path, declared: str = "auto") -> str:
    """The declared format, or one read from the content (magic bytes, first character)."""
    if declared != "auto":
        return declared
    with open(path, "rb") as fh:
        if fh.read(4) == _PARQUET_MAGIC:
            return "parquet"
    first = head(path).lstrip()
    if not first:
        raise InputError(f"{path}: empty file (no bytes after decompression); nothing to ingest")
    if first.startswith(b"#"):
        return "zeek"
    if first.startswith(b"{"):
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
