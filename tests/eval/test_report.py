"""The HTML report: self-contained, escaped, with the sections and plots an analyst needs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
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
MATH_ATTACK = r"$\notacommand{x}$ & 50$"  # TeX-like text: a plotting library might typeset it; drawn as-is
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


class _Cells(HTMLParser):
    """The text of every table cell, entities decoded, as a browser displays it."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "td":
            self._open = True
            self.texts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._open = self._open and tag != "td"

    def handle_data(self, data: str) -> None:
        if self._open:
            self.texts[-1] += data


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
    # Jinja2's autoescape (MarkupSafe) spells quotes as &#39; and &#34;
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html  # the table cell
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html  # the top-alerts source column
    cells = _Cells()
    cells.feed(html)
    assert HOSTILE_ATTACK in cells.texts and HOSTILE_IP in cells.texts  # a browser shows them as plain text
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
    assert all(r.startswith("#") for r in refs), refs  # links only within the document
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


def test_unusual_features_show_the_raw_value_silver_scaled_away() -> None:
    """Silver gives the model log1p counts and sizes; the report shows 27 ports, not 3.33."""
    from stages.eval.report import raw_value
    from stages.silver.features import flow_features, flow_groups
    from stages.silver.windows import Flows, context_features, context_groups

    n = 27  # one source probing 27 ports of one destination within half a minute
    flows = Flows(
        rel_ms=np.arange(n, dtype=np.int64) * 1000,
        src=np.zeros(n, np.int64),
        dst=np.zeros(n, np.int64),
        port=np.arange(1000, 1000 + n, dtype=np.int64),
        failed=np.ones(n, bool),
        src_bytes=np.full(n, 60, np.int64),
        dst_bytes=np.zeros(n, np.int64),
    )
    groups, _ = context_groups({"rel_ms", "src", "dst", "port", "failed", "src_bytes", "dst_bytes"})
    context = {k: float(v[-1]) for k, v in context_features(flows, groups).items()}
    assert raw_value("pair_distinct_port_1m", context["pair_distinct_port_1m"]) == (pytest.approx(27), "ports")
    expected = {"src_conns_1m": 27, "pair_conns_1m": 27, "dst_conns_1m": 27, "src_distinct_port_1m": 27}
    expected |= {"src_distinct_dst_1m": 1, "dst_distinct_src_1m": 1}
    for feature, count in expected.items():
        assert raw_value(feature, context[feature])[0] == pytest.approx(count), feature
    for feature, value in context.items():  # every log-scaled count is turned back, nothing else is
        scaled = "conns" in feature or "distinct" in feature
        assert (raw_value(feature, value)[1] != "") == scaled, feature
    table = pa.table({"src_bytes": [1200], "dst_bytes": [0], "src_pkts": [3], "dst_pkts": [0], "duration": [2.5]})
    names, _ = flow_groups(set(table.column_names))
    per_flow = {k: float(v[0]) for k, v in flow_features(table, names).items()}
    assert raw_value("log_src_bytes", per_flow["log_src_bytes"]) == (pytest.approx(1200), "bytes")
    assert raw_value("log_duration", per_flow["log_duration"]) == (pytest.approx(2.5), "s")
    assert raw_value("bytes_asym", per_flow["bytes_asym"]) == (per_flow["bytes_asym"], "")
    for feature, value in per_flow.items():
        assert (raw_value(feature, value)[1] != "") == feature.startswith("log_"), feature


def test_report_shows_raw_values_and_how_to_read_them(hostile: tuple[str, dict]) -> None:
    html, _ = hostile
    assert "How to read “most unusual”" in html
    cells = re.findall(r'<span class="nowrap" title="model input ([^"]+)">([^<]+) <b>([^<]+)</b>', html)
    units = {"log_src_bytes": " bytes", "log_dst_pkts": " packets"}
    assert {feature.strip() for _, feature, _ in cells} & set(units)
    for scaled, feature, shown in cells:
        if feature.strip() in units:  # the raw value with its unit, never the log-scaled model input
            assert shown.endswith(units[feature.strip()]) and shown != scaled


def test_report_tells_an_analyst_how_to_read_it(hostile: tuple[str, dict]) -> None:
    html, doc = hostile
    guide = re.search(
        r'<details class="guide" id="guide"><summary>How to read this report</summary>(.*?)</details>', html, re.S
    )
    assert guide is not None
    terms = re.findall(r"<dt>(.*?)</dt>", guide.group(1))
    assert terms == [
        "Score",
        f"Threshold ({doc['threshold']:.4f})",
        "Precision, recall, false-positive rate",
        "Quality gate",
        "z-score (“most unusual”)",
        "PSI (drift)",
    ]
    assert html.index('id="verdict"') < html.index('id="guide"') < html.index("<h2>Headline</h2>")


def test_templates_travel_with_the_stage_folder(tmp_path: Path) -> None:
    """Laid out as the image copies it (stages/__init__.py, common, eval), the template is found beside the module."""
    repo = Path(__file__).resolve().parents[2]
    app = tmp_path / "app"
    (app / "stages").mkdir(parents=True)
    shutil.copy(repo / "stages" / "__init__.py", app / "stages" / "__init__.py")
    for part in ("common", "eval"):
        shutil.copytree(repo / "stages" / part, app / "stages" / part, ignore=shutil.ignore_patterns("__pycache__"))
    probe = "from stages.eval import report\nprint(report.environment().get_template('report.html.j2').filename)\n"
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(app)}, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(app / "stages" / "eval" / "templates" / "report.html.j2")
