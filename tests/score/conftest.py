"""A trained champion in a real MLflow registry (sqlite) and a later synthetic day to score."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_stage

TRAIN_SOURCE = "synthetic://?rows=40000&seed=7&attack_share=0.03&days=2"
LATER_SOURCE = "synthetic://?rows=20000&seed=99&attack_share=0.03&days=1"
"""Another seed: hosts, times and attacks the model never saw."""


@dataclass
class Champion:
    env: dict[str, str]
    """Stage environment: PostgreSQL audit and the MLflow store holding the champion."""
    dir: Path
    later: Path
    """RAW flows of the later day."""


def ok(proc: Any, what: str) -> None:
    assert proc.returncode == 0, f"{what} exited {proc.returncode}:\n{proc.stderr[-4000:]}"


def stage_env(postgres: dict[str, str], mlflow_uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MINIO_", "MLFLOW_", "RUN_ID"))}
    env.update(postgres, MLFLOW_TRACKING_URI=mlflow_uri, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return env


@pytest.fixture(scope="module")
def champion(postgres: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Champion:
    """ingest → silver → train → eval (promotes ``champion``), then the later day ingested."""
    from workflows.local.demo import prepare_mlflow

    d = tmp_path_factory.mktemp("champion")
    env = stage_env(postgres, prepare_mlflow(d))
    ok(run_stage("ingest", "--source", TRAIN_SOURCE, "--output", str(d / "raw.parquet"), "--rejects",
                 str(d / "rej.parquet"), "--run-id", "score-fixture", env=env), "ingest")  # fmt: skip
    ok(run_stage("silver", "--input", str(d / "raw.parquet"), "--output", str(d / "f.parquet"), "--manifest",
                 str(d / "m.json"), "--run-id", "score-fixture", env=env), "silver")  # fmt: skip
    ok(run_stage("train", "--features", str(d / "f.parquet"), "--manifest", str(d / "m.json"), "--model-out",
                 str(d / "model.skops"), "--card-out", str(d / "card.json"), "--run-id", "score-fixture", env=env),
       "train")  # fmt: skip
    ok(run_stage("eval", "--features", str(d / "f.parquet"), "--manifest", str(d / "m.json"), "--model",
                 str(d / "model.skops"), "--card", str(d / "card.json"), "--metrics-out", str(d / "metrics.json"),
                 "--report-out", str(d / "report.html"), "--run-id", "score-fixture", env=env), "eval")  # fmt: skip
    ok(run_stage("ingest", "--source", LATER_SOURCE, "--output", str(d / "later.parquet"), "--rejects",
                 str(d / "later-rej.parquet"), "--run-id", "score-fixture-later", env=env), "ingest later")  # fmt: skip
    return Champion(env, d, d / "later.parquet")
