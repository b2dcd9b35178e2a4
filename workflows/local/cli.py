"""``run-local``, ``demo`` and ``services``: the local subcommands of ``python -m workflows``.

``run-local`` is the generic executor's command with this repository's defaults; ``demo``
and ``services`` run the pipeline with its embedded services. Only the standard library
(and the executor's standard-library-only CLI module) is imported here, so ``--help``
stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workflows.localargo.cli import add_run_local

from .project import DEFAULT_MANIFEST, STATE, run_local_defaults

__all__ = ["add_parser"]


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def _services(args: argparse.Namespace) -> int:
    from .demo import services

    return services(args)


def add_parser(subparsers: Any) -> None:
    """Register ``run-local``, ``demo`` and ``services`` on ``python -m workflows``."""
    add_run_local(subparsers, run_local_defaults())

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
        default=STATE,
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
    s.add_argument("--state", type=Path, default=STATE, help="state directory (default: %(default)s)")
    s.set_defaults(handler=_services)
