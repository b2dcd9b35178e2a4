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


def _case(case: Case) -> list[str]:
    extra = [(f"ours ({name}, supervised)" if name == "hgb" else f"ours ({name})", m) for name, m in case.extra.items()]
    models = [("ours (iforest)", case.ours), *extra, ("baseline", case.baseline)]
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
        "| attack type | rows | " + " | ".join(n for n, _ in models) + " | iforest beats baseline on both |",
        "|---|---|" + "---|" * len(models) + "---|",
    ]
    for kind, ours in case.ours["by_attack"].items():
        base = case.baseline["by_attack"][kind]
        cells = [
            f"{_f(m['by_attack'][kind]['pr_auc'])} / {_f(m['by_attack'][kind]['recall_at_fpr'])}" for _, m in models
        ]
        wins = ours["pr_auc"] > base["pr_auc"] and ours["recall_at_fpr"] > base["recall_at_fpr"]
        lines.append(f"| {kind} | {ours['rows']:,} | " + " | ".join(cells) + f" | {'yes' if wins else 'NO'} |")
    for name, m in [("ours (iforest)", case.ours), *extra]:
        c = m["calibrated"]
        lines.append("")
        lines.append(
            f"Calibrated threshold of {name} (set on validation rows, before the holdout): "
            f"holdout FPR {_f(c['fpr'])}, recall {_f(c['recall'])}, precision {_f(c['precision'])}."
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
