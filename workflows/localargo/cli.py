"""``run-local``: the executor's command, for a caller's ``argparse`` subparsers.

The caller supplies what differs between projects (the default manifest, where artifacts
and runs go, the directory commands run in, how to build missing images) through
:class:`RunLocalDefaults`. Only the standard library is imported here, so ``--help`` stays
instant.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunLocalDefaults", "add_run_local"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunLocalDefaults:
    """What ``run-local`` assumes when an option is not given."""

    manifest: Path | None = None
    """The manifest to run when none is named (None: the argument is required)."""
    artifacts: str = ".localargo/artifacts"
    workdir: Path = Path(".localargo/runs")
    workspace: Path = field(default_factory=Path.cwd)
    """Where the subprocess runtime runs commands (and what it puts on PYTHONPATH)."""
    build_hint: Callable[[Sequence[str]], str | None] | None = None
    """The docker runtime's advice for images missing locally."""


RUN_LOCAL_HELP = """\
Run an Argo Workflow or WorkflowTemplate manifest on this machine and print an
`argo get`-like tree. Exit code: 0 when the workflow Succeeded, 1 when it Failed or
Errored, 2 when the manifest uses something this executor refuses (the message names
the field) or the run cannot start.

Runtimes:
  subprocess  each container's command/args run as a local process in the workspace
              directory with PYTHONPATH set to it (command[0] python → this interpreter).
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

templateDefaults are merged into every template first, as Argo does (strategic merge:
env by name, the template's own values winning).

Loops: withItems/withParam on DAG tasks expand into children task(0:item), ... bounded
by the DAG's and the workflow's parallelism; {{tasks.X.outputs.parameters.Y}} of an
expanded task is the JSON list of its children's values. withSequence is refused.

memoize: the cache ConfigMap NAME is the file <workdir>/_configmaps/<namespace>/NAME.json,
shared by the runs of that workdir; a hit (within maxAge) runs no pod and reuses the
outputs, shown as memoizationStatus in status.json.

Artifacts: --artifacts replaces the manifest's artifactRepositoryRef: keys such as
data/<workflow>/part.parquet land in DIR/data/<workflow>/part.parquet or
s3://BUCKET/data/<workflow>/part.parquet (S3 through MINIO_ENDPOINT, MINIO_ACCESS_KEY,
MINIO_SECRET_KEY, or --s3-endpoint).

RUN_LOCAL_BACKOFF_SCALE=0.01 shrinks retryStrategy backoff delays (for tests).
"""


def _run_local_args(p: argparse.ArgumentParser, d: RunLocalDefaults) -> None:
    if d.manifest is None:
        p.add_argument("manifest", type=Path, help="Workflow or WorkflowTemplate YAML")
    else:
        p.add_argument(
            "manifest",
            nargs="?",
            type=Path,
            default=d.manifest,
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
        default=d.artifacts,
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
        default=d.workdir,
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


def _run_local(args: argparse.Namespace, d: RunLocalDefaults) -> int:
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
            workspace=d.workspace,
            build_hint=d.build_hint,
        )
        return run_workflow(opts).exit_code
    except ExecutorError as exc:
        log.error("%s", exc)
        return 2


def add_run_local(subparsers: Any, defaults: RunLocalDefaults | None = None) -> argparse.ArgumentParser:
    """Register ``run-local`` on ``subparsers``, with the caller's defaults; returns its parser."""
    d = defaults or RunLocalDefaults()
    p = subparsers.add_parser(
        "run-local",
        help="run a workflow manifest locally (subprocess or docker runtime)",
        description=RUN_LOCAL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _run_local_args(p, d)
    p.set_defaults(handler=lambda args: _run_local(args, d))
    return p
