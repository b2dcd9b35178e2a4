"""Partitioned silver outputs for tests: a real single-file silver output cut into ``part=<k>`` folders.

The rows of each part are the single file's rows, bit for bit and in the same order, as the
partitioned silver run promises; each part's manifest carries the partition split silver
writes (``method`` "partition", its ``side``, its row counts and ``cutoff_ts``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stages.common.contracts import SilverManifest


def build_single(table: pa.Table, out: Path, holdout_fraction: float = 0.3) -> dict[str, Path]:
    """features.parquet + manifest.json for ``table``, written by the silver stage's own code."""
    from stages.silver import dataset

    out.mkdir(parents=True, exist_ok=True)
    plan = dataset.plan(table)
    split = dataset.split_rows(plan.ts_sorted_us, table.num_rows, holdout_fraction)
    features = dataset.write_silver(table, plan, split, out / "features.parquet")
    has_labels = table.column("label").null_count < table.num_rows
    manifest = dataset.manifest(features, split, table.num_rows, has_labels, plan.skipped, "0" * 64)
    manifest.write(out / "manifest.json")
    return {"features": out / "features.parquet", "manifest": out / "manifest.json"}


def write_part(rows: pa.Table, like: SilverManifest, folder: Path) -> Path:
    """One ``part=<k>`` folder holding ``rows`` (time order, all on one split side) and its
    manifest, with the split silver's ``--part-split`` writes (``dataset.partition_split``)."""
    from stages.silver import dataset

    holdout = int(pc.sum(pc.equal(rows.column("split"), "holdout")).as_py() or 0)
    train = rows.num_rows - holdout
    if train and holdout:
        raise ValueError(f"{folder}: a part holds rows of one split side, these hold {train} train + {holdout} holdout")
    ts_us = rows.column("ts").cast(pa.int64()).to_numpy()
    split = dataset.partition_split(ts_us, rows.num_rows, "holdout" if holdout else "train")
    has_labels = rows.column("label").null_count < rows.num_rows
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, folder / "features.parquet")
    replace(like, rows=rows.num_rows, has_labels=has_labels, split=split.as_dict()).write(folder / "manifest.json")
    return folder


def cut_into_parts(single: dict[str, Path], out: Path, cuts: list[int]) -> Path:
    """``out`` with one ``part=<k>`` folder per row range of the single output (``cuts``: the row
    indexes where a new part starts; one of them must be the first holdout row)."""
    table = pq.read_table(single["features"])
    like = SilverManifest.read(single["manifest"], str(single["manifest"]))
    edges = [0, *cuts, table.num_rows]
    for k, (a, b) in enumerate(zip(edges, edges[1:], strict=False)):
        write_part(table.slice(a, b - a), like, out / f"part={k:05d}")
    return out
