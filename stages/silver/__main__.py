"""Silver stage CLI: ``python -m stages.silver --input URI --output URI --manifest URI``.

Reads RAW flows (canonical schema), writes the features Parquet (passthrough columns,
``split``, float32 features, rows in time order) and its manifest (feature names,
dtypes, schema hash, split, skipped features). Logic lives in ``dataset``,
``features`` and ``windows``; this module only parses flags, loads, calls and saves.
"""

from __future__ import annotations

import argparse

from stages.common.errors import InputError
from stages.common.runner import StageContext, main_exit, run_stage


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.silver", description=__doc__.splitlines()[0])
    p.add_argument(
        "--mode",
        choices=["train", "score"],
        default="train",
        help="train: features + time split (default); score: features of new flows for the scoring stage, "
        "driven by --training-manifest, no split",
    )
    p.add_argument("--input", required=True, help="RAW flows.parquet in the canonical schema (path, file:// or s3://)")
    p.add_argument("--output", required=True, help="where to write features.parquet (path, file:// or s3://)")
    p.add_argument("--manifest", required=True, help="where to write manifest.json (path, file:// or s3://)")
    p.add_argument(
        "--holdout-fraction",
        type=float,
        default=0.3,
        help="latest share of rows (by time) kept out of training for eval, in [0, 1) (default 0.3)",
    )
    p.add_argument(
        "--window",
        default="all",
        help="flows to use: all (default), previous-hour, previous-day, last-<N>h, last-<N>d, or START/END "
        "(ISO 8601, UTC). Training keeps only these rows; scoring emits them and lets earlier input rows "
        "feed the context windows",
    )
    p.add_argument("--now", default=None, help="reference time of relative windows, ISO 8601 (default: now)")
    g = p.add_argument_group("scoring mode (--mode score)")
    g.add_argument("--training-manifest", default=None, help="manifest.json of the model's training silver run")
    g.add_argument(
        "--lookback",
        default="",
        help="RAW flows of the previous batch: their last 2 h feed the context windows of this batch's first "
        "flows and are not written (empty: none)",
    )
    return p


def body(ctx: StageContext) -> None:
    import logging

    import pyarrow.compute as pc

    from stages.silver import dataset

    log = logging.getLogger("stages.silver")
    args = ctx.args
    if args.mode == "score":
        from stages.silver.scoring import run

        run(ctx)
        return
    if not 0.0 <= args.holdout_fraction < 1.0:
        raise InputError(f"--holdout-fraction {args.holdout_fraction}: must be in [0, 1)")
    path = ctx.storage.fetch(args.input)
    from stages.silver.scoring import in_window, window_of

    start, end = window_of(args)  # retraining on the latest days: rows outside are left out
    plan = dataset.plan_context(in_window(dataset.read_flows(path, args.input, dataset.CONTEXT_COLUMNS), start, end))
    table = in_window(dataset.read_flows(path, args.input), start, end)
    if table.num_rows == 0:
        raise InputError(f"{args.input}: no flows in --window {args.window}; nothing to build features from")
    dataset.add_flow_groups(plan, table)
    n = table.num_rows
    source = ctx.record("input", "flows", args.input, path, rows=n)
    if not plan.flow_groups and not plan.context_groups:
        raise InputError(f"{args.input}: no feature can be built, the columns they need are null: {plan.skipped}")
    split = dataset.split_rows(plan.ts_sorted_us, n, args.holdout_fraction)
    if split.train_rows == 0:
        raise InputError(f"{args.input}: the split leaves no train rows ({n} rows, all at the cutoff time)")
    has_labels = table.column("label").null_count < n
    with ctx.output("features", args.output, ".parquet") as out:
        features = dataset.write_silver(table, plan, split, out.path)
        out.rows = n
    manifest = dataset.manifest(features, split, n, bool(has_labels), plan.skipped, source.sha256 or "")
    with ctx.output("manifest", args.manifest, ".json", primary=True) as out:
        manifest.write(out.path)
    attacks = int(pc.sum(pc.fill_null(table.column("label"), 0)).as_py() or 0)
    for group, reason in sorted(plan.skipped.items()):
        log.info("feature group %s skipped: %s", group, reason)
    ctx.metrics.update(
        rows=n,
        train_rows=split.train_rows,
        holdout_rows=split.holdout_rows,
        features=len(features),
        skipped_features=len(plan.skipped),
        labelled_attacks=attacks,
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


def main() -> None:
    main_exit(run_stage("silver", build_parser(), body))


if __name__ == "__main__":
    main()
