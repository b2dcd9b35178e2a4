"""The self-contained HTML report for SOC analysts and model owners.

One file, no external resources (plots are inline SVG, CSS is inline, a Content-Security-
Policy forbids loading anything), readable offline from MinIO or the Argo UI. Every
string that comes from data, the card or the registry is escaped: flows are untrusted.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import plots
from .metrics import robust_z

__all__ = ["ReportData", "top_alerts", "render", "raw_value"]

# Silver feeds counts and sizes to the model as log1p (stages/silver features.py, windows.py):
# pair_distinct_port_1m 3.33 is 27 ports. The report turns them back, with their unit.
_LOG1P_UNITS = (
    (re.compile(r"log_(src|dst)_bytes_per_pkt"), "bytes/packet"),
    (re.compile(r"log_(src|dst)(_ip)?_bytes"), "bytes"),
    (re.compile(r"log_(src|dst)_pkts"), "packets"),
    (re.compile(r"log_duration"), "s"),
    (re.compile(r"log_bytes_per_s"), "bytes/s"),
    (re.compile(r"(src|pair|dst)_conns_\w+"), "connections"),
    (re.compile(r"src_distinct_dst_\w+"), "destinations"),
    (re.compile(r"(src|pair)_distinct_port_\w+"), "ports"),
    (re.compile(r"dst_distinct_src_\w+"), "sources"),
)
_COUNTS = frozenset({"packets", "connections", "destinations", "ports", "sources"})
READING_GUIDE = (
    "<p><b>How to read “most unusual”.</b> Each alert lists the three features furthest from what the "
    "model saw in training. The first number is this flow’s actual value — e.g. "
    "<code>pair_distinct_port_1m 27 ports</code>: in the minute before this flow, its source contacted 27 "
    "different ports on this destination. <i>z</i> says how far that is from a typical training flow, in "
    "robust standard deviations (median and interquartile range; measured on the log scale the model uses "
    "for counts and sizes): |z| around 1 is ordinary, above 3 unusual, above 10 far outside anything seen in "
    "training; + means more than usual, − less. Windows (1m, 10m, 1h) look back from the flow per source, "
    "pair (source → destination) or destination. <code>_share</code> features are fractions (0–1), "
    "<code>_asym</code> run from −1 (all received) to +1 (all sent), <code>proto_</code>/<code>svc_</code>/"
    "<code>cs_</code> features are 0/1 flags, <code>pair_regularity_1h</code> above ~4 means machine-regular "
    "timing (a beacon).</p>"
)


def raw_value(feature: str, value: float) -> tuple[float, str]:
    """The feature's value as the analyst knows it (27 ports, not log1p 3.33) and its unit ('' if none)."""
    for pattern, unit in _LOG1P_UNITS:
        if pattern.fullmatch(feature):
            return (math.expm1(value) if math.isfinite(value) else value), unit
    return value, ""


def _raw_text(feature: str, value: float) -> str:
    raw, unit = raw_value(feature, value)
    if not math.isfinite(raw):
        return str(raw)
    number = f"{raw:,.0f}" if unit in _COUNTS or (unit == "bytes" and raw >= 10) else f"{raw:.3g}"
    return f"{number} {unit}".rstrip()


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2733;background:#f4f6f8}
main{max-width:1180px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:30px 0 10px;border-bottom:1px solid #d5dbe1;padding-bottom:4px}
.sub{color:#5a6775;font-size:13px}
.verdict{margin:16px 0;padding:14px 18px;border-radius:8px;font-size:20px;font-weight:700;color:#fff}
.verdict.passed{background:#1e7d3c}.verdict.failed{background:#b3261e}
.verdict small{display:block;font-size:13px;font-weight:400;margin-top:4px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{background:#fff;border:1px solid #d5dbe1;border-radius:6px;padding:10px 12px}
.card b{display:block;font-size:22px}.card span{color:#5a6775;font-size:12px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border:1px solid #d5dbe1;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#e9edf1}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1e7d3c;font-weight:600}.bad{color:#b3261e;font-weight:600}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots figure{margin:0;background:#fff;border:1px solid #d5dbe1;
border-radius:6px;padding:6px;flex:1 1 480px}svg.plot{max-width:100%;height:auto;display:block}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px;margin:8px 0}
code{font-size:12px}.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;white-space:nowrap}
.nowrap{white-space:nowrap}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@dataclass
class ReportData:
    """Everything the report shows; ``metrics`` is the metrics.json document."""

    metrics: dict[str, Any]
    card: dict[str, Any]
    y: np.ndarray
    scores: np.ndarray
    by_attack: dict[str, dict[str, Any]]
    alerts: list[dict[str, Any]]
    sources: dict[str, str]


def e(value: Any) -> str:
    """Escape anything for HTML text or attribute context."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, kind: str = "num") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "1f":
        return f"{value:,.1f}"
    return f"{value:.4f}" if isinstance(value, float) else e(value)


def top_alerts(
    holdout: Any,
    X: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    features: list[str],
    baseline: tuple[np.ndarray, np.ndarray],
    n: int = 25,
    k: int = 3,
) -> list[dict[str, Any]]:
    """The ``n`` highest-scoring alerts with their passthrough fields and ``k`` most unusual features.

    "Unusual" = largest absolute robust z-score against train rows (``baseline`` is
    median and scale from ``metrics.robust_stats``), which tells an analyst where to look.
    """
    alerted = np.flatnonzero(scores >= threshold)
    top = alerted[np.argsort(-scores[alerted], kind="stable")[:n]]
    rows = holdout.take(top).to_pylist() if top.size else []
    z = robust_z(X[top], *baseline) if top.size else np.empty((0, len(features)))
    for row, zi, xi, i in zip(rows, z, X[top], top, strict=True):
        order = np.argsort(-np.nan_to_num(np.abs(zi)), kind="stable")[:k]
        row["score"] = float(scores[i])
        row["unusual"] = [{"feature": features[j], "z": float(zi[j]), "value": float(xi[j])} for j in order]
    return rows


def _short(value: Any, limit: int = 48) -> str:
    """Escaped text cut to ``limit`` characters (the full value in a tooltip), so odd data cannot stretch a table."""
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return e(text)
    return f'<span title="{e(text)}">{e(text[: limit - 1])}…</span>'


def _card(label: str, value: str, hint: str = "") -> str:
    return f'<div class="card" title="{e(hint)}"><b>{value}</b><span>{e(label)}</span></div>'


def _header(d: ReportData) -> str:
    m, champ = d.metrics, d.metrics.get("champion", {})
    verdict = m["gate"]["verdict"]
    failed = [c["name"] for c in m["gate"]["checks"] if not c["passed"]]
    detail = "all gate checks passed" if not failed else "failed checks: " + ", ".join(failed)
    promo = ("promoted to champion" if champ.get("promoted") else "not promoted") + f" — {champ.get('reason', '')}"
    return (
        f"<h1>Network anomaly detection — evaluation report</h1>"
        f'<div class="sub">run <code>{e(m.get("run_id"))}</code> · model {e(d.card.get("model_type"))} '
        f"{e('v' + champ['candidate_version'] if champ.get('candidate_version') else '(not registered)')} · "
        f"generated {e(_now())}</div>"
        f'<div class="verdict {e(verdict)}" id="verdict">Quality gate {e(verdict.upper())}'
        f"<small>{e(detail)}. Registry: {e(promo)}</small></div>"
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _headline(d: ReportData) -> str:
    m = d.metrics
    cards = [
        _card("holdout flows", fmt(m["rows"], "int")),
        _card("alerts", fmt(m.get("alerts"), "int"), "flows with score ≥ threshold"),
        _card("alert rate", fmt(m["alert_rate"], "pct")),
        _card("alerts per day", fmt(m["alerts_per_day"], "1f"), "alerts / time span of the holdout"),
    ]
    if m["has_labels"]:
        cards += [
            _card("precision", fmt(m["precision"], "pct"), "share of alerts that are attacks"),
            _card("recall", fmt(m["recall"], "pct"), "share of attack flows alerted"),
            _card("false-positive rate", fmt(m["fpr"], "pct"), "share of benign flows alerted"),
            _card("F1", fmt(m["f1"])),
            _card("PR-AUC", fmt(m["pr_auc"]), "average precision over all thresholds"),
            _card("ROC-AUC", fmt(m["roc_auc"])),
            _card("recall at 1% FPR", fmt(m.get("recall_at_1pct_fpr"), "pct")),
        ]
    cards.append(_card("max feature PSI", fmt(m["drift"]["max_psi"]), "population stability, > 0.2 = drift"))
    notes = []
    if not m["has_labels"]:
        notes.append("The holdout has no labels: only alert volume, score distribution and drift can be measured.")
    if m.get("unlabelled_rows"):
        notes.append(
            f"{m['unlabelled_rows']:,} holdout flows are unlabelled; detection metrics use the "
            f"{m['labelled_rows']:,} labelled flows."
        )
    if m.get("auc_note"):
        notes.append(m["auc_note"])
    return (
        "<h2>Headline</h2>"
        + f'<div class="cards">{"".join(cards)}</div>'
        + "".join(f'<p class="note">{e(n)}</p>' for n in notes)
    )


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(rows_i) + "</tr>" for rows_i in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _td(value: str, num: bool = False, cls: str = "") -> str:
    classes = " ".join(c for c in ("num" if num else "", cls) if c)
    return f'<td class="{classes}">{value}</td>' if classes else f"<td>{value}</td>"


def _gate(d: ReportData) -> str:
    rows = [
        [
            _td(e(c["name"])),
            _td(fmt(c["value"]), True),
            _td(e(c["op"])),
            _td(fmt(float(c["threshold"])), True),
            _td("pass" if c["passed"] else "FAIL", cls="ok" if c["passed"] else "bad"),
            _td(e(c.get("note", ""))),
        ]
        for c in d.metrics["gate"]["checks"]
    ]
    return '<h2 id="gate">Quality gate checks</h2>' + _table(["check", "value", "op", "limit", "result", "note"], rows)


def _curves(d: ReportData) -> str:
    m = d.metrics
    hist = plots.score_histograms(d.y, d.scores, m["threshold"])
    out = '<h2 id="curves">Detection quality</h2>'
    if m["pr_auc"] is not None:
        mask = ~np.isnan(d.y)
        y, s = d.y[mask], d.scores[mask]
        pr_point = (m["recall"], m["precision"]) if m["precision"] is not None else None
        roc_point = (m["fpr"], m["recall"])
        out += (
            f'<div class="plots"><figure>{plots.pr_curve(y, s, pr_point, m["pr_auc"])}</figure>'
            f"<figure>{plots.roc_curve(y, s, roc_point, m['roc_auc'])}</figure></div>"
        )
    else:
        out += f'<p class="note">No PR/ROC curves: {e(m.get("auc_note") or "the holdout has no labels")}.</p>'
    return out + f'<div class="plots"><figure>{hist}</figure></div>'


def _attacks(d: ReportData) -> str:
    if not d.by_attack:
        return ""
    rows = [
        [
            _td(e(name)),
            _td(fmt(v["rows"], "int"), True),
            _td(fmt(v["detected"], "int"), True),
            _td(fmt(v["recall"], "pct"), True),
        ]
        for name, v in sorted(d.by_attack.items(), key=lambda kv: -kv[1]["rows"])
    ]
    return (
        '<h2 id="attacks">Recall per attack type</h2>'
        f'<div class="plots"><figure>{plots.attack_recall_bars(d.by_attack)}</figure>'
        f'<div style="flex:1 1 380px">{_table(["attack type", "flows", "alerted", "recall"], rows)}</div></div>'
    )


def _alerts(d: ReportData) -> str:
    head = ["#", "time (UTC)", "source", "destination", "port", "proto", "service", "score", "label", "most unusual"]
    rows = []
    for i, a in enumerate(d.alerts, 1):
        ts = a.get("ts")
        label = {0: "benign", 1: a.get("attack_type") or "malicious"}.get(a.get("label"), "unknown")  # type: ignore[arg-type]
        unusual = "<br>".join(
            f'<span class="nowrap" title="model input {u["value"]:.4g}">{e(u["feature"])} '
            f'<b>{e(_raw_text(u["feature"], u["value"]))}</b> <span class="sub">z {u["z"]:+.1f}</span></span>'
            for u in a["unusual"]
        )
        rows.append(
            [
                _td(str(i), True),
                _td(e(ts.strftime("%Y-%m-%d %H:%M:%S") if ts else ""), cls="nowrap"),
                _td(_short(a.get("src_ip")), cls="mono"),
                _td(_short(a.get("dst_ip")), cls="mono"),
                _td(e(a.get("dst_port")), True),
                _td(_short(a.get("proto"))),
                _td(_short(a.get("service"))),
                _td(f"{a['score']:.4f}", True),
                _td(e(label)),
                _td(unusual),
            ]
        )
    intro = f"<p>The {len(d.alerts)} highest-scoring alerts.</p>" + (READING_GUIDE if rows else "")
    return '<h2 id="alerts">Top alerts</h2>' + intro + (_table(head, rows) if rows else "<p>No alerts.</p>")


def _drift(d: ReportData) -> str:
    dr = d.metrics["drift"]
    items = sorted(dr["psi"].items(), key=lambda kv: -(kv[1] if kv[1] is not None else -1))
    rows = [
        [
            _td(e(name)),
            _td(fmt(v), True),
            _td("DRIFT" if name in dr["drifted"] else "ok", cls="bad" if name in dr["drifted"] else "ok"),
        ]
        for name, v in items
    ]
    intro = (
        f"<p>Population stability index of each feature, holdout against train ({dr['bins']} quantile bins "
        f"from train). Above {dr['threshold']} the feature's distribution shifted: {len(dr['drifted'])} of "
        f"{len(items)} features.</p>"
    )
    return '<h2 id="drift">Feature drift (PSI)</h2>' + intro + _table(["feature", "PSI", "status"], rows)


def _model(d: ReportData) -> str:
    c, ml = d.card, d.card.get("mlflow") or {}
    cal = c.get("calibration") or {}
    items = [
        ("model type", c.get("model_type")),
        ("score method", c.get("score_method")),
        ("threshold", fmt(float(c["threshold"]))),
        ("trained on", c.get("trained_on")),
        ("train rows", c.get("train_rows")),
        (
            "calibration",
            f"{cal.get('method')} target {cal.get('target')} achieved {cal.get('achieved')} on {cal.get('rows')} rows"
            if cal
            else None,
        ),
        ("features", len(c.get("features", []))),
        ("schema hash", c.get("schema_hash")),
        ("MLflow run", ml.get("run_id")),
        ("registered model", ml.get("model_name")),
        ("model version", ml.get("model_version")),
        ("card created", c.get("created_at")),
        *[(f"input: {k}", v) for k, v in d.sources.items()],
    ]
    rows = [[_td(e(k)), _td(e(v if v is not None else "n/a"), cls="mono")] for k, v in items]
    return '<h2 id="model">Model card</h2>' + _table(["field", "value"], rows)


def render(d: ReportData) -> str:
    """The complete report as an HTML string."""
    sections = [_header(d), _headline(d), _gate(d), _curves(d), _attacks(d), _alerts(d), _drift(d), _model(d)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Evaluation {e(d.metrics.get('run_id'))} — gate {e(d.metrics['gate']['verdict'])}</title>"
        f"<style>{_CSS}</style></head><body><main>{''.join(sections)}</main></body></html>\n"
    )
