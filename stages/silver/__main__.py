"""Silver stage CLI: ``python -m stages.silver --input URI --output URI --manifest URI``.

Reads RAW flows (canonical schema), writes the features Parquet (passthrough columns,
``split``, float32 features, rows in time order) and its manifest (feature names,
dtypes, schema hash, split, skipped features). One partition of a partitioned run:
``--lookback PREV_RAW --lookback-optional --part-split train|holdout``, the previous
partition's flows feeding the context windows. Logic lives in ``training``, ``scoring``,
``dataset``, ``features`` and ``windows``; this module only parses flags and dispatches.
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
        "(ISO 8601, UTC). Only these rows are written; earlier input rows feed the context windows",
    )
    p.add_argument("--now", default=None, help="reference time of relative windows, ISO 8601 (default: now)")
    p.add_argument(
        "--lookback",
        default="",
        help="RAW flows of the previous batch or partition: their last hour feeds the context windows of this "
        "input's first flows and is not written (empty: none)",
    )
    p.add_argument(
        "--lookback-optional",
        action="store_true",
        help="a --lookback file that does not exist means no earlier flows (the first partition); "
        "without this flag it is an error",
    )
    p.add_argument(
        "--part-split",
        choices=["train", "holdout"],
        default=None,
        help="training mode, one partition of a partitioned run: every row goes to this side "
        "(default: the time split by --holdout-fraction)",
    )
    g = p.add_argument_group("scoring mode (--mode score)")
    g.add_argument("--training-manifest", default=None, help="manifest.json of the model's training silver run")
    return p


def body(ctx: StageContext) -> None:
    args = ctx.args
    if args.mode == "score":
        if args.part_split:
            raise InputError("--part-split is a training-mode flag: scoring mode writes no split; drop it")
        from stages.silver.scoring import run
    else:
        from stages.silver.training import run
    run(ctx)


def main() -> None:
    main_exit(run_stage("silver", build_parser(), body))


if __name__ == "__main__":
    main()
