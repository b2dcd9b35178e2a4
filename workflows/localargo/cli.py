"""``run-local``, ``demo`` and ``services``: the local executor's subcommands of ``python -m workflows``.

Only the standard library is imported here, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "add_parsers"]

log = logging.getLogger(__name__)

DEFAULT_MANIFEST = Path("workflows/compiled/workflow.yaml")

RUN_LOCAL_HELP = """\
Run an Argo Workflow or WorkflowTemplate manifest on this machine and print an
`argo get`-like tree. Exit code: 0 when the workflow Succeeded, 1 when it Failed or
Errored, 2 when the manifest uses something this executor refuses (the message names
the field) or the run cannot start.

Runtimes:
  subprocess  each container's command/args run as a local process in the repository
              root with PYTHONPATH set to it (command[0] python → this interpreter).
              The container paths /tmp/inputs and /tmp/outputs (and any emptyDir
              mountPath) map to a per-task sandbox, where artifact and output-parameter
              paths are read. A command/args item or env value is rewritten only when it
              is a path: the whole value, or the value of --flag=PATH. One that holds a
              mapped path inside other text (sh -c "cat /tmp/inputs/x", a script's
              source) is refused: a path or data, the runtime cannot tell. The
              environment is the template's env plus PATH/HOME/locale.
  docker      each container runs in its image (`docker run --network host`), with
              securityContext → --user/--read-only/--cap-drop, input artifacts
              bind-mounted at their paths, emptyDir volumes as sandbox dirs, outputs
              collected after exit (docker cp). The images must exist locally.

Secrets and ConfigMaps: env entries with valueFrom.secretKeyRef/configMapKeyRef take
the value of the executor's own environment variable of the same NAME (export it or
put it in --env-file); when unset the variable is left out, with a warning.

Artifacts: --artifacts replaces the manifest's artifactRepositoryRef: keys such as
raw/<workflow>/flows.parquet land in DIR/raw/<workflow>/flows.parquet or
s3://BUCKET/raw/<workflow>/flows.parquet (S3 through MINIO_ENDPOINT, MINIO_ACCESS_KEY,
MINIO_SECRET_KEY, or --s3-endpoint).

RUN_LOCAL_BACKOFF_SCALE=0.01 shrinks retryStrategy backoff delays (for tests).
"""


def _run_local_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "manifest",
        nargs="?",
        type=Path,
        default=DEFAULT_MANIFEST,
        help="Workflow or WorkflowTemplate YAML (default: %(default)s)",
    )
    p.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a workflow parameter (repeatable), like argo submit -p",
    )
    p.add_argument(
        "--runtime",
        choices=["subprocess", "docker"],
        default="subprocess",
        help="how containers run (default: %(default)s)",
    )
    p.add_argument(
        "--artifacts",
        default=".local/artifacts",
        metavar="DIR|s3://BUCKET",
        help="artifact repository: a directory or an S3 bucket (default: %(default)s)",
    )
    p.add_argument(
        "--s3-endpoint",
        default=None,
        metavar="URL",
        help="S3 endpoint for s3:// artifacts (default: $MINIO_ENDPOINT, else AWS)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path(".local/runs"),
        help="where runs keep sandboxes, logs and status.json (default: %(default)s)",
    )
    p.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="KEY=VALUE lines added to the executor's environment (values for secretKeyRef/"
        "configMapKeyRef entries, MINIO_* for s3:// artifacts)",
    )
    p.add_argument(
        "--name", default=None, help="workflow name (default: metadata.name, or generateName + 5 random characters)"
    )
    p.add_argument("--namespace", default=None, help="{{workflow.namespace}} (default: metadata.namespace or default)")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="stream every task's output, prefixed by its name (default: tree only, and the "
        "end of a failed task's log)",
    )


def _run_local(args: argparse.Namespace) -> int:
    from .engine import RunOptions, run_workflow
    from .errors import ExecutorError
    from .manifest import parse_overrides

    try:
        opts = RunOptions(
            manifest=args.manifest,
            parameters=parse_overrides(args.parameter),
            runtime=args.runtime,
            artifacts=args.artifacts,
            workdir=args.workdir,
            env_file=args.env_file,
            verbose=args.verbose,
            name=args.name,
            namespace=args.namespace,
            s3_endpoint=args.s3_endpoint,
        )
        return run_workflow(opts).exit_code
    except ExecutorError as exc:
        log.error("%s", exc)
        return 2


def _demo(args: argparse.Namespace) -> int:
    from workflows.local.demo import run_demo

    return run_demo(args)


def _services(args: argparse.Namespace) -> int:
    from workflows.local.demo import services

    return services(args)


def add_parser(subparsers: Any) -> None:
    """Register ``run-local``, ``demo`` and ``services`` on ``python -m workflows``."""
    p = subparsers.add_parser(
        "run-local",
        help="run a workflow manifest locally (subprocess or docker runtime)",
        description=RUN_LOCAL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _run_local_args(p)
    p.set_defaults(handler=_run_local)

    d = subparsers.add_parser(
        "demo",
        help="run the whole pipeline locally on synthetic data and summarise it",
        description="Start (or reuse) an embedded PostgreSQL (.local/pg) and a local MLflow store (.local/mlflow), "
        "run the compiled workflow with the subprocess runtime and a local artifact directory, "
        "then print rows per stage, metrics, the gate verdict, the audit rows and where everything is. "
        "Exit code: the workflow's.",
    )
    d.add_argument("--rows", type=int, default=100_000, help="synthetic flows to generate (default: %(default)s)")
    d.add_argument(
        "--source",
        default=None,
        metavar="URI",
        help="ingest this instead of synthetic data (default: synthetic://?rows=ROWS)",
    )
    d.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="workflow to run (default: %(default)s)")
    d.add_argument(
        "--state",
        type=Path,
        default=Path(".local"),
        help="state directory for pg/, mlflow/, artifacts/ and runs/ (default: %(default)s)",
    )
    d.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra workflow parameter overrides",
    )
    d.add_argument("-v", "--verbose", action="store_true", help="stream the stages' output")
    d.add_argument(
        "--no-scoring",
        action="store_true",
        help="stop after training (default: then score a later synthetic day with the new champion)",
    )
    d.set_defaults(handler=_demo)

    s = subparsers.add_parser("services", help="start, stop or show the embedded PostgreSQL used by the demo")
    s.add_argument("action", choices=["start", "stop", "status"], help="what to do")
    s.add_argument("--state", type=Path, default=Path(".local"), help="state directory (default: %(default)s)")
    s.set_defaults(handler=_services)


add_parsers = add_parser
