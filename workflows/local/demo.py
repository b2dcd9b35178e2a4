"""``python -m workflows demo``: the whole pipeline on this machine, then a short summary.

Starts (or reuses) a PostgreSQL under ``.local/pg`` for the audit, points MLflow at a
sqlite store under ``.local/mlflow`` (its experiment's artifacts in
``.local/mlflow/artifacts``, not MLflow's default ``./mlruns`` in the working directory),
runs the compiled workflow with the subprocess runtime and artifacts in
``.local/artifacts``, and prints rows per stage, headline metrics, the gate verdict, the
audit rows and where to look next. Then it scores a later synthetic day with the new
champion through the scoring CronWorkflow (``demo_scoring``) and prints the incidents and
where alerts.html is. The exit code is the last workflow's.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

from workflows.localargo.engine import Outcome, RunOptions, run_workflow
from workflows.localargo.errors import ExecutorError
from workflows.localargo.manifest import load_manifest, parse_overrides
from workflows.localargo.status import Node

from .project import REPO_ROOT, STATE

__all__ = ["run_demo", "services", "synthetic_source", "prepare_mlflow", "local_env", "EXPERIMENT"]

log = logging.getLogger(__name__)
EXPERIMENT = "cybersec-anomaly"
"""The train stage's default ``--experiment``; created here so its artifacts stay under .local/mlflow."""
# Variables the manifest reads from Secrets/ConfigMaps that the demo deliberately leaves
# empty (no password on the local PostgreSQL, artifacts in a directory rather than MinIO);
# an empty value means "not configured" to the stages and keeps the run free of warnings.
_EMPTY = ("PG_PASSWORD", "MINIO_ENDPOINT", "MINIO_SECURE", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY")


def synthetic_source(default: str | None, rows: int) -> str:
    """The manifest's default synthetic source with ``rows`` set (other query keys kept)."""
    parsed = urlparse(default or "synthetic://")
    if parsed.scheme != "synthetic":
        parsed = urlparse("synthetic://?seed=7")
    query = dict(parse_qsl(parsed.query))
    query["rows"] = str(rows)
    return f"synthetic://?{urlencode(query)}"


def _postgres(state: Path) -> Any:
    from .services import EmbeddedPostgres

    return EmbeddedPostgres(state / "pg")


def _start_postgres(state: Path) -> Any:
    """Start (or reuse) the embedded PostgreSQL; a failure becomes an ExecutorError saying why."""
    import subprocess

    try:
        return _postgres(state).start()
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
        raise ExecutorError(
            f"PostgreSQL could not start in {state / 'pg'}: {detail[0]} (as root the server runs "
            "as the 'postgres' user, which needs access to that directory and its parents)"
        ) from exc
    except OSError as exc:
        raise ExecutorError(f"PostgreSQL could not start in {state / 'pg'}: {exc}") from exc


def prepare_mlflow(state: Path) -> str:
    """The sqlite tracking URI, with the experiment's artifact location under ``state/mlflow/artifacts``.

    MLflow's default artifact root for a sqlite store is ``./mlruns`` in the *stage's* working
    directory (the repository, for the subprocess runtime); creating the experiment first
    with an explicit location keeps runs and models beside the database instead.
    """
    from .services import mlflow_sqlite_uri

    uri = mlflow_sqlite_uri(state / "mlflow")
    artifacts = (state / "mlflow" / "artifacts").resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    if _has_experiment(state / "mlflow" / "mlflow.db"):
        return uri  # importing mlflow takes seconds; only the first demo needs it
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # as the stages do (runner.run_stage)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:
        client.create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri())
    return uri


def _has_experiment(db: Path) -> bool:
    import sqlite3

    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT 1 FROM experiments WHERE name = ?", (EXPERIMENT,)).fetchone() is not None
    except sqlite3.Error:
        return False


def local_env(state: Path) -> dict[str, str]:
    """Start (or reuse) the PostgreSQL under ``state/pg`` and the MLflow store; the stages' environment.

    ``PG_*`` for the audit, ``MLFLOW_TRACKING_URI`` for the sqlite store, and empty values
    for what the demo leaves unconfigured (see ``_EMPTY``). Raises :class:`ExecutorError`
    when PostgreSQL cannot start.
    """
    pg = _start_postgres(state)
    return {**pg.env, "MLFLOW_TRACKING_URI": prepare_mlflow(state), **{k: "" for k in _EMPTY}}


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the workflow's exit code (2 when it cannot start)."""
    state: Path = args.state.resolve()
    started = time.monotonic()
    try:
        overrides = parse_overrides(args.parameter)
        default = load_manifest(args.manifest, {}).parameters.get("source")
        overrides.setdefault("source", args.source or synthetic_source(default, args.rows))
        print(f"starting PostgreSQL ({state / 'pg'}) and MLflow ({state / 'mlflow'}) ...", flush=True)
        env = local_env(state)
        outcome = run_workflow(
            RunOptions(
                manifest=args.manifest,
                parameters=overrides,
                runtime="subprocess",
                artifacts=str(state / "artifacts"),
                workdir=state / "runs",
                workspace=REPO_ROOT,
                verbose=args.verbose,
                extra_env=env,
            )
        )
    except ExecutorError as exc:
        log.error("%s", exc)
        return 2
    _summary(outcome, state, env, time.monotonic() - started)
    if outcome.exit_code != 0 or args.no_scoring:
        return outcome.exit_code
    from .demo_scoring import score_later_day

    try:  # the daily half: the champion on a day it never saw
        scoring = score_later_day(overrides["source"], state, env, args.verbose)
    except ExecutorError as exc:
        log.error("%s", exc)
        return 2
    return scoring.exit_code


def _tasks(root: Node) -> dict[str, Node]:
    return {c.display_name: c for c in root.children}


def _summary(outcome: Outcome, state: Path, env: dict[str, str], seconds: float) -> None:
    t = _tasks(outcome.root)
    p = {name: node.parameters for name, node in t.items()}
    out = sys.stdout
    out.write(f"\n== demo: {outcome.name} {outcome.phase} in {seconds:.0f}s ==\n")
    rows = [
        ("ingest", "rows", "rejected"),
        ("silver", "rows", "train-rows", "holdout-rows"),
        ("train", "train-rows", "threshold", "model-version"),
    ]
    for stage, *keys in rows:
        values = "  ".join(f"{k}={p[stage][k]}" for k in keys if k in p.get(stage, {}))
        out.write(f"  {stage:<7}{t[stage].phase if stage in t else 'not run':<10}{values}\n")
    ev = p.get("eval", {})
    metrics = "  ".join(
        f"{k}={ev[k]}" for k in ("pr-auc", "roc-auc", "precision", "recall", "fpr", "alert-rate") if k in ev
    )
    out.write(f"  {'eval':<7}{t['eval'].phase if 'eval' in t else 'not run':<10}{metrics}\n")
    if ev:
        out.write(f"  gate verdict: {ev.get('verdict', '?')}   promoted to champion: {ev.get('promoted', '?')}\n")
    report = state / "artifacts" / "eval" / outcome.name / "report.html"
    out.write(f"\n  report:     {report if report.exists() else '(not written)'}\n")
    out.write(f"  artifacts:  {state / 'artifacts'}/{{raw,silver,models,eval}}/{outcome.name}/\n")
    out.write(f"  run state:  {outcome.status_path.parent}\n")
    _audit(out, env, outcome.name)
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    cmd = (
        str(mlflow_bin.relative_to(REPO_ROOT))
        if mlflow_bin.exists() and mlflow_bin.is_relative_to(REPO_ROOT)
        else "mlflow"
    )
    out.write(
        f"\n  MLflow UI:  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false {cmd} ui --backend-store-uri {env['MLFLOW_TRACKING_URI']}"
        " --port 5000\n"
    )
    state_flag = "" if state == STATE.resolve() else f" --state {state}"
    out.write(f"  stop the embedded PostgreSQL:  python -m workflows services stop{state_flag}\n")


def _audit(out: Any, pg_env: dict[str, str], run_id: str) -> None:
    """The run's audit rows: one per pipeline run, one per stage attempt."""
    try:
        import psycopg2

        conn = psycopg2.connect(
            host=pg_env["PG_HOST"],
            port=int(pg_env["PG_PORT"]),
            user=pg_env["PG_USER"],
            dbname=pg_env["PG_DATABASE"],
            connect_timeout=5,
        )
        with conn, conn.cursor() as cur:
            cur.execute("SELECT run_id, created_at FROM pipeline_runs WHERE run_id = %s", (run_id,))
            runs = cur.fetchall()
            cur.execute(
                "SELECT stage, attempt, status, exit_code, "
                "round(extract(epoch FROM finished_at - started_at)::numeric, 1) "
                "FROM stage_attempts WHERE run_id = %s ORDER BY started_at, attempt",
                (run_id,),
            )
            attempts = cur.fetchall()
        conn.close()
    except Exception as exc:  # noqa: BLE001 - the summary reports what it cannot read
        out.write(f"\n  audit: could not read PostgreSQL ({type(exc).__name__}: {str(exc).strip()[:200]})\n")
        return
    db = f"postgresql://{pg_env['PG_USER']}@{pg_env['PG_HOST']}:{pg_env['PG_PORT']}/{pg_env['PG_DATABASE']}"
    out.write(f"\n  audit ({db}):\n")
    for run, created in runs:
        out.write(f"    pipeline_runs   {run}  created {created:%Y-%m-%d %H:%M:%S}\n")
    for stage, attempt, status, code, secs in attempts:
        out.write(f"    stage_attempts  {stage:<7} attempt {attempt}  {status:<10} exit {code}  {secs}s\n")
    if not runs:
        out.write("    (no rows: the stages did not reach the audit)\n")


def services(args: argparse.Namespace) -> int:
    """``services start|stop|status`` for the demo's embedded PostgreSQL."""
    pg = _postgres(args.state.resolve())
    if args.action == "start":
        try:
            pg = _start_postgres(args.state.resolve())
        except ExecutorError as exc:
            log.error("%s", exc)
            return 2
        print(" ".join(f"{k}={v}" for k, v in pg.env.items()))
        return 0
    if args.action == "stop":
        running = pg.is_running()
        pg.stop()
        print(f"PostgreSQL in {pg.data_dir} {'stopped' if running else 'was not running'}")
        return 0
    if pg.is_running():
        port = (pg.data_dir / "port").read_text().strip()
        print(f"PostgreSQL running in {pg.data_dir} on 127.0.0.1:{port}")
        return 0
    print(f"PostgreSQL not running ({pg.data_dir})")
    return 3
