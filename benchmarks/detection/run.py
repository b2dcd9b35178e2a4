"""One benchmark case: RAW flows → our silver + train (real stage processes) → holdout scores,
and the baseline Isolation Forest on the same train/holdout rows.

The stages run as ``python -m stages.<name>`` subprocesses without audit or MLflow,
exactly as the pipeline runs them. The baseline is what a first attempt looks like:
the raw numeric fields log-scaled, proto and conn_state one-hot, scikit-learn's
default IsolationForest fitted on *all* train rows (attacks included, no labels used).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .metrics import at_threshold, detection_metrics

__all__ = ["Case", "run_case", "ingest", "baseline_matrix", "drop_benign"]

REPO = Path(__file__).resolve().parents[2]
BASELINE_NUMERIC = [
    "duration",
    "src_bytes",
    "dst_bytes",
    "src_pkts",
    "dst_pkts",
    "src_ip_bytes",
    "dst_ip_bytes",
    "src_port",
    "dst_port",
]


@dataclass
class Case:
    """Results of one benchmark case (one input)."""

    name: str
    rows: int = 0
    holdout_rows: int = 0
    train_attack_share: float = float("nan")
    first_model: str = "iforest"
    """The model of ``ours`` (the first of --models); the others are in ``extra``."""
    seconds: dict[str, float] = field(default_factory=dict)
    ours: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibrated: dict[str, float] = field(default_factory=dict)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "MLFLOW_", "MINIO_", "RUN_ID"))}
    env["PYTHONPATH"] = str(REPO)
    return env


def stage(name: str, *args: str) -> float:
    """Run one stage process; return its wall seconds. A failure raises with the stage's last log lines."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", f"stages.{name}", *args, "--log-format", "text"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise RuntimeError(f"stages.{name} exited {proc.returncode}:\n{tail}")
    return round(time.monotonic() - started, 2)


def ingest(source: str, work: Path, fmt: str = "auto", preset: str | None = None) -> tuple[Path, float]:
    raw = work / "flows.parquet"
    extra = ["--preset", preset] if preset else []
    seconds = stage(
        "ingest",
        "--source",
        source,
        "--format",
        fmt,
        *extra,
        "--output",
        str(raw),
        "--rejects",
        str(work / "rejects.parquet"),
    )
    return raw, seconds


def drop_benign(raw_path: Path, lo: float, hi: float) -> int:
    """Remove the benign flows between positions ``lo`` and ``hi`` (fractions of the rows by time).

    With 0.45-0.75 the latest train rows (silver's 30% holdout, train's last 20%) hold no
    benign flow, as in attack-heavy captures, while the holdout still has benign flows to
    measure the FPR on. Returns the rows removed.
    """
    raw = pq.read_table(raw_path)
    raw = raw.take(pa.array(_silver_order(raw)))
    position = np.arange(raw.num_rows) / max(raw.num_rows, 1)
    benign = pc.fill_null(pc.equal(raw.column("label"), 0), False).to_numpy(zero_copy_only=False)
    drop = benign & (position >= lo) & (position < hi)
    pq.write_table(raw.filter(pa.array(~drop)), raw_path)
    return int(drop.sum())


def baseline_matrix(raw: pa.Table) -> np.ndarray:
    """log1p of the raw numeric fields (nulls 0) + one-hot proto and conn_state; absent fields dropped."""
    cols = []
    for name in BASELINE_NUMERIC:
        column = raw.column(name)
        if column.null_count < raw.num_rows:
            cols.append(np.log1p(np.maximum(pc.fill_null(column, 0).to_numpy().astype(np.float64), 0)))
    for name in ("proto", "conn_state"):
        values = np.asarray(raw.column(name).to_pylist(), dtype=object)
        for v in sorted({x for x in values if x is not None}):
            cols.append((values == v).astype(np.float64))
    return np.column_stack(cols)


def _silver_order(raw: pa.Table) -> np.ndarray:
    """The row order silver writes: stable by ts when every row has one, else input order."""
    ts = raw.column("ts")
    if ts.null_count:
        return np.arange(raw.num_rows)
    return np.argsort(ts.cast(pa.int64()).to_numpy(), kind="stable")


def _ours(work: Path, train_args: list[str], model: str, case: Case) -> tuple[np.ndarray, float, dict]:
    from stages.common.model_io import anomaly_scores, load_model

    tag = model if model != "iforest" else "model"
    case.seconds[f"train_{model}"] = stage(
        "train",
        "--features",
        str(work / "features.parquet"),
        "--manifest",
        str(work / "manifest.json"),
        "--model-out",
        str(work / f"{tag}.skops"),
        "--card-out",
        str(work / f"{tag}-card.json"),
        "--model",
        model,
        *train_args,
    )
    card = json.loads((work / f"{tag}-card.json").read_text())
    table = pq.read_table(
        work / "features.parquet", columns=[*card["features"], "split"], filters=[("split", "==", "holdout")]
    )
    X = np.column_stack([table.column(f).to_numpy() for f in card["features"]]).astype(np.float32)
    started = time.monotonic()
    scores = np.asarray(anomaly_scores(load_model(work / f"{tag}.skops"), X, card["score_method"]))
    case.seconds[f"score_{model}"] = round(time.monotonic() - started, 2)
    return scores, float(card["threshold"]), card


def run_case(name: str, raw_path: Path, work: Path, train_args: list[str], models: list[str], seed: int) -> Case:
    """Silver + train + score (ours) and the baseline on one RAW file; labels are required."""
    from sklearn.ensemble import IsolationForest

    case = Case(name, first_model=models[0])
    case.seconds["silver"] = stage(
        "silver",
        "--input",
        str(raw_path),
        "--output",
        str(work / "features.parquet"),
        "--manifest",
        str(work / "manifest.json"),
    )
    manifest = json.loads((work / "manifest.json").read_text())
    n_train = manifest["split"]["train_rows"]
    raw = pq.read_table(raw_path)
    raw = raw.take(pa.array(_silver_order(raw)))
    holdout = raw.slice(n_train)
    y = pc.fill_null(holdout.column("label"), 0).to_numpy().astype(np.int8)
    kinds = np.asarray(holdout.column("attack_type").to_pylist(), dtype=object)
    silver_y = pq.read_table(
        work / "features.parquet", columns=["label", "split"], filters=[("split", "==", "holdout")]
    ).column("label")
    if pc.fill_null(silver_y, 0).to_numpy().tolist() != y.tolist():
        raise RuntimeError("baseline rows do not line up with silver's holdout rows")
    case.rows, case.holdout_rows = raw.num_rows, holdout.num_rows
    train_labels = pc.fill_null(raw.slice(0, n_train).column("label"), 0).to_numpy()
    case.train_attack_share = float(np.mean(train_labels == 1)) if n_train else float("nan")
    for model in models:
        scores, threshold, card = _ours(work, train_args, model, case)
        result = detection_metrics(y, scores, kinds)
        result["card"] = {
            "threshold": threshold,
            "train_rows": card["train_rows"],
            "params": card["params"],
            "calibration": card.get("calibration") or {},
        }
        result["calibrated"] = at_threshold(y, scores, threshold)
        if model == models[0]:
            case.ours = result
        else:
            case.extra[model] = result
    started = time.monotonic()
    X = baseline_matrix(raw)
    forest = IsolationForest(random_state=seed).fit(X[:n_train])
    case.baseline = detection_metrics(y, -forest.score_samples(X[n_train:]), kinds)
    case.seconds["baseline"] = round(time.monotonic() - started, 2)
    return case
