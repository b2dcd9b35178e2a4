"""Silver in training mode: features of the input's flows, split into train and holdout.

The split is by time: the earliest ``1 - --holdout-fraction`` of the rows is train, or,
for one partition of a partitioned run, ``--part-split`` puts every row on one side
(the list step chose it from the partition's place in time). Flows of ``--lookback``
(the previous partition's RAW) and input rows before ``--window``'s start feed the
context windows and are not written, exactly as in scoring mode
(``scoring.context_and_batch``): the partitions' outputs, concatenated, are the
single-pass output of all their flows, bit for bit.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.common.errors import InputError

from . import dataset
from .scoring import context_and_batch, lookback_path, window_of

__all__ = ["run"]

log = logging.getLogger(__name__)


def _read_with_context(
    path: Path,
    uri: str,
    lookback: Path | None,
    lookback_uri: str,
    window: tuple[int | None, int | None],
    columns: list[str] | None = None,
) -> tuple[pa.Table, np.ndarray, int]:
    """The input's rows in ``window`` plus their context rows (``context_and_batch``); the
    first, narrow read (``columns``) is the one that warns about the lookback."""
    table = dataset.read_flows(path, uri, columns)
    before = dataset.read_flows(lookback, lookback_uri, columns, allow_empty=True) if lookback else None
    return context_and_batch(table, before, *window, warn=columns is not None)


def _split(args: Any, ts_sorted_us: np.ndarray | None, n: int) -> dataset.Split:
    if args.part_split:
        return dataset.partition_split(ts_sorted_us, n, args.part_split)
    split = dataset.split_rows(ts_sorted_us, n, args.holdout_fraction)
    if split.train_rows == 0:
        raise InputError(f"{args.input}: the split leaves no train rows ({n} rows, all at the cutoff time)")
    return split


def run(ctx: Any) -> None:
    """The training-mode body of the silver CLI (``ctx``: the runner's StageContext)."""
    args = ctx.args
    if not args.part_split and not 0.0 <= args.holdout_fraction < 1.0:
        raise InputError(f"--holdout-fraction {args.holdout_fraction}: must be in [0, 1)")
    path = ctx.storage.fetch(args.input)
    lookback = lookback_path(ctx)
    window = window_of(args)
    # two reads keep the peak low (see dataset): the windows' columns of every row first
    narrow, emit, lookback_rows = _read_with_context(
        path, args.input, lookback, args.lookback, window, columns=dataset.CONTEXT_COLUMNS
    )
    if not emit.any():
        raise InputError(f"{args.input}: no flows in --window {args.window}; nothing to build features from")
    plan = dataset.plan_context(narrow)
    del narrow
    table, emit, _ = _read_with_context(path, args.input, lookback, args.lookback, window)
    dataset.add_flow_groups(plan, table)
    n = int(emit.sum())
    source = ctx.record("input", "flows", args.input, path, rows=n)
    if lookback:
        ctx.record("input", "lookback", args.lookback, lookback, rows=lookback_rows)
    if not plan.flow_groups and not plan.context_groups:
        raise InputError(f"{args.input}: no feature can be built, the columns they need are null: {plan.skipped}")
    keep = None if n == table.num_rows else (emit[plan.order] if plan.order is not None else emit)
    ts_written = plan.ts_sorted_us if keep is None or plan.ts_sorted_us is None else plan.ts_sorted_us[keep]
    split = _split(args, ts_written, n)
    labels = table.column("label") if keep is None else table.column("label").filter(pa.array(emit))
    with ctx.output("features", args.output, ".parquet") as out:
        features = dataset.write_silver(table, plan, split, out.path, keep=keep)
        out.rows = n
    manifest = dataset.manifest(features, split, n, labels.null_count < n, plan.skipped, source.sha256 or "")
    with ctx.output("manifest", args.manifest, ".json", primary=True) as out:
        manifest.write(out.path)
    for group, reason in sorted(plan.skipped.items()):
        log.info("feature group %s skipped: %s", group, reason)
    ctx.metrics.update(
        rows=n,
        context_rows=table.num_rows - n,
        lookback_rows=lookback_rows,
        train_rows=split.train_rows,
        holdout_rows=split.holdout_rows,
        features=len(features),
        skipped_features=len(plan.skipped),
        labelled_attacks=int(pc.sum(pc.fill_null(labels, 0)).as_py() or 0),
        split_method=split.method,
    )
    for name, value in (
        ("rows", n),
        ("train_rows", split.train_rows),
        ("holdout_rows", split.holdout_rows),
        ("sha256", ctx.sha256("features")),
        ("schema_hash", manifest.schema_hash),
    ):
        ctx.set_param(name, value)
