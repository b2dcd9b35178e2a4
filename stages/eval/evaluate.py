"""The eval verb: load → score → measure → gate → champion decision → write → record.

``build_metrics`` is pure (arrays in, the metrics.json document out); ``run`` does the
I/O around it in an order that keeps the contract "on gate failure everything is
written, then exit 3": outputs first, then MLflow, then the output parameters, and
only then ``GateFailed``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from stages.common.contracts import ModelCard, SilverManifest
from stages.common.errors import GateFailed, InputError
from stages.common.jsondoc import to_json
from stages.common.model_io import load_model, score_rows
from stages.common.runner import StageContext

from . import metrics as M
from .gate import PRIMARY_METRIC, GateThresholds, champion_decision, failed_summary, gate_checks
from .inputs import EvalData, check_contract, check_model_file, load_features

__all__ = ["run", "build_metrics", "score"]

log = logging.getLogger(__name__)

PARAMS = ["pr_auc", "roc_auc", "precision", "recall", "fpr", "alert_rate"]
_BASELINE_ROWS = 100_000  # train rows sampled for medians/IQRs of the top-alert explanations


def score(model: Any, data: EvalData, score_method: str, model_uri: str) -> np.ndarray:
    """Anomaly scores of the holdout rows (higher = more anomalous, ``model_io.score_rows``), checked to be finite."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None and list(names) != data.features:
        raise InputError(
            f"{model_uri}: the model was fitted on columns {list(names)[:8]}..., not the manifest's "
            f"features {data.features[:8]}...; retrain on this silver output"
        )
    try:
        scores = score_rows(model, data.holdout_X, score_method, data.features)
    except ValueError as exc:
        raise InputError(f"{model_uri}: scoring the holdout failed ({exc})") from exc
    if not np.all(np.isfinite(scores)):
        raise InputError(
            f"{model_uri}: {int(np.sum(~np.isfinite(scores)))} holdout scores are NaN/inf; "
            "check the features for missing values"
        )
    return scores


def build_metrics(run_id: str, data: EvalData, scores: np.ndarray, threshold: float) -> tuple[dict[str, Any], dict]:
    """The metrics.json document (without gate/champion) and the per-attack detail for the report."""
    alerts = scores >= threshold
    overall = M.overall_metrics(data.y, scores, threshold)
    by_attack = M.recall_by_attack(data.y, data.attack_type, alerts)
    summary = M.score_summary(scores)
    doc: dict[str, Any] = {
        "version": 1,
        "run_id": run_id,
        "has_labels": data.has_labels,
        "rows": int(scores.size),
        "threshold": float(threshold),
        **M.alert_stats(alerts, data.ts),
        "benign_alert_rate": M.benign_alert_rate(data.y, alerts) if data.has_labels else None,
        "score_quantiles": summary["quantiles"],
        "score_histogram": summary["histogram"],
        "drift": M.drift(data.train_X, data.holdout_X, data.features),
        "recall_by_attack": {k: v["recall"] for k, v in by_attack.items()},
        "attack_rows": {k: v["rows"] for k, v in by_attack.items()},
        **overall,
    }
    if not data.has_labels:
        for key in ("precision", "recall", "f1", "fpr", "pr_auc", "roc_auc", "recall_at_1pct_fpr", "confusion"):
            doc[key] = None
        doc["auc_note"] = "the holdout has no labels"
    return doc, by_attack


def _limits(args: Any) -> GateThresholds:
    return GateThresholds(
        args.gate_min_pr_auc, args.gate_min_recall, args.gate_max_fpr, args.gate_max_alert_rate, args.gate_max_psi
    )


def _registry(ctx: StageContext) -> Any:
    if not ctx.settings.mlflow_tracking_uri:
        log.warning("MLFLOW_TRACKING_URI is not set: no MLflow logging, no version tags, no champion alias")
        return None
    from .registry import Registry

    return Registry(ctx.settings.mlflow_tracking_uri, ctx.args.registered_model, settings=ctx.settings)


def _decide(registry: Any, candidate: str | None, ctx: StageContext, doc: dict[str, Any]) -> dict[str, Any]:
    champ, champ_value = None, None
    if registry is not None:
        champ, champ_value = registry.champion()
    return champion_decision(
        gate_passed=doc["gate"]["verdict"] == "passed",
        promote=not ctx.args.no_promote,
        candidate_version=candidate,
        candidate_metric=doc.get(PRIMARY_METRIC),
        champion_version=champ,
        champion_metric=champ_value,
    )


def _baseline(data: EvalData) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust scale of a sample of train rows (holdout rows when there is no train row)."""
    rng = np.random.default_rng(0)
    base = data.train_X if data.train_X.shape[0] else data.holdout_X
    if base.shape[0] > _BASELINE_ROWS:
        base = base[rng.choice(base.shape[0], _BASELINE_ROWS, replace=False)]
    return M.robust_stats(base)


def _report(
    ctx: StageContext,
    data: EvalData,
    scores: np.ndarray,
    doc: dict[str, Any],
    card: ModelCard,
    by_attack: dict,
    baseline: tuple[np.ndarray, np.ndarray],
) -> str:
    from .report import ReportData, render, top_alerts

    alerts = top_alerts(
        data.holdout,
        data.holdout_X,
        scores,
        doc["threshold"],
        data.features,
        baseline,
        n=ctx.args.top_alerts,
    )
    a = ctx.args
    sources = {"features": a.features, "manifest": a.manifest, "model": a.model, "card": a.card}
    return render(ReportData(doc, card.as_dict(), data.y, scores, by_attack, alerts, sources))


def _publish(ctx: StageContext, doc: dict[str, Any], html: str) -> list[Path]:
    """Write metrics.json and report.html locally (named, for MLflow) and publish them to their URIs."""
    local = Path(tempfile.mkdtemp(prefix="eval-", dir=ctx.storage.workdir))
    files = [local / "metrics.json", local / "report.html"]
    files[0].write_text(to_json(doc), encoding="utf-8")
    files[1].write_text(html, encoding="utf-8")
    for name, uri, path, suffix in (
        ("metrics", ctx.args.metrics_out, files[0], ".json"),
        ("report", ctx.args.report_out, files[1], ".html"),
    ):
        with ctx.output(name, uri, suffix, primary=name == "metrics") as out:
            shutil.copyfile(path, out.path)
            out.rows = doc["rows"]
    ctx.publish_outputs()  # now, not after the body: MLflow and the gate's exit 3 come after
    return files


def _param(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def run(ctx: StageContext) -> None:
    """The stage body (see the module docstring for the order of side effects)."""
    a = ctx.args
    manifest = SilverManifest.read(ctx.fetch_input("manifest", a.manifest), a.manifest)
    card = ModelCard.read(ctx.fetch_input("card", a.card), a.card)
    check_contract(manifest, card, a.manifest, a.card)
    model_path = ctx.fetch_input("model", a.model)
    check_model_file(model_path, card, a.model, a.card)  # before skops reads a byte of it
    registry = _registry(ctx)
    candidate = registry.candidate(card.as_dict(), a.card) if registry is not None else None
    model = load_model(model_path)
    data = load_features(ctx.fetch_input("features", a.features), manifest.features, a.features)
    log.info(
        "scoring holdout",
        extra={
            "holdout_rows": data.holdout_X.shape[0],
            "train_rows": data.train_X.shape[0],
            "features": len(data.features),
        },
    )
    scores = score(model, data, card.score_method, a.model)
    doc, by_attack = build_metrics(ctx.run_id, data, scores, card.threshold)
    baseline = _baseline(data)
    # Drift was the last use of every train row: free them before the report and MLflow (~1.3 GB at 10M rows).
    data.train_X = np.empty((0, len(data.features)), dtype=np.float32)
    doc["gate"] = gate_checks(doc, _limits(a))
    doc["champion"] = _decide(registry, candidate, ctx, doc)
    log.info("gate %s; %s", doc["gate"]["verdict"], doc["champion"]["reason"])
    files = _publish(ctx, doc, _report(ctx, data, scores, doc, card, by_attack, baseline))
    if registry is not None:
        check = lambda: check_model_file(model_path, card, a.model, a.card)  # noqa: E731
        ctx.metrics["mlflow_run_id"] = registry.record(card.as_dict(), a.card, doc, files, check)
    verdict, promoted = doc["gate"]["verdict"], doc["champion"]["promoted"]
    for name in PARAMS:
        ctx.set_param(name, _param(doc[name]))
    ctx.set_param("verdict", verdict)
    ctx.set_param("promoted", _param(promoted))
    ctx.metrics.update(
        {k: doc[k] for k in PARAMS},
        verdict=verdict,
        promoted=promoted,
        holdout_rows=doc["rows"],
        alerts=doc["alerts"],
        max_psi=doc["drift"]["max_psi"],
        champion_version=doc["champion"]["previous_version"],
    )
    if verdict != "passed":
        raise GateFailed(
            f"quality gate failed: {failed_summary(doc['gate'])}; see {a.report_out} (thresholds: --gate-* flags)"
        )
