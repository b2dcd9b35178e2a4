"""Plots for the report as inline SVG strings (matplotlib, Agg backend, no files).

Curves are computed on all rows and thinned to a few hundred points before drawing, and
histograms are binned with numpy first, so a 300k-row holdout draws in well under a
second per plot. Text from data (attack types) has its ``$`` escaped, so it can never
switch on mathtext (which would mis-render or raise); matplotlib's SVG writer escapes it
as XML.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["pr_curve", "roc_curve", "score_histograms", "attack_recall_bars"]

_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_BENIGN, _ATTACK, _UNLABELLED, _THRESH = "#2b7bba", "#d7301f", "#8c8c8c", "#222222"


@contextmanager
def _figure(name: str, size: tuple[float, float] = (5.2, 3.6)) -> Iterator[tuple[Any, Any, list[str]]]:
    """Yield (fig, ax, out) and put the finished figure's SVG into ``out[0]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[str] = []
    rc: Any = {**_RC, "svg.hashsalt": name}  # Any: matplotlib types rc keys as a closed Literal set
    with matplotlib.rc_context(rc):
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        try:
            yield fig, ax, out
            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
        finally:
            plt.close(fig)
    out.append(_inline(buf.getvalue(), name))


def _inline(svg: str, name: str) -> str:
    """Make matplotlib's standalone SVG embeddable: no XML prolog/DOCTYPE, no namespace URLs, scalable."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{name}" data-plot="{name}" class="plot" ', 1)


def _plain(text: str) -> str:
    """Data text for matplotlib: a literal ``$`` never starts mathtext."""
    return text.replace("$", r"\$")


def pr_curve(
    recall: np.ndarray,
    precision: np.ndarray,
    base_rate: float,
    point: tuple[float, float] | None,
    pr_auc: float | None,
) -> str:
    """Precision–recall curve (points from ``curves``), the random baseline at ``base_rate``, the operating point."""
    with _figure("pr-curve") as (_, ax, out):
        ax.plot(recall, precision, color=_ATTACK, lw=1.5, label=f"model (AP = {pr_auc:.3f})" if pr_auc else "model")
        ax.axhline(base_rate, color=_UNLABELLED, ls="--", lw=1, label=f"random ({base_rate:.3f})")
        if point is not None:
            ax.plot([point[0]], [point[1]], "o", color=_THRESH, label="at threshold")
        ax.set(
            xlabel="recall (share of attacks alerted)",
            ylabel="precision (share of alerts that are attacks)",
            xlim=(0, 1.01),
            ylim=(0, 1.02),
            title="Precision–recall",
        )
        ax.legend(loc="lower left")
    return out[0]


def roc_curve(
    fpr: np.ndarray, tpr: np.ndarray, negatives: int, point: tuple[float, float] | None, roc_auc: float | None
) -> str:
    """ROC curve on a log FPR axis (alert budgets live at 0.1–5% FPR), with the operating point (fpr, recall)."""
    floor = 1.0 / max(negatives, 1)
    with _figure("roc-curve") as (_, ax, out):
        ax.plot(
            np.maximum(fpr, floor),
            tpr,
            color=_ATTACK,
            lw=1.5,
            label=f"model (AUC = {roc_auc:.3f})" if roc_auc else "model",
        )
        grid = np.logspace(np.log10(floor), 0, 50)
        ax.plot(grid, grid, color=_UNLABELLED, ls="--", lw=1, label="random")
        if point is not None:
            ax.plot([max(point[0], floor)], [point[1]], "o", color=_THRESH, label="at threshold")
        ax.axvline(0.01, color=_BENIGN, lw=0.8, ls=":", label="1% FPR")
        ax.set(xscale="log", xlabel="false-positive rate (log)", ylabel="recall", ylim=(0, 1.02), title="ROC")
        ax.legend(loc="lower right")
    return out[0]


def score_histograms(edges: np.ndarray, counts: dict[str, np.ndarray], threshold: float) -> str:
    """Score histograms by class ("benign", "attack", "unlabelled": counts over ``edges``) on a log count axis,
    threshold marked."""
    colors = {"benign": _BENIGN, "attack": _ATTACK, "unlabelled": _UNLABELLED}
    with _figure("score-histogram", size=(10.4, 3.4)) as (_, ax, out):
        for name, color in colors.items():
            if name in counts:
                ax.stairs(
                    counts[name],
                    edges,
                    color=color,
                    lw=1.5,
                    label=f"{name} ({int(counts[name].sum()):,})",
                    fill=name == "benign",
                    alpha=0.35 if name == "benign" else 1.0,
                )
        ax.axvline(threshold, color=_THRESH, lw=1.2, ls="--", label=f"threshold {threshold:.4g}")
        ax.set(
            yscale="log",
            xlabel="anomaly score (higher = more anomalous)",
            ylabel="flows (log)",
            title="Score distribution by class",
        )
        ax.legend(loc="upper right")
    return out[0]


def attack_recall_bars(by_attack: dict[str, dict[str, Any]]) -> str:
    """Horizontal bars: recall per attack type, labelled with detected/rows."""
    names = sorted(by_attack, key=lambda k: by_attack[k]["recall"])
    height = 0.9 + 0.32 * len(names)
    with _figure("attack-recall", size=(6.4, height)) as (_, ax, out):
        recalls = [by_attack[n]["recall"] for n in names]
        ax.barh(range(len(names)), recalls, color=_ATTACK, height=0.6)
        ax.set_yticks(range(len(names)), [_plain(n[:40]) for n in names])
        for i, n in enumerate(names):
            ax.text(
                recalls[i] + 0.015, i, f"{by_attack[n]['detected']:,}/{by_attack[n]['rows']:,}", va="center", fontsize=8
            )
        ax.set(xlim=(0, 1.2), xlabel="recall at the threshold", title="Recall per attack type")
        ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    return out[0]
