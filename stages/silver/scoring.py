"""Silver in scoring mode: the training feature code path on new flows, driven by the training manifest.

Features are built by exactly the functions training used (``dataset.plan`` and
``dataset.write_silver``), so a flow gets bit-identical features in both modes (a
test checks it). What differs:

* no split: every emitted row has ``split = "score"``;
* the feature list must equal the training manifest's (same names, order, dtypes,
  schema hash); a window whose columns cannot give the same features is a bad input
  (exit 2), never a silently different model input;
* context rows: the trailing windows (up to 1 h, ``windows.PERIOD_WINDOW``) of the first
  flows of a batch need the flows just before it. Those come from ``--lookback`` (the
  previous batch's RAW flows) and from input rows before ``--window``'s start; they feed
  the windows and are not written. Every feature reads only flows inside its window, so
  ``LOOKBACK_MS`` (the longest window) of earlier flows gives a later batch exactly its
  single-pass values (tests/silver/test_partitions.py); without it, the first hour is
  starved. Training mode reads its lookback the same way (``context_and_batch``);
* an empty window is a valid batch: an empty features file with the right schema.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stages.common.contracts import SilverManifest
from stages.common.errors import InputError

from .dataset import output_schema
from .windows import PERIOD_WINDOW, WINDOWS

__all__ = [
    "LOOKBACK_MS",
    "SPLIT_LABEL",
    "context_and_batch",
    "lookback_path",
    "manifest",
    "parse_window",
    "read_training",
]

log = logging.getLogger(__name__)

LOOKBACK_MS = max(*WINDOWS.values(), PERIOD_WINDOW[1])
"""How far before a batch's first flow earlier flows are kept as context: the longest window."""
SPLIT_LABEL = "score"
_LAST = re.compile(r"^last-(\d+)([hd])$")


def _us(t: dt.datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def parse_window(spec: str, now: dt.datetime) -> tuple[int | None, int | None]:
    """``[start, end)`` in µs since the epoch (None: open) of a window spec.

    ``all``; ``previous-hour`` / ``previous-day`` (the whole UTC hour / day before ``now``);
    ``last-<N>h`` / ``last-<N>d`` (ending at ``now``); or ``START/END`` in ISO 8601 (UTC when
    no offset is given; either side may be empty).
    """
    now = now.astimezone(dt.UTC)
    if spec in ("", "all"):
        return None, None
    if spec == "previous-hour":
        end = now.replace(minute=0, second=0, microsecond=0)
        return _us(end - dt.timedelta(hours=1)), _us(end)
    if spec == "previous-day":
        end = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return _us(end - dt.timedelta(days=1)), _us(end)
    if m := _LAST.match(spec):
        span = dt.timedelta(hours=int(m.group(1))) if m.group(2) == "h" else dt.timedelta(days=int(m.group(1)))
        return _us(now - span), _us(now)
    if "/" in spec:
        bounds: list[int | None] = []
        for part in spec.split("/", 1):
            if not part:
                bounds.append(None)
                continue
            try:
                when = dt.datetime.fromisoformat(part)
            except ValueError:
                raise InputError(f"--window {spec!r}: {part!r} is not an ISO 8601 time") from None
            bounds.append(_us(when if when.tzinfo else when.replace(tzinfo=dt.UTC)))
        lo, hi = bounds
        if lo is not None and hi is not None and hi <= lo:
            raise InputError(f"--window {spec!r}: the end is not after the start")
        return lo, hi
    raise InputError(
        f"--window {spec!r}: expected all, previous-hour, previous-day, last-<N>h, last-<N>d or START/END (ISO 8601)"
    )


def window_of(args: Any) -> tuple[int | None, int | None]:
    """``--window`` resolved against ``--now`` (default: the current time)."""
    try:
        now = dt.datetime.fromisoformat(args.now) if args.now else dt.datetime.now(dt.UTC)
    except ValueError:
        raise InputError(f"--now {args.now!r}: not an ISO 8601 time") from None
    return parse_window(args.window, now if now.tzinfo else now.replace(tzinfo=dt.UTC))


def in_window(table: pa.Table, start: int | None, end: int | None) -> pa.Table:
    """The rows of ``table`` with ``start <= ts < end`` (all rows when both are open)."""
    if start is None and end is None:
        return table
    ts = _ts_us(table)
    keep = np.ones(table.num_rows, dtype=bool)
    if start is not None:
        keep &= ts >= start
    if end is not None:
        keep &= ts < end
    return table.filter(pa.array(keep))


def read_training(path: Path, uri: str) -> SilverManifest:
    """The training-mode manifest the model was trained on (its features drive this run)."""
    training = SilverManifest.read(path, uri)
    if training.mode != "train":
        raise InputError(
            f"{uri}: a scoring-mode manifest; pass the manifest.json of the training silver run (--training-manifest)"
        )
    return training


def check_features(features: list[str], skipped: dict[str, str], training: SilverManifest, uri: str) -> None:
    """The features built here must be the training manifest's, in the same order."""
    if features == training.features:
        return
    missing = [f for f in training.features if f not in features]
    extra = [f for f in features if f not in training.features]
    why = "; ".join(f"{g}: {r}" for g, r in sorted(skipped.items())) or "none skipped"
    raise InputError(
        f"{uri}: these flows give other features than the training manifest (missing {missing[:8]}, extra "
        f"{extra[:8]}, or another order; skipped groups: {why}); the model cannot score them — "
        "feed flows of the format it was trained on, or retrain on this format"
    )


def _ts_us(table: pa.Table) -> np.ndarray:
    return pc.fill_null(table.column("ts").cast(pa.int64()), -(2**62)).to_numpy()


def context_and_batch(
    table: pa.Table, lookback: pa.Table | None, start: int | None, end: int | None, warn: bool = True
) -> tuple[pa.Table, np.ndarray, int]:
    """(rows to build features on, True where a row is emitted, lookback rows kept).

    Emitted: input rows inside ``[start, end)``. Context: input rows before ``start`` and
    lookback rows before the batch's first emitted flow, both within ``LOOKBACK_MS``.
    """
    ts = _ts_us(table)
    emit = np.ones(table.num_rows, dtype=bool)
    if start is not None:
        emit &= ts >= start
    if end is not None:
        emit &= ts < end
    if not emit.any():
        return table.slice(0, 0), emit[:0], 0
    first = int(ts[emit].min())
    context_in = ~emit & (ts >= first - LOOKBACK_MS * 1000) & (ts < first)
    keep_in = emit | context_in
    kept = table if keep_in.all() else table.filter(pa.array(keep_in))  # no copy of a whole input
    parts, flags = [kept], [emit[keep_in]]
    kept_lookback = 0
    if lookback is not None and lookback.num_rows:
        lts = _ts_us(lookback)
        if warn:
            _check_lookback(lts, first)
        near = (lts >= first - LOOKBACK_MS * 1000) & (lts < first)
        kept_lookback = int(near.sum())
        parts.insert(0, lookback.filter(pa.array(near)).cast(table.schema))
        flags.insert(0, np.zeros(kept_lookback, dtype=bool))
    return pa.concat_tables(parts), np.concatenate(flags), kept_lookback


def _check_lookback(lts: np.ndarray, first: int) -> None:
    """Warn when the lookback overlaps this input in time: those rows are left out (they
    would be counted twice when the lookback holds this input's own flows), so the
    features near the cut may differ from one pass over all the flows."""
    late = int((lts >= first).sum())
    if late:
        log.warning(
            "%d lookback rows are at or after this input's first flow (%s) and are left out; "
            "the lookback should be the flows just before this input, not overlapping it",
            late,
            dt.datetime.fromtimestamp(first / 1e6, dt.UTC).isoformat(),
        )


def lookback_path(ctx: Any) -> Path | None:
    """The local copy of ``--lookback``, or None when there is none: no flag, or
    ``--lookback-optional`` and no file there (the first partition: no earlier flows)."""
    uri = ctx.args.lookback
    if not uri:
        return None
    if ctx.args.lookback_optional and not ctx.storage.exists(uri):
        log.info("no lookback at %s: the first partition, no earlier flows feed its windows", uri)
        return None
    return Path(ctx.storage.fetch(uri))


def write_empty(path: Path, features: list[str]) -> None:
    """An empty features file with the schema a non-empty batch would have."""
    pq.write_table(output_schema(features).empty_table(), path, compression="zstd")


def manifest(
    features: list[str],
    training: SilverManifest,
    rows: int,
    context_rows: int,
    window: tuple[int | None, int | None],
    has_labels: bool,
    skipped: dict[str, str],
    input_sha256: str,
) -> SilverManifest:
    """The scoring-mode manifest of a batch (``write`` it beside the features)."""

    def iso(us: int | None) -> str | None:
        return None if us is None else dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat()

    return SilverManifest.build(
        features,
        mode="score",
        training_schema_hash=training.schema_hash,
        rows=rows,
        context_rows=context_rows,
        window={"start": iso(window[0]), "end": iso(window[1])},
        has_labels=has_labels,
        skipped_features=skipped,
        input_sha256=input_sha256,
    )


def run(ctx: Any) -> None:
    """The scoring-mode body of the silver CLI (``ctx``: the runner's StageContext)."""
    from . import dataset

    args = ctx.args
    if not args.training_manifest:
        raise InputError("--mode score needs --training-manifest (the manifest.json the model was trained on)")
    training = read_training(ctx.fetch_input("training_manifest", args.training_manifest), args.training_manifest)
    window = window_of(args)
    flows_path = ctx.storage.fetch(args.input)
    table = dataset.read_flows(flows_path, args.input, allow_empty=True)
    source = ctx.record("input", "flows", args.input, flows_path, rows=table.num_rows)
    lookback = None
    if lb_path := lookback_path(ctx):
        lookback = dataset.read_flows(lb_path, args.lookback, allow_empty=True)
        ctx.record("input", "lookback", args.lookback, lb_path, rows=lookback.num_rows)
    combined, emit, lookback_rows = context_and_batch(table, lookback, *window)
    del table, lookback
    features = list(training.features)
    rows, skipped = int(emit.sum()), {}
    with ctx.output("features", args.output, ".parquet") as out:
        if rows == 0:
            log.warning("no flows in window %s of %s: writing an empty batch", args.window, args.input)
            write_empty(out.path, features)
        else:
            plan = dataset.plan(combined)
            skipped = plan.skipped
            keep = emit[plan.order] if plan.order is not None else emit
            split = dataset.Split(0.0, 0, 0, None, SPLIT_LABEL)
            built = dataset.write_silver(combined, plan, split, out.path, keep=keep, split_label=SPLIT_LABEL)
            check_features(built, skipped, training, args.input)
        out.rows = rows
    has_labels = bool(rows) and combined.column("label").null_count < combined.num_rows
    doc = manifest(
        features,
        training,
        rows,
        combined.num_rows - rows,
        window,
        has_labels,
        skipped,
        source.sha256 or "",
    )
    with ctx.output("manifest", args.manifest, ".json", primary=True) as out:
        doc.write(out.path)
    ctx.metrics.update(rows=rows, context_rows=combined.num_rows - rows, lookback_rows=lookback_rows, mode="score")
    for name, value in (
        ("rows", rows),
        ("train_rows", 0),
        ("holdout_rows", 0),
        ("sha256", ctx.sha256("features")),
        ("schema_hash", doc.schema_hash),
    ):
        ctx.set_param(name, value)
