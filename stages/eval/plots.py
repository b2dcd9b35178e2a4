"""Plots for the report as inline SVG strings, written directly.

Four fixed chart shapes — two curves, a histogram, bars — need axes, ticks, a legend and a
few polylines. A plotting library cost this stage ~0.6 s to import and ~1 s to lay out the
text of these four at every run, and four packages in the image; the charts are simple
enough to write as SVG. Curves arrive thinned to a few hundred points (``curves``) and
histograms binned, so each plot is a few kB. Text from data (attack types) is XML-escaped,
and sizes are in CSS pixels with a ``viewBox``, so the report's CSS scales them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Any

import numpy as np

__all__ = ["pr_curve", "roc_curve", "score_histograms", "attack_recall_bars"]

_BENIGN, _ATTACK, _UNLABELLED, _THRESH, _INK, _GRID = "#2b7bba", "#d7301f", "#8c8c8c", "#222222", "#333333", "#dde1e5"
_DASHES = {"solid": None, "dashed": "6 4", "dotted": "1.5 3"}
_FONT = 11
_CHAR = 0.58 * _FONT
"""Approximate width of one character (for the legend box and the bar labels' margin)."""
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass
class _Scale:
    """Data interval ``[lo, hi]`` (log10 when ``log``) onto pixels ``[start, stop]``."""

    lo: float
    hi: float
    start: float
    stop: float
    log: bool = False

    def __call__(self, values: Any) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        lo, hi = self.lo, self.hi
        if self.log:
            v, lo, hi = np.log10(np.maximum(v, self.lo)), math.log10(lo), math.log10(hi)
        return self.start + (v - lo) / (hi - lo) * (self.stop - self.start)

    def ticks(self) -> list[tuple[float, str]]:
        """(value, label): decades on a log axis (at most 7), 4-6 round numbers on a linear one."""
        if self.log:
            first, last = math.ceil(math.log10(self.lo) - 1e-9), math.floor(math.log10(self.hi) + 1e-9)
            step = max(1, math.ceil((last - first + 1) / 7))
            return [(10.0**k, _power_of_ten(k)) for k in range(first, last + 1, step)]
        span = self.hi - self.lo
        raw = span / 5 if span > 0 else 1.0
        magnitude = 10 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
        first = math.ceil(self.lo / step - 1e-9)
        values = [k * step for k in range(first, math.floor(self.hi / step + 1e-9) + 1)]
        return [(v, f"{v:.10g}") for v in values]


def _power_of_ten(k: int) -> str:
    return {0: "1", 1: "10"}.get(k, "10" + str(k).translate(_SUPERSCRIPT))


def _points(xs: np.ndarray, ys: np.ndarray) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs.tolist(), ys.tolist(), strict=True))


def _stroke(color: str, width: float, style: str) -> str:
    dash = _DASHES[style]
    return f'stroke="{color}" stroke-width="{width}"' + (f' stroke-dasharray="{dash}"' if dash else "")


@dataclass
class _Chart:
    """One plot: a frame with ticks, grid and labels, marks clipped to it, and a legend."""

    name: str
    width: int
    height: int
    title: str
    xlabel: str
    ylabel: str
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    xlog: bool = False
    ylog: bool = False
    left: int = 56
    right: int = 14
    top: int = 26
    bottom: int = 42
    marks: list[str] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    """(sample markup at the origin, label: escaped when drawn)."""

    def __post_init__(self) -> None:
        self.x = _Scale(*self.x_range, self.left, self.width - self.right, self.xlog)
        self.y = _Scale(*self.y_range, self.height - self.bottom, self.top, self.ylog)

    def line(self, xs: Any, ys: Any, color: str, width: float = 1.5, style: str = "solid", label: str = "") -> None:
        xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        keep = np.isfinite(xs) & np.isfinite(ys)  # a NaN would make the whole polyline invalid
        points = _points(self.x(xs[keep]), self.y(ys[keep]))
        self.marks.append(f'<polyline points="{points}" fill="none" {_stroke(color, width, style)}/>')
        self._key(f'<line x1="0" y1="0" x2="22" y2="0" {_stroke(color, width, style)}/>', label)

    def dot(self, x: float, y: float, color: str, label: str = "") -> None:
        self.marks.append(f'<circle cx="{self.x(x):.1f}" cy="{self.y(y):.1f}" r="4" fill="{color}"/>')
        self._key(f'<circle cx="11" cy="0" r="4" fill="{color}"/>', label)

    def vline(self, x: float, color: str, width: float = 1.0, style: str = "solid", label: str = "") -> None:
        self.line([x, x], [self.y.lo, self.y.hi], color, width, style, label)

    def hline(self, y: float, color: str, width: float = 1.0, style: str = "solid", label: str = "") -> None:
        self.line([self.x.lo, self.x.hi], [y, y], color, width, style, label)

    def stairs(self, edges: np.ndarray, counts: np.ndarray, color: str, fill: bool, label: str) -> None:
        """A step outline over ``edges`` (zero counts sit on the axis), filled down to it when ``fill``."""
        xs = np.repeat(self.x(edges), 2)[1:-1]
        ys = np.repeat(self.y(np.maximum(counts, self.y.lo)), 2)
        body = _points(xs, ys)
        base = f"{xs[-1]:.1f},{self.y.start:.1f} {xs[0]:.1f},{self.y.start:.1f}"
        if fill:
            self.marks.append(f'<polygon points="{body} {base}" fill="{color}" fill-opacity="0.35" stroke="none"/>')
        self.marks.append(f'<polyline points="{body}" fill="none" {_stroke(color, 1.5, "solid")}/>')
        sample = f'<rect x="2" y="-5" width="18" height="10" fill="{color}" fill-opacity="{0.35 if fill else 0}" '
        self._key(sample + f"{_stroke(color, 1.5, 'solid')}/>", label)

    def _key(self, sample: str, label: str) -> None:
        if label:
            self.legend.append((sample, label))

    def svg(
        self,
        legend_at: str = "",
        x_ticks: list[tuple[float, str]] | None = None,
        y_ticks: list[tuple[float, str]] | None = None,
    ) -> str:
        """The finished plot; ``*_ticks`` (value, label) replace the scale's own ticks."""
        x0, x1, y0, y1 = self.x.start, self.x.stop, self.y.start, self.y.stop
        out = [
            f'<svg role="img" aria-label="{self.name}" data-plot="{self.name}" class="plot" '
            f'viewBox="0 0 {self.width} {self.height}" width="{self.width}" height="{self.height}" '
            f'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="{_FONT}" fill="{_INK}">',
            f'<defs><clipPath id="clip-{self.name}"><rect x="{x0}" y="{y1}" width="{x1 - x0}" '
            f'height="{y0 - y1}"/></clipPath></defs>',
            f'<rect width="{self.width}" height="{self.height}" fill="#fff"/>',
        ]
        for value, text in x_ticks if x_ticks is not None else self.x.ticks():
            at = float(self.x(value))
            out.append(f'<line x1="{at:.1f}" y1="{y1}" x2="{at:.1f}" y2="{y0 + 4}" stroke="{_GRID}"/>')
            out.append(f'<text x="{at:.1f}" y="{y0 + 16}" text-anchor="middle">{escape(text)}</text>')
        for value, text in y_ticks if y_ticks is not None else self.y.ticks():
            at = float(self.y(value))
            out.append(f'<line x1="{x0 - 4}" y1="{at:.1f}" x2="{x1}" y2="{at:.1f}" stroke="{_GRID}"/>')
            out.append(f'<text x="{x0 - 7}" y="{at + 4:.1f}" text-anchor="end">{escape(text)}</text>')
        out.append(f'<path d="M{x0},{y1} V{y0} H{x1}" fill="none" stroke="{_INK}"/>')
        out.append(f'<g clip-path="url(#clip-{self.name})">{"".join(self.marks)}</g>')
        out.append(
            f'<text x="{(x0 + x1) / 2}" y="16" text-anchor="middle" font-weight="bold">{escape(self.title)}</text>'
        )
        out.append(f'<text x="{(x0 + x1) / 2}" y="{self.height - 8}" text-anchor="middle">{escape(self.xlabel)}</text>')
        if self.ylabel:
            middle = (y0 + y1) / 2
            out.append(
                f'<text transform="translate(14 {middle}) rotate(-90)" text-anchor="middle">{escape(self.ylabel)}</text>'
            )
        if self.legend and legend_at:
            out.append(self._legend(legend_at))
        out.append("</svg>")
        return "".join(out)

    def _legend(self, corner: str) -> str:
        """The legend box in ``corner`` ("upper right", "lower left", ...) of the frame."""
        row, pad = 16, 6
        width = 34 + max(len(label) for _, label in self.legend) * _CHAR + pad
        height = row * len(self.legend) + pad
        x = self.x.stop - width - 6 if "right" in corner else self.x.start + 6
        y = self.y.stop + 6 if "upper" in corner else self.y.start - height - 6
        out = [
            f'<g transform="translate({x:.1f} {y:.1f})">',
            f'<rect width="{width:.1f}" height="{height}" fill="#fff" fill-opacity="0.85" stroke="{_GRID}"/>',
        ]
        for k, (sample, label) in enumerate(self.legend):
            top = pad + row * k + row / 2 - 3
            out.append(f'<g transform="translate(6 {top:.1f})">{sample}</g>')
            out.append(f'<text x="34" y="{top + 4:.1f}">{escape(label)}</text>')
        return "".join(out) + "</g>"


def pr_curve(
    recall: np.ndarray,
    precision: np.ndarray,
    base_rate: float,
    point: tuple[float, float] | None,
    pr_auc: float | None,
) -> str:
    """Precision–recall curve (points from ``curves``), the random baseline at ``base_rate``, the operating point."""
    chart = _Chart(
        "pr-curve",
        520,
        360,
        "Precision–recall",
        "recall (share of attacks alerted)",
        "precision (share of alerts that are attacks)",
        x_range=(0.0, 1.01),
        y_range=(0.0, 1.02),
    )
    chart.line(recall, precision, _ATTACK, label=f"model (AP = {pr_auc:.3f})" if pr_auc else "model")
    chart.hline(base_rate, _UNLABELLED, style="dashed", label=f"random ({base_rate:.3f})")
    if point is not None:
        chart.dot(*point, _THRESH, label="at threshold")
    return chart.svg("lower left")


def roc_curve(
    fpr: np.ndarray, tpr: np.ndarray, negatives: int, point: tuple[float, float] | None, roc_auc: float | None
) -> str:
    """ROC curve on a log FPR axis (alert budgets live at 0.1–5% FPR), with the operating point (fpr, recall)."""
    floor = 1.0 / max(negatives, 1)
    chart = _Chart(
        "roc-curve", 520, 360, "ROC", "false-positive rate (log)", "recall", (floor, 1.0), (0.0, 1.02), xlog=True
    )
    chart.line(np.maximum(fpr, floor), tpr, _ATTACK, label=f"model (AUC = {roc_auc:.3f})" if roc_auc else "model")
    grid = np.logspace(np.log10(floor), 0, 50)
    chart.line(grid, grid, _UNLABELLED, 1.0, "dashed", label="random")
    if point is not None:
        chart.dot(max(point[0], floor), point[1], _THRESH, label="at threshold")
    chart.vline(0.01, _BENIGN, 0.8, "dotted", label="1% FPR")
    return chart.svg("lower right")


def score_histograms(edges: np.ndarray, counts: dict[str, np.ndarray], threshold: float) -> str:
    """Score histograms by class ("benign", "attack", "unlabelled": counts over ``edges``) on a log count axis,
    threshold marked."""
    colors = {"benign": _BENIGN, "attack": _ATTACK, "unlabelled": _UNLABELLED}
    top = max((int(c.max()) for c in counts.values() if len(c)), default=1)
    lo, hi = float(min(edges[0], threshold)), float(max(edges[-1], threshold))
    pad = (hi - lo) * 0.02 or 0.5
    chart = _Chart(
        "score-histogram",
        1040,
        340,
        "Score distribution by class",
        "anomaly score (higher = more anomalous)",
        "flows (log)",
        x_range=(lo - pad, hi + pad),
        y_range=(0.5, max(top, 1) * 2.0),
        ylog=True,
    )
    for name, color in colors.items():
        if name in counts:
            chart.stairs(edges, counts[name], color, name == "benign", f"{name} ({int(counts[name].sum()):,})")
    chart.vline(threshold, _THRESH, 1.2, "dashed", label=f"threshold {threshold:.4g}")
    return chart.svg("upper right")


def attack_recall_bars(by_attack: dict[str, dict[str, Any]]) -> str:
    """Horizontal bars: recall per attack type, labelled with detected/rows."""
    names = sorted(by_attack, key=lambda k: by_attack[k]["recall"])
    labels = [n[:40] for n in names]
    left = 12 + int(max((len(t) for t in labels), default=4) * _CHAR)
    chart = _Chart(
        "attack-recall",
        640,
        max(170, 70 + 26 * len(names)),
        "Recall per attack type",
        "recall at the threshold",
        "",
        x_range=(0.0, 1.2),
        y_range=(-0.6, len(names) - 0.4),
        left=left,
    )
    ticks = [(v, f"{v:g}") for v in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    x0, band = float(chart.x(0.0)), abs(float(chart.y(0.3)) - float(chart.y(-0.3)))
    for i, name in enumerate(names):
        recall, middle = by_attack[name]["recall"], float(chart.y(i))
        width = float(chart.x(recall)) - x0
        chart.marks.append(
            f'<rect x="{x0:.1f}" y="{middle - band / 2:.1f}" width="{width:.1f}" height="{band:.1f}" fill="{_ATTACK}"/>'
        )
        counts = f"{by_attack[name]['detected']:,}/{by_attack[name]['rows']:,}"
        chart.marks.append(f'<text x="{x0 + width + 5:.1f}" y="{middle + 4:.1f}" font-size="10">{counts}</text>')
    return chart.svg(x_ticks=ticks, y_ticks=list(enumerate(labels)))
