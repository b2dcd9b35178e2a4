"""Markdown for RESULTS.md: machine, date, command, then one table set per case."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from typing import Any

from .run import Case

__all__ = ["markdown"]


def _machine() -> str:
    import numpy
    import pyarrow
    import sklearn

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, scikit-learn {sklearn.__version__}, "
        f"numpy {numpy.__version__}, pyarrow {pyarrow.__version__}"
    )


def _f(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def _n(x: int | None) -> str:
    return "n/a" if x is None else f"{x:,}"


def _case(case: Case) -> list[str]:
    extra = [(f"ours ({name}, supervised)" if name == "hgb" else f"ours ({name})", m) for name, m in case.extra.items()]
    first = f"ours ({case.first_model}, supervised)" if case.first_model == "hgb" else f"ours ({case.first_model})"
    models = [(first, case.ours), *extra, ("baseline", case.baseline)]
    lines = [
        f"### {case.name}",
        "",
        f"{case.rows:,} flows, holdout {case.holdout_rows:,} ({case.ours['attacks']:,} attacks). "
        f"Stage seconds: " + ", ".join(f"{k} {v}" for k, v in case.seconds.items()) + ".",
        "",
        "| detector | ROC-AUC | PR-AUC | recall @ 1% FPR |",
        "|---|---|---|---|",
    ]
    for name, m in models:
        lines.append(f"| {name} | {_f(m['roc_auc'])} | {_f(m['pr_auc'])} | {_f(m['recall_at_fpr'])} |")
    lines += [
        "",
        "Per attack type (PR-AUC on benign + that type / recall at 1% FPR):",
        "",
        "| attack type | rows | "
        + " | ".join(n for n, _ in models)
        + f" | {case.first_model} beats baseline on both |",
        "|---|---|" + "---|" * len(models) + "---|",
    ]
    for kind, ours in case.ours["by_attack"].items():
        base = case.baseline["by_attack"][kind]
        cells = [
            f"{_f(m['by_attack'][kind]['pr_auc'])} / {_f(m['by_attack'][kind]['recall_at_fpr'])}" for _, m in models
        ]
        wins = ours["pr_auc"] > base["pr_auc"] and ours["recall_at_fpr"] > base["recall_at_fpr"]
        lines.append(f"| {kind} | {ours['rows']:,} | " + " | ".join(cells) + f" | {'yes' if wins else 'NO'} |")
    for name, m in [(first, case.ours), *extra]:
        c, cal = m["calibrated"], m["card"].get("calibration") or {}
        lines.append("")
        lines.append(
            f"Calibrated threshold of {name} (set by train, before the holdout: {cal.get('method', 'n/a')} on "
            f"{cal.get('rows', 'n/a')} rows): "
            f"holdout FPR {_f(c['fpr'])}, recall {_f(c['recall'])}, precision {_f(c['precision'])}."
        )
    return lines + [""]


def calibration_table(cases: list[Case]) -> list[str]:
    """One row per case and model: how train set the threshold, and what it gives on the holdout."""
    lines = [
        "### At the calibrated threshold (target FPR 0.01 unless --train-args says otherwise)",
        "",
        "| case | model | attack share of train rows | method | rows that set it | holdout FPR | holdout recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        for name, m in [(case.first_model, case.ours), *case.extra.items()]:
            c, cal = m["calibrated"], m["card"].get("calibration") or {}
            lines.append(
                f"| {case.name} | {name} | {_f(case.train_attack_share)} | {cal.get('method', 'n/a')} | "
                f"{_n(cal.get('rows'))} | {_f(c['fpr'])} | {_f(c['recall'])} |"
            )
    return lines + [""]


def markdown(cases: list[Case], argv: list[str], notes: list[str]) -> str:
    command = "python -m benchmarks.detection " + " ".join(shlex.quote(a) for a in argv)
    lines = [
        "## Detection quality",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {_machine()}",
        f"- command: `{command}`",
        *(f"- {n}" for n in notes),
        "",
    ]
    lines += calibration_table(cases)
    for case in cases:
        lines += _case(case)
    return "\n".join(lines)


def summary(case: Case) -> dict[str, Any]:
    """A compact dict of one case for the JSON output."""
    return {
        "name": case.name,
        "ours": case.ours,
        "baseline": case.baseline,
        "extra": case.extra,
        "seconds": case.seconds,
        "python": sys.version.split()[0],
    }
