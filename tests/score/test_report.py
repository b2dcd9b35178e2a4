"""alerts.html: evidence in the analyst's units, a reading guide, templates that travel with the stage."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from stages.score import incidents, report

REPO = Path(__file__).resolve().parents[2]
T0 = pd.Timestamp("2026-03-01T10:00:00", tz="UTC")
INFO = {"run_id": "r1", "model": "models:/m/3", "threshold": "0.61234", "rows": 1000, "window": "w"}
EVIDENCE = r'<span class="nowrap" title="model input ([^"]+)">([^<]+) <b>([^<]+)</b> <span class="sub">z ([^<]+)</span>'


def _page(top_features: list[dict[str, float | str]]) -> str:
    alerts = pd.DataFrame(
        {"ts": [T0], "src_ip": ["10.9.9.9"], "dst_ip": ["10.0.0.5"], "dst_port": [22], "proto": ["tcp"], "score": [0.7]}
    )
    alerts["top_features"] = [top_features]
    table, ids = incidents.group(alerts, 0.61234, "r1")
    alerts["incident_id"] = ids
    return report.render(alerts, table, {"reasons": [], "drifted": False}, INFO)


def test_evidence_shows_the_raw_value_beside_the_z_score() -> None:
    """Silver gives the model log1p counts; the analyst reads 27 ports, with the model input on hover."""
    page = _page(
        [
            {"feature": "pair_distinct_port_1m", "value": math.log1p(27), "z": 5.24},
            {"feature": "log_src_bytes", "value": math.log1p(1200), "z": -3.1},
            {"feature": "bytes_asym", "value": 0.98, "z": 2.0},
        ]
    )
    shown = {feature: (raw, z, model_input) for model_input, feature, raw, z in re.findall(EVIDENCE, page)}
    assert shown == {
        "pair_distinct_port_1m": ("27 ports", "+5.2", "3.332"),
        "log_src_bytes": ("1,200 bytes", "-3.1", "7.091"),
        "bytes_asym": ("0.98", "+2.0", "0.98"),  # not log-scaled: shown as it is
    }
    assert "3.33 (z" not in page and "=3.33" not in page


def test_page_tells_an_analyst_how_to_read_it() -> None:
    page = _page([{"feature": "src_conns_1m", "value": math.log1p(40), "z": 4.0}])
    guide = re.search(
        r'<details class="guide" id="guide"><summary>How to read this page</summary>(.*?)</details>', page, re.S
    )
    assert guide is not None
    terms = re.findall(r"<dt>(.*?)</dt>", guide.group(1))
    assert terms == ["Score", "Threshold (0.61234)", "Incident and severity", "Evidence: value and z-score", "Drift"]
    assert "<b>high</b>: 100 or more" in guide.group(1) and "25%" in guide.group(1)
    assert page.index('id="guide"') < page.index("<h2>Incidents by severity</h2>")


def test_templates_travel_with_the_stage_folder(tmp_path: Path) -> None:
    """Laid out as the image copies it (stages/__init__.py, common, score), the page still renders."""
    app = tmp_path / "app"
    (app / "stages").mkdir(parents=True)
    shutil.copy(REPO / "stages" / "__init__.py", app / "stages" / "__init__.py")
    for part in ("common", "score"):
        shutil.copytree(REPO / "stages" / part, app / "stages" / part, ignore=shutil.ignore_patterns("__pycache__"))
    probe = (
        "import pandas as pd\n"
        "from stages.score import report\n"
        "info = {'run_id': 'r', 'model': 'm', 'threshold': '0.5', 'rows': 0, 'window': 'w'}\n"
        "page = report.render(pd.DataFrame(), pd.DataFrame(), {}, info)\n"
        "print(report.TEMPLATES)\n"
        "print('held no flows' in page and 'How to read this page' in page)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(app)}, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(app / "stages" / "score" / "templates"), "True"]
