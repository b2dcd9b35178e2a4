"""Odd and corrupt files shared by the stage suites' hostile-input tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def corrupt_pages(table: pa.Table, path: Path) -> Path:
    """``table`` as Parquet whose every column chunk starts with a garbage page header (footer intact)."""
    pq.write_table(table, path, compression="zstd")
    meta = pq.read_metadata(path)
    data = bytearray(path.read_bytes())
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            chunk = meta.row_group(g).column(c)
            start = chunk.dictionary_page_offset or chunk.data_page_offset
            for i in range(start, start + 8):
                data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def duplicate_column(table: pa.Table, name: str, path: Path) -> Path:
    """``table`` plus a second column called ``name``."""
    pq.write_table(pa.Table.from_arrays([*table.columns, table.column(name)], names=[*table.column_names, name]), path)
    return path
