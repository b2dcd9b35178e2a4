"""score: the champion applied to new flows — alerts, incidents, drift.

    python -m stages.score --features URI --manifest URI [--model-uri models:/NAME@champion |
        --model URI --card URI] --alerts-out URI --incidents-out URI --html-out URI --drift-out URI
    python -m stages.score --resolve-only --model-out URI --card-out URI --training-manifest-out URI

Reads silver features built in scoring mode and the champion (the MLflow registry alias
``champion`` by default), flags flows at the card's calibrated threshold, groups the
alerts into incidents, writes alerts.parquet, incidents.parquet, alerts.html and
drift.json, and replaces the run's rows in the PostgreSQL tables ``alerts`` and
``incidents``. ``--resolve-only`` (the workflow's first step) only fetches the model,
card and training manifest, so one run scores with one model even if the alias moves.
Exit 2: no champion yet, a manifest/model mismatch, unreadable inputs. An empty batch
is a success with zero alerts.
"""

from __future__ import annotations

import argparse

from stages.common.runner import StageContext, main_exit, run_stage

STAGE = "score"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m stages.score", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    m = p.add_argument_group("model (default: the registry's champion)")
    m.add_argument("--model-uri", default="", help="models:/NAME@ALIAS or models:/NAME/VERSION (default: champion)")
    m.add_argument("--registered-model", default="cybersec-anomaly-detector", help="MLflow registered model name")
    m.add_argument("--model", default=None, help="a local model.skops instead of the registry (with --card)")
    m.add_argument("--card", default=None, help="the model-card.json of --model")
    m.add_argument("--training-manifest", default=None, help="with --resolve-only and --model: its training manifest")
    r = p.add_argument_group("resolve only (the workflow's first step)")
    r.add_argument("--resolve-only", action="store_true", help="fetch model, card and training manifest; score nothing")
    r.add_argument("--model-out", default=None, help="where the resolved model.skops goes")
    r.add_argument("--card-out", default=None, help="where the resolved model-card.json goes")
    r.add_argument("--training-manifest-out", default=None, help="where the training manifest.json goes")
    io = p.add_argument_group("scoring inputs and outputs (paths, file:// or s3:// URIs)")
    io.add_argument("--features", default=None, help="silver features.parquet built with --mode score")
    io.add_argument("--manifest", default=None, help="its scoring-mode manifest.json")
    io.add_argument("--alerts-out", default=None, help="where alerts.parquet goes")
    io.add_argument("--incidents-out", default=None, help="where incidents.parquet goes")
    io.add_argument("--html-out", default=None, help="where the self-contained alerts.html goes")
    io.add_argument("--drift-out", default=None, help="where drift.json goes")
    d = p.add_argument_group("drift")
    d.add_argument("--max-psi", type=float, default=0.25, help="PSI of a feature or the score above this = drifted")
    d.add_argument(
        "--max-alert-rate-ratio",
        type=float,
        default=3.0,
        help="alert rate above this multiple of the calibrated = drifted",
    )
    return p


def body(ctx: StageContext) -> None:
    from .run import resolve_only, score

    if ctx.args.resolve_only:
        resolve_only(ctx)
    else:
        score(ctx)


def main() -> None:
    main_exit(run_stage(STAGE, build_parser(), body))


if __name__ == "__main__":
    main()
