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
    "Loop",
    "WORKFLOW_PARAMETERS",
    "STAGE_SPECS",
    "SCORING_PARAMETERS",
    "SCORING_SPECS",
    "RETRAIN_PARAMETERS",
    "INPUTS_DIR",
    "OUTPUTS_DIR",
    "PARAMS_DIR",
]

PRESETS = ("", "cicids2017", "unsw-nb15")
"""CSV column-mapping presets of ``stages.ingest --preset`` ("": recognised from the header)."""

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
    """An input artifact, placed at ``/tmp/inputs/<file>``, taken from ``task``'s output ``name``,
    or from the S3 ``key`` of the artifact repository (a template; a key under which several
    objects lie is staged as a directory: the fan-in of a fan-out's outputs)."""

    name: str
    file: str
    task: str = ""
    key: str = ""
    optional: bool = False
    """A missing key is skipped (Argo's optional input): the path does not exist."""


@dataclass(frozen=True)
class OutArtifact:
    """An output artifact written at ``/tmp/outputs/<file>``, uploaded to ``<layer>/{{workflow.name}}/<file>``."""

    name: str
    file: str
    layer: str
    flag: str
    """The stage flag that receives the path, e.g. ``--output``."""
    key: str = ""
    """S3 key template when it is not ``<layer>/{{workflow.name}}/<file>``."""

    @property
    def s3_key(self) -> str:
        return self.key or f"{self.layer}/{{{{workflow.name}}}}/{self.file}"


@dataclass(frozen=True)
class OutParam:
    """An output parameter shown by ``argo get``, read from ``/tmp/outputs/params/<file>``."""

    name: str
    file: str
    default: str | None = None
    """Shown when the stage did not write the file (e.g. no MLflow); None makes a missing file an error."""


@dataclass(frozen=True)
class Loop:
    """A fan-out (Argo ``withParam``): one pod per object of a JSON list, its fields as input parameters."""

    over: str
    """The list, e.g. ``{{tasks.partitions.outputs.parameters.partitions}}``."""
    params: tuple[tuple[str, str], ...]
    """``(input parameter, item field)``: the parameter is ``{{item.<field>}}`` instead of a workflow parameter;
    a ``k`` parameter (the partition key) also names the pod's audit row (``STAGE_PART``)."""
    memo_key: str = ""
    """Argo ``memoize`` key template ("" = not memoized): a hit skips the pod and reuses its outputs."""


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
    image: str = ""
    """Bake target (and ``stages.<image>`` module) when it differs from ``name``."""
    fixed_args: tuple[str, ...] = ()
    """Arguments every run passes, e.g. ``--mode=score``."""
    module: str = ""
    """Python module to run when it is not ``stages.<image>``."""
    loop: Loop | None = None

    @property
    def stage(self) -> str:
        return self.image or self.name


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
        PRESETS,
    ),
    WorkflowParam(
        "max-reject-fraction",
        "0.05",
        "ingest fails (exit 2, nothing published) when more than this share of the input rows is rejected; "
        "1 allows any share short of all",
    ),
    WorkflowParam(
        "time-origin",
        "",
        "added to every timestamp, for Zeek logs whose ts counts from the capture's start: "
        "ISO 8601 (no offset = UTC) or epoch seconds; empty: timestamps are absolute",
    ),
    WorkflowParam(
        "window",
        "all",
        "flows to train and evaluate on: all, last-<N>d, last-<N>h or START/END (ISO 8601, UTC)",
    ),
    WorkflowParam("holdout-fraction", "0.3", "latest share of flows kept for evaluation (time-based split)"),
    WorkflowParam("model", "iforest", "model type", ("iforest", "hgb")),
    WorkflowParam(
        "train-on", "auto", "rows to fit on (auto: benign rows when labels exist)", ("auto", "all", "benign")
    ),
    WorkflowParam("n-estimators", "50", "number of trees (Isolation Forest)"),
    WorkflowParam("max-samples", "65536", "rows per tree (Isolation Forest), capped at the rows available"),
    WorkflowParam(
        "target-fpr",
        "0.01",
        "with labels: share of benign flows allowed to alert, set on out-of-fold scores of every benign train row",
    ),
    WorkflowParam("gate-min-pr-auc", "0.3", "quality gate: minimum PR-AUC on the holdout"),
    WorkflowParam("gate-min-recall", "0.5", "quality gate: minimum recall at the threshold"),
    WorkflowParam("gate-max-fpr", "0.05", "quality gate: maximum false-positive rate"),
    WorkflowParam(
        "gate-max-alert-rate",
        "0.1",
        "quality gate: maximum share of holdout flows alerted; with labels only alerts on flows not labelled "
        "malicious count (benign alert rate), so an attack-heavy holdout is not failed for catching its attacks",
    ),
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
        options=(
            ("--source", "source"),
            ("--format", "source-format"),
            ("--preset", "preset"),
            ("--max-reject-fraction", "max-reject-fraction"),
            ("--time-origin", "time-origin"),
        ),
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
        options=(("--holdout-fraction", "holdout-fraction"), ("--window", "window")),
        fixed_args=("--now={{workflow.creationTimestamp}}",),
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

# -- the daily half: scoring and retraining CronWorkflows ------------------------------------

LANDING = "s3://cybersec-mlops/landing/"
"""Where the sensors' exports land (e.g. ``landing/<date>/conn.<hour>.log.gz``); both CronWorkflows read the
prefix and keep the flows of their ``window``, so the bucket's lifecycle rule on ``landing/`` (a few days
longer than the retraining window) bounds what each run reads."""

SCORING_PARAMETERS: tuple[WorkflowParam, ...] = (
    WorkflowParam(
        "source",
        LANDING,
        "new flows: an S3 prefix (ending in /), glob or key, a path inside the image, or synthetic://...",
    ),
    WorkflowParam("source-format", "auto", "format of the source", ("auto", "zeek", "zeek-json", "csv", "parquet")),
    WorkflowParam("preset", "", "CSV column-mapping preset: cicids2017 or unsw-nb15; empty: from the header", PRESETS),
    *(p for p in WORKFLOW_PARAMETERS if p.name in ("max-reject-fraction", "time-origin")),
    WorkflowParam(
        "window",
        "previous-day",
        "flows to score: previous-day, previous-hour, last-<N>h, all, or START/END (ISO 8601, UTC); "
        "relative to the workflow's creation time; earlier flows of the source feed the context windows",
    ),
    WorkflowParam(
        "lookback",
        "",
        "RAW flows of the previous batch (e.g. s3://cybersec-mlops/raw/<previous run>/flows.parquet) "
        "whose last hour gives the first flows their context; empty: none",
    ),
    WorkflowParam("model-uri", "", "models:/NAME@ALIAS or models:/NAME/VERSION; empty: the registry's champion"),
    WorkflowParam("registered-model", "cybersec-anomaly-detector", "MLflow registered model name"),
    WorkflowParam("max-psi", "0.25", "PSI of a feature or of the score above which the run reports drift"),
)

SCORING_SPECS: tuple[StageSpec, ...] = (
    StageSpec(
        name="champion",
        image="score",
        depends=None,
        inputs=(),
        outputs=(
            OutArtifact("model", "champion-model.skops", "score", "--model-out"),
            OutArtifact("card", "champion-card.json", "score", "--card-out"),
            OutArtifact("training-manifest", "training-manifest.json", "score", "--training-manifest-out"),
        ),
        options=(("--model-uri", "model-uri"), ("--registered-model", "registered-model")),
        fixed_args=("--resolve-only",),
        out_params=(OutParam("model", "model"), OutParam("threshold", "threshold")),
        requests={"cpu": "100m", "memory": "256Mi"},
        limits={"cpu": "1", "memory": "1Gi"},
    ),
    STAGE_SPECS[0],
    StageSpec(
        name="silver",
        depends="ingest && champion",
        inputs=(
            (InArtifact("flows", "flows.parquet", "ingest"), "--input"),
            (InArtifact("training-manifest", "training-manifest.json", "champion"), "--training-manifest"),
        ),
        outputs=STAGE_SPECS[1].outputs,
        options=(("--window", "window"), ("--lookback", "lookback")),
        fixed_args=("--mode=score", "--now={{workflow.creationTimestamp}}"),
        out_params=(OutParam("rows", "rows"), OutParam("sha256", "sha256"), OutParam("schema-hash", "schema_hash")),
        requests=STAGE_SPECS[1].requests,
        limits=STAGE_SPECS[1].limits,
    ),
    StageSpec(
        name="score",
        depends="silver && champion",
        inputs=(
            *_ARTIFACTS_SILVER,
            (InArtifact("model", "champion-model.skops", "champion"), "--model"),
            (InArtifact("card", "champion-card.json", "champion"), "--card"),
        ),
        outputs=(
            OutArtifact("alerts", "alerts.parquet", "score", "--alerts-out"),
            OutArtifact("incidents", "incidents.parquet", "score", "--incidents-out"),
            OutArtifact("alerts-html", "alerts.html", "score", "--html-out"),
            OutArtifact("drift", "drift.json", "score", "--drift-out"),
        ),
        options=(("--max-psi", "max-psi"),),
        out_params=(
            OutParam("rows", "rows"),
            OutParam("alerts", "alerts"),
            OutParam("incidents", "incidents"),
            OutParam("high-incidents", "high_incidents"),
            OutParam("drifted", "drifted"),
            OutParam("max-psi", "max_psi"),
        ),
        requests={"cpu": "500m", "memory": "1Gi"},
        limits={"cpu": "2", "memory": "4Gi"},
    ),
)
"""champion (resolve once per run) ∥ ingest → silver (score mode) → score."""

RETRAIN_PARAMETERS: tuple[WorkflowParam, ...] = (
    WorkflowParam("source", LANDING, "flows to retrain on (the training WorkflowTemplate's source)"),
    WorkflowParam("window", "last-7d", "the latest days to train and evaluate on"),
)
"""Arguments the retrain CronWorkflow passes to the training WorkflowTemplate; the rest keep its defaults."""

# -- the partitioned training pipeline: one pod per file of a many-file source --------------

PARTITIONS = "{{tasks.partitions.outputs.parameters.partitions}}"
"""The list step's JSON list (``stages.ingest.partitions``): one object per file, in time order."""
SILVER_PARTS = "silver/{{workflow.name}}"
"""Prefix under which every silver pod writes ``part=<k>/``; train and eval stage it as one directory."""
HOLDOUT_PARTITIONS = "{{tasks.partitions.outputs.parameters.holdout}}"
"""The list's holdout objects: one eval-part pod each."""
EVAL_PARTS = "eval/{{workflow.name}}/parts"
"""Prefix under which every eval-part pod writes ``part=<k>/scores.parquet``; eval stages it as one directory."""
_PART = "part={{inputs.parameters.k}}"

PARTITIONED_PARAMETERS: tuple[WorkflowParam, ...] = (
    WorkflowParam(
        "source",
        LANDING,
        "many flow files, one partition each, in name order = time order: an S3 prefix (ending in /) or glob, "
        "or a folder or glob inside the image",
    ),
    *(p for p in WORKFLOW_PARAMETERS if p.name in ("source-format", "preset", "max-reject-fraction", "time-origin")),
    WorkflowParam(
        "holdout-fraction",
        "0.3",
        "share of the source's bytes held out for evaluation: the latest files, whole (at least one train file)",
    ),
    WorkflowParam("max-partitions", "1000", "more files than this is an error (exit 2): give a narrower prefix"),
    *(p for p in WORKFLOW_PARAMETERS if p.name in ("model", "train-on", "n-estimators", "max-samples")),
    WorkflowParam(
        "max-train-rows",
        "1000000",
        "train fits on a reproducible sample of at most this many train rows across the partitions",
    ),
    *(p for p in WORKFLOW_PARAMETERS if p.name.startswith("gate-") or p.name in ("target-fpr", "registered-model")),
)

_SILVER_DIR = (
    (InArtifact("silver", "silver", key=SILVER_PARTS), "--features"),
    (InArtifact("silver", "silver", key=SILVER_PARTS), "--manifest"),
)
_INGEST, _SILVER, _TRAIN, _EVAL = STAGE_SPECS

PARTITIONED_SPECS: tuple[StageSpec, ...] = (
    StageSpec(
        name="partitions",
        image="ingest",
        module="stages.ingest.partitions",
        depends=None,
        inputs=(),
        outputs=(OutArtifact("partitions", "partitions.json", "raw", "--out"),),
        options=(
            ("--source", "source"),
            ("--holdout-fraction", "holdout-fraction"),
            ("--max-partitions", "max-partitions"),
        ),
        # what else makes a partition's RAW output differ: the digest (and so the memo key) covers it
        fixed_args=(
            "--salt=format={{workflow.parameters.source-format}} preset={{workflow.parameters.preset}} "
            "max-reject={{workflow.parameters.max-reject-fraction}} origin={{workflow.parameters.time-origin}} "
            "images={{workflow.parameters.image-registry}}:{{workflow.parameters.image-tag}}",
        ),
        out_params=(
            OutParam("partitions", "partitions"),
            OutParam("count", "count"),
            OutParam("train-count", "train_count"),
            OutParam("holdout-count", "holdout_count"),
            OutParam("holdout", "holdout"),
        ),
        requests={"cpu": "100m", "memory": "256Mi"},
        limits={"cpu": "1", "memory": "1Gi"},
    ),
    StageSpec(
        name="ingest",
        depends="partitions",
        inputs=(),
        outputs=(
            OutArtifact("flows", "flows.parquet", "raw", "--output", key="{{inputs.parameters.raw-key}}"),
            OutArtifact(
                "rejects",
                "rejects.parquet",
                "raw",
                "--rejects",
                key="raw/parts/{{inputs.parameters.digest}}/rejects.parquet",
            ),
        ),
        options=_INGEST.options,
        out_params=_INGEST.out_params,
        requests=_INGEST.requests,
        limits=_INGEST.limits,
        loop=Loop(
            PARTITIONS,
            (("source", "source"), ("raw-key", "raw"), ("digest", "digest"), ("k", "k")),
            memo_key="ingest-{{inputs.parameters.digest}}",
        ),
    ),
    StageSpec(
        name="silver",
        depends="ingest",
        inputs=(
            (InArtifact("flows", "flows.parquet", key="{{inputs.parameters.raw-key}}"), "--input"),
            (
                InArtifact("lookback", "lookback.parquet", key="{{inputs.parameters.prev-key}}", optional=True),
                "--lookback",
            ),
        ),
        outputs=(
            OutArtifact(
                "features",
                "features.parquet",
                "silver",
                "--output",
                key=f"{SILVER_PARTS}/{_PART}/features.parquet",
            ),
            OutArtifact(
                "manifest",
                "manifest.json",
                "silver",
                "--manifest",
                key=f"{SILVER_PARTS}/{_PART}/manifest.json",
            ),
        ),
        # no --window: the source's files are the period (a file outside a window would be an empty part)
        options=(("--part-split", "part-split"),),
        fixed_args=("--lookback-optional",),
        out_params=(OutParam("rows", "rows"), OutParam("sha256", "sha256"), OutParam("schema-hash", "schema_hash")),
        requests=_SILVER.requests,
        limits=_SILVER.limits,
        loop=Loop(PARTITIONS, (("raw-key", "raw"), ("prev-key", "prev"), ("k", "k"), ("part-split", "split"))),
    ),
    StageSpec(
        name="train",
        depends="silver",
        inputs=_SILVER_DIR,
        outputs=_TRAIN.outputs,
        options=(*_TRAIN.options, ("--max-train-rows", "max-train-rows")),
        out_params=_TRAIN.out_params,
        requests=_TRAIN.requests,
        limits=_TRAIN.limits,
    ),
    StageSpec(
        name="eval-part",
        image="eval",
        module="stages.eval.part",
        depends="train",
        inputs=(
            (InArtifact("features", "features.parquet", key=f"{SILVER_PARTS}/{_PART}/features.parquet"), "--features"),
            (InArtifact("manifest", "manifest.json", key=f"{SILVER_PARTS}/{_PART}/manifest.json"), "--manifest"),
            *_EVAL.inputs[2:],
        ),
        outputs=(
            OutArtifact("scores", "scores.parquet", "eval", "--output", key=f"{EVAL_PARTS}/{_PART}/scores.parquet"),
        ),
        options=(),
        out_params=(OutParam("rows", "rows"),),
        requests={"cpu": "1", "memory": "1Gi"},
        limits={"cpu": "2", "memory": "2Gi"},
        loop=Loop(HOLDOUT_PARTITIONS, (("k", "k"),)),
    ),
    StageSpec(
        name="eval",
        depends="eval-part",
        inputs=(*_SILVER_DIR, *_EVAL.inputs[2:], (InArtifact("scores", "scores", key=EVAL_PARTS), "--scores")),
        outputs=_EVAL.outputs,
        options=_EVAL.options,
        out_params=_EVAL.out_params,
        requests=_EVAL.requests,
        limits=_EVAL.limits,
        optional_outputs=True,
    ),
)
"""partitions → ingest (one pod per file, memoized) → silver (one pod per file, the previous file's RAW
as lookback) → train (a bounded sample of every part) → eval-part (one pod per holdout file: its scores)
→ eval (merges the scores; drift, report, gate)."""
