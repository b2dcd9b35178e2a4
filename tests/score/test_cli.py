"""The score stage as real processes: real MLflow registry, real PostgreSQL, real Parquet."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from stages.common.feature_units import raw_text
from tests.helpers import run_stage

from .conftest import Champion, ok, stage_env

pytestmark = pytest.mark.services


def _resolve(env: dict[str, str], out: Path, *extra: str) -> Any:
    return run_stage(
        "score", "--resolve-only", "--model-out", str(out / "model.skops"), "--card-out", str(out / "card.json"),
        "--training-manifest-out", str(out / "manifest.json"), "--run-id", "resolve", *extra, env=env,
    )  # fmt: skip


def _silver(env: dict[str, str], raw: Path, out: Path, *extra: str) -> None:
    ok(run_stage("silver", "--mode", "score", "--input", str(raw), "--training-manifest",
                 str(out / "manifest.json"), "--output", str(out / "features.parquet"), "--manifest",
                 str(out / "silver.json"), *extra, env=env), "silver --mode score")  # fmt: skip


def _score(env: dict[str, str], out: Path, run_id: str, *extra: str) -> Any:
    return run_stage(
        "score", "--features", str(out / "features.parquet"), "--manifest", str(out / "silver.json"),
        "--alerts-out", str(out / "alerts.parquet"), "--incidents-out", str(out / "incidents.parquet"),
        "--html-out", str(out / "alerts.html"), "--drift-out", str(out / "drift.json"),
        "--params-dir", str(out / "params"), "--run-id", run_id, *extra, env=env,
    )  # fmt: skip


def _rows(audit_db: Any, table: str, run_id: str) -> int:
    with audit_db.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table} WHERE run_id = %s", (run_id,))  # noqa: S608 - fixed names
        return int(cur.fetchone()[0])


def test_scores_a_later_day_with_the_champion(champion: Champion, tmp_path: Path, audit_db: Any) -> None:
    ok(_resolve(champion.env, tmp_path), "resolve")
    card = json.loads((tmp_path / "card.json").read_text())
    _silver(champion.env, champion.later, tmp_path)
    proc = _score(champion.env, tmp_path, "score-day2")
    ok(proc, "score")
    alerts = pd.read_parquet(tmp_path / "alerts.parquet")
    incidents = pd.read_parquet(tmp_path / "incidents.parquet")
    raw = pd.read_parquet(champion.later)
    assert 0 < len(alerts) < 0.2 * len(raw)
    assert (alerts["score"] >= card["threshold"]).all()
    assert set(alerts["incident_id"]) == set(incidents["incident_id"])
    assert incidents["alerts"].sum() == len(alerts) and len(incidents) < len(alerts)
    first = alerts["top_features"].iloc[0]
    assert len(first) == 3 and {"feature", "value", "z"} <= set(first[0])
    # the attacks are found: most attack flows alert, each attack type at least once
    attacks = raw[raw["label"] == 1]
    assert alerts["uid"].isin(attacks["uid"]).sum() > 0.6 * len(attacks)
    assert set(attacks["attack_type"]) <= set(alerts["attack_type"].dropna())
    drift = json.loads((tmp_path / "drift.json").read_text())
    assert drift["rows"] == len(raw) and drift["score_psi"] is not None and drift["drifted"] is False
    assert drift["alert_rate"]["expected"] == card["train_metrics"]["val_alert_rate"]
    assert (tmp_path / "params" / "drifted").read_text() == "false"
    assert (tmp_path / "params" / "alerts").read_text() == str(len(alerts))
    page = (tmp_path / "alerts.html").read_text()
    assert "Content-Security-Policy" in page and not re.search(r"(src|href)=\"?(https?:)?//", page)
    assert incidents["summary"].iloc[0] in page.replace("&gt;", ">")
    for f in alerts["top_features"].iloc[0]:  # the top alert's evidence in the analyst's units, not log1p
        assert (
            f'title="model input {f["value"]:.4g}">{f["feature"]} <b>{raw_text(f["feature"], f["value"])}</b>' in page
        )
    assert re.search(r"<b>\d+ (ports|connections|destinations|sources|packets)</b>", page)
    assert _rows(audit_db, "alerts", "score-day2") == len(alerts)
    assert _rows(audit_db, "incidents", "score-day2") == len(incidents)
    # the same run again replaces its rows, never duplicates them
    ok(_score(champion.env, tmp_path, "score-day2"), "score again")
    assert _rows(audit_db, "alerts", "score-day2") == len(alerts)
    with audit_db.cursor() as cur:
        cur.execute("SELECT status FROM stage_attempts WHERE run_id = 'score-day2' AND stage = 'score'")
        assert [r[0] for r in cur.fetchall()] == ["SUCCEEDED"]


def test_empty_window_is_a_successful_run_with_zero_alerts(champion: Champion, tmp_path: Path, audit_db: Any) -> None:
    ok(_resolve(champion.env, tmp_path), "resolve")
    _silver(champion.env, champion.later, tmp_path, "--window", "2031-01-01T00:00/2031-01-02T00:00")
    proc = _score(champion.env, tmp_path, "score-empty")
    ok(proc, "score")
    assert "empty batch" in proc.stderr and "zero alerts" in proc.stderr
    assert len(pd.read_parquet(tmp_path / "alerts.parquet")) == 0
    assert len(pd.read_parquet(tmp_path / "incidents.parquet")) == 0
    assert "held no flows" in (tmp_path / "alerts.html").read_text()
    assert json.loads((tmp_path / "drift.json").read_text())["drifted"] is False
    assert _rows(audit_db, "alerts", "score-empty") == 0


def test_no_champion_yet_exits_2(postgres: dict[str, str], tmp_path: Path) -> None:
    from workflows.local.demo import prepare_mlflow

    env = stage_env(postgres, prepare_mlflow(tmp_path / "empty-registry"))
    proc = _resolve(env, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "run the training pipeline first" in proc.stderr
    assert not (tmp_path / "card.json").exists()


def test_manifest_model_mismatch_exits_2(champion: Champion, tmp_path: Path) -> None:
    ok(_resolve(champion.env, tmp_path), "resolve")
    _silver(champion.env, champion.later, tmp_path)
    silver = json.loads((tmp_path / "silver.json").read_text())
    silver["training_schema_hash"] = "0" * 64
    (tmp_path / "silver.json").write_text(json.dumps(silver))
    proc = _score(champion.env, tmp_path, "score-mismatch")
    assert proc.returncode == 2, proc.stderr
    assert "manifest/model mismatch" in proc.stderr
    assert not (tmp_path / "drift.json").exists()


def test_local_model_and_card(champion: Champion, tmp_path: Path) -> None:
    """Without the registry: an explicit model + card (debugging one stage by hand)."""
    env = {k: v for k, v in champion.env.items() if k != "MLFLOW_TRACKING_URI"}
    ok(_resolve(champion.env, tmp_path), "resolve")
    _silver(env, champion.later, tmp_path)
    proc = _score(env, tmp_path, "score-local", "--model", str(tmp_path / "model.skops"), "--card",
                  str(tmp_path / "card.json"))  # fmt: skip
    ok(proc, "score")
    assert (tmp_path / "params" / "model").read_text().endswith("model.skops")
