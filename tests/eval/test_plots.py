"""The report's SVG plots: well-formed, marks where the data puts them, text escaped, readable ticks."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from stages.eval import plots
from stages.eval.plots import _Scale


def _svg(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # raises on markup a browser would have to guess at


def _points(element: ET.Element) -> np.ndarray:
    return np.array([[float(v) for v in p.split(",")] for p in element.attrib["points"].split()])


@pytest.mark.parametrize(
    ("lo", "hi", "log", "labels"),
    [
        (0.0, 1.01, False, ["0", "0.25", "0.5", "0.75", "1"]),
        (0.0, 1.2, False, ["0", "0.25", "0.5", "0.75", "1"]),
        (0.38, 0.71, False, ["0.4", "0.5", "0.6", "0.7"]),
        (-3.0, 1700.0, False, ["0", "500", "1000", "1500"]),
        (1 / 2700, 1.0, True, ["10⁻³", "10⁻²", "10⁻¹", "1"]),
        (0.5, 2e6, True, ["1", "10", "10²", "10³", "10⁴", "10⁵", "10⁶"]),
    ],
)
def test_ticks_are_round_numbers_inside_the_axis(lo: float, hi: float, log: bool, labels: list[str]) -> None:
    ticks = _Scale(lo, hi, 0, 100, log).ticks()
    assert [label for _, label in ticks] == labels
    assert all(lo <= value <= hi for value, _ in ticks)


def test_scale_maps_ends_to_pixels_and_log_is_even_per_decade() -> None:
    linear = _Scale(0.0, 2.0, 50, 250)
    np.testing.assert_allclose(linear([0.0, 1.0, 2.0]), [50, 150, 250])
    log = _Scale(0.001, 1.0, 0, 300, log=True)
    np.testing.assert_allclose(log([0.001, 0.01, 0.1, 1.0, 1e-9]), [0, 100, 200, 300, 0])  # below the axis: at it


def test_pr_curve_draws_the_points_given_and_the_operating_point() -> None:
    recall = np.array([0.0, 0.5, 1.0])
    precision = np.array([1.0, 0.8, 0.1])
    root = _svg(plots.pr_curve(recall, precision, 0.1, (0.5, 0.8), 0.75))
    assert root.attrib["data-plot"] == "pr-curve" and root.attrib["class"] == "plot"
    curve = _points(root.findall(".//polyline")[0])
    x, y = _Scale(0, 1.01, 56, 520 - 14), _Scale(0, 1.02, 360 - 42, 26)
    np.testing.assert_allclose(curve, np.column_stack([x(recall), y(precision)]), atol=0.06)
    dot = root.find(".//circle")
    assert dot is not None
    assert (float(dot.attrib["cx"]), float(dot.attrib["cy"])) == pytest.approx((x(0.5), y(0.8)), abs=0.06)
    texts = [t.text for t in root.iter("text")]
    assert "model (AP = 0.750)" in texts and "random (0.100)" in texts and "at threshold" in texts


def test_histogram_steps_follow_the_counts_and_zero_bins_sit_on_the_axis() -> None:
    edges = np.array([0.4, 0.5, 0.6, 0.7])
    root = _svg(plots.score_histograms(edges, {"benign": np.array([100, 0, 10]), "attack": np.array([0, 3, 7])}, 0.62))
    benign, attack = (p for p in root.findall(".//polyline") if p.attrib.get("stroke-dasharray") is None)
    steps = _points(benign)
    assert len(steps) == 6  # two corners per bin
    heights = steps[::2, 1]
    assert heights[0] < heights[2] < heights[1]  # 100 above 10 above the empty bin (SVG y grows downwards)
    assert heights[1] == pytest.approx(float(_points(attack)[0, 1]))  # both empty bins at the same floor
    assert root.find(".//polygon") is not None  # benign is filled, attack is an outline
    texts = [t.text for t in root.iter("text")]
    assert "benign (110)" in texts and "attack (10)" in texts and "threshold 0.62" in texts


def test_bar_labels_are_text_never_markup() -> None:
    hostile = '<script>alert("x")</script> & $\\frac{1}{2}$'
    root = _svg(
        plots.attack_recall_bars(
            {hostile: {"recall": 0.25, "detected": 1, "rows": 4}, "scan": {"recall": 1.0, "detected": 9, "rows": 9}}
        )
    )
    assert root.find(".//script") is None
    texts = [t.text for t in root.iter("text")]
    assert hostile[:40] in texts and "1/4" in texts and "9/9" in texts
    bars = [float(r.attrib["width"]) for r in root.findall(".//rect") if r.attrib.get("fill") == "#d7301f"]
    assert bars[1] == pytest.approx(4 * bars[0], abs=0.2)  # recall 1.0 is four times 0.25


def test_roc_keeps_points_at_zero_fpr_on_the_axis_floor() -> None:
    root = _svg(plots.roc_curve(np.array([0.0, 0.01, 1.0]), np.array([0.4, 0.9, 1.0]), 1000, (0.01, 0.9), 0.97))
    model = _points(root.findall(".//polyline")[0])
    assert model[0, 0] == pytest.approx(56)  # fpr 0 drawn at the 1/negatives floor: the left edge
    assert [t.text for t in root.iter("text")][:4] == ["10⁻³", "10⁻²", "10⁻¹", "1"]


def test_a_curve_point_that_is_not_a_number_is_left_out() -> None:
    root = _svg(plots.pr_curve(np.array([0.0, 0.5, 1.0]), np.array([1.0, np.nan, 0.2]), 0.1, None, None))
    assert len(_points(root.findall(".//polyline")[0])) == 2
    assert "nan" not in ET.tostring(root, encoding="unicode")
