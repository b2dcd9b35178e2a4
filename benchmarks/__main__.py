"""``python -m benchmarks [perf|detection|all] [ARGS...]``: run one benchmark (ARGS go to it) or all with defaults."""

from __future__ import annotations

import importlib
import sys

SUITES = ("perf", "detection")
USAGE = "usage: python -m benchmarks [perf|detection|all] [ARGS...]   (python -m benchmarks.<name> --help for ARGS)"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "all":
        if rest:
            print("`all` runs every benchmark with its defaults and takes no ARGS", file=sys.stderr)
            return 2
        return max(importlib.import_module(f"benchmarks.{s}.__main__").main([]) for s in SUITES)
    if name not in SUITES:
        print(f"unknown benchmark {name!r}\n{USAGE}", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"benchmarks.{name}.__main__").main(rest))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
