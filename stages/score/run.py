"""The score verb: resolve → load → check → score → group → write → store → record.

Pure parts live in ``scoring``, ``incidents``, ``drift`` and ``report``; this module
does the I/O around them in the contract's order: outputs are staged (published by the
runner when the body returns, drift.json last as the primary), PostgreSQL rows are
replaced in one transaction, output parameters are written.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.common.errors import InputError
from stages.common.jsondoc import read_object as load_json
from stages.common.jsondoc import to_json
from stages.common.runner import StageContext

from .champion import check_contract, resolve

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["resolve_only", "score"]

log = logging.getLogger("stages.score")


def _need(args: Any, *flags: str) -> None:
    missing = [f"--{f.replace('_', '-')}" for f in flags if not getattr(args, f)]
    if missing:
        raise InputError(f"missing {', '.join(missing)}")


def resolve_only(ctx: StageContext) -> None:
    args = ctx.args
    _need(args, "model_out", "card_out", "training_manifest_out")
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
        got = resolve(args, ctx.storage, ctx.settings, Path(tmp))
        card = load_json(got.card, got.source)
        for name, src, uri, primary in (
            ("model", got.model, args.model_out, False),
            ("training_manifest", got.manifest, args.training_manifest_out, False),
            ("card", got.card, args.card_out, True),
        ):
            with ctx.output(name, uri, src.suffix, primary=primary) as out:
                shutil.copyfile(src, out.path)
    ctx.metrics.update(model=got.source, threshold=card.get("threshold"))
    ctx.set_param("model", got.source)
    ctx.set_param("threshold", repr(card.get("threshold")))


def _alerts_frame(scored: Any) -> pd.DataFrame:
    import pandas as pd

    table = scored.alert_table()
    if table is None:
        cols = ["ts", "uid", "src_ip", "dst_ip", "dst_port", "proto", "service", "conn_state", "score"]
        frame = pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
        frame["ts"] = pd.Series(dtype="datetime64[us, UTC]")
        frame["score"] = pd.Series(dtype="float64")
    else:
        frame = table.to_pandas()
        for c in ("src_ip", "dst_ip", "proto", "service", "conn_state", "attack_type"):
            if c in frame and isinstance(frame[c].dtype, pd.CategoricalDtype):
                frame[c] = frame[c].astype(object)
    frame["top_features"] = pd.Series(scored.evidence, dtype=object, index=frame.index)
    return frame


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd")


def score(ctx: StageContext) -> None:
    from stages.common.audit import open_audit
    from stages.common.model_io import load_model

    from .scoring import open_batches, score_batch

    args = ctx.args
    _need(args, "features", "manifest", "alerts_out", "incidents_out", "html_out", "drift_out")
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
        got = resolve(args, ctx.storage, ctx.settings, Path(tmp))
        card = load_json(got.card, got.source)
        silver = load_json(ctx.fetch_input("manifest", args.manifest), args.manifest)
        check_contract(card, silver, got.source, args.manifest)
        features_path = ctx.fetch_input("features", args.features, rows=silver.get("rows"))
        # pandas and pyarrow's bridge to it are set up on this thread before the reader starts:
        # pyarrow imports pandas lazily from whichever thread converts first, and a reader
        # thread doing that while this one imported pandas left the bridge half-initialised
        # (to_pandas then failed with "The zoneinfo module or pytz package must be installed")
        import pyarrow as pa
        import pyarrow.pandas_compat  # noqa: F401

        from . import drift, incidents, report

        pa.array([0.0]).to_numpy(zero_copy_only=False)

        # the first batches are read while the model loads (importing scikit-learn takes seconds)
        opened = open_batches(card, features_path, args.features)
        try:
            model = load_model(got.model)
        except BaseException:
            opened[0].close()
            raise
    scored = score_batch(model, card, features_path, args.features, opened)
    threshold = float(card["threshold"])
    alerts = _alerts_frame(scored)
    table, ids = incidents.group(alerts, threshold, ctx.run_id)
    alerts["incident_id"] = ids
    alerts = alerts.sort_values(["score"], ascending=False, kind="stable").reset_index(drop=True)
    report_drift = drift.drift_report(scored, card, len(alerts), args.max_psi, args.max_alert_rate_ratio)
    days = _days(silver, alerts)
    load = incidents.per_day(table, len(alerts), days)
    report_drift["triage"] = load | {"days": days}
    window = silver.get("window") or {}
    info = {
        "run_id": ctx.run_id,
        "model": got.source,
        "threshold": f"{threshold:.5f}",
        "rows": scored.rows,
        "window": f"{window.get('start') or 'start of input'} → {window.get('end') or 'end of input'}",
    }
    with ctx.output("alerts", args.alerts_out, ".parquet") as out:
        _write_parquet(alerts, out.path)
        out.rows = len(alerts)
    with ctx.output("incidents", args.incidents_out, ".parquet") as out:
        _write_parquet(table, out.path)
        out.rows = len(table)
    with ctx.output("html", args.html_out, ".html") as out:
        out.path.write_text(report.render(alerts, table, report_drift, info), encoding="utf-8")
    with ctx.output("drift", args.drift_out, ".json", primary=True) as out:
        out.path.write_text(to_json(report_drift))
    audit = open_audit(ctx.settings)
    try:
        if audit.enabled:
            from .store import replace_run

            replace_run(audit, ctx.run_id, alerts, table)
    finally:
        audit.close()
    if scored.rows == 0:
        log.warning("empty batch: no flows in the window, zero alerts (a successful run)")
    high = int((table["severity"] == "high").sum()) if len(table) else 0
    log.info(
        "%d flows → %d alerts → %d incidents (%d high); drifted: %s",
        scored.rows,
        len(alerts),
        len(table),
        high,
        report_drift["drifted"],
    )
    ctx.metrics.update(
        rows=scored.rows,
        alerts=len(alerts),
        incidents=len(table),
        high_incidents=high,
        drifted=report_drift["drifted"],
        max_feature_psi=report_drift["max_feature_psi"],
        score_psi=report_drift["score_psi"],
        model=got.source,
    )
    for name, value in (
        ("rows", scored.rows),
        ("alerts", len(alerts)),
        ("incidents", len(table)),
        ("high_incidents", high),
        ("drifted", str(report_drift["drifted"]).lower()),
        ("max_psi", "n/a" if report_drift["max_feature_psi"] is None else f"{report_drift['max_feature_psi']:.4f}"),
        ("model", got.source),
    ):
        ctx.set_param(name, value)


def _days(silver: dict[str, Any], alerts: pd.DataFrame) -> float:
    """Length of the batch in days: the window when both ends are set, else 1 (a daily batch)."""
    import pandas as pd

    window = silver.get("window") or {}
    if window.get("start") and window.get("end"):
        span = pd.Timestamp(window["end"]) - pd.Timestamp(window["start"])
        return max(span.total_seconds() / 86400.0, 1 / 24)
    return 1.0
