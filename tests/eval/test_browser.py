"""The report in a real browser: headless Chromium lays it out, measures the plots, screenshots it.

Chromium is required: this test fails (never skips) when it is missing, with the install hint.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.eval import builders as b

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
MEASURE = """<script>
const box = e => { const r = e.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
const out = document.createElement("pre"); out.id = "measured";
out.textContent = JSON.stringify({
  plots: [...document.querySelectorAll("svg.plot")].map(e => [e.dataset.plot, ...box(e)]),
  headings: [...document.querySelectorAll("h2")].map(e => [e.textContent, ...box(e)]),
  verdict: [getComputedStyle(document.getElementById("verdict")).backgroundColor,
            ...box(document.getElementById("verdict"))],
});
document.body.appendChild(out);
</script>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "headless Chromium is required for the report tests and was not found on PATH; "
            "install it with `apt-get install chromium`"
        )
    return found


def _run(tmp_path: Path, page: Path, *args: str) -> str:
    proc = subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("browser")
    html, _ = b.render_report(work, b.flows(n=2000, seed=21))
    path = work / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_plots_and_sections_are_laid_out(tmp_path: Path, report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    # The report's own CSP forbids scripts; the measuring copy drops it and appends a probe.
    probe = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html).replace(
        "</body>", MEASURE + "</body>"
    )
    page = tmp_path / "measure.html"
    page.write_text(probe, encoding="utf-8")
    dom = _run(tmp_path, page, "--dump-dom", "--window-size=1280,2000")
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    measured = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert [p[0] for p in measured["plots"]] == ["pr-curve", "roc-curve", "score-histogram", "attack-recall"]
    for name, width, height in measured["plots"]:
        assert width >= 300 and height >= 150, (name, width, height)
    assert [h[0] for h in measured["headings"]][:3] == ["Headline", "Quality gate checks", "Detection quality"]
    assert all(w > 0 and h > 0 for _, w, h in measured["headings"])
    color, width, height = measured["verdict"]
    assert color == "rgb(30, 125, 60)" and width > 600 and height > 40  # a wide green banner


def test_report_csp_blocks_injected_script(tmp_path: Path, report: Path) -> None:
    # If escaping ever failed, the report's Content-Security-Policy still stops scripts from running.
    page = tmp_path / "injected.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _run(tmp_path, page, "--dump-dom")
    assert 'id="verdict"' in dom and 'id="measured"' not in dom


def test_screenshot(tmp_path: Path, report: Path) -> None:
    shot = tmp_path / "report.png"
    _run(tmp_path, report, f"--screenshot={shot}", "--window-size=1280,1800")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a rendered page, not a blank one
