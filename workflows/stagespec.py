"""The pipeline as data: workflow parameters and, per stage, its flags, artifacts and results.

``pipeline.py`` turns these tables into Hera objects. Keeping them apart means a reader
sees the whole contract between the DAG and the stage CLIs (DESIGN.md, "Stage CLI
contract") in one screen, and the tests can walk the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "WorkflowParam",
    "InArtifact",
    "OutArtifact",
    "OutParam",
    "StageSpec",
    "WORKFLOW_PARAMETERS",
    "STAGE_SPECS",
    "INPUTS_DIR",
    "OUTPUTS_DIR",
    "PARAMS_DIR",
]

INPUTS_DIR = "/tmp/inputs"
OUTPUTS_DIR = "/tmp/outputs"
PARAMS_DIR = "/tmp/outputs/params"


@dataclass(frozen=True)
class WorkflowParam:
    """A workflow parameter (``-p name=value`` on submit)."""

    name: str
    default: str
    description: str
    enum: tuple[str, ...] = ()


@dataclass(frozen=True)
class InArtifact:
    """An input artifact, placed at ``/tmp/inputs/<file>``, taken from ``task``'s output ``name``."""

    name: str
    file: str
    task: str


@dataclass(frozen=True)
class OutArtifact:
    """An output artifact written at ``/tmp/outputs/<file>``, uploaded to ``<layer>/{{workflow.name}}/<file>``."""

    name: str
    file: str
    layer: str
    flag: str
    """The stage flag that receives the path, e.g. ``--output``."""


@dataclass(frozen=True)
class OutParam:
    """An output parameter shown by ``argo get``, read from ``/tmp/outputs/params/<file>``."""

    name: str
    file: str
    default: str | None = None
    """Shown when the stage did not write the file (e.g. no MLflow); None makes a missing file an error."""


@dataclass(frozen=True)
class StageSpec:
    """One stage: its module, DAG edges, flags and artifacts."""

    name: str
    depends: str | None
    inputs: tuple[tuple[InArtifact, str], ...]
    """Input artifacts with the flag that receives their local path."""
    outputs: tuple[OutArtifact, ...]
    options: tuple[tuple[str, str], ...]
    """``(flag, workflow parameter)``: passed as ``--flag={{inputs.parameters.<param>}}``."""
    out_params: tuple[OutParam, ...]
    requests: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)
    optional_outputs: bool = False
    """Outputs may be missing (eval: a failed gate still uploads what it wrote)."""


WORKFLOW_PARAMETERS: tuple[WorkflowParam, ...] = (
    WorkflowParam(
        "source",
        "synthetic://?rows=100000&seed=7&attack_share=0.02&days=4",
        "flows to ingest: s3://bucket/key, a path inside the image, or synthetic://?rows=N&seed=S",
    ),
    WorkflowParam("source-format", "auto", "format of the source", ("auto", "zeek", "zeek-json", "csv", "parquet")),
    WorkflowParam(
        "preset",
        "",
        "CSV column-mapping preset: cicids2017 or unsw-nb15; empty: detect it from the CSV header",
    ),
    WorkflowParam("holdout-fraction", "0.3", "latest share of flows kept for evaluation (time-based split)"),
    WorkflowParam("model", "iforest", "model type", ("iforest", "hgb")),
    WorkflowParam(
        "train-on", "auto", "rows to fit on (auto: benign rows when labels exist)", ("auto", "all", "benign")
    ),
    WorkflowParam("n-estimators", "100", "number of trees"),
    WorkflowParam("max-samples", "65536", "rows per tree (Isolation Forest), capped at the rows available"),
    WorkflowParam("target-fpr", "0.01", "false-positive rate on benign validation rows the threshold aims for"),
    WorkflowParam("gate-min-pr-auc", "0.3", "quality gate: minimum PR-AUC on the holdout"),
    WorkflowParam("gate-min-recall", "0.5", "quality gate: minimum recall at the threshold"),
    WorkflowParam("gate-max-fpr", "0.05", "quality gate: maximum false-positive rate"),
    WorkflowParam("gate-max-alert-rate", "0.1", "quality gate: maximum share of flows alerted"),
    WorkflowParam("registered-model", "cybersec-anomaly-detector", "MLflow registered model name"),
    # image-registry and image-tag get their defaults from docker-bake.hcl (pipeline.py).
)

_ARTIFACTS_SILVER = (
    (InArtifact("features", "features.parquet", "silver"), "--features"),
    (InArtifact("manifest", "manifest.json", "silver"), "--manifest"),
)

STAGE_SPECS: tuple[StageSpec, ...] = (
    StageSpec(
        name="ingest",
        depends=None,
        inputs=(),
        outputs=(
            OutArtifact("flows", "flows.parquet", "raw", "--output"),
            OutArtifact("rejects", "rejects.parquet", "raw", "--rejects"),
        ),
        options=(("--source", "source"), ("--format", "source-format"), ("--preset", "preset")),
        out_params=(OutParam("rows", "rows"), OutParam("rejected", "rejected"), OutParam("sha256", "sha256")),
        requests={"cpu": "500m", "memory": "1Gi"},
        limits={"cpu": "2", "memory": "4Gi"},
    ),
    StageSpec(
        name="silver",
        depends="ingest",
        inputs=((InArtifact("flows", "flows.parquet", "ingest"), "--input"),),
        outputs=(
            OutArtifact("features", "features.parquet", "silver", "--output"),
            OutArtifact("manifest", "manifest.json", "silver", "--manifest"),
        ),
        options=(("--holdout-fraction", "holdout-fraction"),),
        out_params=(
            OutParam("rows", "rows"),
            OutParam("train-rows", "train_rows"),
            OutParam("holdout-rows", "holdout_rows"),
            OutParam("sha256", "sha256"),
            OutParam("schema-hash", "schema_hash"),
        ),
        requests={"cpu": "1", "memory": "2Gi"},
        limits={"cpu": "2", "memory": "6Gi"},
    ),
    StageSpec(
        name="train",
        depends="silver",
        inputs=_ARTIFACTS_SILVER,
        outputs=(
            OutArtifact("model", "model.skops", "models", "--model-out"),
            OutArtifact("card", "model-card.json", "models", "--card-out"),
        ),
        options=(
            ("--model", "model"),
            ("--train-on", "train-on"),
            ("--n-estimators", "n-estimators"),
            ("--max-samples", "max-samples"),
            ("--target-fpr", "target-fpr"),
            ("--registered-model", "registered-model"),
        ),
        out_params=(
            OutParam("mlflow-run-id", "mlflow_run_id", default="n/a"),
            OutParam("model-version", "model_version", default="n/a"),
            OutParam("threshold", "threshold"),
            OutParam("sha256", "sha256"),
            OutParam("train-rows", "train_rows"),
        ),
        requests={"cpu": "1", "memory": "2Gi"},
        limits={"cpu": "2", "memory": "4Gi"},
    ),
    StageSpec(
        name="eval",
        depends="silver && train",
        inputs=(
            *_ARTIFACTS_SILVER,
            (InArtifact("model", "model.skops", "train"), "--model"),
            (InArtifact("card", "model-card.json", "train"), "--card"),
        ),
        outputs=(
            OutArtifact("metrics", "metrics.json", "eval", "--metrics-out"),
            OutArtifact("report", "report.html", "eval", "--report-out"),
        ),
        options=(
            ("--gate-min-pr-auc", "gate-min-pr-auc"),
            ("--gate-min-recall", "gate-min-recall"),
            ("--gate-max-fpr", "gate-max-fpr"),
            ("--gate-max-alert-rate", "gate-max-alert-rate"),
            ("--registered-model", "registered-model"),
        ),
        out_params=tuple(
            OutParam(name.replace("_", "-"), name, default="n/a")
            for name in ("verdict", "pr_auc", "roc_auc", "precision", "recall", "fpr", "alert_rate", "promoted")
        ),
        requests={"cpu": "500m", "memory": "1Gi"},
        limits={"cpu": "2", "memory": "4Gi"},
        optional_outputs=True,
    ),
)
