"""eval: score the holdout, measure, report, gate, and manage the ``champion`` alias.

    python -m stages.eval --features URI --manifest URI --model URI --card URI
        --metrics-out URI --report-out URI [gate flags] [--no-promote]

--features/--manifest: one silver features file and its manifest, or both the directory of a
partitioned silver run (DIR/part=<k>/features.parquet + manifest.json): the holdout parts are
scored one at a time and the metrics are those of one file holding the same rows. With
--scores, each holdout part's scores come from its own ``python -m stages.eval.part`` pod.

Exit 0 when the gate passes, 3 when it fails (after metrics.json, report.html, the audit
row and the MLflow run are all written), 2 on bad inputs, 75 when MLflow stays unreachable.
"""

from __future__ import annotations

import argparse

from stages.common.runner import StageContext, main_exit, run_stage

STAGE = "eval"


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m stages.eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    io = p.add_argument_group("inputs and outputs (paths, file:// or s3:// URIs)")
    io.add_argument(
        "--features",
        required=True,
        help="silver features.parquet (holdout rows: split == 'holdout'), or a partitioned silver run's directory "
        "of part=<k>/features.parquet (scored one part at a time)",
    )
    io.add_argument(
        "--manifest",
        required=True,
        help="silver manifest.json (feature names, schema hash), or the directory of part=<k>/manifest.json "
        "(usually the same directory as --features)",
    )
    io.add_argument("--model", required=True, help="model.skops from train (loaded with skops, trusted types only)")
    io.add_argument("--card", required=True, help="model-card.json from train (threshold, schema hash, MLflow ids)")
    io.add_argument(
        "--scores",
        default=None,
        help="the directory of part=<k>/scores.parquet written by python -m stages.eval.part for every holdout "
        "part (the partitioned pipeline's fan-out): read instead of scoring here; the model is still checked "
        "against the card",
    )
    io.add_argument("--metrics-out", required=True, help="where to write metrics.json")
    io.add_argument("--report-out", required=True, help="where to write the self-contained report.html")
    g = p.add_argument_group("quality gate (label checks apply only when the holdout has labels)")
    g.add_argument("--gate-min-pr-auc", type=float, default=0.3, help="minimum PR-AUC (average precision)")
    g.add_argument("--gate-min-recall", type=float, default=0.5, help="minimum recall at the card's threshold")
    g.add_argument("--gate-max-fpr", type=float, default=0.05, help="maximum false-positive rate at the threshold")
    g.add_argument(
        "--gate-max-alert-rate",
        type=float,
        default=0.1,
        help="maximum share of holdout flows alerted; with labels only alerts on flows not labelled malicious "
        "count (benign_alert_rate), so an attack-heavy holdout is not failed for catching its attacks",
    )
    g.add_argument(
        "--gate-max-psi",
        type=float,
        default=None,
        help="maximum PSI of any feature, train vs holdout (default: drift is reported, not gated)",
    )
    r = p.add_argument_group("registry and report")
    r.add_argument("--no-promote", action="store_true", help="never move the champion alias (still tag the version)")
    r.add_argument(
        "--registered-model",
        default="cybersec-anomaly-detector",
        help="MLflow registered model whose 'champion' alias is managed",
    )
    r.add_argument("--top-alerts", type=_count, default=25, help="how many top-scoring alerts the report lists")
    return p


def body(ctx: StageContext) -> None:
    from .evaluate import run

    run(ctx)


def main() -> None:
    main_exit(run_stage(STAGE, build_parser(), body))


if __name__ == "__main__":
    main()
