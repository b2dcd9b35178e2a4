"""The demo's daily half: score a later synthetic day with the new champion, then summarise.

The later day has another seed and starts a day after the training period ends, so
its hosts, times and attacks are ones the model never saw. It runs the compiled scoring
CronWorkflow once (as the cron controller would), with the demo's services.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

from workflows.localargo.engine import Outcome, RunOptions, run_workflow

from .project import REPO_ROOT

__all__ = ["SCORING_MANIFEST", "later_day", "score_later_day"]

SCORING_MANIFEST = REPO_ROOT / "workflows" / "compiled" / "cron-scoring.yaml"
SHOWN_INCIDENTS = 8


def later_day(training_source: str) -> tuple[str, str]:
    """(synthetic source, window) of one day after a synthetic training source, with another seed."""
    query = dict(parse_qsl(urlparse(training_source).query))
    days = float(query.get("days", 2.0))
    start = dt.datetime.fromisoformat(query.get("start", "2026-01-05T00:00:00Z")) + dt.timedelta(days=days + 1)
    end = start + dt.timedelta(days=1)
    later = {
        "rows": str(max(int(float(query.get("rows", 100_000)) / days), 1)),
        "seed": str(int(query.get("seed", 7)) + 1000),
        "attack_share": query.get("attack_share", "0.02"),
        "days": "1",
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    window = f"{start:%Y-%m-%dT%H:%M:%S}/{end:%Y-%m-%dT%H:%M:%S}"
    return f"synthetic://?{urlencode(later)}", window


def score_later_day(training_source: str, state: Path, env: dict[str, str], verbose: bool) -> Outcome:
    """Run the scoring CronWorkflow once on the later day; print what an analyst would see first."""
    source, window = later_day(training_source)
    sys.stdout.write(f"\n== scoring a later day the model never saw: {source} (window {window}) ==\n")
    sys.stdout.flush()
    outcome = run_workflow(
        RunOptions(
            manifest=SCORING_MANIFEST,
            parameters={"source": source, "window": window},
            runtime="subprocess",
            artifacts=str(state / "artifacts"),
            workdir=state / "runs",
            workspace=REPO_ROOT,
            verbose=verbose,
            extra_env=env,
        )
    )
    _summary(outcome, state)
    return outcome


def _summary(outcome: Outcome, state: Path) -> None:
    out = sys.stdout
    tasks = {c.display_name: c for c in outcome.root.children}
    params: dict[str, Any] = tasks["score"].parameters if "score" in tasks else {}
    out.write(f"\n== scoring: {outcome.name} {outcome.phase} ==\n")
    if params:
        out.write(
            f"  flows={params.get('rows')}  alerts={params.get('alerts')}  incidents={params.get('incidents')}  "
            f"high={params.get('high-incidents')}  drifted={params.get('drifted')}  max-psi={params.get('max-psi')}\n"
        )
    folder = state / "artifacts" / "score" / outcome.name
    incidents = folder / "incidents.parquet"
    if incidents.is_file():
        import pandas as pd

        table = pd.read_parquet(incidents)
        if table.empty:
            out.write("  no incidents: no flow of this day reached the champion's threshold\n")
        for r in table.head(SHOWN_INCIDENTS).itertuples():
            out.write(f"  [{r.severity:<6}] {r.kind:<20} {r.summary}\n")
        if len(table) > SHOWN_INCIDENTS:
            out.write(f"  ... {len(table) - SHOWN_INCIDENTS} more incidents\n")
    html = folder / "alerts.html"
    out.write(f"\n  alerts page: {html if html.exists() else '(not written)'}\n")
    out.write(f"  drift:       {folder / 'drift.json'}\n")
