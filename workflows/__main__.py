"""``python -m workflows <command>``: compile, validate and submit the Argo workflow.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``, which adds
one or more subparsers and sets ``handler=<function(args) -> exit code>`` on them. To add
commands, append a module to ``COMMAND_MODULES``; a module listed as optional that is not
installed (yet) is left out of the CLI rather than breaking it. Modules must import only
the standard library at top level so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES: dict[str, bool] = {
    # module → required
    "workflows.compile": True,
    "workflows.validate": True,
    "workflows.submit": True,
    # run-local / demo / services: the local executor (workflows.localargo) with this repository's settings.
    "workflows.local.cli": False,
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="python -m workflows",
        description="Compile, validate, submit (and run locally) the cybersec-mlops Argo workflow.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold (default: %(default)s)",
    )
    parser.add_argument(
        "--log-format", default="auto", choices=["auto", "json", "text"], help="auto: JSON unless stderr is a terminal"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name, required in COMMAND_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if required or exc.name is None or not module_name.startswith(exc.name):
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, configure logging once, run the chosen subcommand; returns its exit code."""
    from stages.common.logs import configure

    parser = build_parser()
    args = parser.parse_args(argv)
    configure(f"workflows.{args.command}", "-", args.log_level, args.log_format)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
