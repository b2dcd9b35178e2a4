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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stages.common.contracts import ModelCard
from stages.common.errors import GateFailed, InputError
from stages.common.jsondoc import to_json
from stages.common.model_io import load_model, score_rows
from stages.common.runner import StageContext
from stages.common.silver_parts import PART_PREFIX, SilverSet, fetch_silver, part_folder, part_uri

from . import metrics as M
from .gate import PRIMARY_METRIC, GateThresholds, champion_decision, failed_summary, gate_checks
from .holdout import Holdout, in_memory, read_holdout
from .inputs import EvalData, check_contract, check_model_file

__all__ = ["run", "build_metrics", "metrics_document", "score"]

log = logging.getLogger(__name__)

PARAMS = ["pr_auc", "roc_auc", "precision", "recall", "fpr", "alert_rate"]


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
    """``metrics_document`` of one part's rows held in memory."""
    return metrics_document(run_id, in_memory(data, scores, threshold), threshold)


def metrics_document(run_id: str, holdout: Holdout, threshold: float) -> tuple[dict[str, Any], dict]:
    """The metrics.json document (without gate/champion) and the per-attack detail for the report."""
    st, by_attack = holdout.stats, holdout.by_attack
    doc: dict[str, Any] = {
        "version": 1,
        "run_id": run_id,
        "has_labels": holdout.has_labels,
        "rows": st.rows,
        "threshold": float(threshold),
        **M.alert_counts(st.alerts, st.rows, holdout.ts_range),
        "benign_alert_rate": M.benign_alert_rate(st) if holdout.has_labels else None,
        "score_quantiles": st.quantiles,
        "score_histogram": st.histogram,
        "drift": holdout.drift,
        "recall_by_attack": {k: v["recall"] for k, v in by_attack.items()},
        "attack_rows": {k: v["rows"] for k, v in by_attack.items()},
        **M.stats_metrics(st),
    }
    if not holdout.has_labels:
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


def _report(ctx: StageContext, holdout: Holdout, doc: dict[str, Any], card: ModelCard, by_attack: dict) -> str:
    from .report import ReportData, render

    a = ctx.args
    sources = {"features": a.features, "manifest": a.manifest, "model": a.model, "card": a.card}
    return render(ReportData(doc, card.as_dict(), holdout.stats, by_attack, holdout.top_alerts, sources))


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


def _scorer(model: Any, card: ModelCard, model_uri: str) -> Callable[[str, EvalData], np.ndarray]:
    return lambda _key, part: score(model, part, card.score_method, model_uri)


def _part_scores(ctx: StageContext, silver: SilverSet) -> Callable[[str, EvalData], np.ndarray]:
    """Each holdout part's scores from ``--scores DIR/part=<k>/scores.parquet`` (eval's fan-out), recorded as inputs."""
    from .part import SCORES_FILE, read_scores

    uri = ctx.args.scores
    folder = part_folder(ctx, uri, (SCORES_FILE,))
    if folder is None or not silver.parts[0].key:
        raise InputError(
            f"--scores {uri}: expected the directory of part=<k>/{SCORES_FILE} of a partitioned silver run's "
            "holdout parts, with --features/--manifest that run's directory"
        )

    def read(key: str, part: EvalData) -> np.ndarray:
        path, where = folder / f"{PART_PREFIX}{key}" / SCORES_FILE, part_uri(uri, key, SCORES_FILE)
        scores = read_scores(path, where, part.holdout_X.shape[0])
        ctx.record("input", f"scores/{PART_PREFIX}{key}", where, path, scores.size)
        return scores

    return read


def run(ctx: StageContext) -> None:
    """The stage body (see the module docstring for the order of side effects)."""
    a = ctx.args
    silver = fetch_silver(ctx, a.features, a.manifest)
    card = ModelCard.read(ctx.fetch_input("card", a.card), a.card)
    check_contract(silver.manifest, card, a.manifest, a.card)
    model_path = ctx.fetch_input("model", a.model)
    check_model_file(model_path, card, a.model, a.card)  # before skops reads a byte of it
    score_part = _part_scores(ctx, silver) if a.scores else _scorer(load_model(model_path), card, a.model)
    registry = _registry(ctx)
    candidate = registry.candidate(card.as_dict(), a.card) if registry is not None else None
    holdout = read_holdout(silver, score_part, card.threshold, a.top_alerts)
    doc, by_attack = metrics_document(ctx.run_id, holdout, card.threshold)
    doc["gate"] = gate_checks(doc, _limits(a))
    doc["champion"] = _decide(registry, candidate, ctx, doc)
    log.info("gate %s; %s", doc["gate"]["verdict"], doc["champion"]["reason"])
    files = _publish(ctx, doc, _report(ctx, holdout, doc, card, by_attack))
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
        parts=holdout.parts,
        alerts=doc["alerts"],
        max_psi=doc["drift"]["max_psi"],
        champion_version=doc["champion"]["previous_version"],
    )
    if verdict != "passed":
        raise GateFailed(
            f"quality gate failed: {failed_summary(doc['gate'])}; see {a.report_out} (thresholds: --gate-* flags)"
        )
