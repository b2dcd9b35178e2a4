"""The Hera definition of the pipeline: ingest → silver → train → eval as an Argo DAG,
and its daily half: the scoring and retraining CronWorkflows.

One function, :func:`build`, makes both the ``WorkflowTemplate`` (installed once,
submitted with ``--from workflowtemplate/cybersec-mlops-pipeline``) and the ``Workflow``
(submitted directly), so the two cannot diverge. :func:`build_scoring` schedules
champion ∥ ingest → silver (score mode) → score from the same container builder;
:func:`build_retrain` schedules the training WorkflowTemplate by reference (not a copy),
so the gate decides promotion on schedule. Building is pure: no cluster, no network;
``python -m workflows compile`` writes the result to ``workflows/compiled/``.
"""

from __future__ import annotations

from typing import Any

from .images import BakeFile, load_bake
from .stagespec import (
    INPUTS_DIR,
    OUTPUTS_DIR,
    PARAMS_DIR,
    PARTITIONED_PARAMETERS,
    PARTITIONED_SPECS,
    RETRAIN_PARAMETERS,
    SCORING_PARAMETERS,
    SCORING_SPECS,
    STAGE_SPECS,
    WORKFLOW_PARAMETERS,
    InArtifact,
    StageSpec,
    WorkflowParam,
)

__all__ = [
    "TEMPLATE_NAME",
    "GENERATE_NAME",
    "SERVICE_ACCOUNT",
    "CONFIG_MAP",
    "CONFIG_KEYS",
    "POSTGRES_SECRET",
    "MINIO_SECRET",
    "ARTIFACT_REPOSITORY",
    "RUN_AS_USER",
    "LABELS",
    "PARTITIONED_NAME",
    "SCORING_NAME",
    "RETRAIN_NAME",
    "build",
    "build_scoring",
    "build_retrain",
    "workflow_parameters",
]

TEMPLATE_NAME = "cybersec-mlops-pipeline"
GENERATE_NAME = "cybersec-mlops-"
ENTRYPOINT = "pipeline"
SERVICE_ACCOUNT = "cybersec-mlops-workflow"
CONFIG_MAP = "cybersec-mlops-config"
POSTGRES_SECRET = "cybersec-mlops-postgres"
MINIO_SECRET = "cybersec-mlops-minio"
ARTIFACT_REPOSITORY = ("artifact-repositories", "minio")
"""ConfigMap name and key of the MinIO artifact repository (k8s/artifact-repositories.yaml)."""
RUN_AS_USER = 10001
LABELS = {
    "app.kubernetes.io/name": "cybersec-mlops-pipeline",
    "app.kubernetes.io/part-of": "cybersec-mlops",
    "app.kubernetes.io/managed-by": "workflows-compile",
}
DESCRIPTION = (
    "Network-flow anomaly detection: ingest flows to RAW Parquet, build silver features with a "
    "time-based split, train an anomaly model (MLflow), evaluate it on the holdout and gate its promotion."
)
ACTIVE_DEADLINE_SECONDS = 4 * 3600
TTL_AFTER_SUCCESS = 24 * 3600
TTL_AFTER_FAILURE = 7 * 24 * 3600
TMP_SIZE_LIMIT = "8Gi"

PARTITIONED_NAME = "cybersec-mlops-partitioned"
PARTITIONED_DESCRIPTION = (
    "The training pipeline over many flow files, one pod per file: list the files, ingest each (memoized on "
    "the file's ETag, options and image), build each file's features with the previous file as lookback, "
    "train on a bounded sample of every part, evaluate the held-out latest files."
)
PARTITION_PARALLELISM = 4
"""Pods of the workflow running at once (spec.parallelism); change it at submit time for a bigger cluster."""
MEMO_CACHE = "cybersec-mlops-ingest-cache"
"""ConfigMap of the ingest pods' memoized outputs, in the Argo controller's namespace (k8s/argo-controller/)."""
MEMO_MAX_AGE = "720h"
"""A finished partition is reused for 30 days; older entries run again (RAW objects may have expired)."""

SCORING_NAME = "cybersec-mlops-scoring"
SCORING_SCHEDULE = "15 0 * * *"
"""Daily at 00:15 UTC: the previous day has closed and its flows have landed."""
SCORING_DESCRIPTION = (
    "Daily scoring: the registry's champion applied to the previous day of landed flows "
    "(ingest, silver in score mode, score): alerts, incidents, alerts.html, drift.json; "
    "output parameter 'drifted' says when the traffic moved away from the training reference."
)
RETRAIN_NAME = "cybersec-mlops-retrain"
RETRAIN_SCHEDULE = "0 3 * * 0"
"""Weekly, Sunday 03:00 UTC: the training WorkflowTemplate on the latest 7 days; the gate decides promotion."""
TIMEZONE = "UTC"

CONFIG_KEYS = ("PG_HOST", "PG_PORT", "PG_DATABASE", "MINIO_ENDPOINT", "MINIO_SECURE", "MLFLOW_TRACKING_URI")
"""Non-secret settings the stages read, from the ConfigMap (k8s/config.yaml) under the same key names."""
_SECRET_KEYS = (
    ("PG_USER", POSTGRES_SECRET, "username"),
    ("PG_PASSWORD", POSTGRES_SECRET, "password"),
    ("MINIO_ACCESS_KEY", MINIO_SECRET, "accesskey"),
    ("MINIO_SECRET_KEY", MINIO_SECRET, "secretkey"),
)


def workflow_parameters(
    bake: BakeFile, table: tuple[WorkflowParam, ...] = WORKFLOW_PARAMETERS
) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """``(name, default, description, enum)`` of every workflow parameter, image ones from the bake file."""
    params = [(p.name, p.default, p.description, p.enum) for p in table]
    params.append(("image-registry", bake.registry, "registry of the stage images (docker-bake.hcl REGISTRY)", ()))
    params.append(("image-tag", bake.tag, "tag of the stage images (docker-bake.hcl TAG); never latest", ()))
    return params


def _image(bake: BakeFile, stage: str) -> str:  # stage: the bake target
    repository = bake.repository(stage)
    return f"{{{{workflow.parameters.image-registry}}}}/{repository}:{{{{workflow.parameters.image-tag}}}}"


def _args(spec: StageSpec) -> list[str]:
    """Stage CLI arguments: input/output paths, options from input parameters, the params dir."""
    args = list(spec.fixed_args)
    args += [f"{flag}={INPUTS_DIR}/{art.file}" for art, flag in spec.inputs]
    args += [f"{out.flag}={OUTPUTS_DIR}/{out.file}" for out in spec.outputs]
    args += [f"{flag}={{{{inputs.parameters.{param}}}}}" for flag, param in spec.options]
    args.append(f"--params-dir={PARAMS_DIR}")
    return args


def _env(retried: bool = True, part: bool = False) -> list[Any]:
    """What differs per run, attempt and partition; the shared settings and secrets come from
    :func:`_template_defaults`. Argo defines ``{{retries}}`` only in a template with a retryStrategy;
    without one every run is attempt 0. A fan-out pod (``part``) is audited on its own row, by its item's ``k``."""
    from hera.workflows import Env

    attempt = "{{retries}}" if retried else "0"
    env = [Env(name="RUN_ID", value="{{workflow.name}}"), Env(name="STAGE_ATTEMPT", value=attempt)]
    return env + [Env(name="STAGE_PART", value="{{inputs.parameters.k}}")] if part else env


def _template_defaults() -> Any:
    """``spec.templateDefaults``: the environment every stage container shares, written once per manifest.

    Argo merges it into each template (a strategic merge patch: ``env`` entries by name, the
    template's own entries winning; a dag template keeps only its dag). Each setting is named
    (``configMapKeyRef``, not ``envFrom``): a key missing from the ConfigMap stops the pod at
    start, naming it, instead of leaving a stage on its built-in default; and the local
    executor resolves named keys from its own environment, where it could not list a whole
    ConfigMap. Credentials come by ``secretKeyRef``, never as values.
    """
    from hera.workflows.models import (
        ConfigMapKeySelector,
        Container,
        EnvVar,
        EnvVarSource,
        SecretKeySelector,
        Template,
    )

    config = [
        EnvVar(name=key, value_from=EnvVarSource(config_map_key_ref=ConfigMapKeySelector(name=CONFIG_MAP, key=key)))
        for key in CONFIG_KEYS
    ]
    secrets = [
        EnvVar(name=name, value_from=EnvVarSource(secret_key_ref=SecretKeySelector(name=secret, key=key)))
        for name, secret, key in _SECRET_KEYS
    ]
    return Template(container=Container(env=config + secrets))


def _security() -> tuple[Any, Any]:
    """(pod, container) security contexts: non-root, no privilege escalation, nothing writable but /tmp."""
    from hera.workflows.models import Capabilities, PodSecurityContext, SeccompProfile, SecurityContext

    pod = PodSecurityContext(
        run_as_non_root=True,
        run_as_user=RUN_AS_USER,
        run_as_group=RUN_AS_USER,
        fs_group=RUN_AS_USER,
        seccomp_profile=SeccompProfile(type="RuntimeDefault"),
    )
    container = SecurityContext(
        allow_privilege_escalation=False,
        capabilities=Capabilities(drop=["ALL"]),
        read_only_root_filesystem=True,
        run_as_non_root=True,
        seccomp_profile=SeccompProfile(type="RuntimeDefault"),
    )
    return pod, container


def _retry() -> Any:
    """Retry exit 75 (TransientError: a service fault that outlasted the stage's own retries) only.

    No ``backoff.maxDuration``, on purpose: Argo measures it from the *first* attempt's start,
    refuses a retry once it has passed, and gives every retry pod that instant as its deadline
    (ARGO_DEADLINE: killed with "Step exceeded its deadline"). A stage that legitimately runs
    20 minutes at 10M flows and then hits a transient fault would never be retried under a
    15m limit, and any fixed value would have to exceed 4 attempts of the slowest stage at
    the largest input. The limit (3 retries, waits of 30 s, 60 s, 120 s) bounds the count;
    the workflow's activeDeadlineSeconds bounds the time, retries included (Argo stops
    retrying past it and caps each pod's deadline by it).
    """
    from hera.workflows import RetryStrategy
    from hera.workflows.models import Backoff, IntOrString

    return RetryStrategy(
        limit="3",
        retry_policy="OnFailure",
        expression="asInt(lastRetry.exitCode) == 75",
        backoff=Backoff(duration="30s", factor=IntOrString(root="2")),
    )


def _container(spec: StageSpec, bake: BakeFile) -> Any:
    """The container template of one stage."""
    from hera.workflows import Artifact, Container, EmptyDirVolume, NoneArchiveStrategy, Parameter, S3Artifact
    from hera.workflows.models import Quantity, ResourceRequirements, ValueFrom

    def quantities(values: dict[str, str]) -> dict[str, Quantity]:
        return {name: Quantity(root=value) for name, value in values.items()}

    def input_artifact(art: InArtifact) -> Any:
        path = f"{INPUTS_DIR}/{art.file}"
        if art.key:
            return S3Artifact(name=art.name, path=path, key=art.key, optional=art.optional or None)
        return Artifact(name=art.name, path=path)

    pod_security, container_security = _security()
    optional = True if spec.optional_outputs else None
    loop_params = [name for name, _ in spec.loop.params] if spec.loop else []
    memo_key = spec.loop.memo_key if spec.loop else ""
    memoized = bool(memo_key)
    option_params = [param for _, param in spec.options]
    return Container(
        name=spec.name,
        image=_image(bake, spec.stage),
        command=["python", "-m", spec.module or f"stages.{spec.stage}"],
        args=_args(spec),
        env=_env(retried=not memoized, part="k" in loop_params),
        inputs=[Parameter(name=param) for param in dict.fromkeys(option_params + loop_params)]
        + [input_artifact(art) for art in {art.name: art for art, _ in spec.inputs}.values()],
        outputs=[
            S3Artifact(
                name=out.name,
                path=f"{OUTPUTS_DIR}/{out.file}",
                key=out.s3_key,
                archive=NoneArchiveStrategy(),
                optional=optional,
            )
            for out in spec.outputs
        ]
        + [
            Parameter(name=p.name, value_from=ValueFrom(path=f"{PARAMS_DIR}/{p.file}", default=p.default))
            for p in spec.out_params
        ],
        resources=ResourceRequirements(requests=quantities(spec.requests), limits=quantities(spec.limits)),
        # memoized: no retryStrategy (Argo v4.0 leaves the DAG Running for ever when a retried template is a
        # cache hit: its Retry node gets no child, so the tasks after it are not linked); a failed memoized
        # pod recovers by re-submission, where every finished item is a cache hit
        retry_strategy=None if memoized else _retry(),
        memoize=_memoize(memo_key) if memoized else None,
        pod_security_context=pod_security,
        security_context=container_security,
        volumes=[EmptyDirVolume(name="tmp", mount_path="/tmp", size_limit=Quantity(root=TMP_SIZE_LIMIT))],
        labels={"app.kubernetes.io/component": spec.name},
    )


def _memoize(key: str) -> Any:
    """Argo ``memoize``: a node whose key is in the cache ConfigMap (and younger than ``MEMO_MAX_AGE``) runs no pod."""
    from hera.workflows.models import Cache, LocalObjectReference, Memoize

    return Memoize(key=key, max_age=MEMO_MAX_AGE, cache=Cache(config_map=LocalObjectReference(name=MEMO_CACHE)))


def _dag(containers: dict[str, Any], specs: tuple[StageSpec, ...] = STAGE_SPECS, name: str = ENTRYPOINT) -> Any:
    """The DAG template: one task per stage (a fan-out for a looped stage), artifacts passed by ``from``."""
    from hera.workflows import DAG, Artifact, Parameter, Task

    tasks: list[Any] = []
    for spec in specs:
        from_item = dict(spec.loop.params) if spec.loop else {}
        params = dict.fromkeys([param for _, param in spec.options] + list(from_item))
        arguments: list[Any] = [
            Parameter(
                name=param,
                value=f"{{{{item.{from_item[param]}}}}}"
                if param in from_item
                else f"{{{{workflow.parameters.{param}}}}}",
            )
            for param in params
        ]
        arguments += [
            Artifact(name=art.name, from_=f"{{{{tasks.{art.task}.outputs.artifacts.{art.name}}}}}")
            for art, _ in spec.inputs
            if art.task
        ]
        tasks.append(
            Task(
                name=spec.name,
                template=containers[spec.name],
                depends=spec.depends,
                arguments=arguments or None,
                with_param=spec.loop.over if spec.loop else None,
            )
        )
    return DAG(name=name, tasks=tasks)


def _common(bake: BakeFile) -> dict[str, Any]:
    """Workflow spec fields every run shares: service account, artifact repository, deadline, GC."""
    from hera.workflows.models import ArtifactRepositoryRef, PodGC, TTLStrategy

    return {
        "service_account_name": SERVICE_ACCOUNT,
        "artifact_repository_ref": ArtifactRepositoryRef(config_map=ARTIFACT_REPOSITORY[0], key=ARTIFACT_REPOSITORY[1]),
        "active_deadline_seconds": ACTIVE_DEADLINE_SECONDS,
        "pod_gc": PodGC(strategy="OnPodSuccess"),
        "ttl_strategy": TTLStrategy(seconds_after_success=TTL_AFTER_SUCCESS, seconds_after_failure=TTL_AFTER_FAILURE),
    }


def _arguments(bake: BakeFile, table: tuple[WorkflowParam, ...]) -> list[Any]:
    from hera.workflows import Parameter

    return [
        Parameter(name=name, value=default, description=description, enum=list(enum) or None)
        for name, default, description, enum in workflow_parameters(bake, table)
    ]


def build(kind: str = "Workflow", bake: BakeFile | None = None, partitioned: bool = False) -> Any:
    """The pipeline as a Hera ``Workflow`` or ``WorkflowTemplate`` (``kind``), images from ``bake``;
    ``partitioned``: the fan-out over many files (``cybersec-mlops-partitioned``)."""
    from hera.workflows import Workflow, WorkflowTemplate

    if kind not in ("Workflow", "WorkflowTemplate"):
        raise ValueError(f"kind must be Workflow or WorkflowTemplate, not {kind!r}")
    bake = bake or load_bake()
    specs, table = (PARTITIONED_SPECS, PARTITIONED_PARAMETERS) if partitioned else (STAGE_SPECS, WORKFLOW_PARAMETERS)
    name = PARTITIONED_NAME if partitioned else TEMPLATE_NAME
    containers = {spec.name: _container(spec, bake) for spec in specs}
    template = kind == "WorkflowTemplate"
    cls = WorkflowTemplate if template else Workflow
    return cls(
        name=name if template else None,
        generate_name=None if template else f"{name}-" if partitioned else GENERATE_NAME,
        labels={**LABELS, "app.kubernetes.io/version": bake.tag},
        annotations={"workflows.argoproj.io/description": PARTITIONED_DESCRIPTION if partitioned else DESCRIPTION},
        entrypoint=ENTRYPOINT,
        arguments=_arguments(bake, table),
        templates=[_dag(containers, specs), *containers.values()],
        template_defaults=_template_defaults(),
        parallelism=PARTITION_PARALLELISM if partitioned else None,
        **_common(bake),
    )


def _cron(name: str, schedule: str, deadline: int, history: tuple[int, int]) -> dict[str, Any]:
    """CronWorkflow fields: one run at a time (Forbid), a missed start still runs within ``deadline`` s."""
    return {
        "name": name,
        "schedules": [schedule],
        "timezone": TIMEZONE,
        "concurrency_policy": "Forbid",
        "starting_deadline_seconds": deadline,
        "successful_jobs_history_limit": history[0],
        "failed_jobs_history_limit": history[1],
    }


def build_scoring(bake: BakeFile | None = None) -> Any:
    """The scoring CronWorkflow: champion ∥ ingest → silver (score mode) → score, daily."""
    from hera.workflows import CronWorkflow

    bake = bake or load_bake()
    containers = {spec.name: _container(spec, bake) for spec in SCORING_SPECS}
    return CronWorkflow(
        **_cron(SCORING_NAME, SCORING_SCHEDULE, 3600, (7, 14)),
        labels={**LABELS, "app.kubernetes.io/version": bake.tag, "app.kubernetes.io/component": "scoring"},
        annotations={"workflows.argoproj.io/description": SCORING_DESCRIPTION},
        entrypoint="scoring",
        arguments=_arguments(bake, SCORING_PARAMETERS),
        templates=[_dag(containers, SCORING_SPECS, "scoring"), *containers.values()],
        template_defaults=_template_defaults(),
        **_common(bake),
    )


def build_retrain(bake: BakeFile | None = None) -> Any:
    """The retraining CronWorkflow: the training WorkflowTemplate by reference, on the latest days."""
    from hera.workflows import CronWorkflow, Parameter
    from hera.workflows.models import WorkflowTemplateRef

    bake = bake or load_bake()
    return CronWorkflow(
        **_cron(RETRAIN_NAME, RETRAIN_SCHEDULE, 6 * 3600, (4, 8)),
        labels={**LABELS, "app.kubernetes.io/version": bake.tag, "app.kubernetes.io/component": "retrain"},
        annotations={
            "workflows.argoproj.io/description": (
                f"Weekly retraining: runs WorkflowTemplate {TEMPLATE_NAME} on the latest days of landed flows; "
                "its quality gate decides whether the new model becomes the champion."
            )
        },
        workflow_template_ref=WorkflowTemplateRef(name=TEMPLATE_NAME),
        arguments=[Parameter(name=p.name, value=p.default) for p in RETRAIN_PARAMETERS],
    )
