"""The HTML report: self-contained, escaped, with the sections and plots an analyst needs."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from stages.eval import metrics as M
from stages.eval.gate import GateThresholds
from stages.eval.report import top_alerts
from tests.eval import builders as b

HOSTILE_ATTACK = "<script>alert('x')</script>"
MATH_ATTACK = r"$\notacommand{x}$ & 50$"  # would raise inside matplotlib's mathtext if not escaped
HOSTILE_IP = '"><img src=x onerror=alert(1)>'
URL_SERVICE = "http://evil.example/beacon"
SECTIONS = [
    "Headline",
    "Quality gate checks",
    "Detection quality",
    "Recall per attack type",
    "Top alerts",
    "Feature drift (PSI)",
    "Model card",
]


def _hostile_table() -> pa.Table:
    shifts = {HOSTILE_ATTACK: ((1, 3), 4.0), MATH_ATTACK: ((1, 2), 3.5), "exfiltration": ((0, 2), 3.0)}
    table = b.flows(n=2000, seed=9, attack_types=shifts)
    n = table.num_rows
    table = table.set_column(table.schema.get_field_index("src_ip"), "src_ip", pa.array([HOSTILE_IP] * n))
    return table.set_column(table.schema.get_field_index("service"), "service", pa.array([URL_SERVICE] * n))


class _Elements(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    return b.render_report(tmp_path_factory.mktemp("hostile"), _hostile_table())


def test_data_strings_are_escaped(hostile: tuple[str, dict]) -> None:
    html, doc = hostile
    assert HOSTILE_ATTACK in doc["recall_by_attack"] and MATH_ATTACK in doc["recall_by_attack"]
    assert (
        "<script" not in html.lower()
        and "<img" not in html.lower()
        and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    )
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html  # the table cell
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html  # the top-alerts source column
    assert "run-&lt;b&gt;1&lt;/b&gt;" in html and "<b>1</b>" not in html


def test_math_text_in_labels_is_literal(hostile: tuple[str, dict]) -> None:
    html, _ = hostile
    bars = re.search(r'<svg[^>]*data-plot="attack-recall".*?</svg>', html, re.S)
    assert bars is not None
    assert r"$\notacommand{x}$ &amp; 50$" in bars.group(0)  # drawn as text, not parsed as math


def test_report_is_self_contained(hostile: tuple[str, dict]) -> None:
    html, _ = hostile
    parser = _Elements()
    parser.feed(html)
    csp = [dict(a) for t, a in parser.elements if t == "meta" and ("http-equiv", "Content-Security-Policy") in a]
    assert csp and str(csp[0]["content"]).startswith("default-src 'none';")  # the browser may load nothing
    refs = [v for _, attrs in parser.elements for k, v in attrs if k in {"src", "href", "xlink:href", "action"}]
    assert refs and all(r.startswith("#") for r in refs), refs  # only in-document SVG references
    assert not {tag for tag, _ in parser.elements} & {"script", "img", "link", "iframe", "object", "embed"}
    assert (
        "@import" not in html
        and re.findall(r"url\(([^)]*)\)", html)
        and all(u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", html))
    )  # SVG clip paths only
    assert "://" not in html.replace(URL_SERVICE, "").replace("s3://bucket/f.parquet", "")


def test_report_sections_and_plots(hostile: tuple[str, dict]) -> None:
    html, doc = hostile
    headings = re.findall(r"<h2[^>]*>(.*?)</h2>", html)
    assert headings == SECTIONS
    plots = re.findall(r'data-plot="([^"]+)"', html)
    assert plots == ["pr-curve", "roc-curve", "score-histogram", "attack-recall"]
    assert re.search(r'class="verdict passed" id="verdict">Quality gate PASSED', html)
    assert len(re.findall(r"<tr><td class=\"num\">\d+</td>", html)) == min(10, doc["alerts"])
    assert html.count('class="bad">DRIFT') == len(doc["drift"]["drifted"])


def test_unlabelled_report_has_no_curves(tmp_path: Path) -> None:
    html, doc = b.render_report(tmp_path, b.flows(n=1500, seed=2, labels="none"))
    assert doc["pr_auc"] is None
    assert re.findall(r'data-plot="([^"]+)"', html) == ["score-histogram"]
    assert "The holdout has no labels" in html and "Recall per attack type" not in html


def test_failed_gate_is_prominent(tmp_path: Path) -> None:
    html, doc = b.render_report(tmp_path, b.flows(n=1500, seed=2), GateThresholds(min_recall=0.999))
    assert doc["gate"]["verdict"] == "failed"
    assert 'class="verdict failed" id="verdict">Quality gate FAILED<small>failed checks: recall.' in html
    assert '<td class="bad">FAIL</td>' in html


def test_top_alerts_explain_the_unusual_feature() -> None:
    train = np.random.default_rng(0).normal(size=(500, 3))
    X = np.zeros((4, 3), dtype=np.float32)
    X[2, 1] = 9.0  # one far-out value in feature "b"
    scores = np.array([0.1, 0.2, 0.9, 0.8])
    holdout = pa.table({"uid": ["u0", "u1", "u2", "u3"]})
    rows: list[dict[str, Any]] = top_alerts(holdout, X, scores, 0.5, ["a", "b", "c"], M.robust_stats(train), n=5)
    assert [r["uid"] for r in rows] == ["u2", "u3"]  # alerts only, highest score first
    assert rows[0]["unusual"][0]["feature"] == "b" and rows[0]["unusual"][0]["z"] > 5
