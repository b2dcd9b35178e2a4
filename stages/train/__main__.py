"""Train stage CLI: ``python -m stages.train --features URI --manifest URI --model-out URI --card-out URI``.

Reads the silver features and manifest (checked against each other) — one file, or a
directory of ``part=<k>`` parts from a partitioned run, at most ``--max-train-rows`` train
rows (a seeded sample across the parts beyond) — fits the model
on the ``train`` split (Isolation Forest on benign rows by default), calibrates the
alert threshold (with labels: on unseen scores of every benign train row — out-of-bag for the
forest, out-of-fold for hgb; without: on the latest train rows), saves the model (skops) and its card, and —
when MLFLOW_TRACKING_URI is set — logs the run and registers a model version.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from stages.common.contracts import ModelCard, SilverManifest
from stages.common.errors import InputError
from stages.common.runner import StageContext, main_exit, run_stage

MAX_TRAIN_ROWS = 1_000_000
"""Default of ``--max-train-rows``: a forest draws only max_samples rows per tree and the scaler's
quantiles and the threshold settle long before; 1M rows of 67 float32 features are 0.27 GB and the
stage peaks at ~1.1 GB (2M rows: ~2.4 GB, above a 2 GiB pod)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.train", description=__doc__.splitlines()[0])
    p.add_argument(
        "--features",
        required=True,
        help="silver features.parquet, or a partitioned run's directory of part=<k>/ folders (path, file:// or s3://)",
    )
    p.add_argument(
        "--manifest",
        required=True,
        help="silver manifest.json that describes --features (the same directory for parts)",
    )
    p.add_argument("--model-out", required=True, help="where to write model.skops")
    p.add_argument("--card-out", required=True, help="where to write model-card.json")
    p.add_argument(
        "--model",
        choices=["iforest", "hgb"],
        default="iforest",
        help="iforest: unsupervised Isolation Forest (default); hgb: supervised HistGradientBoosting, needs labels",
    )
    p.add_argument(
        "--train-on",
        choices=["auto", "all", "benign"],
        default="auto",
        help="rows to fit on: auto = benign when labels exist, else all (default auto)",
    )
    p.add_argument(
        "--n-estimators",
        type=int,
        default=50,
        help="Isolation Forest trees (default 50: detection equals 100 trees, scoring costs half)",
    )
    p.add_argument(
        "--max-samples",
        type=int,
        default=65536,
        help="rows each Isolation Forest tree sees, capped at the rows available (default 65536; "
        "small values like 256 flag benign extremes as often as attacks)",
    )
    p.add_argument(
        "--target-fpr",
        type=float,
        default=0.01,
        help="with labels: share of benign flows allowed to alert, set on every benign train row's score by "
        "trees that never drew it (iforest: out-of-bag; hgb: out-of-fold, 5 time blocks); needs at least "
        "10/target-fpr benign rows, else exit 2 (default 0.01: 1,000 rows)",
    )
    p.add_argument(
        "--alert-rate",
        type=float,
        default=0.01,
        help="without labels: share of the latest 20%% of train flows allowed to alert (default 0.01)",
    )
    p.add_argument(
        "--max-train-rows",
        type=int,
        default=MAX_TRAIN_ROWS,
        help="train rows the model is fitted and calibrated on at most; beyond, a sample seeded by --seed and each "
        f"part's key, in time order, read part by part so memory follows this number (default {MAX_TRAIN_ROWS:,})",
    )
    p.add_argument("--seed", type=int, default=42, help="random seed of the model and the sample (default 42)")
    p.add_argument("--experiment", default="cybersec-anomaly", help="MLflow experiment name")
    p.add_argument("--registered-model", default="cybersec-anomaly-detector", help="MLflow registered model name")
    return p


def _check_args(args: argparse.Namespace) -> None:
    for flag, value in (("--target-fpr", args.target_fpr), ("--alert-rate", args.alert_rate)):
        if not 0.0 < value < 1.0:
            raise InputError(f"{flag} {value}: must be between 0 and 1 (exclusive)")
    if args.n_estimators < 1 or args.max_samples < 2:
        raise InputError("--n-estimators must be >= 1 and --max-samples >= 2")
    if args.max_train_rows < 3:
        raise InputError(f"--max-train-rows {args.max_train_rows}: must be at least 3 (rows to fit and calibrate)")
    if args.seed < 0:
        raise InputError(f"--seed {args.seed}: must be >= 0")


def _card(ctx: StageContext, manifest: SilverManifest, trained: Any) -> ModelCard:
    args = ctx.args
    return ModelCard(
        run_id=ctx.run_id,
        model_type=args.model,
        score_method=trained.score_method,
        features=manifest.features,
        schema_hash=manifest.schema_hash,
        model_sha256=ctx.sha256("model") or "",
        threshold=trained.calibration.threshold,
        calibration=trained.calibration.as_dict(),
        trained_on=trained.trained_on,
        train_rows=trained.fit_rows,
        params=trained.params,
        train_metrics=trained.metrics,
        # what scoring measures drift and explains alerts against (stages/train/reference.py)
        reference=trained.reference,
        mlflow={
            "tracking_uri_set": ctx.settings.mlflow_tracking_uri is not None,
            "run_id": None,
            "experiment": args.experiment,
            "model_name": args.registered_model,
            "model_version": None,
            "artifact_sha256": None,
        },
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def body(ctx: StageContext) -> None:
    import logging

    from stages.common.model_io import save_model
    from stages.common.silver_parts import fetch_silver
    from stages.train import data, models

    log = logging.getLogger("stages.train")
    args = ctx.args
    _check_args(args)
    silver = fetch_silver(ctx, args.features, args.manifest)
    manifest = silver.manifest
    data.require_training(manifest, args.manifest)
    sample = data.read_train_sample(silver, args.max_train_rows, args.seed)
    X, labels = sample.X, sample.labels
    log.info("read %d of %d train rows from %d part(s)", sample.rows_kept, sample.rows_seen, len(sample.parts))
    if ctx.settings.mlflow_tracking_uri:
        from stages.train.tracking import check_reachable

        check_reachable(ctx.settings)
    opts = models.Options(
        args.model, args.train_on, args.n_estimators, args.max_samples, args.target_fpr, args.alert_rate, args.seed
    )
    try:
        trained = models.train(X, labels, manifest.features, opts)
    except ValueError as exc:
        raise InputError(f"{args.features}: {exc}") from exc
    trained.params["sample"] = sample.as_params()
    log.info(
        "fitted %s on %d %s rows; threshold %.5f",
        args.model,
        trained.fit_rows,
        trained.trained_on,
        trained.calibration.threshold,
        extra=trained.metrics,
    )
    # The model is staged first: the card and the registry version carry its sha256.
    with ctx.output("model", args.model_out, ".skops") as out:
        save_model(trained.estimator, out.path)
    card = _card(ctx, manifest, trained)
    # MLflow before publishing: if it is down the stage ends with exit 75 before anything
    # is published, so no later step can pick up a model that has no registry entry.
    if ctx.settings.mlflow_tracking_uri:
        from stages.train import tracking

        tags = {"pipeline_run_id": ctx.run_id, "schema_hash": manifest.schema_hash, "model_type": args.model}
        params = {k: v for k, v in vars(args).items() if k not in {"params_dir", "log_level", "log_format"}}
        params.update({f"model.{k}": v for k, v in trained.params.items() if k not in ("model_features", "sample")})
        params.update({f"sample.{k}": v for k, v in sample.as_params().items()})
        metrics = trained.metrics | {"threshold": trained.calibration.threshold}
        logged = card.as_dict()
        tracking.track(
            ctx.settings,
            args.experiment,
            ctx.run_id,
            tags,
            params,
            metrics,
            trained.estimator,
            X[:5],
            args.registered_model,
            logged,
            manifest.as_dict(),
        )
        card.mlflow = logged["mlflow"]  # now with the run id, the version and the stored model's digest
    else:
        log.warning("MLFLOW_TRACKING_URI is not set: no MLflow run, no registered model version")
    with ctx.output("card", args.card_out, ".json", primary=True) as out:
        card.write(out.path)
    ctx.metrics.update(
        {k: v for k, v in trained.metrics.items()},
        threshold=trained.calibration.threshold,
        train_rows_seen=sample.rows_seen,
        train_rows_kept=sample.rows_kept,
    )
    for name, value in (
        ("mlflow_run_id", card.mlflow["run_id"] or "n/a"),
        ("model_version", card.mlflow["model_version"] or "n/a"),
        ("threshold", repr(trained.calibration.threshold)),
        ("sha256", ctx.sha256("model")),
        ("train_rows", trained.fit_rows),
    ):
        ctx.set_param(name, value)


def main() -> None:
    main_exit(run_stage("train", build_parser(), body))


if __name__ == "__main__":
    main()
